//! One IMAP session, driven by imap-next's sans-IO client over a TCP or TLS
//! stream: connect (TLS, STARTTLS or plain), login, SELECT, UID SEARCH, UID
//! FETCH (BODY.PEEK only: the customer's mailbox is never changed), IDLE and
//! LOGOUT. Every wait is bounded; every failure is a [`MailboxError`].

use std::{
    borrow::Cow,
    future::{poll_fn, Future},
    num::NonZeroU32,
    pin::pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::Poll,
    time::Duration,
};

use chrono::NaiveDate;
use imap_next::{
    client::{self, Client, Event, Options},
    imap_types::{
        auth::{AuthMechanism, AuthenticateData},
        command::{Command, CommandBody},
        core::{LiteralMode, NString8, Tag, Vec1},
        extensions::binary::Literal8,
        fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName},
        response::{Capability, Code, Data, GreetingKind, Status, StatusKind},
        search::SearchKey,
        sequence::SequenceSet,
    },
    stream::{self, Stream},
};
use tokio::{
    net::TcpStream,
    time::{sleep, Instant, Sleep},
};
use tokio_rustls::rustls::pki_types::ServerName;

use super::{error::MailboxError, oauth, tls};
use crate::config::{AuthMethod, MailboxConfig, Secret, Security};

/// What SELECT told us about a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// Messages in the folder.
    pub exists: u32,
}

/// Why an IDLE ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleEnd {
    /// The server announced new mail.
    NewMail,
    /// The refresh interval passed.
    Refresh,
    /// The session was asked to stop (shutdown, pause, skip window).
    Stopped,
}

/// One timed step of opening a session (for test-connection).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// What was done: `tcp_connect`, `tls_handshake`, `greeting`, `starttls`, `login`, …
    pub step: String,
    /// How long it took.
    pub millis: u64,
    /// Whether it succeeded.
    pub ok: bool,
}

/// The steps taken so far, in order; the last one failed if any did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Steps(pub Vec<Step>);

impl Steps {
    /// Runs one step within `limit`, recording its name, duration and result.
    pub async fn run<T>(
        &mut self,
        limit: Duration,
        step: &'static str,
        fut: impl std::future::Future<Output = Result<T, MailboxError>>,
    ) -> Result<T, MailboxError> {
        let started = Instant::now();
        let result = within(limit, step, fut).await;
        self.record(step.to_owned(), started, result.is_ok());
        result
    }

    /// Records a step timed by the caller.
    pub fn record(&mut self, step: String, started: Instant, ok: bool) {
        self.0.push(Step {
            step,
            millis: started.elapsed().as_millis() as u64,
            ok,
        });
    }
}

/// An authenticated IMAP session.
pub struct Imap {
    stream: Stream,
    /// Bytes read from the server so far: a response deadline is one of
    /// silence, not of the whole response (a large message over a slow
    /// link takes as long as it takes).
    received: Arc<AtomicU64>,
    client: Client,
    next_tag: u32,
    command_timeout: Duration,
    /// The announced capabilities, space-separated: one allocation, not
    /// one per capability, for as long as the session idles.
    capabilities: String,
    /// An untagged EXISTS arrived after the last SEARCH (servers report new
    /// mail with any command's responses, once): search again before IDLE.
    mail_since_search: bool,
    /// The longest response read; a longer one is skipped.
    max_response: u32,
    /// UIDNEXT of the selected folder, as SELECT reported it.
    uidnext: Option<u32>,
}

/// The UID ranges a catch-up searches, one after the other: `(after,
/// upto)` for `UID SEARCH UID after+1:upto`, windows of `span` UIDs up to
/// the folder's `uidnext`, then `after+1:*` (mail that came since SELECT
/// included). A folder of millions of messages answers one SEARCH for all
/// of them with a line longer than any response the session reads.
pub fn search_windows(after: u32, uidnext: Option<u32>, span: u32) -> Vec<(u32, Option<u32>)> {
    let span = span.max(1);
    let last = uidnext.map_or(0, |next| next.saturating_sub(1));
    let mut windows = Vec::new();
    let mut after = after;
    while last.saturating_sub(after) > span {
        windows.push((after, Some(after + span)));
        after += span;
    }
    windows.push((after, None));
    windows
}

/// One message of a body fetch.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchedBody {
    /// The raw message.
    Raw(Vec<u8>),
    /// Longer than any response the session reads, though its announced
    /// size was not (sizes can be estimates: Exchange's are): skipped, and
    /// at least this many bytes.
    TooLong(u32),
}

fn lost<E: std::fmt::Display>(e: stream::Error<E>) -> MailboxError {
    match e {
        stream::Error::Closed => {
            MailboxError::ConnectionLost("the server closed the connection".into())
        }
        stream::Error::Io(e) => MailboxError::ConnectionLost(e.to_string()),
        stream::Error::Tls(e) => MailboxError::Tls(e.to_string()),
        // Its text, not its fields: those hold the discarded bytes (a whole
        // message, for a response too long).
        stream::Error::State(e) => MailboxError::Protocol(e.to_string()),
    }
}

/// `fut`, unless it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    step: &'static str,
    fut: impl std::future::Future<Output = Result<T, MailboxError>>,
) -> Result<T, MailboxError> {
    /// Never moves: silence measured against it is the whole wait.
    static FIXED: AtomicU64 = AtomicU64::new(0);
    until_silent(limit, step, &FIXED, fut).await
}

/// `fut`, unless `received` stays still for `limit` while it waits.
async fn until_silent<T>(
    limit: Duration,
    step: &'static str,
    received: &AtomicU64,
    fut: impl std::future::Future<Output = Result<T, MailboxError>>,
) -> Result<T, MailboxError> {
    // Most responses of a FETCH are buffered already: the timer is armed
    // only when one is not (reading the clock and arming a timer for every
    // response took more than decoding it).
    let mut fut = pin!(fut);
    let mut timer = pin!(None::<Sleep>);
    let mut seen = 0;
    poll_fn(|cx| {
        if let Poll::Ready(done) = fut.as_mut().poll(cx) {
            return Poll::Ready(done);
        }
        if timer.is_none() {
            timer.set(Some(sleep(limit)));
            seen = received.load(Ordering::Relaxed);
        }
        while let Some(mut t) = timer.as_mut().as_pin_mut() {
            if t.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = received.load(Ordering::Relaxed);
            if now == seen {
                return Poll::Ready(Err(MailboxError::Timeout {
                    step,
                    millis: limit.as_millis(),
                }));
            }
            // Bytes came: the silence starts again.
            seen = now;
            t.reset(Instant::now() + limit);
        }
        Poll::Pending
    })
    .await
}

/// `SINCE date`, when a sync start date is set.
fn since_key(since: Option<NaiveDate>) -> Result<Option<SearchKey<'static>>, MailboxError> {
    since
        .map(|date| {
            imap_next::imap_types::datetime::NaiveDate::try_from(date)
                .map(SearchKey::Since)
                .map_err(|_| MailboxError::Protocol(format!("date {date} cannot be sent")))
        })
        .transpose()
}

/// `UID SEARCH UID after+1:upto [key]` (`after+1:*` without `upto`).
fn search_above(
    after: u32,
    upto: Option<u32>,
    key: Option<SearchKey<'static>>,
) -> Result<CommandBody<'static>, MailboxError> {
    let first = after.saturating_add(1);
    let set = match upto {
        Some(upto) => format!("{first}:{upto}"),
        None => format!("{first}:*"),
    };
    let mut keys = vec![SearchKey::Uid(sequence(&set)?)];
    keys.extend(key);
    let criteria =
        Vec1::try_from(keys).map_err(|_| MailboxError::Protocol("empty search".into()))?;
    Ok(CommandBody::search(None, criteria, true))
}

/// Compact UID set text: `1:5,7,9:12`.
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

fn sequence(text: &str) -> Result<SequenceSet, MailboxError> {
    SequenceSet::try_from(text).map_err(|_| MailboxError::Protocol(format!("bad UID set {text:?}")))
}

impl Imap {
    /// Connects, secures and logs in, each step bounded by
    /// `connection_timeout` and recorded in `steps`.
    pub async fn connect(
        cfg: &MailboxConfig,
        max_message_bytes: u32,
        steps: &mut Steps,
    ) -> Result<Self, MailboxError> {
        let limit = cfg.connection_timeout;
        let token = match (&cfg.auth, &cfg.oauth2) {
            (AuthMethod::Oauth2, Some(o)) => Some(
                steps
                    .run(limit, "oauth2_refresh", oauth::access_token(cfg, o))
                    .await?,
            ),
            _ => None,
        };
        let tcp = steps
            .run(limit, "tcp_connect", async {
                TcpStream::connect((cfg.host.as_str(), cfg.port))
                    .await
                    .map_err(|e| MailboxError::Connect {
                        host: cfg.host.clone(),
                        port: cfg.port,
                        reason: e.to_string(),
                    })
            })
            .await?;
        let _ = tcp.set_nodelay(true);
        let mut options = Options::default();
        // A message larger than the limit is never downloaded, so no response
        // needs more room than the limit plus the FETCH framing.
        options.max_response_size = max_message_bytes.saturating_add(64 * 1024);
        let max_response = options.max_response_size;
        let stream = match cfg.security {
            Security::Tls => Stream::tls(Self::handshake(cfg, tcp, steps).await?),
            Security::None | Security::Starttls => Stream::insecure(tcp),
        };
        let received = Arc::new(AtomicU64::new(0));
        let mut stream = stream;
        stream.count_received(received.clone());
        let mut imap = Self {
            stream,
            received,
            client: Client::new(options.clone()),
            next_tag: 0,
            command_timeout: cfg.command_timeout,
            capabilities: String::new(),
            mail_since_search: false,
            max_response,
            uidnext: None,
        };
        steps.run(limit, "greeting", imap.greeting()).await?;
        if cfg.security == Security::Starttls {
            if !imap.has("STARTTLS") {
                steps.run(limit, "capabilities", imap.capability()).await?;
            }
            if !imap.has("STARTTLS") {
                return Err(MailboxError::StarttlsUnsupported);
            }
            steps
                .run(limit, "starttls", imap.run(CommandBody::StartTLS))
                .await?;
            let tcp = TcpStream::from(imap.stream);
            options.discard_greeting = true;
            imap.stream = Stream::tls(Self::handshake(cfg, tcp, steps).await?);
            imap.stream.count_received(imap.received.clone());
            imap.client = Client::new(options);
            imap.capabilities.clear();
        }
        // Capabilities often change with login (Dovecot adds IDLE and more).
        imap.capabilities.clear();
        steps
            .run(limit, "login", imap.login(cfg, token.as_ref()))
            .await?;
        if imap.capabilities.is_empty() {
            steps.run(limit, "capabilities", imap.capability()).await?;
        }
        Ok(imap)
    }

    async fn handshake(
        cfg: &MailboxConfig,
        tcp: TcpStream,
        steps: &mut Steps,
    ) -> Result<tokio_rustls::TlsStream<TcpStream>, MailboxError> {
        let connector = tls::connector(cfg.ca_file.as_deref())?;
        let name = ServerName::try_from(cfg.host.clone()).map_err(|_| {
            MailboxError::Tls(format!("{:?} is not a valid TLS server name", cfg.host))
        })?;
        steps
            .run(cfg.connection_timeout, "tls_handshake", async {
                connector
                    .connect(name, tcp)
                    .await
                    .map(tokio_rustls::TlsStream::Client)
                    .map_err(tls::classify)
            })
            .await
    }

    /// Whether the server announced `capability` (case-insensitive).
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities()
            .any(|c| c.eq_ignore_ascii_case(capability))
    }

    /// The server's capabilities, as announced after login.
    pub fn capabilities(&self) -> impl Iterator<Item = &str> {
        self.capabilities.split(' ').filter(|c| !c.is_empty())
    }

    fn set_capabilities(&mut self, caps: &[Capability<'_>]) {
        self.capabilities = caps
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" ");
    }

    async fn event(&mut self) -> Result<Event, MailboxError> {
        let event = match self.stream.next(&mut self.client).await {
            // The client skipped it to its end: the session may go on.
            Err(stream::Error::State(client::Error::ResponseTooLong { discarded_bytes })) => {
                let words = fetch_head(discarded_bytes.declassify());
                return Err(MailboxError::ResponseTooLong {
                    fetch: words.is_some(),
                    uid: words.and_then(uid_item),
                    limit: self.max_response,
                });
            }
            // A FETCH response refused for what its message holds (IMAP
            // forbids NUL in a literal; some servers send messages as
            // stored): the message is taken as sent.
            Err(stream::Error::State(client::Error::MalformedMessage { discarded_bytes })) => {
                match salvage_fetch(discarded_bytes.declassify()) {
                    Some(data) => Event::DataReceived { data },
                    None => {
                        return Err(MailboxError::Protocol("Received malformed message".into()))
                    }
                }
            }
            other => other.map_err(lost)?,
        };
        match event {
            Event::StatusReceived {
                status: Status::Bye(bye),
            } => Err(MailboxError::from_bye(bye.text.as_ref())),
            e => {
                if let Event::DataReceived {
                    data: Data::Exists(_),
                } = e
                {
                    self.mail_since_search = true;
                }
                Ok(e)
            }
        }
    }

    /// Whether the server reported new mail since the last SEARCH answered
    /// (an EXISTS during a FETCH is not repeated in the IDLE that follows).
    pub fn mail_since_search(&self) -> bool {
        self.mail_since_search
    }

    async fn greeting(&mut self) -> Result<(), MailboxError> {
        loop {
            if let Event::GreetingReceived { greeting } = self.event().await? {
                if greeting.kind == GreetingKind::Bye {
                    return Err(MailboxError::from_bye(greeting.text.as_ref()));
                }
                if let Some(Code::Capability(caps)) = greeting.code {
                    self.set_capabilities(caps.as_ref());
                }
                return Ok(());
            }
        }
    }

    fn send(&mut self, body: CommandBody<'static>) -> Tag<'static> {
        self.next_tag += 1;
        let tag = Tag::unvalidated(format!("m{}", self.next_tag));
        self.client.enqueue_command(Command {
            tag: tag.clone(),
            body,
        });
        tag
    }

    /// The next untagged data of the command `tag`, or `None` once it
    /// completed with OK. NO and BAD become errors.
    async fn next_data(
        &mut self,
        tag: &Tag<'static>,
    ) -> Result<Option<Data<'static>>, MailboxError> {
        self.next_data_within(tag, self.command_timeout, "command response")
            .await
    }

    /// [`next_data`](Self::next_data) with its own deadline per response.
    async fn next_data_within(
        &mut self,
        tag: &Tag<'static>,
        limit: Duration,
        step: &'static str,
    ) -> Result<Option<Data<'static>>, MailboxError> {
        let received = self.received.clone();
        loop {
            let event = until_silent(limit, step, &received, self.event()).await?;
            match event {
                Event::DataReceived { data } => return Ok(Some(data)),
                Event::StatusReceived {
                    status: Status::Tagged(t),
                } if t.tag == *tag => {
                    if let Some(Code::Capability(caps)) = &t.body.code {
                        self.set_capabilities(caps.as_ref());
                    }
                    return match t.body.kind {
                        StatusKind::Ok => Ok(None),
                        StatusKind::No => Err(MailboxError::Refused {
                            temporary: temporary(t.body.code.as_ref()),
                            text: t.body.text.to_string(),
                        }),
                        StatusKind::Bad => Err(MailboxError::Protocol(t.body.text.to_string())),
                    };
                }
                Event::CommandRejected { status, .. } => {
                    return Err(MailboxError::Protocol(format!("{status:?}")));
                }
                Event::StatusReceived {
                    status: Status::Untagged(body),
                } => {
                    if let Some(Code::Capability(caps)) = body.code {
                        self.set_capabilities(caps.as_ref());
                    }
                }
                _ => {}
            }
        }
    }

    /// Runs a command to completion, returning its untagged data.
    async fn run(
        &mut self,
        body: CommandBody<'static>,
    ) -> Result<Vec<Data<'static>>, MailboxError> {
        let tag = self.send(body);
        let mut out = Vec::new();
        while let Some(d) = self.next_data(&tag).await? {
            out.push(d);
        }
        Ok(out)
    }

    async fn capability(&mut self) -> Result<(), MailboxError> {
        let data = self.run(CommandBody::Capability).await?;
        self.take_capabilities(data);
        Ok(())
    }

    /// Keeps the capabilities of an untagged CAPABILITY among `data` (as
    /// some servers answer LOGIN, sparing the CAPABILITY command).
    fn take_capabilities(&mut self, data: Vec<Data<'static>>) {
        for data in data {
            if let Data::Capability(caps) = data {
                self.set_capabilities(caps.as_ref());
            }
        }
    }

    /// LOGIN, or XOAUTH2 with `token` (a refreshed access token) or else
    /// the configured secret as the token.
    async fn login(
        &mut self,
        cfg: &MailboxConfig,
        token: Option<&Secret>,
    ) -> Result<(), MailboxError> {
        if cfg.auth == AuthMethod::Oauth2 {
            return self
                .xoauth2(&cfg.username, token.unwrap_or(&cfg.secret))
                .await;
        }
        let body = CommandBody::login(cfg.username.clone(), cfg.secret.expose().to_owned())
            .map_err(|_| {
                MailboxError::Auth(
                    "the username or password has characters IMAP LOGIN cannot carry".into(),
                )
            })?;
        match self.run(body).await {
            Err(MailboxError::Protocol(text)) => Err(login_refused(text, false)),
            Err(MailboxError::Refused { text, temporary }) => Err(login_refused(text, temporary)),
            other => other.map(|data| self.take_capabilities(data)),
        }
    }

    /// SASL XOAUTH2 with the secret as the bearer token. A failure arrives
    /// as a challenge carrying the server's JSON error, answered empty.
    async fn xoauth2(&mut self, username: &str, token: &Secret) -> Result<(), MailboxError> {
        let ir = format!("user={username}\x01auth=Bearer {}\x01\x01", token.expose());
        self.send(CommandBody::authenticate_with_ir(
            AuthMechanism::XOAuth2,
            ir.into_bytes(),
        ));
        loop {
            match self.event().await? {
                Event::AuthenticateContinuationRequestReceived { .. } => {
                    let _ = self
                        .client
                        .set_authenticate_data(AuthenticateData::r#continue(Vec::new()));
                }
                Event::AuthenticateStatusReceived { status, .. } => {
                    return match status {
                        Status::Tagged(t) if t.body.kind == StatusKind::Ok => Ok(()),
                        Status::Tagged(t) => Err(login_refused(
                            t.body.text.to_string(),
                            temporary(t.body.code.as_ref()),
                        )),
                        other => Err(MailboxError::Auth(format!("{other:?}"))),
                    };
                }
                _ => {}
            }
        }
    }

    /// SELECTs `folder` (read-write is not needed; nothing is changed).
    pub async fn select(&mut self, folder: &str) -> Result<Selected, MailboxError> {
        let body = CommandBody::select(folder.to_owned()).map_err(|_| MailboxError::Folder {
            folder: folder.to_owned(),
            reason: "not a valid folder name".into(),
        })?;
        let tag = self.send(body);
        let mut selected = Selected {
            uidvalidity: 0,
            exists: 0,
        };
        // This folder's, if its SELECT answers one.
        self.uidnext = None;
        loop {
            let event = within(self.command_timeout, "SELECT", self.event()).await?;
            match event {
                Event::DataReceived {
                    data: Data::Exists(n),
                } => selected.exists = n,
                Event::StatusReceived {
                    status: Status::Untagged(body),
                } => match body.code {
                    Some(Code::UidValidity(v)) => selected.uidvalidity = v.get(),
                    Some(Code::UidNext(n)) => self.uidnext = Some(n.get()),
                    _ => {}
                },
                Event::StatusReceived {
                    status: Status::Tagged(t),
                } if t.tag == tag => {
                    if t.body.kind != StatusKind::Ok {
                        let text = t.body.text.to_string();
                        // A folder locked for a moment is not a wrong name.
                        return Err(match temporary(t.body.code.as_ref()) {
                            true => MailboxError::Refused {
                                text,
                                temporary: true,
                            },
                            false => MailboxError::Folder {
                                folder: folder.to_owned(),
                                reason: text,
                            },
                        });
                    }
                    if selected.uidvalidity == 0 {
                        return Err(MailboxError::Protocol(
                            "SELECT returned no UIDVALIDITY".into(),
                        ));
                    }
                    return Ok(selected);
                }
                _ => {}
            }
        }
    }

    /// The UID windows of [`search_windows`] above `after` for this folder,
    /// each SEARCH answer within the longest response the session reads (a
    /// UID and its space are at most 11 bytes).
    pub fn search_windows(&self, after: u32) -> Vec<(u32, Option<u32>)> {
        search_windows(
            after,
            self.uidnext,
            self.max_response.saturating_sub(4096) / 11,
        )
    }

    /// UIDs above `after` and up to `upto` (and, with `since`, with an
    /// internal date on or after that day), ascending, and (UID,
    /// RFC822.SIZE) of those larger than `limit` bytes (one SEARCH instead
    /// of a size per message, then the sizes of the few it finds). The
    /// second SEARCH waits for the first's completion: untagged SEARCH
    /// answers carry no tag, and a server may run pipelined SEARCHes at once
    /// and interleave their answers (Dovecot does).
    pub async fn search_with_larger(
        &mut self,
        (after, upto): (u32, Option<u32>),
        since: Option<NaiveDate>,
        limit: u32,
    ) -> Result<(Vec<u32>, Vec<(u32, u32)>), MailboxError> {
        let mut uids = self
            .search(search_above(after, upto, since_key(since)?)?, after)
            .await?;
        if let Some(upto) = upto {
            uids.retain(|u| *u <= upto);
        }
        // Up to `*`, the answer covers every message the server had announced.
        if upto.is_none() {
            self.mail_since_search = false;
        }
        if uids.is_empty() {
            return Ok((uids, Vec::new()));
        }
        let larger = Some(SearchKey::Larger(limit));
        let mut too_large = self
            .search(search_above(after, upto, larger)?, after)
            .await?;
        // The second SEARCH may see mail the first did not: not fetched now.
        too_large.retain(|u| uids.binary_search(u).is_ok());
        let sizes = match too_large.is_empty() {
            true => Vec::new(),
            false => self.sizes(&too_large).await?,
        };
        Ok((uids, sizes))
    }

    /// The UIDs above `after` that the SEARCH `body` finds, ascending.
    async fn search(
        &mut self,
        body: CommandBody<'static>,
        after: u32,
    ) -> Result<Vec<u32>, MailboxError> {
        let tag = self.send(body);
        let mut uids = Vec::new();
        while let Some(data) = self.next_data(&tag).await? {
            if let Data::Search(found, ..) = data {
                uids.extend(found.iter().map(|u| u.get()));
            }
        }
        // `N:*` matches the highest UID even when it is below N.
        uids.retain(|u| *u > after);
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// UIDs above `after`, ascending, and (UID, RFC822.SIZE) of those larger
    /// than `limit` bytes, from one `UID FETCH after+1:* (UID RFC822.SIZE)`:
    /// for the few messages an IDLE wake-up brings, one round trip instead
    /// of [`search_with_larger`](Self::search_with_larger)'s two or three
    /// (a size per message is what a catch-up of thousands avoids).
    pub async fn new_with_sizes(
        &mut self,
        after: u32,
        limit: u32,
    ) -> Result<(Vec<u32>, Vec<(u32, u32)>), MailboxError> {
        let mut sizes = self
            .sizes_in(&format!("{}:*", after.saturating_add(1)))
            .await?;
        // The answer covers every message the server had announced.
        self.mail_since_search = false;
        // `N:*` matches the highest UID even when it is below N.
        sizes.retain(|(u, _)| *u > after);
        sizes.dedup_by_key(|(u, _)| *u);
        let uids = sizes.iter().map(|(u, _)| *u).collect();
        sizes.retain(|(_, s)| *s > limit);
        Ok((uids, sizes))
    }

    /// (UID, RFC822.SIZE) of each of `uids` still in the folder, ascending.
    pub async fn sizes(&mut self, uids: &[u32]) -> Result<Vec<(u32, u32)>, MailboxError> {
        self.sizes_in(&uid_set(uids)).await
    }

    /// (UID, RFC822.SIZE) of each message in the UID set `set`, ascending.
    async fn sizes_in(&mut self, set: &str) -> Result<Vec<(u32, u32)>, MailboxError> {
        let items = vec![MessageDataItemName::Uid, MessageDataItemName::Rfc822Size];
        let body = CommandBody::fetch(
            sequence(set)?,
            MacroOrMessageDataItemNames::MessageDataItemNames(items),
            true,
        )
        .map_err(|_| MailboxError::Protocol("bad FETCH".into()))?;
        let mut out = Vec::new();
        for data in self.run(body).await? {
            if let Data::Fetch { items, .. } = data {
                let (mut uid, mut size) = (None, None);
                for item in items.into_iter() {
                    match item {
                        MessageDataItem::Uid(u) => uid = Some(u.get()),
                        MessageDataItem::Rfc822Size(s) => size = Some(s),
                        _ => {}
                    }
                }
                if let (Some(u), Some(s)) = (uid, size) {
                    out.push((u, s));
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Starts `UID FETCH uids (UID BODY.PEEK[])`; read it with [`next_body`](Self::next_body).
    pub fn fetch_bodies(&mut self, uids: &[u32]) -> Result<Tag<'static>, MailboxError> {
        let items = vec![
            MessageDataItemName::Uid,
            MessageDataItemName::BodyExt {
                section: None,
                partial: None,
                peek: true,
            },
        ];
        let body = CommandBody::fetch(
            sequence(&uid_set(uids))?,
            MacroOrMessageDataItemNames::MessageDataItemNames(items),
            true,
        )
        .map_err(|_| MailboxError::Protocol("bad FETCH".into()))?;
        Ok(self.send(body))
    }

    /// The next (UID, message) of a body fetch; `None` when it is done.
    /// The UID is unknown (`None`) only for a message too long to read
    /// whose UID the server sent after it, in the part skipped.
    pub async fn next_body(
        &mut self,
        tag: &Tag<'static>,
    ) -> Result<Option<(Option<u32>, FetchedBody)>, MailboxError> {
        loop {
            match self.next_data(tag).await {
                Ok(Some(data)) => {
                    // Unsolicited FETCH responses (flag changes) carry no body.
                    if let Some((uid, raw)) = body_of(data) {
                        return Ok(Some((Some(uid), FetchedBody::Raw(raw))));
                    }
                }
                Ok(None) => return Ok(None),
                Err(MailboxError::ResponseTooLong {
                    uid,
                    fetch: true,
                    limit,
                }) => return Ok(Some((uid, FetchedBody::TooLong(limit)))),
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits in IDLE until new mail, the refresh interval, or `stop` resolves;
    /// then ends IDLE cleanly (DONE and the tagged OK). A socket silent for
    /// `keepalive` is tested the same way: DONE must be answered within
    /// `answer_within`, or the session counts as dropped. `accepted` runs
    /// once the server has accepted IDLE; a refused IDLE is
    /// [`MailboxError::Refused`].
    pub async fn idle(
        &mut self,
        refresh: Duration,
        keepalive: Duration,
        answer_within: Duration,
        stop: impl std::future::Future<Output = ()>,
        accepted: impl FnOnce(),
    ) -> Result<IdleEnd, MailboxError> {
        let tag = self.send(CommandBody::Idle);
        // The steps before and after the wait are boxed: this future lives
        // as long as the mailbox idles, and its size is its largest step's.
        Box::pin(async {
            loop {
                match within(self.command_timeout, "IDLE", self.event()).await? {
                    Event::IdleAccepted { .. } => return Ok(()),
                    Event::IdleRejected { status, .. } => {
                        let text = match status {
                            Status::Tagged(t) => t.body.text.to_string(),
                            other => format!("{other:?}"),
                        };
                        return Err(MailboxError::Refused {
                            text,
                            temporary: false,
                        });
                    }
                    _ => {}
                }
            }
        })
        .await?;
        accepted();
        let end = {
            tokio::pin!(stop);
            let deadline = tokio::time::sleep(refresh);
            tokio::pin!(deadline);
            let silence = tokio::time::sleep(keepalive);
            tokio::pin!(silence);
            loop {
                tokio::select! {
                    event = self.event() => {
                        if let Event::DataReceived { data: Data::Exists(_) } = event? {
                            break IdleEnd::NewMail;
                        }
                        silence.as_mut().reset(Instant::now() + keepalive);
                    }
                    _ = &mut deadline => break IdleEnd::Refresh,
                    _ = &mut silence => break IdleEnd::Refresh,
                    _ = &mut stop => break IdleEnd::Stopped,
                }
            }
        };
        self.client.set_idle_done();
        Box::pin(async {
            while self
                .next_data_within(&tag, answer_within, "IDLE keepalive (DONE)")
                .await?
                .is_some()
            {}
            Ok::<_, MailboxError>(())
        })
        .await?;
        Ok(end)
    }

    /// For servers without IDLE: waits `interval` (or until `stop`), then
    /// sends NOOP so the server reports what changed.
    pub async fn poll(
        &mut self,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<IdleEnd, MailboxError> {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop => return Ok(IdleEnd::Stopped),
        }
        self.run(CommandBody::Noop).await?;
        Ok(IdleEnd::Refresh)
    }

    /// Says LOGOUT and closes; errors are irrelevant by then.
    pub async fn logout(mut self) {
        let tag = self.send(CommandBody::Logout);
        let _ = within(self.command_timeout, "LOGOUT", async {
            loop {
                match self.next_data(&tag).await {
                    Ok(None) | Err(_) => return Ok(()),
                    Ok(Some(_)) => {}
                }
            }
        })
        .await;
    }
}

/// What a refused login means. Not always bad credentials: a connection
/// limit or throttling (told by the text) and a refusal that passes (told
/// by its code; Dovecot answers "NO [UNAVAILABLE] Temporary authentication
/// failure." while its authentication backend is down; Exchange Online's
/// "User is authenticated but not connected." says the credentials were
/// taken and its backend was not) must not park the mailbox in
/// needs_reauth.
fn login_refused(text: String, temporary: bool) -> MailboxError {
    let temporary = temporary
        || text
            .to_ascii_lowercase()
            .contains("authenticated but not connected");
    match MailboxError::from_bye(&text) {
        MailboxError::Bye(_) if temporary => MailboxError::Refused { text, temporary },
        MailboxError::Bye(_) => MailboxError::Auth(text),
        limit_or_throttle => limit_or_throttle,
    }
}

/// Whether a NO's response code says it will pass: RFC 5530's
/// UNAVAILABLE (a backend down), INUSE (a lock held) and LIMIT.
fn temporary(code: Option<&Code<'_>>) -> bool {
    const PASSING: [&[u8]; 3] = [b"UNAVAILABLE", b"INUSE", b"LIMIT"];
    matches!(code, Some(Code::Other(other))
        if PASSING.iter().any(|p| other.inner().eq_ignore_ascii_case(p)))
}

/// The words of a FETCH response's start (`* 7 FETCH (UID 42 BODY[] {…}`)
/// after `FETCH`, up to its first literal; `None` for another response.
fn fetch_head(response: &[u8]) -> Option<std::str::Split<'_, [char; 3]>> {
    let head = &response[..response.len().min(256)];
    let head = &head[..head.iter().position(|&b| b == b'{').unwrap_or(head.len())];
    let mut words = std::str::from_utf8(head).ok()?.split([' ', '(', ')']);
    let fetch = words.next()? == "*"
        && words.next()?.parse::<u32>().is_ok()
        && words.next()?.eq_ignore_ascii_case("FETCH");
    fetch.then_some(words)
}

/// The number after the first `UID` among `words`.
fn uid_item<'a>(words: impl Iterator<Item = &'a str>) -> Option<u32> {
    let mut words = words.filter(|w| !w.is_empty());
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("UID") {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// `* n FETCH (UID u BODY[] {len}\r\n…)\r\n` (or with the UID after the
/// body) read by hand, for a response the decoder refused: the UID and the
/// literal's bytes as they are, carried as the whole message in binary
/// (`BINARY[]`, whose literal may hold NUL).
fn salvage_fetch(response: &[u8]) -> Option<Data<'static>> {
    let seq = std::str::from_utf8(response.get(2..)?.split(|&b| b == b' ').next()?)
        .ok()?
        .parse::<NonZeroU32>()
        .ok()?;
    let open = response.iter().position(|&b| b == b'{')?;
    let close = open + response[open..].iter().position(|&b| b == b'}')?;
    let len: usize = std::str::from_utf8(&response[open + 1..close])
        .ok()?
        .parse()
        .ok()?;
    let rest = response.get(close + 1..)?.strip_prefix(b"\r\n")?;
    let body = rest.get(..len)?;
    let after = || std::str::from_utf8(&rest[len..]).ok();
    let uid =
        uid_item(fetch_head(response)?).or_else(|| uid_item(after()?.split([' ', '(', ')'])))?;
    let uid = NonZeroU32::new(uid)?;
    let items = vec![
        MessageDataItem::Uid(uid),
        MessageDataItem::Binary {
            section: Vec::new(),
            value: NString8::Literal8(Literal8 {
                data: Cow::Owned(body.to_vec()),
                mode: LiteralMode::Sync,
            }),
        },
    ];
    Some(Data::Fetch {
        seq,
        items: Vec1::unvalidated(items),
    })
}

/// (UID, raw message) of a FETCH response that carries a body: `BODY[]`,
/// or the whole message in binary as [`salvage_fetch`] gives it.
fn body_of(data: Data<'static>) -> Option<(u32, Vec<u8>)> {
    let Data::Fetch { items, .. } = data else {
        return None;
    };
    let (mut uid, mut raw) = (None, None);
    for item in items.into_iter() {
        match item {
            MessageDataItem::Uid(u) => uid = Some(u.get()),
            MessageDataItem::BodyExt { data, .. } => {
                raw = Some(
                    data.0
                        .map(|s| s.into_inner().into_owned())
                        .unwrap_or_default(),
                )
            }
            MessageDataItem::Binary {
                section,
                value: NString8::Literal8(literal),
            } if section.is_empty() => raw = Some(literal.data.into_owned()),
            _ => {}
        }
    }
    Some((uid?, raw?))
}

#[cfg(test)]
mod tests {
    use imap_codec::{decode::Decoder, ResponseCodec};
    use imap_next::imap_types::{response::Response, IntoStatic};

    use imap_next::imap_types::response::{Code, CodeOther};

    use std::{
        sync::atomic::{AtomicU64, Ordering},
        time::Duration,
    };

    use super::{
        body_of, fetch_head, login_refused, salvage_fetch, search_windows, temporary, uid_item,
        uid_set, until_silent,
    };

    #[test]
    fn a_refused_login_is_bad_credentials_only_when_nothing_says_otherwise() {
        for (text, passes, code) in [
            ("Authentication failed.", false, "imap_auth_failed"),
            ("Temporary authentication failure.", true, "imap_command_refused"),
            ("User is authenticated but not connected.", false, "imap_command_refused"),
            (
                "User is authenticated but not connected. Suggested Backoff Time: 1200 milliseconds",
                false,
                "imap_throttled",
            ),
            (
                "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)",
                true,
                "imap_too_many_connections",
            ),
        ] {
            assert_eq!(login_refused(text.into(), passes).code(), code, "{text}");
        }
    }

    /// A response deadline is one of silence: bytes arriving every 0.6 s
    /// keep a 1 s deadline from firing over a 3 s response; a second of
    /// silence fires it.
    #[tokio::test(start_paused = true)]
    async fn a_response_deadline_is_one_of_silence() {
        let limit = Duration::from_secs(1);
        let received = AtomicU64::new(0);
        let trickle = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(600)).await;
                received.fetch_add(1, Ordering::Relaxed);
            }
            Ok("whole")
        };
        let started = tokio::time::Instant::now();
        assert_eq!(
            until_silent(limit, "x", &received, trickle).await.unwrap(),
            "whole"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        let silent = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let started = tokio::time::Instant::now();
        let err = until_silent(limit, "x", &received, silent)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "connection_timeout");
        assert_eq!(started.elapsed(), limit);
    }

    #[test]
    fn a_no_is_temporary_by_its_rfc_5530_code_only() {
        let code = |name: &'static str| Code::Other(CodeOther::unvalidated(name.as_bytes()));
        for name in ["UNAVAILABLE", "INUSE", "LIMIT", "unavailable"] {
            assert!(temporary(Some(&code(name))), "{name}");
        }
        for name in ["SERVERBUG", "CORRUPTION", "EXPUNGEISSUED"] {
            assert!(!temporary(Some(&code(name))), "{name}");
        }
        assert!(!temporary(Some(&Code::Alert)));
        assert!(!temporary(None));
    }

    #[test]
    fn a_refused_fetch_response_yields_its_message_as_sent() {
        let sent = Some((42, b"hel\0lo!".to_vec()));
        for (response, expected) in [
            // The UID before the body, or after it.
            (&b"* 3 FETCH (UID 42 BODY[] {7}\r\nhel\0lo!)\r\n"[..], &sent),
            (b"* 3 FETCH (BODY[] {7}\r\nhel\0lo! UID 42)\r\n", &sent),
            // No UID: nothing to record it under.
            (b"* 3 FETCH (BODY[] {7}\r\nhel\0lo!)\r\n", &None),
            // Shorter than its literal says, or no length.
            (b"* 3 FETCH (UID 42 BODY[] {70}\r\nhel\0lo!)\r\n", &None),
            (b"* 3 FETCH (UID 42 BODY[] {x}\r\nhel\0lo!)\r\n", &None),
            // Not a FETCH.
            (b"* LIST () {3}\r\na\0b UID 5)\r\n", &None),
        ] {
            let salvaged = salvage_fetch(response).and_then(body_of);
            assert_eq!(&salvaged, expected, "{}", String::from_utf8_lossy(response));
        }
    }

    #[test]
    fn a_skipped_fetch_response_names_its_uid_when_it_comes_before_the_body() {
        for (response, uid) in [
            (
                &b"* 2 FETCH (UID 42 BODY[] {300057}\r\nFrom: x"[..],
                Some(42),
            ),
            (b"* 2 fetch (FLAGS (\\Seen) uid 7 BODY[] {9}\r\n", Some(7)),
            (
                b"* 2 FETCH (BODY[] {300057}\r\nUID 42 inside the message",
                None,
            ),
            (b"* 2 FETCH (UID {3}\r\n", None),
            (b"* SEARCH 1 2 3 4", None),
            (b"* x FETCH (UID 5 BODY[] {1}\r\n", None),
            (b"", None),
        ] {
            assert_eq!(
                fetch_head(response).and_then(uid_item),
                uid,
                "{}",
                String::from_utf8_lossy(response)
            );
        }
    }

    /// The body FETCH shapes servers send (vendored imap-codec decodes the
    /// two common ones on a fast path) and others, through the decoder the
    /// client uses.
    #[test]
    fn bodies_are_read_from_every_fetch_shape() {
        let body = |input: &[u8]| match ResponseCodec::default().decode(input) {
            Ok(([], Response::Data(data))) => body_of(data.into_static()),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        };
        let hello = Some((42, b"hello".to_vec()));
        for input in [
            &b"* 7 FETCH (UID 42 BODY[] {5}\r\nhello)\r\n"[..],
            b"* 7 FETCH (BODY[] {5}\r\nhello UID 42)\r\n",
            b"* 07 FETCH (UID 42 BODY[] {5}\r\nhello)\r\n",
            b"* 7 fetch (uid 42 body[] {5}\r\nhello)\r\n",
            b"* 7 FETCH (UID 42 RFC822.SIZE 5 BODY[] {5}\r\nhello FLAGS (\\Seen))\r\n",
        ] {
            assert_eq!(body(input), hello);
        }
        assert_eq!(body(b"* 7 FETCH (UID 42 FLAGS ())\r\n"), None);
        // A NUL in the literal is refused, fast path or not.
        assert!(ResponseCodec::default()
            .decode(b"* 7 FETCH (UID 42 BODY[] {5}\r\nhel\0o)\r\n")
            .is_err());
    }

    #[test]
    fn a_catch_up_searches_windows_that_fit_then_up_to_the_end() {
        // Nothing known of the folder, or little above the checkpoint: one
        // search up to the end.
        assert_eq!(search_windows(7, None, 100), vec![(7, None)]);
        assert_eq!(search_windows(0, Some(101), 100), vec![(0, None)]);
        assert_eq!(search_windows(500, Some(300), 100), vec![(500, None)]);
        // UIDs 1..=250 in windows of 100 (the last one open-ended, for the
        // mail that came since SELECT).
        assert_eq!(
            search_windows(0, Some(251), 100),
            vec![(0, Some(100)), (100, Some(200)), (200, None)]
        );
        assert_eq!(
            search_windows(150, Some(400), 100),
            vec![(150, Some(250)), (250, Some(350)), (350, None)]
        );
        // Near the top of the UID space, no overflow.
        assert_eq!(
            search_windows(u32::MAX - 150, Some(u32::MAX), 100),
            vec![(u32::MAX - 150, Some(u32::MAX - 50)), (u32::MAX - 50, None)]
        );
        // A span of 0 (a tiny response limit) still makes progress.
        assert_eq!(search_windows(0, Some(3), 0), vec![(0, Some(1)), (1, None)]);
        // Each window's answer fits a response: 11 bytes per UID at most.
        let span = (66_560 - 4096) / 11;
        let worst = format!("* SEARCH{}\r\n", format!(" {}", u32::MAX).repeat(span));
        assert!(worst.len() <= 66_560);
    }

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[9]), "9");
    }
}
