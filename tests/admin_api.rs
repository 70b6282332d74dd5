//! The admin API as a script drives it, with reqwest: first login, the forced password change,
//! domains, mailboxes and aliases, and the errors a script can rely on.

mod common;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use common::api::Api;

/// Logs in as the first owner and changes the initial password; returns the API and org id.
async fn owner_session(server: &common::TestServer) -> (Api, u64) {
    let mut api = Api {
        client: Client::new(),
        base: format!("http://{}", server.addr("admin (HTTP)")),
        token: None,
    };
    let initial = server.initial_password().unwrap();
    let (status, body) = api
        .post(
            "/api/v1/session",
            json!({"login": "owner@localhost", "password": initial}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["must_change_password"], true);
    api.token = Some(body["token"].as_str().unwrap().to_string());

    let (status, me) = api.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    let org = me["organizations"][0]["id"].as_u64().unwrap();
    assert_eq!(me["organizations"][0]["role"], "owner");

    let (status, body) = api.get(&format!("/api/v1/orgs/{org}/domains")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "password_change_required");

    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let (status, body) = api
        .post("/api/v1/me/password", change("wrong", "long enough 1"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = api
        .post("/api/v1/me/password", change(&initial, "short"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = api
        .post("/api/v1/me/password", change(&initial, "a new password 1"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    (api, org)
}

#[tokio::test]
async fn first_login_forces_a_password_change_then_manages_domains_mailboxes_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), "");
    let (api, org) = owner_session(&server).await;
    let base = format!("/api/v1/orgs/{org}");

    let (status, _) = api
        .post(&format!("{base}/domains"), json!({"name": "Acme.Example"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = api
        .post(&format!("{base}/domains"), json!({"name": "acme.example"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, mailbox) = api
        .post(
            &format!("{base}/mailboxes"),
            json!({"address": "contact@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mailbox}");
    assert_eq!(
        mailbox["password"].as_str().unwrap().len(),
        20,
        "generated, shown once"
    );
    let id = mailbox["id"].as_u64().unwrap();
    let (_, fetched) = api.get(&format!("{base}/mailboxes/{id}")).await;
    assert!(
        fetched.get("password").is_none(),
        "the password is never shown again"
    );

    let (status, body) = api
        .post(
            &format!("{base}/mailboxes"),
            json!({"address": "x@elsewhere.example", "password": "p4ssword-long"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, alias) = api
        .post(
            &format!("{base}/aliases"),
            json!({"address": "hello@acme.example", "mailbox_id": id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alias}");
    let (status, body) = api
        .post(
            &format!("{base}/aliases"),
            json!({"address": "contact@acme.example", "mailbox_id": id}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an address is a mailbox or an alias: {body}"
    );

    let (status, updated) = api
        .call(
            Method::PATCH,
            &format!("{base}/mailboxes/{id}"),
            Some(json!({"quota_bytes": 1000000})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["quota_bytes"], 1000000);
    assert_eq!(updated["aliases"], json!(["hello@acme.example"]));

    let (status, list) = api.get(&format!("{base}/mailboxes?limit=10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["next_cursor"].is_null());

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("{base}/aliases/hello@acme.example"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(Method::DELETE, &format!("{base}/mailboxes/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("{base}/domains/acme.example"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn errors_are_json_with_precise_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), "");
    let (api, org) = owner_session(&server).await;

    // Another organization's resources do not exist for this caller.
    let (status, body) = api.get("/api/v1/orgs/999999/domains").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = api
        .get(&format!("/api/v1/orgs/{org}/mailboxes/424242"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A body that is not JSON, and one of the wrong shape.
    let raw = api
        .client
        .post(format!("{}/api/v1/orgs/{org}/domains", api.base))
        .bearer_auth(api.token.as_ref().unwrap())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");
    let (status, body) = api
        .post(&format!("/api/v1/orgs/{org}/domains"), json!({"nam": "x"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api
        .post(
            &format!("/api/v1/orgs/{org}/domains"),
            json!({"name": "not a domain"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api.get("/api/v1/orgs/not-a-number/domains").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // No token, a bad token, a revoked token.
    let anonymous = Api {
        client: Client::new(),
        base: api.base.clone(),
        token: None,
    };
    let (status, body) = anonymous.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    let (status, _) = api.call(Method::DELETE, "/api/v1/session", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get("/api/v1/me").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token is refused"
    );

    let (status, body) = anonymous
        .post(
            "/api/v1/session",
            json!({"login": "owner@localhost", "password": "nope"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
}

#[tokio::test]
async fn teams_carry_grants_and_take_them_along_when_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), "");
    let (api, org) = owner_session(&server).await;
    let base = format!("/api/v1/orgs/{org}");
    let (_, me) = api.get("/api/v1/me").await;
    let owner = me["id"].as_u64().unwrap();
    api.post(&format!("{base}/domains"), json!({"name": "acme.example"}))
        .await;
    let (_, mailbox) = api
        .post(
            &format!("{base}/mailboxes"),
            json!({"address": "team@acme.example"}),
        )
        .await;
    let mailbox = mailbox["id"].as_u64().unwrap();

    let (status, team) = api
        .post(&format!("{base}/teams"), json!({"name": "Support"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let team = team["id"].as_u64().unwrap();
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{base}/teams/{team}/members/{owner}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, grant) = api
        .post(
            &format!("{base}/grants"),
            json!({"grantee": {"team": team}, "target": {"mailbox": mailbox}, "preset": "read"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    assert_eq!(grant["rights"], "lrs");
    let (_, teams) = api.get(&format!("{base}/teams")).await;
    assert_eq!(teams["items"][0]["members"], json!([owner]));

    let (status, _) = api
        .call(Method::DELETE, &format!("{base}/teams/{team}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, grants) = api.get(&format!("{base}/grants")).await;
    assert_eq!(grants["items"], json!([]), "the team's grants went with it");
    let (status, _) = api
        .call(Method::DELETE, &format!("{base}/teams/{team}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
