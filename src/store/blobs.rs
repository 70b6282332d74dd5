//! Message bodies on disk, named by their SHA-256: one message delivered to fifty mailboxes is
//! stored once. A blob is written to a temporary file, fsynced, renamed into place and its
//! directory fsynced, so a blob that is referenced is always whole.

use super::error::{StoreError, StoreResult};
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
}

impl BlobDir {
    pub fn open(root: &Path) -> StoreResult<BlobDir> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        // Temporary files left by a crash were never referenced: they can go.
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(BlobDir {
            root: root.to_path_buf(),
            tmp,
            counter: AtomicU64::new(0),
        })
    }

    fn path(&self, id: &BlobId) -> PathBuf {
        let hex = id.hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    /// Writes `bytes` durably unless a blob with the same content is already there.
    pub fn write(&self, bytes: &[u8]) -> StoreResult<BlobId> {
        let id = BlobId::of(bytes);
        let path = self.path(&id);
        if path.exists() {
            return Ok(id);
        }
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}-{n}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::io(&path, e)
        })?;
        Ok(id)
    }

    pub fn read(&self, id: &BlobId) -> StoreResult<Vec<u8>> {
        let path = self.path(id);
        fs::read(&path).map_err(|e| StoreError::io(&path, e))
    }

    /// Removes a blob no message references any more. A failure leaves an orphan file, which
    /// costs disk but never data.
    pub fn remove(&self, id: &BlobId) {
        let path = self.path(id);
        if let Err(e) = fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an unreferenced blob");
        }
    }
}
