//! Storage: the records the gateway keeps and the [`Store`] trait the rest of
//! the code sees. Only `rocks.rs` knows that RocksDB is behind it, so a
//! networked backend can later implement the same trait.

mod json;
mod model;
mod rocks;
mod segments;
mod timestamp;

pub use model::{
    Address, Attachment, Change, Checkpoint, EncodedContent, Entry, Importance, MessageContent,
    NewEntry, Outcome, Rejection, Source, Ticket, SCHEMA_VERSION,
};
pub use rocks::RocksStore;

/// Everything one group commit writes, applied atomically or not at all.
#[derive(Debug, Default)]
pub struct CommitBatch {
    /// New or updated tickets.
    pub tickets: Vec<Ticket>,
    /// New conversation entries.
    pub entries: Vec<NewEntry>,
    /// Message-ID → ticket id index rows.
    pub message_ids: Vec<(String, u64)>,
    /// Per-UID outcome records (what became of each fetched message).
    pub outcomes: Vec<(Source, Outcome)>,
    /// Content-addressed raw messages: sha256 hex → bytes.
    pub blobs: Vec<(String, bytes::Bytes)>,
    /// Messages recorded as not turned into tickets.
    pub rejections: Vec<Rejection>,
    /// Change-feed entries.
    pub changes: Vec<Change>,
    /// Mailbox checkpoints advanced by this batch, keyed by (mailbox, folder).
    pub checkpoints: Vec<(String, String, Checkpoint)>,
    /// The id counters after this batch.
    pub counters: Counters,
}

/// Monotonic id counters, persisted with every batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Last ticket id handed out.
    pub ticket: u64,
    /// Last change-feed sequence handed out.
    pub change: u64,
    /// Last rejection id handed out.
    pub rejection: u64,
}

/// A failure of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("store_open_failed: cannot open the store at {path}: {reason}; check that data_dir is writable and no other mailgate uses it")]
    Open {
        /// The data directory.
        path: String,
        /// What the engine said.
        reason: String,
    },
    /// A read or write failed.
    #[error("store_io_failed: {0}; check disk space and the data_dir's health")]
    Io(String),
    /// A stored value could not be decoded.
    #[error("store_corrupt_value: {0}; the data was written by an incompatible version")]
    Corrupt(String),
}

/// The gateway's view of storage.
pub trait Store: Send + Sync + 'static {
    /// Applies the whole batch atomically and durably.
    fn commit(&self, batch: CommitBatch) -> Result<(), StoreError>;
    /// The id counters as last committed.
    fn counters(&self) -> Result<Counters, StoreError>;
    /// The most memory the store's own caches and write buffers take
    /// between commits, bytes.
    fn memory_budget(&self) -> u64;
    /// The saved checkpoint of one mailbox folder.
    fn checkpoint(&self, mailbox: &str, folder: &str) -> Result<Option<Checkpoint>, StoreError>;
    /// What became of one fetched message, if it was committed.
    fn outcome(&self, source: &Source) -> Result<Option<Outcome>, StoreError>;
    /// The highest UID with a committed outcome in one folder at one
    /// UIDVALIDITY.
    fn highest_outcome_uid(
        &self,
        mailbox: &str,
        folder: &str,
        uidvalidity: u32,
    ) -> Result<Option<u32>, StoreError>;
    /// The ticket a Message-ID belongs to.
    fn ticket_for_message_id(&self, message_id: &str) -> Result<Option<u64>, StoreError>;
    /// One ticket.
    fn ticket(&self, id: u64) -> Result<Option<Ticket>, StoreError>;
    /// A ticket's conversation, oldest first.
    fn entries(&self, ticket: u64) -> Result<Vec<Entry>, StoreError>;
    /// Change-feed entries after `after`, optionally only one mailbox's.
    fn changes(
        &self,
        after: u64,
        limit: usize,
        mailbox: Option<&str>,
    ) -> Result<Vec<Change>, StoreError>;
    /// Rejections with an id above `after`.
    fn rejections(&self, after: u64, limit: usize) -> Result<Vec<Rejection>, StoreError>;
    /// A raw message by its sha256.
    fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;
}
