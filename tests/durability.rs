//! A crash never loses an acknowledged change: a writer process acknowledges each change only
//! after the store flushed it, is killed with SIGKILL mid-stream, and the reopened store holds
//! every acknowledged change exactly once.

use mailgate::model::*;
use mailgate::store::{AppendMessage, NewMailbox, NewUser, Store};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "MAILGATE_CRASH_WRITER_DIR";

fn message(i: usize) -> Vec<u8> {
    format!(
        "Message-ID: <{i}@crash.test>\r\nSubject: number {i}\r\n\r\n{}\r\n",
        "x".repeat(i * 37 % 2000)
    )
    .into_bytes()
}

/// Opens the store and makes sure the organization, domain and mailbox exist.
fn prepare(dir: &Path) -> (Store, MailboxId, FolderId) {
    let store = Store::open(dir).expect("open store");
    if let Some(m) = store.mailbox_by_address("box@crash.test").unwrap() {
        let inbox = store.folder_by_name(m.id, "INBOX").unwrap().unwrap();
        return (store, m.id, inbox.id);
    }
    let owner = store
        .create_user(NewUser {
            login: "owner@crash.test".into(),
            display_name: String::new(),
            password: PasswordHash("x".into()),
            must_change_password: false,
            own_mailbox: None,
        })
        .unwrap();
    let org = store.create_organization("Crash", owner.id).unwrap();
    store.add_domain(org.id, "crash.test").unwrap();
    let m = store
        .create_mailbox(NewMailbox {
            org: org.id,
            address: "box@crash.test".into(),
            display_name: String::new(),
            password: PasswordHash("x".into()),
            quota_bytes: 0,
            seen: SeenPolicy::Shared,
        })
        .unwrap();
    store.flush_blocking().unwrap();
    let inbox = store.folder_by_name(m.id, "INBOX").unwrap().unwrap();
    (store, m.id, inbox.id)
}

/// The child half of `sigkill_loses_nothing_acknowledged`: runs only when that test starts
/// this binary again with `CHILD_ENV` set, and writes until it is killed.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let start: usize = std::env::var("MAILGATE_CRASH_WRITER_START")
        .unwrap()
        .parse()
        .unwrap();
    let (store, mailbox, inbox) = prepare(Path::new(&dir));
    let mut out = std::io::stdout();
    for i in start.. {
        store
            .append(mailbox, inbox, &message(i), AppendMessage::default())
            .unwrap();
        if i % 7 == 0 {
            store
                .create_user(NewUser {
                    login: format!("user{i}@crash.test"),
                    display_name: String::new(),
                    password: PasswordHash("x".into()),
                    must_change_password: false,
                    own_mailbox: None,
                })
                .unwrap();
        }
        store.flush_blocking().unwrap();
        writeln!(out, "acked {i}").unwrap();
        out.flush().unwrap();
    }
}

/// Runs the writer from `start`, kills it after `acks` acknowledgements; returns the last
/// acknowledged number.
fn run_and_kill(dir: &Path, start: usize, acks: usize) -> usize {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env("MAILGATE_CRASH_WRITER_START", start.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut last = None;
    let mut seen = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            last = Some(n.parse::<usize>().unwrap());
            seen += 1;
            if seen == acks {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    child.wait().unwrap();
    last.expect("the writer acknowledged nothing")
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut next = 0;
    let mut acknowledged = Vec::new();
    for acks in [25, 60, 40] {
        let last = run_and_kill(dir.path(), next, acks);
        acknowledged.extend(next..=last);
        let (store, mailbox, inbox) = prepare(dir.path());
        let records = store.messages(mailbox, inbox).unwrap();
        let mut ids = Vec::new();
        for record in &records {
            let summary = store.summary(&record.blob).unwrap();
            let id = summary.envelope.message_id.unwrap();
            let raw = store.read_message(&record.blob).unwrap();
            ids.push(id.clone());
            let n: usize = id
                .trim_matches(['<', '>'])
                .split('@')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(raw, message(n), "message {n} is whole");
        }
        for &i in &acknowledged {
            let id = format!("<{i}@crash.test>");
            let copies = ids.iter().filter(|x| **x == id).count();
            assert_eq!(copies, 1, "acknowledged message {i} is there exactly once");
            if i % 7 == 0 {
                let login = format!("user{i}@crash.test");
                assert!(
                    store.user_by_login(&login).unwrap().is_some(),
                    "{login} kept"
                );
            }
        }
        // Whatever was written after the last acknowledgement may or may not be there;
        // the next round continues after it.
        next = last + 1000;
        drop(store);
    }
}
