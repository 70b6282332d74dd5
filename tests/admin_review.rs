//! The admin API's read-outs: the audit log (JSON and CSV), who can read a mailbox and why,
//! metrics, and client autoconfiguration, checked the way their consumers read them.

mod common;

use common::api::Api;
use common::*;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn the_audit_log_filters_and_exports_csv_for_managers_only() {
    let (_dir, seeded, server) = seeded_server("lr");
    let out = python(
        "import imaplib, ssl, sys\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         m = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx)\n\
         m.login('contact@acme.example', 'contact-password')\nm.logout()\nprint('logged in')\n",
        &[
            "127.0.0.1".into(),
            server.addr("imap (TLS)").port().to_string(),
        ],
    );
    assert!(out.contains("logged in"));
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let org = seeded.org;
    let (status, page) = owner
        .get(&format!("/api/v1/orgs/{org}/audit?action=imap."))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert!(
        !items.is_empty()
            && items
                .iter()
                .all(|e| e["action"].as_str().unwrap().starts_with("imap.")),
        "{page}"
    );
    let (status, csv) = owner
        .text(
            Method::GET,
            &format!("/api/v1/orgs/{org}/audit?format=csv"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        csv.starts_with("at,org,actor,action,target,client,outcome,detail\r\n"),
        "{csv}"
    );
    let (status, body) = owner
        .get(&format!("/api/v1/orgs/{org}/audit?since=yesterday"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let lucie = Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let (status, _) = lucie.get(&format!("/api/v1/orgs/{org}/audit")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a collaborator does not read the log"
    );
    let (status, _) = lucie
        .get(&format!("/api/v1/orgs/{}/audit", org + 1000))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another organization is not there"
    );
    let (status, own) = lucie.get("/api/v1/me/audit").await;
    assert_eq!(status, StatusCode::OK);
    let own = own["items"].as_array().unwrap();
    assert!(
        own.iter().all(|e| e["actor"]["user"] == seeded.lucie) && !own.is_empty(),
        "her own activity only: {own:?}"
    );
}

#[tokio::test]
async fn who_can_read_a_mailbox_and_why() {
    let (_dir, seeded, server) = seeded_server("lrs");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (org, contact) = (seeded.org, seeded.contact);
    let (status, review) = owner
        .get(&format!("/api/v1/orgs/{org}/mailboxes/{contact}/access"))
        .await;
    assert_eq!(status, StatusCode::OK, "{review}");
    let principals = review["principals"].as_array().unwrap();
    let lucie = principals
        .iter()
        .find(|p| p["login"] == LUCIE)
        .expect("Lucie holds a grant");
    assert_eq!(lucie["rights"], "lrs");
    assert_eq!(lucie["through"][0]["type"], "direct_grant");
    assert_eq!(lucie["through"][0]["grant"], seeded.grant);
    let boss = principals
        .iter()
        .find(|p| p["login"] == OWNER)
        .expect("the owner manages it");
    assert_eq!(boss["through"][0]["type"], "role");
    assert!(principals.iter().any(|p| p["kind"] == "mailbox_password"));
    let (status, reach) = owner
        .get(&format!(
            "/api/v1/orgs/{org}/members/{}/access",
            seeded.lucie
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{reach}");
    assert_eq!(reach["mailboxes"][0]["address"], CONTACT);
}

#[tokio::test]
async fn metrics_count_connections_and_logins() {
    let (_dir, _, server) = seeded_server("lr");
    python(
        "import imaplib, ssl, sys\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         m = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx)\nm.login('contact@acme.example', 'contact-password')\nm.logout()\n",
        &[
            "127.0.0.1".into(),
            server.addr("imap (TLS)").port().to_string(),
        ],
    );
    let anonymous = Api {
        client: reqwest::Client::new(),
        base: format!("http://{}", server.addr("admin (HTTP)")),
        token: None,
    };
    let (status, text) = anonymous.text(Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("mailgate_logins_total{protocol=\"imap\",outcome=\"success\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("mailgate_connections_total{protocol=\"imap\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE mailgate_queue_entries gauge\nmailgate_queue_entries 0\n"),
        "{text}"
    );
}

/// Parses each answer with Python's XML and plist readers and checks the element names the
/// clients look for (Thunderbird's config-v1.1, Outlook's 2006a response schema, Apple's
/// com.apple.mail.managed payload).
#[tokio::test]
async fn autoconfiguration_answers_what_thunderbird_outlook_and_apple_read() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let public =
        "[public]\nhostname = \"mail.acme.example\"\nimap_port = 993\nsubmission_port = 465\n";
    let server = start(dir.path(), public);
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{}", server.addr("admin (HTTP)")),
        token: None,
    };
    let submission_port = 465;
    let (status, thunderbird) = api
        .text(
            Method::GET,
            "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=contact@acme.example",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{thunderbird}");
    let (status, legacy) = api
        .text(
            Method::GET,
            "/mail/config-v1.1.xml?emailaddress=contact@acme.example",
            None,
        )
        .await;
    assert_eq!((status, &legacy), (StatusCode::OK, &thunderbird));
    let request = "<?xml version=\"1.0\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>contact@acme.example</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
    let (status, outlook) = api
        .text(
            Method::POST,
            "/autodiscover/autodiscover.xml",
            Some(request.into()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{outlook}");
    let (status, v2) = api
        .text(
            Method::GET,
            "/autodiscover/autodiscover.json?Email=contact@acme.example&Protocol=AutodiscoverV1",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    // Outlook's own form puts the address in the path (issue 11).
    let (status, v2_path) = api
        .text(
            Method::GET,
            "/autodiscover/autodiscover.json/v1.0/contact@acme.example?Protocol=AutodiscoverV1",
            None,
        )
        .await;
    assert_eq!((status, &v2_path), (StatusCode::OK, &v2));
    let (status, apple) = api
        .text(
            Method::GET,
            "/apple/mobileconfig?emailaddress=contact@acme.example",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{apple}");
    let (status, _) = api
        .text(
            Method::GET,
            "/mail/config-v1.1.xml?emailaddress=someone@elsewhere.example",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only domains hosted here");
    let script = r#"
import sys, json, plistlib, xml.etree.ElementTree as ET
tb, ol, v2, apple, smtp_port = sys.argv[1:6]
root = ET.fromstring(tb)
assert root.tag == "clientConfig" and root.get("version") == "1.1"
provider = root.find("emailProvider")
assert provider.find("domain").text == "acme.example"
imap = provider.find("incomingServer[@type='imap']")
got = [imap.find(k).text for k in ("hostname", "port", "socketType", "authentication", "username")]
assert got == ["mail.acme.example", "993", "SSL", "password-cleartext", "%EMAILADDRESS%"], got
smtp = provider.find("outgoingServer[@type='smtp']")
assert smtp.find("port").text == smtp_port and smtp.find("socketType").text == "SSL"
ns = {"a": "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
      "o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
root = ET.fromstring(ol)
account = root.find("o:Response/o:Account", ns)
assert account.find("o:AccountType", ns).text == "email" and account.find("o:Action", ns).text == "settings"
protocols = {p.find("o:Type", ns).text: p for p in account.findall("o:Protocol", ns)}
assert set(protocols) == {"IMAP", "SMTP"}
assert protocols["IMAP"].find("o:Server", ns).text == "mail.acme.example"
assert protocols["IMAP"].find("o:Port", ns).text == "993" and protocols["IMAP"].find("o:SSL", ns).text == "on"
assert protocols["SMTP"].find("o:Port", ns).text == smtp_port
assert protocols["SMTP"].find("o:LoginName", ns).text == "contact@acme.example"
redirect = json.loads(v2)
assert redirect == {"Protocol": "AutodiscoverV1", "Url": "https://mail.acme.example/autodiscover/autodiscover.xml"}, redirect
profile = plistlib.loads(apple.encode())
assert profile["PayloadType"] == "Configuration"
mail = profile["PayloadContent"][0]
assert mail["PayloadType"] == "com.apple.mail.managed" and mail["EmailAccountType"] == "EmailTypeIMAP"
assert mail["IncomingMailServerHostName"] == "mail.acme.example" and mail["IncomingMailServerPortNumber"] == 993
assert mail["OutgoingMailServerPortNumber"] == int(smtp_port) and mail["IncomingMailServerUseSSL"] is True
print("valid")
"#;
    let out = python(
        script,
        &[thunderbird, outlook, v2, apple, submission_port.to_string()],
    );
    assert!(out.contains("valid"), "{out}");
}

#[tokio::test]
async fn personal_tokens_are_named_listed_and_revoked() {
    let (_dir, _, server) = seeded_server("lr");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, made) = owner
        .post(
            "/api/v1/me/tokens",
            serde_json::json!({"name": "backup script"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, _) = owner
        .post(
            "/api/v1/me/tokens",
            serde_json::json!({"name": "backup script"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let script = Api {
        client: reqwest::Client::new(),
        base: owner.base.clone(),
        token: Some(made["token"].as_str().unwrap().to_string()),
    };
    let (status, me) = script.get("/api/v1/me").await;
    assert_eq!(
        (status, me["login"].as_str()),
        (StatusCode::OK, Some(OWNER))
    );
    let (_, list) = owner.get("/api/v1/me/tokens").await;
    assert_eq!(list["items"][0]["name"], "backup script");
    assert!(
        list["items"][0].get("token").is_none(),
        "the secret is shown once"
    );
    let (status, _) = owner
        .call(Method::DELETE, "/api/v1/me/tokens/backup%20script", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = script.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_mailbox_exports_as_mbox_to_readers_only_and_users_export_their_data() {
    let (_dir, seeded, server) = seeded_server("lr");
    python(
        "import imaplib, ssl, sys\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         m = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx)\nm.login('contact@acme.example', 'contact-password')\n\
         m.append('INBOX', None, None, b'Subject: one\\r\\n\\r\\nFrom the start\\r\\n')\nm.append('Sent', None, None, b'Subject: two\\r\\n\\r\\nbody\\r\\n')\nm.logout()\n",
        &[
            "127.0.0.1".into(),
            server.addr("imap (TLS)").port().to_string(),
        ],
    );
    let (org, contact) = (seeded.org, seeded.contact);
    let lucie = Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let (status, mbox) = lucie
        .text(
            Method::GET,
            &format!("/api/v1/orgs/{org}/mailboxes/{contact}/export"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mbox}");
    assert_eq!(
        mbox.matches("\nFrom contact@acme.example ").count()
            + usize::from(mbox.starts_with("From ")),
        2,
        "{mbox}"
    );
    assert!(
        mbox.contains("X-Mailgate-Folder: Sent\n") && mbox.contains("\r\n>From the start\r\n"),
        "{mbox}"
    );
    let (status, inbox) = lucie
        .text(
            Method::GET,
            &format!("/api/v1/orgs/{org}/mailboxes/{contact}/export?folder=INBOX"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        inbox.contains("Subject: one") && !inbox.contains("Subject: two"),
        "{inbox}"
    );
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, body) = owner
        .get(&format!("/api/v1/orgs/{org}/mailboxes/{contact}/export"))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "managing is not reading: {body}"
    );
    let (status, mine) = lucie.get("/api/v1/me/export").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["user"]["login"], LUCIE);
    assert_eq!(mine["grants"][0]["id"], seeded.grant);
    assert!(mine.get("password").is_none() && !mine.to_string().contains("argon2"));
}

#[tokio::test]
async fn the_queue_shows_deferred_mail_with_its_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    // Nothing listens on port 1: every attempt fails at once, temporarily.
    let server = start(
        dir.path(),
        "[queue]\nsmarthost = \"127.0.0.1:1\"\nsmarthost_tls = \"none\"\n",
    );
    python(
        "import smtplib, ssl, sys\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         s = smtplib.SMTP_SSL(sys.argv[1], int(sys.argv[2]), context=ctx)\ns.login('contact@acme.example', 'contact-password')\n\
         s.sendmail('contact@acme.example', ['far@away.example'], b'From: contact@acme.example\\r\\nSubject: q\\r\\n\\r\\nq\\r\\n')\ns.quit()\n",
        &[
            "127.0.0.1".into(),
            server.addr("submission (TLS)").port().to_string(),
        ],
    );
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let org = seeded.org;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, page) = owner.get(&format!("/api/v1/orgs/{org}/queue")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let entry = &page["items"][0];
        if entry["state"] == "deferred" {
            assert_eq!(entry["domain"], "away.example");
            assert_eq!(entry["recipients"][0], "far@away.example");
            assert!(
                entry["last_error"].as_str().unwrap().contains("connection"),
                "{entry}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never deferred: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let lucie = Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let (status, _) = lucie.get(&format!("/api/v1/orgs/{org}/queue")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_manage_right_does_not_reset_a_mailbox_password_and_a_new_password_ends_other_sessions()
{
    let (_dir, seeded, server) = seeded_server("la");
    let (org, contact) = (seeded.org, seeded.contact);
    let lucie = Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let path = format!("/api/v1/orgs/{org}/mailboxes/{contact}");
    let (status, body) = lucie
        .call(
            Method::PATCH,
            &path,
            Some(serde_json::json!({"display_name": "Front desk"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "managing by grant: {body}");
    let (status, body) = lucie
        .call(
            Method::PATCH,
            &path,
            Some(serde_json::json!({"password": "taken-over-123"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a password opens every right: {body}"
    );
    // Two sessions of the owner; a password change through one ends the other.
    let first = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let second = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let change =
        serde_json::json!({"current_password": OWNER_PASSWORD, "new_password": "a brand new one"});
    let (status, _) = first.post("/api/v1/me/password", change).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = first.get("/api/v1/me").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the session that changed it goes on"
    );
    let (status, _) = second.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the other one ends");
}

#[tokio::test]
async fn disabling_a_member_through_the_api_ends_her_imap_session_at_once() {
    let (_dir, seeded, server) = seeded_server("lrs");
    let idle = IdleDelegate::start(&server);
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let path = format!("/api/v1/orgs/{}/members/{}", seeded.org, seeded.lucie);
    let disabled_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (status, body) = owner
        .call(
            Method::PATCH,
            &path,
            Some(serde_json::json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["disabled"], true);
    // The session was waiting in IDLE: the BYE must come (its latency is only reported).
    let (at, line) = idle.next_line();
    assert!(line.starts_with("* BYE"), "{line}");
    eprintln!("BYE {:.3} s after the PATCH was sent", at - disabled_at);
    let (status, _) = owner
        .post(
            "/api/v1/session",
            serde_json::json!({"login": LUCIE, "password": LUCIE_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Issue 12: a member leaves an organization herself; her grants there end at once (her
/// IDLE session on its mailbox gets BYE), the log records it, and the last owner cannot
/// leave.
#[tokio::test]
async fn a_member_who_leaves_loses_her_grants_at_once_and_the_last_owner_stays() {
    let (_dir, seeded, server) = seeded_server("lrs");
    let idle = IdleDelegate::start(&server);
    let org = seeded.org;
    let lucie = Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let leave = format!("/api/v1/me/organizations/{org}");
    let (status, body) = lucie.call(Method::DELETE, &leave, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, got) = idle.next_line();
    assert!(got.starts_with("* BYE"), "{got}");
    let (_, me) = lucie.get("/api/v1/me").await;
    assert_eq!(me["organizations"], serde_json::json!([]), "{me}");
    let (status, _) = lucie.call(Method::DELETE, &leave, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no longer a member");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, body) = owner.call(Method::DELETE, &leave, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "the last owner stays: {body}");
    let (_, log) = owner
        .get(&format!("/api/v1/orgs/{org}/audit?action=member.leave"))
        .await;
    assert_eq!(log["items"][0]["actor"]["user"], seeded.lucie, "{log}");
}
