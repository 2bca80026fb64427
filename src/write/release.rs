//! Frees committed batches off the writer's thread. Dropping a batch's jobs
//! (raw and encoded bytes allocated on the mailbox and parser threads, the
//! parsed heads) took the writer ≈ 2 µs per message in the burst, on the
//! serial path every message waits for. A thread of its own drops them, then
//! frees their edge slots, so the slots still bound the memory the jobs hold,
//! and hands the emptied vector back for a later batch.

use std::{
    sync::mpsc::{channel, Receiver, Sender},
    thread,
};

use super::WriteJob;
use crate::pipeline::Slot;

/// A committed batch on its way to be freed.
struct Retired {
    jobs: Vec<WriteJob>,
    slots: Vec<Slot>,
}

/// The writer's end of the release thread.
pub struct Release {
    retire: Sender<Retired>,
    recycled: Receiver<Vec<WriteJob>>,
}

impl Release {
    /// Starts the release thread; it ends when this is dropped.
    pub fn spawn() -> Self {
        let (retire, retired) = channel::<Retired>();
        let (recycle, recycled) = channel();
        thread::Builder::new()
            .name("mailgate-release".into())
            .spawn(move || {
                for Retired { mut jobs, slots } in retired {
                    jobs.clear();
                    drop(slots);
                    // The writer may be gone at shutdown; the vector goes with it.
                    let _ = recycle.send(jobs);
                }
            })
            // As actix's Arbiter::new does: no thread for this, no gateway.
            .expect("the OS refused a thread for the writer's release");
        Self { retire, recycled }
    }

    /// Hands `jobs` and their `slots` (a committed batch) to the release
    /// thread and returns an empty vector for the next batch, reusing an
    /// earlier batch's when one has come back.
    pub fn retire(&self, jobs: Vec<WriteJob>, slots: Vec<Slot>) -> Vec<WriteJob> {
        let capacity = jobs.capacity();
        // Should the thread be gone, the batch comes back in the error and
        // is freed here.
        let _ = self.retire.send(Retired { jobs, slots });
        self.recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix::{Actor, Context};

    use super::*;
    use crate::pipeline::Edge;

    struct Sink;

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    #[actix::test]
    async fn a_retired_batch_frees_its_slots() {
        let edge = Edge::new("release_test", Sink.start(), 4);
        let release = Release::spawn();
        let (first, second) = (edge.take(3).await, edge.take(1).await);
        assert_eq!(edge.depth(), 4);
        let next = release.retire(Vec::with_capacity(8), vec![first, second]);
        assert!(
            next.is_empty() && next.capacity() >= 8,
            "a vector for the next batch"
        );
        // Every slot comes back, from the release thread: taking all of them
        // again completes only then.
        let all = tokio::time::timeout(Duration::from_secs(10), edge.take(4))
            .await
            .expect("the release thread frees the retired slots");
        assert_eq!(all.count(), 4);
    }
}
