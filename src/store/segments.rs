//! Raw messages in append-only segment files beside RocksDB: each message's
//! bytes are written once, here, instead of through RocksDB's WAL, memtable
//! and flush (three copies, and most of a commit's bytes). A group commit
//! appends its messages and syncs them *before* the RocksDB batch that
//! indexes them (their [`BlobRef`]s and the new [`Head`]) is committed, so an
//! index never points at bytes that are not on disk. A crash between the two
//! leaves bytes past the committed head: [`Segments::open`] cuts them off.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use super::StoreError;

/// A segment is closed and the next one started once it would grow past
/// this (1 MiB in unit tests, so rolling over is cheap to test).
const SEGMENT_BYTES: u64 = if cfg!(test) { 1 << 20 } else { 256 << 20 };

/// Where one raw message lies: segment number, offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    segment: u32,
    offset: u64,
    len: u32,
}

impl BlobRef {
    /// Encoded size: segment, offset and length, big-endian.
    const LEN: usize = 16;

    /// The 16 bytes stored in the index.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0; Self::LEN];
        b[..4].copy_from_slice(&self.segment.to_be_bytes());
        b[4..12].copy_from_slice(&self.offset.to_be_bytes());
        b[12..].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    /// Reads what [`BlobRef::encode`] wrote.
    pub fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let b: &[u8; Self::LEN] = b
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("a blob reference of {} bytes", b.len())))?;
        let [s0, s1, s2, s3, o @ .., l0, l1, l2, l3] = *b;
        let mut offset = [0; 8];
        offset.copy_from_slice(&o[..8]);
        Ok(Self {
            segment: u32::from_be_bytes([s0, s1, s2, s3]),
            offset: u64::from_be_bytes(offset),
            len: u32::from_be_bytes([l0, l1, l2, l3]),
        })
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

/// The segment files of one store, appended to by its one committer.
pub struct Segments {
    dir: PathBuf,
    file: File,
    head: Head,
    /// Appended since the last sync, not yet written.
    pending: Vec<u8>,
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
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| fail(&path, e))?;
        let len = file.metadata().map_err(|e| fail(&path, e))?.len();
        if len < head.len {
            return Err(StoreError::Open {
                path: path.display().to_string(),
                reason: format!(
                    "raw-message segment is {len} bytes but {} were committed: the disk lost synced data; restore data_dir from a backup",
                    head.len
                ),
            });
        }
        if len > head.len {
            file.set_len(head.len).map_err(|e| fail(&path, e))?;
            file.sync_all().map_err(|e| fail(&path, e))?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            file,
            head,
            pending: Vec::new(),
            closed: None,
        })
    }

    /// Adds `bytes` to the current batch; durable after [`Segments::sync`].
    pub fn append(&mut self, bytes: &[u8]) -> Result<BlobRef, StoreError> {
        let start = self.head.len + self.pending.len() as u64;
        if start > 0 && start + bytes.len() as u64 > SEGMENT_BYTES {
            self.roll()?;
        }
        let offset = self.head.len + self.pending.len() as u64;
        self.pending.extend_from_slice(bytes);
        Ok(BlobRef {
            segment: self.head.segment,
            offset,
            len: u32::try_from(bytes.len())
                .map_err(|_| StoreError::Io(format!("a message of {} bytes", bytes.len())))?,
        })
    }

    /// Writes and syncs the current batch; returns the head to commit with
    /// the index records that refer to it.
    pub fn sync(&mut self) -> Result<Head, StoreError> {
        if let Some(closed) = self.closed.take() {
            closed.sync_data().map_err(io)?;
        }
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending).map_err(io)?;
            self.file.sync_data().map_err(io)?;
            self.head.len += self.pending.len() as u64;
            self.pending.clear();
        }
        Ok(self.head)
    }

    /// Writes out the current segment and starts the next one.
    fn roll(&mut self) -> Result<(), StoreError> {
        self.file.write_all(&self.pending).map_err(io)?;
        self.pending.clear();
        let next = Head {
            segment: self.head.segment + 1,
            len: 0,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path_of(&self.dir, next.segment))
            .map_err(io)?;
        // The directory entry must survive a crash once the head names it.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        self.closed = Some(std::mem::replace(&mut self.file, file));
        self.head = next;
        Ok(())
    }
}

/// Reads the message at `at` from the segments in `dir`.
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
    StoreError::Io(format!("raw-message segment: {e}"))
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
        assert_eq!(BlobRef::decode(&r.encode()).unwrap(), r);
        assert!(BlobRef::decode(b"short").is_err());
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
        let head = s.sync().unwrap();
        assert_eq!(
            head,
            Head {
                segment: 2,
                len: big.len() as u64
            }
        );
        assert_eq!(read(&dir, a).unwrap().len(), big.len());
        // A crash before that batch committed: back at segment 1.
        drop(s);
        Segments::open(
            &dir,
            Head {
                segment: 1,
                len: big.len() as u64,
            },
        )
        .unwrap();
        assert!(!path_of(&dir, 2).exists());
        assert_eq!(read(&dir, a).unwrap().len(), big.len());
        fs::remove_dir_all(dir).unwrap();
    }
}
