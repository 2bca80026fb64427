//! The farm itself: mailboxes and their messages, listeners, and the
//! handles a load test drives (inject, append, faults, stats).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::{rustls, TlsAcceptor};

use crate::fault::{Fault, Faults};
use crate::message;
use crate::session;
use crate::stats::{Counters, Stats};

/// Generated messages up to this size are rendered when injected and kept
/// (the burst's 100,000 4 KiB messages: 400 MiB); larger ones, as the
/// big-attachments scenario's 5–20 MiB, are rendered at each FETCH.
const RENDER_AHEAD_BYTES: usize = 64 << 10;

/// How a farm is set up.
#[derive(Clone, Debug)]
pub struct FarmConfig {
    /// Mailboxes `user1` … `userN`, each with an INBOX.
    pub mailboxes: u32,
    /// Every user's password, and the bearer token XOAUTH2 accepts.
    pub password: String,
    /// Whether IDLE is advertised and accepted (see also [`Farm::set_idle`]).
    pub idle: bool,
    /// Implicit TLS on every listener when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// FETCH responses name the UID after the other items (`* 2 FETCH
    /// (BODY[] {…}… UID 2)`), as some servers do; Dovecot names it first.
    pub uid_last: bool,
}

impl FarmConfig {
    /// `mailboxes` plain-text mailboxes with password `"secret"` and IDLE.
    pub fn new(mailboxes: u32) -> Self {
        Self {
            mailboxes,
            password: "secret".into(),
            idle: true,
            tls: None,
            uid_last: false,
        }
    }
}

/// A running mail farm; share it as `Arc<Farm>`.
pub struct Farm {
    config: FarmConfig,
    /// Like Dovecot, the creation time: a new farm is a new server.
    uidvalidity: u32,
    mailboxes: Vec<Mailbox>,
    tls: Option<TlsAcceptor>,
    pub(crate) faults: Faults,
    pub(crate) counters: Counters,
}

/// One INBOX. Messages are never expunged, so UID = sequence number.
pub(crate) struct Mailbox {
    messages: Mutex<Vec<Stored>>,
    /// The message count, watched by sessions in IDLE.
    count: watch::Sender<u32>,
}

/// What the farm keeps per message: enough to render it again.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) size: u32,
    /// Its RFC822.SIZE, and the size SEARCH LARGER and SMALLER compare: its
    /// length, unless appended with another.
    pub(crate) announced: u32,
    pub(crate) date: DateTime<Utc>,
    /// How it is served unlike its bytes.
    pub(crate) quirk: Quirk,
    injected: Instant,
    /// Its bytes: appended, or generated and small; `None` for a large
    /// generated message (rendered when fetched).
    raw: Option<Arc<[u8]>>,
}

/// How an appended message is served unlike its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quirk {
    None,
    /// Its size is announced as this many bytes.
    Announced(u32),
    /// Its body is never sent: a FETCH of it stops there with NO.
    Refused,
    /// Left out of every body FETCH answer (which ends OK).
    Omitted,
    /// Left out of every FETCH answer: gone, though SEARCH still finds it
    /// (as a message expunged after the SEARCH is).
    Vanished,
}

/// A listener accepting for a farm; dropping it stops accepting (open
/// sessions go on until [`Fault::DropAll`]).
pub struct Running {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Running {
    /// Where the listener is bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Farm {
    /// A farm with empty mailboxes.
    pub fn new(config: FarmConfig) -> Arc<Self> {
        let uidvalidity = u32::try_from(Utc::now().timestamp()).unwrap_or(1).max(1);
        let mailboxes = (0..config.mailboxes)
            .map(|_| Mailbox {
                messages: Mutex::new(Vec::new()),
                count: watch::channel(0).0,
            })
            .collect();
        Arc::new(Self {
            tls: config.tls.clone().map(TlsAcceptor::from),
            faults: Faults::new(config.idle),
            counters: Counters::default(),
            uidvalidity,
            mailboxes,
            config,
        })
    }

    /// Binds `addr` (port 0 picks one) and serves IMAP there.
    pub async fn listen(self: &Arc<Self>, addr: SocketAddr) -> std::io::Result<Running> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let farm = Arc::clone(self);
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((socket, _)) => {
                        let _ = socket.set_nodelay(true);
                        tokio::spawn(session::serve(Arc::clone(&farm), socket));
                    }
                    // Out of descriptors: wait instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        Ok(Running { addr, accept })
    }

    /// The number of mailboxes.
    pub fn mailboxes(&self) -> u32 {
        self.config.mailboxes
    }

    /// The login name of mailbox `user` (1-based).
    pub fn username(user: u32) -> String {
        format!("user{user}")
    }

    /// Every user's password.
    pub fn password(&self) -> &str {
        &self.config.password
    }

    /// The UIDVALIDITY of every INBOX.
    pub fn uidvalidity(&self) -> u32 {
        self.uidvalidity
    }

    /// Adds a generated message of `size` bytes (at least
    /// [`MIN_SIZE`](crate::MIN_SIZE)) to `user`'s INBOX; its UID.
    pub fn inject(&self, user: u32, size: usize) -> u32 {
        self.store(user, size, None, Quirk::None)
    }

    /// Adds `raw` to `user`'s INBOX as it is (an IMAP APPEND); its UID.
    pub fn append(&self, user: u32, raw: &[u8]) -> u32 {
        self.store(user, raw.len(), Some(Arc::from(raw)), Quirk::None)
    }

    /// [`append`](Self::append), but the message's size is announced
    /// (RFC822.SIZE, SEARCH LARGER) as `announced` bytes: a server whose
    /// sizes are estimates, as Exchange's are. Its UID.
    pub fn append_misreported(&self, user: u32, raw: &[u8], announced: u32) -> u32 {
        self.store(
            user,
            raw.len(),
            Some(Arc::from(raw)),
            Quirk::Announced(announced),
        )
    }

    /// [`append`](Self::append), but the farm will not send the message: a
    /// FETCH of its body stops where it comes and answers NO, as Exchange
    /// does for a message it cannot convert. Its UID and size are answered
    /// as usual. Its UID.
    pub fn append_refused(&self, user: u32, raw: &[u8]) -> u32 {
        self.store(user, raw.len(), Some(Arc::from(raw)), Quirk::Refused)
    }

    /// [`append`](Self::append), but the farm leaves the message out of
    /// every answer to a FETCH of its body, and answers OK (its UID and size
    /// are answered as usual): a server that does not say it cannot send a
    /// message. Its UID.
    pub fn append_omitted(&self, user: u32, raw: &[u8]) -> u32 {
        self.store(user, raw.len(), Some(Arc::from(raw)), Quirk::Omitted)
    }

    /// [`append`](Self::append), but as if expunged right after any SEARCH:
    /// SEARCH finds it, every FETCH leaves it out. Its UID.
    pub fn append_vanished(&self, user: u32, raw: &[u8]) -> u32 {
        self.store(user, raw.len(), Some(Arc::from(raw)), Quirk::Vanished)
    }

    fn store(&self, user: u32, size: usize, raw: Option<Arc<[u8]>>, quirk: Quirk) -> u32 {
        let mailbox = self.mailbox(user);
        let mut messages = mailbox.lock();
        let date = Utc::now();
        let size = match &raw {
            Some(_) => size,
            None => size.max(message::MIN_SIZE),
        };
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        let uid = u32::try_from(messages.len() + 1).unwrap_or(u32::MAX);
        // A small generated message is rendered once, here, rather than at
        // every FETCH: the farm serves from the gateway's cores, and
        // rendering was a sixth of its CPU in the burst scenario.
        let raw = match raw {
            None if size as usize <= RENDER_AHEAD_BYTES => {
                let bytes = message::render(self.uidvalidity, user, uid, size as usize, date);
                Some(Arc::from(bytes))
            }
            raw => raw,
        };
        messages.push(Stored {
            size,
            announced: match quirk {
                Quirk::Announced(announced) => announced,
                _ => size,
            },
            quirk,
            date,
            injected: Instant::now(),
            raw,
        });
        mailbox.count.send_replace(uid);
        self.counters.messages_total.fetch_add(1, Ordering::Relaxed);
        uid
    }

    /// Messages in `user`'s INBOX.
    pub fn count(&self, user: u32) -> u32 {
        *self.mailbox(user).count.borrow()
    }

    /// When message `uid` of `user` was injected or appended.
    pub fn injected_at(&self, user: u32, uid: u32) -> Option<Instant> {
        self.stored(user, uid).map(|m| m.injected)
    }

    /// The bytes of message `uid` in `user`'s INBOX, as the farm serves
    /// them (to deliver the same mail to another server).
    pub fn message(&self, user: u32, uid: u32) -> Option<Vec<u8>> {
        Some(self.render(user, uid, &self.stored(user, uid)?))
    }

    pub(crate) fn stored(&self, user: u32, uid: u32) -> Option<Stored> {
        let index = usize::try_from(uid.checked_sub(1)?).ok()?;
        self.mailboxes
            .get(usize::try_from(user.checked_sub(1)?).ok()?)?
            .lock()
            .get(index)
            .cloned()
    }

    /// The farm's counters now.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Starts a new peak for [`Stats::logins_in_flight_peak`].
    pub fn reset_login_peak(&self) {
        self.counters.reset_login_peak();
    }

    /// Applies `fault` to every open session.
    pub fn fault(&self, fault: Fault) {
        self.faults.broadcast(fault);
    }

    /// While on, new connections are closed before the greeting.
    pub fn set_refuse(&self, on: bool) {
        self.faults.refuse.set(on);
    }

    /// Delays the greeting of new connections.
    pub fn set_greeting_delay(&self, delay: Duration) {
        self.faults.set_greeting_delay(delay);
    }

    /// While on, every login (LOGIN, AUTHENTICATE) is answered `NO
    /// [UNAVAILABLE] Temporary authentication failure.`, as Dovecot answers
    /// when its authentication backend is down.
    pub fn set_auth_unavailable(&self, on: bool) {
        self.faults.auth_unavailable.set(on);
    }

    /// While on, every SELECT is answered `NO [INUSE] Mailbox is locked.`,
    /// as a server answers while another process holds the mailbox.
    pub fn set_inbox_in_use(&self, on: bool) {
        self.faults.inbox_in_use.set(on);
    }

    /// While on, IDLE is still advertised but answered `NO [LIMIT] Too many
    /// idling sessions.`, as a server that caps idling connections does.
    pub fn set_idle_refused(&self, on: bool) {
        self.faults.idle_refused.set(on);
    }

    /// Whether new sessions are offered IDLE.
    pub fn set_idle(&self, on: bool) {
        self.faults.idle.set(on);
    }

    /// Whether FETCH responses name the UID last.
    pub(crate) fn uid_last(&self) -> bool {
        self.config.uid_last
    }

    pub(crate) fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    /// The 1-based user number of a login name this farm hosts.
    pub(crate) fn user(&self, name: &str) -> Option<u32> {
        let n: u32 = name.strip_prefix("user")?.parse().ok()?;
        (1..=self.config.mailboxes).contains(&n).then_some(n)
    }

    /// `user`'s INBOX; panics on a user the farm does not host (callers
    /// resolve names with [`Farm::user`] first).
    pub(crate) fn mailbox(&self, user: u32) -> &Mailbox {
        &self.mailboxes[(user - 1) as usize]
    }

    /// The bytes of a stored message.
    pub(crate) fn render(&self, user: u32, uid: u32, stored: &Stored) -> Vec<u8> {
        let mut out = Vec::with_capacity(stored.size as usize);
        self.render_into(&mut out, user, uid, stored);
        out
    }

    /// [`render`](Self::render), appended to `out`: `stored.size` bytes.
    pub(crate) fn render_into(&self, out: &mut Vec<u8>, user: u32, uid: u32, stored: &Stored) {
        match &stored.raw {
            Some(raw) => out.extend_from_slice(raw),
            None => message::render_into(
                out,
                self.uidvalidity,
                user,
                uid,
                stored.size as usize,
                stored.date,
            ),
        }
    }
}

impl Mailbox {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<Stored>> {
        // A panic while holding the lock cannot leave the Vec half-written.
        self.messages.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn watch(&self) -> watch::Receiver<u32> {
        self.count.subscribe()
    }
}
