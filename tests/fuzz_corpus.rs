//! Every fuzz target's corpus runs as an ordinary test, through the same entry points.

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of {target} is empty");
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn message_summary_corpus() {
    for (name, data) in corpus("message_summary") {
        let result = std::panic::catch_unwind(|| mailgate::mail::check_summary_invariants(&data));
        assert!(result.is_ok(), "{name}");
    }
}

#[test]
fn config_parse_corpus() {
    for (name, data) in corpus("config_parse") {
        if let Ok(text) = std::str::from_utf8(&data) {
            let result = std::panic::catch_unwind(|| {
                let _ = mailgate::config::Config::parse(text, Path::new("corpus.toml"));
            });
            assert!(result.is_ok(), "{name}");
        }
    }
}

/// A runtime on paused time, as in the fuzz targets: the pauses after failed logins pass at
/// once.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Runs `feed` for one corpus input; the oracle is the fuzzer's: every input is answered (or
/// waits for more) without a panic, and returns (a hang would stop the test).
fn survives(runtime: &tokio::runtime::Runtime, name: &str, feed: impl std::future::Future) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(feed)));
    assert!(result.is_ok(), "{name}");
}

#[test]
fn imap_session_corpus() {
    let harness = mailgate::harness::Harness::new();
    let runtime = paused_runtime();
    for (name, data) in corpus("imap_session") {
        let mut session = harness.session();
        survives(
            &runtime,
            &name,
            mailgate::harness::feed_from_state(&mut session, &data),
        );
    }
}

#[test]
fn smtp_session_corpus() {
    let harness = mailgate::harness::Harness::new();
    let runtime = paused_runtime();
    for (name, data) in corpus("smtp_session") {
        let mut session = harness.smtp_session_for(&data);
        survives(
            &runtime,
            &name,
            mailgate::harness::feed_smtp_transaction(&mut session, &data),
        );
    }
}

#[test]
fn smtp_replies_corpus() {
    let runtime = paused_runtime();
    for (name, data) in corpus("smtp_replies") {
        survives(&runtime, &name, async {
            let results = mailgate::smtp::client::replay(data).await;
            assert_eq!(results.len(), 2, "one result per recipient");
        });
    }
}

#[test]
fn admin_json_corpus() {
    let harness = mailgate::harness::Harness::new();
    let runtime = paused_runtime();
    let mut statuses = std::collections::BTreeMap::new();
    for (name, data) in corpus("admin_json") {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (status, body) = runtime.block_on(harness.admin_request(&data));
            mailgate::harness::check_admin_answer(status, &body);
            status
        }));
        let status = result.unwrap_or_else(|_| panic!("{name}"));
        *statuses.entry(status / 100).or_insert(0) += 1;
    }
    // The corpus reaches the handlers (accepted and refused bodies), not only the token check.
    assert!(
        statuses.contains_key(&2) && statuses.contains_key(&4),
        "{statuses:?}"
    );
}
