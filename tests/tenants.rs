//! Two organizations on one server: neither learns of the other through any endpoint, except
//! within the scope of an accepted partnership.

mod common;

use common::api::Api;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Every org-scoped read and change a member could try, with a body good enough to pass
/// parsing: the isolation must come from `access`, not from a malformed request.
fn probes(org: u64, mailbox: u64, grant: u64, user: u64) -> Vec<(Method, String, Option<Value>)> {
    let o = format!("/api/v1/orgs/{org}");
    vec![
        (Method::GET, format!("{o}/domains"), None),
        (
            Method::POST,
            format!("{o}/domains"),
            Some(json!({"name": "evil.example"})),
        ),
        (Method::DELETE, format!("{o}/domains/acme.example"), None),
        (Method::GET, format!("{o}/mailboxes"), None),
        (
            Method::POST,
            format!("{o}/mailboxes"),
            Some(json!({"address": "x@acme.example"})),
        ),
        (Method::GET, format!("{o}/mailboxes/{mailbox}"), None),
        (
            Method::PATCH,
            format!("{o}/mailboxes/{mailbox}"),
            Some(json!({"quota_bytes": 1})),
        ),
        (Method::DELETE, format!("{o}/mailboxes/{mailbox}"), None),
        (Method::GET, format!("{o}/mailboxes/{mailbox}/access"), None),
        (Method::GET, format!("{o}/mailboxes/{mailbox}/export"), None),
        (Method::GET, format!("{o}/aliases"), None),
        (
            Method::POST,
            format!("{o}/aliases"),
            Some(json!({"address": "y@acme.example", "mailbox_id": mailbox})),
        ),
        (
            Method::DELETE,
            format!("{o}/aliases/hello@acme.example"),
            None,
        ),
        (Method::GET, format!("{o}/grants"), None),
        (
            Method::POST,
            format!("{o}/grants"),
            Some(
                json!({"grantee": {"user": user}, "target": {"mailbox": mailbox}, "preset": "read"}),
            ),
        ),
        (
            Method::PATCH,
            format!("{o}/grants/{grant}"),
            Some(json!({"preset": "read"})),
        ),
        (Method::DELETE, format!("{o}/grants/{grant}"), None),
        (Method::GET, format!("{o}/members"), None),
        (
            Method::PATCH,
            format!("{o}/members/{user}"),
            Some(json!({"role": "admin"})),
        ),
        (Method::DELETE, format!("{o}/members/{user}"), None),
        (Method::GET, format!("{o}/members/{user}/access"), None),
        (Method::GET, format!("{o}/invitations"), None),
        (
            Method::POST,
            format!("{o}/invitations"),
            Some(json!({"email": "z@x.example", "role": "external"})),
        ),
        (Method::GET, format!("{o}/teams"), None),
        (
            Method::POST,
            format!("{o}/teams"),
            Some(json!({"name": "spies"})),
        ),
        (Method::GET, format!("{o}/audit"), None),
        (Method::GET, format!("{o}/queue"), None),
        (Method::GET, format!("{o}/partnerships"), None),
        (Method::GET, format!("{o}/clients"), None),
    ]
}

#[tokio::test]
async fn no_endpoint_shows_one_organization_to_another_outside_a_partnership() {
    let dir = tempfile::tempdir().unwrap();
    let acme = seed(dir.path(), "lr");
    let (beta, beta_mailbox) = seed_beta(dir.path());
    let server = start(dir.path(), "");
    let outsider = Api::login(&server, BETA_OWNER, BETA_OWNER_PASSWORD).await;
    for (method, path, body) in probes(acme.org, acme.contact, acme.grant, acme.lucie) {
        let (status, answer) = outsider.call(method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    // Acme's ids under Beta's own path are not found either.
    let read = json!({"preset": "read"});
    for (method, path, body) in [
        (
            Method::GET,
            format!("/api/v1/orgs/{beta}/mailboxes/{}", acme.contact),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/orgs/{beta}/grants/{}", acme.grant),
            Some(read),
        ),
        (
            Method::GET,
            format!("/api/v1/orgs/{beta}/members/{}/access", acme.lucie),
            None,
        ),
    ] {
        let (status, answer) = outsider.call(method, &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    let (_, me) = outsider.get("/api/v1/me").await;
    assert_eq!(me["organizations"].as_array().unwrap().len(), 1, "{me}");
    // And Acme's owner sees nothing of Beta.
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, _) = owner
        .get(&format!("/api/v1/orgs/{beta}/mailboxes/{beta_mailbox}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_partnership_opens_its_scope_and_nothing_more_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let acme = seed(dir.path(), "lr");
    let (beta, _) = seed_beta(dir.path());
    let server = start(dir.path(), "");
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let partner = Api::login(&server, BETA_OWNER, BETA_OWNER_PASSWORD).await;
    let (org, contact) = (acme.org, acme.contact);
    let (status, other) = owner
        .post(
            &format!("/api/v1/orgs/{org}/mailboxes"),
            json!({"address": "secret@acme.example", "password": "secret-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let secret = other["id"].as_u64().unwrap();
    let (status, p) = owner
        .post(
            &format!("/api/v1/orgs/{org}/partnerships"),
            json!({"partner": beta, "scope": {"limited": [contact]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let id = p["id"].as_u64().unwrap();
    // Invited, not accepted: still nothing.
    let (status, _) = partner
        .get(&format!("/api/v1/orgs/{org}/mailboxes/{contact}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = owner
        .post(
            &format!("/api/v1/orgs/{org}/partnerships/{id}/accept"),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the client cannot accept for the partner"
    );
    let (status, body) = partner
        .call(
            Method::POST,
            &format!("/api/v1/orgs/{beta}/partnerships/{id}/accept"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = partner
        .call(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/mailboxes/{contact}"),
            Some(json!({"quota_bytes": 5000000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "in scope: {body}");
    let (status, body) = partner
        .call(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/mailboxes/{secret}"),
            Some(json!({"quota_bytes": 1})),
        )
        .await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "out of scope: {status} {body}"
    );
    let (status, body) = partner.get(&format!("/api/v1/orgs/{org}/members")).await;
    let nobody = status == StatusCode::OK && body["items"].as_array().is_some_and(|i| i.is_empty());
    assert!(
        nobody || status.is_client_error(),
        "people stay the client's business: {status} {body}"
    );
    let (status, csv) = partner
        .text(
            Method::GET,
            &format!("/api/v1/orgs/{beta}/clients?format=csv"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        csv.starts_with("client_id,client_name,scope,since\r\n")
            && csv.contains(&format!("{org},Acme,limited:{contact},")),
        "{csv}"
    );
    // The client widens the scope; then the partner ends it, confirming with its password.
    let (status, body) = owner
        .call(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/partnerships/{id}"),
            Some(json!({"scope": "full"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = partner
        .call(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/mailboxes/{secret}"),
            Some(json!({"quota_bytes": 7000000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "full scope: {body}");
    let (status, _) = partner
        .post(
            &format!("/api/v1/orgs/{beta}/partnerships/{id}/end"),
            json!({"password": "wrong"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = partner
        .post(
            &format!("/api/v1/orgs/{beta}/partnerships/{id}/end"),
            json!({"password": BETA_OWNER_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = partner
        .get(&format!("/api/v1/orgs/{org}/mailboxes/{contact}"))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "ended: the client is out of sight again"
    );
}
