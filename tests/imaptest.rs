//! Dovecot's imaptest, the suite IMAP servers are judged by: every scripted group against
//! the server. `.ci/run` builds it (`../shared/tools/imaptest/build.sh`) and sets `IMAPTEST`;
//! without it the test fails and says how to get it.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

/// Groups skipped because a capability they need is missing: the ones Dovecot 2.3.19 skips
/// too. A group that starts being skipped, or fails, is a regression; one that starts
/// passing should leave this list.
const NOT_YET: &[&str] = &["sort-partial", "urlauth", "urlauth-binary", "urlauth2"];

fn imaptest() -> PathBuf {
    let built =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/imaptest/imaptest/src/imaptest");
    let path = std::env::var_os("IMAPTEST").map_or(built, PathBuf::from);
    assert!(
        path.is_file(),
        "imaptest not found at {}: run `bash .ci/run`, or build it with \
         `bash ../shared/tools/imaptest/build.sh target/imaptest` (needs Debian's dovecot-dev \
         and dovecot-core)",
        path.display()
    );
    path
}

#[test]
fn every_scripted_group_passes_or_waits_for_a_named_capability() {
    let binary = imaptest();
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let server = start(dir.path(), "[auth]\nallow_plaintext_on_loopback = true\n");
    let run = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/imaptest/run.sh");
    let out = Command::new("bash")
        .arg(&run)
        .arg("127.0.0.1")
        .arg(server.addr("imap (STARTTLS)").port().to_string())
        .arg(CONTACT)
        .arg(CONTACT_PASSWORD)
        .env("IMAPTEST", &binary)
        .env("MODE", "compliance")
        .env("OUT", dir.path().join("results"))
        .output()
        .expect("run.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let logs = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("results/compliance/{name}.log")))
            .unwrap_or_default()
    };
    let mut problems = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["FAIL" | "ERROR", name, ..] => {
                problems.push(format!("{line}\n{}", logs(name)));
            }
            ["SKIP", name, ..] if !NOT_YET.contains(name) => {
                problems.push(format!("newly skipped: {name}"));
            }
            _ => {}
        }
    }
    assert!(
        text.contains("compliance:") && problems.is_empty(),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        problems.join("\n")
    );
}
