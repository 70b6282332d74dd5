//! The PostgreSQL backend against a real server (`testing::TempCluster`).

use super::testing::TempCluster;
use super::*;

#[test]
fn the_schema_is_made_once_and_a_database_of_another_version_is_refused() {
    let cluster = TempCluster::start();
    let url = cluster.new_database("schema");
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(&url, dir.path()).unwrap();
    assert!(store.is_empty().unwrap());
    // A second node on the same database finds the schema there.
    let again = PgStore::connect(&url, dir.path()).unwrap();
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
    let err = PgStore::connect(&url, dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::Schema { found: 99, .. }), "{err}");
}

#[test]
fn server_secrets_are_made_once_across_nodes_and_replaced_when_no_longer_good() {
    let cluster = TempCluster::start();
    let url = cluster.new_database("secrets");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        PgStore::connect(&url, dir.path()).unwrap(),
        PgStore::connect(&url, dir.path()).unwrap(),
    );
    let make = |v: &'static [u8]| -> SecretMaker<'static> { Box::new(move || Ok(v.to_vec())) };
    let always: fn() -> SecretCheck<'static> = || Box::new(|_| true);
    assert_eq!(
        a.server_secret_while("x", always(), make(b"one")).unwrap(),
        b"one"
    );
    assert_eq!(
        b.server_secret_while("x", always(), make(b"two")).unwrap(),
        b"one"
    );
    let stale = Box::new(|v: &[u8]| v != b"one");
    assert_eq!(
        b.server_secret_while("x", stale, make(b"three")).unwrap(),
        b"three"
    );
    assert_eq!(a.secret("x").unwrap().as_deref(), Some(&b"three"[..]));
    assert_eq!(a.secret("y").unwrap(), None);
    a.set_secret("y", b"four").unwrap();
    assert_eq!(b.secret("y").unwrap().as_deref(), Some(&b"four"[..]));
    let refused = a.server_secret_while("z", always(), Box::new(|| Err("no entropy".into())));
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );
    assert_eq!(
        a.secret("z").unwrap(),
        None,
        "nothing kept of a failed making"
    );
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
