//! Turns a [`RawConfig`] into a checked [`Config`], collecting *every* error
//! with its key path, the offending value and the fix, instead of stopping at
//! the first one.

use std::{
    collections::HashSet,
    fmt,
    net::SocketAddr,
    ops::RangeInclusive,
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::{RawConfig, RawMailbox, RawTicket, Secret};
use crate::mailbox::admission::{DEFAULT_MAX_CONCURRENT, DEFAULT_PER_SECOND};
use crate::mailbox::schedule::{
    Backoff, SkipWindow, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_IDLE_REFRESH_MINUTES,
};

/// Default `[gateway].listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8025";
/// Default `[pipeline].max_message_bytes`: 25 MiB, the common provider limit.
pub const DEFAULT_MAX_MESSAGE_BYTES: i64 = 25 * 1024 * 1024;
/// The writer's thread runs ahead of the others: it is the one serial stage.
pub const DEFAULT_WRITER_NICE: i64 = -10;

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Process-wide settings.
    pub gateway: GatewayConfig,
    /// Stage sizes and edge capacities.
    pub pipeline: PipelineConfig,
    /// Every configured mailbox, in file order.
    pub mailboxes: Vec<MailboxConfig>,
}

/// `[gateway]`, validated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Directory of the RocksDB store.
    pub data_dir: PathBuf,
    /// HTTP API and /metrics address.
    pub listen: SocketAddr,
    /// Deadline for a graceful shutdown.
    pub shutdown_grace: Duration,
    /// Threads that run mailbox sessions.
    pub io_threads: usize,
    /// Connect-and-login attempts in flight per IMAP host.
    pub max_concurrent_logins_per_host: usize,
    /// Connect-and-login attempts started per second per IMAP host.
    pub logins_per_second_per_host: u32,
}

/// `[pipeline]`, validated.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Parser threads.
    pub parsers: usize,
    /// Capacity of the mailbox → parser edge.
    pub parse_queue: usize,
    /// Capacity of the parser → writer edge.
    pub write_queue: usize,
    /// Messages that start a group commit (one more hand-over may ride along).
    pub max_batch: usize,
    /// Larger messages are recorded as rejected without being downloaded.
    pub max_message_bytes: u32,
    /// UIDs per UID FETCH command.
    pub fetch_batch: usize,
    /// A pause before every commit (load tests' slow disk; zero otherwise).
    pub commit_delay: Duration,
    /// Nice value the ticket writer's thread asks for (below 0 needs
    /// CAP_SYS_NICE; without it the thread keeps the process's).
    pub writer_nice: i32,
}

/// Whether a mailbox connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxStatus {
    /// Configured but never connects (test-connection still works).
    Draft,
    /// Connects and turns mail into tickets.
    Active,
    /// Temporarily off; keeps its checkpoint.
    Paused,
}

/// How the IMAP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// TLS from the first byte (port 993).
    Tls,
    /// Plain greeting, then STARTTLS before login (port 143).
    Starttls,
    /// No encryption; only sensible on loopback or in tests.
    None,
}

/// How the gateway authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// LOGIN with username and password.
    Password,
    /// SASL XOAUTH2 with the secret as the bearer access token.
    Oauth2,
}

/// The token endpoint and client that turn a refresh token into access tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2Refresh {
    /// Token endpoint (RFC 6749 §3.2).
    pub token_url: String,
    /// The application's client id.
    pub client_id: String,
    /// The client secret, for confidential clients.
    pub client_secret: Option<Secret>,
    /// Scope to ask for, e.g. "https://outlook.office365.com/IMAP.AccessAsUser.All offline_access".
    pub scope: Option<String>,
}

/// `[mailbox.ticket]`: fixed fields every ticket of a mailbox gets.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TicketMapping {
    /// Helpdesk group the ticket is assigned to.
    pub group: Option<String>,
    /// Initial priority: low, medium, high or urgent.
    pub priority: String,
    /// Ticket type (free text, e.g. "incident").
    pub kind: Option<String>,
    /// Tags added to every ticket.
    pub tags: Vec<String>,
}

/// One mailbox, validated, with its defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxConfig {
    /// Stable identifier; keys checkpoints and API paths.
    pub id: String,
    /// Draft, active or paused.
    pub status: MailboxStatus,
    /// IMAP server name.
    pub host: String,
    /// IMAP server port.
    pub port: u16,
    /// TLS, STARTTLS or plain.
    pub security: Security,
    /// Extra CA certificates (PEM) trusted for this server.
    pub ca_file: Option<PathBuf>,
    /// Login name.
    pub username: String,
    /// Password or OAuth 2 bearer.
    pub auth: AuthMethod,
    /// The password; with `auth = "oauth2"`, the access token, or the
    /// refresh token when `oauth2` is set.
    pub secret: Secret,
    /// Where OAuth 2 access tokens are refreshed, if they are.
    pub oauth2: Option<OAuth2Refresh>,
    /// Address replies go out from; also used for loop detection.
    pub reply_to: Option<String>,
    /// Other addresses of this mailbox (loop detection).
    pub aliases: Vec<String>,
    /// Consecutive failed connection attempts before cooling off.
    pub max_tries: u32,
    /// Pause after `max_tries` failures.
    pub cool_off: Duration,
    /// Delays between tries within a round.
    pub backoff: Backoff,
    /// Windows in which the mailbox never connects.
    pub skip_times: Vec<SkipWindow>,
    /// Zone the skip windows are read in.
    pub timezone: Tz,
    /// Bound on TCP connect, TLS handshake, greeting and login.
    pub connection_timeout: Duration,
    /// Bound on waiting for a command's response.
    pub command_timeout: Duration,
    /// How often IDLE is re-issued.
    pub idle_refresh: Duration,
    /// A socket silent this long during IDLE is tested with DONE.
    pub idle_keepalive: Duration,
    /// How often a server without IDLE is polled.
    pub poll_interval: Duration,
    /// Mail with an internal date before this day is never imported.
    pub sync_start_date: Option<NaiveDate>,
    /// Folders watched, INBOX by default.
    pub folders: Vec<String>,
    /// Sender domains accepted (empty = all).
    pub allowed_domains: Vec<String>,
    /// Record auto-replies as rejections instead of tickets.
    pub exclude_auto_replies: bool,
    /// Fixed ticket fields.
    pub ticket: TicketMapping,
}

impl MailboxConfig {
    /// Whether `address` (lower-case) is one this mailbox sends or receives
    /// as: an alias, a reply-to address or the username. Allocates nothing
    /// for ASCII addresses (it runs for every message).
    pub fn is_own_address(&self, address: &str) -> bool {
        let same = |own: &str| match own.is_ascii() {
            true => own.eq_ignore_ascii_case(address),
            false => own.to_lowercase() == address,
        };
        let username = Some(self.username.as_str()).filter(|u| u.contains('@'));
        self.aliases
            .iter()
            .chain(&self.reply_to)
            .map(String::as_str)
            .chain(username)
            .any(same)
    }
}

/// One problem in the configuration: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `mailbox[3].port`.
    pub path: String,
    /// The value and the fix.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone, Default, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A list holding one error.
    pub fn single(path: String, message: String) -> Self {
        Self(vec![ConfigError { path, message }])
    }

    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

pub(super) fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigErrors> {
    let mut errs = ConfigErrors::default();
    let g = raw.gateway;
    let listen_text = g.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen = listen_text.parse().unwrap_or_else(|_| {
        errs.push(
            "gateway.listen",
            format!("{listen_text:?} is not an address; write it as \"127.0.0.1:8025\""),
        );
        SocketAddr::from(([127, 0, 0, 1], 8025))
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let io_threads = int(&mut errs, "gateway.io_threads", g.io_threads, 0, 0..=256);
    let gateway = GatewayConfig {
        data_dir: base.join(g.data_dir.unwrap_or_else(|| PathBuf::from("data"))),
        listen,
        shutdown_grace: Duration::from_secs(int(
            &mut errs,
            "gateway.shutdown_grace_seconds",
            g.shutdown_grace_seconds,
            20,
            1..=3600,
        )),
        io_threads: if io_threads == 0 {
            cores
        } else {
            io_threads as usize
        },
        max_concurrent_logins_per_host: int(
            &mut errs,
            "gateway.max_concurrent_logins_per_host",
            g.max_concurrent_logins_per_host,
            DEFAULT_MAX_CONCURRENT as i64,
            1..=10_000,
        ) as usize,
        logins_per_second_per_host: int(
            &mut errs,
            "gateway.logins_per_second_per_host",
            g.logins_per_second_per_host,
            i64::from(DEFAULT_PER_SECOND),
            1..=100_000,
        ) as u32,
    };

    let p = raw.pipeline;
    let pipeline = PipelineConfig {
        parsers: int(
            &mut errs,
            "pipeline.parsers",
            p.parsers,
            cores as i64,
            1..=256,
        ) as usize,
        parse_queue: int(
            &mut errs,
            "pipeline.parse_queue",
            p.parse_queue,
            256,
            1..=1 << 20,
        ) as usize,
        write_queue: int(
            &mut errs,
            "pipeline.write_queue",
            p.write_queue,
            1024,
            1..=1 << 20,
        ) as usize,
        max_batch: int(
            &mut errs,
            "pipeline.max_batch",
            p.max_batch,
            512,
            1..=100_000,
        ) as usize,
        max_message_bytes: int(
            &mut errs,
            "pipeline.max_message_bytes",
            p.max_message_bytes,
            DEFAULT_MAX_MESSAGE_BYTES,
            1024..=u32::MAX as i64,
        ) as u32,
        fetch_batch: int(
            &mut errs,
            "pipeline.fetch_batch",
            p.fetch_batch,
            200,
            1..=10_000,
        ) as usize,
        commit_delay: Duration::from_millis(int(
            &mut errs,
            "pipeline.commit_delay_ms",
            p.commit_delay_ms,
            0,
            0..=60_000,
        )),
        writer_nice: integer(
            &mut errs,
            "pipeline.writer_nice",
            p.writer_nice,
            DEFAULT_WRITER_NICE,
            -20..=19,
        ) as i32,
    };

    if raw.defaults.id.is_some() {
        errs.push(
            "defaults.id",
            "an id belongs to one mailbox; move it into a [[mailbox]] entry",
        );
    }
    let mut seen = HashSet::new();
    let mut mailboxes = Vec::new();
    for (i, m) in raw.mailbox.into_iter().enumerate() {
        let at = format!("mailbox[{i}]");
        if let Some(id) = &m.id {
            if !seen.insert(id.clone()) {
                errs.push(
                    format!("{at}.id"),
                    format!("{id:?} is used by an earlier mailbox; ids must be unique"),
                );
            }
        }
        mailboxes.extend(mailbox(&mut errs, &at, m, &raw.defaults, base));
    }

    if errs.0.is_empty() {
        Ok(Config {
            gateway,
            pipeline,
            mailboxes,
        })
    } else {
        Err(errs)
    }
}

/// Reads a key whose range is not negative (counts, durations): see
/// [`integer`].
fn int(
    errs: &mut ConfigErrors,
    path: &str,
    value: Option<i64>,
    default: i64,
    range: RangeInclusive<i64>,
) -> u64 {
    debug_assert!(
        *range.start() >= 0,
        "{path}: use `integer` for a signed range"
    );
    integer(errs, path, value, default, range) as u64
}

/// Reads an integer key with a default, reporting an out-of-range value.
fn integer(
    errs: &mut ConfigErrors,
    path: &str,
    value: Option<i64>,
    default: i64,
    range: RangeInclusive<i64>,
) -> i64 {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        v
    } else {
        errs.push(
            path,
            format!(
                "{v} is out of range; use a value from {} to {}",
                range.start(),
                range.end()
            ),
        );
        default.max(*range.start())
    }
}

/// Reads a key that must be one of a few words.
fn choice<T: Copy>(
    errs: &mut ConfigErrors,
    path: String,
    value: Option<&str>,
    default: T,
    options: &[(&str, T)],
) -> T {
    let Some(v) = value else { return default };
    match options.iter().find(|(name, _)| *name == v) {
        Some((_, t)) => *t,
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            errs.push(
                path,
                format!("{v:?} is not allowed; use one of {}", names.join(", ")),
            );
            default
        }
    }
}

fn mailbox(
    errs: &mut ConfigErrors,
    at: &str,
    m: RawMailbox,
    d: &RawMailbox,
    base: &Path,
) -> Option<MailboxConfig> {
    let key = |k: &str| format!("{at}.{k}");
    let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
    let required = |errs: &mut ConfigErrors, k: &str, v: Option<String>, hint: &str| {
        v.filter(|s| !s.trim().is_empty()).or_else(|| {
            errs.push(key(k), format!("is missing; {hint}"));
            None
        })
    };

    let id = required(
        errs,
        "id",
        m.id.clone(),
        "give the mailbox a unique id such as \"support\"",
    );
    if let Some(id) = &id {
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            errs.push(
                key("id"),
                format!("{id:?} has characters other than letters, digits and -_.@; use those only (it appears in URLs)"),
            );
        }
    }
    let status = choice(
        errs,
        key("status"),
        pick(&m.status, &d.status).as_deref(),
        MailboxStatus::Active,
        &[
            ("draft", MailboxStatus::Draft),
            ("active", MailboxStatus::Active),
            ("paused", MailboxStatus::Paused),
        ],
    );
    if let Some(p) = pick(&m.protocol, &d.protocol) {
        if p != "imap" {
            errs.push(
                key("protocol"),
                format!("{p:?} is not supported; use \"imap\""),
            );
        }
    }
    let host = required(
        errs,
        "host",
        pick(&m.host, &d.host),
        "set the IMAP server name, e.g. \"outlook.office365.com\"",
    );
    let security = choice(
        errs,
        key("security"),
        pick(&m.security, &d.security).as_deref(),
        Security::Tls,
        &[
            ("tls", Security::Tls),
            ("starttls", Security::Starttls),
            ("none", Security::None),
        ],
    );
    let default_port = if security == Security::Tls { 993 } else { 143 };
    let port = int(
        errs,
        &key("port"),
        m.port.or(d.port),
        default_port,
        1..=65535,
    );
    if let Some(p) = m.port.or(d.port).filter(|p| !(1..=65535).contains(p)) {
        // `int` already reported it; keep the wording operators search for.
        errs.0.pop();
        errs.push(
            key("port"),
            format!("{p} is not a valid port (1-65535); IMAP uses 993 for tls, 143 for starttls"),
        );
    }
    let ca_file = m
        .ca_file
        .clone()
        .or_else(|| d.ca_file.clone())
        .map(|f| base.join(f));
    if let Some(f) = &ca_file {
        if !f.is_file() {
            errs.push(
                key("ca_file"),
                format!(
                    "{} does not exist; give the path of a PEM CA certificate",
                    f.display()
                ),
            );
        }
    }
    let username = required(
        errs,
        "username",
        pick(&m.username, &d.username),
        "set the login name, usually the mailbox address",
    );
    let auth = choice(
        errs,
        key("auth"),
        pick(&m.auth, &d.auth).as_deref(),
        AuthMethod::Password,
        &[
            ("password", AuthMethod::Password),
            ("oauth2", AuthMethod::Oauth2),
        ],
    );
    let secret = secret(
        errs,
        at,
        "password",
        (SecretSource::password(&m), SecretSource::password(d)),
        base,
        true,
    );
    let oauth2 = oauth2(errs, at, &m, d, base);
    if oauth2.is_some() && auth != AuthMethod::Oauth2 {
        errs.push(
            format!("{at}.oauth2_token_url"),
            "is set but auth is not \"oauth2\"; set auth = \"oauth2\" or remove the oauth2_* keys",
        );
    }

    let reply_to = pick(&m.reply_to, &d.reply_to);
    if let Some(r) = &reply_to {
        if !looks_like_address(r) {
            errs.push(
                key("reply_to"),
                format!("{r:?} is not an email address; write it as \"support@example.com\""),
            );
        }
    }
    let aliases = m
        .aliases
        .clone()
        .or_else(|| d.aliases.clone())
        .unwrap_or_default();
    for (j, a) in aliases.iter().enumerate() {
        if !looks_like_address(a) {
            errs.push(
                format!("{at}.aliases[{j}]"),
                format!("{a:?} is not an email address"),
            );
        }
    }

    let max_tries = int(
        errs,
        &key("max_tries"),
        m.max_tries.or(d.max_tries),
        5,
        1..=1000,
    ) as u32;
    let cool_off = Duration::from_secs(
        60 * int(
            errs,
            &key("cool_off_minutes"),
            m.cool_off_minutes.or(d.cool_off_minutes),
            15,
            1..=10_080,
        ),
    );
    let initial = int(
        errs,
        &key("backoff_initial_ms"),
        m.backoff_initial_ms.or(d.backoff_initial_ms),
        DEFAULT_BACKOFF_INITIAL.as_millis() as i64,
        10..=3_600_000,
    );
    let max = int(
        errs,
        &key("backoff_max_ms"),
        m.backoff_max_ms.or(d.backoff_max_ms),
        DEFAULT_BACKOFF_MAX.as_millis() as i64,
        10..=86_400_000,
    );
    let backoff = Backoff::new(Duration::from_millis(initial), Duration::from_millis(max))
        .unwrap_or_else(|| {
            errs.push(
                key("backoff_initial_ms"),
                format!("{initial} is above backoff_max_ms ({max}); make the first delay the shorter one"),
            );
            Backoff::default()
        });
    let skip_texts = m
        .skip_times
        .clone()
        .or_else(|| d.skip_times.clone())
        .unwrap_or_default();
    let mut skip_times = Vec::new();
    for (j, s) in skip_texts.iter().enumerate() {
        match s.parse::<SkipWindow>() {
            Ok(w) => skip_times.push(w),
            Err(why) => errs.push(format!("{at}.skip_times[{j}]"), format!("{s:?} {why}")),
        }
    }
    let tz_text = pick(&m.timezone, &d.timezone).unwrap_or_else(|| "UTC".to_owned());
    let timezone = tz_text.parse::<Tz>().unwrap_or_else(|_| {
        errs.push(
            key("timezone"),
            format!("{tz_text:?} is not a time zone; use an IANA name such as \"Asia/Seoul\" or \"UTC\""),
        );
        Tz::UTC
    });
    let connection_timeout = Duration::from_millis(int(
        errs,
        &key("connection_timeout_ms"),
        m.connection_timeout_ms.or(d.connection_timeout_ms),
        10_000,
        100..=300_000,
    ));
    let command_timeout = Duration::from_secs(int(
        errs,
        &key("command_timeout_seconds"),
        m.command_timeout_seconds.or(d.command_timeout_seconds),
        120,
        1..=3600,
    ));
    let idle_refresh = Duration::from_secs(
        60 * int(
            errs,
            &key("idle_refresh_minutes"),
            m.idle_refresh_minutes.or(d.idle_refresh_minutes),
            DEFAULT_IDLE_REFRESH_MINUTES,
            1..=29,
        ),
    );
    let idle_keepalive = Duration::from_secs(int(
        errs,
        &key("idle_keepalive_seconds"),
        m.idle_keepalive_seconds.or(d.idle_keepalive_seconds),
        300,
        1..=1800,
    ));
    let poll_interval = Duration::from_secs(int(
        errs,
        &key("poll_interval_seconds"),
        m.poll_interval_seconds.or(d.poll_interval_seconds),
        60,
        1..=3600,
    ));
    let sync_start_date = match m.sync_start_date.as_ref().or(d.sync_start_date.as_ref()) {
        None => None,
        Some(v) => {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
                Ok(date) => Some(date),
                Err(_) => {
                    errs.push(
                        key("sync_start_date"),
                        format!("{text} is not a date; write it as \"2024-01-31\""),
                    );
                    None
                }
            }
        }
    };
    let folders = m
        .folders
        .clone()
        .or_else(|| d.folders.clone())
        .unwrap_or_else(|| vec!["INBOX".to_owned()]);
    if folders.is_empty() {
        errs.push(
            key("folders"),
            "is empty; list at least one folder, e.g. [\"INBOX\"]",
        );
    }
    let allowed_domains: Vec<String> = m
        .allowed_domains
        .clone()
        .or_else(|| d.allowed_domains.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.trim_start_matches('@').to_lowercase())
        .collect();
    let exclude_auto_replies = m
        .exclude_auto_replies
        .or(d.exclude_auto_replies)
        .unwrap_or(true);
    let ticket = ticket(errs, at, m.ticket.as_ref().or(d.ticket.as_ref()));

    Some(MailboxConfig {
        id: id?,
        status,
        host: host?,
        port: port as u16,
        security,
        ca_file,
        username: username?,
        auth,
        secret: secret?,
        oauth2,
        reply_to,
        aliases,
        max_tries,
        cool_off,
        backoff,
        skip_times,
        timezone,
        connection_timeout,
        command_timeout,
        idle_refresh,
        poll_interval,
        idle_keepalive,
        sync_start_date,
        folders,
        allowed_domains,
        exclude_auto_replies,
        ticket,
    })
}

/// One secret as written: inline, from an environment variable, or a file.
#[derive(Clone, Copy)]
struct SecretSource<'a> {
    inline: Option<&'a String>,
    env: Option<&'a String>,
    file: Option<&'a PathBuf>,
}

impl<'a> SecretSource<'a> {
    /// `password`, `password_env`, `password_file` of one table.
    fn password(t: &'a RawMailbox) -> Self {
        Self {
            inline: t.password.as_ref(),
            env: t.password_env.as_ref(),
            file: t.password_file.as_ref(),
        }
    }

    /// `oauth2_client_secret`, `…_env`, `…_file` of one table.
    fn client_secret(t: &'a RawMailbox) -> Self {
        Self {
            inline: t.oauth2_client_secret.as_ref(),
            env: t.oauth2_client_secret_env.as_ref(),
            file: t.oauth2_client_secret_file.as_ref(),
        }
    }

    fn count(&self) -> usize {
        [
            self.inline.is_some(),
            self.env.is_some(),
            self.file.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }
}

/// Resolves secret `name` (`name`, `name_env` or `name_file`, exactly one)
/// from the mailbox, or else from `[defaults]`.
fn secret(
    errs: &mut ConfigErrors,
    at: &str,
    name: &str,
    (own, default): (SecretSource<'_>, SecretSource<'_>),
    base: &Path,
    required: bool,
) -> Option<Secret> {
    let src = if own.count() > 0 { own } else { default };
    let key = format!("{at}.{name}");
    match src.count() {
        0 => {
            if required {
                errs.push(
                    key,
                    format!("is missing; set {name}_env (recommended), {name}_file or {name}"),
                );
            }
            None
        }
        1 => {
            if let Some(p) = src.inline {
                Some(Secret::new(p.clone()))
            } else if let Some(var) = src.env {
                match std::env::var(var) {
                    Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                    _ => {
                        errs.push(
                            format!("{key}_env"),
                            format!("environment variable {var:?} is not set or empty; export it before starting mailgate"),
                        );
                        None
                    }
                }
            } else {
                let file = base.join(src.file?);
                match std::fs::read_to_string(&file) {
                    Ok(v) => Some(Secret::new(v.trim_end_matches(['\r', '\n']).to_owned())),
                    Err(e) => {
                        errs.push(
                            format!("{key}_file"),
                            format!(
                                "cannot read {}: {e}; check the path and permissions",
                                file.display()
                            ),
                        );
                        None
                    }
                }
            }
        }
        _ => {
            errs.push(
                key,
                format!("{name}, {name}_env and {name}_file are exclusive; keep exactly one"),
            );
            None
        }
    }
}

/// `oauth2_*` keys: where and how to refresh access tokens.
fn oauth2(
    errs: &mut ConfigErrors,
    at: &str,
    m: &RawMailbox,
    d: &RawMailbox,
    base: &Path,
) -> Option<OAuth2Refresh> {
    let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
    let token_url = pick(&m.oauth2_token_url, &d.oauth2_token_url)?;
    if !(token_url.starts_with("https://") || token_url.starts_with("http://")) {
        errs.push(
            format!("{at}.oauth2_token_url"),
            format!("{token_url:?} is not an http(s) URL; use the provider's token endpoint, e.g. \"https://login.microsoftonline.com/TENANT/oauth2/v2.0/token\""),
        );
    }
    let client_id = pick(&m.oauth2_client_id, &d.oauth2_client_id).unwrap_or_else(|| {
        errs.push(
            format!("{at}.oauth2_client_id"),
            "is missing; oauth2_token_url needs the application's client id",
        );
        String::new()
    });
    let client_secret = secret(
        errs,
        at,
        "oauth2_client_secret",
        (
            SecretSource::client_secret(m),
            SecretSource::client_secret(d),
        ),
        base,
        false,
    );
    Some(OAuth2Refresh {
        token_url,
        client_id,
        client_secret,
        scope: pick(&m.oauth2_scope, &d.oauth2_scope),
    })
}

fn ticket(errs: &mut ConfigErrors, at: &str, t: Option<&RawTicket>) -> TicketMapping {
    let Some(t) = t else {
        return TicketMapping {
            priority: "medium".into(),
            ..TicketMapping::default()
        };
    };
    let priority = t.priority.clone().unwrap_or_else(|| "medium".into());
    if !["low", "medium", "high", "urgent"].contains(&priority.as_str()) {
        errs.push(
            format!("{at}.ticket.priority"),
            format!("{priority:?} is not a priority; use low, medium, high or urgent"),
        );
    }
    TicketMapping {
        group: t.group.clone(),
        priority,
        kind: t.kind.clone(),
        tags: t.tags.clone().unwrap_or_default(),
    }
}

fn looks_like_address(s: &str) -> bool {
    matches!(s.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !s.contains(' '))
}

#[cfg(test)]
mod tests {
    use super::super::from_toml;
    use std::path::Path;

    fn errors(text: &str) -> Vec<String> {
        match from_toml(text, Path::new("/tmp")) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    const GOOD: &str = r#"
        [[mailbox]]
        id = "support"
        host = "imap.example.com"
        username = "support@example.com"
        password = "pw"
    "#;

    #[test]
    fn minimal_file_is_valid_with_defaults() {
        let c = from_toml(GOOD, Path::new("/tmp")).expect("valid");
        let m = &c.mailboxes[0];
        assert_eq!(m.port, 993);
        assert_eq!(m.folders, vec!["INBOX"]);
        assert_eq!(m.idle_refresh.as_secs(), 9 * 60);
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let e = errors(
            r#"
            [[mailbox]]
            id = "a"
            host = "h"
            username = "u"
            password = "p"
            [[mailbox]]
            id = "a"
            host = "h"
            port = 70000
            security = "ssl"
            username = "u"
            password = "p"
            password_env = "X"
            skip_times = ["25:00-01:00"]
            timezone = "Mars/Base"
            "#,
        );
        let joined = e.join("\n");
        assert!(
            joined.contains("mailbox[1].port: 70000 is not a valid port (1-65535)"),
            "{joined}"
        );
        assert!(joined.contains("mailbox[1].security: \"ssl\""), "{joined}");
        assert!(
            joined.contains("mailbox[1].id: \"a\" is used by an earlier mailbox"),
            "{joined}"
        );
        assert!(
            joined.contains("mailbox[1].password: password, password_env"),
            "{joined}"
        );
        assert!(joined.contains("mailbox[1].skip_times[0]"), "{joined}");
        assert!(joined.contains("mailbox[1].timezone"), "{joined}");
        assert_eq!(e.len(), 6, "{joined}");
    }

    #[test]
    fn defaults_apply_and_can_be_overridden() {
        let c = from_toml(
            r#"
            [defaults]
            host = "imap.example.com"
            security = "starttls"
            password = "pw"
            [[mailbox]]
            id = "a"
            username = "a@example.com"
            [[mailbox]]
            id = "b"
            username = "b@example.com"
            port = 1143
            "#,
            Path::new("/tmp"),
        )
        .expect("valid");
        assert_eq!(c.mailboxes[0].port, 143);
        assert_eq!(c.mailboxes[1].port, 1143);
        assert_eq!(c.mailboxes[1].host, "imap.example.com");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = errors("[gateway]\nlisten_addr = \"x\"\n");
        assert!(e[0].contains("unknown field `listen_addr`"), "{e:?}");
        assert!(e[0].starts_with("line 2"), "{e:?}");
    }
}
