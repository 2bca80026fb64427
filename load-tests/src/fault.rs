//! Faults the farm injects on command. Listener-level faults (refuse,
//! slow greeting, no IDLE) apply to new connections; session-level ones are
//! broadcast to every open session.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;

/// A fault applied to every open session at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Close every connection without a word (a crashed server or a cut link).
    DropAll,
    /// Send `* BYE` with Exchange's throttling hint, "Suggested Backoff
    /// Time: N milliseconds", then close.
    ThrottleBye {
        /// The suggested wait.
        backoff_ms: u64,
    },
    /// Stop reading and writing (a wedged server or a black-holed link)
    /// until [`Fault::Resume`]; the sockets stay open.
    Stall,
    /// Ends a [`Fault::Stall`].
    Resume,
}

/// One fault that is on or off.
#[derive(Debug, Default)]
pub(crate) struct Switch(AtomicBool);

impl Switch {
    fn new(on: bool) -> Self {
        Self(AtomicBool::new(on))
    }

    pub(crate) fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    pub(crate) fn on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The farm's fault switches.
#[derive(Debug)]
pub(crate) struct Faults {
    /// Accept and close at once, before the greeting.
    pub(crate) refuse: Switch,
    /// Delay before the greeting, in milliseconds.
    greeting_delay_ms: AtomicU64,
    /// Advertise and accept IDLE (a server without it makes clients poll).
    pub(crate) idle: Switch,
    /// Answer every login `NO [UNAVAILABLE]` (an authentication backend down).
    pub(crate) auth_unavailable: Switch,
    /// Answer every SELECT `NO [INUSE]` (a mailbox locked for a moment).
    pub(crate) inbox_in_use: Switch,
    /// Advertise IDLE but answer it `NO [LIMIT]`.
    pub(crate) idle_refused: Switch,
    sessions: broadcast::Sender<Fault>,
}

impl Faults {
    pub(crate) fn new(idle: bool) -> Self {
        Self {
            refuse: Switch::default(),
            greeting_delay_ms: AtomicU64::new(0),
            idle: Switch::new(idle),
            auth_unavailable: Switch::default(),
            inbox_in_use: Switch::default(),
            idle_refused: Switch::default(),
            sessions: broadcast::channel(16).0,
        }
    }

    pub(crate) fn set_greeting_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.greeting_delay_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn greeting_delay(&self) -> Duration {
        Duration::from_millis(self.greeting_delay_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn broadcast(&self, fault: Fault) {
        // No receivers means no open sessions: nothing to fault.
        let _ = self.sessions.send(fault);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Fault> {
        self.sessions.subscribe()
    }
}
