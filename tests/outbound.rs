//! The outbound queue's client against servers we did not write: a Python smarthost with
//! STARTTLS or implicit TLS and AUTH, its certificate checked (or refused), and MX hosts
//! found through a Python DNS server (preference order, a dead host skipped, a domain
//! without MX, a null MX), reached with opportunistic STARTTLS.

mod common;

use common::api::Api;
use common::*;
use reqwest::StatusCode;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A smarthost or MX host: `mode` is `starttls` (offered), `implicit`, `plain` (AUTH
/// offered, STARTTLS not) or `badtls` (STARTTLS offered, then garbage instead of TLS). It logs, one line each, the TLS server name it was asked for
/// (SNI), AUTH credentials and whether TLS was on, MAIL/RCPT, and the message.
const TLS_SINK: &str = r#"
import base64, socket, ssl, sys, threading
out, cert, key, mode = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
local = threading.local()
ctx.sni_callback = lambda sock, name, _: setattr(local, "sni", name)
lock = threading.Lock()
def log(text):
    with lock, open(out, "a") as o:
        o.write(text + "\n")
def secure(conn):
    local.sni = None
    conn = ctx.wrap_socket(conn, server_side=True)
    log(f"TLS {local.sni}")
    return conn
def serve(conn):
    try:
        converse(conn)
    except (ssl.SSLError, OSError) as e:
        log(f"FAILED {e.__class__.__name__}")
def converse(conn):
    if mode == "implicit":
        conn = secure(conn)
    f = conn.makefile("rb")
    send = lambda s: conn.sendall(s.encode() + b"\r\n")
    send("220 sink.test ESMTP")
    while True:
        line = f.readline().decode().strip()
        if not line:
            return
        verb = line.split(" ")[0].upper()
        tls = isinstance(conn, ssl.SSLSocket)
        if verb == "EHLO":
            ext = ["sink.test", "8BITMIME", "AUTH PLAIN"] + (["STARTTLS"] if mode in ("starttls", "badtls") and not tls else [])
            send("\r\n".join(("250 " if i == len(ext) - 1 else "250-") + e for i, e in enumerate(ext)))
        elif verb == "STARTTLS" and mode == "badtls":
            # A legacy host: says yes, then cannot speak any TLS the client knows.
            send("220 2.0.0 go ahead")
            conn.sendall(b"this is not a TLS record\r\n")
            log("TLS BROKEN")
            return
        elif verb == "STARTTLS":
            send("220 2.0.0 go ahead")
            conn = secure(conn)
            f = conn.makefile("rb")
        elif verb == "AUTH":
            who = base64.b64decode(line.split(" ")[2]).decode().replace("\0", "|")
            log(f"AUTH {who} {'over TLS' if tls else 'in clear'}")
            send("235 2.7.0 ok")
        elif verb == "DATA":
            send("354 go on")
            data = b""
            while (l := f.readline()) != b".\r\n":
                data += l
            log(data.decode(errors="replace"))
            send("250 2.0.0 stored")
        elif verb == "QUIT":
            send("221 bye")
            return
        else:
            log(line)
            send("250 ok")
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// The test's domains: remote.test's MX hosts by preference (the dead one first), a domain
/// without MX (its address), a null MX (RFC 7505), an MX whose name has no address.
const ZONE: &[&str] = &[
    "remote.test MX 10 mx1.remote.test.",
    "remote.test MX 5 dead.remote.test.",
    "mx1.remote.test A 127.0.0.1",
    "dead.remote.test A 127.0.0.2",
    "plain.test A 127.0.0.1",
    "nomail.test MX 0 .",
    "broken.test MX 10 nowhere.broken.test.",
];

/// A self-signed certificate for `names`, as PEM files in `dir`.
fn certificate(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let generated = rcgen::generate_simple_self_signed(names).unwrap();
    let (cert, key) = (dir.join("sink-cert.pem"), dir.join("sink-key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn tls_sink(dir: &Path, mode: &str, names: &[&str]) -> (Sink, PathBuf) {
    let (cert, key) = certificate(dir, names);
    let log = dir.join("sink.log");
    let args = [cert.as_os_str(), key.as_os_str(), OsStr::new(mode)];
    (sink_with(TLS_SINK, &log, &args), log)
}

/// Submits one message from contact@ to `recipients` over implicit TLS.
fn submit(server: &TestServer, recipients: &[&str], subject: &str) {
    submit_to(server.addr("submission (TLS)").port(), recipients, subject)
}

/// `submit`, to the implicit-TLS submission port given.
fn submit_to(port: u16, recipients: &[&str], subject: &str) {
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL(sys.argv[1], int(sys.argv[2]), context=ctx)
s.login("contact@acme.example", "contact-password")
msg = f"From: contact@acme.example\r\nSubject: {sys.argv[3]}\r\n\r\nhello\r\n".encode()
s.sendmail("contact@acme.example", sys.argv[4:], msg)
s.quit()
"#;
    let mut args = vec![
        "127.0.0.1".to_string(),
        port.to_string(),
        subject.to_string(),
    ];
    args.extend(recipients.iter().map(|r| r.to_string()));
    python(script, &args);
}

/// The file's text once it holds every one of `needles`; fails after 60 seconds.
fn wait_for(path: &Path, needles: &[&str]) -> String {
    wait_until(path, |text| needles.iter().all(|n| text.contains(n)))
}

/// The file's text once `done` says so; fails after 60 seconds.
fn wait_until(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never done: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn smarthost_config(port: u16, tls: &str, ca: Option<&Path>) -> String {
    let ca = ca
        .map(|p| format!("smarthost_ca = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    format!(
        "[queue]\nsmarthost = \"localhost:{port}\"\nsmarthost_tls = \"{tls}\"\n\
         smarthost_user = \"relay-user\"\nsmarthost_password = \"relay-secret\"\n\
         first_retry_seconds = 1\n{ca}"
    )
}

#[test]
fn a_smarthost_gets_auth_only_over_tls_it_trusts_with_starttls_or_implicit_tls() {
    for mode in ["starttls", "implicit"] {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path(), "lr");
        let (smarthost, log) = tls_sink(dir.path(), mode, &["localhost"]);
        let cert = dir.path().join("sink-cert.pem");
        let server = start(
            dir.path(),
            &smarthost_config(smarthost.port, mode, Some(&cert)),
        );
        submit(&server, &["far@away.example"], "relayed");
        let text = wait_for(&log, &["Subject: relayed"]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "TLS localhost", "{mode}: {text}");
        assert_eq!(
            lines[1], "AUTH |relay-user|relay-secret over TLS",
            "{mode}: {text}"
        );
        assert!(lines[2].starts_with("MAIL FROM:<contact@acme.example>"));
        assert_eq!(lines[3], "RCPT TO:<far@away.example>", "{mode}: {text}");
    }
}

/// The queue entry's state once it is deferred, as an admin sees it.
async fn deferred_error(server: &TestServer, org: u64) -> String {
    let owner = Api::login(server, OWNER, OWNER_PASSWORD).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, page) = owner.get(&format!("/api/v1/orgs/{org}/queue")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let entry = &page["items"][0];
        if entry["state"] == "deferred" {
            return entry["last_error"].as_str().unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "never deferred: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn no_password_goes_to_a_smarthost_that_is_not_trusted_or_offers_no_tls() {
    for (mode, why) in [
        // A certificate nobody vouches for: no CA configured.
        ("starttls", "certificate"),
        // A smarthost that offers AUTH but no STARTTLS.
        ("plain", "not sent in clear"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let seeded = seed(dir.path(), "lr");
        let (smarthost, log) = tls_sink(dir.path(), mode, &["localhost"]);
        let config = smarthost_config(smarthost.port, "starttls", None);
        let server = start(dir.path(), &config);
        submit(&server, &["far@away.example"], "kept back");
        let error = deferred_error(&server, seeded.org).await;
        assert!(error.contains(why), "{mode}: {error}");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !text.contains("AUTH") && !text.contains("MAIL"),
            "{mode}: {text}"
        );
    }
}

/// The MX host and the DNS server naming it, with their logs; stopped when dropped.
struct MxSinks {
    _mx: Sink,
    _dns: Dns,
    log: PathBuf,
    questions: PathBuf,
}

/// A seeded server whose outbound mail goes by DNS to an MX host in `mode` with a
/// certificate for `names`.
fn mx_world(dir: &Path, mode: &str, names: &[&str]) -> (TestServer, MxSinks) {
    seed(dir, "lr");
    let (mx, log) = tls_sink(dir, mode, names);
    let questions = dir.join("dns.log");
    let dns = Dns::with_records(dir, ZONE, &questions);
    let config = format!(
        "[queue]\nnameservers = [\"127.0.0.1:{}\"]\nmx_port = {}\nfirst_retry_seconds = 1\n",
        dns.server.port, mx.port
    );
    let sinks = MxSinks {
        _mx: mx,
        _dns: dns,
        log,
        questions,
    };
    (start(dir, &config), sinks)
}

#[test]
fn mx_hosts_come_from_the_dns_in_order_of_preference_with_opportunistic_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let (server, sinks) = mx_world(dir.path(), "starttls", &["mx1.remote.test", "plain.test"]);
    let (log, questions) = (&sinks.log, &sinks.questions);
    let recipients = [
        "friend@remote.test",
        "someone@plain.test",
        "nobody@nomail.test",
        "lost@gone.test",
        "stuck@broken.test",
    ];
    submit(&server, &recipients, "via mx");
    let text = wait_until(log, |text| text.matches("Subject: via mx").count() == 2);
    for line in [
        "TLS mx1.remote.test",
        "RCPT TO:<friend@remote.test>",
        "TLS plain.test",
        "RCPT TO:<someone@plain.test>",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    let asked = std::fs::read_to_string(questions).unwrap();
    // The preferred host (5) has no server: it was looked up first, then the next one.
    let dead = asked.find("A dead.remote.test").expect(&asked);
    let live = asked.find("A mx1.remote.test").expect(&asked);
    assert!(dead < live, "{asked}");
    // No MX: the domain's own address (RFC 5321 §5.1).
    assert!(
        asked.contains("MX plain.test") && asked.contains("A plain.test"),
        "{asked}"
    );
    // A null MX (RFC 7505 §4.2), a domain that does not exist and one whose only MX host
    // has no address bounce at once: a DSN each to the sender.
    let dsns = inbox(&server, 3);
    for (recipient, status) in [
        ("nobody@nomail.test", "5.1.10"),
        ("lost@gone.test", "5.1.2"),
        ("stuck@broken.test", "5.4.4"),
    ] {
        let needle =
            format!("Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}");
        assert!(dsns.contains(&needle), "{needle}: {dsns}");
    }
    assert!(
        !asked.contains("A nomail.test") && !asked.contains("A gone.test"),
        "{asked}"
    );
}

#[test]
fn an_mx_host_whose_tls_fails_gets_the_mail_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (server, sinks) = mx_world(dir.path(), "badtls", &["plain.test"]);
    // A local recipient too: the remote copy is held until the local one is written.
    submit(
        &server,
        &["someone@plain.test", "contact@acme.example"],
        "legacy",
    );
    assert!(inbox(&server, 1).contains("Subject: legacy"));
    let text = wait_for(&sinks.log, &["Subject: legacy"]);
    let broken = text.find("TLS BROKEN").expect(&text);
    let mail = text.find("MAIL FROM:<contact@acme.example>").expect(&text);
    assert!(broken < mail, "TLS was tried first: {text}");
    assert_eq!(text.matches("Subject: legacy").count(), 1, "{text}");
}

/// Every message in contact@'s INBOX once there are at least `count`, as one text; fails
/// after 60 seconds.
fn inbox(server: &TestServer, count: usize) -> String {
    python(
        r#"
import imaplib, ssl, sys, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
# Polled for a generous minute; how soon it arrives is not what this checks.
deadline = time.time() + 60
while time.time() < deadline:
    m = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx)
    m.login("contact@acme.example", "contact-password")
    typ, data = m.select("INBOX")
    if int(data[0]) >= int(sys.argv[3]):
        typ, data = m.fetch("1:*", "(BODY.PEEK[])")
        print("\n".join(part[1].decode() for part in data if isinstance(part, tuple)))
        break
    m.logout()
    time.sleep(0.2)
else:
    sys.exit(f"INBOX holds {int(data[0])} messages, never {sys.argv[3]}")
"#,
        &[
            "127.0.0.1".into(),
            server.addr("imap (TLS)").port().to_string(),
            count.to_string(),
        ],
    )
}

/// Issue 13: a connection is kept for the host's next message (RSET, no new TLS or AUTH),
/// and a backlog for one domain goes through a few connections, not one per message.
#[test]
fn messages_to_one_host_share_connections() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let (smarthost, log) = tls_sink(dir.path(), "starttls", &["localhost"]);
    let cert = dir.path().join("sink-cert.pem");
    let server = start(
        dir.path(),
        &smarthost_config(smarthost.port, "starttls", Some(&cert)),
    );
    // One after another: each finds the last one's connection waiting.
    for n in 0..3 {
        submit(&server, &["far@away.example"], &format!("kept {n}"));
        wait_for(&log, &[&format!("Subject: kept {n}")]);
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("TLS localhost").count(), 1, "{text}");
    assert_eq!(text.matches("AUTH |relay-user|").count(), 1, "{text}");
    assert_eq!(text.matches("\nRSET").count(), 2, "{text}");

    // Twenty at once: no more connections than the queue's per-domain limit (4), counting
    // the one kept from before.
    let subjects: Vec<String> = (0..20).map(|n| format!("backlog {n}")).collect();
    let port = server.addr("submission (TLS)").port();
    std::thread::scope(|s| {
        for subject in &subjects {
            s.spawn(move || submit_to(port, &["far@away.example"], subject));
        }
    });
    let needles: Vec<String> = subjects.iter().map(|s| format!("Subject: {s}\r")).collect();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let text = wait_for(&log, &needles);
    let connections = text.matches("TLS localhost").count();
    assert!(
        (1..=5).contains(&connections),
        "{connections} connections: {text}"
    );
}
