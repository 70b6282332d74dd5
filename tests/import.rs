//! Moving mail in (issue 12), against a real Dovecot (Debian's dovecot-imapd) that the test
//! starts on a loopback port, over implicit TLS with its self-signed certificate: a few
//! thousand messages in Maildirs, with flags, keywords, dates and a special-use folder. The
//! import is cut short by killing mailgate with SIGKILL, resumed after a restart, and then
//! both servers are read back with Python's imaplib: the same messages, byte for byte, with
//! the same flags and dates, in the same order, in every folder, and none twice.

mod common;

use common::api::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

const SOURCE_LOGIN: &str = "old@source.example";
const SOURCE_PASSWORD: &str = "source-password";

/// Messages per source folder (Maildir++ directory, as Dovecot names it on the wire).
const FOLDERS: [(&str, &str, usize); 3] = [
    ("", "INBOX", 2000),
    (".Sent Messages", "Sent Messages", 700),
    (".Projects.2024", "Projects/2024", 400),
];

/// A Dovecot serving one user from Maildirs under `dir`, over IMAPS on a free port.
struct Dovecot {
    child: Child,
    /// IMAPS (implicit TLS).
    port: u16,
    /// IMAP, where Dovecot requires STARTTLS before a login.
    starttls_port: u16,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM: the master stops its login and mail processes with it.
        signal(self.child.id() as i32, "TERM");
        let _ = wait_with_timeout(&mut self.child, Duration::from_secs(20));
    }
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?}: {status}");
}

fn start_dovecot(dir: &Path) -> Dovecot {
    let d = dir.join("dovecot");
    for sub in ["run", "state", "home"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stderr(std::process::Stdio::null()));
    std::fs::write(
        d.join("users"),
        format!("{SOURCE_LOGIN}:{{PLAIN}}{SOURCE_PASSWORD}\n"),
    )
    .unwrap();
    let port = free_port();
    let starttls_port = free_port();
    let d = d.display();
    let conf = format!(
        r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=dovenull gid=dovenull home={d}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox "Sent Messages" {{
    special_use = \Sent
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"#
    );
    let path = dir.join("dovecot/dovecot.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(&path)
        .spawn()
        .expect("dovecot (Debian's dovecot-imapd)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "Dovecot did not listen; see {d}/dovecot.log"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Dovecot {
        child,
        port,
        starttls_port,
    }
}

/// Writes the source mailbox as Maildir++ files: varied sizes, flags (in the file names),
/// keywords (`dovecot-keywords`) and dates (the files' times, Dovecot's INTERNALDATE).
fn fill_maildir(dir: &Path) -> usize {
    let root = dir.join("dovecot/mail").join(SOURCE_LOGIN);
    let mut total = 0;
    for (sub, name, count) in FOLDERS {
        let folder = root.join(sub);
        for part in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(folder.join(part)).unwrap();
        }
        std::fs::write(folder.join("dovecot-keywords"), "0 $Forwarded\n1 Work\n").unwrap();
        for n in 0..count {
            let body = "x".repeat(50 + (n * 37) % 4000) + &"\r\nline".repeat(n % 7);
            let message = format!(
                "From: Sender {n} <s{n}@elsewhere.example>\r\nTo: {SOURCE_LOGIN}\r\n\
                 Subject: {name} message {n}\r\nMessage-ID: <{n}.{}@source.example>\r\n\
                 Date: Mon, 2 Feb 2026 10:00:00 +0000\r\n\r\n{body}\r\n",
                name.replace(' ', "-")
            );
            let flags = match n % 5 {
                0 => "",
                1 => "S",
                2 => "FRS",
                3 => "Sa",
                _ => "DTab",
            };
            let file = folder.join(format!("cur/{}.M{n}P1.source:2,{flags}", 1_700_000_000 + n));
            std::fs::write(&file, message).unwrap();
            let when =
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 3_600 * n as u64);
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(when)
                .unwrap();
            total += 1;
        }
    }
    run(Command::new("chown")
        .args(["-R", "dovenull:dovenull"])
        .arg(dir.join("dovecot")));
    total
}

/// Reads every folder of one side: per folder, in UID order, (INTERNALDATE as seconds,
/// sorted flags without \Recent, SHA-256 of BODY[]).
const READ_BACK: &str = r#"
import imaplib, ssl, sys, hashlib, json, re, time
host, port, login, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
folders = json.loads(sys.argv[5])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
m.login(login, password)
out = {}
for f in folders:
    typ, data = m.select('"%s"' % f, readonly=True)
    assert typ == "OK", (f, data)
    rows = []
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta, body = item
        meta = meta.decode()
        uid = int(re.search(r"UID (\d+)", meta).group(1))
        flags = sorted(x for x in re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split() if x != "\\Recent")
        date = imaplib.Internaldate2tuple(meta.encode())
        rows.append((uid, int(time.mktime(date)), flags, hashlib.sha256(body).hexdigest(), len(body)))
    rows.sort()
    out[f] = [r[1:] for r in rows]
print(json.dumps(out))
"#;

fn read_back(port: u16, login: &str, password: &str, folders: &[&str]) -> Value {
    let out = python(
        READ_BACK,
        &[
            "127.0.0.1".into(),
            port.to_string(),
            login.into(),
            password.into(),
            serde_json::to_string(folders).unwrap(),
        ],
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

async fn wait_for(api: &Api, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Private sources allowed (Dovecot is on loopback); messages over 200 kB refused, as the
/// one in the source's `Big` folder is.
fn config() -> String {
    let imap = EPHEMERAL.replace("[imap]\n", "[imap]\nmax_message_bytes = 200000\n");
    format!("{imap}\n[import]\nallow_private_sources = true\n")
}

/// One message larger than `config()` lets in, alone in a folder of its own.
fn add_a_big_message(dir: &Path) {
    let big = dir.join("dovecot/mail").join(SOURCE_LOGIN).join(".Big");
    for part in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(big.join(part)).unwrap();
    }
    let body = "y".repeat(76) + "\r\n";
    let message = format!("Subject: big\r\n\r\n{}", body.repeat(4000));
    std::fs::write(big.join("cur/1.M1P1.source:2,S"), message).unwrap();
}

#[tokio::test]
async fn a_mailbox_moves_in_from_dovecot_and_an_interrupted_import_resumes_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    // Dovecot's mail and auth processes run as other users: they must reach in.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let total = fill_maildir(&dir);
    add_a_big_message(&dir);
    run(Command::new("chown")
        .args(["-R", "dovenull:dovenull"])
        .arg(dir.join("dovecot")));
    let dovecot = start_dovecot(&dir);
    let seeded = seed(&dir, "lrs");
    let server = start_with(&dir, &config());
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let imports = format!(
        "/api/v1/orgs/{}/mailboxes/{}/imports",
        seeded.org, seeded.contact
    );
    let request = json!({
        "host": "127.0.0.1", "port": dovecot.port, "tls": "tls",
        "accept_invalid_certificates": true,
        "login": SOURCE_LOGIN, "password": SOURCE_PASSWORD,
    });
    let (status, started) = owner.post(&imports, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let one = format!("{imports}/{}", started["id"]);

    // Cut short by SIGKILL once some messages are in, but not all.
    wait_for(&owner, &one, "some progress", |i| {
        i["messages"].as_u64() > Some(300)
    })
    .await;
    server.kill();
    let server = start_with(&dir, &config());
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (_, cut) = owner.get(&one).await;
    assert_eq!(cut["state"], "interrupted", "{cut}");
    assert!((cut["messages"].as_u64().unwrap()) < total as u64, "{cut}");
    let (status, resumed) = owner
        .post(
            &format!("{one}/resume"),
            json!({"password": SOURCE_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resumed}");
    let done = wait_for(&owner, &one, "the end", |i| i["state"] != "running").await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["messages"], total, "{done}");
    assert_eq!(done["failed"], 1, "{done}");
    assert_eq!(done["failures"][0]["folder"], "Big", "{done}");
    let why = done["failures"][0]["reason"].as_str().unwrap_or_default();
    assert!(why.contains("larger than this server's limit"), "{done}");
    assert!(done["bytes"].as_u64() > Some(total as u64 * 100), "{done}");
    assert_eq!(done["folders"].as_array().map(Vec::len), Some(4), "{done}");
    assert!(
        !done.to_string().contains(SOURCE_PASSWORD),
        "never shown: {done}"
    );

    // Both sides, read back: the same messages, flags, dates and bytes, in order.
    let source = read_back(
        dovecot.port,
        SOURCE_LOGIN,
        SOURCE_PASSWORD,
        &["INBOX", "Sent Messages", "Projects/2024"],
    );
    let imap = server.addr("imap (TLS)");
    let here = read_back(
        imap.port(),
        CONTACT,
        CONTACT_PASSWORD,
        &["INBOX", "Sent", "Projects/2024"],
    );
    for (theirs, ours, count) in [
        ("INBOX", "INBOX", FOLDERS[0].2),
        ("Sent Messages", "Sent", FOLDERS[1].2),
        ("Projects/2024", "Projects/2024", FOLDERS[2].2),
    ] {
        let (a, b) = (&source[theirs], &here[ours]);
        assert_eq!(
            a.as_array().map(Vec::len),
            Some(count),
            "{theirs} at the source"
        );
        assert_eq!(a, b, "{theirs} → {ours}");
    }
    let keywords = here["INBOX"].to_string();
    assert!(
        keywords.contains("$Forwarded") && keywords.contains("Work"),
        "keywords kept"
    );
    let log =
        std::fs::read_to_string(server.data.join("../dovecot/dovecot.log")).unwrap_or_default();
    assert!(!log.contains(SOURCE_PASSWORD));
}

/// An mbox upload: what an export wrote reads back the same into another mailbox, folders
/// and flags included; a private source is refused unless the server allows it.
#[tokio::test]
async fn an_exported_mailbox_uploads_into_another_and_private_sources_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lrs");
    let server = start(dir.path(), "");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let base = format!("/api/v1/orgs/{}/mailboxes", seeded.org);
    let mbox = "From a@b.example Thu Nov 26 10:00:00 2026\n\
X-Mailgate-Folder: Archive/2024\nX-Mailgate-Flags: \\Seen $Forwarded\n\
Subject: one\r\n\r\n>From the start\r\n\n\
From c@d.example Fri Nov 27 11:00:00 2026\nSubject: two\nStatus: RO\n\nbody\n\n";
    let url = format!(
        "{}{base}/{}/imports/mbox?folder=Old",
        owner.base, seeded.contact
    );
    let response = owner
        .client
        .post(&url)
        .bearer_auth(owner.token.as_deref().unwrap())
        .header("content-type", "application/mbox")
        .body(mbox)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let done: Value = response.json().await.unwrap();
    assert_eq!(done["messages"], 2, "{done}");
    assert_eq!(done["state"], "done", "{done}");
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls(); m.login("contact@acme.example", "contact-password")
for f in ["Archive/2024", "Old"]:
    ok(m.select('"%s"' % f))
    typ, data = m.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])")
    print(f, data[0][0].decode(), data[0][1])
"#,
    );
    assert!(
        out.contains("Archive/2024") && out.contains("$Forwarded"),
        "{out}"
    );
    assert!(out.contains("26-Nov-2026 10:00:00"), "{out}");
    assert!(
        out.contains(r"b'Subject: one\r\n\r\nFrom the start\r\n'"),
        "{out}"
    );
    assert!(out.contains(r"Old ") && out.contains(r"\Seen"), "{out}");

    let (status, body) = owner
        .post(
            &format!("{base}/{}/imports", seeded.contact),
            json!({"host": "127.0.0.1", "port": 993, "tls": "tls", "login": "x", "password": "y"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("private"),
        "{body}"
    );
}

fn admin(home: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .arg("admin")
        .args(args)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("MAILGATE_ORG")
        .envs(env.iter().copied())
        .output()
        .expect("run mailgate admin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mailgate admin {args:?}: {text}");
    text
}

fn sorted(rows: &Value) -> Vec<String> {
    let mut all: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    all.sort();
    all
}

/// The same moves from the command line: an import from Dovecot (over STARTTLS) followed to
/// its end, and the source's Maildir uploaded into a second mailbox, which then holds the
/// same messages with the same flags, keywords and dates.
#[tokio::test]
async fn the_command_line_imports_from_dovecot_and_uploads_a_maildir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let total = fill_maildir(&dir);
    let dovecot = start_dovecot(&dir);
    seed(&dir, "lrs");
    let server = start_with(&dir, &config());
    let home = dir.join("home");
    let url = format!("http://{}", server.addr("admin (HTTP)"));
    admin(
        &home,
        &["login", OWNER, "--server", &url],
        &[("MAILGATE_PASSWORD", OWNER_PASSWORD)],
    );
    let mailboxes = admin(&home, &["mailboxes", "list"], &[]);
    let list: Value = serde_json::from_str(&mailboxes).unwrap();
    let contact = list["items"][0]["id"].to_string();
    let port = dovecot.starttls_port.to_string();
    // Under a pseudo-terminal (util-linux `script`), as a person runs it: the progress bar
    // is drawn there, not into a pipe.
    let command = format!(
        "{} admin mailboxes import {contact} --host 127.0.0.1 --port {port} --tls starttls \
         --login {SOURCE_LOGIN} --accept-invalid-certificates",
        env!("CARGO_BIN_EXE_mailgate")
    );
    let run = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("XDG_CONFIG_HOME", &home)
        .env_remove("MAILGATE_ORG")
        .env("MAILGATE_SOURCE_PASSWORD", SOURCE_PASSWORD)
        .output()
        .expect("script (util-linux)");
    let out = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(run.status.success(), "{out}");
    assert!(
        out.contains(" messages · ") && out.contains("msg/s") && out.contains("failed"),
        "the progress bar, with messages, bytes and rate: {out}"
    );
    assert!(
        out.contains("\"done\"") && out.contains(&format!("\"messages\": {total}")),
        "{out}"
    );

    let created = admin(
        &home,
        &[
            "mailboxes",
            "create",
            "copy@acme.example",
            "--password",
            "copy-password-1234",
        ],
        &[],
    );
    let copy: Value = serde_json::from_str(&created).unwrap();
    let maildir = dir.join("dovecot/mail").join(SOURCE_LOGIN);
    let out = admin(
        &home,
        &[
            "mailboxes",
            "import",
            &copy["id"].to_string(),
            "--maildir",
            maildir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.contains(&format!("\"messages\": {total}")), "{out}");

    let imap = server.addr("imap (TLS)");
    let imported = read_back(
        imap.port(),
        CONTACT,
        CONTACT_PASSWORD,
        &["INBOX", "Sent", "Projects/2024"],
    );
    let uploaded = read_back(
        imap.port(),
        "copy@acme.example",
        "copy-password-1234",
        &["INBOX", "Sent Messages", "Projects/2024"],
    );
    for (a, b) in [
        ("INBOX", "INBOX"),
        ("Sent", "Sent Messages"),
        ("Projects/2024", "Projects/2024"),
    ] {
        assert_eq!(sorted(&imported[a]), sorted(&uploaded[b]), "{a} and {b}");
    }
}
