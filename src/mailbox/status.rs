//! What each mailbox is doing, as the API and the state gauge show it. Each
//! mailbox actor publishes its view to the shared [`Board`] on every change;
//! readers never have to ask thousands of actors.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::ErrorReport;
use crate::{
    config::{MailboxConfig, MailboxStatus},
    telemetry,
};

/// Lifecycle state of a mailbox (or of one folder session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxState {
    /// Credentials or certificate rejected: waits for an operator.
    NeedsReauth,
    /// Waiting to retry after a failure.
    Backoff,
    /// Resting after `max_tries` consecutive failures.
    CoolOff,
    /// Inside a skip window: no connection.
    Skipped,
    /// Opening the connection and logging in.
    Connecting,
    /// Catching up on mail.
    Syncing,
    /// Waiting in IDLE for new mail.
    Idle,
    /// Configured as paused.
    Paused,
    /// Configured as draft: never connects.
    Draft,
    /// Shut down.
    Stopped,
}

impl MailboxState {
    /// The label used in metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeedsReauth => "needs_reauth",
            Self::Backoff => "backoff",
            Self::CoolOff => "cool_off",
            Self::Skipped => "skipped",
            Self::Connecting => "connecting",
            Self::Syncing => "syncing",
            Self::Idle => "idle",
            Self::Paused => "paused",
            Self::Draft => "draft",
            Self::Stopped => "stopped",
        }
    }
}

/// A folder's checkpoint as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckpointView {
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// Watermark UID.
    pub uid: u32,
}

/// One mailbox as `GET /api/mailboxes` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailboxView {
    /// Mailbox id.
    pub id: String,
    /// Configured status.
    pub status: MailboxStatus,
    /// Current lifecycle state (the most urgent of its folders').
    pub state: MailboxState,
    /// Server.
    pub host: String,
    /// Login name.
    pub username: String,
    /// The last failure, until the mailbox is healthy again.
    pub last_error: Option<ErrorReport>,
    /// A condition that does not stop the mailbox but wants attention
    /// (e.g. `imap_idle_unsupported`: polling instead of IDLE).
    pub notice: Option<ErrorReport>,
    /// When the next connection attempt is due, if one is scheduled.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Consecutive failed attempts.
    pub consecutive_failures: u32,
    /// Checkpoint per folder.
    pub checkpoint: BTreeMap<String, CheckpointView>,
    /// When the mailbox last caught up completely.
    pub last_synced_at: Option<DateTime<Utc>>,
}

impl MailboxView {
    /// The view of a mailbox that has not started yet.
    pub fn initial(cfg: &MailboxConfig) -> Self {
        let state = match cfg.status {
            MailboxStatus::Active => MailboxState::Connecting,
            MailboxStatus::Paused => MailboxState::Paused,
            MailboxStatus::Draft => MailboxState::Draft,
        };
        Self {
            id: cfg.id.clone(),
            status: cfg.status,
            state,
            host: cfg.host.clone(),
            username: cfg.username.clone(),
            last_error: None,
            notice: None,
            next_attempt_at: None,
            consecutive_failures: 0,
            checkpoint: BTreeMap::new(),
            last_synced_at: None,
        }
    }
}

/// Every mailbox's view, shared by the actors (writers) and the API (readers).
#[derive(Debug, Clone, Default)]
pub struct Board {
    inner: Arc<RwLock<BTreeMap<String, Arc<MailboxView>>>>,
}

impl Board {
    /// Publishes a mailbox's view, keeping the state gauge in step. The
    /// board shares the actor's copy rather than holding a second one.
    pub fn publish(&self, view: Arc<MailboxView>) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let before = map.get(&view.id).map(|v| v.state.as_str());
        let after = view.state.as_str();
        if before != Some(after) {
            telemetry::mailbox_state(before, Some(after));
        }
        map.insert(view.id.clone(), view);
    }

    /// Removes a mailbox (it left the configuration).
    pub fn remove(&self, id: &str) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = map.remove(id) {
            telemetry::mailbox_state(Some(v.state.as_str()), None);
        }
    }

    /// Sets the sync-age gauge: the longest any idle mailbox has gone since
    /// its last completed catch-up, as of `now`.
    pub fn export_sync_age(&self, now: DateTime<Utc>) {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let oldest = map
            .values()
            .filter(|v| v.state == MailboxState::Idle)
            .filter_map(|v| v.last_synced_at)
            .min();
        let age = oldest
            .and_then(|t| (now - t).to_std().ok())
            .unwrap_or_default();
        telemetry::sync_age_max(age);
    }

    /// Every mailbox, by id.
    pub fn all(&self) -> Vec<MailboxView> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.values().map(|v| (**v).clone()).collect()
    }

    /// One mailbox.
    pub fn get(&self, id: &str) -> Option<MailboxView> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(id).map(|v| (**v).clone())
    }
}
