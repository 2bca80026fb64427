//! The bounded edges between stages and the messages that travel on them.
//!
//! An [`Edge`] is an actor address plus a fixed number of slots, one per
//! message. A producer takes slots before it hands messages over and they
//! travel with the messages until the next stage has passed them on (or
//! committed them). When the slots run out the producer waits: a full
//! pipeline slows the mailboxes down and never drops mail. Messages move in
//! small groups (at most [`HANDOFF_MESSAGES`]): each hand-over between
//! threads wakes the receiving one, and in a VM every wake-up costs
//! microseconds. The slots are the bound, not actix's mailbox (a
//! `SyncArbiter` forwards into an unbounded queue), which is why delivery
//! after taking a slot may use `do_send`.

use std::sync::Arc;

use actix::{Actor, Addr, Handler, Message, Recipient};
use bytes::Bytes;
use metrics::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    config::{MailboxConfig, PipelineConfig},
    store::Source,
    telemetry,
};

/// Most messages handed from one stage to the next at once (burst: 32
/// rather than 16 took 8 % less CPU per message, every hand-over being a
/// wake-up of the receiving thread).
pub const HANDOFF_MESSAGES: usize = 32;
/// Most bytes of messages a mailbox gathers before handing them on (a
/// larger message goes alone). Gathered messages hold their parse slots, so
/// the memory bound counts them there.
pub const HANDOFF_BYTES: usize = 128 << 10;

/// How many messages one hand-over may carry under `p`: no more than
/// either edge has slots.
pub fn handoff_limit(p: &PipelineConfig) -> usize {
    HANDOFF_MESSAGES.min(p.parse_queue).min(p.write_queue)
}

/// Taken slots of an edge (one per message); dropping them frees them.
#[derive(Debug)]
pub struct Slot {
    permit: OwnedSemaphorePermit,
    depth_gauge: Gauge,
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The permits are released after this body; count them as free already.
        let taken = self.capacity - self.semaphore.available_permits();
        let depth = taken - self.permit.num_permits();
        self.depth_gauge.set(depth as f64);
    }
}

impl Slot {
    /// How many slots these are.
    pub fn count(&self) -> usize {
        self.permit.num_permits()
    }

    /// Splits `n` of these slots off (`None` if there are fewer).
    pub fn split(&mut self, n: usize) -> Option<Slot> {
        let permit = self.permit.split(n)?;
        Some(Slot {
            permit,
            depth_gauge: self.depth_gauge.clone(),
            semaphore: self.semaphore.clone(),
            capacity: self.capacity,
        })
    }
}

/// A bounded edge into actor `A`.
pub struct Edge<A: Actor> {
    addr: Addr<A>,
    semaphore: Arc<Semaphore>,
    capacity: usize,
    /// The edge's depth gauge, looked up once (not per message).
    depth_gauge: Gauge,
}

impl<A: Actor> Clone for Edge<A> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            semaphore: self.semaphore.clone(),
            capacity: self.capacity,
            depth_gauge: self.depth_gauge.clone(),
        }
    }
}

impl<A: Actor> Edge<A> {
    /// An edge named `name` (a metric label) with `capacity` slots.
    pub fn new(name: &'static str, addr: Addr<A>, capacity: usize) -> Self {
        telemetry::queue_capacity(name, capacity);
        Self {
            addr,
            semaphore: Arc::new(Semaphore::new(capacity)),
            capacity,
            depth_gauge: telemetry::queue_depth_gauge(name),
        }
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        self.depth_gauge.set(self.depth() as f64);
        Slot {
            permit,
            depth_gauge: self.depth_gauge.clone(),
            semaphore: self.semaphore.clone(),
            capacity: self.capacity,
        }
    }

    /// Messages currently on the edge (taken slots).
    pub fn depth(&self) -> usize {
        self.capacity - self.semaphore.available_permits()
    }

    /// Whether every slot is free: nothing is in flight on this edge.
    pub fn is_empty(&self) -> bool {
        self.depth() == 0
    }

    /// Waits until `n` slots are free (`n` ≤ the capacity) and takes them.
    pub async fn take(&self, n: usize) -> Slot {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        match self.semaphore.clone().acquire_many_owned(n).await {
            Ok(permit) => self.slot(permit),
            Err(_) => unreachable!("an edge's semaphore is never closed"),
        }
    }

    /// Delivers `make(slots)`: messages whose slots are taken already.
    pub fn deliver<M>(&self, slots: Slot, make: impl FnOnce(Slot) -> M)
    where
        M: Message<Result = ()> + Send + 'static,
        A: Handler<M>,
        A::Context: actix::dev::ToEnvelope<A, M>,
    {
        self.addr.do_send(make(slots));
    }

    /// Blocks the calling thread (a parser) until `n` slots are free
    /// (`n` ≤ the capacity), then delivers `make(slots)`.
    pub fn push_blocking<M>(&self, n: usize, make: impl FnOnce(Slot) -> M)
    where
        M: Message<Result = ()> + Send + 'static,
        A: Handler<M>,
        A::Context: actix::dev::ToEnvelope<A, M>,
    {
        let slots = futures::executor::block_on(self.take(n));
        self.deliver(slots, make);
    }
}

/// What a mailbox fetched: the raw bytes, or why they were not downloaded.
#[derive(Debug, Clone)]
pub enum Body {
    /// The full message as the server sent it.
    Raw(Bytes),
    /// Larger than `max_message_bytes`: not downloaded.
    TooLarge {
        /// RFC822.SIZE as the server reported it; for a message that
        /// streamed in longer than announced, the most a response may take
        /// (a lower bound of its size).
        size: u32,
        /// The configured limit.
        limit: u32,
    },
    /// Not sent by the server (a NO to fetching it alone, or an answer
    /// without it, while it answered for its size): not downloaded.
    Refused {
        /// RFC822.SIZE as the server reported it.
        size: u32,
        /// The server's text with its NO; `None` when it left the message
        /// out of an answer that ended OK.
        text: Option<String>,
    },
}

/// One fetched message on its way to the writer.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Mailbox, folder, UIDVALIDITY and UID.
    pub source: Source,
    /// The UID fetched just before this one in the same session (or the
    /// checkpoint it started from): the writer advances the checkpoint
    /// along these links only once every earlier message is committed.
    pub after: u32,
    /// The message.
    pub body: Body,
    /// The mailbox's settings (filter and ticket mapping).
    pub mailbox: Arc<MailboxConfig>,
    /// Told when a commit advances this folder's checkpoint (shared by
    /// the messages of one hand-over).
    pub committed: Arc<Recipient<Committed>>,
}

/// Sent to a mailbox after a commit advanced one of its checkpoints.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Committed {
    /// Folder whose checkpoint moved.
    pub folder: String,
    /// UIDVALIDITY of the checkpoint.
    pub uidvalidity: u32,
    /// The new watermark.
    pub uid: u32,
}
