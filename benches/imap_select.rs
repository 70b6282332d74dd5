//! SELECT of a folder with 100,000 messages and `UID FETCH 1:* (UID FLAGS)` on it, through the
//! real session state machine: time, and the memory the session keeps per message (counted by
//! a global allocator). Goals (issue 3): under 100 ms, under 64 bytes a message.
//!
//! Run: `cargo bench --bench imap_select` (MESSAGES=… to change the folder's size).

use mailgate::config::Config;
use mailgate::imap::Session;
use mailgate::model::*;
use mailgate::services::Services;
use mailgate::store::{AppendMessage, Flags, NewMailbox, NewUser, Store};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn fill(store: &Store, n: usize) -> MailboxId {
    let hash = mailgate::password::hash("bench-password").unwrap();
    let owner = store
        .create_user(NewUser {
            login: "owner@bench.test".into(),
            display_name: String::new(),
            password: hash.clone(),
            must_change_password: false,
            own_mailbox: None,
        })
        .unwrap();
    let org = store.create_organization("Bench", owner.id).unwrap();
    store.add_domain(org.id, "bench.test").unwrap();
    let m = store
        .create_mailbox(NewMailbox {
            org: org.id,
            address: "box@bench.test".into(),
            display_name: String::new(),
            password: hash,
            quota_bytes: 0,
            seen: SeenPolicy::Shared,
        })
        .unwrap();
    let inbox = store.folder_by_name(m.id, "INBOX").unwrap().unwrap();
    let raw = b"From: a@b.example\r\nSubject: bench\r\n\r\nbody\r\n";
    for i in 0..n {
        let flags = if i % 3 == 0 {
            Flags::SEEN
        } else {
            Flags::default()
        };
        let meta = AppendMessage {
            flags,
            ..Default::default()
        };
        store.append(m.id, inbox.id, raw, meta).unwrap();
    }
    store.flush_blocking().unwrap();
    m.id
}

fn main() {
    let n: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = Instant::now();
    fill(&store, n);
    eprintln!("filled {n} messages in {:.1?}", t.elapsed());
    let services = Arc::new(Services::new(Config::default(), store).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut session = Session::new(services, "127.0.0.1:1".parse().unwrap(), true);
        session
            .feed(b"a LOGIN box@bench.test bench-password\r\n")
            .await;
        let before = live();
        let t = Instant::now();
        let out = session.feed(b"b SELECT INBOX\r\n").await;
        let select = t.elapsed();
        drop(out);
        let kept = live() - before;
        assert!(session_ok(&session));
        let t = Instant::now();
        let out = session.feed(b"c UID FETCH 1:* (UID FLAGS)\r\n").await;
        let fetch = t.elapsed();
        let lines = out.bytes.split(|b| *b == b'\n').count() - 1;
        assert_eq!(lines, n + 1, "one FETCH line a message and the tagged OK");
        println!("messages: {n}");
        println!("SELECT INBOX: {:.1} ms", select.as_secs_f64() * 1e3);
        println!(
            "UID FETCH 1:* (UID FLAGS): {:.1} ms ({} bytes of response)",
            fetch.as_secs_f64() * 1e3,
            out.bytes.len()
        );
        println!(
            "session memory after SELECT: {kept} bytes = {:.1} bytes a message",
            kept as f64 / n as f64
        );
    });
}

fn session_ok(session: &Session) -> bool {
    !session.is_logged_out()
}
