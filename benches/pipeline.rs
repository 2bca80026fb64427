//! Throughput of the hot stages, one thread each, on this machine — the
//! physical limits the end-to-end rate (load-tests' burst scenario) is
//! measured against:
//! - `stage/parse`: mail-parser over the farm's 4 KiB message (msgs/s),
//! - `stage/map`: filter and ticket mapping of a parsed message, with the
//!   content encoded for the store (done on the parser threads),
//! - `stage/parse_and_map`: both, over the farm's message and over the
//!   36-message real-world corpus (what one parser thread can do),
//! - `group_commit`: one commit of N tickets: raw messages and entry
//!   contents appended to a segment and synced, then one synced RocksDB
//!   write batch with the tickets, entry records, indexes, change feed and
//!   checkpoint (tickets/s; what the writer's commit can do).
//!
//! Run: `cargo bench --bench pipeline`

use std::{fs, path::PathBuf};

use bytes::Bytes;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mailgate::{
    config::from_toml,
    parse::{parse, Parsed},
    store::{
        Change, Checkpoint, CommitBatch, Counters, EncodedContent, NewEntry, Outcome, RocksStore,
        Source, Store, Ticket, SCHEMA_VERSION,
    },
    transform::decide,
};

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

/// A batch of `n` new tickets as the writer builds it for 4 KiB messages,
/// each a different farm message, as in a real backlog.
fn batch(n: u64, start: u64) -> CommitBatch {
    let now = Utc::now();
    let mut b = CommitBatch::default();
    for i in start..start + n {
        let raw = Bytes::from(mailfarm::render_message(1, 1, i as u32, 4096, now));
        let Ok(Parsed { mut content, .. }) = parse(&raw) else {
            panic!("farm messages parse")
        };
        content.message_id = format!("{i}@bench");
        let encoded = EncodedContent::of(&content);
        let source = Source {
            mailbox: "m".into(),
            folder: "INBOX".into(),
            uidvalidity: 1,
            uid: i as u32,
        };
        b.tickets.push(Ticket {
            v: SCHEMA_VERSION,
            id: i,
            mailbox: "m".into(),
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
            mailbox: "m".into(),
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
    b.checkpoints.push((
        "m".into(),
        "INBOX".into(),
        Checkpoint {
            v: SCHEMA_VERSION,
            uidvalidity: 1,
            uid: (start + n) as u32,
        },
    ));
    b.counters = Counters {
        ticket: start + n,
        change: start + n,
        rejection: 0,
    };
    b
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let mut g = c.benchmark_group("group_commit");
    for n in [100u64, 500] {
        let mut next = 1;
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("{n}_tickets_4KiB_synced"), |b| {
            b.iter_batched(
                || {
                    let built = batch(n, next);
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
