//! The physical limit of a catch-up: how fast a server hands out its
//! messages when nothing is done with them. One session per mailbox, all at
//! once (as the gateway runs them): LOGIN, SELECT INBOX, then `UID FETCH
//! a:b (UID BODY.PEEK[])` in large batches; each message is counted and
//! dropped — no MIME parsing, nothing stored.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use imap_next::{
    client::{Client, Event, Options},
    imap_types::{
        command::{Command, CommandBody},
        core::Tag,
        fetch::{MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName},
        response::{Data, Status, StatusKind},
        sequence::SequenceSet,
    },
    stream::Stream,
};
use tokio::net::TcpStream;

/// UIDs asked for in one UID FETCH.
pub const BATCH: u32 = 1000;
/// Longest wait for any one server event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// What one mailbox's fetch saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Messages received.
    pub messages: u64,
    /// Message bytes received.
    pub bytes: u64,
    /// Highest UID received.
    pub last_uid: u32,
}

/// What every mailbox's fetch saw, and how long the slowest took.
#[derive(Debug, Clone, Default)]
pub struct RawFetch {
    /// Per mailbox, in the order asked.
    pub mailboxes: Vec<Fetched>,
    /// From the first connect to the last message.
    pub elapsed: Duration,
}

impl RawFetch {
    /// Messages over all mailboxes.
    pub fn messages(&self) -> u64 {
        self.mailboxes.iter().map(|f| f.messages).sum()
    }

    /// Messages per second over all mailboxes.
    pub fn rate(&self) -> f64 {
        self.messages() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Fetches every message of each `(user, password)` INBOX at `addr` (plain
/// IMAP), all sessions at once.
pub async fn fetch_all(
    addr: SocketAddr,
    accounts: &[(String, String)],
) -> Result<RawFetch, String> {
    let started = Instant::now();
    let sessions: Vec<_> = accounts
        .iter()
        .cloned()
        .map(|(user, password)| tokio::spawn(fetch_one(addr, user, password)))
        .collect();
    let mut mailboxes = Vec::with_capacity(sessions.len());
    for s in sessions {
        mailboxes.push(s.await.map_err(|e| format!("raw fetch task: {e}"))??);
    }
    Ok(RawFetch {
        mailboxes,
        elapsed: started.elapsed(),
    })
}

struct Session {
    stream: Stream,
    client: Client,
    tags: u32,
    user: String,
}

async fn fetch_one(addr: SocketAddr, user: String, password: String) -> Result<Fetched, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{user}: connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut s = Session {
        stream: Stream::insecure(tcp),
        client: Client::new(Options::default()),
        tags: 0,
        user,
    };
    while !matches!(s.event().await?, Event::GreetingReceived { .. }) {}
    let login = CommandBody::login(s.user.clone(), password)
        .map_err(|e| format!("{}: LOGIN: {e:?}", s.user))?;
    s.run(login, |_| {}).await?;
    let mut exists = 0;
    let select = CommandBody::select("INBOX").map_err(|e| format!("SELECT: {e:?}"))?;
    s.run(select, |d| {
        if let Data::Exists(n) = d {
            exists = n;
        }
    })
    .await?;
    let mut fetched = Fetched::default();
    let items = MacroOrMessageDataItemNames::MessageDataItemNames(vec![
        MessageDataItemName::Uid,
        MessageDataItemName::BodyExt {
            section: None,
            partial: None,
            peek: true,
        },
    ]);
    // A fresh Maildir numbers its messages 1..=EXISTS; the last batch is
    // open-ended in case it does not.
    let mut from = 1;
    while from <= exists.max(1) {
        let range = match from + BATCH > exists {
            true => format!("{from}:*"),
            false => format!("{from}:{}", from + BATCH - 1),
        };
        let set = SequenceSet::try_from(range.as_str()).map_err(|e| format!("{range}: {e:?}"))?;
        let fetch = CommandBody::fetch(set, items.clone(), true)
            .map_err(|e| format!("UID FETCH: {e:?}"))?;
        s.run(fetch, |d| {
            if let Data::Fetch { items, .. } = d {
                for item in items.into_iter() {
                    match item {
                        MessageDataItem::Uid(u) => fetched.last_uid = fetched.last_uid.max(u.get()),
                        MessageDataItem::BodyExt { data, .. } => {
                            fetched.messages += 1;
                            fetched.bytes += data.0.map_or(0, |d| d.as_ref().len()) as u64;
                        }
                        _ => {}
                    }
                }
            }
        })
        .await?;
        from += BATCH;
    }
    let _ = s.run(CommandBody::Logout, |_| {}).await;
    Ok(fetched)
}

impl Session {
    async fn event(&mut self) -> Result<Event, String> {
        match tokio::time::timeout(EVENT_TIMEOUT, self.stream.next(&mut self.client)).await {
            Ok(Ok(e)) => Ok(e),
            Ok(Err(e)) => Err(format!("{}: {e:?}", self.user)),
            Err(_) => Err(format!("{}: no answer in {EVENT_TIMEOUT:?}", self.user)),
        }
    }

    /// Runs `body` to its tagged OK, handing each untagged data to `data`.
    async fn run(
        &mut self,
        body: CommandBody<'static>,
        mut data: impl FnMut(Data<'static>),
    ) -> Result<(), String> {
        self.tags += 1;
        let tag = Tag::unvalidated(format!("r{}", self.tags));
        self.client.enqueue_command(Command {
            tag: tag.clone(),
            body,
        });
        loop {
            match self.event().await? {
                Event::DataReceived { data: d } => data(d),
                Event::StatusReceived {
                    status: Status::Tagged(t),
                } if t.tag == tag => {
                    return match t.body.kind {
                        StatusKind::Ok => Ok(()),
                        _ => Err(format!("{}: {}", self.user, t.body.text)),
                    }
                }
                Event::StatusReceived {
                    status: Status::Bye(bye),
                } => return Err(format!("{}: BYE {}", self.user, bye.text)),
                _ => {}
            }
        }
    }
}
