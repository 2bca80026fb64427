//! Write stage: the ticket writer groups decided messages into one RocksDB
//! write batch (tickets, entries, indexes, blobs, rejections, change feed and
//! checkpoints together) and commits it. It runs on an arbiter thread of its
//! own, so its blocking commits never stall mailbox IO; a release thread then
//! tells each mailbox how far its checkpoint moved and frees what was
//! committed.

mod batch;
mod release;
mod watermark;

use std::{sync::Arc, time::Duration, time::Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message};
use tokio::sync::watch;

pub use batch::{BatchBuilder, BatchCounts};
use release::Release;
pub use watermark::Watermark;

use crate::{
    pipeline::{Fetched, Slot},
    store::{Counters, Store},
    telemetry,
    transform::Decision,
};

/// How long a failed commit waits before it is tried again.
const COMMIT_RETRY: Duration = Duration::from_secs(1);

/// Asks for nice value `nice` for the calling thread (the writer's, so it
/// runs ahead of the parser and mailbox threads that feed it). Raising
/// priority needs CAP_SYS_NICE; without it the thread keeps its priority and
/// the returned error says so.
pub fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid and setpriority take plain integers and touch only the
    // calling thread's scheduling attributes.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A decided message.
#[derive(Debug)]
pub struct WriteJob {
    /// The message as fetched.
    pub fetched: Fetched,
    /// What to make of it.
    pub decision: Decision,
}

/// Decided messages on the parser → writer edge.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WriteJobs {
    /// The messages, in the order they were fetched.
    pub jobs: Vec<WriteJob>,
    /// Their slots on the edge, freed after the commit, once the jobs are
    /// dropped.
    pub slot: Slot,
}

/// Asks the writer to commit what it holds and stop (shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

/// The group-committing ticket writer.
pub struct Writer {
    store: Arc<dyn Store>,
    builder: BatchBuilder,
    pending: Vec<WriteJob>,
    /// The edge slots of `pending`, handed to the release thread with it
    /// once it is committed.
    pending_slots: Vec<Slot>,
    /// Frees committed batches, and then their slots.
    release: Release,
    max_batch: usize,
    flush_scheduled: bool,
    /// Counts commits, so change-feed readers can wait for the next one.
    commits: watch::Sender<u64>,
    /// A pause before each commit (load tests' slow disk).
    commit_delay: Duration,
}

impl Writer {
    /// A writer over `store` that commits as soon as `max_batch` messages
    /// are pending (a batch may take up to one hand-over more) and counts
    /// its commits in `commits`.
    pub fn new(
        store: Arc<dyn Store>,
        counters: Counters,
        max_batch: usize,
        commits: watch::Sender<u64>,
    ) -> Self {
        Self {
            builder: BatchBuilder::new(counters),
            store,
            pending: Vec::new(),
            pending_slots: Vec::new(),
            release: Release::spawn(),
            max_batch,
            flush_scheduled: false,
            commits,
            commit_delay: Duration::ZERO,
        }
    }

    /// Pauses `delay` before every commit, as a slow disk would: the
    /// slow-writer load test's fault. The writer's thread blocks, as it
    /// does on a slow fsync.
    pub fn with_commit_delay(mut self, delay: Duration) -> Self {
        self.commit_delay = delay;
        self
    }

    /// Commits everything pending. On a store error the jobs stay pending
    /// (their slots keep the edge full, so mailboxes wait) and are retried.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        if self.pending.is_empty() {
            return;
        }
        let started = Instant::now();
        if !self.commit_delay.is_zero() {
            std::thread::sleep(self.commit_delay);
        }
        let built = self.builder.build(&*self.store, &self.pending);
        let result = built
            .and_then(|(batch, acks, counts)| self.store.commit(batch).map(|_| (acks, counts)));
        match result {
            Ok((acks, counts)) => {
                self.builder.confirm();
                telemetry::committed(&counts, started.elapsed());
                let (jobs, slots) = (
                    std::mem::take(&mut self.pending),
                    std::mem::take(&mut self.pending_slots),
                );
                self.pending = self.release.retire(jobs, slots, acks);
                self.commits.send_modify(|n| *n += 1);
            }
            Err(e) => {
                self.builder.abort();
                telemetry::commit_failed();
                tracing::error!(error = %e, pending = self.pending.len(), "commit failed; retrying");
                self.flush_scheduled = true;
                ctx.run_later(COMMIT_RETRY, |w, ctx| w.flush(ctx));
            }
        }
    }
}

impl Actor for Writer {
    type Context = Context<Self>;
}

impl Handler<WriteJobs> for Writer {
    type Result = ();

    fn handle(&mut self, jobs: WriteJobs, ctx: &mut Context<Self>) {
        self.pending.extend(jobs.jobs);
        self.pending_slots.push(jobs.slot);
        if self.pending.len() >= self.max_batch {
            self.flush(ctx);
        } else if !self.flush_scheduled {
            // Runs once the jobs already queued have been taken in: the batch
            // grows with the load, and a lone message commits at once.
            self.flush_scheduled = true;
            ctx.run_later(Duration::ZERO, |w, ctx| w.flush(ctx));
        }
    }
}

impl Handler<Flush> for Writer {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush(ctx);
        if self.pending.is_empty() {
            ctx.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    fn own_nice() -> i32 {
        // SAFETY: plain integers; reads the calling thread's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn a_thread_takes_the_nice_value_it_asks_for() {
        // Lowering one's priority is always allowed; only this thread changes.
        let seen = std::thread::spawn(|| {
            set_thread_nice(7).unwrap();
            own_nice()
        })
        .join()
        .unwrap();
        assert_eq!(seen, 7);
        assert_ne!(own_nice(), 7, "the calling thread only");
    }
}
