//! The durable store: the only code that touches sled or the blob files (ARCHITECTURE.md §6).
//!
//! Layout of the data directory:
//! - `mailgate.lock`: held while a server runs, so a second one refuses to start;
//! - `db/`: sled, with the trees `model` (the directory: organizations … invitations),
//!   `mail` (folders, messages, per-user state), `audit` and `meta` (schema version, counters,
//!   server secrets such as the generated TLS certificate);
//! - `blobs/ab/abcdef…`: message bodies named by their SHA-256, written atomically, stored once;
//! - `spool/`: messages still arriving, past a small size (see `spool`).
//!
//! Every change that touches several records runs in one sled transaction; changes that must read
//! before they write (uniqueness checks, "the last owner") also hold `write_lock`, because sled's
//! transactions cannot scan.

mod audit;
mod blobs;
mod claims;
mod codec;
pub mod copy;
mod directory;
mod dkim;
mod error;
mod expunges;
mod flags;
mod folders;
mod grants;
pub mod hub;
mod imports;
pub mod interface;
mod lifecycle;
pub mod postgres;
mod queue;
pub mod spool;
mod tokens;
mod transfer;

pub use audit::AuditQuery;
pub use blobs::BlobId;
pub use claims::DomainClaim;
pub use directory::{AddressEntry, Admission, NewMailbox, NewUser};
pub use dkim::{DkimSecret, NewDkimKey};
pub use error::{StoreError, StoreResult};
pub use expunges::ExpungedSince;
pub use flags::{FlagChange, FlagOutcome, SeenFlags};
pub use folders::{
    AppendMessage, Flags, Folder, MessageRecord, STANDARD_FOLDERS, SpecialUse, Subscriber,
};
pub use grants::GrantClock;
pub use hub::{AccessChange, FolderEvent, Hub, ServerChange};
pub use imports::{FolderProgress, Import, ImportFailure, ImportSource, ImportState, SourceTls};
pub use interface::*;
pub use queue::{Hold, Lease, QueueEntry, QueueId};
pub use spool::{Incoming, Spool, SpoolError, SpoolLimits};
pub use tokens::{ApiToken, TokenKind};
pub use transfer::{FolderView, Transfer, Transferred};

use crate::model::{Mailbox, MailboxId, User, UserId};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Bumped whenever the on-disk encoding changes; a store of another version refuses to open.
pub const SCHEMA_VERSION: u32 = 1;

const SCHEMA_KEY: &[u8] = b"schema_version";

/// Set once the folders' old subscription flags were rewritten by name.
const SUBSCRIPTIONS_BY_NAME: &[u8] = b"upgraded/subscriptions-by-name";

/// The store the server runs on: one interface ([`Backend`]), whichever backend keeps the
/// data; cheap to clone. Its methods are the backend's, through `Deref`.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Store {
    /// Opens (or creates) the embedded store in `dir`, taking the directory's exclusive
    /// lock, with the default settings.
    pub fn open(dir: &Path) -> StoreResult<Store> {
        Ok(Store(Arc::new(SledStore::open(dir)?)))
    }

    /// The store over `sled`, which the test harness keeps to reach sled's own files.
    pub(crate) fn of_sled(sled: SledStore) -> Store {
        Store(Arc::new(sled))
    }

    /// Opens (or creates) the store `settings` name: PostgreSQL's at `postgres_url`, or the
    /// embedded one in `dir`. `dir` is the node's data directory either way.
    pub fn open_with(dir: &Path, settings: &crate::config::StoreConfig) -> StoreResult<Store> {
        Ok(match &settings.postgres_url {
            Some(url) => Store(Arc::new(postgres::PgStore::connect(url, dir)?)),
            None => Store(Arc::new(SledStore::open_with(dir, settings)?)),
        })
    }

    /// [`ServerStore::server_secret_while`] with plain closures.
    pub fn server_secret_while(
        &self,
        name: &str,
        good: impl FnOnce(&[u8]) -> bool,
        make: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> StoreResult<Vec<u8>> {
        self.0
            .server_secret_while(name, Box::new(good), Box::new(make))
    }

    /// [`DirectoryStore::update_mailbox`] with a plain closure.
    pub fn update_mailbox(
        &self,
        id: MailboxId,
        change: impl FnOnce(&mut Mailbox),
    ) -> StoreResult<Mailbox> {
        self.0.update_mailbox(id, Box::new(change))
    }

    /// [`DirectoryStore::update_user`] with a plain closure.
    pub fn update_user(&self, id: UserId, change: impl FnOnce(&mut User)) -> StoreResult<User> {
        self.0.update_user(id, Box::new(change))
    }

    /// [`LifecycleStore::save_export`] with a plain closure.
    pub fn save_export(
        &self,
        folder: &str,
        name: &str,
        write: impl FnOnce(&mut dyn Write) -> StoreResult<()>,
    ) -> StoreResult<PathBuf> {
        self.0.save_export(folder, name, Box::new(write))
    }

    /// A server secret, made by `make` (and kept) the first time it is asked for.
    pub fn server_secret(
        &self,
        name: &str,
        make: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> StoreResult<Vec<u8>> {
        self.server_secret_while(name, |_| true, make)
    }
}

impl Backend for SledStore {}

/// sled's store, the embedded backend: the trees and blob files described above.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    db: sled::Db,
    model: sled::Tree,
    mail: sled::Tree,
    audit: sled::Tree,
    meta: sled::Tree,
    blobs: blobs::BlobDir,
    /// Serializes read-check-write changes (see the module comment).
    write_lock: Mutex<()>,
    hub: Hub,
    /// Held for the life of the store: the data directory's exclusive lock.
    _lock: File,
}

impl ServerStore for SledStore {
    fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.inner.model.scan_prefix([codec::ORG]).next().is_none())
    }

    fn flush_blocking(&self) -> StoreResult<()> {
        self.inner.db.flush()?;
        Ok(())
    }

    fn flush(&self) -> Pin<Box<dyn Future<Output = StoreResult<()>> + Send + '_>> {
        Box::pin(async move {
            self.inner.db.flush_async().await?;
            Ok(())
        })
    }

    fn server_secret_while(
        &self,
        name: &str,
        good: SecretCheck<'_>,
        make: SecretMaker<'_>,
    ) -> StoreResult<Vec<u8>> {
        let key = format!("secret/{name}");
        let _guard = self.lock();
        if let Some(v) = self.inner.meta.get(&key)?
            && good(&v)
        {
            return Ok(v.to_vec());
        }
        let value = make_secret(make)?;
        self.inner.meta.insert(key, value.as_slice())?;
        self.inner.meta.flush()?;
        Ok(value)
    }

    fn secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let key = format!("secret/{name}");
        Ok(self.inner.meta.get(key)?.map(|v| v.to_vec()))
    }

    fn set_secret(&self, name: &str, value: &[u8]) -> StoreResult<()> {
        let key = format!("secret/{name}");
        let _guard = self.lock();
        self.inner.meta.insert(key, value)?;
        self.inner.meta.flush()?;
        Ok(())
    }

    fn remove_secret(&self, name: &str) -> StoreResult<()> {
        let key = format!("secret/{name}");
        let _guard = self.lock();
        self.inner.meta.remove(key)?;
        self.inner.meta.flush()?;
        Ok(())
    }

    fn hold_job(&self, _name: &str, _until: crate::model::Millis) -> StoreResult<bool> {
        Ok(true)
    }

    fn announce(&self, change: ServerChange) -> StoreResult<()> {
        self.hub().publish_server(change);
        Ok(())
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, taking the directory's exclusive lock, with
    /// the default settings.
    pub fn open(dir: &Path) -> StoreResult<SledStore> {
        SledStore::open_with(dir, &crate::config::StoreConfig::default())
    }

    /// Opens (or creates) the store in `dir` with `settings`.
    pub fn open_with(dir: &Path, settings: &crate::config::StoreConfig) -> StoreResult<SledStore> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let lock = lock_data_dir(dir)?;
        let db = open_db(&dir.join("db"), settings)?;
        let store = SledStore {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                model: db.open_tree("model")?,
                mail: db.open_tree("mail")?,
                audit: db.open_tree("audit")?,
                meta: db.open_tree("meta")?,
                blobs: blobs::BlobDir::open(
                    &dir.join("blobs"),
                    settings.body_cache_mib.saturating_mul(1 << 20),
                )?,
                db,
                write_lock: Mutex::new(()),
                hub: Hub::default(),
                _lock: lock,
            }),
        };
        store.check_schema()?;
        store.drop_old_summaries()?;
        store.keep_folder_subscriptions()?;
        store.upgrade_expunge_records()?;
        // Files whose last reference went just before a crash, never swept.
        store.sweep_freed_blobs()?;
        Ok(store)
    }

    /// Folders record whether the mailbox's own login subscribed to them in a field that is
    /// no longer read (subscriptions are kept by name now, and new folders leave it false):
    /// where it is still true, the subscription is written by name, once.
    /// Runs once per data directory: every folder is read.
    fn keep_folder_subscriptions(&self) -> StoreResult<()> {
        let _guard = self.lock();
        if self.inner.meta.contains_key(SUBSCRIPTIONS_BY_NAME)? {
            return Ok(());
        }
        let mut changes = Changes::default();
        for item in self.inner.mail.scan_prefix([codec::FOLDER]) {
            let (k, v) = item?;
            let mut folder: Folder = codec::decode(&v, "folder")?;
            if !folder.subscribed {
                continue;
            }
            folder.subscribed = false;
            let name = folders::canonical_name(&folder.name);
            let who = folders::Subscriber::MailboxLogin.id();
            let sub = codec::key_str(codec::SUBSCRIPTION, &[who, folder.mailbox.0], &name);
            changes.put_mail_raw(sub, vec![1]);
            changes.put_mail(k.to_vec(), &folder)?;
        }
        self.commit(changes)?;
        self.inner.meta.insert(SUBSCRIPTIONS_BY_NAME, &[1])?;
        Ok(self.inner.db.flush().map(|_| ())?)
    }

    /// Removes the summaries of an older layout; `Store::summary` makes them again.
    fn drop_old_summaries(&self) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        let mut any = false;
        for item in self.inner.mail.scan_prefix([codec::OLD_SUMMARY]) {
            batch.remove(item?.0);
            any = true;
        }
        if any {
            self.inner.mail.apply_batch(batch)?;
            self.inner.db.flush()?;
        }
        Ok(())
    }

    fn check_schema(&self) -> StoreResult<()> {
        let _guard = self.lock();
        match self.inner.meta.get(SCHEMA_KEY)? {
            None => {
                self.inner
                    .meta
                    .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                self.inner.meta.flush()?;
                Ok(())
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt("schema version".into()))?;
                if found == SCHEMA_VERSION {
                    Ok(())
                } else {
                    Err(StoreError::Schema {
                        found,
                        expected: SCHEMA_VERSION,
                    })
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock cannot leave sled half-written (transactions), so the
        // poison carries no meaning here.
        self.inner
            .write_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn get_model<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &str,
    ) -> StoreResult<Option<T>> {
        self.inner
            .model
            .get(key)?
            .map(|v| codec::decode(&v, what))
            .transpose()
    }

    fn scan_model<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        what: &str,
    ) -> StoreResult<Vec<T>> {
        self.inner
            .model
            .scan_prefix(prefix)
            .map(|item| codec::decode(&item?.1, what))
            .collect()
    }

    /// Writes `changes` to both trees in one transaction: all of them or none.
    fn commit(&self, changes: Changes) -> StoreResult<()> {
        use sled::Transactional;
        (&self.inner.model, &self.inner.mail).transaction(|(model, mail)| {
            for (k, v) in &changes.model {
                match v {
                    Some(v) => model.insert(k.as_slice(), v.as_slice())?,
                    None => model.remove(k.as_slice())?,
                };
            }
            for (k, v) in &changes.mail {
                match v {
                    Some(v) => mail.insert(k.as_slice(), v.as_slice())?,
                    None => mail.remove(k.as_slice())?,
                };
            }
            Ok::<(), sled::transaction::ConflictableTransactionError<StoreError>>(())
        })?;
        Ok(())
    }

    fn next_id(&self) -> StoreResult<u64> {
        // sled's ids start at 0; ours start at 1 so that 0 never names anything.
        Ok(self.inner.db.generate_id()? + 1)
    }
}

/// A set of record writes (`Some`) and removals (`None`) committed together by `Store::commit`.
#[derive(Default)]
struct Changes {
    model: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    mail: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Changes {
    fn put_model(&mut self, key: Vec<u8>, value: &impl serde::Serialize) -> StoreResult<()> {
        self.model.push((key, Some(codec::encode(value)?)));
        Ok(())
    }

    fn del_model(&mut self, key: Vec<u8>) {
        self.model.push((key, None));
    }

    fn put_mail(&mut self, key: Vec<u8>, value: &impl serde::Serialize) -> StoreResult<()> {
        self.mail.push((key, Some(codec::encode(value)?)));
        Ok(())
    }

    fn put_mail_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.mail.push((key, Some(value)));
    }

    fn del_mail(&mut self, key: Vec<u8>) {
        self.mail.push((key, None));
    }

    /// The big-endian counter last written to `key` in this change, if any.
    fn latest_counter(&self, key: &[u8]) -> Option<u64> {
        self.mail
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_ref())
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes)
    }
}

/// Opens sled. With the data directory's lock held, a busy sled lock can only be this
/// process's previous handle whose background thread has not ended yet: wait for it (up to 10 s: under load sled's thread can be slow to let go).
fn open_db(path: &Path, settings: &crate::config::StoreConfig) -> StoreResult<sled::Db> {
    // sled's page cache is 1 GiB unless told otherwise: far more than a small server has.
    let config = sled::Config::new()
        .path(path)
        .mode(match settings.mode {
            crate::config::StoreMode::HighThroughput => sled::Mode::HighThroughput,
            crate::config::StoreMode::LowSpace => sled::Mode::LowSpace,
        })
        .cache_capacity(settings.cache_mib.saturating_mul(1024 * 1024));
    let mut attempts = 0;
    loop {
        match config.open() {
            // sled reports its busy lock as `Other` with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && attempts < 500 =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Takes the exclusive lock of the data directory, or says which process holds it.
pub(super) fn lock_data_dir(dir: &Path) -> StoreResult<File> {
    let path = dir.join("mailgate.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    // A lock held by this very process is a handle just dropped whose descriptor a child
    // forked meanwhile still holds until it execs (flock locks follow the descriptor):
    // wait for that, briefly. Another process's lock is refused at once.
    let mut attempts = 0;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                let ours = pid.trim() == std::process::id().to_string();
                if ours && attempts < 100 {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    pid: pid.trim().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
        }
    }
    file.set_len(0).map_err(|e| StoreError::io(&path, e))?;
    write!(file, "{}", std::process::id()).map_err(|e| StoreError::io(&path, e))?;
    Ok(file)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::model::{OrgId, PasswordHash};

    /// A store in a fresh temporary directory, removed when the guard drops.
    pub fn temp_store() -> (SledStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SledStore::open(dir.path()).expect("open store");
        (store, dir)
    }

    /// An organization named `name` with its owner `owner_login`.
    pub fn organization(store: &SledStore, name: &str, owner_login: &str) -> OrgId {
        let owner = store
            .create_user(NewUser {
                login: owner_login.into(),
                display_name: String::new(),
                password: PasswordHash("x".into()),
                must_change_password: false,
                own_mailbox: None,
            })
            .expect("create the owner");
        let org = store.create_organization(name, owner.id);
        org.expect("create the organization").id
    }
}

#[cfg(test)]
mod suite;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod open_tests {
    use super::testing::temp_store;
    use super::*;

    #[test]
    fn second_open_of_the_same_directory_is_refused() {
        let (store, dir) = temp_store();
        let err = SledStore::open(dir.path()).err().expect("must refuse");
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(store);
    }

    #[test]
    fn schema_version_is_checked_at_open() {
        let (store, dir) = temp_store();
        store
            .inner
            .meta
            .insert(SCHEMA_KEY, &99u32.to_be_bytes())
            .unwrap();
        store.flush_blocking().unwrap();
        drop(store);
        let err = SledStore::open(dir.path()).err().expect("must refuse");
        assert!(matches!(err, StoreError::Schema { found: 99, .. }), "{err}");
    }

    #[test]
    fn server_secret_is_made_once() {
        let (sled, _dir) = temp_store();
        let store = Store(Arc::new(sled));
        let a = store.server_secret("x", || Ok(b"one".to_vec())).unwrap();
        let b = store.server_secret("x", || Ok(b"two".to_vec())).unwrap();
        assert_eq!(a, b"one");
        assert_eq!(b, b"one");
        assert_eq!(store.secret("x").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(store.secret("y").unwrap(), None);
        store.set_secret("x", b"three").unwrap();
        assert_eq!(store.secret("x").unwrap().as_deref(), Some(&b"three"[..]));
    }
}
