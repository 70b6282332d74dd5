//! Message bodies on disk, named by their SHA-256: one message delivered to fifty mailboxes is
//! stored once. A blob is written to a temporary file, fsynced, renamed into place and its
//! directory fsynced, so a blob that is referenced is always whole.
//!
//! Writing is the slow part of a delivery (two fsyncs), so it runs outside the store's write
//! lock, where concurrent deliveries share the file system's journal commits. Under the lock,
//! [`BlobDir::ensure`] then checks the file is still there if any blob was removed since
//! ([`BlobDir::removals`]): the sweep of freed blobs removes files under the lock, and may
//! have removed this content in between.
//!
//! Bodies just written or read stay in a bounded memory cache: a client fetches new mail
//! right after it arrives, and then its parts one request at a time; each read from the
//! cache saves opening, sizing, reading and closing the file.

use super::error::{StoreError, StoreResult};
use super::spool::SpooledFile;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The SHA-256 of a message's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobId({})", &self.hex()[..12])
    }
}

pub(super) struct BlobDir {
    root: PathBuf,
    tmp: PathBuf,
    counter: AtomicU64,
    /// How many blobs were removed since the store opened.
    removals: AtomicU64,
    /// Recently written or read bodies (`[store] body_cache_mib`); `None` when that is 0.
    cache: Option<BodyCache>,
}

/// Message bodies by content, weighed by their size.
struct BodyCache {
    bodies: moka::sync::Cache<BlobId, Bytes>,
    /// Larger bodies are read from their file each time: one big attachment would otherwise
    /// push out hundreds of ordinary messages.
    largest: usize,
}

impl BodyCache {
    fn new(capacity_bytes: u64) -> Option<BodyCache> {
        (capacity_bytes > 0).then(|| BodyCache {
            bodies: moka::sync::Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|_, body: &Bytes| u32::try_from(body.len()).unwrap_or(u32::MAX))
                // Recency, not frequency: a body just delivered is the likeliest to be read,
                // and has never been read yet.
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
            largest: usize::try_from(capacity_bytes / 16).unwrap_or(usize::MAX),
        })
    }

    /// Keeps `body` unless it is too large, or a blob was removed since `removals_before`
    /// (read before the body was): the removed one may be this one, whose file is gone.
    fn keep(&self, id: BlobId, body: &Bytes, removals: &AtomicU64, removals_before: u64) {
        if body.len() > self.largest {
            return;
        }
        self.bodies.insert(id, body.clone());
        if removals.load(Ordering::SeqCst) != removals_before {
            self.bodies.invalidate(&id);
        }
    }
}

impl BlobDir {
    /// The blob directory at `root`, keeping up to `cache_bytes` of bodies in memory.
    pub fn open(root: &Path, cache_bytes: u64) -> StoreResult<BlobDir> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        // Temporary files left by a crash were never referenced: they can go.
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Self::create_fan_out(root)?;
        Ok(BlobDir {
            root: root.to_path_buf(),
            tmp,
            counter: AtomicU64::new(0),
            removals: AtomicU64::new(0),
            cache: BodyCache::new(cache_bytes),
        })
    }

    /// The 256 directories blobs go into, made once and made durable (the root fsynced), so
    /// no delivery creates a directory whose entry a crash could lose.
    fn create_fan_out(root: &Path) -> StoreResult<()> {
        let mut created = false;
        for byte in 0..=255u8 {
            let dir = root.join(hex::encode([byte]));
            if !dir.is_dir() {
                fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
                created = true;
            }
        }
        if created {
            sync_dir(root)?;
            // The store's own directory holds the new `blobs` entry.
            if let Some(parent) = root.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    pub(super) fn path(&self, id: &BlobId) -> PathBuf {
        let hex = id.hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    /// Writes `bytes` durably unless a blob with the same content is already there. Call it
    /// without the store lock, then [`BlobDir::ensure`] under it before referencing the blob.
    pub fn write(&self, bytes: &[u8]) -> StoreResult<BlobId> {
        let id = BlobId::of(bytes);
        self.ensure(&id, bytes, None)?;
        Ok(id)
    }

    /// Makes sure the blob `id` of `bytes` is on disk, durably: under the store lock, after
    /// `write`, it is written again if an expunge removed it in between. A spooled message's
    /// file, already hashed, is renamed into place rather than written again. What is there may
    /// have been renamed into place by another delivery whose directory sync is still to
    /// come: the directory is synced again, which costs nothing when that is done.
    pub fn ensure(
        &self,
        id: &BlobId,
        bytes: &[u8],
        spooled: Option<&SpooledFile>,
    ) -> StoreResult<()> {
        let path = self.path(id);
        if path.exists() {
            return sync_dir(self.dir_of(&path));
        }
        if let Some(spooled) = spooled.filter(|s| s.blob == *id)
            && self.adopt(spooled, &path).is_ok()
        {
            return Ok(());
        }
        self.write_new(id, bytes, &path)
    }

    /// Makes a spool file durable and renames it into place. Where that cannot be done (the
    /// spool on another file system, the file gone), the caller writes the bytes instead.
    fn adopt(&self, spooled: &SpooledFile, path: &Path) -> std::io::Result<()> {
        File::open(&spooled.path)?.sync_all()?;
        fs::rename(&spooled.path, path)?;
        File::open(self.dir_of(path))?.sync_all()
    }

    fn dir_of<'p>(&'p self, path: &'p Path) -> &'p Path {
        path.parent().unwrap_or(&self.root)
    }

    fn write_new(&self, id: &BlobId, bytes: &[u8], path: &Path) -> StoreResult<()> {
        let removals_before = self.removals();
        let dir = self.dir_of(path);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}-{n}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::io(path, e)
        })?;
        if let Some(cache) = &self.cache
            && bytes.len() <= cache.largest
        {
            let body = Bytes::copy_from_slice(bytes);
            cache.keep(*id, &body, &self.removals, removals_before);
        }
        Ok(())
    }

    /// The blob's bytes, from the cache or else from its file.
    pub fn read(&self, id: &BlobId) -> StoreResult<Bytes> {
        if let Some(body) = self.cache.as_ref().and_then(|c| c.bodies.get(id)) {
            return Ok(body);
        }
        let removals_before = self.removals();
        let path = self.path(id);
        let body = Bytes::from(fs::read(&path).map_err(|e| StoreError::io(&path, e))?);
        if let Some(cache) = &self.cache {
            cache.keep(*id, &body, &self.removals, removals_before);
        }
        Ok(body)
    }

    /// Bytes `range` of a blob (fewer where it ends first): from the memory cache if it
    /// holds the body, else from the file, reading no more than the range.
    pub fn read_range(&self, id: &BlobId, range: std::ops::Range<u64>) -> StoreResult<Bytes> {
        if let Some(body) = self.cache.as_ref().and_then(|c| c.bodies.get(id)) {
            return Ok(slice_of(&body, range));
        }
        let path = self.path(id);
        let read = || -> std::io::Result<Vec<u8>> {
            use std::io::{Read, Seek, SeekFrom};
            let mut file = fs::File::open(&path)?;
            file.seek(SeekFrom::Start(range.start))?;
            let mut out = Vec::new();
            file.take(range.end.saturating_sub(range.start))
                .read_to_end(&mut out)?;
            Ok(out)
        };
        Ok(Bytes::from(read().map_err(|e| StoreError::io(&path, e))?))
    }

    /// Drops a body from the memory cache, for tests that change its file.
    #[cfg(test)]
    pub fn forget_cached(&self, id: &BlobId) {
        if let Some(cache) = &self.cache {
            cache.bodies.invalidate(id);
        }
    }

    /// How many blobs were removed so far: a blob made durable while this stayed the same is
    /// still there.
    pub fn removals(&self) -> u64 {
        self.removals.load(Ordering::SeqCst)
    }

    /// Removes a blob no message references any more. A failure leaves an orphan file, which
    /// costs disk but never data.
    /// The count goes up after the file is gone, and the cache is emptied after that: a
    /// read racing the removal either fails, or sees the count move and drops what it kept.
    /// (The check in `ensure`'s callers is under the store lock, as removals are.)
    pub fn remove(&self, id: &BlobId) {
        let path = self.path(id);
        if let Err(e) = fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an unreferenced blob");
        }
        self.removals.fetch_add(1, Ordering::SeqCst);
        if let Some(cache) = &self.cache {
            cache.bodies.invalidate(id);
        }
    }
}

fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Bytes `range` of `body`, fewer where it ends first; shared, not copied.
pub(crate) fn slice_of(body: &Bytes, range: std::ops::Range<u64>) -> Bytes {
    let end = usize::try_from(range.end)
        .unwrap_or(usize::MAX)
        .min(body.len());
    let start = usize::try_from(range.start).unwrap_or(usize::MAX).min(end);
    body.slice(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_removed_between_write_and_ensure_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path(), 1 << 20).unwrap();
        let id = blobs.write(b"body").unwrap();
        // An expunge of the last message with the same content, between the two steps.
        blobs.remove(&id);
        assert!(blobs.read(&id).is_err());
        blobs.ensure(&id, b"body", None).unwrap();
        assert_eq!(blobs.read(&id).unwrap(), &b"body"[..]);
    }

    #[test]
    fn bodies_are_served_from_memory_up_to_a_sixteenth_of_the_cache_and_not_after_removal() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path(), 1 << 20).unwrap();
        let small = blobs.write(b"small body").unwrap();
        let big_body = vec![b'x'; (1 << 16) + 1];
        let big = blobs.write(&big_body).unwrap();
        // With the files gone behind the store's back, only the cache can answer.
        fs::remove_file(blobs.path(&small)).unwrap();
        fs::remove_file(blobs.path(&big)).unwrap();
        assert_eq!(blobs.read(&small).unwrap(), &b"small body"[..]);
        assert!(
            blobs.read(&big).is_err(),
            "a body over the bound is not kept"
        );
        blobs.remove(&small);
        assert!(blobs.read(&small).is_err(), "a removed body is not served");

        let uncached = BlobDir::open(&dir.path().join("off"), 0).unwrap();
        let id = uncached.write(b"small body").unwrap();
        fs::remove_file(uncached.path(&id)).unwrap();
        assert!(uncached.read(&id).is_err());
    }

    #[test]
    fn same_content_is_one_file_and_the_fan_out_exists_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path(), 1 << 20).unwrap();
        assert!(dir.path().join("00").is_dir() && dir.path().join("ff").is_dir());
        let a = blobs.write(b"same").unwrap();
        let b = blobs.write(b"same").unwrap();
        assert_eq!(a, b);
        let files: usize = (0..=255u8)
            .map(|n| {
                fs::read_dir(dir.path().join(hex::encode([n])))
                    .unwrap()
                    .count()
            })
            .sum();
        assert_eq!(files, 1);
    }
}
