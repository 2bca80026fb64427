//! Builds one group commit from decided messages: deduplication by UID and
//! Message-ID, threading replies onto their ticket, id allocation and the
//! checkpoints that the batch lets advance. Ids and watermarks are staged
//! until the commit is confirmed, so a failed commit changes nothing.

use std::{collections::hash_map::Entry, hash::Hash, sync::Arc};

use actix::Recipient;
use chrono::Utc;
// Seeded per process, and several times faster than SipHash on these
// short keys (hashing was a fifth of building a batch).
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::{Watermark, WriteJob};
use crate::{
    pipeline::{Body, Committed},
    store::{
        Change, Checkpoint, CommitBatch, Counters, NewEntry, Outcome, Rejection, Source, Store,
        StoreError, Ticket, SCHEMA_VERSION,
    },
    transform::Decision,
};

/// What one batch did, for metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchCounts {
    /// New tickets.
    pub tickets: u64,
    /// Entries added to existing tickets (replies).
    pub replies: u64,
    /// Messages whose Message-ID was already known.
    pub duplicates: u64,
    /// The code of each message recorded as rejected.
    pub rejections: Vec<&'static str>,
    /// Messages already committed earlier (replays after a crash or reconnect).
    pub replays: u64,
}

/// A checkpoint notice for one mailbox.
pub type Ack = (Recipient<Committed>, Committed);

/// A folder: mailbox id and folder name, shared with the messages' sources.
type FolderKey = (Arc<str>, Arc<str>);
/// A folder key borrowed from the jobs of one batch (no reference counting
/// per message).
type FolderRef<'a> = (&'a Arc<str>, &'a Arc<str>);

/// A folder at one UIDVALIDITY.
type UidSpaceKey = (Arc<str>, Arc<str>, u32);
type UidSpaceRef<'a> = (&'a Arc<str>, &'a Arc<str>, u32);

/// What a batch stages until its commit is confirmed.
struct Staged {
    counters: Counters,
    marks: HashMap<FolderKey, Watermark>,
    highest: HashMap<UidSpaceKey, u32>,
}

/// Turns pending jobs into a [`CommitBatch`]; keeps ids and watermarks.
pub struct BatchBuilder {
    counters: Counters,
    marks: HashMap<FolderKey, Watermark>,
    /// The highest UID with a committed outcome per folder and UIDVALIDITY:
    /// a message above it cannot be a replay, so its outcome is not looked up.
    highest: HashMap<UidSpaceKey, u32>,
    staged: Option<Staged>,
}

impl BatchBuilder {
    /// Starts from the committed counters.
    pub fn new(counters: Counters) -> Self {
        Self {
            counters,
            marks: HashMap::new(),
            highest: HashMap::new(),
            staged: None,
        }
    }

    /// Makes the last built batch's ids and watermarks current.
    pub fn confirm(&mut self) {
        if let Some(staged) = self.staged.take() {
            self.counters = staged.counters;
            self.marks.extend(staged.marks);
            self.highest.extend(staged.highest);
        }
    }

    /// Forgets the last built batch.
    pub fn abort(&mut self) {
        self.staged = None;
    }

    /// The staged watermark of `src`'s folder, starting from the confirmed
    /// one (or the stored checkpoint) the first time the batch meets it.
    fn watermark<'a, 'j>(
        &self,
        store: &dyn Store,
        staged: &'a mut HashMap<FolderRef<'j>, Watermark>,
        src: &'j Source,
    ) -> Result<&'a mut Watermark, StoreError> {
        stage(
            staged,
            (&src.mailbox, &src.folder),
            &self.marks,
            |&(m, f)| (m.clone(), f.clone()),
            || {
                Ok(match store.checkpoint(&src.mailbox, &src.folder)? {
                    Some(cp) => Watermark::new(cp.uidvalidity, cp.uid),
                    None => Watermark::new(src.uidvalidity, 0),
                })
            },
        )
    }

    /// The staged highest UID with an outcome in `src`'s folder and
    /// UIDVALIDITY, starting from the confirmed one (or the store's) the
    /// first time the batch meets it. `src` may be a replay only if its UID
    /// is not above it.
    fn highest<'a, 'j>(
        &self,
        store: &dyn Store,
        staged: &'a mut HashMap<UidSpaceRef<'j>, u32>,
        src: &'j Source,
    ) -> Result<&'a mut u32, StoreError> {
        stage(
            staged,
            (&src.mailbox, &src.folder, src.uidvalidity),
            &self.highest,
            |&(m, f, v)| (m.clone(), f.clone(), v),
            || {
                Ok(store
                    .highest_outcome_uid(&src.mailbox, &src.folder, src.uidvalidity)?
                    .unwrap_or(0))
            },
        )
    }

    /// Builds the batch for `jobs` and the checkpoint notices to send after it commits.
    pub fn build(
        &mut self,
        store: &dyn Store,
        jobs: &[WriteJob],
    ) -> Result<(CommitBatch, Vec<Ack>, BatchCounts), StoreError> {
        let now = Utc::now();
        let mut c = self.counters;
        let mut marks = HashMap::new();
        let mut batch = CommitBatch::default();
        let mut counts = BatchCounts::default();
        // Sized for the batch: growing them rehashed every key again.
        let mut seen: HashSet<&Source> = HashSet::with_capacity(jobs.len());
        let mut msgids: HashMap<&str, u64> = HashMap::with_capacity(jobs.len());
        let mut tickets: HashMap<u64, Ticket> = HashMap::with_capacity(jobs.len());
        let mut recipients: HashMap<FolderRef, &Recipient<Committed>> = HashMap::new();
        let mut highest: HashMap<UidSpaceRef, u32> = HashMap::new();

        for job in jobs {
            let f = &job.fetched;
            let src = &f.source;
            self.watermark(store, &mut marks, src)?
                .commit(src.uidvalidity, f.after, src.uid);
            recipients.insert((&src.mailbox, &src.folder), &f.committed);
            if !seen.insert(src) {
                counts.replays += 1;
                continue;
            }
            let high = self.highest(store, &mut highest, src)?;
            if src.uid <= *high && store.outcome(src)?.is_some() {
                counts.replays += 1;
                continue;
            }
            // Every message below gets an outcome in this batch.
            *high = (*high).max(src.uid);
            let raw = match &f.body {
                Body::Raw(b) => Some(b.clone()),
                Body::TooLarge { .. } | Body::Refused { .. } => None,
            };
            let size = match &f.body {
                Body::Raw(b) => b.len() as u64,
                Body::TooLarge { size, .. } | Body::Refused { size, .. } => u64::from(*size),
            };
            match &job.decision {
                Decision::Reject(r) => {
                    c.rejection += 1;
                    let raw_sha256 = r.raw_sha256.clone();
                    if let (Some(h), Some(bytes)) = (&raw_sha256, &raw) {
                        batch.blobs.push((h.clone(), bytes.clone()));
                    }
                    batch.rejections.push(Rejection {
                        v: SCHEMA_VERSION,
                        id: c.rejection,
                        source: src.clone(),
                        code: r.code.to_owned(),
                        reason: r.reason.clone(),
                        message_id: r.head.as_ref().map(|h| h.message_id.clone()),
                        from: r.head.as_ref().and_then(|h| h.from.address.clone()),
                        subject: r.head.as_ref().map(|h| h.subject.clone()),
                        size,
                        raw_sha256,
                        at: now,
                    });
                    batch.outcomes.push((
                        src.clone(),
                        Outcome::Rejected {
                            rejection: c.rejection,
                        },
                    ));
                    counts.rejections.push(r.code);
                }
                Decision::Accept {
                    head,
                    encoded,
                    replies_to,
                    priority,
                } => {
                    let known = |id: &str| -> Result<Option<u64>, StoreError> {
                        match msgids.get(id) {
                            Some(t) => Ok(Some(*t)),
                            None => store.ticket_for_message_id(id),
                        }
                    };
                    if let Some(ticket) = known(&head.message_id)? {
                        batch
                            .outcomes
                            .push((src.clone(), Outcome::Duplicate { ticket }));
                        counts.duplicates += 1;
                        continue;
                    }
                    let mut parent = None;
                    for id in replies_to {
                        if let Some(t) = known(id)? {
                            parent = Some(t);
                            break;
                        }
                    }
                    let ticket = match parent {
                        Some(id) => match tickets.remove(&id) {
                            Some(t) => Some(t),
                            None => store.ticket(id)?,
                        },
                        None => None,
                    };
                    let mut ticket = match ticket {
                        Some(t) => {
                            counts.replies += 1;
                            t
                        }
                        None => {
                            c.ticket += 1;
                            counts.tickets += 1;
                            Ticket {
                                v: SCHEMA_VERSION,
                                id: c.ticket,
                                mailbox: src.mailbox.to_string(),
                                subject: head.subject.clone(),
                                requester: head.from.clone(),
                                priority: priority.clone(),
                                group: f.mailbox.ticket.group.clone(),
                                kind: f.mailbox.ticket.kind.clone(),
                                tags: f.mailbox.ticket.tags.clone(),
                                created_at: now,
                                updated_at: now,
                                entries: 0,
                            }
                        }
                    };
                    let seq = ticket.entries;
                    ticket.entries += 1;
                    ticket.updated_at = now;
                    if let Some(bytes) = &raw {
                        batch.blobs.push((head.raw_sha256.clone(), bytes.clone()));
                    }
                    batch.entries.push(NewEntry {
                        v: SCHEMA_VERSION,
                        ticket: ticket.id,
                        seq,
                        source: src.clone(),
                        content: encoded.clone(),
                        received_at: now,
                    });
                    msgids.insert(&head.message_id, ticket.id);
                    batch.message_ids.push((head.message_id.clone(), ticket.id));
                    batch.outcomes.push((
                        src.clone(),
                        Outcome::Entry {
                            ticket: ticket.id,
                            seq,
                        },
                    ));
                    c.change += 1;
                    batch.changes.push(Change {
                        seq: c.change,
                        ticket: ticket.id,
                        mailbox: ticket.mailbox.clone(),
                    });
                    tickets.insert(ticket.id, ticket);
                }
            }
        }

        let mut acks = Vec::new();
        let mut staged = HashMap::with_capacity(marks.len());
        for (folder_ref, mark) in marks {
            let key: FolderKey = (folder_ref.0.clone(), folder_ref.1.clone());
            let before = self.marks.get(&key).map(|m| (m.uidvalidity(), m.uid()));
            if before != Some((mark.uidvalidity(), mark.uid())) && mark.uid() != 0 {
                let (mailbox, folder) = (key.0.to_string(), key.1.to_string());
                let checkpoint = Checkpoint {
                    v: SCHEMA_VERSION,
                    uidvalidity: mark.uidvalidity(),
                    uid: mark.uid(),
                };
                batch
                    .checkpoints
                    .push((mailbox, folder.clone(), checkpoint));
                if let Some(r) = recipients.get(&folder_ref) {
                    acks.push((
                        (*r).clone(),
                        Committed {
                            folder,
                            uidvalidity: mark.uidvalidity(),
                            uid: mark.uid(),
                        },
                    ));
                }
            }
            staged.insert(key, mark);
        }
        batch.tickets = tickets.into_values().collect();
        batch.counters = c;
        self.staged = Some(Staged {
            counters: c,
            marks: staged,
            highest: highest
                .into_iter()
                .map(|((m, f, v), h)| ((m.clone(), f.clone(), v), h))
                .collect(),
        });
        Ok((batch, acks, counts))
    }
}

/// The value a batch stages under `key`: already staged, or a copy of the
/// confirmed one (found under `owned(key)`), or `load()`ed from the store
/// the first time the batch meets the key.
fn stage<'a, K: Hash + Eq, O: Hash + Eq, V: Clone>(
    staged: &'a mut HashMap<K, V>,
    key: K,
    confirmed: &HashMap<O, V>,
    owned: impl FnOnce(&K) -> O,
    load: impl FnOnce() -> Result<V, StoreError>,
) -> Result<&'a mut V, StoreError> {
    match staged.entry(key) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(e) => {
            let value = match confirmed.get(&owned(e.key())) {
                Some(v) => v.clone(),
                None => load()?,
            };
            Ok(e.insert(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use actix::{Actor, Context, Handler};
    use bytes::Bytes;

    use super::*;
    use crate::{
        config::test_mailbox,
        parse::parse,
        pipeline::Fetched,
        store::{Outcome, RocksStore},
        transform::decide,
    };

    /// Takes checkpoint notices and drops them.
    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Committed> for Sink {
        type Result = ();
        fn handle(&mut self, _: Committed, _: &mut Context<Self>) {}
    }

    /// A job for UID `uid` of folder INBOX with Message-ID `id`, replying
    /// to `parent` when given.
    fn job(
        committed: &Arc<Recipient<Committed>>,
        uid: u32,
        id: &str,
        parent: Option<&str>,
    ) -> WriteJob {
        let reply = parent.map_or(String::new(), |p| format!("In-Reply-To: <{p}>\r\n"));
        let raw = format!(
            "Message-ID: <{id}>\r\n{reply}From: a@customer.test\r\nSubject: s{uid}\r\n\r\nbody {uid}\r\n"
        );
        raw_job(committed, uid, raw)
    }

    /// A job for UID `uid` of folder INBOX with `raw` as the message.
    fn raw_job(committed: &Arc<Recipient<Committed>>, uid: u32, raw: String) -> WriteJob {
        let mailbox = Arc::new(test_mailbox(""));
        let decision = decide(parse(raw.as_bytes()), &mailbox);
        WriteJob {
            fetched: Fetched {
                source: Source {
                    mailbox: "m".into(),
                    folder: "INBOX".into(),
                    uidvalidity: 7,
                    uid,
                },
                after: uid - 1,
                body: Body::Raw(Bytes::from(raw)),
                mailbox,
                committed: committed.clone(),
            },
            decision,
        }
    }

    fn outcomes(batch: &CommitBatch) -> Vec<(u32, Outcome)> {
        batch
            .outcomes
            .iter()
            .map(|(src, o)| (src.uid, o.clone()))
            .collect()
    }

    /// Runs `test` with a checkpoint sink, an empty store and a builder
    /// over it.
    fn with_builder(test: impl FnOnce(&Arc<Recipient<Committed>>, &RocksStore, &mut BatchBuilder)) {
        actix::System::new().block_on(async {
            let sink = Arc::new(Sink.start().recipient());
            let dir = tempfile::tempdir().unwrap();
            let store = RocksStore::open(dir.path()).unwrap();
            test(&sink, &store, &mut BatchBuilder::new(Counters::default()));
        });
    }

    #[test]
    fn replies_copies_and_refetched_uids_of_committed_mail_are_recognised() {
        with_builder(|sink, store, builder| {
            let (first, _, _) = builder.build(store, &[job(sink, 1, "a@x", None)]).unwrap();
            store.commit(first).unwrap();
            builder.confirm();
            // A reply to it, a second copy of it, and its UID fetched again.
            let jobs = [
                job(sink, 2, "b@x", Some("a@x")),
                job(sink, 3, "a@x", None),
                job(sink, 1, "a@x", None),
            ];
            let (second, _, counts) = builder.build(store, &jobs).unwrap();
            assert_eq!(
                outcomes(&second),
                [
                    (2, Outcome::Entry { ticket: 1, seq: 1 }),
                    (3, Outcome::Duplicate { ticket: 1 })
                ]
            );
            assert_eq!(
                (
                    counts.tickets,
                    counts.replies,
                    counts.duplicates,
                    counts.replays
                ),
                (0, 1, 1, 1)
            );
            assert_eq!(second.tickets.len(), 1);
            assert_eq!((second.tickets[0].id, second.tickets[0].entries), (1, 2));
            assert_eq!(second.checkpoints[0].2.uid, 3);

            store.commit(second).unwrap();
            builder.confirm();
            let (third, _, _) = builder
                .build(store, &[job(sink, 4, "c@x", Some("b@x"))])
                .unwrap();
            assert_eq!(
                outcomes(&third),
                [(4, Outcome::Entry { ticket: 1, seq: 2 })]
            );
        });
    }

    #[test]
    fn an_unparseable_message_is_rejected_with_its_raw_message_kept() {
        with_builder(|sink, store, builder| {
            let raw = "\u{1}\u{2} not mail".to_owned();
            let key = crate::parse::sha256_hex(raw.as_bytes());
            let (batch, _, counts) = builder
                .build(store, &[raw_job(sink, 1, raw.clone())])
                .unwrap();
            assert_eq!(counts.rejections, ["message_unparseable"]);
            assert_eq!(batch.rejections[0].code, "message_unparseable");
            assert_eq!(
                batch.rejections[0].raw_sha256.as_deref(),
                Some(key.as_str())
            );
            assert_eq!(batch.blobs, [(key, Bytes::from(raw))]);
        });
    }

    #[test]
    fn a_failed_commit_changes_nothing_the_next_build_sees() {
        with_builder(|sink, store, builder| {
            let jobs = [job(sink, 1, "a@x", None), job(sink, 2, "b@x", None)];

            builder.build(store, &jobs[..1]).unwrap();
            // Its commit failed: the ids it took are given out again.
            builder.abort();
            let (again, _, counts) = builder.build(store, &jobs).unwrap();
            assert_eq!(counts.tickets, 2);
            assert_eq!(
                outcomes(&again),
                [
                    (1, Outcome::Entry { ticket: 1, seq: 0 }),
                    (2, Outcome::Entry { ticket: 2, seq: 0 })
                ]
            );
        });
    }
}
