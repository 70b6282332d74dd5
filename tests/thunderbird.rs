//! Thunderbird itself (Debian's ESR, headless, driven through Marionette) as staff use it: a
//! mailbox's own login, a user reaching a granted mailbox under `Shared/`, and a delegated
//! login (`contact@…*lucie@…`), each finding its folders, reading, flagging, moving and
//! sending with the copy in the server's Sent (tests/thunderbird/driver.py). `.ci/run`
//! installs Thunderbird and the Marionette client; without them the test fails, saying so.

mod common;

use common::*;
use mailgate::model::SendMode;

#[test]
fn thunderbird_reads_flags_moves_and_sends_for_every_kind_of_login() {
    let missing = std::process::Command::new("thunderbird")
        .arg("--version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true);
    assert!(
        !missing,
        "thunderbird is not installed: `apt-get install thunderbird` (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    seed_with_send(dir.path(), "lrswite", Some(SendMode::As));
    let server = start(dir.path(), "[auth]\nallow_plaintext_on_loopback = true\n");
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/thunderbird/driver.py");
    let out = std::process::Command::new("python3")
        .arg(driver)
        .arg(server.addr("imap (STARTTLS)").port().to_string())
        .arg(server.addr("submission (STARTTLS)").port().to_string())
        .output()
        .expect("python3 must be installed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("done"),
        "the Thunderbird driver failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
