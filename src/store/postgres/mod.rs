//! The PostgreSQL backend (ARCHITECTURE.md §6), for several nodes serving one set of
//! organizations: the model in real tables (`schema.sql`), each operation one transaction.
//!
//! The client is `tokio-postgres`, pooled by `deadpool-postgres`: asynchronous, so that one
//! connection per node can LISTEN for the other nodes' notifications, and well kept. The
//! store's interface stays synchronous, as sled's is: the backend runs its connections on a
//! small runtime of its own, and a caller waits for its query as it waits for sled's disk
//! (`PgStore::block`). A caller on one of the server's own runtime threads therefore never
//! nests a runtime in another.
//!
//! Built so far: the connection layer, the schema and its versioning, the server's own state
//! ([`ServerStore`]), the directory (organizations, domains, addresses, users, memberships),
//! teams, grants, partnerships and invitations, the audit log, API tokens, domain claims, DKIM
//! keys, message bytes (`blobs`) and the outbound queue (leases to come); the mail families
//! follow. Until they do, `PgStore` is not yet a `Backend`. Access changes already cross
//! nodes (`notices`); folder events come with the mail families.

use super::error::{StoreError, StoreResult};
use super::hub::{Hub, ServerChange};
use super::interface::*;
use rows::Prepared;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

mod audit;
mod blobs;
mod copy;
mod directory;
mod dkim;
mod folders;
mod grants;
mod lifecycle;
mod messages;
mod notices;
mod queue;
mod rows;
mod tokens;
mod transfer;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

/// The schema as first made (version 1), then each step to the next version, in order: a
/// database at an older version is brought up to date at start, one at a newer refused.
const SCHEMA: &str = include_str!("schema.sql");
const MIGRATIONS: [&str; 3] = [
    include_str!("migrations/2.sql"),
    include_str!("migrations/3.sql"),
    include_str!("migrations/4.sql"),
];
/// The schema this build reads and writes.
const SCHEMA_VERSION: i32 = 1 + MIGRATIONS.len() as i32;
/// Taken while the schema is made, so that nodes starting together make it once.
const SCHEMA_LOCK: i64 = 0x6d61_696c_6761_7465; // "mailgate"

/// Connections per node: enough for the server's concurrent store calls, few enough that
/// eight nodes (plus a LISTEN connection each) stay well under PostgreSQL's default
/// `max_connections` of 100 (97 for ordinary roles).
const POOL_SIZE: usize = 8;

/// How long a store call waits for a connection, or for one to be made; a database that does
/// not answer makes calls fail (the API answers 503) instead of freezing the node.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// The longest any statement may run, set on every connection.
const STATEMENT_TIMEOUT: &str = "-c statement_timeout=30000";
/// TCP keepalives find a database host that vanished without closing the connection.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// The store on PostgreSQL; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Drives the connections: their sockets, the pool's background work, the listener.
    runtime: OwnRuntime,
    pool: deadpool_postgres::Pool,
    /// The node's local directory: the spool and exports stay on local disk.
    dir: PathBuf,
    /// The directory's exclusive lock: one node per data directory, as with sled.
    _lock: std::fs::File,
    /// This node's sessions' hub, fed also by the other nodes' notices (`notices`).
    hub: Arc<Hub>,
    /// This node's name in its notices, so that it does not hear itself.
    node: u64,
    /// This node's lasting name, kept in its data directory (`node-id`): the same after a
    /// restart, so that a node finds the imports its last run left unfinished, and only those.
    home: i64,
    /// Message bytes and what delivery parsed of them, kept in memory: both are named by
    /// their content (SHA-256), so a kept copy is never stale, and FETCH skips the database.
    bodies: moka::sync::Cache<super::BlobId, bytes::Bytes>,
    summaries: moka::sync::Cache<super::BlobId, crate::mail::MessageSummary>,
}

/// Bytes of message bodies kept in memory per node; none larger than a sixteenth of it.
const BODY_CACHE_BYTES: u64 = 32 << 20;
/// Summaries kept in memory per node (a few KiB each).
const SUMMARY_CACHE_ENTRIES: u64 = 20_000;

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/database`), making or
    /// checking its schema; `dir` is this node's local data directory.
    pub fn connect(url: &str, dir: &Path) -> StoreResult<PgStore> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let lock = super::lock_data_dir(dir)?;
        let home = node_home(dir)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Invalid {
            what: "PostgreSQL URL",
            why: format!("{e}"),
        })?;
        config
            .connect_timeout(CONNECT_WITHIN)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE)
            .options(STATEMENT_TIMEOUT);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mailgate-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::io(dir, e))?;
        let handle = runtime.handle().clone();
        let runtime = OwnRuntime(Some(runtime));
        let node: u64 = rand::random();
        let hub = Arc::new(Hub::default());
        handle.spawn(notices::listen(config.clone(), node, hub.clone()));
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = {
            // The pool spawns each connection's driver on the runtime it is built in.
            let _entered = handle.enter();
            deadpool_postgres::Pool::builder(manager)
                .max_size(POOL_SIZE)
                .wait_timeout(Some(CONNECT_WITHIN))
                .create_timeout(Some(CONNECT_WITHIN))
                .recycle_timeout(Some(CONNECT_WITHIN))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Invalid {
                    what: "PostgreSQL pool",
                    why: e.to_string(),
                })?
        };
        let store = PgStore {
            inner: Arc::new(Inner {
                runtime,
                pool,
                dir: dir.to_path_buf(),
                _lock: lock,
                hub,
                node,
                home,
                bodies: moka::sync::Cache::builder()
                    .max_capacity(BODY_CACHE_BYTES)
                    .weigher(|_, body: &bytes::Bytes| u32::try_from(body.len()).unwrap_or(u32::MAX))
                    .build(),
                summaries: moka::sync::Cache::new(SUMMARY_CACHE_ENTRIES),
            }),
        };
        store.block(store.make_schema())?;
        handle.spawn(notices::poll(
            store.inner.pool.clone(),
            store.inner.hub.clone(),
        ));
        Ok(store)
    }

    /// Runs `work` to its end on the calling thread, with the backend's runtime entered so
    /// that the connections it opens are driven there. The caller's thread waits for the
    /// database as it would for sled's disk: bounded by the timeouts above. Never called
    /// from within `work` (one connection each, and the executor does not nest), nor on the
    /// backend's own runtime threads, which drive the connections.
    ///
    /// `unconstrained`: the pool's waits are tokio resources, which draw on the calling task's
    /// cooperative budget. Once a task of the server's runtime has spent it (about 128 store
    /// calls in one poll: a FETCH of many messages), such a resource answers Pending and defers
    /// its wake-up to the end of that task's poll, which never comes while this thread waits
    /// here: the node froze. Outside the budget, the wait ends when the database answers.
    fn block<T>(&self, work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let _entered = self.inner.runtime.get().map(|r| r.enter());
        futures_executor::block_on(tokio::task::coop::unconstrained(work))
    }

    /// Runs `work` in one transaction and commits it. A deadlock or a serialization failure,
    /// which PostgreSQL ends by rolling one of the transactions involved back, runs `work`
    /// again from the start, up to three times in all: nothing of the failed run was kept,
    /// and `work` (an `AsyncFn`) changes nothing outside the transaction.
    fn transaction<T>(
        &self,
        work: impl AsyncFn(&deadpool_postgres::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.block(async {
            let mut attempt = 1;
            loop {
                match self.in_transaction(&work).await {
                    Err(e) if attempt < 3 && e.is_conflict() => attempt += 1,
                    other => return other,
                }
            }
        })
    }

    /// [`PgStore::transaction`] for work that consumes what it is given (a caller's change
    /// to a record), so cannot run twice: a conflict is the caller's error to report.
    fn transaction_once<T>(
        &self,
        work: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.block(self.in_transaction(work))
    }

    async fn in_transaction<T>(
        &self,
        work: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let value = work(&tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        Ok(self.inner.pool.get().await?)
    }

    /// One statement on a pooled connection, outside any transaction: its rows.
    fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        self.block(async { Ok(self.client().await?.query_cached(sql, params).await?) })
    }

    /// [`PgStore::query`] of a statement that returns at most one row.
    fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Option<Row>> {
        self.block(async { Ok(self.client().await?.query_opt_cached(sql, params).await?) })
    }

    /// [`PgStore::query`] of a statement that returns exactly one row.
    fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Row> {
        self.block(async { Ok(self.client().await?.query_one_cached(sql, params).await?) })
    }

    /// [`PgStore::query`] of a statement that returns no rows: how many it changed.
    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        self.block(async { Ok(self.client().await?.execute_cached(sql, params).await?) })
    }

    /// Has `change` heard by the other nodes once `client`'s transaction commits; the caller
    /// publishes it in this node's hub after the commit.
    async fn tell_nodes(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        change: super::hub::AccessChange,
    ) -> StoreResult<()> {
        notices::send(client, self.inner.node, change).await
    }

    /// Drops from this node's memory the bytes of messages whose records went: bytes nothing
    /// refers to any more are gone from the database, and must not outlive it here. (Other
    /// nodes keep theirs until evicted; no record leads to them.)
    fn forget_bodies(&self, blobs: impl IntoIterator<Item = super::BlobId>) {
        for blob in blobs {
            self.inner.bodies.invalidate(&blob);
            self.inner.summaries.invalidate(&blob);
        }
    }

    /// Has a folder's `events` heard by the other nodes once `client`'s transaction commits;
    /// the caller publishes them in this node's hub after the commit.
    async fn tell_folder(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        place: (crate::model::MailboxId, crate::model::FolderId),
        events: Vec<super::hub::FolderEvent>,
    ) -> StoreResult<()> {
        notices::send_folder(client, self.inner.node, place, events).await
    }

    /// Makes the schema in an empty database, or checks the version of the one there.
    async fn make_schema(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute_cached("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        // Only the first node creates anything: the others may run as a role that cannot.
        let made: bool = tx
            .query_one_cached("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .await?
            .try_get(0)?;
        let found: Option<i32> = match made {
            true => tx
                .query_opt_cached("SELECT version FROM schema_version", &[])
                .await?
                .map(|row| row.try_get(0))
                .transpose()?,
            false => None,
        };
        let from = match found {
            Some(version) if (1..=SCHEMA_VERSION).contains(&version) => version,
            Some(other) => {
                return Err(StoreError::Schema {
                    found: u32::try_from(other).unwrap_or(0),
                    expected: SCHEMA_VERSION as u32,
                });
            }
            None => {
                tx.batch_execute("CREATE TABLE schema_version (version integer NOT NULL)")
                    .await?;
                tx.batch_execute(SCHEMA).await?;
                tx.execute_cached("INSERT INTO schema_version (version) VALUES (1)", &[])
                    .await?;
                1
            }
        };
        if from < SCHEMA_VERSION {
            for step in &MIGRATIONS[(from - 1) as usize..] {
                tx.batch_execute(step).await?;
            }
            tx.execute_cached("UPDATE schema_version SET version = $1", &[&SCHEMA_VERSION])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The node's lasting name from `dir/node-id`, made there on the first start.
fn node_home(dir: &Path) -> StoreResult<i64> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("{} holds no node name", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let home: i64 = rand::random();
            std::fs::write(&path, format!("{home}\n")).map_err(|e| StoreError::io(&path, e))?;
            Ok(home)
        }
        Err(e) => Err(StoreError::io(&path, e)),
    }
}

/// The backend's runtime, shut down without waiting when dropped: it may be dropped on
/// another runtime's thread, where waiting is not allowed. Its connections then close without
/// a goodbye; PostgreSQL ends their sessions.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn get(&self) -> Option<&tokio::runtime::Runtime> {
        self.0.as_ref()
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Every family of the store's interface.
impl Backend for PgStore {}

impl ServerStore for PgStore {
    fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    fn is_empty(&self) -> StoreResult<bool> {
        let row = self.query_one("SELECT NOT EXISTS (SELECT 1 FROM organizations)", &[])?;
        Ok(row.try_get(0)?)
    }

    /// Every change is durable at its commit (`synchronous_commit` as the operator sets it):
    /// nothing is left to flush.
    fn flush(&self) -> Pin<Box<dyn Future<Output = StoreResult<()>> + Send + '_>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn flush_blocking(&self) -> StoreResult<()> {
        Ok(())
    }

    fn server_secret_while(
        &self,
        name: &str,
        good: SecretCheck<'_>,
        make: SecretMaker<'_>,
    ) -> StoreResult<Vec<u8>> {
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Two nodes starting together make one secret: the second waits for the first.
            tx.execute_cached("SELECT pg_advisory_xact_lock(hashtext($1))", &[&name])
                .await?;
            let kept: Option<Vec<u8>> = tx
                .query_opt_cached("SELECT value FROM secrets WHERE name = $1", &[&name])
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
            if let Some(value) = kept.filter(|v| good(v)) {
                return Ok(value);
            }
            let value = make_secret(make)?;
            upsert_secret(&tx, name, &value).await?;
            tx.commit().await?;
            Ok(value)
        })
    }

    fn secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let row = self.query_opt("SELECT value FROM secrets WHERE name = $1", &[&name])?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    fn set_secret(&self, name: &str, value: &[u8]) -> StoreResult<()> {
        self.block(async {
            let client = self.client().await?;
            upsert_secret(&client, name, value).await
        })
    }

    fn remove_secret(&self, name: &str) -> StoreResult<()> {
        self.execute("DELETE FROM secrets WHERE name = $1", &[&name])?;
        Ok(())
    }

    fn hold_job(&self, name: &str, until: crate::model::Millis) -> StoreResult<bool> {
        // The node's random name, as a column's bits.
        let node = self.inner.node as i64;
        // Taken when free or run out; kept by its holder, who asks again in time.
        let held = self.query_opt(
            "INSERT INTO job_leases (name, node, until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET node = EXCLUDED.node, until = EXCLUDED.until \
             WHERE job_leases.node = EXCLUDED.node OR job_leases.until < $4 RETURNING node",
            &[&name, &node, &until, &crate::model::now_millis()],
        )?;
        Ok(held.is_some())
    }

    fn announce(&self, change: ServerChange) -> StoreResult<()> {
        self.block(async {
            let client = self.inner.pool.get().await?;
            notices::send_server(&client, self.inner.node, change).await
        })?;
        self.hub().publish_server(change);
        Ok(())
    }
}

async fn upsert_secret(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
    value: &[u8],
) -> StoreResult<()> {
    client
        .execute_cached(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&name, &value],
        )
        .await?;
    Ok(())
}
