//! Invitations end to end: the email goes out through the server's own mail path (the queue
//! to a smarthost for a remote address, the mailbox for a local one), the link is accepted
//! once, and the invited person logs in to IMAP with the access the invitation carried.

mod common;

use common::api::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn token_in(text: &str) -> Option<String> {
    let start = text.rfind("/api/v1/invitations/")? + "/api/v1/invitations/".len();
    let token: String = text[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (token.len() == 64).then_some(token)
}

const IMAP_CHECK: &str = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx)
m.login(sys.argv[3], sys.argv[4])
if sys.argv[5] == "list":
    typ, data = m.list()
    print(b"\n".join(data).decode())
    typ, data = m.myrights('"Shared/contact@acme.example/INBOX"')
    print(data[0].decode())
else:
    m.select("INBOX")
    typ, data = m.search(None, "ALL")
    for n in data[0].split():
        typ, msg = m.fetch(n, "(BODY.PEEK[])")
        print(msg[0][1].decode(errors="replace"))
"#;

fn imap(server: &TestServer, login: &str, password: &str, what: &str) -> String {
    python(
        IMAP_CHECK,
        &[
            "127.0.0.1".into(),
            server.addr("imap (TLS)").port().to_string(),
            login.into(),
            password.into(),
            what.into(),
        ],
    )
}

#[tokio::test]
async fn an_invitation_by_email_ends_in_an_imap_login_with_the_granted_access() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    let outbox = dir.path().join("sink.eml");
    let smarthost = sink(ACCEPTING_SINK, &outbox);
    let server = start(dir.path(), &smarthost.queue_config());
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let org = seeded.org;
    let invite = json!({
        "email": "Sam@Partner.example",
        "role": "collaborator",
        "grants": [{"target": {"mailbox": seeded.contact}, "preset": "read"}],
    });
    let (status, created) = owner
        .post(&format!("/api/v1/orgs/{org}/invitations"), invite)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(
        created.get("token").is_none(),
        "the link goes to the invitee only"
    );
    let (_, pending) = owner.get(&format!("/api/v1/orgs/{org}/invitations")).await;
    assert_eq!(pending["items"][0]["email"], "sam@partner.example");

    // A collaborator may not invite an admin; nobody may grant what they do not hold.
    let lucie = Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let (status, _) = lucie
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "x@y.example", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let token = loop {
        let mail = std::fs::read_to_string(&outbox).unwrap_or_default();
        if let Some(token) = token_in(&mail) {
            assert!(mail.contains("To: <sam@partner.example>"), "{mail}");
            break token;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no invitation mail reached the smarthost"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    drop(smarthost);
    let accept = format!("/api/v1/invitations/{token}/accept");
    let (status, body) = owner.post(&accept, json!({"password": "short"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, accepted) = owner
        .post(&accept, json!({"password": "sam-password-1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    assert_eq!(accepted["created"], true);
    let (status, _) = owner
        .post(&accept, json!({"password": "sam-password-1"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the link works once");

    let listing = imap(&server, "sam@partner.example", "sam-password-1", "list");
    assert!(
        listing.contains("Shared/contact@acme.example/INBOX"),
        "{listing}"
    );
    assert!(
        listing.contains("Shared/contact@acme.example/INBOX lrs"),
        "the read preset: {listing}"
    );

    // Withdrawn invitations disappear.
    let (_, second) = owner
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            json!({"email": "nobody@partner.example", "role": "external"}),
        )
        .await;
    let id = second["id"].as_str().unwrap();
    let (status, _) = owner
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/orgs/{org}/invitations/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, pending) = owner.get(&format!("/api/v1/orgs/{org}/invitations")).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 0, "{pending}");
}

#[tokio::test]
async fn a_local_invitee_gets_the_link_and_later_the_role_change_in_the_mailbox() {
    let (_dir, seeded, server) = seeded_server("lr");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let org = seeded.org;
    let (status, mailbox) = owner
        .post(
            &format!("/api/v1/orgs/{org}/mailboxes"),
            json!({"address": "bob@acme.example", "password": "bob-mailbox-pw"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mailbox}");
    // A login opens one thing: the mailbox's address becomes Bob's login only with a grant
    // on that mailbox (his own); without, the invitation would make a user who can never
    // log in (issue 10).
    let invite = |grants: serde_json::Value| json!({"email": "bob@acme.example", "role": "collaborator", "grants": grants});
    let invitations = format!("/api/v1/orgs/{org}/invitations");
    let (status, body) = owner.post(&invitations, invite(json!([]))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("mailbox"),
        "{body}"
    );
    let own = json!([{"target": {"mailbox": mailbox["id"]}, "preset": "read-write"}]);
    let (status, body) = owner.post(&invitations, invite(own)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mail = imap(&server, "bob@acme.example", "bob-mailbox-pw", "inbox");
    let token = token_in(&mail).unwrap_or_else(|| panic!("no link in {mail}"));
    let (status, accepted) = owner
        .post(
            &format!("/api/v1/invitations/{token}/accept"),
            json!({"password": "bob-user-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    let user = accepted["user_id"].as_u64().unwrap();
    let (status, body) = owner
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{org}/members/{user}"),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mail = imap(&server, "bob@acme.example", "bob-mailbox-pw", "inbox");
    assert!(
        mail.contains("Subject: Your role in Acme is now admin"),
        "{mail}"
    );
    assert!(
        mail.contains("changed from collaborator to admin"),
        "{mail}"
    );
}
