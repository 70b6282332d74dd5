//! Time-limited grants (issue 12): holiday cover that ends by itself. A grant given through
//! the admin API with `valid_until` lets the delegate in until then; at its end her open
//! IMAP session gets BYE, the audit log records the expiry, and "who can read this mailbox"
//! shows the dates while it runs. One that starts later gives nothing before it starts.

mod common;

use common::api::Api;
use common::*;
use reqwest::{Method, StatusCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_millis() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    now.as_millis() as i64
}

#[tokio::test]
async fn a_grant_that_ends_ends_the_delegates_session_and_is_audited() {
    let (_dir, seeded, server) = seeded_server("lrs");
    let (org, contact, lucie) = (seeded.org, seeded.contact, seeded.lucie);
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    // The seeded grant is open-ended: replaced by one that ends a few seconds from now.
    let grants = format!("/api/v1/orgs/{org}/grants");
    let (status, _) = owner
        .call(Method::DELETE, &format!("{grants}/{}", seeded.grant), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let target = serde_json::json!({"mailbox": contact});
    let grantee = serde_json::json!({"user": lucie});
    let (status, body) = owner
        .post(
            &grants,
            serde_json::json!({"grantee": grantee, "target": target, "preset": "read",
                               "valid_until": now_millis() - 1}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "already over: {body}"
    );
    let until = now_millis() + 6_000;
    let (status, grant) = owner
        .post(
            &grants,
            serde_json::json!({"grantee": grantee, "target": target, "preset": "read",
                               "valid_until": until}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    assert_eq!(grant["valid_until"], until);
    assert_eq!(grant["valid_from"], serde_json::Value::Null);
    // One that starts tomorrow gives nothing today.
    let tomorrow = now_millis() + 86_400_000;
    let (status, later) = owner
        .post(
            &grants,
            serde_json::json!({"grantee": grantee, "target": target, "preset": "read-write",
                               "valid_from": tomorrow}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");

    let (status, review) = owner
        .get(&format!("/api/v1/orgs/{org}/mailboxes/{contact}/access"))
        .await;
    assert_eq!(status, StatusCode::OK, "{review}");
    let holder = review["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["login"] == LUCIE)
        .expect("Lucie holds the running grant")
        .clone();
    assert_eq!(
        holder["rights"], "lrs",
        "not the grant of tomorrow: {holder}"
    );
    assert_eq!(holder["through"][0]["valid_until"], until, "{holder}");

    let idle = IdleDelegate::start(&server);
    let (at, bye) = idle.next_line();
    assert!(bye.starts_with("* BYE"), "{bye}");
    eprintln!(
        "BYE {:.3} s after the grant's end",
        at - until as f64 / 1000.0
    );
    assert!(
        at * 1000.0 >= until as f64 - 50.0,
        "not before its end: {bye}"
    );

    // The audit log says it ended by itself; the grant is gone, tomorrow's is still there.
    let mut recorded = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, log) = owner
            .get(&format!("/api/v1/orgs/{org}/audit?action=grant.expire"))
            .await;
        if let Some(e) = log["items"].as_array().and_then(|items| items.first()) {
            recorded = e.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        recorded["target"],
        format!("grant {}", grant["id"]),
        "{recorded}"
    );
    let (_, list) = owner.get(&grants).await;
    let ids: Vec<&serde_json::Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["id"])
        .collect();
    assert_eq!(ids, [&later["id"]], "{list}");
    // And the delegate's next login sees the mailbox no more.
    let out = imap_script(
        &server,
        "imap (TLS)",
        r#"
m = tls()
ok(m.login("lucie@gmail.example", "lucie-password"))
no(lambda: m.select('"Shared/contact@acme.example/INBOX"'), "NOPERM")
print("done")
"#,
    );
    assert!(out.contains("done"), "{out}");
}
