//! One client connection: greeting, login, INBOX and the commands mailgate
//! sends, answered the way Dovecot answers them (untagged data first, the
//! tagged status last, EXISTS pushed while in IDLE or reported before a
//! command completes). Bodies are streamed a few at a time, so a FETCH of
//! many large messages never sits in memory at once.

use std::collections::VecDeque;
use std::future::pending;
use std::io::Write;
use std::num::NonZeroU32;
use std::ops::ControlFlow;
use std::sync::Arc;

use imap_next::imap_types::{
    auth::{AuthMechanism, AuthenticateData},
    command::{Command, CommandBody},
    core::{IString, Literal, NString, QuotedChar, Tag, Vec1},
    datetime::DateTime,
    fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName},
    flag::FlagNameAttribute,
    flag::{Flag, FlagPerm},
    mailbox::{ListMailbox, Mailbox},
    response::{Capability, Code, CodeOther, CommandContinuationRequest, Data, Greeting, Status},
    search::SearchKey,
    sequence::{Sequence, SequenceSet},
    IntoStatic,
};
use imap_next::server::{Event, Options, ResponseHandle, Server};
use imap_next::stream::Stream;
use imap_next::types::CommandAuthenticate;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tokio_rustls::TlsStream;

use crate::farm::{Farm, Quirk, Stored};
use crate::fault::Fault;
use crate::stats::ConnectionGuard;

/// Bodies enqueued but not yet written, per session, before the next waits.
const FETCH_WINDOW_BYTES: usize = 4 * 1024 * 1024;

/// Output gathered before a write, as a real server corks its output: one
/// syscall per response would cost the farm (and, over loopback, the
/// gateway's receive path) more than the gateway's own work.
const WRITE_COALESCE_BYTES: usize = 64 * 1024;

/// Serves one accepted connection until the client leaves or a fault ends it.
pub(crate) async fn serve(farm: Arc<Farm>, socket: TcpStream) {
    let guard = farm.counters.accepted();
    if farm.faults.refuse.on() {
        return;
    }
    let faults = farm.faults.subscribe();
    let delay = farm.faults.greeting_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut stream = match farm.tls() {
        Some(acceptor) => match acceptor.accept(socket).await {
            Ok(tls) => Stream::tls(TlsStream::Server(tls)),
            Err(_) => return,
        },
        None => Stream::insecure(socket),
    };
    stream.coalesce_writes(WRITE_COALESCE_BYTES);
    let session = Session {
        idle_offered: farm.faults.idle.on(),
        farm: &farm,
        guard,
        state: State::NotAuthenticated,
        idle: None,
        authenticating: None,
        fetch: None,
        deferred: VecDeque::new(),
        closing: None,
    };
    session.run(stream, faults).await;
}

enum State {
    NotAuthenticated,
    Authenticated {
        user: u32,
    },
    Selected {
        user: u32,
        /// Messages this session has been told about.
        exists: u32,
        count: watch::Receiver<u32>,
    },
}

/// A UID FETCH being streamed.
struct Fetching {
    tag: Tag<'static>,
    user: u32,
    uid: bool,
    names: Vec<MessageDataItemName<'static>>,
    /// (sequence number, message) still to send.
    todo: VecDeque<(u32, Stored)>,
    /// Responses enqueued and not yet written, with their sizes.
    unsent: VecDeque<(ResponseHandle, usize)>,
    /// The items are exactly UID and BODY[] (what mailgate fetches): the
    /// responses are written by [`body_response`].
    body_only: bool,
    /// Stopped at a message whose body is never sent: ends with NO.
    refused: bool,
}

struct Session<'a> {
    farm: &'a Farm,
    guard: ConnectionGuard<'a>,
    /// IDLE as advertised when this connection was greeted.
    idle_offered: bool,
    state: State,
    /// The IDLE command's tag while in IDLE.
    idle: Option<Tag<'static>>,
    /// AUTHENTICATE waiting for the client's response (no SASL-IR).
    authenticating: Option<(Tag<'static>, AuthMechanism<'static>)>,
    fetch: Option<Fetching>,
    /// Commands pipelined behind a streaming FETCH.
    deferred: VecDeque<Command<'static>>,
    /// The response after which the connection closes (LOGOUT, BYE).
    closing: Option<ResponseHandle>,
}

impl Session<'_> {
    async fn run(mut self, mut stream: Stream, mut faults: broadcast::Receiver<Fault>) {
        let mut server = Server::new(Options::default(), self.greeting());
        loop {
            let count = match (&mut self.state, self.idle.is_some()) {
                (State::Selected { count, .. }, true) => Some(count),
                _ => None,
            };
            tokio::select! {
                event = stream.next(&mut server) => match event {
                    Ok(event) => {
                        if self.on_event(&mut server, event).is_break() {
                            // The closing response may still be gathered.
                            let _ = stream.flush().await;
                            return;
                        }
                    }
                    Err(_) => return,
                },
                () = changed(count) => self.report_exists(&mut server),
                fault = faults.recv() => match fault {
                    Ok(Fault::DropAll) => return,
                    Ok(Fault::ThrottleBye { backoff_ms }) => {
                        let text = format!(
                            "Server is busy. Suggested Backoff Time: {backoff_ms} milliseconds"
                        );
                        self.closing = Some(server.enqueue_status(bye(text)));
                    }
                    Ok(Fault::Stall) => loop {
                        match faults.recv().await {
                            Ok(Fault::Resume) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                            Ok(Fault::DropAll) | Err(broadcast::error::RecvError::Closed) => return,
                            Ok(_) => {}
                        }
                    },
                    Ok(Fault::Resume) | Err(_) => {}
                },
            }
        }
    }

    fn greeting(&self) -> Greeting<'static> {
        Greeting::ok(
            Some(Code::Capability(self.capabilities())),
            "Mail farm ready.",
        )
        .expect("static greeting text")
    }

    /// Like Dovecot: AUTH= mechanisms before login, none after.
    fn capabilities(&self) -> Vec1<Capability<'static>> {
        let mut caps = vec![Capability::Imap4Rev1, Capability::SaslIr];
        if matches!(self.state, State::NotAuthenticated) {
            caps.push(Capability::Auth(AuthMechanism::Plain));
            caps.push(Capability::Auth(AuthMechanism::XOAuth2));
        }
        if self.idle_offered {
            caps.push(Capability::Idle);
        }
        Vec1::unvalidated(caps)
    }

    fn on_event(&mut self, server: &mut Server, event: Event) -> ControlFlow<()> {
        match event {
            Event::GreetingSent { .. } => {}
            Event::ResponseSent { handle, .. } | Event::EncodedResponseSent { handle } => {
                if self.closing == Some(handle) {
                    return ControlFlow::Break(());
                }
                self.fetch_progress(server, handle);
            }
            Event::CommandReceived { command } => {
                if self.fetch.is_some() {
                    self.deferred.push_back(command);
                } else {
                    self.command(server, command);
                }
            }
            Event::CommandAuthenticateReceived {
                command_authenticate,
            } => self.authenticate(server, command_authenticate),
            Event::AuthenticateDataReceived { authenticate_data } => {
                let Some((tag, mechanism)) = self.authenticating.take() else {
                    return ControlFlow::Continue(());
                };
                let status = match authenticate_data {
                    AuthenticateData::Continue(data) => {
                        self.sasl(tag, &mechanism, data.declassify())
                    }
                    AuthenticateData::Cancel => {
                        tagged_bad(tag, "Authentication aborted by client.")
                    }
                };
                let _ = server.authenticate_finish(status);
            }
            Event::IdleCommandReceived { tag } => {
                if self.farm.faults.idle_refused.on() {
                    let no = Status::no(
                        Some(tag),
                        Some(other_code("LIMIT")),
                        "Too many idling sessions.",
                    )
                    .expect("static status text");
                    let _ = server.idle_reject(no);
                } else if self.idle_offered && matches!(self.state, State::Selected { .. }) {
                    let ccr = CommandContinuationRequest::basic(None, "idling")
                        .expect("static continuation text");
                    let _ = server.idle_accept(ccr);
                    self.idle = Some(tag);
                    self.guard.set_idling(true);
                    self.report_exists(server);
                } else {
                    let _ = server.idle_reject(tagged_bad(tag, "Unknown command."));
                }
            }
            Event::IdleDoneReceived => {
                self.guard.set_idling(false);
                if let Some(tag) = self.idle.take() {
                    server.enqueue_status(tagged_ok(tag, None, "Idle completed."));
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn command(&mut self, server: &mut Server, command: Command<'static>) {
        let tag = command.tag;
        let status = match command.body {
            CommandBody::Capability => {
                server.enqueue_data(Data::Capability(self.capabilities()));
                tagged_ok(tag, None, "Capability completed.")
            }
            CommandBody::Noop => {
                self.report_exists(server);
                tagged_ok(tag, None, "NOOP completed.")
            }
            CommandBody::Logout => {
                server.enqueue_status(bye("Logging out".into()));
                let handle = server.enqueue_status(tagged_ok(tag, None, "Logout completed."));
                self.closing = Some(handle);
                return;
            }
            CommandBody::Login { username, password } => {
                let name = String::from_utf8_lossy(username.as_ref()).into_owned();
                let pass = password.declassify().as_ref().to_vec();
                let status = self.login(tag, &name, &pass);
                if !matches!(self.state, State::NotAuthenticated) {
                    server.enqueue_data(Data::Capability(self.capabilities()));
                }
                status
            }
            CommandBody::Select { mailbox, .. } | CommandBody::Examine { mailbox, .. } => {
                self.select(server, tag, &mailbox)
            }
            CommandBody::Unselect | CommandBody::Close => match self.state {
                State::Selected { user, .. } => {
                    self.state = State::Authenticated { user };
                    tagged_ok(tag, None, "Completed.")
                }
                _ => tagged_bad(tag, "No mailbox selected."),
            },
            CommandBody::Search { criteria, .. } => self.search(server, tag, &criteria),
            CommandBody::List {
                mailbox_wildcard, ..
            } => self.list(server, tag, &mailbox_wildcard, false),
            CommandBody::Lsub {
                mailbox_wildcard, ..
            } => self.list(server, tag, &mailbox_wildcard, true),
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } => match self.start_fetch(server, tag, &sequence_set, macro_or_item_names, uid) {
                Ok(()) => return,
                Err(status) => status,
            },
            _ => tagged_bad(tag, "Unknown command."),
        };
        server.enqueue_status(status);
    }

    fn login(&mut self, tag: Tag<'static>, name: &str, password: &[u8]) -> Status<'static> {
        if !matches!(self.state, State::NotAuthenticated) {
            return tagged_bad(tag, "Already logged in.");
        }
        if self.farm.faults.auth_unavailable.on() {
            return Status::no(
                Some(tag),
                Some(other_code("UNAVAILABLE")),
                "Temporary authentication failure.",
            )
            .expect("static status text");
        }
        match self.farm.user(name) {
            Some(user) if password == self.farm.password().as_bytes() => {
                self.guard.logged_in();
                self.state = State::Authenticated { user };
                tagged_ok(tag, None, "Logged in")
            }
            _ => {
                self.farm.counters.login_failed();
                Status::no(
                    Some(tag),
                    Some(other_code("AUTHENTICATIONFAILED")),
                    "Authentication failed.",
                )
                .expect("static status text")
            }
        }
    }

    fn authenticate(&mut self, server: &mut Server, auth: CommandAuthenticate) {
        match auth.initial_response {
            Some(ir) => {
                let status = self.sasl(auth.tag, &auth.mechanism, ir.declassify());
                let _ = server.authenticate_finish(status);
            }
            None => {
                let ccr =
                    CommandContinuationRequest::basic(None, " ").expect("static continuation text");
                let _ = server.authenticate_continue(ccr);
                self.authenticating = Some((auth.tag, auth.mechanism));
            }
        }
    }

    /// Checks a SASL PLAIN or XOAUTH2 response (the password is the token).
    fn sasl(
        &mut self,
        tag: Tag<'static>,
        mechanism: &AuthMechanism<'_>,
        data: &[u8],
    ) -> Status<'static> {
        let credentials = match mechanism {
            AuthMechanism::Plain => {
                let mut parts = data.split(|b| *b == 0).skip(1);
                parts.next().zip(parts.next())
            }
            AuthMechanism::XOAuth2 => {
                let mut fields = data.split(|b| *b == 1);
                let user = fields.next().and_then(|f| f.strip_prefix(b"user="));
                let token = fields.next().and_then(|f| f.strip_prefix(b"auth=Bearer "));
                user.zip(token)
            }
            _ => return tagged_no(tag, "Unsupported authentication mechanism."),
        };
        let (name, password) = credentials.unwrap_or_default();
        self.login(tag, &String::from_utf8_lossy(name), password)
    }

    fn select(
        &mut self,
        server: &mut Server,
        tag: Tag<'static>,
        mailbox: &Mailbox<'_>,
    ) -> Status<'static> {
        let user = match self.state {
            State::NotAuthenticated => return tagged_bad(tag, "Not logged in."),
            State::Authenticated { user } | State::Selected { user, .. } => user,
        };
        if !matches!(mailbox, Mailbox::Inbox) {
            // Like Dovecot: a failed SELECT closes the selected mailbox.
            if matches!(self.state, State::Selected { .. }) {
                server.enqueue_status(
                    Status::ok(None, Some(other_code("CLOSED")), "Previous mailbox closed.")
                        .expect("static status text"),
                );
            }
            self.state = State::Authenticated { user };
            return tagged_no(tag, "Mailbox doesn't exist.");
        }
        if self.farm.faults.inbox_in_use.on() {
            return Status::no(Some(tag), Some(other_code("INUSE")), "Mailbox is locked.")
                .expect("static status text");
        }
        let mut count = self.farm.mailbox(user).watch();
        let exists = *count.borrow_and_update();
        let flags = [
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
        ];
        server.enqueue_data(Data::Flags(flags.to_vec()));
        let mut permanent: Vec<FlagPerm> = flags.into_iter().map(FlagPerm::Flag).collect();
        permanent.push(FlagPerm::Asterisk);
        server.enqueue_status(untagged_ok(
            Code::PermanentFlags(permanent),
            "Flags permitted.",
        ));
        server.enqueue_data(Data::Exists(exists));
        server.enqueue_data(Data::Recent(0));
        if exists > 0 {
            server.enqueue_status(untagged_ok(Code::Unseen(NonZeroU32::MIN), "First unseen."));
        }
        let validity = NonZeroU32::new(self.farm.uidvalidity()).unwrap_or(NonZeroU32::MIN);
        server.enqueue_status(untagged_ok(Code::UidValidity(validity), "UIDs valid"));
        let next = NonZeroU32::new(exists.saturating_add(1)).unwrap_or(NonZeroU32::MIN);
        server.enqueue_status(untagged_ok(Code::UidNext(next), "Predicted next UID"));
        self.state = State::Selected {
            user,
            exists,
            count,
        };
        tagged_ok(tag, Some(Code::ReadWrite), "Select completed.")
    }

    /// LIST (or LSUB): the hierarchy delimiter for an empty pattern, INBOX
    /// when the pattern matches it (clients such as imapflow list before
    /// SELECT).
    fn list(
        &mut self,
        server: &mut Server,
        tag: Tag<'static>,
        pattern: &ListMailbox<'_>,
        subscribed: bool,
    ) -> Status<'static> {
        if matches!(self.state, State::NotAuthenticated) {
            return tagged_bad(tag, "Not logged in.");
        }
        let pattern: &[u8] = match pattern {
            ListMailbox::Token(t) => t.as_ref(),
            ListMailbox::String(s) => s.as_ref(),
        };
        let entry = |items, mailbox| {
            let delimiter = QuotedChar::try_from('/').ok();
            match subscribed {
                false => Data::List {
                    items,
                    delimiter,
                    mailbox,
                },
                true => Data::Lsub {
                    items,
                    delimiter,
                    mailbox,
                },
            }
        };
        if pattern.is_empty() {
            if let Ok(root) = Mailbox::try_from("") {
                server.enqueue_data(entry(vec![FlagNameAttribute::Noselect], root));
            }
        } else if wildcard_match(&pattern.to_ascii_uppercase(), b"INBOX") {
            server.enqueue_data(entry(vec![], Mailbox::Inbox));
        }
        tagged_ok(tag, None, "List completed.")
    }

    /// Reports new messages with `* N EXISTS`, as a server does in IDLE and
    /// before completing a command.
    fn report_exists(&mut self, server: &mut Server) {
        if let State::Selected { exists, count, .. } = &mut self.state {
            let now = *count.borrow_and_update();
            if now > *exists {
                *exists = now;
                server.enqueue_data(Data::Exists(now));
            }
        }
    }

    fn search(
        &mut self,
        server: &mut Server,
        tag: Tag<'static>,
        criteria: &Vec1<SearchKey<'_>>,
    ) -> Status<'static> {
        self.report_exists(server);
        let State::Selected { user, exists, .. } = self.state else {
            return tagged_bad(tag, "No mailbox selected.");
        };
        let messages = self.farm.mailbox(user).lock()[..exists as usize].to_vec();
        let mut found = Vec::new();
        for (index, stored) in messages.iter().enumerate() {
            let n = index as u32 + 1;
            match criteria.as_ref().iter().try_fold(true, |all, key| {
                Some(all && matches(key, n, stored, exists)?)
            }) {
                Some(true) => found.extend(NonZeroU32::new(n)),
                Some(false) => {}
                None => return tagged_bad(tag, "Search key not supported by the mail farm."),
            }
        }
        server.enqueue_data(Data::Search(found));
        tagged_ok(tag, None, "Search completed.")
    }

    fn start_fetch(
        &mut self,
        server: &mut Server,
        tag: Tag<'static>,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
    ) -> Result<(), Status<'static>> {
        self.report_exists(server);
        let State::Selected { user, exists, .. } = self.state else {
            return Err(tagged_bad(tag, "No mailbox selected."));
        };
        let mut names = match items {
            MacroOrMessageDataItemNames::Macro(m) => {
                m.expand().into_iter().map(|n| n.into_static()).collect()
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
        };
        if let Some(name) = names.iter().find(|n| !supported(n)) {
            let text = format!("FETCH item not supported by the mail farm: {name:?}");
            return Err(tagged_bad_owned(tag, text));
        }
        // UID FETCH always reports the UID, first (as Dovecot does) or,
        // for a farm set so, last.
        if uid && !names.contains(&MessageDataItemName::Uid) {
            names.insert(0, MessageDataItemName::Uid);
        }
        if self.farm.uid_last() {
            names.sort_by_key(|n| *n == MessageDataItemName::Uid);
        }
        let messages = self.farm.mailbox(user).lock()[..exists as usize].to_vec();
        let todo = messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| (i as u32 + 1, m))
            .filter(|(n, m)| in_set(set, *n, exists) && m.quirk != Quirk::Vanished)
            .collect();
        let body_only = matches!(
            names.as_slice(),
            [
                MessageDataItemName::Uid,
                MessageDataItemName::BodyExt {
                    section: None,
                    partial: None,
                    ..
                }
            ]
        );
        self.fetch = Some(Fetching {
            tag,
            user,
            uid,
            names,
            todo,
            unsent: VecDeque::new(),
            body_only,
            refused: false,
        });
        self.fetch_more(server);
        Ok(())
    }

    /// Notes a written response; the window moves on.
    fn fetch_progress(&mut self, server: &mut Server, handle: ResponseHandle) {
        if let Some(fetch) = &mut self.fetch {
            if fetch.unsent.front().map(|(h, _)| *h) == Some(handle) {
                fetch.unsent.pop_front();
                self.fetch_more(server);
            }
        }
    }

    /// Enqueues FETCH responses up to the window; the tagged OK when all are
    /// sent, then any commands that were pipelined behind it.
    fn fetch_more(&mut self, server: &mut Server) {
        let Some(fetch) = &mut self.fetch else {
            return;
        };
        let mut window: usize = fetch.unsent.iter().map(|(_, size)| size).sum();
        while window < FETCH_WINDOW_BYTES {
            let Some((n, stored)) = fetch.todo.pop_front() else {
                break;
            };
            let body = |name: &MessageDataItemName<'_>| {
                matches!(name, MessageDataItemName::BodyExt { .. })
            };
            let asks_body = fetch.names.iter().any(body);
            if stored.quirk == Quirk::Omitted && asks_body {
                continue;
            }
            if stored.quirk == Quirk::Refused && asks_body {
                fetch.todo.clear();
                fetch.refused = true;
                break;
            }
            let (handle, size) = match fetch.body_only {
                true => {
                    let bytes = body_response(self.farm, fetch.user, n, &stored);
                    let size = bytes.len();
                    (server.enqueue_encoded(bytes), size)
                }
                false => {
                    let (data, size) = fetch_response(self.farm, fetch, n, &stored);
                    (server.enqueue_data(data), size)
                }
            };
            fetch.unsent.push_back((handle, size));
            window += size;
        }
        if fetch.todo.is_empty() && fetch.unsent.is_empty() {
            let tag = fetch.tag.clone();
            let name = if fetch.uid { "UID FETCH" } else { "FETCH" };
            let status = match fetch.refused {
                // Exchange's words for a message it cannot send.
                true => tagged_no(
                    tag,
                    "The requested message could not be converted to an RFC-822 compatible format.",
                ),
                false => tagged_ok_owned(tag, format!("{name} completed.")),
            };
            self.fetch = None;
            server.enqueue_status(status);
            while self.fetch.is_none() {
                let Some(command) = self.deferred.pop_front() else {
                    break;
                };
                self.command(server, command);
            }
        }
    }
}

/// `* N FETCH (UID N BODY[] {size}\r\n…)\r\n`, written straight from the
/// message generator: what imap-codec would encode for the UID and body
/// items (checked by `fetch_response_bytes_match_imap_codec`), without its
/// three copies and handful of allocations per message (a quarter of the
/// farm's CPU under the burst scenario, on the cores the gateway uses).
fn body_response(farm: &Farm, user: u32, n: u32, stored: &Stored) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.size as usize + 64);
    // Writing to a Vec cannot fail.
    let _ = write!(out, "* {n} FETCH (UID {n} BODY[] {{{}}}\r\n", stored.size);
    farm.render_into(&mut out, user, n, stored);
    out.extend_from_slice(b")\r\n");
    farm.counters.body_fetched();
    out
}

/// One `* N FETCH (...)` and the bytes it carries.
fn fetch_response(
    farm: &Farm,
    fetch: &Fetching,
    n: u32,
    stored: &Stored,
) -> (Data<'static>, usize) {
    let seq = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let mut size = 64;
    let items = fetch
        .names
        .iter()
        .map(|name| match name {
            MessageDataItemName::Uid => MessageDataItem::Uid(seq),
            MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(stored.announced),
            MessageDataItemName::Flags => MessageDataItem::Flags(Vec::new()),
            MessageDataItemName::InternalDate => MessageDataItem::InternalDate(
                DateTime::try_from(stored.date.fixed_offset())
                    .expect("a UTC date is a valid IMAP date"),
            ),
            _ => {
                let raw = farm.render(fetch.user, n, stored);
                size += raw.len();
                farm.counters.body_fetched();
                // Sent as stored, NUL bytes included (as a real server
                // would): no validation pass, no copy.
                let literal = Literal::unvalidated(raw);
                MessageDataItem::BodyExt {
                    section: None,
                    origin: None,
                    data: NString(Some(IString::Literal(literal))),
                }
            }
        })
        .collect();
    (
        Data::Fetch {
            seq,
            items: Vec1::unvalidated(items),
        },
        size,
    )
}

/// FETCH items the farm answers: what mailgate asks for, and the cheap ones.
fn supported(name: &MessageDataItemName<'_>) -> bool {
    matches!(
        name,
        MessageDataItemName::Uid
            | MessageDataItemName::Rfc822Size
            | MessageDataItemName::Flags
            | MessageDataItemName::InternalDate
            | MessageDataItemName::BodyExt {
                section: None,
                partial: None,
                ..
            }
    )
}

/// Whether a LIST pattern (`*` and `%` match any run) matches `name`.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*' | b'%', rest)) => (0..=name.len()).any(|i| wildcard_match(rest, &name[i..])),
        Some((c, rest)) => name.first() == Some(c) && wildcard_match(rest, &name[1..]),
    }
}

/// Whether message `n` (sequence number = UID) matches `key`; `None` for a
/// key the farm does not implement.
fn matches(key: &SearchKey<'_>, n: u32, stored: &Stored, largest: u32) -> Option<bool> {
    let day = stored.date.date_naive();
    Some(match key {
        SearchKey::All => true,
        SearchKey::Uid(set) | SearchKey::SequenceSet(set) => in_set(set, n, largest),
        SearchKey::Since(date) => day >= *date.as_ref(),
        SearchKey::Before(date) => day < *date.as_ref(),
        SearchKey::On(date) => day == *date.as_ref(),
        SearchKey::Larger(size) => stored.announced > *size,
        SearchKey::Smaller(size) => stored.announced < *size,
        SearchKey::Not(key) => !matches(key, n, stored, largest)?,
        SearchKey::And(keys) => {
            let mut all = true;
            for key in keys.as_ref() {
                all &= matches(key, n, stored, largest)?;
            }
            all
        }
        SearchKey::Or(a, b) => matches(a, n, stored, largest)? || matches(b, n, stored, largest)?,
        _ => return None,
    })
}

/// Whether `n` is in `set`, `*` being `largest` (a range is unordered, so
/// `5:*` with 3 messages is `3:5`).
fn in_set(set: &SequenceSet, n: u32, largest: u32) -> bool {
    let Some(largest) = NonZeroU32::new(largest) else {
        return false;
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(v) => v.expand(largest).get() == n,
        Sequence::Range(a, b) => {
            let (a, b) = (a.expand(largest).get(), b.expand(largest).get());
            (a.min(b)..=a.max(b)).contains(&n)
        }
    })
}

/// Resolves when `count` changes; never without one (or once its sender is gone).
async fn changed(count: Option<&mut watch::Receiver<u32>>) {
    match count {
        Some(count) => {
            if count.changed().await.is_err() {
                pending().await
            }
        }
        None => pending().await,
    }
}

fn tagged_ok(
    tag: Tag<'static>,
    code: Option<Code<'static>>,
    text: &'static str,
) -> Status<'static> {
    Status::ok(Some(tag), code, text).expect("static status text")
}

fn tagged_ok_owned(tag: Tag<'static>, text: String) -> Status<'static> {
    Status::ok(Some(tag), None, text).expect("generated status text")
}

fn tagged_no(tag: Tag<'static>, text: &'static str) -> Status<'static> {
    Status::no(Some(tag), None, text).expect("static status text")
}

fn tagged_bad(tag: Tag<'static>, text: &'static str) -> Status<'static> {
    Status::bad(Some(tag), None, text).expect("static status text")
}

fn tagged_bad_owned(tag: Tag<'static>, text: String) -> Status<'static> {
    Status::bad(Some(tag), None, text).expect("generated status text")
}

fn untagged_ok(code: Code<'static>, text: &'static str) -> Status<'static> {
    Status::ok(None, Some(code), text).expect("static status text")
}

/// A response code imap-types has no variant for (RFC 5530's, say).
fn other_code(name: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(name.as_bytes()))
}

fn bye(text: String) -> Status<'static> {
    Status::bye(None, text).expect("generated status text")
}

#[cfg(test)]
mod tests {
    use imap_codec::{encode::Encoder, ResponseCodec};
    use imap_next::imap_types::response::Response;

    use super::*;
    use crate::farm::FarmConfig;

    #[test]
    fn fetch_response_bytes_match_imap_codec() {
        let farm = Farm::new(FarmConfig::new(1));
        farm.inject(1, 4096);
        farm.append(
            1,
            b"Subject: raw\r\n\r\nbody {with braces} and ) parens\r\n",
        );
        let fetch = Fetching {
            tag: Tag::unvalidated("a1"),
            user: 1,
            uid: true,
            names: vec![
                MessageDataItemName::Uid,
                MessageDataItemName::BodyExt {
                    section: None,
                    partial: None,
                    peek: true,
                },
            ],
            todo: VecDeque::new(),
            unsent: VecDeque::new(),
            body_only: true,
            refused: false,
        };
        for n in 1..=2 {
            let stored = farm.stored(1, n).unwrap();
            let (data, _) = fetch_response(&farm, &fetch, n, &stored);
            let encoded = ResponseCodec::default()
                .encode(&Response::Data(data))
                .dump();
            let ours = body_response(&farm, 1, n, &stored);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&encoded)
            );
        }
    }
}
