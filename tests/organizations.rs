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
