//! The mailbox actor: owns one mailbox's lifecycle. It starts a session task
//! per folder, turns their progress into the mailbox's state, and after a
//! failure decides (through the error classifier and the schedule) when, or
//! whether, to connect again.

use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler, Supervised};
use rand::thread_rng;
use tokio::sync::{mpsc, watch};

use super::{
    error::Disposition,
    schedule::{Backoff, Clock},
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

#[derive(Debug, Clone, Copy)]
struct FolderRun {
    state: MailboxState,
    failures: u32,
}

/// One configured mailbox.
pub struct MailboxActor {
    cfg: Arc<MailboxConfig>,
    shared: Shared,
    folders: Vec<FolderRun>,
    view: MailboxView,
    backoff: Backoff,
}

impl MailboxActor {
    /// An actor for `cfg`; it connects when started if the mailbox is active.
    pub fn new(cfg: Arc<MailboxConfig>, shared: Shared) -> Self {
        let view = MailboxView::initial(&cfg);
        let initial = view.state;
        Self {
            folders: vec![
                FolderRun {
                    state: initial,
                    failures: 0,
                };
                cfg.folders.len()
            ],
            cfg,
            shared,
            view,
            backoff: Backoff::default(),
        }
    }

    fn publish(&mut self) {
        self.view.state = self
            .folders
            .iter()
            .map(|f| f.state)
            .min()
            .unwrap_or(MailboxState::Stopped);
        self.view.consecutive_failures = self.folders.iter().map(|f| f.failures).max().unwrap_or(0);
        self.shared.board.publish(self.view.clone());
    }

    fn start_folder(&mut self, folder: usize, ctx: &mut Context<Self>) {
        let Some(alive) = self.shared.alive.upgrade() else {
            return;
        };
        let now = self.shared.clock.now();
        if self
            .cfg
            .skip_times
            .iter()
            .any(|w| w.contains(now, self.cfg.timezone))
        {
            self.folders[folder].state = MailboxState::Skipped;
            self.publish();
            ctx.run_later(std::time::Duration::from_secs(60), move |a, ctx| {
                a.start_folder(folder, ctx)
            });
            return;
        }
        self.folders[folder].state = MailboxState::Connecting;
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
        for f in &mut self.folders {
            f.failures = 0;
        }
    }
}

impl Handler<SessionEvent> for MailboxActor {
    type Result = ();

    fn handle(&mut self, ev: SessionEvent, ctx: &mut Context<Self>) {
        let run = &mut self.folders[ev.folder];
        match ev.progress {
            Progress::Connecting => run.state = MailboxState::Connecting,
            Progress::Syncing => run.state = MailboxState::Syncing,
            Progress::Idle => {
                run.state = MailboxState::Idle;
                run.failures = 0;
                self.view.last_error = None;
                self.view.last_synced_at = Some(self.shared.clock.now());
            }
            Progress::Ended(Ok(())) => run.state = MailboxState::Stopped,
            Progress::Ended(Err(e)) => {
                run.failures += 1;
                telemetry::mailbox_error(e.code());
                let report = e.report();
                tracing::warn!(mailbox = %self.cfg.id, folder = %self.cfg.folders[ev.folder], %report, "session failed");
                self.view.last_error = Some(report);
                if *self.shared.shutdown.borrow() {
                    run.state = MailboxState::Stopped;
                } else if e.disposition() == Disposition::NeedsAction {
                    run.state = MailboxState::NeedsReauth;
                } else {
                    let delay = if run.failures >= self.cfg.max_tries {
                        run.state = MailboxState::CoolOff;
                        run.failures = 0;
                        self.cfg.cool_off
                    } else {
                        run.state = MailboxState::Backoff;
                        self.backoff.delay(run.failures, &mut thread_rng())
                    };
                    self.view.next_attempt_at = chrono::Duration::from_std(delay)
                        .ok()
                        .map(|d| self.shared.clock.now() + d);
                    let folder = ev.folder;
                    ctx.run_later(delay, move |a, ctx| a.start_folder(folder, ctx));
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
