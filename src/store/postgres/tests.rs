//! The PostgreSQL backend against a real server (`testing::TempCluster`).

use super::testing::TempCluster;
use super::*;
use crate::model::*;
use crate::store::suite;
use crate::store::{AccessChange, ApiToken, FolderEvent, Hold, NewDkimKey, TokenKind};
use std::time::{Duration, Instant};

#[test]
fn the_schema_is_made_once_and_a_database_of_another_version_is_refused() {
    let cluster = TempCluster::start();
    let url = cluster.new_database("schema");
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(&url, dir.path()).unwrap();
    assert!(store.is_empty().unwrap());
    // A second node on the same database finds the schema there.
    let again = PgStore::connect(&url, tempfile::tempdir().unwrap().path()).unwrap();
    assert!(again.is_empty().unwrap());
    store
        .block(async {
            let client = store.client().await?;
            client
                .execute("UPDATE schema_version SET version = 99", &[])
                .await?;
            Ok(())
        })
        .unwrap();
    let err = PgStore::connect(&url, tempfile::tempdir().unwrap().path())
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Schema { found: 99, .. }), "{err}");
}

/// A database made by an older build (version 1: no job leases) is brought up to date by the
/// first node of this one, and keeps its data.
#[test]
fn a_database_of_an_older_version_is_migrated() {
    let cluster = TempCluster::start();
    let url = cluster.new_database("migrate");
    let store = PgStore::connect(&url, tempfile::tempdir().unwrap().path()).unwrap();
    let w = suite::world(&store);
    sql(
        &store,
        "DROP TABLE job_leases; ALTER TABLE imports DROP COLUMN runner; \
         ALTER TABLE queue ALTER COLUMN lease_token TYPE uuid USING NULL; \
         UPDATE schema_version SET version = 1",
    );
    let upgraded = PgStore::connect(&url, tempfile::tempdir().unwrap().path()).unwrap();
    assert!(upgraded.hold_job("x", now_millis() + 1000).unwrap());
    assert_eq!(
        upgraded.organization(w.acme.id).unwrap().unwrap().name,
        "Acme"
    );
    let version = upgraded.query_opt("SELECT version FROM schema_version", &[]);
    let version: i32 = version.unwrap().unwrap().get(0);
    assert_eq!(version, SCHEMA_VERSION);
}

/// Store calls made one after another within one poll of a task of the server's runtime (a
/// FETCH of thousands of messages does so) all end: the node froze after about 128 of them
/// while the calls drew on that task's cooperative budget (`PgStore::block`).
#[test]
fn many_store_calls_within_one_poll_of_a_server_task_all_end() {
    let (_cluster, store, _dir) = fresh("budget");
    let w = suite::world(&store);
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (done, ended) = std::sync::mpsc::channel();
    let calls = store.clone();
    server.spawn(async move {
        for _ in 0..1000 {
            calls.organization(w.acme.id).unwrap();
        }
        let _ = done.send(());
    });
    let ended = ended.recv_timeout(Duration::from_secs(120));
    // A task stuck in its poll would hold up an orderly shutdown.
    server.shutdown_background();
    assert!(ended.is_ok(), "the store calls stopped answering");
}

/// Two transactions that lock the same rows in opposite orders deadlock; PostgreSQL rolls one
/// back, and `PgStore::transaction` runs it again, so both succeed.
#[test]
fn a_transaction_rolled_back_to_end_a_deadlock_runs_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (_cluster, store, _dir) = fresh("deadlock");
    sql(
        &store,
        "CREATE TABLE pair (id int PRIMARY KEY); INSERT INTO pair VALUES (1), (2)",
    );
    let both_hold_one = std::sync::Barrier::new(2);
    let runs = [AtomicUsize::new(0), AtomicUsize::new(0)];
    std::thread::scope(|s| {
        for (side, (first, second)) in [(1, 2), (2, 1)].into_iter().enumerate() {
            let (store, runs, both_hold_one) = (&store, &runs, &both_hold_one);
            s.spawn(move || {
                store
                    .transaction(async |tx| {
                        let lock = "SELECT id FROM pair WHERE id = $1 FOR UPDATE";
                        tx.execute(lock, &[&first]).await?;
                        if runs[side].fetch_add(1, Ordering::SeqCst) == 0 {
                            both_hold_one.wait();
                        }
                        tx.execute(lock, &[&second]).await?;
                        Ok(())
                    })
                    .unwrap()
            });
        }
    });
    let total = runs[0].load(Ordering::SeqCst) + runs[1].load(Ordering::SeqCst);
    assert_eq!(total, 3, "the side rolled back ran once more");
}

/// A node that starts interrupts the imports its own last run left (found by the name it
/// keeps in its data directory), never one another node is running.
#[test]
fn a_starting_node_interrupts_only_the_imports_its_last_run_left() {
    use crate::store::{ImportSource, ImportState};
    let cluster = TempCluster::start();
    let url = cluster.new_database("imports");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = PgStore::connect(&url, a_dir.path()).unwrap();
    let w = suite::world(&a);
    let m = suite::new_mailbox(&a, w.acme.id, "contact@acme.example");
    let running = a.create_import(m.id, ImportSource::Mbox).unwrap();
    let b = PgStore::connect(&url, b_dir.path()).unwrap();
    assert_eq!(b.interrupt_running_imports().unwrap(), 0, "A's, not B's");
    let state = |store: &PgStore| store.import(running.id).unwrap().unwrap().state;
    assert_eq!(state(&b), ImportState::Running);
    // A stops (its data directory's lock goes with it) and starts again.
    drop(a);
    let a_again = PgStore::connect(&url, a_dir.path()).unwrap();
    assert_eq!(a_again.interrupt_running_imports().unwrap(), 1);
    assert_eq!(state(&b), ImportState::Interrupted);
}

/// A server-wide job is one node's while it keeps asking; once its holder stops (dies), the
/// other node takes it at its first question after the hold ran out.
#[test]
fn a_job_is_one_nodes_until_its_holder_stops_asking() {
    let cluster = TempCluster::start();
    let url = cluster.new_database("jobs");
    let (a, b) = (
        PgStore::connect(&url, tempfile::tempdir().unwrap().path()).unwrap(),
        PgStore::connect(&url, tempfile::tempdir().unwrap().path()).unwrap(),
    );
    let soon = now_millis() + 300;
    assert!(a.hold_job("acme-orders", soon).unwrap());
    assert!(!b.hold_job("acme-orders", now_millis() + 60_000).unwrap());
    assert!(
        b.hold_job("deletions", now_millis() + 60_000).unwrap(),
        "jobs apart"
    );
    assert!(a.hold_job("acme-orders", soon).unwrap(), "kept by asking");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.hold_job("acme-orders", now_millis() + 60_000).unwrap() {
        assert!(Instant::now() < deadline, "B never got the job");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!a.hold_job("acme-orders", now_millis() + 60_000).unwrap());
}

/// What one node makes, another finds; what one replaces, the other reads.
#[test]
fn server_secrets_are_made_once_across_nodes() {
    let cluster = TempCluster::start();
    let url = cluster.new_database("secrets");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        PgStore::connect(&url, dir.path()).unwrap(),
        PgStore::connect(&url, tempfile::tempdir().unwrap().path()).unwrap(),
    );
    let make = |v: &'static [u8]| -> SecretMaker<'static> { Box::new(move || Ok(v.to_vec())) };
    let good = |_: &[u8]| true;
    assert_eq!(
        a.server_secret_while("x", Box::new(good), make(b"one"))
            .unwrap(),
        b"one"
    );
    assert_eq!(
        b.server_secret_while("x", Box::new(good), make(b"two"))
            .unwrap(),
        b"one"
    );
    b.set_secret("x", b"three").unwrap();
    assert_eq!(a.secret("x").unwrap().as_deref(), Some(&b"three"[..]));
}

/// The store's interface is synchronous; the server calls it from its own runtime's threads,
/// where a backend that started a runtime of its own there would panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_answers_calls_made_on_the_servers_runtime() {
    let cluster = TempCluster::start();
    let url = cluster.new_database("nested");
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(&url, dir.path()).unwrap();
    store.set_secret("k", b"v").unwrap();
    assert_eq!(store.secret("k").unwrap().as_deref(), Some(&b"v"[..]));
    let on_worker = tokio::spawn({
        let store = store.clone();
        async move { store.secret("k") }
    });
    assert_eq!(
        on_worker.await.unwrap().unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

/// One node on a fresh database of its own cluster.
fn fresh(name: &str) -> (TempCluster, PgStore, tempfile::TempDir) {
    let cluster = TempCluster::start();
    let url = cluster.new_database(name);
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(&url, dir.path()).unwrap();
    (cluster, store, dir)
}

impl suite::Snapshot for PgStore {
    /// Every row of every table, as text, table by table.
    fn snapshot(&self) -> Vec<String> {
        self.block(async {
            let client = self.client().await?;
            let tables = client
                .query(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' \
                     ORDER BY tablename",
                    &[],
                )
                .await?;
            let mut out = Vec::new();
            for table in tables {
                let name: String = table.try_get(0)?;
                let rows = client
                    .query(
                        &format!("SELECT t::text FROM {name} t ORDER BY t::text COLLATE \"C\""),
                        &[],
                    )
                    .await?;
                for row in rows {
                    out.push(format!("{name} {}", row.try_get::<_, String>(0)?));
                }
            }
            Ok(out)
        })
        .unwrap()
    }
}

/// The directory suite (`store::suite::directory`), each test on a fresh database of one
/// cluster (a cluster per test would cost a second or two each).
#[test]
fn the_directory_suite_passes() {
    let cluster = TempCluster::start();
    let dir = tempfile::tempdir().unwrap();
    suite::run(suite::directory::all(), |n| {
        let url = cluster.new_database(&format!("directory{n}"));
        PgStore::connect(&url, dir.path()).unwrap()
    });
}

/// The mail suite (`store::suite::mail`), as the directory suite.
#[test]
fn the_mail_suite_passes() {
    let cluster = TempCluster::start();
    let dir = tempfile::tempdir().unwrap();
    suite::run(suite::mail::all(), |n| {
        let url = cluster.new_database(&format!("mail{n}"));
        PgStore::connect(&url, dir.path()).unwrap()
    });
}

fn sql(store: &PgStore, statement: &str) {
    store
        .block(async {
            store.client().await?.batch_execute(statement).await?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn audit_events_are_filtered_newest_first_and_pruned_by_age() {
    let (_cluster, store, _dir) = fresh("audit");
    suite::audit_events_are_filtered_newest_first_and_pruned_by_age(&store);
}

#[test]
fn queued_mail_is_grouped_by_domain_held_released_deferred_and_dequeued() {
    let (_cluster, store, _dir) = fresh("queue_suite");
    suite::queued_mail_is_grouped_by_domain_held_released_deferred_and_dequeued(&store);
}

#[test]
fn server_secrets_are_made_once_and_replaced_when_no_longer_good() {
    let (_cluster, store, _dir) = fresh("secrets_suite");
    suite::server_secrets_are_made_once_and_replaced_when_no_longer_good(&store);
}

#[test]
fn api_tokens_expire_belong_to_existing_users_and_a_password_change_frees_them() {
    let (_cluster, store, _dir) = fresh("tokens");
    sql(
        &store,
        "INSERT INTO users (id, login, login_key, display_name, password, must_change_password, \
         disabled, created) \
         VALUES (5, 'Lucie@acme.example', 'lucie@acme.example', 'Lucie', 'old-hash', true, false, 1)",
    );
    let token = |byte: u8, kind: TokenKind, expires: Option<Millis>| ApiToken {
        token_hash: [byte; 32],
        user: UserId(5),
        kind,
        created: i64::from(byte),
        expires,
        password_change_only: true,
    };
    let session = token(1, TokenKind::Session, None);
    let personal = token(
        2,
        TokenKind::Personal {
            name: "backup".into(),
        },
        Some(now_millis() + 60_000),
    );
    let expired = token(3, TokenKind::Session, Some(now_millis() - 1));
    for t in [&session, &personal, &expired] {
        store.create_api_token(t.clone()).unwrap();
    }
    let stranger = ApiToken {
        user: UserId(99),
        ..token(4, TokenKind::Session, None)
    };
    assert!(matches!(
        store.create_api_token(stranger),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.api_token(&[1; 32]).unwrap(), Some(session.clone()));
    assert_eq!(store.api_token(&[2; 32]).unwrap(), Some(personal.clone()));
    assert_eq!(store.api_token(&[3; 32]).unwrap(), None, "expired");
    assert_eq!(store.api_tokens_of(UserId(5)).unwrap().len(), 3);
    let changed = store
        .change_user_password(UserId(5), PasswordHash("new-hash".into()))
        .unwrap();
    assert_eq!(changed.password, PasswordHash("new-hash".into()));
    assert!(!changed.must_change_password);
    assert!(
        store
            .api_tokens_of(UserId(5))
            .unwrap()
            .iter()
            .all(|t| !t.password_change_only)
    );
    store.delete_api_token(&[1; 32]).unwrap();
    assert_eq!(store.api_token(&[1; 32]).unwrap(), None);
    assert!(matches!(
        store.delete_api_token(&[1; 32]),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.change_user_password(UserId(99), PasswordHash("x".into())),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn domain_claims_are_verified_once_and_dkim_keys_rotate_one_active_per_algorithm() {
    let (_cluster, store, _dir) = fresh("dkim");
    sql(
        &store,
        "INSERT INTO organizations (id, name, created) VALUES (1, 'Acme', 1); \
         INSERT INTO domains (name, org) VALUES ('acme.example', 1), ('open.example', 1); \
         INSERT INTO domain_claims (domain, token) VALUES ('acme.example', 't0ken');",
    );
    assert!(!store.is_domain_verified("ACME.example").unwrap());
    assert!(
        store.is_domain_verified("open.example").unwrap(),
        "never claimed"
    );
    let first = store.mark_domain_verified("acme.example").unwrap();
    let again = store.mark_domain_verified("acme.example").unwrap();
    assert_eq!(first, again, "the first verification's time stays");
    assert!(store.is_domain_verified("acme.example").unwrap());
    assert!(matches!(
        store.mark_domain_verified("open.example"),
        Err(StoreError::NotFound(_))
    ));

    let made = |algorithm| NewDkimKey {
        algorithm,
        public_key: "cHVibGlj".into(),
        private_der: vec![1, 2, 3],
    };
    let first = store
        .add_dkim_keys(
            "acme.example",
            vec![made(DkimAlgorithm::Ed25519), made(DkimAlgorithm::Rsa)],
        )
        .unwrap();
    assert!(
        first.iter().all(|k| k.state == DkimState::Active),
        "{first:?}"
    );
    let next = store
        .add_dkim_keys("acme.example", vec![made(DkimAlgorithm::Ed25519)])
        .unwrap();
    assert_eq!(next[0].state, DkimState::Next);
    assert_ne!(next[0].selector, first[0].selector, "numbered when taken");
    assert!(matches!(
        store.add_dkim_keys("nowhere.example", vec![made(DkimAlgorithm::Rsa)]),
        Err(StoreError::NotFound(_))
    ));
    let keys = store
        .activate_dkim_key("acme.example", &next[0].selector)
        .unwrap();
    let state_of = |selector: &str| keys.iter().find(|k| k.selector == selector).unwrap().state;
    assert_eq!(state_of(&next[0].selector), DkimState::Active);
    assert_eq!(state_of(&first[0].selector), DkimState::Retiring);
    assert_eq!(
        state_of(&first[1].selector),
        DkimState::Active,
        "RSA untouched"
    );
    assert_eq!(store.dkim_keys("acme.example").unwrap(), keys);
    assert_eq!(
        store.dkim_secrets("acme.example").unwrap()[0].private_der,
        [1, 2, 3]
    );
    assert!(matches!(
        store.retire_dkim_key("acme.example", &next[0].selector),
        Err(StoreError::ActiveDkimKey(_))
    ));
    store
        .retire_dkim_key("acme.example", &first[0].selector)
        .unwrap();
    assert!(matches!(
        store.retire_dkim_key("acme.example", &first[0].selector),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.dkim_keys("acme.example").unwrap().len(), 2);
}

/// A password change on one node ends the sessions the old password opened on another: the
/// notice crosses through PostgreSQL, and each node hears each change once.
#[test]
fn an_access_change_on_one_node_is_heard_by_the_others() {
    let cluster = TempCluster::start();
    let url = cluster.new_database("notices");
    let dir = tempfile::tempdir().unwrap();
    let a = PgStore::connect(&url, dir.path()).unwrap();
    let b = PgStore::connect(&url, tempfile::tempdir().unwrap().path()).unwrap();
    sql(
        &a,
        "INSERT INTO users (id, login, login_key, display_name, password, must_change_password, \
         disabled, created) VALUES (5, 'l@acme.example', 'l@acme.example', 'L', 'h', false, false, 1)",
    );
    let mut on_a = a.hub().subscribe_access();
    let mut on_b = b.hub().subscribe_access();
    let user = AccessChange::User(UserId(5));
    // B listens from its start; its connection may take a while to be up: A changes the
    // password until B hears of it, within a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut changes_on_a = 0;
    loop {
        a.change_user_password(UserId(5), PasswordHash("new".into()))
            .unwrap();
        changes_on_a += 1;
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(change) = on_b.try_recv() {
            assert_eq!(change, user);
            break;
        }
        assert!(Instant::now() < deadline, "B never heard A");
    }
    b.change_user_password(UserId(5), PasswordHash("newer".into()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut heard_on_a = 0;
    while heard_on_a < changes_on_a + 1 {
        match on_a.try_recv() {
            Ok(change) => {
                assert_eq!(change, user);
                heard_on_a += 1;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        assert!(Instant::now() < deadline, "A never heard B");
    }
    // A published each of its own changes itself, and never heard them back.
    std::thread::sleep(Duration::from_millis(500));
    assert!(on_a.try_recv().is_err(), "A heard itself");
    // The listening connections cut (a database restart, a network fault): once they listen
    // again, every session is told to re-ask, for what was said meanwhile is lost.
    sql(
        &a,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match on_b.try_recv() {
            Ok(AccessChange::Anything) => break,
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        assert!(Instant::now() < deadline, "B never listened again");
    }
}

/// Queued mail on PostgreSQL: one body in chunks, referenced once per entry, gone with the
/// last entry.
#[test]
fn a_queued_body_is_stored_once_in_chunks_until_the_last_entry_leaves() {
    let (_cluster, store, _dir) = fresh("queue");
    let recipients = ["a@one.example", "b@two.example"].map(String::from);
    let raw: Vec<u8> = (0..blobs::CHUNK + 10).map(|i| (i % 251) as u8).collect();
    let entries = store
        .enqueue(
            &raw,
            "me@acme.example",
            &recipients,
            &DsnRequest::default(),
            Hold::No,
        )
        .unwrap();
    let stored = || {
        store
            .block(async { blobs::stored(&store.client().await?, &entries[0].blob).await })
            .unwrap()
    };
    assert_eq!(
        stored(),
        Some((raw.clone(), 2, 2)),
        "one body in two chunks, two references"
    );
    store.dequeue(entries[0].id).unwrap();
    assert_eq!(stored().map(|s| s.1), Some(1));
    store.dequeue(entries[1].id).unwrap();
    assert_eq!(stored(), None, "the body went with the last entry");
}

/// The outbound queue shared by two nodes: an entry one node leases is not the other's until
/// the lease runs out (the node died); then the other takes it, and the first node's late
/// writes change nothing.
#[test]
fn a_queue_entry_is_one_nodes_until_its_lease_runs_out() {
    let cluster = TempCluster::start();
    let url = cluster.new_database("leases");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        PgStore::connect(&url, dir.path()).unwrap(),
        PgStore::connect(&url, tempfile::tempdir().unwrap().path()).unwrap(),
    );
    let dsn = DsnRequest::default();
    let entry = a
        .enqueue(
            b"x",
            "me@acme.example",
            &["you@far.example".into()],
            &dsn,
            Hold::No,
        )
        .unwrap()
        .remove(0);
    let soon = now_millis() + 300;
    let first = a.lease(entry.id, soon).unwrap().expect("due and free");
    assert!(
        b.lease(entry.id, now_millis() + 60_000).unwrap().is_none(),
        "A holds it"
    );
    assert!(a.renew_lease(&first, soon).unwrap());
    // A dies (it renews no more); once the lease has run out, B takes the entry.
    let deadline = Instant::now() + Duration::from_secs(30);
    let second = loop {
        if let Some(lease) = b.lease(entry.id, now_millis() + 60_000).unwrap() {
            break lease;
        }
        assert!(Instant::now() < deadline, "B never got the entry");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(first.token, second.token);
    assert!(!a.renew_lease(&first, now_millis() + 60_000).unwrap());
    assert!(
        !a.defer(&entry, &first).unwrap(),
        "A's late write changes nothing"
    );
    assert!(
        !a.record_progress(&entry, &first).unwrap(),
        "nor its record of progress"
    );
    assert!(!a.finish(&first).unwrap());
    assert_eq!(b.queue().unwrap().len(), 1);
    assert!(b.finish(&second).unwrap());
    assert!(b.queue().unwrap().is_empty());
}

/// A range of a message is read from the chunks that hold it and no others: with the later
/// chunks of a large message gone (here, behind the store's back), its beginning still reads,
/// the whole no longer does.
#[test]
fn a_range_of_a_message_reads_only_the_chunks_that_hold_it() {
    let (_cluster, store, _dir) = fresh("ranges");
    let (_w, m, inbox) = suite::mail::one_mailbox(&store, "contact@acme.example");
    let raw: Vec<u8> = (0..3 * blobs::CHUNK + 10)
        .map(|i| (i % 251) as u8)
        .collect();
    let record = store
        .append(m.id, inbox, &raw, crate::store::AppendMessage::default())
        .unwrap();
    store.inner.bodies.invalidate_all();
    let hex: String = record.blob.0.iter().map(|b| format!("{b:02x}")).collect();
    sql(
        &store,
        &format!("DELETE FROM blob_chunks WHERE blob = '\\x{hex}' AND n >= 2"),
    );
    let chunk = blobs::CHUNK as u64;
    let start = store
        .read_message_range(&record.blob, 100..2 * chunk)
        .unwrap();
    assert_eq!(start.as_ref(), &raw[100..2 * blobs::CHUNK]);
    assert!(matches!(
        store.read_message_range(&record.blob, chunk..2 * chunk + 1),
        Err(StoreError::Corrupt(_))
    ));
    assert!(store.read_message(&record.blob).is_err());
}

/// The safety net under the notices: a change a node never heard of (made here behind every
/// node's back) still reaches the sessions watching the folder, at the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_no_notice_told_of_reaches_the_watching_sessions_at_the_next_poll() {
    let (_cluster, store, _dir) = fresh("poll");
    let w = suite::world(&store);
    let m = suite::new_mailbox(&store, w.acme.id, "contact@acme.example");
    let inbox = suite::mail::inbox(&store, m.id);
    let mut events = store.hub().subscribe_folder(m.id, inbox.id);
    // Let a poll or two see the folder as it is.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(events.try_recv().is_err(), "nothing changed yet");
    sql(
        &store,
        &format!(
            "UPDATE folders SET highestmodseq = highestmodseq + 1 WHERE id = {}",
            inbox.id.0
        ),
    );
    let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("the poll sees the change")
        .unwrap();
    assert_eq!(event, FolderEvent::Resync);
}
