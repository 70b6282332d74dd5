//! schemathesis (a client we did not write) against the OpenAPI document the server serves:
//! every documented operation, generated requests, a fixed seed. No answer may be a 500, every
//! answer must be what the document says (status, content type, body schema), requests the
//! document forbids must be refused, and what a deletion removed must be gone.
//!
//! Three runs against one server, each well under a minute:
//! 1. positive: schema-valid requests in the seeded organization (its id, its mailbox, team,
//!    grant, alias, domain and owner are given for the path parameters), with stateful
//!    sequences where the document links operations;
//! 2. negative: schema-violating requests, with no path parameter pinned (a pinned value would
//!    replace the invalid one schemathesis meant to send, and it would then report the valid
//!    request's success as a failure);
//! 3. the three operations the first two leave out, whose wrong passwords are answered after
//!    the login throttle's pause (growing to 30 s, past schemathesis' limits) and one of which
//!    revokes the token it is called with: the coverage phase only, with a token of their own.

mod common;

use common::api::Api;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The operations whose body is XML text.
const XML_OPERATIONS: [&str; 2] = [
    "post_autodiscover_autodiscover_xml",
    "post_Autodiscover_Autodiscover_xml",
];

/// What to install: `schemathesis run`'s options and check names changed between 3.x and 4.x,
/// and these runs were written against this version.
const INSTALL: &str = "pip install schemathesis==4.32.5 (.ci/run installs it)";
/// The same seed every time: a failure here is reproduced by running the test again.
const SEED: &str = "1";
/// Test cases per operation and phase, and stateful scenarios: enough to reach every
/// operation's logic, few enough for a 2-core CI machine.
const EXAMPLES: &str = "25";
/// Each run is killed, and the test fails, past this (they take 10 to 30 s).
const DEADLINE: Duration = Duration::from_secs(240);
/// The operations runs 1 and 2 leave out, and run 3 covers.
const AUTH_OPERATIONS: [&str; 3] = [
    "post_api_v1_session",
    "post_api_v1_me_password",
    "delete_api_v1_session",
];

/// Values that reach handlers' logic, not only their 404s and 422s: addresses of every kind
/// (a mailbox, an alias, an unknown local part of a hosted domain, a remote address, malformed
/// ones) and the formats and times the audit log takes.
const DICTIONARIES: &str = r#"
[dictionaries.addresses]
values = [
    "contact@acme.example",
    "hello@acme.example",
    "nobody@acme.example",
    "lucie@gmail.example",
    "a b@@acme.example",
    "@acme.example",
    "contact@ACME.example.",
]

[dictionaries.formats]
values = ["json", "csv"]

[dictionaries.times]
values = ["0", "2026-11-25T10:00:00Z", "9223372036854775807"]
"#;

const BINDINGS: &str = r#"
"body.email" = { dictionary = "addresses", probability = 0.5 }
"body.address" = { dictionary = "addresses", probability = 0.5 }
"query.emailaddress" = { dictionary = "addresses", probability = 0.5 }
"query.Email" = { dictionary = "addresses", probability = 0.5 }
"query.format" = { dictionary = "formats", probability = 0.5 }
"query.since" = { dictionary = "times", probability = 0.5 }
"query.until" = { dictionary = "times", probability = 0.5 }
"#;

/// Run 1's path parameters: the seeded organization and what it holds.
const PINNED: &str = r#"
"path.org" = @ORG@
"path.user" = @OWNER@

[[operations]]
include-path-regex = '/mailboxes/\{id\}'
parameters = { "path.id" = @MAILBOX@ }

[[operations]]
include-path-regex = '/teams/\{id\}'
parameters = { "path.id" = @TEAM@ }

[[operations]]
include-path-regex = '/grants/\{id\}'
parameters = { "path.id" = @GRANT@ }

[[operations]]
include-path-regex = '/aliases/\{address\}'
parameters = { "path.address" = "hello@acme.example" }

[[operations]]
include-path-regex = '/domains/\{name\}'
parameters = { "path.name" = "acme.example" }
"#;

/// What the runs find in the organization besides the domain and the mailbox.
struct Seeded {
    org: u64,
    owner: u64,
    mailbox: u64,
    team: u64,
    grant: u64,
}

#[tokio::test]
async fn schemathesis_finds_nothing_the_document_does_not_say() {
    let version = schemathesis_version();
    assert!(
        version.contains("version 4."),
        "schemathesis 4 is needed, found {version:?}: {INSTALL}"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), "");
    let api = owner_session(&server).await;
    let seeded = seed(&api, &server).await;
    let url = format!("http://{}/api/v1/openapi.json", server.addr("admin (HTTP)"));
    let token = api.token.clone().unwrap();

    let pinned = PINNED
        .replace("@ORG@", &seeded.org.to_string())
        .replace("@OWNER@", &seeded.owner.to_string())
        .replace("@MAILBOX@", &seeded.mailbox.to_string())
        .replace("@TEAM@", &seeded.team.to_string())
        .replace("@GRANT@", &seeded.grant.to_string());
    let positive = config(
        dir.path(),
        "positive.toml",
        &format!("[parameters]{BINDINGS}{pinned}{DICTIONARIES}"),
    );
    let negative = config(
        dir.path(),
        "negative.toml",
        &format!("[parameters]{BINDINGS}{DICTIONARIES}"),
    );
    let auth = config(dir.path(), "auth.toml", "");

    let mut excluded = Vec::new();
    for id in AUTH_OPERATIONS {
        excluded.extend(["--exclude-operation-id".to_string(), id.to_string()]);
    }
    // Every run runs, so that one failure shows everything there is to fix.
    let mut failures = Vec::new();
    let mut args = run_args(&positive, &url, &token);
    args.extend(strings(&["--mode", "positive"]));
    args.extend(excluded.clone());
    failures.extend(schemathesis(dir.path(), "positive", &args));

    let mut args = run_args(&negative, &url, &token);
    args.extend(strings(&["--mode", "negative"]));
    args.extend(excluded);
    // Autodiscover v1 takes any XML text: no request violates a string schema, and
    // schemathesis would fail its health check looking for one.
    for id in XML_OPERATIONS {
        args.extend(["--exclude-operation-id".to_string(), id.to_string()]);
    }
    failures.extend(schemathesis(dir.path(), "negative", &args));

    // A token made now (the runs above may have revoked any token they could list), which
    // `DELETE /api/v1/session` may revoke in turn. Wrong passwords are answered after the
    // throttle's pause (1, 2, 4 s… for the few the coverage phase sends): allowed here, unlike
    // in the other runs.
    let (status, created) = api
        .post("/api/v1/me/tokens", json!({"name": "schemathesis-auth"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let disposable = created["token"].as_str().unwrap().to_string();
    let mut args = run_args(&auth, &url, &disposable);
    args.extend(strings(&[
        "--phases",
        "coverage",
        "--max-response-time",
        "35",
        "--request-timeout",
        "40",
    ]));
    for id in AUTH_OPERATIONS {
        args.extend(["--include-operation-id".to_string(), id.to_string()]);
    }
    failures.extend(schemathesis(
        dir.path(),
        "login, password and logout",
        &args,
    ));

    // The server is still there, and the session the runs used still works.
    let (status, _) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `schemathesis --version`, failing the test with what to install when it is missing.
fn schemathesis_version() -> String {
    let out = Command::new("schemathesis")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("schemathesis must be installed ({e}): {INSTALL}"));
    assert!(
        out.status.success(),
        "schemathesis --version failed ({INSTALL}):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Logs in as the first owner with the password of the first-start banner and changes it;
/// the same token then works for everything.
async fn owner_session(server: &TestServer) -> Api {
    let initial = server
        .initial_password()
        .expect("the first start prints the owner's password");
    let api = Api::login(server, "owner@localhost", &initial).await;
    let (status, body) = api
        .post(
            "/api/v1/me/password",
            json!({"current_password": initial, "new_password": "a new password 1"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    api
}

/// A domain, a mailbox with a message, an alias, a team with the owner in it, and a grant
/// that lets the owner read (so export the mailbox).
async fn seed(api: &Api, server: &TestServer) -> Seeded {
    let (status, me) = api.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let owner = me["id"].as_u64().unwrap();
    let org = me["organizations"][0]["id"].as_u64().unwrap();
    let base = format!("/api/v1/orgs/{org}");
    let created = |status: StatusCode, body: &Value| {
        assert_eq!(status, StatusCode::CREATED, "{body}");
    };

    let (status, body) = api
        .post(&format!("{base}/domains"), json!({"name": "acme.example"}))
        .await;
    created(status, &body);
    let (status, body) = api
        .post(
            &format!("{base}/mailboxes"),
            json!({"address": CONTACT, "password": CONTACT_PASSWORD}),
        )
        .await;
    created(status, &body);
    let mailbox = body["id"].as_u64().unwrap();
    let (status, body) = api
        .post(
            &format!("{base}/aliases"),
            json!({"address": "hello@acme.example", "mailbox_id": mailbox}),
        )
        .await;
    created(status, &body);
    let (status, body) = api
        .post(&format!("{base}/teams"), json!({"name": "Support"}))
        .await;
    created(status, &body);
    let team = body["id"].as_u64().unwrap();
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{base}/teams/{team}/members/{owner}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = api
        .post(
            &format!("{base}/grants"),
            json!({"grantee": {"user": owner}, "target": {"mailbox": mailbox}, "preset": "read"}),
        )
        .await;
    created(status, &body);
    let grant = body["id"].as_u64().unwrap();

    let imap = server.addr("imap (TLS)");
    python(
        r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx)
m.login(sys.argv[3], sys.argv[4])
m.append("INBOX", None, None, b"Subject: seeded\r\n\r\nFrom the first line of the body\r\n")
m.logout()
"#,
        &[
            imap.ip().to_string(),
            imap.port().to_string(),
            CONTACT.to_string(),
            CONTACT_PASSWORD.to_string(),
        ],
    );
    Seeded {
        org,
        owner,
        mailbox,
        team,
        grant,
    }
}

/// Writes a schemathesis configuration file into the test's directory.
fn config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the schemathesis configuration");
    path
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// What every run shares: the document, the token, the seed, one worker (the same requests
/// in the same order each time), no example database carried from run to run, and every
/// check but `positive_data_acceptance` (a schema-valid request may still be refused with 409
/// or 422 by rules no schema states: an address in a domain of another organization, the
/// last owner's role).
fn run_args(config: &Path, url: &str, token: &str) -> Vec<String> {
    vec![
        "--config-file".into(),
        config.display().to_string(),
        "run".into(),
        url.into(),
        "--header".into(),
        format!("Authorization: Bearer {token}"),
        "--seed".into(),
        SEED.into(),
        "--max-examples".into(),
        EXAMPLES.into(),
        "--workers".into(),
        "1".into(),
        "--generation-database".into(),
        "none".into(),
        "--checks".into(),
        "all".into(),
        "--exclude-checks".into(),
        "positive_data_acceptance".into(),
        "--no-color".into(),
    ]
}

/// Runs schemathesis in `dir`: None when it exits 0 within `DEADLINE`, otherwise what to show,
/// its whole output (each failure with the curl line that reproduces it).
fn schemathesis(dir: &Path, what: &str, args: &[String]) -> Option<String> {
    let mut child = Command::new("schemathesis")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("schemathesis must be installed ({e}): {INSTALL}"));
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = format!(
        "{}{}",
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default()
    );
    match status {
        Some(status) if status.success() => None,
        Some(status) => Some(format!(
            "schemathesis ({what} run, seed {SEED}) failed with {status} (1: the API broke a \
             check; 2: the run itself could not work):\n{output}"
        )),
        None => Some(format!(
            "schemathesis ({what} run) did not finish in {DEADLINE:?}:\n{output}"
        )),
    }
}

/// Reads a pipe to its end on a thread of its own, so that neither pipe fills up.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
