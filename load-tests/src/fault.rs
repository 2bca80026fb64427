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

/// The farm's fault switches.
#[derive(Debug)]
pub(crate) struct Faults {
    /// Accept and close at once, before the greeting.
    refuse: AtomicBool,
    /// Delay before the greeting, in milliseconds.
    greeting_delay_ms: AtomicU64,
    /// Advertise and accept IDLE (a server without it makes clients poll).
    idle: AtomicBool,
    /// Answer every login `NO [UNAVAILABLE]` (an authentication backend down).
    auth_unavailable: AtomicBool,
    /// Answer every SELECT `NO [INUSE]` (a mailbox locked for a moment).
    inbox_in_use: AtomicBool,
    /// Advertise IDLE but answer it `NO [LIMIT]`.
    idle_refused: AtomicBool,
    sessions: broadcast::Sender<Fault>,
}

impl Faults {
    pub(crate) fn new(idle: bool) -> Self {
        Self {
            refuse: AtomicBool::new(false),
            greeting_delay_ms: AtomicU64::new(0),
            idle: AtomicBool::new(idle),
            auth_unavailable: AtomicBool::new(false),
            inbox_in_use: AtomicBool::new(false),
            idle_refused: AtomicBool::new(false),
            sessions: broadcast::channel(16).0,
        }
    }

    pub(crate) fn set_refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::Relaxed);
    }

    pub(crate) fn refusing(&self) -> bool {
        self.refuse.load(Ordering::Relaxed)
    }

    pub(crate) fn set_greeting_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.greeting_delay_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn greeting_delay(&self) -> Duration {
        Duration::from_millis(self.greeting_delay_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn set_idle(&self, on: bool) {
        self.idle.store(on, Ordering::Relaxed);
    }

    pub(crate) fn idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    pub(crate) fn set_auth_unavailable(&self, on: bool) {
        self.auth_unavailable.store(on, Ordering::Relaxed);
    }

    pub(crate) fn auth_unavailable(&self) -> bool {
        self.auth_unavailable.load(Ordering::Relaxed)
    }

    pub(crate) fn set_inbox_in_use(&self, on: bool) {
        self.inbox_in_use.store(on, Ordering::Relaxed);
    }

    pub(crate) fn inbox_in_use(&self) -> bool {
        self.inbox_in_use.load(Ordering::Relaxed)
    }

    pub(crate) fn set_idle_refused(&self, on: bool) {
        self.idle_refused.store(on, Ordering::Relaxed);
    }

    pub(crate) fn idle_refused(&self) -> bool {
        self.idle_refused.load(Ordering::Relaxed)
    }

    pub(crate) fn broadcast(&self, fault: Fault) {
        // No receivers means no open sessions: nothing to fault.
        let _ = self.sessions.send(fault);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Fault> {
        self.sessions.subscribe()
    }
}
