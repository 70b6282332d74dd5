//! Sessions (IMAP and SMTP) on a throw-away store with one mailbox, driven without sockets:
//! for the unit tests and the fuzz targets, which must exercise the same code the network does.

use crate::config::Config;
use crate::imap::{Output, Session};
use crate::model::*;
use crate::services::Services;
use crate::store::{AppendMessage, NewMailbox, NewUser, Store};
use std::path::PathBuf;
use std::sync::Arc;

pub const ADDRESS: &str = "box@harness.test";
pub const PASSWORD: &str = "harness-password";

/// A store in a temporary directory with `box@harness.test` (two messages in INBOX).
pub struct Harness {
    pub services: Arc<Services>,
    /// The same store as sled's, for tests that reach its files.
    pub sled: crate::store::SledStore,
    dir: PathBuf,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(|_| {})
    }

    /// A harness whose configuration `adjust` changes first.
    pub fn with_config(adjust: impl FnOnce(&mut Config)) -> Harness {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mailgate-harness-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sled = crate::store::SledStore::open(&dir).expect("harness store");
        let store = Store::of_sled(sled.clone());
        seed(&store);
        let mut config = Config::default();
        config.imap.max_line_bytes = 4096;
        config.imap.max_message_bytes = 64 * 1024;
        // Sessions here run without a network: no DNS questions for SPF and DMARC.
        config.inbound.checks = false;
        adjust(&mut config);
        let services = Arc::new(Services::new(config, store).expect("harness services"));
        Harness {
            services,
            sled,
            dir,
        }
    }

    /// The mailbox `ADDRESS` names.
    pub fn mailbox(&self) -> crate::model::MailboxId {
        match self.services.store.resolve_address(ADDRESS) {
            Ok(Some(crate::store::AddressEntry::Mailbox(mailbox))) => mailbox,
            other => panic!("the harness mailbox: {:?}", other.map(|_| ())),
        }
    }

    /// A session as if over TLS from 192.0.2.1.
    pub fn session(&self) -> Session {
        Session::new(
            self.services.clone(),
            "192.0.2.1:50000".parse().unwrap_or_else(|_| unreachable!()),
            true,
        )
    }
}

impl Harness {
    /// For the fuzz target and its corpus: the first input byte picks the listener (odd:
    /// submission), so that one corpus covers both.
    pub fn smtp_session_for(&self, data: &[u8]) -> crate::smtp::Session {
        let submission = data.first().is_some_and(|b| b & 1 == 1);
        let mode = if submission {
            crate::smtp::Mode::Submission
        } else {
            crate::smtp::Mode::Inbound
        };
        self.smtp_session(mode)
    }

    /// An SMTP session of `mode`, as if over TLS from 192.0.2.1.
    pub fn smtp_session(&self, mode: crate::smtp::Mode) -> crate::smtp::Session {
        let peer = "192.0.2.1:50000".parse().unwrap_or_else(|_| unreachable!());
        crate::smtp::Session::new(self.services.clone(), peer, true, mode)
    }
}

/// Feeds `input` to an inbound SMTP session after a greeting and an open transaction to the
/// harness mailbox, as the fuzz target does; returns what the session answered to `input`.
pub async fn feed_smtp_transaction(session: &mut crate::smtp::Session, input: &[u8]) -> Vec<u8> {
    let prelude = format!("EHLO fuzz.test\r\nMAIL FROM:<a@fuzz.test>\r\nRCPT TO:<{ADDRESS}>\r\n");
    let _ = session.feed(prelude.as_bytes()).await;
    session.feed(input).await.bytes
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn seed(store: &Store) {
    let hash = crate::password::hash(PASSWORD).expect("hash");
    let owner = store
        .create_user(NewUser {
            login: "owner@harness.test".into(),
            display_name: String::new(),
            password: hash.clone(),
            must_change_password: false,
            own_mailbox: None,
        })
        .expect("user");
    let org = store.create_organization("Harness", owner.id).expect("org");
    store.add_domain(org.id, "harness.test").expect("domain");
    let m = store
        .create_mailbox(NewMailbox {
            org: org.id,
            address: ADDRESS.into(),
            display_name: String::new(),
            password: hash,
            quota_bytes: 0,
            seen: SeenPolicy::Shared,
        })
        .expect("mailbox");
    let inbox = store
        .folder_by_name(m.id, "INBOX")
        .ok()
        .flatten()
        .expect("inbox");
    for raw in [
        &b"From: a@b.example\r\nSubject: one\r\n\r\nfirst\r\n"[..],
        b"Content-Type: multipart/mixed; boundary=x\r\nSubject: two\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--x--\r\n",
    ] {
        store.append(m.id, inbox.id, raw, AppendMessage::default()).expect("append");
    }
}

/// For the IMAP fuzz target and its corpus: the first byte picks the starting state (odd:
/// logged in; even: INBOX selected), then the input goes to the session as it is.
pub async fn feed_from_state(session: &mut Session, input: &[u8]) -> Vec<u8> {
    if input.first().is_some_and(|b| b & 1 == 1) {
        let login = format!("p1 LOGIN {ADDRESS} {PASSWORD}\r\n");
        let _: Output = session.feed(login.as_bytes()).await;
        session.feed(input).await.bytes
    } else {
        feed_selected(session, input).await
    }
}

/// Feeds `input` to a session that is logged in and has INBOX selected; returns everything
/// the session answered to `input`.
pub async fn feed_selected(session: &mut Session, input: &[u8]) -> Vec<u8> {
    let prelude = format!("p1 LOGIN {ADDRESS} {PASSWORD}\r\np2 SELECT INBOX\r\n");
    let _: Output = session.feed(prelude.as_bytes()).await;
    session.feed(input).await.bytes
}

/// The bearer token of the harness owner, for the admin API's fuzz target and its corpus.
pub const OWNER_TOKEN: &str = "harness-owner-token";

impl Harness {
    /// For the admin API's fuzz target and its corpus: the first byte picks an endpoint that
    /// takes a JSON body (path parameters name the harness's organization and mailbox), the
    /// rest is the body, sent with the owner's token. Returns the status and the body.
    pub async fn admin_request(&self, data: &[u8]) -> (u16, Vec<u8>) {
        use tower::ServiceExt;
        let store = &self.services.store;
        let owner = store.user_by_login("owner@harness.test").ok().flatten();
        let hash = crate::admin::token_hash(OWNER_TOKEN);
        if let (Some(owner), Ok(None)) = (owner, store.api_token(&hash)) {
            let _ = store.create_api_token(crate::store::ApiToken {
                token_hash: hash,
                user: owner.id,
                kind: crate::store::TokenKind::Session,
                created: now_millis(),
                expires: None,
                password_change_only: false,
            });
        }
        let with_body: Vec<_> = crate::admin::routes::endpoints()
            .into_iter()
            .filter(|e| e.body)
            .collect();
        let Some((first, body)) = data.split_first() else {
            return (0, Vec::new());
        };
        let endpoint = &with_body[usize::from(*first) % with_body.len()];
        let org = store
            .organizations()
            .ok()
            .and_then(|o| o.first().map(|o| o.id.0));
        let mailbox = store.mailbox_by_address(ADDRESS).ok().flatten();
        let path = endpoint
            .path
            .replace("{org}", &org.unwrap_or(1).to_string())
            .replace("{id}", &mailbox.map_or(1, |m| m.id.0).to_string())
            .replace("{name}", "fuzz")
            .replace("{address}", ADDRESS)
            .replace("{token}", "00");
        let request = axum::http::Request::builder()
            .method(endpoint.method.to_ascii_uppercase().as_str())
            .uri(path)
            .header("authorization", format!("Bearer {OWNER_TOKEN}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_vec()));
        let Ok(request) = request else {
            return (0, Vec::new());
        };
        let router = crate::admin::routes::build(self.services.clone());
        let Ok(response) = router.oneshot(request).await;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (status, bytes)
    }
}

/// The admin API fuzz target's oracle: no answer is a 500, and every refusal is JSON.
pub fn check_admin_answer(status: u16, body: &[u8]) {
    assert_ne!(status, 500, "{}", String::from_utf8_lossy(body));
    if (400..500).contains(&status) {
        let json: Result<serde_json::Value, _> = serde_json::from_slice(body);
        assert!(
            json.is_ok_and(|v| v["error"].is_string()),
            "{status}: {}",
            String::from_utf8_lossy(body)
        );
    }
}
