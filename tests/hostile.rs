//! A hostile client cannot exhaust the server, and does not lock its neighbours out (issue 10):
//! the login throttle that holds a guesser back while colleagues at the same address keep
//! working, mail in flight spooled to disk, and the server-wide budget of bytes in flight.
//! Driven with Python's imaplib, smtplib and raw sockets.

mod common;

use common::*;

/// From one address: the mailbox logs in (now trusted there), a machine at the same address
/// guesses twelve logins at once, then a new login is refused unchecked while the trusted one
/// goes straight in.
const OFFICE: &str = r#"
import imaplib, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
def login(user, password):
    m = imaplib.IMAP4(host, port)
    try:
        m.login(user, password)
        return "OK"
    except imaplib.IMAP4.error as e:
        return "NO " + str(e)
    finally:
        try: m.logout()
        except Exception: pass
assert login(sys.argv[3], sys.argv[4]) == "OK"
results = []
def guess(n):
    results.append(login(f"user{n}@acme.example", "guess"))
threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
for t in threads: t.start()
for t in threads: t.join()
assert all(r.startswith("NO") for r in results), results
print("newcomer", login(sys.argv[5], sys.argv[6]))
started = time.monotonic()
print("trusted", login(sys.argv[3], sys.argv[4]))
print("waited", round(time.monotonic() - started, 2))
"#;

#[test]
fn a_guessing_neighbour_is_held_back_while_trusted_logins_go_on() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let server = start(dir.path(), "[auth]\nallow_plaintext_on_loopback = true\n");
    let out = python(
        OFFICE,
        &[
            "127.0.0.1".into(),
            server.addr("imap (STARTTLS)").port().to_string(),
            CONTACT.into(),
            CONTACT_PASSWORD.into(),
            LUCIE.into(),
            LUCIE_PASSWORD.into(),
        ],
    );
    eprintln!("{out}");
    let newcomer = out
        .lines()
        .find(|l| l.starts_with("newcomer"))
        .unwrap_or("");
    assert!(
        newcomer.starts_with("newcomer NO") && newcomer.contains("[UNAVAILABLE]"),
        "a new login from a guessing address is refused: {out}"
    );
    assert!(out.contains("trusted OK"), "{out}");
}

/// Sends a DATA of `argv[3]` bytes without the final dot, prints "held", waits for a line on
/// stdin, then ends the message and prints the answer.
const HALF_DATA: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
f = s.makefile("rb")
def answer():
    line = f.readline()
    while line[3:4] == b"-":
        line = f.readline()
    return line.decode().strip()
answer()
for cmd in [b"EHLO test", b"MAIL FROM:<x@remote.example>", b"RCPT TO:<contact@acme.example>", b"DATA"]:
    s.sendall(cmd + b"\r\n")
    answer()
chunk = b"Subject: held\r\n\r\n" + b"x" * 998 + b"\r\n"
size, sent = int(sys.argv[3]), 0
while sent < size:
    s.sendall(chunk)
    sent += len(chunk)
print("held", flush=True)
sys.stdin.readline()
s.sendall(b".\r\n")
print("end", answer(), flush=True)
"#;

fn spool_bytes(server: &TestServer) -> u64 {
    std::fs::read_dir(server.data.join("spool"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_half_sent_message_waits_in_the_spool_not_in_memory() {
    use std::io::{BufRead, BufReader, Write};
    let (_dir, _seeded, server) = seeded_server("lr");
    let smtp = server.addr("smtp (STARTTLS)");
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            HALF_DATA,
            "127.0.0.1",
            &smtp.port().to_string(),
            "4000000",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "held");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while spool_bytes(&server) < 3_900_000 {
        assert!(std::time::Instant::now() < deadline, "nothing spooled");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    writeln!(child.stdin.take().unwrap()).unwrap();
    let end = lines.next().unwrap().unwrap();
    assert!(end.starts_with("end 250"), "{end}");
    assert_eq!(spool_bytes(&server), 0, "the spool file goes once stored");
    if common::on_postgres() {
        // The bytes are in the database, not a file: whole there.
        let size = common::postgres_query(&server.data, "SELECT max(size) FROM blobs");
        assert!(size.parse::<u64>().unwrap() > 4_000_000, "{size}");
        let _ = child.wait();
        return;
    }
    // It became the blob (renamed, trace field first), whole.
    let stored = largest_blob(&server);
    assert!(stored.len() > 4_000_000, "{}", stored.len());
    assert!(stored.starts_with(b"Received: from test ([127.0.0.1])"));
    assert!(stored.ends_with(b"x\r\n"));
    let _ = child.wait();
}

fn largest_blob(server: &TestServer) -> Vec<u8> {
    let blobs = server.data.join("blobs");
    let largest = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .filter(|d| d.file_name() != "tmp")
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .max_by_key(|f| f.metadata().map(|m| m.len()).unwrap_or(0))
        .expect("a blob");
    std::fs::read(largest.path()).unwrap()
}

/// With a budget of 1 MiB in flight: a 2 MiB SMTP message gets 452 4.3.1, an APPEND of 2 MiB
/// gets NO [UNAVAILABLE] before its literal is sent, and one of 600 KiB (spooled, past the
/// threshold) arrives whole.
const BUDGET: &str = r#"
import imaplib, smtplib, sys
host, imap_port, smtp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 2100
try:
    with smtplib.SMTP(host, smtp_port) as s:
        s.sendmail("x@remote.example", ["contact@acme.example"], big)
    print("smtp accepted")
except smtplib.SMTPDataError as e:
    print("smtp", e.smtp_code, e.smtp_error.decode())
m = imaplib.IMAP4(host, imap_port)
m.login(sys.argv[4], sys.argv[5])
try:
    typ, data = m.append("INBOX", None, None, big)
    print("append", typ, data)
except imaplib.IMAP4.error as e:
    print("append NO", e)
# The admin API's bodies count too: 1.5 MB announced is over the 1 MiB budget, refused on
# the announcement alone (the body is never sent: a server answering early and closing
# would otherwise race the client's writing).
import http.client, json
api = http.client.HTTPConnection(host, int(sys.argv[6]), timeout=60)
api.putrequest("POST", "/api/v1/session")
api.putheader("content-type", "application/json")
api.putheader("content-length", "1500000")
api.endheaders()
response = api.getresponse()
print("api", response.status, json.loads(response.read())["error"])
medium = b"Subject: medium\r\n\r\n" + (b"z" * 998 + b"\r\n") * 600
typ, data = m.append("INBOX", None, None, medium)
print("medium", typ)
m.select("INBOX")
typ, data = m.search(None, "SUBJECT", "medium")
typ, body = m.fetch(data[0].split()[-1], "(BODY.PEEK[])")
print("whole", body[0][1] == medium)
"#;

#[test]
fn the_budget_of_bytes_in_flight_refuses_with_temporary_errors() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    // Lines before a table header go to EPHEMERAL's last table, [limits].
    let server = start(
        dir.path(),
        "max_bytes_in_flight = 1048576\n[auth]\nallow_plaintext_on_loopback = true\n",
    );
    let out = python(
        BUDGET,
        &[
            "127.0.0.1".into(),
            server.addr("imap (STARTTLS)").port().to_string(),
            server.addr("smtp (STARTTLS)").port().to_string(),
            CONTACT.into(),
            CONTACT_PASSWORD.into(),
            server.addr("admin (HTTP)").port().to_string(),
        ],
    );
    assert!(out.contains("smtp 452 4.3.1"), "{out}");
    assert!(out.contains("api 503 unavailable"), "{out}");
    assert!(
        out.contains("append NO") && out.contains("UNAVAILABLE"),
        "{out}"
    );
    assert!(out.contains("medium OK"), "{out}");
    assert!(out.contains("whole True"), "{out}");
}

/// A client that asks for a large answer and stops reading is dropped after the stall limit:
/// with one connection allowed per address, a second one gets in once the first is gone.
const STALLED: &str = r#"
import imaplib, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
m = imaplib.IMAP4(host, port)
m.login(sys.argv[3], sys.argv[4])
body = b"Subject: large\r\n\r\n" + (b"w" * 998 + b"\r\n") * 8000
m.append("INBOX", None, None, body)
m.select("INBOX")
# Ask for the 8 MB body four times over, and read none of it.
m.send(b"a1 FETCH 1:* (BODY.PEEK[])\r\na2 FETCH 1:* (BODY.PEEK[])\r\na3 FETCH 1:* (BODY.PEEK[])\r\na4 FETCH 1:* (BODY.PEEK[])\r\n")
# A generous minute for the one-second stall limit to free the place.
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    s = socket.create_connection((host, port))
    greeting = s.recv(4096)
    s.close()
    if b"Too many connections" not in greeting:
        print("admitted", greeting[:4])
        break
    time.sleep(0.2)
else:
    sys.exit("the stalled reader kept its place")
"#;

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let config = EPHEMERAL.replacen("[smtp]", "write_stall_seconds = 1\n[smtp]", 1)
        + "max_connections_per_client = 1\n[auth]\nallow_plaintext_on_loopback = true\n";
    let server = start_with(dir.path(), &config);
    let out = python(
        STALLED,
        &[
            "127.0.0.1".into(),
            server.addr("imap (STARTTLS)").port().to_string(),
            CONTACT.into(),
            CONTACT_PASSWORD.into(),
        ],
    );
    assert!(out.contains("admitted b'* OK'"), "{out}");
}

/// A TLS client may send an IP address as SNI, which RFC 6066 §3 forbids: rustls warns of it
/// on every handshake, and a remote client must not be able to fill the server's log that way.
#[test]
fn an_ip_address_as_sni_writes_nothing_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let server = start_logging(dir.path(), EPHEMERAL, file);
    let imaps = server.addr("imap (TLS)");
    for _ in 0..3 {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &imaps.to_string(),
                "-servername",
                "127.0.0.1",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl must be installed (.ci/run installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Server certificate"), "the handshake: {text}");
    }
    // The server is stopped, so everything it would log is in the file.
    drop(server.terminate());
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(!written.contains("SNI"), "{written}");
}
