//! Throughput of the hot stages, one thread each, on this machine — the
//! physical limits the end-to-end rate (load-tests' burst scenario) is
//! measured against:
//! - `stage/parse`: mail-parser over the farm's 4 KiB message (msgs/s),
//! - `stage/map`: filter and ticket mapping of a parsed message, with the
//!   content encoded for the store (done on the parser threads),
//! - `stage/parse_and_map`: both, over the farm's message and over the
//!   36-message real-world corpus (what one parser thread can do),
//! - `stage/blob_key`: the sha256 of farm messages, one alone and a
//!   hand-over of 32 together (as the parser threads hash them),
//! - `group_commit`: one commit of N tickets: raw messages and entry
//!   contents appended to a segment and synced, then one synced RocksDB
//!   write batch with the tickets, entry records, indexes, change feed and
//!   checkpoints (tickets/s; what the writer's commit can do): from one
//!   mailbox, and shaped as the burst scenario's batches (hand-overs of 32
//!   from each of 1,000 mailboxes, the farm's Message-IDs).
//!
//! Run: `cargo bench --bench pipeline`

use std::{fs, path::PathBuf};

use bytes::Bytes;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mailgate::{
    config::from_toml,
    parse::{parse, sha256_hex, sha256_hex_all, Parsed},
    store::{
        Change, Checkpoint, CommitBatch, Counters, EncodedContent, NewEntry, Outcome, RocksStore,
        Source, Store, Ticket, SCHEMA_VERSION,
    },
    transform::decide,
};

// The gateway's allocator, so the stages are measured as they run in it.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files.into_iter().map(|p| fs::read(p).unwrap()).collect()
}

fn test_mailbox() -> mailgate::config::MailboxConfig {
    from_toml(
        "[[mailbox]]\nid = \"m\"\nhost = \"h\"\nusername = \"support@acme.test\"\npassword = \"p\"\n",
        std::path::Path::new("."),
    )
    .unwrap()
    .mailboxes
    .remove(0)
}

/// The message the burst scenario injects: 4 KiB as the mail farm renders it.
fn farm_message() -> Vec<u8> {
    mailfarm::render_message(1, 1, 1, 4096, Utc::now())
}

fn stages(c: &mut Criterion) {
    let mailbox = test_mailbox();
    let farm = farm_message();
    let corpus = corpus();
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse/farm_4KiB", |b| {
        b.iter(|| std::hint::black_box(parse(&farm)))
    });
    g.bench_function("map/farm_4KiB", |b| {
        b.iter_batched(
            || parse(&farm),
            |parsed| std::hint::black_box(decide(parsed, &mailbox)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("parse_and_map/farm_4KiB", |b| {
        b.iter(|| std::hint::black_box(decide(parse(&farm), &mailbox)))
    });
    g.bench_function("blob_key/farm_4KiB_alone", |b| {
        b.iter(|| std::hint::black_box(sha256_hex(&farm)))
    });
    let handover: Vec<Vec<u8>> = (1..=HANDOFF as u32)
        .map(|uid| mailfarm::render_message(1, 1, uid, 4096, Utc::now()))
        .collect();
    let handover: Vec<&[u8]> = handover.iter().map(Vec::as_slice).collect();
    g.throughput(Throughput::Elements(HANDOFF));
    g.bench_function("blob_key/farm_4KiB_32_together", |b| {
        b.iter(|| std::hint::black_box(sha256_hex_all(&handover)))
    });
    g.throughput(Throughput::Elements(corpus.len() as u64));
    g.bench_function("parse_and_map/corpus", |b| {
        b.iter(|| {
            for m in &corpus {
                std::hint::black_box(decide(parse(m), &mailbox));
            }
        })
    });
    g.finish();
}

/// Where the messages of a commit bench come from.
#[derive(Clone, Copy)]
enum Shape {
    /// One mailbox, consecutive UIDs, sequential Message-IDs.
    OneMailbox,
    /// As the burst scenario's writer sees them: hand-overs of 32
    /// consecutive UIDs from each of 1,000 mailboxes in turn, the farm's
    /// Message-IDs, a checkpoint per mailbox in the batch.
    Mailboxes1000,
}

/// Messages one mailbox session hands over at once.
const HANDOFF: u64 = mailgate::pipeline::HANDOFF_MESSAGES as u64;
const MAILBOXES: u64 = 1000;

/// A batch of `n` new tickets as the writer builds it for 4 KiB messages,
/// each a different farm message, as in a real backlog: messages
/// `start..start + n` of `shape`'s stream.
fn batch(n: u64, start: u64, shape: Shape) -> CommitBatch {
    let now = Utc::now();
    let mut b = CommitBatch::default();
    let mut checkpoints = std::collections::BTreeMap::new();
    for i in start..start + n {
        // Mailbox number and UID of the stream's i-th message.
        let (user, uid) = match shape {
            Shape::OneMailbox => (0, i as u32),
            Shape::Mailboxes1000 => {
                let group = i / HANDOFF;
                let uid = (group / MAILBOXES) * HANDOFF + i % HANDOFF + 1;
                ((group % MAILBOXES) as u32, uid as u32)
            }
        };
        let raw = Bytes::from(mailfarm::render_message(1, user, uid, 4096, now));
        let Ok(Parsed { mut content, .. }) = parse(&raw) else {
            panic!("farm messages parse")
        };
        let mailbox: String = match shape {
            Shape::OneMailbox => {
                content.message_id = format!("{i}@bench");
                "m".into()
            }
            Shape::Mailboxes1000 => format!("user{user}"),
        };
        let encoded = EncodedContent::of(&content);
        let source = Source {
            mailbox: mailbox.as_str().into(),
            folder: "INBOX".into(),
            uidvalidity: 1,
            uid,
        };
        checkpoints.insert(mailbox.clone(), uid);
        b.tickets.push(Ticket {
            v: SCHEMA_VERSION,
            id: i,
            mailbox: mailbox.clone(),
            subject: content.subject.clone(),
            requester: content.from.clone(),
            priority: "medium".into(),
            group: None,
            kind: None,
            tags: vec![],
            created_at: now,
            updated_at: now,
            entries: 1,
        });
        b.blobs.push((content.raw_sha256.clone(), raw.clone()));
        b.message_ids.push((content.message_id.clone(), i));
        b.outcomes
            .push((source.clone(), Outcome::Entry { ticket: i, seq: 0 }));
        b.changes.push(Change {
            seq: i,
            ticket: i,
            mailbox,
        });
        b.entries.push(NewEntry {
            v: SCHEMA_VERSION,
            ticket: i,
            seq: 0,
            source,
            content: encoded,
            received_at: now,
        });
    }
    for (mailbox, uid) in checkpoints {
        let checkpoint = Checkpoint {
            v: SCHEMA_VERSION,
            uidvalidity: 1,
            uid,
        };
        b.checkpoints.push((mailbox, "INBOX".into(), checkpoint));
    }
    b.counters = Counters {
        ticket: start + n,
        change: start + n,
        rejection: 0,
    };
    b
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_commit");
    for (n, shape, name) in [
        (100u64, Shape::OneMailbox, "100_tickets_4KiB_synced"),
        (500, Shape::OneMailbox, "500_tickets_4KiB_synced"),
        (1000, Shape::OneMailbox, "1000_tickets_4KiB_synced"),
        (
            500,
            Shape::Mailboxes1000,
            "500_tickets_4KiB_synced_1000_mailboxes",
        ),
    ] {
        // A store of its own for each, so each starts empty.
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        // UIDs and ticket ids start at 1.
        let mut next = 1;
        g.throughput(Throughput::Elements(n));
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let built = batch(n, next, shape);
                    next += n;
                    built
                },
                |built| store.commit(built).unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, stages, group_commit);
criterion_main!(benches);
