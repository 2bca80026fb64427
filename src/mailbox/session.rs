//! One folder's session, as a tokio task that owns its IMAP connection:
//! connect → SELECT → catch up from the checkpoint → IDLE → fetch what IDLE
//! announces → … until shutdown or a failure, which it reports to its actor.

use std::iter::Peekable;
use std::sync::Arc;

use actix::{Message, Recipient};
use bytes::Bytes;
use futures::FutureExt;
use imap_codec::imap_types::core::Tag;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    admission::Admission,
    error::MailboxError,
    imap::{FetchedBody, IdleEnd, Imap, Steps},
};
use crate::{
    config::{MailboxConfig, PipelineConfig},
    parse::{ParseJob, Parser},
    pipeline::{handoff_limit, Body, Committed, Edge, Fetched, Slot, HANDOFF_BYTES},
    store::{Source, Store},
    telemetry,
};

/// Progress of a folder session, reported to its mailbox actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Connecting and logging in.
    Connecting,
    /// Catching up.
    Syncing,
    /// Caught up; waiting in IDLE.
    Idle,
    /// Caught up; the server lacks IDLE, so polling.
    Polling,
    /// The session ended: `Ok` when asked to stop, the failure otherwise.
    Ended(Result<(), MailboxError>),
}

/// A progress report of folder `folder` (index into the mailbox's folders).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SessionEvent {
    /// Folder index.
    pub folder: usize,
    /// What happened.
    pub progress: Progress,
}

/// Everything a folder session needs; moved into its task.
pub struct SessionContext {
    /// The mailbox's settings.
    pub mailbox: Arc<MailboxConfig>,
    /// Folder index in `mailbox.folders`.
    pub folder: usize,
    /// Pipeline sizes.
    pub pipeline: Arc<PipelineConfig>,
    /// The mailbox → parser edge.
    pub parse: Edge<Parser>,
    /// Read access to checkpoints.
    pub store: Arc<dyn Store>,
    /// Progress reports go here.
    pub events: Recipient<SessionEvent>,
    /// Commit notices go here.
    pub committed: Recipient<Committed>,
    /// Becomes `true` when the gateway stops.
    pub shutdown: watch::Receiver<bool>,
    /// Per-host login gates.
    pub admission: Arc<Admission>,
    /// Cancelled when the actor wants this session to end (pause, a skip
    /// window starting, the actor going away).
    pub stop: CancellationToken,
    /// Held while the session runs; shutdown waits until every one is dropped.
    pub alive: mpsc::Sender<()>,
}

/// Hands fetched messages to the pipeline, linking each to the one before.
/// Messages that arrive together are handed over together (up to
/// [`HANDOFF_MESSAGES`](crate::pipeline::HANDOFF_MESSAGES) or
/// [`HANDOFF_BYTES`]), in parse slots taken for a whole group before its
/// first message is gathered: what a session gathers counts against the
/// edge, and a full edge slows sessions down without breaking groups up.
/// [`flush`](Self::flush) hands a group on and frees the slots it did not
/// use; it runs before any wait on the server.
struct Outlet<'a> {
    ctx: &'a SessionContext,
    uidvalidity: u32,
    after: u32,
    /// Boxed: a session holds its outlet while it idles, and an idle
    /// mailbox should cost a pointer here, not a group's worth of fields.
    group: Option<Box<Group>>,
}

/// Messages gathered for one hand-over, and the parse slots taken for it.
struct Group {
    fetched: Vec<Fetched>,
    bytes: usize,
    slots: Slot,
    /// Mailbox id and folder name, shared by the group's sources.
    mailbox: Arc<str>,
    folder: Arc<str>,
    /// Shared by the group's messages (a `Recipient` clone allocates).
    committed: Arc<Recipient<Committed>>,
}

impl<'a> Outlet<'a> {
    fn new(ctx: &'a SessionContext, uidvalidity: u32, after: u32) -> Self {
        Self {
            ctx,
            uidvalidity,
            after,
            group: None,
        }
    }

    async fn push(&mut self, uid: u32, body: Body) {
        let bytes = match &body {
            Body::Raw(raw) => raw.len(),
            Body::TooLarge { .. } | Body::Refused { .. } => 0,
        };
        let limit = handoff_limit(&self.ctx.pipeline);
        let full = self
            .group
            .as_ref()
            .is_some_and(|g| g.fetched.len() >= g.slots.count() || g.bytes + bytes > HANDOFF_BYTES);
        if full {
            self.flush();
        }
        let group = match self.group.take() {
            Some(g) => g,
            None => {
                let slots = self.ctx.parse.take(limit).await;
                Box::new(Group {
                    fetched: Vec::with_capacity(limit),
                    bytes: 0,
                    slots,
                    mailbox: self.ctx.mailbox.id.as_str().into(),
                    folder: self.ctx.mailbox.folders[self.ctx.folder].as_str().into(),
                    committed: Arc::new(self.ctx.committed.clone()),
                })
            }
        };
        let group = self.group.insert(group);
        group.fetched.push(Fetched {
            source: Source {
                mailbox: group.mailbox.clone(),
                folder: group.folder.clone(),
                uidvalidity: self.uidvalidity,
                uid,
            },
            after: self.after,
            body,
            mailbox: self.ctx.mailbox.clone(),
            committed: group.committed.clone(),
        });
        group.bytes += bytes;
        self.after = uid;
    }

    /// Hands every gathered message to the parsers (a group holds at least
    /// one); the group's unused slots are freed with it.
    fn flush(&mut self) {
        let Some(mut group) = self.group.take() else {
            return;
        };
        if let Some(used) = group.slots.split(group.fetched.len()) {
            let fetched = std::mem::take(&mut group.fetched);
            telemetry::fetched(fetched.len());
            self.ctx
                .parse
                .deliver(used, |slot| ParseJob { fetched, slot });
        }
    }
}

impl SessionContext {
    fn report(&self, progress: Progress) {
        self.events.do_send(SessionEvent {
            folder: self.folder,
            progress,
        });
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.stop.is_cancelled()
    }

    /// Resolves when the session should end cleanly.
    fn stop_signal(&self) -> impl std::future::Future<Output = ()> {
        let (mut shutdown, stop) = (self.shutdown.clone(), self.stop.clone());
        async move {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// Runs the session to its end and reports how it ended.
    pub async fn run(self) {
        let result = self.session().await;
        self.report(Progress::Ended(result));
        // Only now may shutdown consider this session gone.
        drop(self.alive);
    }

    async fn session(&self) -> Result<(), MailboxError> {
        self.report(Progress::Connecting);
        // Every step but IDLE is boxed: a future's size is that of its
        // largest step, and inline these (TLS, OAuth, catch-up, LOGOUT)
        // made each of 10,000 idling sessions hold 24 KiB instead of ~5.
        // The big connect future is allocated only once the host's login
        // gate lets this session through: allocated by 10,000 waiting
        // sessions at once, it fragmented the heap (+6 KiB RSS a mailbox).
        let permit = tokio::select! {
            p = self.admission.admit(&self.mailbox.host) => p,
            _ = self.stop_signal() => return Ok(()),
        };
        // Boxed on its own: inline, it made the session's future (which
        // holds it while idling) cross a size class of the allocator.
        let mut imap = Box::new(
            Box::pin(async {
                // The steps recorder serves test-connection; not kept while idling.
                let mut steps = Steps::default();
                Imap::connect(&self.mailbox, self.pipeline.max_message_bytes, &mut steps).await
            })
            .await?,
        );
        drop(permit);
        let folder = self.mailbox.folders[self.folder].clone();
        let selected = Box::pin(imap.select(&folder)).await?;
        let store = self.store.clone();
        let (id, f) = (self.mailbox.id.clone(), folder.clone());
        let checkpoint = tokio::task::spawn_blocking(move || store.checkpoint(&id, &f))
            .await
            .map_err(|e| MailboxError::Protocol(format!("checkpoint read failed: {e}")))?
            .map_err(|e| MailboxError::Protocol(e.to_string()))?;
        // A new UIDVALIDITY invalidates the watermark: resync from the start
        // date; Message-ID deduplication keeps the replay harmless.
        let start = checkpoint
            .filter(|c| c.uidvalidity == selected.uidvalidity)
            .map_or(0, |c| c.uid);
        let mut outlet = Outlet::new(self, selected.uidvalidity, start);
        let mut last = start;
        let mut idle = imap.has("IDLE");
        let mut catching_up = true;
        loop {
            outlet.ctx.report(Progress::Syncing);
            if !Box::pin(sync(&mut imap, &mut outlet, &mut last, catching_up)).await? {
                Box::pin(imap.logout()).await;
                return Ok(());
            }
            catching_up = false;
            if imap.mail_since_search() {
                continue;
            }
            let stop = outlet.ctx.stop_signal();
            let end = if idle {
                let ctx = &outlet.ctx;
                let m = &ctx.mailbox;
                // Idle once the server has said so: a connection that drops
                // before is still being set up.
                let accepted = || ctx.report(Progress::Idle);
                let idled = imap.idle(
                    m.idle_refresh,
                    m.idle_keepalive,
                    m.connection_timeout,
                    stop,
                    accepted,
                );
                match idled.await {
                    // Advertised and refused (a cap on idling sessions):
                    // this session polls instead.
                    Err(MailboxError::Refused { text, .. }) => {
                        tracing::warn!(mailbox = %m.id, %text, "the server refused IDLE; polling");
                        idle = false;
                        continue;
                    }
                    end => end?,
                }
            } else {
                outlet.ctx.report(Progress::Polling);
                Box::pin(imap.poll(outlet.ctx.mailbox.poll_interval, stop)).await?
            };
            match end {
                IdleEnd::NewMail | IdleEnd::Refresh => {}
                IdleEnd::Stopped => {
                    Box::pin(imap.logout()).await;
                    return Ok(());
                }
            }
        }
    }
}

/// Fetches every message above `last` into the pipeline, in UID order.
/// Returns `false` if it stopped early for shutdown.
async fn sync(
    imap: &mut Imap,
    out: &mut Outlet<'_>,
    last: &mut u32,
    catching_up: bool,
) -> Result<bool, MailboxError> {
    let cfg = out.ctx.mailbox.clone();
    let limit = out.ctx.pipeline.max_message_bytes;
    // A catch-up finds messages too large to download by a second SEARCH
    // (a size per message cost more than the rest of its receipt) and then
    // their sizes, for the rejection record, a window of UIDs at a time (a
    // huge folder's whole answer would be longer than a response may be).
    // The few messages of a wake-up come with their sizes in one round trip.
    if catching_up || cfg.sync_start_date.is_some() {
        for window in imap.search_windows(*last) {
            let (uids, too_large) = imap
                .search_with_larger(window, cfg.sync_start_date, limit)
                .await?;
            if !fetch_found(imap, out, last, &uids, &too_large).await? {
                return Ok(false);
            }
        }
        Ok(true)
    } else {
        let (uids, too_large) = imap.new_with_sizes(*last, limit).await?;
        fetch_found(imap, out, last, &uids, &too_large).await
    }
}

/// Fetches `uids` (ascending; `too_large`, (UID, size) ascending, among
/// them are not downloaded) into the pipeline, a `fetch_batch` at a time,
/// and moves `last` past each batch. Returns `false` if it stopped early
/// for shutdown.
async fn fetch_found(
    imap: &mut Imap,
    out: &mut Outlet<'_>,
    last: &mut u32,
    uids: &[u32],
    too_large: &[(u32, u32)],
) -> Result<bool, MailboxError> {
    let limit = out.ctx.pipeline.max_message_bytes;
    for chunk in uids.chunks(out.ctx.pipeline.fetch_batch) {
        if out.ctx.stopping() {
            out.flush();
            return Ok(false);
        }
        let is_large = |u: &u32| too_large.binary_search_by_key(u, |(l, _)| *l).is_ok();
        let small: Vec<u32> = chunk.iter().copied().filter(|u| !is_large(u)).collect();
        let (first, end) = (chunk[0], chunk[chunk.len() - 1]);
        let mut large = too_large
            .iter()
            .copied()
            .filter(|(u, _)| (first..=end).contains(u))
            .peekable();
        fetch_in_order(imap, out, &small, &mut large, limit).await?;
        for (u, size) in large {
            out.push(u, Body::TooLarge { size, limit }).await;
        }
        out.flush();
        if let Some(max) = chunk.last() {
            *last = (*last).max(*max);
        }
    }
    Ok(true)
}

/// Fetches `uids` (ascending) into the pipeline in UID order, each message
/// of `large` (ascending (UID, size), too large to download) below one of
/// them in its place. When the order is lost — a message too long to read
/// whose UID the server sent after it (in the part skipped), or a message
/// left out of the answer (one with a later UID came first, or the answer
/// ended before the last ones) — or the server refused the fetch (NO,
/// which may stop it at one message it will not send), the rest is fetched
/// again from the last message placed, one at a time until one comes back
/// (a message fetched alone is known without its UID), then together. A
/// message that does not come alone is dealt with by [`refuse`].
async fn fetch_in_order(
    imap: &mut Imap,
    out: &mut Outlet<'_>,
    mut uids: &[u32],
    large: &mut Peekable<impl Iterator<Item = (u32, u32)>>,
    limit: u32,
) -> Result<(), MailboxError> {
    let mut alone = false;
    // A body has come in: the server can send mail now.
    let mut delivered = false;
    while !uids.is_empty() {
        let asked = if alone { &uids[..1] } else { uids };
        let tag = imap.fetch_bodies(asked)?;
        // How many of `uids` are placed; whether the order was lost; the
        // server's refusal.
        let (mut placed, mut unplaced, mut refused) = (0, false, None);
        loop {
            let (uid, fetched) = match answer(next_body(imap, out, &tag).await)? {
                Answer::Message(next) => next,
                Answer::End => break,
                Answer::No(text) => {
                    refused = Some(text);
                    break;
                }
            };
            let uid = match (uid, asked) {
                _ if unplaced => continue,
                (Some(uid), _) => uid,
                (None, [only]) => *only,
                (None, _) => {
                    unplaced = true;
                    continue;
                }
            };
            // The next one was left out: it is looked at alone first.
            if uids.get(placed).is_some_and(|next| *next < uid) {
                unplaced = true;
                continue;
            }
            delivered = true;
            place(out, large, uid, body(fetched, limit), limit).await;
            placed = uids.partition_point(|u| *u <= uid);
        }
        uids = &uids[placed..];
        match refused {
            // Nothing came of it alone: refused, left out, or gone.
            text if alone && placed == 0 => {
                let first = (uids[0], text);
                (uids, delivered) =
                    refuse(imap, out, large, first, &uids[1..], delivered, limit).await?;
                alone = false;
            }
            Some(_) => alone = true,
            // The last ones were left out, or the order was lost.
            None if unplaced || !(alone || uids.is_empty()) => alone = true,
            None => alone = false,
        }
    }
    Ok(())
}

/// `first`, which did not come of fetching it alone (the server's NO, or
/// `None`: an answer without it), becomes a rejection if the server still
/// answers for its size (else it is gone: expunged since the SEARCH, and
/// not recorded) and can send other mail: a body came in before
/// (`delivered`), or else the next message that comes when those of `rest`
/// are fetched alone (those that do not come either are dealt with as
/// `first`; the one that came is placed after them). A server that answers
/// for a message's size and sends no mail at all is in trouble: the
/// session ends, to be tried again, and no message is given up for that.
/// The UIDs still to fetch, and whether a body has come in.
async fn refuse<'u>(
    imap: &mut Imap,
    out: &mut Outlet<'_>,
    large: &mut Peekable<impl Iterator<Item = (u32, u32)>>,
    first: (u32, Option<String>),
    mut rest: &'u [u32],
    delivered: bool,
    limit: u32,
) -> Result<(&'u [u32], bool), MailboxError> {
    let mut missing = vec![first];
    let mut next = None;
    while !delivered && next.is_none() {
        let Some((&u, after)) = rest.split_first() else {
            break;
        };
        rest = after;
        let tag = imap.fetch_bodies(&[u])?;
        let mut no = None;
        loop {
            match answer(imap.next_body(&tag).await)? {
                Answer::Message((_, fetched)) => next = Some((u, fetched)),
                Answer::End => break,
                Answer::No(text) => {
                    no = Some(text);
                    break;
                }
            }
        }
        if next.is_none() {
            missing.push((u, no));
        }
    }
    // Those gone since (no size) are not recorded.
    let asked: Vec<u32> = missing.iter().map(|(u, _)| *u).collect();
    let sizes = imap.sizes(&asked).await?;
    let size = |uid: u32| {
        let i = sizes.binary_search_by_key(&uid, |(u, _)| *u).ok()?;
        Some(sizes[i].1)
    };
    let mut still = missing
        .into_iter()
        .filter_map(|(uid, text)| Some((uid, size(uid)?, text)));
    if !delivered && next.is_none() {
        if let Some((uid, _, text)) = still.next() {
            let text = text.unwrap_or_else(|| {
                format!("the server left UID {uid} out of its answers to fetching it, though it answers for its size")
            });
            return Err(MailboxError::Refused {
                text,
                temporary: false,
            });
        }
    }
    for (uid, size, text) in still {
        place(out, large, uid, Body::Refused { size, text }, limit).await;
    }
    let came = next.is_some();
    if let Some((u, fetched)) = next {
        place(out, large, u, body(fetched, limit), limit).await;
    }
    Ok((rest, delivered || came))
}

/// What a body fetch answered next.
enum Answer<T> {
    /// A message.
    Message(T),
    /// The tagged OK: nothing more.
    End,
    /// A NO for good (the text): the fetch stopped there.
    No(String),
}

/// `next` as an [`Answer`]; any other error ends the session.
fn answer<T>(next: Result<Option<T>, MailboxError>) -> Result<Answer<T>, MailboxError> {
    match next {
        Ok(Some(message)) => Ok(Answer::Message(message)),
        Ok(None) => Ok(Answer::End),
        Err(MailboxError::Refused {
            text,
            temporary: false,
        }) => Ok(Answer::No(text)),
        Err(e) => Err(e),
    }
}

/// Hands `uid` on, after the too-large messages of `large` below it.
async fn place(
    out: &mut Outlet<'_>,
    large: &mut Peekable<impl Iterator<Item = (u32, u32)>>,
    uid: u32,
    body: Body,
    limit: u32,
) {
    while let Some((u, size)) = large.next_if(|(u, _)| *u < uid) {
        out.push(u, Body::TooLarge { size, limit }).await;
    }
    out.push(uid, body).await;
}

/// What the pipeline gets of a fetched message.
fn body(fetched: FetchedBody, limit: u32) -> Body {
    match fetched {
        FetchedBody::Raw(raw) => Body::Raw(Bytes::from(raw)),
        FetchedBody::TooLong(size) => Body::TooLarge { size, limit },
    }
}

/// The next message of a body fetch. When the server has none at hand, what
/// is gathered is handed on first: messages never wait on the network.
async fn next_body(
    imap: &mut Imap,
    out: &mut Outlet<'_>,
    tag: &Tag<'static>,
) -> Result<Option<(Option<u32>, FetchedBody)>, MailboxError> {
    // Polled once: reading the stream is cancel-safe (bytes read stay
    // buffered), so an unfinished attempt is simply made again.
    if let Some(next) = imap.next_body(tag).now_or_never() {
        return next;
    }
    out.flush();
    imap.next_body(tag).await
}
