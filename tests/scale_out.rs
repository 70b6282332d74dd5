//! Several mailgate nodes on one PostgreSQL database (issue 14), as a provider runs them
//! behind a load balancer: what one node is told, the others serve. A throwaway PostgreSQL
//! cluster (Debian's `postgresql`, which `.ci/run` installs) and two real server processes.

mod common;

#[path = "../src/store/postgres/testing.rs"]
#[allow(dead_code)]
mod postgres;

use common::api::Api;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

const PASSWORD: &str = "contact-password-1";

/// Logs in to `node`'s admin API as the first owner, with the password given.
async fn owner(node: &common::TestServer, password: &str) -> Api {
    Api::login(node, "owner@localhost", password).await
}

/// Node A bootstraps the database and sets up a mailbox; node B, started on the same URL,
/// finds it all. Mail delivered by SMTP to A wakes an IDLE session on B; a message appended
/// on B is read on A; a password changed through A's API ends B's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_serve_the_same_mail_and_hear_each_others_changes() {
    let cluster = postgres::TempCluster::start();
    let url = cluster.new_database("mailgate");
    let config = format!("[store]\npostgres_url = \"{url}\"\n");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = common::start(dir_a.path(), &config);
    let initial = a
        .initial_password()
        .expect("node A bootstraps the empty database");
    let b = common::start(dir_b.path(), &config);
    assert!(
        b.initial_password().is_none(),
        "node B finds the organization node A made: {:?}",
        b.banner
    );

    // The owner's forced password change on A; B's API knows the new password at once.
    let api_a = first_owner_session(&a, &initial).await;
    let api_b = owner(&b, "a new password 1").await;
    let (_, me) = api_b.get("/api/v1/me").await;
    let org = me["organizations"][0]["id"].as_u64().unwrap();
    let base = format!("/api/v1/orgs/{org}");
    let (status, body) = api_a
        .post(&format!("{base}/domains"), json!({"name": "acme.example"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, mailbox) = api_b
        .post(
            &format!("{base}/mailboxes"),
            json!({"address": "contact@acme.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mailbox}");
    let mailbox = mailbox["id"].as_u64().unwrap();
    let (status, body) = api_a
        .post(
            &format!("{base}/mailboxes"),
            json!({"address": "contact@acme.example"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one address, whichever node: {body}"
    );

    // B's IDLE session idles in INBOX; A takes the mail by SMTP.
    let mut idle = python(&b, IDLE_ON_B);
    assert_eq!(idle.line(), "idling");
    let sent_at = Instant::now();
    let out = common::python(SEND_TO_A, &[a.addr("smtp (STARTTLS)").port().to_string()]);
    assert!(out.contains("sent"), "{out}");
    let exists = idle.line();
    assert_eq!(exists, "* 1 EXISTS", "B's IDLE hears of A's delivery");
    eprintln!(
        "B's IDLE heard of A's delivery {:.3} s after the SMTP session began",
        sent_at.elapsed().as_secs_f64()
    );
    let fetched = idle.line();
    assert!(fetched.contains("Across nodes"), "{fetched}");
    assert_eq!(idle.line(), "appended");

    // What B appended, A serves.
    let out = common::python(READ_ON_A, &[a.addr("imap (TLS)").port().to_string()]);
    assert!(out.contains("From B"), "{out}");
    assert!(out.contains("read"), "{out}");

    // A new password set through A ends B's session within moments.
    let changed_at = Instant::now();
    let (status, body) = api_a
        .call(
            Method::PATCH,
            &format!("{base}/mailboxes/{mailbox}"),
            Some(json!({"password": "another-password-2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bye = idle.line();
    assert!(bye.starts_with("* BYE"), "{bye}");
    eprintln!(
        "B's session ended {:.3} s after A changed the password",
        changed_at.elapsed().as_secs_f64()
    );
    assert!(idle.finish().success());
    drop((a, b));
}

/// The first owner's session on `node`, after the forced change of the initial password to
/// "a new password 1".
async fn first_owner_session(node: &common::TestServer, initial: &str) -> Api {
    let api = Api::login(node, "owner@localhost", initial).await;
    let change = json!({"current_password": initial, "new_password": "a new password 1"});
    let (status, body) = api.post("/api/v1/me/password", change).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    owner(node, "a new password 1").await
}

/// acme.example and its mailbox `contact@`, with `PASSWORD`, in the owner's organization.
async fn contact_mailbox(api: &Api) {
    let (_, me) = api.get("/api/v1/me").await;
    let org = me["organizations"][0]["id"].as_u64().unwrap();
    let base = format!("/api/v1/orgs/{org}");
    let (status, body) = api
        .post(&format!("{base}/domains"), json!({"name": "acme.example"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api
        .post(
            &format!("{base}/mailboxes"),
            json!({"address": "contact@acme.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A message submitted on node A for a remote domain: A starts delivering it to a smarthost
/// that takes it up to the end of DATA and then answers nothing; A is killed there. Node B,
/// sharing the queue, delivers it once A's lease has run out, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_delivery_leaves_the_message_to_another_node() {
    let cluster = postgres::TempCluster::start();
    let url = cluster.new_database("mailgate");
    let work = tempfile::tempdir().unwrap();
    let relayed = work.path().join("relayed");
    let smarthost = common::sink(STALLING_ONCE_SINK, &relayed);
    let config = format!(
        "[store]\npostgres_url = \"{url}\"\n{}lease_seconds = 3\n",
        smarthost.queue_config()
    );
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = common::start(dir_a.path(), &config);
    let initial = a
        .initial_password()
        .expect("node A bootstraps the empty database");
    contact_mailbox(&first_owner_session(&a, &initial).await).await;

    let out = common::python(
        SUBMIT_REMOTE,
        &[a.addr("submission (TLS)").port().to_string()],
    );
    assert!(out.contains("submitted"), "{out}");
    // The smarthost says when A's delivery reached the end of DATA.
    let stalled = relayed.with_extension("stalled");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stalled.exists() {
        assert!(Instant::now() < deadline, "node A never started delivering");
        std::thread::sleep(Duration::from_millis(50));
    }
    a.kill();
    let killed_at = Instant::now();

    let b = common::start(dir_b.path(), &config);
    let deadline = Instant::now() + Duration::from_secs(120);
    let delivered = loop {
        let text = std::fs::read_to_string(&relayed).unwrap_or_default();
        if text.contains("Subject: Leased") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "node B never delivered the message"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "node B delivered {:.1} s after node A was killed (lease 3 s)",
        killed_at.elapsed().as_secs_f64()
    );
    assert_eq!(
        delivered.matches("Subject: Leased").count(),
        1,
        "{delivered}"
    );
    drop(b);
}

/// APPEND through node A and SMTP delivery through node B at once, into one INBOX: every
/// acknowledged message is there once, with UIDs unique and each node's answers increasing.
/// Then node B is SIGKILLed in the middle of a stream of deliveries: every message it
/// acknowledged is there, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_two_nodes_and_a_node_killed_mid_stream_lose_nothing() {
    let cluster = postgres::TempCluster::start();
    let url = cluster.new_database("mailgate");
    let config = format!("[store]\npostgres_url = \"{url}\"\n");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = common::start(dir_a.path(), &config);
    let initial = a
        .initial_password()
        .expect("node A bootstraps the empty database");
    let b = common::start(dir_b.path(), &config);
    contact_mailbox(&first_owner_session(&a, &initial).await).await;

    let out = common::python(
        CONCURRENT_WRITES,
        &[
            a.addr("imap (TLS)").port().to_string(),
            b.addr("smtp (STARTTLS)").port().to_string(),
        ],
    );
    assert!(out.contains("all 60 there once"), "{out}");

    // A stream of deliveries through B, which is killed after its tenth acknowledgement.
    let mut stream = std::process::Command::new("python3")
        .arg("-c")
        .arg(STREAM)
        .arg(b.addr("smtp (STARTTLS)").port().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(stream.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked.push(n.to_string());
            if acked.len() == 10 {
                common::signal(b.pid(), "KILL");
                break;
            }
        }
    }
    for line in lines {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked.push(n.to_string());
        }
    }
    common::wait_with_timeout(&mut stream, Duration::from_secs(120));
    drop(b);
    let out = common::python(
        COUNT_STREAM,
        &[a.addr("imap (TLS)").port().to_string(), acked.join(",")],
    );
    assert!(out.contains("every acknowledged message once"), "{out}");
    eprintln!(
        "{} deliveries acknowledged before the kill; {out}",
        acked.len()
    );
}

/// `mailgate store copy` moves a sled installation (the server stopped) into PostgreSQL: a
/// node on the database then serves the same mailbox with the same UIDVALIDITY, UIDs, flags
/// and MODSEQs, the same passwords and the same grants; a second copy into it is refused.
#[test]
fn store_copy_moves_an_installation_to_postgresql_as_clients_knew_it() {
    // The source is sled's, whichever backend the other tests run on.
    let dir = tempfile::tempdir().unwrap();
    {
        let sled = mailgate::store::Store::open(&dir.path().join("data")).unwrap();
        common::seed_into(&sled, "lrs", None);
    }
    let server = common::start(dir.path(), common::ON_SLED);
    let before = common::python(
        MAIL_STATE,
        &[server.addr("imap (TLS)").port().to_string(), "fill".into()],
    );
    let (status, _) = server.terminate();
    assert!(status.success());

    let cluster = postgres::TempCluster::start();
    let url = cluster.new_database("copied");
    let copy = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mailgate"))
            .args(["store", "copy", "--data"])
            .arg(dir.path().join("data"))
            .args(["--to", url])
            .output()
            .expect("mailgate store copy")
    };
    let out = copy(&url);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("messages: 3"), "{report}");
    assert!(report.contains("matching their SHA-256: 3"), "{report}");
    let again = copy(&url);
    assert!(
        !again.status.success(),
        "a second copy into a full database is refused"
    );

    let node_dir = tempfile::tempdir().unwrap();
    let node = common::start(
        node_dir.path(),
        &format!("[store]\npostgres_url = \"{url}\"\n"),
    );
    assert!(
        node.initial_password().is_none(),
        "nothing bootstrapped: the copy is there"
    );
    let after = common::python(
        MAIL_STATE,
        &[node.addr("imap (TLS)").port().to_string(), "read".into()],
    );
    assert_eq!(before, after, "what clients see, before and after");
    assert!(after.contains("lucie sees 3"), "{after}");
}

/// With "fill", appends three messages, flags and expunges; then (both ways) prints what a
/// client sees: UIDVALIDITY, each message's UID, flags and MODSEQ, and what the delegate sees.
const MAIL_STATE: &str = r#"
import imaplib, ssl, sys, re
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def login(user, password):
    m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx, timeout=60)
    m.login(user, password)
    return m
m = login("contact@acme.example", "contact-password")
if sys.argv[2] == "fill":
    m.create("Projects")
    for n in range(4):
        typ, data = m.append("INBOX", None, None, f"Subject: copy {n}\r\n\r\nbody {n}\r\n".encode())
        assert typ == "OK", data
    m.select("INBOX")
    m.store("2", "+FLAGS", "(\\Flagged $Work)")
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.close()
typ, data = m.select("INBOX")
typ, validity = m.response("UIDVALIDITY")
print("uidvalidity", validity)
m.send(b"a1 ENABLE CONDSTORE\r\n")
while not m.readline().startswith(b"a1 "):
    pass
typ, data = m.fetch("1:*", "(UID FLAGS MODSEQ BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
for d in data:
    if isinstance(d, tuple):
        print(d[0].decode(), d[1].decode().strip())
typ, folders = m.list()
print(sorted(f.decode() for f in folders))
l = login("lucie@gmail.example", "lucie-password")
typ, data = l.select('"Shared/contact@acme.example/INBOX"')
assert typ == "OK", data
print("lucie sees", data[0].decode())
"#;

/// A Python IMAP client script, reading its output line by line.
struct Script {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    started: Instant,
}

impl Script {
    fn line(&mut self) -> String {
        // The script's own timeouts (60 s) end it if the server never answers.
        let line = self.lines.next();
        assert!(
            self.started.elapsed() < Duration::from_secs(300),
            "the script ran for five minutes"
        );
        line.expect("a line from the script").expect("readable")
    }

    fn finish(mut self) -> std::process::ExitStatus {
        common::wait_with_timeout(&mut self.child, Duration::from_secs(60))
    }
}

fn python(node: &common::TestServer, script: &str) -> Script {
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(node.addr("imap (TLS)").port().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    Script {
        child,
        lines,
        started: Instant::now(),
    }
}

const IDLE_ON_B: &str = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx, timeout=60)
m.login("contact@acme.example", "contact-password-1")
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"0"], data
m.send(b"i1 IDLE\r\n")
assert m.readline().startswith(b"+")
print("idling", flush=True)
print(m.readline().decode().strip(), flush=True)
m.send(b"DONE\r\n")
while not m.readline().startswith(b"i1 OK"):
    pass
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK", data
print(data[0][1].decode().strip(), flush=True)
typ, data = m.append("INBOX", None, None, b"Subject: From B\r\n\r\nappended on B\r\n")
assert typ == "OK", data
print("appended", flush=True)
m.send(b"i2 IDLE\r\n")
assert m.readline().startswith(b"+")
while True:
    line = m.readline()
    if not line or line.startswith(b"* BYE"):
        break
print(line.decode().strip(), flush=True)
"#;

/// Takes the first connection's message up to the end of DATA, marks `<out>.stalled` and
/// never answers; stores every later connection's messages in `<out>` (ACCEPTING_SINK's way).
const STALLING_ONCE_SINK: &str = r#"
import socket, sys, threading
out = sys.argv[1]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
print(srv.getsockname()[1], flush=True)
first = [True]
def serve(conn):
    f = conn.makefile("rb")
    send = lambda s: conn.sendall(s.encode() + b"\r\n")
    send("220 sink.test ESMTP")
    while True:
        line = f.readline().decode().strip()
        if not line:
            return
        verb = line.split(" ")[0].upper()
        if verb == "DATA":
            send("354 go on")
            data = b""
            while (l := f.readline()) != b".\r\n":
                data += l
            if first[0]:
                first[0] = False
                open(out + ".stalled", "w").close()
                threading.Event().wait()
            with open(out, "ab") as o:
                o.write(data)
            send("250 2.0.0 stored")
        elif verb == "QUIT":
            send("221 bye")
            return
        else:
            send("250 ok")
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

const SUBMIT_REMOTE: &str = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=60)
s.login("contact@acme.example", "contact-password-1")
s.sendmail("contact@acme.example", ["someone@far.example"],
           b"From: contact@acme.example\r\nTo: someone@far.example\r\nSubject: Leased\r\n\r\nhi\r\n")
s.quit()
print("submitted")
"#;

const CONCURRENT_WRITES: &str = r#"
import imaplib, smtplib, ssl, sys, threading, re
imap_port, smtp_port = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def imap():
    m = imaplib.IMAP4_SSL("127.0.0.1", imap_port, ssl_context=ctx, timeout=60)
    m.login("contact@acme.example", "contact-password-1")
    return m
uids = []
def appends():
    m = imap()
    for n in range(30):
        typ, data = m.append("INBOX", None, None, f"Subject: append {n}\r\n\r\nx\r\n".encode())
        assert typ == "OK", data
        uids.append(int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1)))
def deliveries():
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as s:
        for n in range(30):
            s.sendmail("someone@elsewhere.example", ["contact@acme.example"],
                       f"Subject: smtp {n}\r\n\r\nx\r\n".encode())
threads = [threading.Thread(target=appends), threading.Thread(target=deliveries)]
[t.start() for t in threads]
[t.join() for t in threads]
assert uids == sorted(uids) and len(set(uids)) == 30, uids
m = imap()
typ, data = m.select("INBOX")
typ, data = m.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
subjects = [d[1].decode().strip() for d in data if isinstance(d, tuple)]
all_uids = [int(re.search(rb"UID (\d+)", d[0]).group(1)) for d in data if isinstance(d, tuple)]
assert len(all_uids) == 60 and len(set(all_uids)) == 60 and all_uids == sorted(all_uids), all_uids
assert sorted(subjects) == sorted([f"Subject: append {n}" for n in range(30)] + [f"Subject: smtp {n}" for n in range(30)]), subjects
print("all 60 there once")
"#;

const STREAM: &str = r#"
import smtplib, sys
n = 0
try:
    while n < 1000:
        with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
            for _ in range(5):
                s.sendmail("someone@elsewhere.example", ["contact@acme.example"],
                           f"Subject: stream {n}\r\n\r\nx\r\n".encode())
                print(f"acked {n}", flush=True)
                n += 1
except Exception as e:
    print("stopped:", e, flush=True)
"#;

const COUNT_STREAM: &str = r#"
import imaplib, ssl, sys, collections
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx, timeout=60)
m.login("contact@acme.example", "contact-password-1")
m.select("INBOX")
typ, data = m.search(None, "SUBJECT", "stream")
found = collections.Counter()
if data[0]:
    typ, data = m.fetch(b",".join(data[0].split()).decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    for d in data:
        if isinstance(d, tuple):
            found[d[1].decode().strip().split()[-1]] += 1
acked = sys.argv[2].split(",")
missing = [n for n in acked if found[n] != 1]
assert not missing, ("acknowledged but not there once", missing, found)
assert all(c == 1 for c in found.values()), found
print(f"every acknowledged message once ({len(found)} stored)")
"#;

const SEND_TO_A: &str = r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60) as s:
    s.sendmail("someone@elsewhere.example", ["contact@acme.example"],
               b"From: someone@elsewhere.example\r\nTo: contact@acme.example\r\n"
               b"Subject: Across nodes\r\n\r\nhello\r\n")
print("sent")
"#;

const READ_ON_A: &str = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx, timeout=60)
m.login("contact@acme.example", "contact-password-1")
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"2"], data
typ, data = m.fetch("2", "(BODY[HEADER.FIELDS (SUBJECT)] FLAGS)")
assert typ == "OK", data
print(data[0][1].decode().strip())
typ, data = m.fetch("2", "(FLAGS)")
assert b"\\Seen" in data[0], data
print("read")
"#;
