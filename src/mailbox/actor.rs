//! The mailbox actor: owns one mailbox's lifecycle. It starts a session task
//! per folder, turns their progress into the mailbox's state, and after a
//! failure decides (through the error classifier and the schedule) when, or
//! whether, to connect again.

use std::sync::Arc;

use actix::{
    Actor, ActorContext, AsyncContext, Context, Handler, Message, MessageResult, SpawnHandle,
    Supervised,
};
use chrono::{DateTime, Utc};
use rand::thread_rng;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    admission::Admission,
    error::MailboxError,
    lifecycle::{Lifecycle, Next, Policy, DEFAULT_STABLE_PERIOD},
    schedule::Clock,
    session::{Progress, SessionContext, SessionEvent},
    status::{Board, CheckpointView, MailboxState, MailboxView},
};
use crate::{
    config::{MailboxConfig, MailboxStatus, PipelineConfig},
    parse::Parser,
    pipeline::{Committed, Edge},
    store::Store,
    telemetry,
};

/// What every mailbox actor shares.
#[derive(Clone)]
pub struct Shared {
    /// Pipeline sizes.
    pub pipeline: Arc<PipelineConfig>,
    /// The mailbox → parser edge.
    pub parse: Edge<Parser>,
    /// Checkpoint reads.
    pub store: Arc<dyn Store>,
    /// Where views are published.
    pub board: Board,
    /// The schedule's clock.
    pub clock: Arc<dyn Clock>,
    /// Per-host login gates.
    pub admission: Arc<Admission>,
    /// Becomes `true` when the gateway stops.
    pub shutdown: watch::Receiver<bool>,
    /// Upgraded into each session; shutdown waits until none is held. Weak,
    /// so no session can start once shutdown has dropped the strong end.
    pub alive: mpsc::WeakSender<()>,
}

/// An operator's request (`POST /api/mailboxes/{id}/pause|resume|retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "MailboxView")]
pub enum Control {
    /// Log out and stay disconnected until resumed.
    Pause,
    /// Connect again after a pause.
    Resume,
    /// Try now: clears needs_reauth, cool_off and backoff waits.
    Retry,
}

/// A configuration reload changed this mailbox (`None`: it was removed).
/// Its sessions end cleanly first; then it starts over with the new
/// settings (a fresh lifecycle, so needs_reauth is retried), or stops.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub Option<Arc<MailboxConfig>>);

/// The actor's handles on one folder's session and timers.
#[derive(Default)]
struct Run {
    /// Set while a session runs; cancelling it asks the session to end (a
    /// token, not a watch channel: a third of the size, for every session).
    stop: Option<CancellationToken>,
    /// The scheduled next connection attempt.
    pending: Option<SpawnHandle>,
    /// Closes the session when the next skip window starts.
    window: Option<SpawnHandle>,
}

/// One configured mailbox.
pub struct MailboxActor {
    cfg: Arc<MailboxConfig>,
    shared: Shared,
    folders: Vec<Lifecycle>,
    runs: Vec<Run>,
    paused: bool,
    /// This mailbox's view, shared with the board (one copy while nothing
    /// changes; `Arc::make_mut` copies on write).
    view: Arc<MailboxView>,
    /// A reload waiting for the running sessions to end.
    reconfigure: Option<Reconfigure>,
    /// Removed from the configuration: never connects again.
    removed: bool,
}

impl MailboxActor {
    /// An actor for `cfg`; it connects when started if the mailbox is active.
    pub fn new(cfg: Arc<MailboxConfig>, shared: Shared) -> Self {
        let view = MailboxView::initial(&cfg);
        let policy = Policy {
            max_tries: cfg.max_tries,
            cool_off: cfg.cool_off,
            backoff: cfg.backoff,
            stable_period: DEFAULT_STABLE_PERIOD,
            skip_times: cfg.skip_times.clone(),
            timezone: cfg.timezone,
        };
        Self {
            folders: vec![Lifecycle::new(policy, view.state); cfg.folders.len()],
            runs: cfg.folders.iter().map(|_| Run::default()).collect(),
            paused: cfg.status != MailboxStatus::Active,
            cfg,
            shared,
            view: Arc::new(view),
            reconfigure: None,
            removed: false,
        }
    }

    /// Applies a pending reload once no session of the old settings runs.
    fn apply_reconfigure(&mut self, ctx: &mut Context<Self>) {
        if self.runs.iter().any(|r| r.stop.is_some()) {
            return;
        }
        let Some(Reconfigure(next)) = self.reconfigure.take() else {
            return;
        };
        for run in &mut self.runs {
            for h in [run.pending.take(), run.window.take()]
                .into_iter()
                .flatten()
            {
                ctx.cancel_future(h);
            }
        }
        match next {
            None => {
                self.removed = true;
                self.shared.board.remove(&self.cfg.id);
                ctx.stop();
            }
            Some(cfg) => {
                let checkpoint = std::mem::take(&mut Arc::make_mut(&mut self.view).checkpoint);
                *self = Self::new(cfg, self.shared.clone());
                Arc::make_mut(&mut self.view).checkpoint = checkpoint;
                self.publish();
                for folder in 0..self.folders.len() {
                    self.start_folder(folder, ctx);
                }
            }
        }
    }

    fn publish(&mut self) {
        let state = self
            .folders
            .iter()
            .map(Lifecycle::state)
            .min()
            .unwrap_or(MailboxState::Stopped);
        let failures = self
            .folders
            .iter()
            .map(Lifecycle::failures)
            .max()
            .unwrap_or(0);
        if (self.view.state, self.view.consecutive_failures) != (state, failures) {
            let view = Arc::make_mut(&mut self.view);
            view.state = state;
            view.consecutive_failures = failures;
        }
        self.shared.board.publish(self.view.clone());
    }

    fn start_folder(&mut self, folder: usize, ctx: &mut Context<Self>) {
        if let Some(h) = self.runs[folder].pending.take() {
            ctx.cancel_future(h);
        }
        if self.paused
            || self.removed
            || self.reconfigure.is_some()
            || self.runs[folder].stop.is_some()
        {
            return;
        }
        let Some(alive) = self.shared.alive.upgrade() else {
            return;
        };
        let now = self.shared.clock.now();
        if let Next::RetryAt(at) = self.folders[folder].before_connect(now) {
            self.schedule(folder, at, ctx);
            return;
        }
        let stop = CancellationToken::new();
        self.runs[folder].stop = Some(stop.clone());
        self.close_at_next_window(folder, ctx);
        Arc::make_mut(&mut self.view).next_attempt_at = None;
        self.publish();
        let session = SessionContext {
            mailbox: self.cfg.clone(),
            folder,
            pipeline: self.shared.pipeline.clone(),
            parse: self.shared.parse.clone(),
            store: self.shared.store.clone(),
            events: ctx.address().recipient(),
            committed: ctx.address().recipient(),
            shutdown: self.shared.shutdown.clone(),
            admission: self.shared.admission.clone(),
            stop,
            alive,
        };
        actix::spawn(session.run());
    }

    /// Connects `folder` again at `at` (or at once if that has passed).
    fn schedule(&mut self, folder: usize, at: DateTime<Utc>, ctx: &mut Context<Self>) {
        Arc::make_mut(&mut self.view).next_attempt_at = Some(at);
        self.publish();
        let delay = (at - self.shared.clock.now()).to_std().unwrap_or_default();
        telemetry::retry_delay(self.folders[folder].state().as_str(), delay);
        let handle = ctx.run_later(delay, move |a, ctx| a.start_folder(folder, ctx));
        self.runs[folder].pending = Some(handle);
    }

    /// Asks the session to end cleanly (IDLE DONE, LOGOUT) when the next
    /// skip window starts; its end then finds the window and waits it out.
    fn close_at_next_window(&mut self, folder: usize, ctx: &mut Context<Self>) {
        if let Some(h) = self.runs[folder].window.take() {
            ctx.cancel_future(h);
        }
        let now = self.shared.clock.now();
        let tz = self.cfg.timezone;
        let Some(start) = self
            .cfg
            .skip_times
            .iter()
            .map(|w| w.starts_after(now, tz))
            .min()
        else {
            return;
        };
        let delay = (start - now).to_std().unwrap_or_default();
        let handle = ctx.run_later(delay, move |a, _| a.stop_session(folder));
        self.runs[folder].window = Some(handle);
    }

    fn stop_session(&mut self, folder: usize) {
        if let Some(stop) = &self.runs[folder].stop {
            stop.cancel();
        }
    }
}

impl Drop for Run {
    /// An actor that goes away takes its sessions with it.
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            stop.cancel();
        }
    }
}

impl Actor for MailboxActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.removed {
            // A supervisor restart of a removed mailbox: stay stopped.
            ctx.stop();
            return;
        }
        // One point read per folder at start (microseconds, from RocksDB's
        // block cache or one SST read), so the API shows where each folder
        // stands before its first commit.
        for folder in &self.cfg.folders {
            if let Ok(Some(cp)) = self.shared.store.checkpoint(&self.cfg.id, folder) {
                let view = CheckpointView {
                    uidvalidity: cp.uidvalidity,
                    uid: cp.uid,
                };
                Arc::make_mut(&mut self.view)
                    .checkpoint
                    .insert(folder.clone(), view);
            }
        }
        self.publish();
        for folder in 0..self.folders.len() {
            self.start_folder(folder, ctx);
        }
    }
}

impl Supervised for MailboxActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        let fresh = Self::new(self.cfg.clone(), self.shared.clone());
        self.folders = fresh.folders;
        self.runs = fresh.runs;
    }
}

impl Handler<SessionEvent> for MailboxActor {
    type Result = ();

    fn handle(&mut self, ev: SessionEvent, ctx: &mut Context<Self>) {
        let now = self.shared.clock.now();
        let folder = ev.folder;
        let life = &mut self.folders[folder];
        match ev.progress {
            Progress::Connecting => {}
            Progress::Syncing => life.syncing(),
            Progress::Idle | Progress::Polling => {
                life.idle(now);
                Arc::make_mut(&mut self.view).last_error = None;
                Arc::make_mut(&mut self.view).last_synced_at = Some(now);
                Arc::make_mut(&mut self.view).notice =
                    (ev.progress == Progress::Polling).then(|| {
                        MailboxError::IdleUnsupported(self.cfg.poll_interval.as_secs()).report()
                    });
            }
            Progress::Ended(result) => {
                self.runs[folder].stop = None;
                if self.reconfigure.is_some() {
                    return self.apply_reconfigure(ctx);
                }
                if let Err(e) = &result {
                    telemetry::mailbox_error(e.code());
                    let report = e.report();
                    tracing::warn!(mailbox = %self.cfg.id, folder = %self.cfg.folders[folder], %report, "session failed");
                    Arc::make_mut(&mut self.view).last_error = Some(report);
                }
                let next = if *self.shared.shutdown.borrow() {
                    life.stopped()
                } else if self.paused {
                    life.paused()
                } else {
                    match result {
                        // Asked to stop for a skip window: connect again,
                        // which finds the window and waits for its end.
                        Ok(()) => Next::Connect,
                        Err(e) => {
                            life.failed(e.disposition(), e.retry_after(), now, &mut thread_rng())
                        }
                    }
                };
                match next {
                    Next::Connect => return self.start_folder(folder, ctx),
                    Next::RetryAt(at) => return self.schedule(folder, at, ctx),
                    Next::WaitForOperator | Next::Stop => {}
                }
            }
        }
        self.publish();
    }
}

impl Handler<Control> for MailboxActor {
    type Result = MessageResult<Control>;

    fn handle(&mut self, c: Control, ctx: &mut Context<Self>) -> Self::Result {
        match c {
            Control::Pause => {
                self.paused = true;
                Arc::make_mut(&mut self.view).next_attempt_at = None;
                for folder in 0..self.folders.len() {
                    if let Some(h) = self.runs[folder].pending.take() {
                        ctx.cancel_future(h);
                    }
                    if self.runs[folder].stop.is_some() {
                        self.stop_session(folder);
                    } else {
                        self.folders[folder].paused();
                    }
                }
            }
            Control::Resume | Control::Retry => {
                self.paused = false;
                for folder in 0..self.folders.len() {
                    if self.runs[folder].stop.is_none() {
                        self.folders[folder].retry();
                        self.start_folder(folder, ctx);
                    }
                }
            }
        }
        self.publish();
        MessageResult((*self.view).clone())
    }
}

impl Handler<Reconfigure> for MailboxActor {
    type Result = ();

    fn handle(&mut self, r: Reconfigure, ctx: &mut Context<Self>) {
        self.reconfigure = Some(r);
        for folder in 0..self.runs.len() {
            self.stop_session(folder);
        }
        self.apply_reconfigure(ctx);
    }
}

impl Handler<Committed> for MailboxActor {
    type Result = ();

    fn handle(&mut self, c: Committed, _: &mut Context<Self>) {
        Arc::make_mut(&mut self.view).checkpoint.insert(
            c.folder,
            CheckpointView {
                uidvalidity: c.uidvalidity,
                uid: c.uid,
            },
        );
        self.shared.board.publish(self.view.clone());
    }
}
