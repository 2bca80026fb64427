//! Raw messages and entry contents (most of a commit's bytes) in append-only
//! segment files beside RocksDB: written once, here, instead of through
//! RocksDB's WAL, memtable and flush (three copies). A group commit appends
//! them and syncs them *before* the RocksDB batch that refers to them (their
//! [`BlobRef`]s and the new [`Head`]) is committed, so a record never points
//! at bytes that are not on disk. A crash between the two leaves bytes past
//! the committed head: [`Segments::open`] cuts them off.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use super::StoreError;

/// A segment is closed and the next one started once it would grow past
/// this (1 MiB in unit tests, so rolling over is cheap to test).
const SEGMENT_BYTES: u64 = if cfg!(test) { 1 << 20 } else { 256 << 20 };

/// Where one stored piece lies: segment number, offset and length. Records
/// hold it as the JSON array `[segment, offset, length]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "(u32, u64, u32)", into = "(u32, u64, u32)")]
pub struct BlobRef {
    segment: u32,
    offset: u64,
    len: u32,
}

impl From<(u32, u64, u32)> for BlobRef {
    fn from((segment, offset, len): (u32, u64, u32)) -> Self {
        Self {
            segment,
            offset,
            len,
        }
    }
}

impl From<BlobRef> for (u32, u64, u32) {
    fn from(r: BlobRef) -> Self {
        (r.segment, r.offset, r.len)
    }
}

/// How far the segments are committed: the current segment and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    /// The segment being appended to.
    pub segment: u32,
    /// Its committed length, bytes.
    pub len: u64,
}

impl Default for Head {
    fn default() -> Self {
        Self { segment: 1, len: 0 }
    }
}

/// Segment writes start and end on this boundary: direct IO needs it.
const BLOCK: usize = 4096;
/// The most buffer kept between batches: 512 messages of ≈ 30 KiB (raw
/// and encoded content) fit. A larger batch's buffer is given back, and
/// the next one comes from fresh pages (1,000 4 KiB messages, 9 MiB, over
/// a limit of 8 MiB: under half the tickets per second of 500). Counted in
/// the store's memory budget.
pub const RETAINED: usize = 32 << 20;

/// The segment files of one store, appended to by its one committer.
pub struct Segments {
    dir: PathBuf,
    file: File,
    head: Head,
    /// Appended since the last sync, not yet written.
    pending: BlockBuffer,
    /// A full segment closed by this batch, to sync with it.
    closed: Option<File>,
}

impl Segments {
    /// Opens the segments in `dir` at the committed `head`, cutting off
    /// whatever a crash left past it.
    pub fn open(dir: &Path, head: Head) -> Result<Self, StoreError> {
        let fail = |path: &Path, e: io::Error| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
        // Segments after the head were started by a batch that never
        // committed: nothing refers to them.
        for next in head.segment + 1.. {
            match fs::remove_file(path_of(dir, next)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(fail(&path_of(dir, next), e)),
            }
        }
        let path = path_of(dir, head.segment);
        let file = open_for_append(&path).map_err(|e| fail(&path, e))?;
        let len = file.metadata().map_err(|e| fail(&path, e))?.len();
        if len < head.len {
            return Err(StoreError::Open {
                path: path.display().to_string(),
                reason: format!(
                    "segment is {len} bytes but {} were committed: the disk lost synced data; restore data_dir from a backup",
                    head.len
                ),
            });
        }
        if len > head.len {
            file.set_len(head.len).map_err(|e| fail(&path, e))?;
            file.sync_all().map_err(|e| fail(&path, e))?;
        }
        let mut segments = Self {
            dir: dir.to_owned(),
            file,
            head,
            pending: BlockBuffer::default(),
            closed: None,
        };
        if !head.len.is_multiple_of(BLOCK as u64) {
            // Written without block alignment: continue in a new segment.
            segments.roll()?;
        }
        Ok(segments)
    }

    /// Makes room for `bytes` more in the current batch at once (a batch
    /// knows its size), so the pieces appended next are copied only once.
    pub fn reserve(&mut self, bytes: usize) {
        self.pending.reserve(bytes);
    }

    /// Adds `bytes` to the current batch; durable after [`Segments::sync`].
    pub fn append(&mut self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| StoreError::Io(format!("a piece of {} bytes", bytes.len())))?;
        let start = self.head.len + self.pending.len() as u64;
        if start > 0 && start + bytes.len() as u64 > SEGMENT_BYTES {
            self.roll()?;
        }
        let offset = self.head.len + self.pending.len() as u64;
        self.pending.extend(bytes);
        Ok(BlobRef {
            segment: self.head.segment,
            offset,
            len,
        })
    }

    /// The head [`Segments::sync`] will return: the pending bytes padded to
    /// whole blocks.
    pub fn head_after_sync(&self) -> Head {
        Head {
            segment: self.head.segment,
            len: self.head.len + self.pending.len().next_multiple_of(BLOCK) as u64,
        }
    }

    /// Writes and syncs the current batch; returns the head to commit with
    /// the records that refer to it.
    pub fn sync(&mut self) -> Result<Head, StoreError> {
        if let Some(closed) = self.closed.take() {
            closed.sync_data().map_err(io)?;
        }
        if self.pending.len() > 0 {
            self.write_pending()?;
            self.file.sync_data().map_err(io)?;
        }
        Ok(self.head)
    }

    /// Writes the pending bytes, padded to whole blocks, at the head.
    fn write_pending(&mut self) -> Result<(), StoreError> {
        let blocks = self.pending.padded();
        self.file.write_all_at(blocks, self.head.len).map_err(io)?;
        self.head.len += blocks.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes out the current segment and starts the next one.
    fn roll(&mut self) -> Result<(), StoreError> {
        if self.pending.len() > 0 {
            self.write_pending()?;
        }
        let next = Head {
            segment: self.head.segment + 1,
            len: 0,
        };
        let file = open_for_append(&path_of(&self.dir, next.segment)).map_err(io)?;
        // The directory entry must survive a crash once the head names it.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        self.closed = Some(std::mem::replace(&mut self.file, file));
        self.head = next;
        Ok(())
    }
}

/// Opens a segment for writing around the page cache (copying every byte
/// into it cost the writer's thread more than the rest of a commit), or
/// through it where the file system has no direct IO (tmpfs).
fn open_for_append(path: &Path) -> io::Result<File> {
    let open = |flags| {
        OpenOptions::new()
            .create(true)
            .write(true)
            .read(true)
            .custom_flags(flags)
            .open(path)
    };
    match open(libc::O_DIRECT) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(0),
        other => other,
    }
}

/// A byte buffer whose data starts on a block boundary, as direct IO needs.
/// Its storage is never moved while it is being filled: growing copies the
/// data once into storage sized for what is asked, and only the bytes in
/// front of the boundary and the padding are zeroed (zeroing all of it cost
/// a batch of large messages as much as copying them).
#[derive(Default)]
struct BlockBuffer {
    /// Alignment bytes up to `start`, then the data.
    storage: Vec<u8>,
    start: usize,
}

impl BlockBuffer {
    fn len(&self) -> usize {
        self.storage.len() - self.start
    }

    /// Room for `additional` more bytes (and their padding) without moving.
    fn reserve(&mut self, additional: usize) {
        let need = self.len() + additional;
        if self.start + need.next_multiple_of(BLOCK) > self.storage.capacity() {
            self.grow(need);
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        let need = self.len() + bytes.len();
        if self.start + need.next_multiple_of(BLOCK) > self.storage.capacity() {
            // Doubling: appends one by one without a reserve still copy
            // each byte a bounded number of times.
            self.grow(need.max(2 * self.len()));
        }
        self.storage.extend_from_slice(bytes);
    }

    /// Storage for `need` bytes, padded to whole blocks, from a block
    /// boundary, holding the data so far.
    fn grow(&mut self, need: usize) {
        let mut storage: Vec<u8> = Vec::with_capacity(need.next_multiple_of(BLOCK) + BLOCK);
        let start = storage.as_ptr().align_offset(BLOCK);
        storage.resize(start, 0);
        storage.extend_from_slice(&self.storage[self.start..]);
        self.storage = storage;
        self.start = start;
    }

    /// The data padded with zeros to whole blocks.
    fn padded(&mut self) -> &[u8] {
        let padded = self.start + self.len().next_multiple_of(BLOCK);
        self.storage.resize(padded, 0);
        &self.storage[self.start..]
    }

    /// Empties the buffer; one that a batch of big messages grew past
    /// [`RETAINED`] is given back rather than held for good.
    fn clear(&mut self) {
        self.storage.truncate(self.start);
        if self.storage.capacity() > RETAINED {
            *self = Self::default();
        }
    }
}

/// Reads the piece at `at` from the segments in `dir`.
pub fn read(dir: &Path, at: BlobRef) -> Result<Vec<u8>, StoreError> {
    let path = path_of(dir, at.segment);
    let file = File::open(&path).map_err(|e| {
        StoreError::Io(format!(
            "cannot open raw-message segment {}: {e}",
            path.display()
        ))
    })?;
    let mut buf = vec![0; at.len as usize];
    file.read_exact_at(&mut buf, at.offset).map_err(|e| {
        StoreError::Io(format!(
            "cannot read {} bytes at {} of {}: {e}",
            at.len,
            at.offset,
            path.display()
        ))
    })?;
    Ok(buf)
}

fn path_of(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.seg"))
}

fn io(e: io::Error) -> StoreError {
    StoreError::Io(format!("segment write: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mailgate-seg-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_reference_survives_encoding() {
        let r = BlobRef {
            segment: 7,
            offset: 1 << 40,
            len: 4096,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "[7,1099511627776,4096]");
        assert_eq!(serde_json::from_str::<BlobRef>(&json).unwrap(), r);
        assert!(serde_json::from_str::<BlobRef>("[7,1]").is_err());
    }

    #[test]
    fn bytes_past_the_committed_head_are_cut_off_at_open() {
        let dir = temp_dir("tail");
        let mut s = Segments::open(&dir, Head::default()).unwrap();
        let a = s.append(b"first message").unwrap();
        let committed = s.sync().unwrap();
        // A crash after the next batch's sync, before its index committed.
        s.append(b"never indexed").unwrap();
        s.sync().unwrap();
        drop(s);
        let mut s = Segments::open(&dir, committed).unwrap();
        assert_eq!(read(&dir, a).unwrap(), b"first message");
        let b = s.append(b"second message").unwrap();
        assert_eq!(b.offset, committed.len, "the cut-off tail is reused");
        s.sync().unwrap();
        assert_eq!(read(&dir, b).unwrap(), b"second message");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn batches_are_written_in_whole_blocks() {
        let dir = temp_dir("blocks");
        let mut s = Segments::open(&dir, Head::default()).unwrap();
        let pieces: Vec<Vec<u8>> = (0..50u8)
            .map(|i| vec![i; 100 + 97 * usize::from(i)])
            .collect();
        let refs: Vec<BlobRef> = pieces.iter().map(|p| s.append(p).unwrap()).collect();
        let expected = s.head_after_sync();
        let head = s.sync().unwrap();
        assert_eq!(head, expected);
        assert!(head.len.is_multiple_of(BLOCK as u64));
        let next = s.append(b"next batch").unwrap();
        assert_eq!(next.offset, head.len, "a batch starts on a block");
        s.sync().unwrap();
        for (p, r) in pieces.iter().zip(&refs) {
            assert_eq!(&read(&dir, *r).unwrap(), p);
        }
        assert_eq!(read(&dir, next).unwrap(), b"next batch");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_reserved_buffer_is_filled_in_place_and_padded_with_zeros() {
        let mut b = BlockBuffer::default();
        for round in 0..2u8 {
            b.reserve(10_000);
            let at = b.storage.as_ptr();
            for i in 0..100u8 {
                b.extend(&[i | 1 | round; 100]);
            }
            assert_eq!(b.storage.as_ptr(), at, "filled without moving");
            assert_eq!(b.len(), 10_000);
            let padded = b.padded();
            assert_eq!(padded.as_ptr() as usize % BLOCK, 0);
            assert_eq!(padded.len(), 12_288);
            assert_eq!(padded[9_999], 99 | 1 | round);
            assert!(padded[10_000..].iter().all(|&x| x == 0));
            // The next batch reuses the storage; the padding is zeroed anew.
            b.clear();
            assert_eq!(b.len(), 0);
        }
        // Unreserved appends grow it; the data so far moves along.
        for i in 0..40u8 {
            b.extend(&[i; 1000]);
        }
        let padded = b.padded();
        assert_eq!(padded.as_ptr() as usize % BLOCK, 0);
        assert!((0..40u8).all(|i| padded[usize::from(i) * 1000..][..1000] == [i; 1000]));
        // Storage a batch grew past RETAINED is given back.
        b.clear();
        b.reserve(RETAINED + 1);
        b.clear();
        assert_eq!(b.storage.capacity(), 0);
    }

    #[test]
    fn a_segment_shorter_than_committed_is_refused() {
        let dir = temp_dir("short");
        let mut s = Segments::open(&dir, Head::default()).unwrap();
        s.append(b"message").unwrap();
        let head = s.sync().unwrap();
        drop(s);
        fs::write(path_of(&dir, 1), b"mess").unwrap();
        let err = Segments::open(&dir, head).err().unwrap().to_string();
        assert!(
            err.contains("00000001.seg") && err.contains("restore"),
            "{err}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_segment_rolls_over_and_uncommitted_segments_are_removed() {
        let dir = temp_dir("roll");
        let big = vec![b'x'; (SEGMENT_BYTES / 2 + 1) as usize];
        let mut s = Segments::open(&dir, Head::default()).unwrap();
        let a = s.append(&big).unwrap();
        let b = s.append(&big).unwrap();
        assert_eq!((a.segment, b.segment, b.offset), (1, 2, 0));
        let blocks = big.len().next_multiple_of(BLOCK) as u64;
        let head = s.sync().unwrap();
        assert_eq!(
            head,
            Head {
                segment: 2,
                len: blocks
            }
        );
        assert_eq!(read(&dir, a).unwrap(), big);
        assert_eq!(read(&dir, b).unwrap(), big);
        // A crash before that batch committed: back at segment 1.
        drop(s);
        Segments::open(
            &dir,
            Head {
                segment: 1,
                len: blocks,
            },
        )
        .unwrap();
        assert!(!path_of(&dir, 2).exists());
        assert_eq!(read(&dir, a).unwrap().len(), big.len());
        fs::remove_dir_all(dir).unwrap();
    }
}
