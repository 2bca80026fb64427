//! The embedded RocksDB backend: one column family per record kind, one
//! synced `WriteBatch` per group commit. The only file that names `rocksdb`.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    MemtableFactory, Options, SliceTransform, WriteBatch, WriteOptions, DB,
};
use serde::{de::DeserializeOwned, Serialize};

use super::{
    json,
    segments::{self, BlobRef, Head, Segments},
    Change, Checkpoint, CommitBatch, Counters, Entry, NewEntry, Outcome, Rejection, Source, Store,
    StoreError, Ticket,
};

const TICKETS: &str = "tickets";
const ENTRIES: &str = "entries";
const MSGID: &str = "msgid";
const UIDS: &str = "uids";
const CHECKPOINTS: &str = "checkpoints";
/// Raw messages of stores written before segments: read, never written.
const BLOBS: &str = "blobs";
/// sha256 hex → where the raw message lies in the segments.
const BLOB_REFS: &str = "blob_refs";
const REJECTIONS: &str = "rejections";
const CHANGES: &str = "changes";
const META: &str = "meta";
const FAMILIES: [&str; 10] = [
    TICKETS,
    ENTRIES,
    MSGID,
    UIDS,
    CHECKPOINTS,
    BLOBS,
    BLOB_REFS,
    REJECTIONS,
    CHANGES,
    META,
];
const COUNTERS_KEY: &[u8] = b"counters";
/// The committed [`segments::Head`].
const SEGMENTS_KEY: &[u8] = b"segments";
/// The raw-message segments' directory inside the data directory.
const SEGMENTS_DIR: &str = "segments";

/// Memtables of every column family together (RocksDB's write buffer
/// manager flushes when they reach it).
pub const MEMTABLE_BUDGET: usize = 64 << 20;
/// Write buffer of one column family before it is flushed.
const CF_WRITE_BUFFER: usize = 16 << 20;
/// The block cache every column family shares.
pub const BLOCK_CACHE: usize = 32 << 20;

/// The RocksDB-backed [`Store`], raw messages in segment files beside it.
pub struct RocksStore {
    db: DB,
    segments: Mutex<Segments>,
    segments_dir: PathBuf,
}

impl RocksStore {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Memory is bounded and stated: one write budget and one block cache
        // for all families (RocksDB's defaults give each family its own).
        let cache = Cache::new_lru_cache(BLOCK_CACHE);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        // Index and filter blocks count against the cache too, not beside it.
        table.set_cache_index_and_filter_blocks(true);
        // Every message costs point reads that almost always miss (its UID
        // outcome, its Message-ID): a bloom filter answers those without
        // touching the table files.
        table.set_bloom_filter(10.0, false);
        let family = || {
            let mut o = Options::default();
            // Flushes (L0) and the first compactions (L1) write uncompressed:
            // under load they run beside the pipeline, and compressing them
            // took a third of a core in the catch-up profile. Colder levels
            // are compressed as compaction reaches them.
            o.set_compression_per_level(&[
                DBCompressionType::None,
                DBCompressionType::None,
                DBCompressionType::Lz4,
                DBCompressionType::Lz4,
                DBCompressionType::Lz4,
                DBCompressionType::Lz4,
                DBCompressionType::Lz4,
            ]);
            o.set_write_buffer_size(CF_WRITE_BUFFER);
            // Room to keep writing while a full memtable flushes (the
            // default 2 stalled group commits of 500 tickets).
            o.set_max_write_buffer_number(4);
            o.set_block_based_table_factory(&table);
            o
        };
        let mut opts = family();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        opts.set_max_background_jobs(2);
        // The hash table memtables below take one writer at a time (the
        // store has one).
        opts.set_allow_concurrent_memtable_write(false);
        // Flushes and compactions write around the page cache: copying their
        // output into it took half of the flush thread's CPU, and the block
        // cache keeps what reads need.
        opts.set_use_direct_io_for_flush_and_compaction(true);
        let cfs = FAMILIES.map(|name| {
            let mut o = family();
            if name == UIDS {
                // Every message looks itself up here first and is almost
                // never found: a bloom filter over the memtable keys answers
                // without searching the skip list (~320 KiB a memtable).
                o.set_memtable_prefix_bloom_ratio(0.02);
                o.set_memtable_whole_key_filtering(true);
            }
            if name == MSGID || name == BLOB_REFS {
                // Read by whole key only, never in order: a hash table
                // memtable inserts (and misses) without searching a skip
                // list, where keys in no order cost each insert a search
                // from the top (the largest piece of the writer's CPU).
                o.set_prefix_extractor(SliceTransform::create_noop());
                o.set_memtable_factory(MemtableFactory::HashLinkList {
                    bucket_count: 1 << 16,
                });
            }
            if name == BLOBS {
                // Older stores' raw messages live in blob files: compaction
                // moves keys, not the messages themselves.
                o.set_enable_blob_files(true);
                o.set_min_blob_size(1024);
            }
            ColumnFamilyDescriptor::new(name, o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let meta = db
            .cf_handle(META)
            .unwrap_or_else(|| panic!("column family {META} was created at open"));
        let head = match db.get_cf(meta, SEGMENTS_KEY).map_err(io)? {
            Some(v) => decode(&v)?,
            None => Head::default(),
        };
        let segments_dir = path.join(SEGMENTS_DIR);
        Ok(Self {
            segments: Mutex::new(Segments::open(&segments_dir, head)?),
            segments_dir,
            db,
        })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every family in FAMILIES is created at open, so this cannot miss.
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} was created at open"))
    }

    fn get<T: DeserializeOwned>(&self, cf: &str, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.db.get_cf(self.cf(cf), key).map_err(io)? {
            None => Ok(None),
            Some(v) => decode(&v).map(Some),
        }
    }

    /// Up to `limit` records from `from` on while keys start with `prefix`,
    /// decoded with `decode`, those `keep` accepts.
    fn scan<T>(
        &self,
        cf: &str,
        from: &[u8],
        prefix: &[u8],
        decode: impl Fn(&[u8]) -> Result<T, StoreError>,
        mut keep: impl FnMut(&T) -> bool,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(from, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(io)?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            let value = decode(&v)?;
            if keep(&value) {
                out.push(value);
            }
        }
        Ok(out)
    }
}

fn io(e: rocksdb::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

/// Encodes records into a write batch through one reused buffer.
struct Records<'a> {
    batch: &'a mut WriteBatch,
    scratch: Vec<u8>,
}

impl Records<'_> {
    fn raw(&mut self, cf: &rocksdb::ColumnFamily, key: &[u8], value: &[u8]) {
        self.batch.put_cf(cf, key, value);
    }

    fn entry(&mut self, cf: &rocksdb::ColumnFamily, key: &[u8], e: &NewEntry, at: BlobRef) {
        self.scratch.clear();
        json::entry(&mut self.scratch, e, at);
        self.batch.put_cf(cf, key, &self.scratch);
    }

    fn put<T: Serialize>(&mut self, cf: &rocksdb::ColumnFamily, key: &[u8], value: &T) {
        self.scratch.clear();
        // Our records are plain data; serialising them cannot fail.
        let _ = serde_json::to_writer(&mut self.scratch, value);
        self.batch.put_cf(cf, key, &self.scratch);
    }
}

/// Roughly the encoded size of `b`: a few hundred bytes for each record's
/// key and fields (entry contents and raw messages go to segments).
fn batch_bytes(b: &CommitBatch) -> usize {
    let records = b.tickets.len() + b.entries.len() + b.outcomes.len() + b.changes.len();
    256 * (records + b.blobs.len()) + 1024
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn checkpoint_key(mailbox: &str, folder: &str) -> Vec<u8> {
    let mut k = Vec::new();
    write_folder(&mut k, mailbox, folder);
    k
}

/// `mailbox\0folder`, appended to `out`: every per-folder key starts so.
fn write_folder(out: &mut Vec<u8>, mailbox: &str, folder: &str) {
    out.extend_from_slice(mailbox.as_bytes());
    out.push(0);
    out.extend_from_slice(folder.as_bytes());
}

fn uid_key(s: &Source) -> Vec<u8> {
    let mut k = Vec::new();
    write_uid_key(&mut k, s);
    k
}

/// [`uid_key`] appended to `out`.
fn write_uid_key(out: &mut Vec<u8>, s: &Source) {
    write_uidvalidity_prefix(out, &s.mailbox, &s.folder, s.uidvalidity);
    out.extend_from_slice(&s.uid.to_be_bytes());
}

/// The `uids` keys of one folder at one UIDVALIDITY start with this.
fn uidvalidity_prefix(mailbox: &str, folder: &str, uidvalidity: u32) -> Vec<u8> {
    let mut k = Vec::new();
    write_uidvalidity_prefix(&mut k, mailbox, folder, uidvalidity);
    k
}

/// [`uidvalidity_prefix`] appended to `out`.
fn write_uidvalidity_prefix(out: &mut Vec<u8>, mailbox: &str, folder: &str, uidvalidity: u32) {
    write_folder(out, mailbox, folder);
    out.push(0);
    out.extend_from_slice(&uidvalidity.to_be_bytes());
}

fn entry_key(ticket: u64, seq: u32) -> [u8; 12] {
    let mut k = [0; 12];
    k[..8].copy_from_slice(&ticket.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

impl Store for RocksStore {
    fn commit(&self, b: CommitBatch) -> Result<(), StoreError> {
        // Sized up front: a batch of 500 small messages is megabytes, and
        // growing it by doubling copied it again and again.
        let mut wb = WriteBatch::with_capacity_bytes(batch_bytes(&b));
        let mut records = Records {
            batch: &mut wb,
            scratch: Vec::with_capacity(8 << 10),
        };
        let cf = |name| self.cf(name);
        // Entry contents and raw messages go to the segments, synced before
        // the batch that refers to them commits. Only this store's one
        // writer commits.
        let mut segments = self.segments.lock().unwrap_or_else(PoisonError::into_inner);
        segments.reserve(
            b.entries
                .iter()
                .map(|e| e.content.json().len())
                .sum::<usize>()
                + b.blobs.iter().map(|(_, bytes)| bytes.len()).sum::<usize>(),
        );
        let mut place = |bytes: &[u8]| segments.append(bytes);
        let entry_at: Vec<BlobRef> = b
            .entries
            .iter()
            .map(|e| place(e.content.json()))
            .collect::<Result<_, _>>()?;
        let blob_at: Vec<BlobRef> = b
            .blobs
            .iter()
            .map(|(_, bytes)| place(bytes))
            .collect::<Result<_, _>>()?;
        let head = segments.head_after_sync();
        let segments = &mut *segments;
        // The direct-IO write and its sync (a quarter of the writer's time
        // under load) run on a thread of their own while the records are
        // encoded here; the WriteBatch is written only after both.
        std::thread::scope(|scope| {
            let synced = scope.spawn(move || segments.sync());
            // Each family's records go in key order: the memtable's skip
            // list then inserts from where the last insert left off instead
            // of searching from the top (Message-IDs, UIDs of many mailboxes
            // and content hashes come in no order).
            let mut tickets: Vec<&Ticket> = b.tickets.iter().collect();
            tickets.sort_unstable_by_key(|t| t.id);
            let family = cf(TICKETS);
            for t in tickets {
                records.put(family, &t.id.to_be_bytes(), t);
            }
            let entries = cf(ENTRIES);
            for (e, at) in b.entries.iter().zip(entry_at) {
                records.entry(entries, &entry_key(e.ticket, e.seq), e, at);
            }
            let mut msgids: Vec<&(String, u64)> = b.message_ids.iter().collect();
            msgids.sort_unstable_by(|x, y| x.0.cmp(&y.0));
            let msgid = cf(MSGID);
            for (mid, ticket) in msgids {
                records.raw(msgid, mid.as_bytes(), &ticket.to_be_bytes());
            }
            // In the keys' order without building the keys first (mailbox
            // ids and folder names hold no NUL, so comparing the fields
            // compares the keys; any order would be correct, only slower).
            let mut outcomes: Vec<&(Source, Outcome)> = b.outcomes.iter().collect();
            outcomes.sort_unstable_by(|(x, _), (y, _)| {
                (&x.mailbox, &x.folder, x.uidvalidity, x.uid).cmp(&(
                    &y.mailbox,
                    &y.folder,
                    y.uidvalidity,
                    y.uid,
                ))
            });
            let uids = cf(UIDS);
            // One key buffer for them all.
            let mut key = Vec::with_capacity(64);
            for (src, outcome) in outcomes {
                key.clear();
                write_uid_key(&mut key, src);
                records.put(uids, &key, outcome);
            }
            // One content hash may come twice (a rejected copy): either
            // place holds the same bytes.
            let mut refs: Vec<(&str, BlobRef)> = b
                .blobs
                .iter()
                .map(|(hash, _)| hash.as_str())
                .zip(blob_at)
                .collect();
            refs.sort_unstable_by(|x, y| x.0.cmp(y.0));
            let family = cf(BLOB_REFS);
            for (hash, at) in refs {
                records.put(family, hash.as_bytes(), &at);
            }
            records.put(cf(META), SEGMENTS_KEY, &head);
            let rejections = cf(REJECTIONS);
            for r in &b.rejections {
                records.put(rejections, &r.id.to_be_bytes(), r);
            }
            let changes = cf(CHANGES);
            for c in &b.changes {
                records.put(changes, &c.seq.to_be_bytes(), c);
            }
            let checkpoints = cf(CHECKPOINTS);
            for (mailbox, folder, cp) in &b.checkpoints {
                records.put(checkpoints, &checkpoint_key(mailbox, folder), cp);
            }
            records.put(cf(META), COUNTERS_KEY, &b.counters);
            synced
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                .map(|synced| debug_assert_eq!(synced, head))
        })?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo).map_err(io)
    }

    fn memory_budget(&self) -> u64 {
        (MEMTABLE_BUDGET + BLOCK_CACHE + segments::RETAINED) as u64
    }

    fn counters(&self) -> Result<Counters, StoreError> {
        Ok(self.get(META, COUNTERS_KEY)?.unwrap_or_default())
    }

    fn checkpoint(&self, mailbox: &str, folder: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.get(CHECKPOINTS, &checkpoint_key(mailbox, folder))
    }

    fn outcome(&self, source: &Source) -> Result<Option<Outcome>, StoreError> {
        self.get(UIDS, &uid_key(source))
    }

    fn highest_outcome_uid(
        &self,
        mailbox: &str,
        folder: &str,
        uidvalidity: u32,
    ) -> Result<Option<u32>, StoreError> {
        let prefix = uidvalidity_prefix(mailbox, folder, uidvalidity);
        let mut last = prefix.clone();
        last.extend(u32::MAX.to_be_bytes());
        let mut iter = self
            .db
            .iterator_cf(self.cf(UIDS), IteratorMode::From(&last, Direction::Reverse));
        match iter.next().transpose().map_err(io)? {
            Some((k, _)) if k.len() == prefix.len() + 4 && k.starts_with(&prefix) => {
                let mut uid = [0; 4];
                uid.copy_from_slice(&k[prefix.len()..]);
                Ok(Some(u32::from_be_bytes(uid)))
            }
            _ => Ok(None),
        }
    }

    fn ticket_for_message_id(&self, message_id: &str) -> Result<Option<u64>, StoreError> {
        let v = self
            .db
            .get_cf(self.cf(MSGID), message_id.as_bytes())
            .map_err(io)?;
        Ok(v.and_then(|b| {
            <[u8; 8]>::try_from(b.as_slice())
                .ok()
                .map(u64::from_be_bytes)
        }))
    }

    fn ticket(&self, id: u64) -> Result<Option<Ticket>, StoreError> {
        self.get(TICKETS, &id.to_be_bytes())
    }

    fn entries(&self, ticket: u64) -> Result<Vec<Entry>, StoreError> {
        let prefix = ticket.to_be_bytes();
        let decode = |v: &[u8]| json::decode_entry(v, |at| segments::read(&self.segments_dir, at));
        self.scan(ENTRIES, &prefix, &prefix, decode, |_| true, usize::MAX)
    }

    fn changes(
        &self,
        after: u64,
        limit: usize,
        mailbox: Option<&str>,
    ) -> Result<Vec<Change>, StoreError> {
        let from = after.saturating_add(1).to_be_bytes();
        self.scan(
            CHANGES,
            &from,
            &[],
            decode,
            |c: &Change| mailbox.is_none_or(|m| c.mailbox == m),
            limit,
        )
    }

    fn rejections(&self, after: u64, limit: usize) -> Result<Vec<Rejection>, StoreError> {
        let from = after.saturating_add(1).to_be_bytes();
        self.scan(REJECTIONS, &from, &[], decode, |_| true, limit)
    }

    fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(BLOB_REFS, sha256.as_bytes())? {
            Some(at) => segments::read(&self.segments_dir, at).map(Some),
            None => self
                .db
                .get_cf(self.cf(BLOBS), sha256.as_bytes())
                .map_err(io),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        fs::{self, OpenOptions},
        io::Write,
    };

    use super::*;
    use crate::store::{EncodedContent, MessageContent, SCHEMA_VERSION};

    #[test]
    fn a_uid_key_is_its_folders_prefix_and_the_uid() {
        let src = Source {
            mailbox: "m1".into(),
            folder: "INBOX".into(),
            uidvalidity: 7,
            uid: 0x0102_0304,
        };
        let mut key = b"left over".to_vec();
        write_uid_key(&mut key, &src);
        let (before, key) = key.split_at(9);
        assert_eq!(before, b"left over", "appended, not overwritten");
        let prefix = uidvalidity_prefix("m1", "INBOX", 7);
        assert_eq!(key[..prefix.len()], prefix[..]);
        assert_eq!(key[prefix.len()..], [1, 2, 3, 4]);
        assert_eq!(uid_key(&src), key);
    }

    fn with_blob(sha: &str, raw: &'static [u8]) -> CommitBatch {
        CommitBatch {
            blobs: vec![(sha.to_owned(), bytes::Bytes::from_static(raw))],
            ..CommitBatch::default()
        }
    }

    #[test]
    fn raw_messages_survive_a_crash_between_segment_sync_and_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        store.commit(with_blob("aa", b"first")).unwrap();
        drop(store);
        // What a kill -9 after a batch's segment sync, before its commit,
        // leaves behind: bytes no index refers to.
        let segment = dir.path().join(SEGMENTS_DIR).join("00000001.seg");
        let committed = fs::metadata(&segment).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
        f.write_all(b"never committed").unwrap();
        drop(f);

        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(fs::metadata(&segment).unwrap().len(), committed);
        store.commit(with_blob("bb", b"second")).unwrap();
        assert_eq!(store.blob("aa").unwrap().unwrap(), b"first");
        assert_eq!(store.blob("bb").unwrap().unwrap(), b"second");
        assert_eq!(store.blob("cc").unwrap(), None);
    }

    #[test]
    fn hash_memtable_families_are_read_from_memtables_and_flushed_tables() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let batch = |n: u64| CommitBatch {
            message_ids: vec![(format!("m{n}@example.com"), n)],
            ..with_blob(&format!("{n:064x}"), b"raw")
        };
        store.commit(batch(1)).unwrap();
        // The first batch in table files (the flush reads the hash table
        // memtables in key order), the second still in the memtables.
        for family in [MSGID, BLOB_REFS] {
            store.db.flush_cf(store.cf(family)).unwrap();
        }
        store.commit(batch(2)).unwrap();
        for n in [1, 2] {
            let id = format!("m{n}@example.com");
            assert_eq!(store.ticket_for_message_id(&id).unwrap(), Some(n));
            assert_eq!(store.blob(&format!("{n:064x}")).unwrap().unwrap(), b"raw");
        }
        assert_eq!(store.ticket_for_message_id("m3@example.com").unwrap(), None);
        assert_eq!(store.ticket_for_message_id("m1@example.co").unwrap(), None);
        drop(store);
        // And after a restart (the second batch replayed from the WAL).
        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(
            store.ticket_for_message_id("m2@example.com").unwrap(),
            Some(2)
        );
        assert_eq!(store.blob(&format!("{:064x}", 1)).unwrap().unwrap(), b"raw");
    }

    fn entry(content: &MessageContent) -> NewEntry {
        NewEntry {
            v: SCHEMA_VERSION,
            ticket: 3,
            seq: 0,
            source: Source {
                mailbox: "m".into(),
                folder: "INBOX".into(),
                uidvalidity: 7,
                uid: 9,
            },
            content: EncodedContent::of(content),
            received_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn an_entry_reads_back_as_the_entry_it_stands_for() {
        let dir = tempfile::tempdir().unwrap();
        let content = MessageContent {
            message_id: "a@b".into(),
            subject: "Order \"42\"\r\n\u{e9}".into(),
            text_body: Some("line one\r\nline two\t\u{1F600}".into()),
            size: 42,
            ..MessageContent::default()
        };
        let new = entry(&content);
        let store = RocksStore::open(dir.path()).unwrap();
        store
            .commit(CommitBatch {
                entries: vec![new.clone()],
                ..CommitBatch::default()
            })
            .unwrap();
        drop(store);
        let store = RocksStore::open(dir.path()).unwrap();
        let expected = Entry {
            v: SCHEMA_VERSION,
            ticket: new.ticket,
            seq: new.seq,
            source: new.source.clone(),
            content,
            received_at: new.received_at,
        };
        assert_eq!(store.entries(3).unwrap(), vec![expected]);
    }

    #[test]
    fn entries_of_older_stores_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let content = MessageContent {
            subject: "v1".into(),
            ..MessageContent::default()
        };
        let new = entry(&content);
        let v1 = Entry {
            v: 1,
            ticket: new.ticket,
            seq: new.seq,
            source: new.source,
            content,
            received_at: new.received_at,
        };
        let key = entry_key(3, 0);
        let value = serde_json::to_vec(&v1).unwrap();
        store.db.put_cf(store.cf(ENTRIES), key, value).unwrap();
        assert_eq!(store.entries(3).unwrap(), vec![v1]);
    }

    #[test]
    fn the_highest_outcome_uid_is_per_folder_and_uidvalidity() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let at = |folder: &str, uidvalidity, uid| {
            let source = Source {
                mailbox: "m".into(),
                folder: folder.into(),
                uidvalidity,
                uid,
            };
            (source, Outcome::Duplicate { ticket: 1 })
        };
        let outcomes = vec![
            at("INBOX", 7, 3),
            at("INBOX", 7, 9),
            at("INBOX", 8, 20),
            at("INBOX.Sent", 7, 50),
        ];
        store
            .commit(CommitBatch {
                outcomes,
                ..CommitBatch::default()
            })
            .unwrap();
        let highest = |folder, v| store.highest_outcome_uid("m", folder, v).unwrap();
        assert_eq!(highest("INBOX", 7), Some(9));
        assert_eq!(highest("INBOX", 8), Some(20));
        assert_eq!(highest("INBOX", 6), None);
        assert_eq!(highest("INBOX", 9), None);
        assert_eq!(highest("INBOX.Sent", 7), Some(50));
        assert_eq!(highest("Archive", 7), None);
        assert_eq!(store.highest_outcome_uid("n", "INBOX", 7).unwrap(), None);
    }

    #[test]
    fn raw_messages_of_older_stores_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        store.db.put_cf(store.cf(BLOBS), b"aa", b"legacy").unwrap();
        assert_eq!(store.blob("aa").unwrap().unwrap(), b"legacy");
    }
}
