//! The load-test mail farm (load-tests/) is only useful if mailgate cannot
//! tell it from a real server: the same conversation, the one mailgate
//! holds, against Dovecot and against the farm must read the same. Then
//! mailgate itself against the farm: every message once, every fault
//! survived.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_next::client::{Client, Event, Options};
use imap_next::imap_types::{
    command::{Command, CommandBody},
    core::Tag,
    fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName},
    response::{Capability, Code, Data, Status},
    search::SearchKey,
    sequence::SequenceSet,
};
use imap_next::stream::Stream;
use mailfarm::{Farm, FarmConfig, Fault, Running};
use support::{eventually, mail, users, Dovecot, DovecotOptions, Gateway};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

/// One client conversation, recorded as normalised lines: what differs
/// between servers by design (texts, capability lists beyond what mailgate
/// reads, UIDVALIDITY values, RECENT) is left out; everything mailgate acts
/// on is kept.
struct Transcript {
    stream: Stream,
    client: Client,
    next_tag: u32,
    lines: Vec<String>,
}

impl Transcript {
    async fn connect(port: u16) -> Self {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut t = Self {
            stream: Stream::insecure(tcp),
            client: Client::new(Options::default()),
            next_tag: 0,
            lines: Vec::new(),
        };
        loop {
            if let Event::GreetingReceived { greeting } = t.event().await {
                let caps = match greeting.code {
                    Some(Code::Capability(caps)) => caps_line(caps.as_ref()),
                    _ => "no capabilities".into(),
                };
                t.lines.push(format!("greeting {:?} {caps}", greeting.kind));
                return t;
            }
        }
    }

    async fn event(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.stream.next(&mut self.client))
            .await
            .expect("server answered in time")
            .expect("connection open")
    }

    fn send(&mut self, body: CommandBody<'static>) -> Tag<'static> {
        self.next_tag += 1;
        let tag = Tag::unvalidated(format!("t{}", self.next_tag));
        self.lines.push(format!("> {}", body.name()));
        self.client.enqueue_command(Command {
            tag: tag.clone(),
            body,
        });
        tag
    }

    /// Sends `body` and records every response until its tagged status.
    async fn run(&mut self, body: CommandBody<'static>) {
        let tag = self.send(body);
        self.until_tagged(&tag).await;
    }

    async fn until_tagged(&mut self, tag: &Tag<'static>) {
        loop {
            match self.event().await {
                Event::DataReceived { data } => self.data(data),
                Event::StatusReceived { status } => {
                    let done = matches!(&status, Status::Tagged(t) if t.tag == *tag);
                    self.status(status);
                    if done {
                        return;
                    }
                }
                Event::CommandRejected { status, .. } => {
                    self.status(status);
                    return;
                }
                _ => {}
            }
        }
    }

    fn data(&mut self, data: Data<'static>) {
        let line = match data {
            Data::Capability(caps) => format!("* CAPABILITY {}", caps_line(caps.as_ref())),
            Data::Flags(_) => "* FLAGS".into(),
            Data::Exists(n) => format!("* {n} EXISTS"),
            Data::Recent(_) => return,
            Data::Search(uids) => format!("* SEARCH {uids:?}"),
            Data::Fetch { seq, items } => {
                let mut items: Vec<String> = items
                    .into_iter()
                    .map(|item| match item {
                        MessageDataItem::Uid(u) => format!("UID {u}"),
                        MessageDataItem::Rfc822Size(s) => format!("RFC822.SIZE {s}"),
                        MessageDataItem::BodyExt { data, .. } => {
                            let raw = data.0.map(|s| s.into_inner().into_owned());
                            format!("BODY[] {:?}", String::from_utf8_lossy(&raw.unwrap()))
                        }
                        other => format!("{other:?}"),
                    })
                    .collect();
                items.sort();
                format!("* {seq} FETCH {items:?}")
            }
            other => format!("{other:?}"),
        };
        self.lines.push(line);
    }

    fn status(&mut self, status: Status<'static>) {
        let (who, kind, code) = match status {
            Status::Tagged(t) => ("tagged", format!("{:?}", t.body.kind), t.body.code),
            Status::Untagged(b) => ("*", format!("{:?}", b.kind), b.code),
            Status::Bye(_) => ("*", "BYE".into(), None),
        };
        let code = match code {
            None | Some(Code::Capability(_)) => String::new(),
            Some(Code::UidValidity(_)) => "[UIDVALIDITY]".into(),
            Some(Code::Other(other)) => format!("[{}]", String::from_utf8_lossy(other.inner())),
            Some(code) => format!("[{code:?}]"),
        };
        self.lines
            .push(format!("{who} {kind} {code}").trim_end().to_owned());
    }
}

/// The capabilities mailgate acts on.
fn caps_line(caps: &[Capability<'_>]) -> String {
    let wanted = |c: &&Capability<'_>| {
        matches!(
            c,
            Capability::Imap4Rev1 | Capability::Idle | Capability::Auth(_)
        )
    };
    let mut kept: Vec<String> = caps.iter().filter(wanted).map(|c| c.to_string()).collect();
    // mailgate logs in with LOGIN (or XOAUTH2 when configured, which Dovecot
    // offers only with an OAuth passdb); other mechanisms are noise.
    kept.retain(|c| !c.starts_with("AUTH=") || c == "AUTH=PLAIN");
    kept.sort();
    kept.join(" ")
}

fn uid_fetch(set: &str, items: Vec<MessageDataItemName<'static>>) -> CommandBody<'static> {
    CommandBody::fetch(
        SequenceSet::try_from(set).unwrap(),
        MacroOrMessageDataItemNames::MessageDataItemNames(items),
        true,
    )
    .unwrap()
}

fn uid_search(set: &str) -> CommandBody<'static> {
    uid_search_with(set, None)
}

fn uid_search_with(set: &str, key: Option<SearchKey<'static>>) -> CommandBody<'static> {
    let mut keys = vec![SearchKey::Uid(SequenceSet::try_from(set).unwrap())];
    keys.extend(key);
    CommandBody::search(None, keys.try_into().unwrap(), true)
}

/// mailgate's conversation: capabilities, login, SELECT, catch-up (search
/// above a checkpoint, the too-large ones, sizes, bodies), IDLE woken by new mail, NOOP, a
/// missing folder, a wrong password, LOGOUT.
async fn conversation(port: u16, password: &str, deliver: impl Fn(&[u8])) -> Vec<String> {
    let mut t = Transcript::connect(port).await;
    t.run(CommandBody::Capability).await;
    t.run(CommandBody::login("user1", password.to_owned()).unwrap())
        .await;
    t.run(CommandBody::select("INBOX").unwrap()).await;
    t.run(uid_search("2:*")).await;
    t.run(uid_search("9:*")).await;
    // Every message is larger than 1 byte, none than 1 MB.
    t.run(uid_search_with("2:*", Some(SearchKey::Larger(1))))
        .await;
    t.run(uid_search_with("1:*", Some(SearchKey::Larger(1_000_000))))
        .await;
    t.run(uid_fetch(
        "1:3",
        vec![MessageDataItemName::Uid, MessageDataItemName::Rfc822Size],
    ))
    .await;
    let body = MessageDataItemName::BodyExt {
        section: None,
        partial: None,
        peek: true,
    };
    t.run(uid_fetch("2:3", vec![MessageDataItemName::Uid, body]))
        .await;
    let tag = t.send(CommandBody::Idle);
    loop {
        if let Event::IdleAccepted { .. } = t.event().await {
            t.lines.push("+ idling".into());
            break;
        }
    }
    deliver(&mail::simple("four@client.test", "four"));
    loop {
        if let Event::DataReceived { data } = t.event().await {
            let exists = matches!(data, Data::Exists(_));
            t.data(data);
            if exists {
                break;
            }
        }
    }
    t.client.set_idle_done().unwrap();
    t.until_tagged(&tag).await;
    t.run(CommandBody::Noop).await;
    t.run(uid_search("4:*")).await;
    // A wake-up's new mail with its sizes; `9:*` reaches back to the last.
    let sizes = || vec![MessageDataItemName::Uid, MessageDataItemName::Rfc822Size];
    t.run(uid_fetch("4:*", sizes())).await;
    t.run(uid_fetch("9:*", sizes())).await;
    t.run(CommandBody::select("Nope").unwrap()).await;
    t.run(CommandBody::Logout).await;

    let mut refused = Transcript::connect(port).await;
    refused
        .run(CommandBody::login("user1", "wrong").unwrap())
        .await;
    t.lines.extend(refused.lines);
    t.lines
}

/// `farm` listening on a free loopback port.
fn listen(rt: &tokio::runtime::Runtime, farm: &Arc<Farm>) -> Running {
    rt.block_on(farm.listen(SocketAddr::from(([127, 0, 0, 1], 0))))
        .unwrap()
}

fn farm_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_farm_answers_mailgates_conversation_as_dovecot_does() {
    let accounts = users("user", 2)[1..].to_vec();
    assert_eq!(accounts[0].0, "user1");
    let password = accounts[0].1.clone();
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let rt = farm_runtime();
    let farm = Farm::new(FarmConfig {
        password: password.clone(),
        ..FarmConfig::new(1)
    });
    let listener = listen(&rt, &farm);
    for i in 1..=3 {
        let raw = mail::simple(&format!("m{i}@client.test"), &format!("message {i}"));
        dovecot.deliver("user1", &raw, None);
        farm.append(1, &raw);
    }

    let from_dovecot = rt.block_on(conversation(dovecot.port, &password, |raw| {
        dovecot.deliver("user1", raw, None)
    }));
    let from_farm = rt.block_on(conversation(listener.addr().port(), &password, |raw| {
        farm.append(1, raw);
    }));

    assert!(
        from_dovecot.iter().any(|l| l.contains("BODY[]")),
        "{from_dovecot:#?}"
    );
    assert_eq!(from_farm, from_dovecot);
}

/// `[[mailbox]]` entries for farm users `1..=n`.
fn farm_mailboxes(farm: &Farm, port: u16, n: u32, extra: &str) -> String {
    (1..=n)
        .map(|u| {
            format!(
                "[[mailbox]]\nid = \"user{u}\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
                 username = \"user{u}\"\npassword = {:?}\n{extra}\n",
                farm.password()
            )
        })
        .collect()
}

fn all_idle(g: &Gateway, n: usize) -> bool {
    let boxes = g.json("/api/mailboxes");
    let boxes = boxes.as_array().unwrap();
    boxes.len() == n && boxes.iter().all(|b| b["state"] == "idle")
}

/// One farm mailbox holding "small before", what a test appends, and
/// "small after", with a gateway over it.
struct AroundOne {
    g: Gateway,
    farm: Arc<Farm>,
    /// The UID of "small after".
    last: u32,
    _listener: Running,
    _rt: tokio::runtime::Runtime,
    _data: tempfile::TempDir,
}

impl AroundOne {
    fn start(config: FarmConfig, middle: impl FnOnce(&Farm), pipeline: &str) -> Self {
        let rt = farm_runtime();
        let farm = Farm::new(config);
        let listener = listen(&rt, &farm);
        farm.append(1, &mail::simple("a@c.test", "small before"));
        middle(&farm);
        let last = farm.append(1, &mail::simple("b@c.test", "small after"));
        let data = tempfile::tempdir().unwrap();
        let g = Gateway::start(
            &data.path().join("store"),
            pipeline,
            // A failed session is retried soon; polling is frequent.
            &farm_mailboxes(
                &farm,
                listener.addr().port(),
                1,
                "backoff_initial_ms = 50\npoll_interval_seconds = 1",
            ),
        );
        Self {
            g,
            farm,
            last,
            _listener: listener,
            _rt: rt,
            _data: data,
        }
    }

    /// The mailbox went past the middle message and idles, unfailed.
    fn went_on(&self) {
        // Idle (or polling) is reported once the fetch is done; the
        // checkpoint moves when the pipeline has committed it.
        eventually("the checkpoint at the last message", WAIT, || {
            self.g.json("/api/mailboxes/user1")["checkpoint"]["INBOX"]["uid"] == self.last
        });
        self.g.wait_for_state("user1", "idle", WAIT);
        let view = self.g.json("/api/mailboxes/user1");
        assert!(view["last_error"].is_null(), "{view}");
    }

    /// Waits for the rejection of `uid`, checks its code; the rejection.
    fn rejected(&self, uid: u32, code: &str) -> serde_json::Value {
        let find = || {
            let all = self.g.rejections();
            all.into_iter().find(|r| r["source"]["uid"] == uid)
        };
        eventually(&format!("UID {uid} rejected"), WAIT, || find().is_some());
        let rejection = find().unwrap();
        assert_eq!(rejection["code"], code, "{rejection}");
        rejection
    }
}

/// A server's sizes can be estimates (Exchange's are): a message announced
/// small (RFC822.SIZE, SEARCH LARGER) that is longer than any response the
/// session reads is skipped by the client, recorded as rejected, and the
/// mailbox goes on. It used to fail the session on it at every reconnect,
/// holding back all later mail for good.
#[test]
fn a_message_longer_than_announced_is_rejected_and_the_mailbox_goes_on() {
    let huge = mail::sized("huge@c.test", 300_000);
    let run = AroundOne::start(
        FarmConfig::new(1),
        |farm| {
            farm.append_misreported(1, &huge, 2_000);
        },
        "max_message_bytes = 100000",
    );
    let g = &run.g;
    g.wait_for_tickets(None, 2, WAIT);
    let rejection = run.rejected(2, "message_too_large");
    assert!(rejection["size"].as_u64().unwrap() > 100_000, "{rejection}");
    run.went_on();
    // New mail keeps coming in.
    run.farm.append(1, &mail::simple("c@c.test", "later"));
    g.wait_for_tickets(None, 3, WAIT);
    assert_eq!(g.rejections().len(), 1);
}

/// Some servers name the UID after the message (`* 3 FETCH (BODY[] {…}…
/// UID 3)`): a message longer than announced is then skipped with its UID,
/// and the response does not say which message it was. The messages after
/// the last one placed are fetched again, one at a time until one comes
/// back: the long one is recorded as rejected under its own UID, every
/// other message becomes one ticket, and the mailbox goes on. The session
/// used to fail on it at every reconnect.
#[test]
fn a_long_message_whose_uid_comes_after_it_is_rejected_under_its_own_uid() {
    let huge = mail::sized("huge@c.test", 300_000);
    let run = AroundOne::start(
        FarmConfig {
            uid_last: true,
            ..FarmConfig::new(1)
        },
        |farm| {
            farm.append(1, &mail::simple("c@c.test", "small between 1"));
            farm.append_misreported(1, &huge, 2_000);
            farm.append(1, &mail::simple("d@c.test", "small between 2"));
        },
        "max_message_bytes = 100000",
    );
    let g = &run.g;
    g.wait_for_tickets(None, 4, WAIT);
    run.rejected(3, "message_too_large");
    assert_eq!(g.rejections().len(), 1);
    run.went_on();
    let mut subjects: Vec<String> = g
        .tickets(None)
        .iter()
        .map(|t| t["subject"].as_str().unwrap().to_owned())
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "small after",
            "small before",
            "small between 1",
            "small between 2"
        ]
    );
    // Arriving while idle, the long one first in its fetch.
    let long = run.farm.append_misreported(1, &huge, 2_000);
    run.farm.append(1, &mail::simple("e@c.test", "later"));
    g.wait_for_tickets(None, 5, WAIT);
    run.rejected(long, "message_too_large");
}

/// A server may refuse to send one message (Exchange answers NO to a FETCH
/// that reaches a message it cannot convert, and stops there). The rest of
/// the fetch is fetched again; the message, refused alone while its size is
/// still answered and other mail comes through, is recorded as rejected
/// under its UID, and the mailbox goes on. Without other mail to show the
/// server can send at all, the session fails (`imap_command_refused`) and
/// is retried: no message is given up for a server that sends nothing. The
/// mailbox used to fail on such a message at every reconnect.
#[test]
fn a_message_the_server_will_not_send_is_rejected_and_the_mailbox_goes_on() {
    let refused = |run: &AroundOne, uid: u32| {
        let r = run.rejected(uid, "message_refused_by_server");
        assert!(r["reason"].as_str().unwrap().contains("RFC-822"), "{r}");
    };
    // Amid a fetch, after mail that came through.
    let poison = mail::simple("p@c.test", "never sent");
    let run = AroundOne::start(
        FarmConfig::new(1),
        |farm| {
            farm.append(1, &mail::simple("c@c.test", "small between 1"));
            farm.append_refused(1, &poison);
            farm.append(1, &mail::simple("d@c.test", "small between 2"));
        },
        "",
    );
    run.g.wait_for_tickets(None, 4, WAIT);
    refused(&run, 3);
    run.went_on();
    // Two first in a wake-up's fetch: the next message that comes shows
    // mail comes through.
    let first = run.farm.append_refused(1, &poison);
    let second = run.farm.append_refused(1, &poison);
    run.farm
        .append(1, &mail::simple("e@c.test", "after the first two"));
    run.g.wait_for_tickets(None, 5, WAIT);
    refused(&run, first);
    refused(&run, second);
    // Alone: nothing shows the server can send mail; the session fails
    // and is retried until new mail does.
    let alone = run.farm.append_refused(1, &poison);
    eventually("the session failed on it", WAIT, || {
        run.g.json("/api/mailboxes/user1")["last_error"]["code"] == "imap_command_refused"
    });
    assert_eq!(run.g.rejections().len(), 3);
    run.farm
        .append(1, &mail::simple("f@c.test", "after the lone one"));
    run.g.wait_for_tickets(None, 6, WAIT);
    refused(&run, alone);
    assert_eq!(run.g.tickets(None).len(), 6);
    let metrics = run.g.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l == "mailgate_messages_rejected_total{code=\"message_refused_by_server\"} 4"),
        "{metrics}"
    );
}

/// A NO whose code says it will pass is not the mailbox's fault: Dovecot
/// answers every login `NO [UNAVAILABLE] Temporary authentication failure.`
/// while its authentication backend (LDAP, a database) is down, and a
/// server answers SELECT `NO [INUSE]` while another process holds the
/// mailbox. The mailbox retries with backoff (`imap_command_refused`): it
/// neither parks in needs_reauth, which would hold it until an
/// administrator acted, nor reports a wrong folder name; once the server
/// answers again, its mail comes in.
/// A server may leave a message out of its answer to a FETCH and still
/// answer OK (RFC 3501 asks for a NO when it cannot send one). mailgate
/// took such a message as expunged and skipped it: the checkpoint moved
/// past it, and it was lost without a trace. Now a message left out while
/// the server still answers for its size is recorded as rejected under its
/// UID, and the mailbox goes on.
#[test]
fn a_message_left_out_of_a_fetch_answer_is_rejected_not_skipped() {
    let run = AroundOne::start(
        FarmConfig::new(1),
        |farm| {
            farm.append_omitted(1, &mail::simple("left@c.test", "left out"));
        },
        "",
    );
    run.g.wait_for_tickets(None, 2, WAIT);
    let rejection = run.rejected(2, "message_refused_by_server");
    let reason = rejection["reason"].as_str().unwrap();
    assert!(reason.contains("left the message out"), "{rejection}");
    run.went_on();
    assert_eq!(run.g.rejections().len(), 1);
}

/// Messages expunged between the SEARCH that found them and their FETCH
/// (the farm's "vanished" ones: every FETCH leaves them out) are gone, not
/// refused: nothing is recorded and the mailbox goes on. In batches of two,
/// each is the last of its batch's answer, then in the middle of one.
#[test]
fn messages_gone_before_their_fetch_are_skipped_without_error() {
    for fetch_batch in [2, 200] {
        let run = AroundOne::start(
            FarmConfig::new(1),
            |farm| {
                farm.append_vanished(1, &mail::simple("gone1@c.test", "gone"));
                farm.append(1, &mail::simple("mid@c.test", "small middle"));
                farm.append_vanished(1, &mail::simple("gone2@c.test", "gone"));
            },
            &format!("fetch_batch = {fetch_batch}"),
        );
        run.went_on();
        assert_eq!(run.g.tickets(None).len(), 3, "fetch_batch {fetch_batch}");
        assert!(run.g.rejections().is_empty(), "fetch_batch {fetch_batch}");
    }
}

#[test]
fn a_refusal_that_passes_is_retried_until_it_does() {
    for (fault, shown_as_not) in [
        (
            Farm::set_auth_unavailable as fn(&Farm, bool),
            "needs_reauth",
        ),
        (Farm::set_inbox_in_use, "imap_folder_not_found"),
    ] {
        let run = AroundOne::start(FarmConfig::new(1), |farm| fault(farm, true), "");
        let view = || run.g.json("/api/mailboxes/user1");
        eventually("the refusal reported", WAIT, || {
            view()["last_error"]["code"] == "imap_command_refused"
        });
        let refusals = |g: &Gateway| {
            g.metrics()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("mailgate_mailbox_errors_total{code=\"imap_command_refused\"} ")
                })
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        eventually("retried", WAIT, || refusals(&run.g) >= 3);
        let seen = view();
        assert_ne!(seen["state"], shown_as_not, "{seen}");
        assert_ne!(seen["last_error"]["code"], shown_as_not, "{seen}");
        fault(&run.farm, false);
        run.g.wait_for_tickets(None, 2, WAIT);
        run.went_on();
    }
}

/// A server may advertise IDLE and still refuse it (a cap on idling
/// sessions). The session polls instead: the mailbox is idle with the
/// polling notice and no error, and new mail still comes in. It used to
/// fail the session at every IDLE and reconnect with backoff.
#[test]
fn a_refused_idle_falls_back_to_polling() {
    let run = AroundOne::start(FarmConfig::new(1), |farm| farm.set_idle_refused(true), "");
    run.went_on();
    let view = run.g.json("/api/mailboxes/user1");
    assert_eq!(view["notice"]["code"], "imap_idle_unsupported", "{view}");
    run.farm
        .append(1, &mail::simple("g@c.test", "found by polling"));
    run.g.wait_for_tickets(None, 3, WAIT);
    let view = run.g.json("/api/mailboxes/user1");
    assert!(view["last_error"].is_null(), "{view}");
}

/// IMAP forbids NUL in a literal, so imap-codec refuses a FETCH response
/// whose message holds one; some servers send such messages as stored (the
/// farm does). The message still becomes a ticket, its bytes as sent, and
/// the mailbox goes on: it used to fail the session on it at every
/// reconnect.
#[test]
fn a_message_with_a_nul_byte_becomes_a_ticket_and_the_mailbox_goes_on() {
    let mut nul = mail::simple("nul@c.test", "with a NUL");
    nul.extend_from_slice(b"binary\0junk\r\n");
    let run = AroundOne::start(
        FarmConfig::new(1),
        |farm| {
            farm.append(1, &nul);
        },
        "",
    );
    let g = &run.g;
    g.wait_for_tickets(None, 3, WAIT);
    run.went_on();
    assert!(g.rejections().is_empty(), "{:?}", g.rejections());
    let ticket = g
        .tickets(None)
        .into_iter()
        .find(|t| t["subject"] == "with a NUL")
        .expect("the NUL message's ticket");
    let id = ticket["id"].as_u64().unwrap();
    let full = g.json(&format!("/api/tickets/{id}"));
    let sha = full["conversation"][0]["content"]["raw_sha256"]
        .as_str()
        .unwrap();
    let (status, raw) =
        support::gateway::http_get(g.port(), &format!("/api/messages/{sha}/raw")).unwrap();
    assert_eq!(status, 200);
    assert!(
        raw.as_bytes().ends_with(b"binary\0junk\r\n"),
        "the bytes as sent"
    );
}

#[test]
fn mailgate_takes_every_farm_message_once_through_faults() {
    const N: u32 = 40;
    let rt = farm_runtime();
    let farm = Farm::new(FarmConfig::new(N));
    let listener = listen(&rt, &farm);
    let port = listener.addr().port();
    // A backlog to catch up on, one large message among it.
    for user in 1..=N {
        farm.inject(user, 4096);
    }
    farm.inject(7, 3 << 20);
    let data = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        &data.path().join("store"),
        "",
        &farm_mailboxes(&farm, port, N, ""),
    );
    g.wait_for_tickets(None, N as usize + 1, WAIT);
    eventually("every mailbox in IDLE", WAIT, || all_idle(&g, N as usize));
    assert_eq!(farm.stats().idling, u64::from(N));

    // New mail by IDLE push.
    for user in 1..=N {
        farm.inject(user, 2048);
    }
    g.wait_for_tickets(None, 2 * N as usize + 1, WAIT);

    // The server goes away mid-IDLE, and then throttles with a hint.
    farm.fault(Fault::DropAll);
    for user in 1..=N {
        farm.inject(user, 2048);
    }
    g.wait_for_tickets(None, 3 * N as usize + 1, WAIT);
    eventually("every mailbox back in IDLE", WAIT, || {
        all_idle(&g, N as usize)
    });
    farm.fault(Fault::ThrottleBye { backoff_ms: 1500 });
    eventually("throttling reported", WAIT, || {
        g.metrics()
            .lines()
            .any(|l| l.starts_with("mailgate_mailbox_errors_total{code=\"imap_throttled\"}"))
    });
    for user in 1..=N {
        farm.inject(user, 2048);
    }
    let tickets = g.wait_for_tickets(None, 4 * N as usize + 1, WAIT);
    eventually("every mailbox back in IDLE", WAIT, || {
        all_idle(&g, N as usize)
    });

    let mut subjects: Vec<&str> = tickets
        .iter()
        .map(|t| t["subject"].as_str().unwrap())
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    assert_eq!(tickets.len(), 4 * N as usize + 1);
    assert_eq!(subjects.len(), tickets.len(), "a message was doubled");
    assert!(g.rejections().is_empty(), "{:?}", g.rejections());
}

/// Servers announce new mail once, with whatever command is running: an
/// EXISTS that arrives during a FETCH is not repeated in the IDLE after it.
/// mailgate's client remembers it, so the session searches again instead of
/// idling past the message.
#[test]
fn new_mail_announced_during_a_fetch_is_not_lost_before_idle() {
    use mailgate::mailbox::imap::{Imap, Steps};
    let rt = farm_runtime();
    let farm = Farm::new(FarmConfig::new(1));
    let listener = listen(&rt, &farm);
    let text = farm_mailboxes(&farm, listener.addr().port(), 1, "");
    let cfg = mailgate::config::from_toml(&text, std::path::Path::new(".")).unwrap();
    rt.block_on(async {
        let mut steps = Steps::default();
        let mut imap = Imap::connect(&cfg.mailboxes[0], 1 << 20, &mut steps)
            .await
            .unwrap();
        // The farm announces its capabilities with LOGIN's answer (untagged):
        // they are kept, and no CAPABILITY command is spent on them.
        assert!(imap.has("IDLE"));
        let names: Vec<&str> = steps.0.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(names, ["tcp_connect", "greeting", "login"]);
        farm.inject(1, 2048);
        imap.select("INBOX").await.unwrap();
        assert_eq!(
            imap.search_with_larger((0, None), None, 1 << 20)
                .await
                .unwrap(),
            (vec![1], vec![])
        );
        assert!(!imap.mail_since_search());
        farm.inject(1, 2048);
        // The farm (like Dovecot) reports the new message before answering.
        assert_eq!(imap.sizes(&[1]).await.unwrap().len(), 1);
        assert!(
            imap.mail_since_search(),
            "the EXISTS during FETCH was missed"
        );
        assert_eq!(
            imap.search_with_larger((1, None), None, 1024)
                .await
                .unwrap(),
            (vec![2], vec![(2, 2048)])
        );
        assert!(!imap.mail_since_search());
        // A wake-up's sync: the new messages and their sizes at once.
        farm.inject(1, 4096);
        farm.inject(1, 512);
        assert_eq!(imap.sizes(&[1]).await.unwrap().len(), 1);
        assert!(imap.mail_since_search());
        assert_eq!(
            imap.new_with_sizes(2, 1024).await.unwrap(),
            (vec![3, 4], vec![(3, 4096)])
        );
        assert!(!imap.mail_since_search());
        assert_eq!(
            imap.new_with_sizes(4, 1024).await.unwrap(),
            (vec![], vec![])
        );
    });
}
