//! Mail on its way in (an SMTP DATA or BDAT, an IMAP APPEND literal): kept in memory up to a
//! small threshold, then spooled to a file in the data directory, so that a thousand half-sent
//! messages cost disk, not memory. Every byte in flight counts against one server-wide
//! budget, and turning a finished message into memory for parsing and storing waits for a
//! share of a second budget, so that memory stays bounded however many arrive at once.
//!
//! Spool files are not durable and need not be: a message is acknowledged only once the store
//! has written it (ARCHITECTURE.md §6). Those a crash leaves behind are removed at the next start.
//! A spooled message is hashed as it arrives, so that when it is stored as it came (an IMAP
//! APPEND, inbound SMTP) its file is renamed into the blob directory rather than written again.

use super::blobs::BlobId;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How much mail may be in flight, and where it goes meanwhile.
#[derive(Clone, Copy, Debug)]
pub struct SpoolLimits {
    /// Bytes of one message kept in memory before it goes to a file.
    pub threshold: usize,
    /// Bytes of unfinished messages, over all sessions, memory and files together.
    pub in_flight: u64,
    /// Bytes of finished messages being parsed and stored at once (a larger message takes it
    /// all, alone).
    pub processing: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The server-wide budget of bytes in flight is spent: a temporary condition.
    #[error("the server has too much mail in flight; try again later")]
    Full,
    #[error("spool file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The spool of one server; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    limits: SpoolLimits,
    in_flight: AtomicU64,
    counter: AtomicU64,
    /// The processing budget, in KiB, and its size.
    processing: Arc<Semaphore>,
    processing_kib: u32,
}

impl Spool {
    /// The spool in `dir`, emptied of what a previous run left.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        for entry in fs::read_dir(dir).map_err(io)?.flatten() {
            let _ = fs::remove_file(entry.path());
        }
        let kib = u32::try_from(limits.processing / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Ok(Spool {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                limits,
                in_flight: AtomicU64::new(0),
                counter: AtomicU64::new(0),
                processing: Arc::new(Semaphore::new(kib as usize)),
                processing_kib: kib,
            }),
        })
    }

    /// A new, empty message on its way in.
    pub fn incoming(&self) -> Incoming {
        Incoming {
            shared: self.shared.clone(),
            memory: Vec::new(),
            file: None,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes in flight now, over all sessions.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Takes `bytes` of the in-flight budget ahead of time (an IMAP literal announces its
    /// length); given back when the reservation is dropped.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, SpoolError> {
        self.shared.reserve(bytes)?;
        Ok(Reservation {
            shared: self.shared.clone(),
            bytes,
        })
    }
}

impl Shared {
    fn reserve(&self, bytes: u64) -> Result<(), SpoolError> {
        let budget = self.limits.in_flight;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(bytes).filter(|total| *total <= budget)
            })
            .map(|_| ())
            .map_err(|_| SpoolError::Full)
    }

    fn release(&self, bytes: u64) {
        self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// A share of the in-flight budget held ahead of the bytes.
pub struct Reservation {
    shared: Arc<Shared>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared.release(self.bytes);
    }
}

/// One message being received.
pub struct Incoming {
    shared: Arc<Shared>,
    memory: Vec<u8>,
    file: Option<(BufWriter<File>, PathBuf)>,
    /// The SHA-256 of what went to the file (all of it: the file starts with what was in
    /// memory).
    hasher: Sha256,
    len: u64,
}

/// A finished message in memory, with its share of the processing budget (hold it until the
/// message is stored) and, when it was spooled, its file: the store may take that file as
/// the message's blob instead of writing the bytes again.
pub struct Loaded {
    /// Shared, so that a copy for the spam filter's request costs nothing.
    bytes: bytes::Bytes,
    file: Option<SpooledFile>,
    _turn: Option<OwnedSemaphorePermit>,
}

/// The spool file of a finished message, with the SHA-256 of its bytes; removed when dropped
/// unless the store renamed it into its blobs.
pub struct SpooledFile {
    pub(super) path: PathBuf,
    pub(super) blob: BlobId,
}

impl Drop for SpooledFile {
    fn drop(&mut self) {
        // Gone already when the store took it.
        let _ = fs::remove_file(&self.path);
    }
}

impl Loaded {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The spool file holding exactly [`Loaded::bytes`], if the message was spooled.
    pub(super) fn spooled(&self) -> Option<&SpooledFile> {
        self.file.as_ref()
    }

    /// Puts other bytes in the message's place (a submission completed by the server),
    /// keeping its turn; the spool file no longer matches and goes.
    pub fn replace(&mut self, bytes: Vec<u8>) {
        self.file = None;
        self.bytes = bytes.into();
    }

    /// The bytes, shared rather than copied (a request body that must own them).
    pub fn shared(&self) -> bytes::Bytes {
        self.bytes.clone()
    }
}

/// Mail the server makes itself (notices, reports): in memory, outside the budgets.
impl From<Vec<u8>> for Loaded {
    fn from(bytes: Vec<u8>) -> Loaded {
        Loaded {
            bytes: bytes.into(),
            file: None,
            _turn: None,
        }
    }
}

impl Incoming {
    /// Appends bytes; `Full` when the server-wide budget is spent (nothing is kept then).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let n = bytes.len() as u64;
        self.shared.reserve(n)?;
        self.len += n;
        if self.file.is_none() && self.memory.len() + bytes.len() <= self.shared.limits.threshold {
            self.memory.extend_from_slice(bytes);
            return Ok(());
        }
        if self.file.is_none() {
            self.hasher.update(&self.memory);
        }
        self.hasher.update(bytes);
        let (file, path) = match &mut self.file {
            Some((file, path)) => (file, path),
            None => self.spill()?,
        };
        file.write_all(bytes).map_err(|source| SpoolError::Io {
            path: path.clone(),
            source,
        })
    }

    /// Moves what is in memory to a new spool file.
    fn spill(&mut self) -> Result<(&mut BufWriter<File>, &mut PathBuf), SpoolError> {
        let n = self.shared.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.shared.dir.join(format!("{}-{n}", std::process::id()));
        let io = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        let mut file = BufWriter::with_capacity(64 * 1024, File::create(&path).map_err(io)?);
        file.write_all(&self.memory).map_err(io)?;
        self.memory = Vec::new();
        let (file, path) = self.file.insert((file, path));
        Ok((file, path))
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the message went to a file (for tests and metrics).
    pub fn is_spooled(&self) -> bool {
        self.file.is_some()
    }

    /// Drops what was received, giving its budget back.
    pub fn clear(&mut self) {
        self.discard();
        self.memory = Vec::new();
        self.hasher = Sha256::new();
    }

    fn discard(&mut self) {
        self.shared.release(std::mem::take(&mut self.len));
        if let Some((file, path)) = self.file.take() {
            drop(file);
            let _ = fs::remove_file(&path);
        }
    }

    /// The whole message in memory, once the processing budget has room for it.
    pub async fn load(mut self) -> Result<Loaded, SpoolError> {
        let kib = u32::try_from(self.len.div_ceil(1024).max(1))
            .unwrap_or(u32::MAX)
            .min(self.shared.processing_kib);
        let turn = self
            .shared
            .processing
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(|_| SpoolError::Full)?;
        let (bytes, file) = match self.file.take() {
            None => (std::mem::take(&mut self.memory), None),
            Some((file, path)) => {
                let spooled = SpooledFile {
                    path,
                    blob: BlobId(std::mem::take(&mut self.hasher).finalize().into()),
                };
                let read = tokio::task::spawn_blocking(move || {
                    read_spooled(file, &spooled.path).map(|bytes| (bytes, spooled))
                });
                let (bytes, spooled) = read.await.map_err(|e| SpoolError::Io {
                    path: PathBuf::new(),
                    source: std::io::Error::other(e),
                })??;
                (bytes, Some(spooled))
            }
        };
        Ok(Loaded {
            bytes: bytes.into(),
            file,
            _turn: Some(turn),
        })
    }
}

fn read_spooled(file: BufWriter<File>, path: &Path) -> Result<Vec<u8>, SpoolError> {
    let io = |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    };
    drop(file.into_inner().map_err(|e| io(e.into_error()))?);
    fs::read(path).map_err(io)
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(dir: &Path, in_flight: u64) -> Spool {
        let limits = SpoolLimits {
            threshold: 16,
            in_flight,
            processing: 1024 * 1024,
        };
        Spool::open(&dir.join("spool"), limits).unwrap()
    }

    fn files(dir: &Path) -> usize {
        fs::read_dir(dir.join("spool")).unwrap().count()
    }

    #[tokio::test]
    async fn small_messages_stay_in_memory_large_ones_go_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(dir.path(), 1 << 20);
        let mut small = spool.incoming();
        small.push(b"0123456789").unwrap();
        assert!(!small.is_spooled());
        let mut large = spool.incoming();
        for _ in 0..100 {
            large.push(b"0123456789").unwrap();
        }
        assert!(large.is_spooled());
        assert_eq!(files(dir.path()), 1);
        assert_eq!(spool.in_flight(), 1010);
        let loaded = large.load().await.unwrap();
        assert_eq!(loaded.bytes(), b"0123456789".repeat(100));
        let spooled = loaded.spooled().expect("the file is kept for the store");
        assert_eq!(
            spooled.blob,
            BlobId::of(loaded.bytes()),
            "hashed as it came"
        );
        assert_eq!(files(dir.path()), 1);
        drop(loaded);
        assert_eq!(files(dir.path()), 0, "the file goes with the message");
        assert_eq!(
            spool.in_flight(),
            10,
            "only the small one is still in flight"
        );
        drop(small);
        assert_eq!(spool.in_flight(), 0);
    }

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let spool = spool(dir.path(), 100);
        let mut a = spool.incoming();
        a.push(&[b'a'; 60]).unwrap();
        let mut b = spool.incoming();
        assert!(matches!(b.push(&[b'b'; 60]), Err(SpoolError::Full)));
        assert_eq!(b.len(), 0, "nothing kept of a refused push");
        let reserved = spool.reserve(40).unwrap();
        assert!(matches!(spool.reserve(1), Err(SpoolError::Full)));
        drop(reserved);
        a.clear();
        assert_eq!(files(dir.path()), 0);
        b.push(&[b'b'; 60]).unwrap();
        assert_eq!(spool.in_flight(), 60);
    }

    #[test]
    fn leftovers_of_a_previous_run_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("spool")).unwrap();
        fs::write(dir.path().join("spool").join("1-1"), b"half a message").unwrap();
        let _spool = spool(dir.path(), 100);
        assert_eq!(files(dir.path()), 0);
    }
}
