//! The records kept in the store. Every record carries the schema version it
//! was written with (`v`), so later versions can read or migrate old data.
//! v2: entry contents and raw messages in segment files (v1 kept them in
//! RocksDB; v1 records are still read).

use std::sync::Arc;

use bytes::Bytes;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version written into every record.
pub const SCHEMA_VERSION: u32 = 2;

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// Where a message came from: the identity that makes a replay idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// Mailbox id (shared: every message of a mailbox carries it).
    pub mailbox: Arc<str>,
    /// Folder name (shared like the mailbox id).
    pub folder: Arc<str>,
    /// UIDVALIDITY of the folder when the message was fetched.
    pub uidvalidity: u32,
    /// The message's UID.
    pub uid: u32,
}

/// A mailbox folder's progress: every UID up to `uid` is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// UIDVALIDITY the watermark belongs to.
    pub uidvalidity: u32,
    /// Highest UID below which every message is committed.
    pub uid: u32,
}

/// What became of one fetched message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// It is entry `seq` of ticket `ticket`.
    Entry {
        /// Ticket id.
        ticket: u64,
        /// Entry sequence within the ticket.
        seq: u32,
    },
    /// Its Message-ID was already known: nothing new was written.
    Duplicate {
        /// The ticket the earlier copy belongs to.
        ticket: u64,
    },
    /// It was recorded as a rejection.
    Rejected {
        /// Rejection id.
        rejection: u64,
    },
}

/// A mail address with its display name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Display name, decoded.
    pub name: Option<String>,
    /// The address itself, when there is one.
    pub address: Option<String>,
}

/// Importance as the sender marked it (Importance / X-Priority headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Importance {
    /// Marked low.
    Low,
    /// Not marked.
    #[default]
    Normal,
    /// Marked high or urgent.
    High,
}

/// Attachment metadata; the bytes stay in the raw message blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name, decoded (RFC 2231 / encoded words).
    pub name: Option<String>,
    /// MIME type.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
}

/// What a message says, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageContent {
    /// Message-ID without angle brackets (synthesised from the content when missing).
    pub message_id: String,
    /// Subject, decoded.
    pub subject: String,
    /// Sender.
    pub from: Address,
    /// To recipients.
    pub to: Vec<Address>,
    /// Cc recipients.
    pub cc: Vec<Address>,
    /// Date header, when present and valid.
    #[serde(serialize_with = "super::timestamp::serialize_opt")]
    pub date: Option<DateTime<Utc>>,
    /// Plain-text body (converted from HTML when only HTML exists).
    pub text_body: Option<String>,
    /// HTML body, when present.
    pub html_body: Option<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// Sender-marked importance.
    pub importance: Importance,
    /// sha256 of the raw message in the blob store.
    pub raw_sha256: String,
    /// Raw size in bytes.
    pub size: u64,
}

/// A helpdesk ticket: one conversation started by one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Ticket id.
    pub id: u64,
    /// Mailbox the first message arrived in.
    pub mailbox: String,
    /// Subject of the first message.
    pub subject: String,
    /// Sender of the first message.
    pub requester: Address,
    /// Priority from the mailbox's ticket mapping (raised by high importance).
    pub priority: String,
    /// Group from the mapping.
    pub group: Option<String>,
    /// Type from the mapping.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Tags from the mapping.
    pub tags: Vec<String>,
    /// When the ticket was created.
    #[serde(serialize_with = "super::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    /// When the last entry was added.
    #[serde(serialize_with = "super::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Number of conversation entries.
    pub entries: u32,
}

/// One message of a ticket's conversation. `C` is how its content is
/// held: decoded when read, already encoded when committed ([`NewEntry`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<C = MessageContent> {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Ticket id.
    pub ticket: u64,
    /// Position in the conversation, from 0.
    pub seq: u32,
    /// Where the message was fetched from.
    pub source: Source,
    /// The message itself.
    pub content: C,
    /// When it was committed.
    #[serde(serialize_with = "super::timestamp::serialize")]
    pub received_at: DateTime<Utc>,
}

/// A message's content encoded once, as an [`Entry`] stores it: by the
/// parser threads, in parallel, so the writer's serial commit only copies
/// it. Cloning shares it; making it neither copies nor re-validates the
/// encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedContent(Bytes);

impl EncodedContent {
    /// Encodes `content`.
    pub fn of(content: &MessageContent) -> Self {
        Self(Bytes::from(super::json::content(content)))
    }

    /// The encoded JSON (UTF-8).
    pub fn json(&self) -> &[u8] {
        &self.0
    }
}

/// A new [`Entry`] as the writer commits it: its content already encoded.
pub type NewEntry = Entry<EncodedContent>;

/// A message that did not become a ticket, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Schema version.
    #[serde(default = "schema_version")]
    pub v: u32,
    /// Rejection id.
    pub id: u64,
    /// Where the message was fetched from.
    pub source: Source,
    /// Stable reason code, e.g. `message_too_large`.
    pub code: String,
    /// Operator-facing explanation.
    pub reason: String,
    /// Message-ID, when known.
    pub message_id: Option<String>,
    /// Sender address, when known.
    pub from: Option<String>,
    /// Subject, when known.
    pub subject: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the raw message, when it was downloaded.
    pub raw_sha256: Option<String>,
    /// When it was recorded.
    #[serde(serialize_with = "super::timestamp::serialize")]
    pub at: DateTime<Utc>,
}

/// One change-feed entry: a ticket was created or got a new entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Feed sequence (the paging cursor).
    pub seq: u64,
    /// The ticket that changed.
    pub ticket: u64,
    /// Its mailbox, for filtering without reading the ticket.
    pub mailbox: String,
}
