//! Configuration: one TOML file, parsed strictly (`deny_unknown_fields`) into
//! the raw tables below, then validated into [`Config`] by [`validate`].
//!
//! The raw tables keep every mailbox setting optional so that `[defaults]` and
//! `[[mailbox]]` share one shape: a mailbox inherits each key it does not set.

mod secret;
mod validate;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use secret::Secret;
pub use validate::{
    AuthMethod, Config, ConfigError, ConfigErrors, GatewayConfig, MailboxConfig, MailboxStatus,
    OAuth2Refresh, PipelineConfig, Security, TicketMapping,
};

/// The file as written, before defaults are applied and values checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[gateway]`: process-wide settings.
    #[serde(default)]
    pub gateway: RawGateway,
    /// `[pipeline]`: stage sizes and edge capacities.
    #[serde(default)]
    pub pipeline: RawPipeline,
    /// `[defaults]`: values every mailbox inherits unless it sets its own.
    #[serde(default)]
    pub defaults: RawMailbox,
    /// `[[mailbox]]`: one entry per connected mailbox.
    #[serde(default)]
    pub mailbox: Vec<RawMailbox>,
}

/// `[gateway]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Directory holding the RocksDB store.
    pub data_dir: Option<PathBuf>,
    /// Address of the HTTP API and /metrics.
    pub listen: Option<String>,
    /// Seconds a graceful shutdown may take before the process exits anyway.
    pub shutdown_grace_seconds: Option<i64>,
    /// Threads that run mailbox sessions (0 = one per core).
    pub io_threads: Option<i64>,
    /// Connect-and-login attempts in flight per IMAP host.
    pub max_concurrent_logins_per_host: Option<i64>,
    /// Connect-and-login attempts started per second per IMAP host.
    pub logins_per_second_per_host: Option<i64>,
}

/// `[pipeline]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Parser threads.
    pub parsers: Option<i64>,
    /// Capacity of the mailbox → parser edge (messages).
    pub parse_queue: Option<i64>,
    /// Capacity of the parser → writer edge (messages).
    pub write_queue: Option<i64>,
    /// Most messages committed in one RocksDB write batch.
    pub max_batch: Option<i64>,
    /// Messages larger than this are not downloaded but recorded as rejected.
    pub max_message_bytes: Option<i64>,
    /// UIDs asked for in one UID FETCH.
    pub fetch_batch: Option<i64>,
    /// Fault injection for load tests: a pause before every commit.
    pub commit_delay_ms: Option<i64>,
    /// Nice value of the ticket writer's thread.
    pub writer_nice: Option<i64>,
}

/// A `[[mailbox]]` entry (or `[defaults]`) as written: every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    pub id: Option<String>,
    pub status: Option<String>,
    pub protocol: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub security: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub auth: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub oauth2_token_url: Option<String>,
    pub oauth2_client_id: Option<String>,
    pub oauth2_client_secret: Option<String>,
    pub oauth2_client_secret_env: Option<String>,
    pub oauth2_client_secret_file: Option<PathBuf>,
    pub oauth2_scope: Option<String>,
    pub reply_to: Option<String>,
    pub aliases: Option<Vec<String>>,
    pub max_tries: Option<i64>,
    pub cool_off_minutes: Option<i64>,
    pub backoff_initial_ms: Option<i64>,
    pub backoff_max_ms: Option<i64>,
    pub skip_times: Option<Vec<String>>,
    pub timezone: Option<String>,
    pub connection_timeout_ms: Option<i64>,
    pub command_timeout_seconds: Option<i64>,
    pub idle_refresh_minutes: Option<i64>,
    pub poll_interval_seconds: Option<i64>,
    pub idle_keepalive_seconds: Option<i64>,
    pub sync_start_date: Option<toml::Value>,
    pub folders: Option<Vec<String>>,
    pub allowed_domains: Option<Vec<String>>,
    pub exclude_auto_replies: Option<bool>,
    pub ticket: Option<RawTicket>,
}

/// `[mailbox.ticket]` as written: how messages of this mailbox map to tickets.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTicket {
    pub group: Option<String>,
    pub priority: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::single(
            path.display().to_string(),
            format!("cannot read the file: {e}; check the path and its permissions"),
        )
    })?;
    from_toml(&text, path.parent().unwrap_or(Path::new(".")))
}

/// Parses and validates configuration text; relative paths resolve against `base`.
pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                format!("line {line}")
            })
            .unwrap_or_else(|| "file".to_owned());
        ConfigErrors::single(at, e.message().to_owned())
    })?;
    validate::validate(raw, base)
}

/// Mailbox `m` (support@acme.test on host h) with `extra` keys, for tests.
#[cfg(test)]
pub(crate) fn test_mailbox(extra: &str) -> MailboxConfig {
    let text = format!(
        "[[mailbox]]\nid = \"m\"\nhost = \"h\"\nusername = \"support@acme.test\"\npassword = \"p\"\n{extra}"
    );
    from_toml(&text, Path::new("/tmp"))
        .unwrap()
        .mailboxes
        .remove(0)
}
