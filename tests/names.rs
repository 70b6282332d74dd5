//! Names and the login namespace (issue 10): one address type for everything created, a login
//! name that opens exactly one thing, one password rule, no empty grants, and an invitation
//! whose mail cannot be delivered that still works. Driven with reqwest and Python's imaplib.

mod common;

use common::api::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// Logs in over IMAPS with imaplib and prints `OK <folders>` or `NO <reason>`.
const IMAP_LOGIN: &str = r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx)
try:
    m.login(sys.argv[3], sys.argv[4])
except imaplib.IMAP4.error as e:
    print("NO", e)
    sys.exit(0)
typ, data = m.list()
print("OK", b" ".join(data).decode())
m.logout()
"#;

fn imap_login(server: &TestServer, login: &str, password: &str) -> String {
    let port = server.addr("imap (TLS)").port().to_string();
    let args = ["127.0.0.1".into(), port, login.into(), password.into()];
    python(IMAP_LOGIN, &args)
}

#[tokio::test]
async fn addresses_are_checked_once_with_a_reason() {
    let (_dir, seeded, server) = seeded_server("lr");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let mailboxes = format!("/api/v1/orgs/{}/mailboxes", seeded.org);
    for (address, reason) in [
        ("a@b@acme.example", "'@'"),
        ("../x@acme.example", "dot"),
        ("a*b@acme.example", "delegation separator"),
        ("ab\u{202e}cd@acme.example", "U+202E"),
        ("zero\u{200b}width@acme.example", "U+200B"),
        ("a@acme..example", "domain"),
    ] {
        let body = json!({"address": address, "password": "long-enough-pw"});
        let (status, answer) = owner.post(&mailboxes, body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{address}: {answer}"
        );
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{address}: {answer}");
        let (status, _) = owner
            .post(
                &format!("/api/v1/orgs/{}/aliases", seeded.org),
                json!({"address": address, "mailbox_id": seeded.contact}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "alias {address}");
    }
    let invitations = format!("/api/v1/orgs/{}/invitations", seeded.org);
    let (status, answer) = owner
        .post(
            &invitations,
            json!({"email": "a*b@x.example", "role": "collaborator"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // An international domain is kept in A-labels.
    let (status, domain) = owner
        .post(
            &format!("/api/v1/orgs/{}/domains", seeded.org),
            json!({"name": "Bücher.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{domain}");
    let body = json!({"address": "info@bücher.example", "password": "long-enough-pw"});
    let (status, created) = owner.post(&mailboxes, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["address"], "info@xn--bcher-kva.example",
        "{created}"
    );
}

#[tokio::test]
async fn a_mailbox_cannot_take_over_a_users_login() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    {
        // Before the server starts: Acme also hosts gmail.example, where Lucie (a member)
        // and a stranger (a user of no organization of Acme's) have their logins.
        let store = common::open_store(&dir.path().join("data"));
        let org = mailgate::model::OrgId(seeded.org);
        store.add_domain(org, "gmail.example").unwrap();
        store
            .create_user(mailgate::store::NewUser {
                login: "stranger@gmail.example".into(),
                display_name: String::new(),
                password: mailgate::password::hash("stranger-password").unwrap(),
                must_change_password: false,
                own_mailbox: None,
            })
            .unwrap();
    }
    let server = start(dir.path(), "");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let mailboxes = format!("/api/v1/orgs/{}/mailboxes", seeded.org);
    // The stranger keeps her login: no mailbox may take it over.
    let (status, answer) = owner
        .post(
            &mailboxes,
            json!({"address": "stranger@gmail.example", "password": "takeover-pw-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("login"),
        "{answer}"
    );
    let still = imap_login(&server, "stranger@gmail.example", "stranger-password");
    assert!(still.starts_with("OK"), "her login still works: {still}");
    // Lucie is a member of Acme: her login may become her own mailbox, granted to her, and
    // either password opens it.
    let (status, mailbox) = owner
        .post(
            &mailboxes,
            json!({"address": LUCIE, "password": "lucie-mailbox-pw"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mailbox}");
    let with_mailbox_password = imap_login(&server, LUCIE, "lucie-mailbox-pw");
    assert!(
        with_mailbox_password.starts_with("OK"),
        "{with_mailbox_password}"
    );
    let with_her_password = imap_login(&server, LUCIE, LUCIE_PASSWORD);
    assert!(with_her_password.starts_with("OK"), "{with_her_password}");
    assert!(
        with_her_password.contains("Sent"),
        "her mailbox's folders: {with_her_password}"
    );
    let wrong = imap_login(&server, LUCIE, "neither-password");
    assert!(wrong.starts_with("NO"), "{wrong}");
    // An alias at a user's login is refused, naming why.
    let (status, answer) = owner
        .post(
            &format!("/api/v1/orgs/{}/aliases", seeded.org),
            json!({"address": "stranger@gmail.example", "mailbox_id": seeded.contact}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("login"),
        "{answer}"
    );
    // An invitation to an alias's address is refused.
    let (status, answer) = owner
        .post(
            &format!("/api/v1/orgs/{}/invitations", seeded.org),
            json!({"email": "hello@acme.example", "role": "collaborator"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
}

#[tokio::test]
async fn one_password_rule_and_no_empty_grants() {
    let (_dir, seeded, server) = seeded_server("lr");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let mailboxes = format!("/api/v1/orgs/{}/mailboxes", seeded.org);
    let body = json!({"address": "short@acme.example", "password": "x"});
    let (status, answer) = owner.post(&mailboxes, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("10"),
        "{answer}"
    );
    let (status, answer) = owner
        .call(
            reqwest::Method::PATCH,
            &format!("{mailboxes}/{}", seeded.contact),
            Some(json!({"password": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, answer) = owner
        .post(
            &format!("/api/v1/orgs/{}/grants", seeded.org),
            json!({"grantee": {"user": seeded.lucie}, "target": {"mailbox": seeded.contact}, "rights": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
}

#[tokio::test]
async fn an_invitation_whose_mail_cannot_be_delivered_hands_over_the_link() {
    let (_dir, seeded, server) = seeded_server("lr");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    // acme.example is hosted here and has no mailbox lucie@: the README's first-hour step.
    let (status, answer) = owner
        .post(
            &format!("/api/v1/orgs/{}/invitations", seeded.org),
            json!({"email": "lucie@acme.example", "role": "collaborator"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(answer["undelivered"].is_string(), "{answer}");
    let path = answer["accept_path"].as_str().expect("the link, once");
    let (status, accepted) = owner
        .post(path, json!({"password": "lucie-acme-password"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{accepted}");
    let (_, listed) = owner
        .get(&format!("/api/v1/orgs/{}/invitations", seeded.org))
        .await;
    assert!(
        !listed.to_string().contains("accept_path"),
        "shown once: {listed}"
    );
}
