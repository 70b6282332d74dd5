//! The foundation as a newcomer meets it: the server starts on an empty directory, every
//! listener answers, TLS works, it stops cleanly, keeps its data, and refuses to share it.

mod common;

use common::{python, start};
use std::process::Command;

/// Connects with Python's ssl module, returns "<TLS version> <sha256 of the certificate>" and
/// the first line the server sends.
const TLS_PROBE: &str = r#"
import hashlib, socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection((host, port), timeout=60) as raw:
    with ctx.wrap_socket(raw, server_hostname="mail.test") as tls:
        cert = tls.getpeercert(binary_form=True)
        first = tls.recv(1024).decode().strip()
        print(tls.version(), hashlib.sha256(cert).hexdigest())
        print(first)
"#;

const PLAIN_PROBE: &str = r#"
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60) as s:
    print(s.recv(1024).decode().strip())
"#;

fn probe(script: &str, addr: std::net::SocketAddr) -> Vec<String> {
    python(script, &[addr.ip().to_string(), addr.port().to_string()])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_listener_answers_and_tls_handshakes_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let mut fingerprints = Vec::new();
    for kind in ["imap (TLS)", "submission (TLS)"] {
        let out = probe(TLS_PROBE, server.addr(kind));
        let (version, fingerprint) = out[0].split_once(' ').unwrap();
        assert!(
            version == "TLSv1.3" || version == "TLSv1.2",
            "{kind}: {version}"
        );
        assert!(out[1].contains("mail.test"), "{kind} greeting: {}", out[1]);
        fingerprints.push(fingerprint.to_string());
    }
    assert_eq!(
        fingerprints[0], fingerprints[1],
        "one certificate for every TLS port"
    );
    let imap = probe(PLAIN_PROBE, server.addr("imap (STARTTLS)"));
    assert!(imap[0].starts_with("* "), "IMAP greeting: {imap:?}");
    for kind in ["smtp (STARTTLS)", "submission (STARTTLS)"] {
        let smtp = probe(PLAIN_PROBE, server.addr(kind));
        assert!(
            smtp[0].starts_with("220 mail.test ESMTP"),
            "{kind} greeting: {smtp:?}"
        );
    }
}

#[tokio::test]
async fn the_admin_port_answers_a_health_check_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let base = format!("http://{}", server.addr("admin (HTTP)"));
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let missing = reqwest::get(format!("{base}/no/such/thing")).await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

#[test]
fn first_start_prints_the_owner_once_and_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), "[bootstrap]\nowner = \"boss@acme.example\"\n");
    let password = first
        .initial_password()
        .expect("the banner shows a password");
    assert!(password.len() >= 16);
    assert!(first.banner.iter().any(|l| l.contains("boss@acme.example")));
    let cert_before = probe(TLS_PROBE, first.addr("imap (TLS)"))[0].clone();
    let (status, rest) = first.terminate();
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status:?}"
    );
    assert!(rest.iter().any(|l| l == "mailgate: stopped"), "{rest:?}");

    let again = start(dir.path(), "[bootstrap]\nowner = \"boss@acme.example\"\n");
    assert!(
        again.initial_password().is_none(),
        "the banner is printed once"
    );
    let cert_after = probe(TLS_PROBE, again.addr("imap (TLS)"))[0].clone();
    assert_eq!(
        cert_before, cert_after,
        "the generated certificate is reused"
    );
}

#[test]
fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let _first = start(dir.path(), "");
    let err = refused_start(&dir.path().join("mailgate.toml"), dir.path());
    assert!(
        err.contains("is in use by another mailgate process"),
        "{err}"
    );
}

#[test]
fn a_bad_configuration_stops_start_up_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "hostname = \"x\"\n[limits]\nmax_conections = 5\n").unwrap();
    let err = refused_start(&config, dir.path());
    let expected = format!("{}:3: `limits.max_conections`", config.display());
    assert!(err.contains(&expected), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created on a bad config"
    );
}

#[test]
fn a_port_in_use_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = dir.path().join("c.toml");
    let text = common::EPHEMERAL.replace(
        "[admin]\nlisten = [\"127.0.0.1:0\"]",
        &format!("[admin]\nlisten = [\"127.0.0.1:{port}\"]"),
    );
    std::fs::write(&config, text).unwrap();
    let err = refused_start(&config, dir.path());
    assert!(
        err.contains(&format!("cannot listen for admin on 127.0.0.1:{port}")),
        "{err}"
    );
}

/// Runs `mailgate serve` expecting it to refuse to start (exit 2); returns its standard error.
fn refused_start(config: &std::path::Path, dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .args(["serve", "--config"])
        .arg(config)
        .arg("--data")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}
