//! The mailbox actor: owns one mailbox's lifecycle. It starts a session task
//! per folder, turns their progress into the mailbox's state, and after a
//! failure decides (through the error classifier and the schedule) when, or
//! whether, to connect again.

use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler, Supervised};
use chrono::{DateTime, Utc};
use rand::thread_rng;
use tokio::sync::{mpsc, watch};

use super::{
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
    pub pipeline: PipelineConfig,
    /// The mailbox → parser edge.
    pub parse: Edge<Parser>,
    /// Checkpoint reads.
    pub store: Arc<dyn Store>,
    /// Where views are published.
    pub board: Board,
    /// The schedule's clock.
    pub clock: Arc<dyn Clock>,
    /// Becomes `true` when the gateway stops.
    pub shutdown: watch::Receiver<bool>,
    /// Upgraded into each session; shutdown waits until none is held. Weak,
    /// so no session can start once shutdown has dropped the strong end.
    pub alive: mpsc::WeakSender<()>,
}

/// One configured mailbox.
pub struct MailboxActor {
    cfg: Arc<MailboxConfig>,
    shared: Shared,
    folders: Vec<Lifecycle>,
    view: MailboxView,
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
            cfg,
            shared,
            view,
        }
    }

    fn publish(&mut self) {
        self.view.state = self
            .folders
            .iter()
            .map(Lifecycle::state)
            .min()
            .unwrap_or(MailboxState::Stopped);
        self.view.consecutive_failures = self
            .folders
            .iter()
            .map(Lifecycle::failures)
            .max()
            .unwrap_or(0);
        self.shared.board.publish(self.view.clone());
    }

    fn start_folder(&mut self, folder: usize, ctx: &mut Context<Self>) {
        let Some(alive) = self.shared.alive.upgrade() else {
            return;
        };
        let now = self.shared.clock.now();
        if let Next::RetryAt(at) = self.folders[folder].before_connect(now) {
            self.schedule(folder, at, ctx);
            return;
        }
        self.view.next_attempt_at = None;
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
            alive,
        };
        actix::spawn(session.run());
    }

    /// Connects `folder` again at `at` (or at once if that has passed).
    fn schedule(&mut self, folder: usize, at: DateTime<Utc>, ctx: &mut Context<Self>) {
        self.view.next_attempt_at = Some(at);
        self.publish();
        let delay = (at - self.shared.clock.now()).to_std().unwrap_or_default();
        ctx.run_later(delay, move |a, ctx| a.start_folder(folder, ctx));
    }
}

impl Actor for MailboxActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // One point read per folder at start (microseconds, from RocksDB's
        // block cache or one SST read), so the API shows where each folder
        // stands before its first commit.
        for folder in &self.cfg.folders {
            if let Ok(Some(cp)) = self.shared.store.checkpoint(&self.cfg.id, folder) {
                let view = CheckpointView {
                    uidvalidity: cp.uidvalidity,
                    uid: cp.uid,
                };
                self.view.checkpoint.insert(folder.clone(), view);
            }
        }
        self.publish();
        if self.cfg.status == MailboxStatus::Active {
            for folder in 0..self.folders.len() {
                self.start_folder(folder, ctx);
            }
        }
    }
}

impl Supervised for MailboxActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        let fresh = Self::new(self.cfg.clone(), self.shared.clone());
        self.folders = fresh.folders;
    }
}

impl Handler<SessionEvent> for MailboxActor {
    type Result = ();

    fn handle(&mut self, ev: SessionEvent, ctx: &mut Context<Self>) {
        let now = self.shared.clock.now();
        let life = &mut self.folders[ev.folder];
        match ev.progress {
            Progress::Connecting => {}
            Progress::Syncing => life.syncing(),
            Progress::Idle | Progress::Polling => {
                life.idle(now);
                self.view.last_error = None;
                self.view.last_synced_at = Some(now);
                self.view.notice = (ev.progress == Progress::Polling).then(|| {
                    MailboxError::IdleUnsupported(self.cfg.poll_interval.as_secs()).report()
                });
            }
            Progress::Ended(Ok(())) => {
                life.stopped();
            }
            Progress::Ended(Err(e)) => {
                telemetry::mailbox_error(e.code());
                let report = e.report();
                tracing::warn!(mailbox = %self.cfg.id, folder = %self.cfg.folders[ev.folder], %report, "session failed");
                self.view.last_error = Some(report);
                let next = if *self.shared.shutdown.borrow() {
                    life.stopped()
                } else {
                    life.failed(e.disposition(), now, &mut thread_rng())
                };
                if let Next::RetryAt(at) = next {
                    self.schedule(ev.folder, at, ctx);
                    return;
                }
            }
        }
        self.publish();
    }
}

impl Handler<Committed> for MailboxActor {
    type Result = ();

    fn handle(&mut self, c: Committed, _: &mut Context<Self>) {
        self.view.checkpoint.insert(
            c.folder,
            CheckpointView {
                uidvalidity: c.uidvalidity,
                uid: c.uid,
            },
        );
        self.shared.board.publish(self.view.clone());
    }
}
