//! Hosting many organizations (issue 12): the server's operator creates a second one
//! through the API with a new owner, who logs in with the password shown once and works in
//! it; neither organization sees the other; a user may belong to both and act in each with
//! that organization's role; only operators create organizations or name operators.

mod common;

use common::api::Api;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The seeded store's owner is the configured first owner, so the server makes her its
/// operator when it opens a store made before operators existed.
const OPERATOR_IS_THE_SEEDED_OWNER: &str =
    "[bootstrap]\norganization = \"Acme\"\nowner = \"owner@acme.example\"\n";

#[tokio::test]
async fn an_operator_creates_an_organization_whose_owner_works_in_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lrs");
    let server = start(dir.path(), OPERATOR_IS_THE_SEEDED_OWNER);
    let operator = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, page) = operator.get("/api/v1/operators").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["login"], OWNER, "{page}");

    // A new organization with a new owner: her password is shown once.
    let (status, beta) = operator
        .post(
            "/api/v1/orgs",
            json!({"name": "Beta", "owner": "boss@beta.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{beta}");
    let beta_id = beta["id"].as_u64().unwrap();
    let initial = beta["initial_password"].as_str().unwrap().to_string();
    let (status, all) = operator.get("/api/v1/orgs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");

    // Her first login must change the password; then she manages Beta.
    let first = Api::login(&server, "boss@beta.example", &initial).await;
    let change = json!({"current_password": initial, "new_password": "beta-boss-password"});
    let (status, body) = first.post("/api/v1/me/password", change).await;
    assert!(status.is_success(), "{body}");
    let boss = Api::login(&server, "boss@beta.example", "beta-boss-password").await;
    let (_, me) = boss.get("/api/v1/me").await;
    assert_eq!(me["organizations"][0]["id"], beta_id, "{me}");
    assert_eq!(me["organizations"][0]["role"], "owner", "{me}");
    let (status, body) = boss
        .post(
            &format!("/api/v1/orgs/{beta_id}/domains"),
            json!({"name": "beta.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Isolation both ways, and no operator powers for an organization's owner.
    let acme = seeded.org;
    for (who, org) in [(&boss, acme), (&operator, beta_id)] {
        let (status, _) = who.get(&format!("/api/v1/orgs/{org}/domains")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "organization {org}");
    }
    let (status, body) = boss
        .post(
            "/api/v1/orgs",
            json!({"name": "Gamma", "owner": "boss@beta.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = boss.get("/api/v1/orgs").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = boss
        .post("/api/v1/operators", json!({"login": "boss@beta.example"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An existing user as the owner of a third: one login, a role in each organization.
    let (status, gamma) = operator
        .post("/api/v1/orgs", json!({"name": "Gamma", "owner": LUCIE}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{gamma}");
    assert_eq!(
        gamma["initial_password"],
        serde_json::Value::Null,
        "she keeps hers"
    );
    let lucie = Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let (_, me) = lucie.get("/api/v1/me").await;
    let roles: Vec<(u64, String)> = me["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_u64().unwrap(),
                o["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    let gamma_id = gamma["id"].as_u64().unwrap();
    assert!(roles.contains(&(acme, "collaborator".into())), "{me}");
    assert!(roles.contains(&(gamma_id, "owner".into())), "{me}");
    let (status, _) = lucie
        .call(
            Method::PATCH,
            &format!("/api/v1/orgs/{gamma_id}"),
            Some(json!({"name": "Gamma Ltd"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "an owner renames her own");
    let (status, _) = lucie
        .call(
            Method::PATCH,
            &format!("/api/v1/orgs/{acme}"),
            Some(json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a collaborator does not");

    // Operators name operators; the last one stays.
    let (status, body) = operator
        .post("/api/v1/operators", json!({"login": "boss@beta.example"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, all) = boss.get("/api/v1/orgs").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let boss_id = body["user"].as_u64().unwrap();
    let (status, _) = operator
        .call(
            Method::DELETE,
            &format!("/api/v1/operators/{boss_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, page) = operator.get("/api/v1/operators").await;
    let me_id = page["items"][0]["user"].as_u64().unwrap();
    let (status, body) = operator
        .call(Method::DELETE, &format!("/api/v1/operators/{me_id}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, log) = operator
        .get(&format!("/api/v1/orgs/{gamma_id}/audit?action=org."))
        .await;
    assert_eq!(
        log["items"].as_array().map(Vec::len),
        None,
        "not the operator's to read: {log}"
    );
    let (_, log) = lucie
        .get(&format!("/api/v1/orgs/{gamma_id}/audit?action=org."))
        .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"org.create") && actions.contains(&"org.rename"),
        "{log}"
    );
}

/// Two organizations made through the API, one the other's partner: invited with the full
/// scope, accepted by the partner's owner, used (the partner manages the client's
/// mailboxes), then ended by the client, after which the partner sees nothing of it.
#[tokio::test]
async fn a_partnership_between_organizations_made_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lrs");
    let server = start(dir.path(), OPERATOR_IS_THE_SEEDED_OWNER);
    let acme_owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, beta) = acme_owner
        .post(
            "/api/v1/orgs",
            json!({"name": "Beta IT", "owner": "it@beta.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{beta}");
    let beta_id = beta["id"].as_u64().unwrap();
    let initial = beta["initial_password"].as_str().unwrap().to_string();
    let first = Api::login(&server, "it@beta.example", &initial).await;
    let change = json!({"current_password": initial, "new_password": "beta-it-password"});
    let (status, body) = first.post("/api/v1/me/password", change).await;
    assert!(status.is_success(), "{body}");
    let partner = Api::login(&server, "it@beta.example", "beta-it-password").await;
    let acme = seeded.org;
    let mailboxes = format!("/api/v1/orgs/{acme}/mailboxes");
    let (status, _) = partner.get(&mailboxes).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "before: nothing of Acme");

    let (status, invited) = acme_owner
        .post(
            &format!("/api/v1/orgs/{acme}/partnerships"),
            json!({"partner": beta_id, "scope": "full"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invited}");
    let id = invited["id"].as_u64().unwrap();
    let (status, accepted) = partner
        .post(
            &format!("/api/v1/orgs/{beta_id}/partnerships/{id}/accept"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    let (status, list) = partner.get(&mailboxes).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(
        list.to_string().contains(CONTACT),
        "the partner manages them: {list}"
    );

    let (status, ended) = acme_owner
        .post(
            &format!("/api/v1/orgs/{acme}/partnerships/{id}/end"),
            json!({"password": OWNER_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    let (status, _) = partner.get(&mailboxes).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "after: nothing of Acme again"
    );
}

/// With `[admin] self_service_organizations` on, a signed-in user creates an organization
/// for herself and owns it; for anyone else as the owner she is still refused.
#[tokio::test]
async fn self_service_lets_a_user_create_her_own_organization() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lrs");
    let config = EPHEMERAL.replace("[admin]\n", "[admin]\nself_service_organizations = true\n");
    let server = start_with(dir.path(), &config);
    let lucie = Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let (status, body) = lucie
        .post(
            "/api/v1/orgs",
            json!({"name": "Someone else's", "owner": OWNER}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, shop) = lucie
        .post(
            "/api/v1/orgs",
            json!({"name": "Lucie's shop", "owner": LUCIE}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shop}");
    let (_, me) = lucie.get("/api/v1/me").await;
    let owned = me["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == shop["id"] && o["role"] == "owner");
    assert!(owned, "{me}");
    let (status, _) = lucie.get("/api/v1/orgs").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "listing them all stays the operators'"
    );
}

/// Python: delivers one message to `contact@` over port 25 and prints the RCPT reply code,
/// then tries submission as `contact@` and prints the AUTH reply code.
const SMTP_PROBE: &str = r#"
import smtplib, ssl, sys
host, port, sub = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, port)
s.ehlo("peer.example")
s.mail("someone@elsewhere.example")
code, text = s.rcpt("contact@acme.example")
if code == 250:
    s.data(b"From: someone@elsewhere.example\r\nTo: contact@acme.example\r\nSubject: kept through it all\r\n\r\nbody\r\n")
s.quit()
t = smtplib.SMTP_SSL(host, sub, context=ctx)
try:
    t.login("contact@acme.example", "contact-password")
    auth = 235
except smtplib.SMTPAuthenticationError as e:
    auth = e.smtp_code
print(code, text.decode(), auth)
"#;

fn smtp_probe(server: &TestServer) -> String {
    let smtp = server.addr("smtp (STARTTLS)");
    let submission = server.addr("submission (TLS)");
    python(
        SMTP_PROBE,
        &[
            smtp.ip().to_string(),
            smtp.port().to_string(),
            submission.port().to_string(),
        ],
    )
    .trim()
    .to_string()
}

/// Logs in as `contact@` and as Lucie, and counts `contact@`'s INBOX; prints what failed.
const IMAP_PROBE: &str = r#"
for login, password in [("contact@acme.example", "contact-password"), ("lucie@gmail.example", "lucie-password")]:
    m = tls()
    try:
        m.login(login, password)
        typ, data = m.select("INBOX" if login.startswith("contact") else '"Shared/contact@acme.example/INBOX"')
        print(login, "in", data[0].decode())
    except imaplib.IMAP4.error as e:
        print(login, "refused", str(e))
"#;

/// An operator suspends an organization: its open sessions end, its logins and deliveries
/// are refused with temporary answers, its mail stays. Resumed, everything works again.
/// Deleted (with no grace period here), its mail is exported first and nothing else of it
/// remains: its domain is no longer served and its mailbox logins fail.
#[tokio::test]
async fn an_operator_suspends_resumes_and_deletes_an_organization() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lrs");
    let config = EPHEMERAL.replace(
        "[admin]\n",
        "[admin]\norganization_deletion_grace_days = 0\n",
    );
    let server = start_with(
        dir.path(),
        &format!("{config}\n{OPERATOR_IS_THE_SEEDED_OWNER}"),
    );
    let operator = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let acme = seeded.org;
    let before = smtp_probe(&server);
    assert!(
        before.starts_with("250 ") && before.ends_with(" 235"),
        "{before}"
    );

    let idle = IdleDelegate::start(&server);
    let org = format!("/api/v1/orgs/{acme}");
    let (status, body) = operator
        .call(Method::PATCH, &org, Some(json!({"suspended": true})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["suspension"]["since"].is_i64(), "{body}");
    let (_, line) = idle.next_line();
    assert!(
        line.starts_with("* BYE"),
        "the delegate's session ends: {line}"
    );
    let during = smtp_probe(&server);
    assert!(
        during.starts_with("450 4.2.1") && during.ends_with(" 454"),
        "temporary refusals: {during}"
    );
    let out = imap_script(&server, "imap (TLS)", IMAP_PROBE);
    assert_eq!(
        out.matches("refused b'[UNAVAILABLE]").count(),
        2,
        "the mailbox and its delegate: {out}"
    );

    let (status, body) = operator
        .call(Method::PATCH, &org, Some(json!({"suspended": false})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["suspension"].is_null(), "{body}");
    let out = imap_script(&server, "imap (TLS)", IMAP_PROBE);
    assert_eq!(out.matches(" in 1").count(), 2, "the mail was kept: {out}");

    let (status, body) = operator.call(Method::DELETE, &org, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["suspension"]["deletion_due"].is_i64(), "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, all) = operator.get("/api/v1/orgs").await;
        if !all.to_string().contains("\"Acme\"") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still there: {all}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let export = server.data.join(format!(
        "exports/org-{acme}/{}-{CONTACT}.mbox",
        seeded.contact
    ));
    let mbox = std::fs::read_to_string(&export).expect("the export");
    assert!(mbox.contains("Subject: kept through it all"), "{mbox}");
    let after = smtp_probe(&server);
    // Its domain went with it: the address is no longer this server's to take.
    assert!(
        after.starts_with("554 5.7.1") && after.ends_with(" 535"),
        "{after}"
    );
    let (_, log) = operator.get("/api/v1/audit?action=org.delete").await;
    assert!(log.to_string().contains("exports"), "{log}");
}

/// Isolation of every endpoint: the owner of an organization made through the API calls each
/// operation the OpenAPI document lists under another organization's `/api/v1/orgs/{org}`,
/// with that organization's real ids, and never succeeds nor learns anything of it.
#[tokio::test]
async fn no_endpoint_of_one_organization_answers_the_owner_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lrs");
    let server = start(dir.path(), OPERATOR_IS_THE_SEEDED_OWNER);
    let operator = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (_, beta) = operator
        .post(
            "/api/v1/orgs",
            json!({"name": "Beta", "owner": "boss@beta.example"}),
        )
        .await;
    let initial = beta["initial_password"].as_str().unwrap().to_string();
    let first = Api::login(&server, "boss@beta.example", &initial).await;
    let change = json!({"current_password": initial, "new_password": "beta-boss-password"});
    let (status, _) = first.post("/api/v1/me/password", change).await;
    assert!(status.is_success());
    let boss = Api::login(&server, "boss@beta.example", "beta-boss-password").await;
    let (_, spec) = boss.get("/api/v1/openapi.json").await;
    let paths = spec["paths"].as_object().expect("paths");
    let mut tried = 0;
    for (path, item) in paths {
        let Some(rest) = path.strip_prefix("/api/v1/orgs/{org}") else {
            continue;
        };
        let concrete = format!("/api/v1/orgs/{}{rest}", seeded.org)
            .replace("{id}", &seeded.contact.to_string())
            .replace("{user}", &seeded.lucie.to_string())
            .replace("{address}", CONTACT)
            .replace("{name}", "acme.example")
            .replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body =
                matches!(method, Method::POST | Method::PATCH | Method::PUT).then(|| json!({}));
            let (status, answer) = boss.call(method.clone(), &concrete, body).await;
            assert!(
                !status.is_success() && !status.is_server_error(),
                "{method} {concrete}: {status} {answer}"
            );
            // What the path names may be echoed; nothing else of Acme may show.
            let text = answer.to_string();
            for secret in [OWNER, LUCIE, "\"Acme\""] {
                assert!(
                    !text.contains(secret),
                    "{method} {concrete} tells: {answer}"
                );
            }
            tried += 1;
        }
    }
    assert!(tried > 40, "only {tried} operations tried");
}
