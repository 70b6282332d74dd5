//! Starts the real `mailgate` binary on ephemeral loopback ports with its own data directory,
//! as a client would meet it. Each test owns its server, so tests run in parallel.

#![allow(dead_code)]

pub mod api;
pub mod pebble;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Every listener on port 0: the kernel picks free ports, the server prints them.
pub const EPHEMERAL: &str = r#"
hostname = "mail.test"
[imap]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
[smtp]
listen = ["127.0.0.1:0"]
[submission]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
[admin]
listen = ["127.0.0.1:0"]
# Domains added through the API take mail at once here; tests/internet.rs turns the
# ownership check (the default) back on.
verify_domains = false
[limits]
shutdown_grace_seconds = 2
"#;

pub struct TestServer {
    child: Child,
    /// "imap (STARTTLS)" → address, as the server printed them.
    pub addrs: HashMap<String, SocketAddr>,
    /// What the server printed before it was ready (the first-start banner among it).
    pub banner: Vec<String>,
    pub data: PathBuf,
    lines: mpsc::Receiver<String>,
}

/// With `MAILGATE_TEST_POSTGRES` set (a server's URL without a database,
/// `postgres://mailgate@127.0.0.1:5432`), every test server and seeded store keeps its state
/// in a database of its own there (named after its data directory), so that the integration
/// suites run on PostgreSQL too; unset, on sled in the data directory.
pub fn postgres_url(data: &Path) -> Option<String> {
    let base = std::env::var("MAILGATE_TEST_POSTGRES").ok()?;
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    let name = format!("t{:016x}", hasher.finish());
    let out = Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .expect("psql (Debian's postgresql-client)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("already exists"),
        "creating {name}: {err}"
    );
    Some(format!("{base}/{name}"))
}

/// A configuration line that keeps a server on sled whatever the tests run on: for a test of
/// sled itself (`mailgate store copy` reads one).
pub const ON_SLED: &str = "# the tests keep this server on sled";

/// Whether the tests run on PostgreSQL (`MAILGATE_TEST_POSTGRES`).
pub fn on_postgres() -> bool {
    std::env::var_os("MAILGATE_TEST_POSTGRES").is_some()
}

/// The result of one SQL query (`psql -At`) on the database of the data directory `data`.
pub fn postgres_query(data: &Path, sql: &str) -> String {
    psql(&postgres_url(data).expect("MAILGATE_TEST_POSTGRES"), sql)
}

/// The result of one SQL query (`psql -At`) on the database at `url`.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What `probe` finds, once it finds something: asked every 100 ms for up to `limit`, then a
/// failure naming `what` was awaited.
pub fn eventually<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {} s",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The store of the data directory `data`, on the backend the tests run on.
pub fn open_store(data: &Path) -> mailgate::store::Store {
    let settings = mailgate::config::StoreConfig {
        postgres_url: postgres_url(data),
        ..Default::default()
    };
    mailgate::store::Store::open_with(data, &settings).expect("open store")
}

/// Starts a server with `EPHEMERAL` plus `extra` configuration, data in `dir/data`.
pub fn start(dir: &Path, extra: &str) -> TestServer {
    start_with(dir, &format!("{EPHEMERAL}\n{extra}"))
}

/// Starts a server with exactly this configuration, data in `dir/data`.
pub fn start_with(dir: &Path, text: &str) -> TestServer {
    start_logging(dir, text, Stdio::inherit())
}

/// As `start_with`, with the server's log (standard error, `RUST_LOG=warn`) going to `log`.
pub fn start_logging(dir: &Path, text: &str, log: impl Into<Stdio>) -> TestServer {
    let config = dir.join("mailgate.toml");
    let data = dir.join("data");
    let text = match postgres_url(&data) {
        Some(url) if !text.contains("postgres_url") && !text.contains(ON_SLED) => {
            format!("{text}\n[store]\npostgres_url = \"{url}\"\n")
        }
        _ => text.to_string(),
    };
    std::fs::write(&config, text).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start mailgate");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut server = TestServer {
        child,
        addrs: HashMap::new(),
        banner: Vec::new(),
        data,
        lines,
    };
    server.wait_ready();
    server
}

impl TestServer {
    fn wait_ready(&mut self) {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("mailgate did not become ready within 60 s");
            if let Some(rest) = line.strip_prefix("mailgate: ")
                && let Some((kind, addr)) = rest.split_once(" listening on ")
            {
                self.addrs
                    .insert(kind.to_string(), addr.parse().expect("address"));
            }
            let ready = line.starts_with("mailgate: data in ");
            self.banner.push(line);
            if ready {
                return;
            }
        }
    }

    pub fn addr(&self, kind: &str) -> SocketAddr {
        *self
            .addrs
            .get(kind)
            .unwrap_or_else(|| panic!("no {kind} listener in {:?}", self.addrs))
    }

    /// The initial owner password from the first-start banner.
    pub fn initial_password(&self) -> Option<String> {
        self.banner.iter().find_map(|l| {
            l.trim()
                .strip_prefix("password:")
                .map(|p| p.trim().to_string())
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM and waits for the process; returns its exit status and the rest of its
    /// standard output.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        signal(self.pid(), "TERM");
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(30));
        let rest = self.lines.try_iter().collect();
        (status, rest)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: i32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process did not exit in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a Python 3 script with arguments; returns its standard output, failing the test with
/// its standard error when it exits non-zero. Python is a client we did not write.
pub fn python(script: &str, args: &[String]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `seed` made: an organization with a mailbox, an alias, and a delegate.
pub struct Seeded {
    pub org: u64,
    pub contact: u64,
    pub lucie: u64,
    pub grant: u64,
}

pub const CONTACT: &str = "contact@acme.example";
pub const CONTACT_PASSWORD: &str = "contact-password";
pub const LUCIE: &str = "lucie@gmail.example";
pub const LUCIE_PASSWORD: &str = "lucie-password";
pub const OWNER: &str = "owner@acme.example";
pub const OWNER_PASSWORD: &str = "owner-password";

/// A server with no extra configuration on a store filled by `seed(rights)`: the temporary
/// directory (the caller keeps it alive), what was seeded, and the server.
pub fn seeded_server(rights: &str) -> (tempfile::TempDir, Seeded, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), rights);
    let server = start(dir.path(), "");
    (dir, seeded, server)
}

/// Fills `dir/data` before the server starts: acme.example with `contact@` (alias `hello@`),
/// its owner, and Lucie, a collaborator granted `rights` (and `send`) on `contact@`.
pub fn seed(dir: &Path, rights: &str) -> Seeded {
    seed_with_send(dir, rights, None)
}

/// As `seed`, with Lucie's grant also letting her send as `contact@` (or on its behalf).
pub fn seed_with_send(dir: &Path, rights: &str, send: Option<mailgate::model::SendMode>) -> Seeded {
    seed_into(&open_store(&dir.join("data")), rights, send)
}

/// What `seed_with_send` writes, into `store`.
pub fn seed_into(
    store: &mailgate::store::Store,
    rights: &str,
    send: Option<mailgate::model::SendMode>,
) -> Seeded {
    use mailgate::model::*;
    use mailgate::store::{NewMailbox, NewUser};
    let user = |login: &str, password: &str| {
        store
            .create_user(NewUser {
                login: login.into(),
                display_name: String::new(),
                password: mailgate::password::hash(password).unwrap(),
                must_change_password: false,
                own_mailbox: None,
            })
            .unwrap()
    };
    let owner = user(OWNER, OWNER_PASSWORD);
    let lucie = user(LUCIE, LUCIE_PASSWORD);
    let org = store.create_organization("Acme", owner.id).unwrap();
    store
        .set_member(org.id, lucie.id, Role::Collaborator)
        .unwrap();
    store.add_domain(org.id, "acme.example").unwrap();
    // Its DKIM keys, as the admin API makes them with a domain: submitted mail is signed.
    let keys = mailgate::dkim::make_keys().unwrap();
    store.add_dkim_keys("acme.example", keys).unwrap();
    let contact = store
        .create_mailbox(NewMailbox {
            org: org.id,
            address: CONTACT.into(),
            display_name: "Contact".into(),
            password: mailgate::password::hash(CONTACT_PASSWORD).unwrap(),
            quota_bytes: 0,
            seen: SeenPolicy::Shared,
        })
        .unwrap();
    store
        .create_alias(org.id, "hello@acme.example", contact.id)
        .unwrap();
    let grant = store
        .add_grant(NewGrant {
            org: org.id,
            grantee: Grantee::User(lucie.id),
            target: GrantTarget::Mailbox(contact.id),
            rights: Rights::parse(rights).unwrap(),
            send,
        })
        .unwrap();
    store.flush_blocking().unwrap();
    Seeded {
        org: org.id.0,
        contact: contact.id.0,
        lucie: lucie.id.0,
        grant: grant.id.0,
    }
}

/// Changes a seeded mailbox in the data directory before the server starts.
pub fn adjust_mailbox(
    dir: &Path,
    address: &str,
    change: impl FnOnce(&mut mailgate::model::Mailbox),
) {
    let store = open_store(&dir.join("data"));
    let mailbox = store
        .mailbox_by_address(address)
        .expect("read store")
        .expect("the mailbox exists");
    store
        .update_mailbox(mailbox.id, change)
        .expect("update mailbox");
    store.flush_blocking().expect("flush");
}

pub const BETA_OWNER: &str = "boss@beta.example";
pub const BETA_OWNER_PASSWORD: &str = "beta-owner-password";

/// A second organization, Beta (beta.example, mailbox info@, owner boss@beta.example), for
/// tenant isolation and partnerships. Returns (org id, mailbox id).
pub fn seed_beta(dir: &Path) -> (u64, u64) {
    use mailgate::model::*;
    use mailgate::store::{NewMailbox, NewUser};
    let store = open_store(&dir.join("data"));
    let owner = store
        .create_user(NewUser {
            login: BETA_OWNER.into(),
            display_name: String::new(),
            password: mailgate::password::hash(BETA_OWNER_PASSWORD).unwrap(),
            must_change_password: false,
            own_mailbox: None,
        })
        .unwrap();
    let org = store.create_organization("Beta", owner.id).unwrap();
    store.add_domain(org.id, "beta.example").unwrap();
    let keys = mailgate::dkim::make_keys().unwrap();
    store.add_dkim_keys("beta.example", keys).unwrap();
    let mailbox = store
        .create_mailbox(NewMailbox {
            org: org.id,
            address: "info@beta.example".into(),
            display_name: String::new(),
            password: mailgate::password::hash("info-password").unwrap(),
            quota_bytes: 0,
            seen: SeenPolicy::Shared,
        })
        .unwrap();
    store.flush_blocking().unwrap();
    (org.id.0, mailbox.id.0)
}

/// A smarthost that takes everything and appends it to the file given.
pub const ACCEPTING_SINK: &str = r#"
import socket, sys, threading
out = sys.argv[1]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
print(srv.getsockname()[1], flush=True)
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

/// A smarthost written in Python (`script` prints its port, then serves), writing what it
/// accepts to `out`; stopped when dropped.
pub struct Sink {
    child: Child,
    pub port: u16,
}

pub fn sink(script: &str, out: &Path) -> Sink {
    sink_with(script, out, &[])
}

/// A sink given more arguments after `out`.
pub fn sink_with(script: &str, out: &Path, args: &[&std::ffi::OsStr]) -> Sink {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(out)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed (.ci/run installs it)");
    let mut port = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("the sink prints its port");
    let port = port.trim().parse().expect("a port number");
    Sink { child, port }
}

impl Sink {
    /// The `[queue]` configuration that sends all outbound mail here, in clear.
    pub fn queue_config(&self) -> String {
        format!(
            "[queue]\nsmarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n",
            self.port
        )
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Shared Python helpers: connect over implicit TLS, run a command, fail loudly.
pub const IMAP_PRELUDE: &str = r#"
import imaplib, ssl, sys, time, base64
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def tls():
    return imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
def ok(result, what=""):
    typ, data = result
    assert typ == "OK", (what, typ, data)
    return data
def raw(m, command):
    """Sends one command as is; returns (untagged lines, tagged line) as text."""
    tag = m._new_tag().decode()
    m.send(f"{tag} {command}\r\n".encode())
    lines = []
    while True:
        line = m.readline().decode()
        if line.startswith(tag + " "):
            return lines, line.strip()
        lines.append(line.strip())
def no(call, expect):
    try:
        typ, data = call()
    except imaplib.IMAP4.error as e:
        assert expect in str(e), ("expected", expect, "got", str(e))
        return
    assert typ == "NO" and expect in str(data), ("expected NO", expect, "got", typ, data)
"#;

/// Runs `script` after `IMAP_PRELUDE`, against the listener `kind`.
pub fn imap_script(server: &TestServer, kind: &str, script: &str) -> String {
    let addr = server.addr(kind);
    python(
        &format!("{IMAP_PRELUDE}\n{script}"),
        &[addr.ip().to_string(), addr.port().to_string()],
    )
}

/// Lucie's session IDLE in the shared `contact@acme.example` INBOX, held by Python's
/// imaplib: for the tests that end it from outside (a revocation, a disabled member, a
/// member who leaves, a grant's end). `start` returns once the session is idling.
pub struct IdleDelegate {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl IdleDelegate {
    pub fn start(server: &TestServer) -> IdleDelegate {
        let imap = server.addr("imap (TLS)");
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(
                r#"
import imaplib, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx)
m.login("lucie@gmail.example", "lucie-password")
typ, data = m.select('"Shared/contact@acme.example/INBOX"')
assert typ == "OK", data
m.send(b"i1 IDLE\r\n")
assert m.readline().startswith(b"+")
print("idling", flush=True)
# A generous wait: what ends the session must come; how soon is reported, not asserted.
m.sock.settimeout(120)
try:
    line = m.readline().decode().strip()
except Exception as e:
    line = "error " + repr(e)
print(time.time(), line, flush=True)
sys.stdin.readline()
"#,
            )
            .args([imap.ip().to_string(), imap.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(first, "idling");
        IdleDelegate { child, lines }
    }

    /// The next line the server sent, and when it came (seconds since the epoch).
    pub fn next_line(mut self) -> (f64, String) {
        use std::io::Write;
        let line = self.lines.next().and_then(Result::ok).unwrap_or_default();
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"go\n");
        }
        let _ = self.child.wait();
        let (at, text) = line.split_once(' ').unwrap_or(("0", &line));
        (at.parse().unwrap_or(0.0), text.to_string())
    }
}

/// The tests' authoritative DNS server (see its header for the zone file's lines).
const DNS: &str = include_str!("dns.py");

/// A DNS server for the test (dnspython) and its zone file.
pub struct Dns {
    pub server: Sink,
    pub zone: PathBuf,
}

impl Dns {
    pub fn start(dir: &Path) -> Dns {
        Dns::serving(dir, "", &[])
    }

    /// As `start`, with `records` in the zone and each question written to `questions`
    /// ("MX remote.test").
    pub fn with_records(dir: &Path, records: &[&str], questions: &Path) -> Dns {
        Dns::serving(dir, &(records.join("\n") + "\n"), &[questions.as_os_str()])
    }

    fn serving(dir: &Path, zone_text: &str, args: &[&std::ffi::OsStr]) -> Dns {
        let zone = dir.join("zone.txt");
        std::fs::write(&zone, zone_text).unwrap();
        Dns {
            server: sink_with(DNS, &zone, args),
            zone,
        }
    }

    /// Adds a record (`name TYPE value`) to the zone.
    pub fn add(&self, record: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.zone)
            .unwrap();
        writeln!(f, "{record}").unwrap();
    }

    /// Publishes every key the API lists for the domain.
    pub fn publish(&self, keys: &serde_json::Value) {
        for key in keys.as_array().unwrap() {
            let (name, value) = (&key["dns_name"], &key["dns_value"]);
            self.add(&format!(
                "{} TXT {}",
                name.as_str().unwrap(),
                value.as_str().unwrap()
            ));
        }
    }
}

/// A port free now (the kernel's pick), for a peer that must be told its port before it
/// starts; never the same one twice in a test process (the kernel may hand a port just
/// released out again, and two listeners of one peer would then clash).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
