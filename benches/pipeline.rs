//! Throughput of the hot stages, on this machine:
//! - `parse_and_decide`: mail-parser plus filter and mapping over the corpus
//!   (msgs/s; what one parser thread can do),
//! - `group_commit`: one synced RocksDB write batch of N tickets with their
//!   entries, indexes, raw blobs, change feed and checkpoint (tickets/s; what
//!   the writer can do).
//!
//! Run: `cargo bench --bench pipeline`

use std::{fs, path::PathBuf};

use bytes::Bytes;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mailgate::{
    config::from_toml,
    parse::parse,
    store::{
        Change, Checkpoint, CommitBatch, Counters, Entry, Outcome, RocksStore, Source, Store,
        Ticket, SCHEMA_VERSION,
    },
    transform::{decide, Decision},
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

fn parse_and_decide(c: &mut Criterion) {
    let messages = corpus();
    let mailbox = from_toml(
        "[[mailbox]]\nid = \"m\"\nhost = \"h\"\nusername = \"support@acme.test\"\npassword = \"p\"\n",
        std::path::Path::new("."),
    )
    .unwrap()
    .mailboxes
    .remove(0);
    let mut g = c.benchmark_group("parse_and_decide");
    g.throughput(Throughput::Elements(messages.len() as u64));
    g.bench_function("corpus", |b| {
        b.iter(|| {
            for m in &messages {
                std::hint::black_box(decide(parse(m), &mailbox));
            }
        })
    });
    g.finish();
}

/// A batch of `n` new tickets as the writer builds it for 4 KiB messages.
fn batch(n: u64, start: u64) -> CommitBatch {
    let raw = Bytes::from(mailgate_sample(4096));
    let Decision::Accept { content, .. } = decide(
        parse(&raw),
        &from_toml(
            "[[mailbox]]\nid = \"m\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n",
            std::path::Path::new("."),
        )
        .unwrap()
        .mailboxes[0],
    ) else {
        panic!("sample must be accepted")
    };
    let now = Utc::now();
    let mut b = CommitBatch::default();
    for i in start..start + n {
        let source = Source {
            mailbox: "m".into(),
            folder: "INBOX".into(),
            uidvalidity: 1,
            uid: i as u32,
        };
        let mut content = content.clone();
        content.message_id = format!("{i}@bench");
        content.raw_sha256 = format!("{i:064x}");
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
        b.entries.push(Entry {
            v: SCHEMA_VERSION,
            ticket: i,
            seq: 0,
            source,
            content,
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

fn mailgate_sample(size: usize) -> Vec<u8> {
    let mut m = b"From: Customer <c@client.test>\r\nTo: support@acme.test\r\nSubject: Printer jammed\r\nMessage-ID: <x@client.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
    while m.len() < size {
        m.extend_from_slice(b"The printer on the third floor is jammed again, please help.\r\n");
    }
    m
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

criterion_group!(benches, parse_and_decide, group_commit);
criterion_main!(benches);
