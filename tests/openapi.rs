//! The OpenAPI document and the router come from one table: every documented operation is
//! served (never the "no such endpoint" fallback, never 405), and what is not documented is
//! not served.

mod common;

use common::api::Api;
use common::*;
use reqwest::{Method, StatusCode};
use std::collections::HashSet;

#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else() {
    let (_dir, _, server) = seeded_server("lr");
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{}", server.addr("admin (HTTP)")),
        token: None,
    };
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut ids = HashSet::new();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(
                ids.insert(op["operationId"].as_str().unwrap().to_string()),
                "unique ids"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{path}"
            );
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = op.get("requestBody").map(|_| serde_json::json!({}));
            let (status, text) = api
                .text(method.clone(), &concrete, body.map(|b| b.to_string()))
                .await;
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {text}"
            );
            assert!(
                !text.contains("no such endpoint"),
                "{method} {path} is documented but not served: {status} {text}"
            );
        }
    }
    assert!(operations >= 50, "{operations}");
    // Bodies are described from the handlers' own types, and every reference resolves.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    let create = &doc["paths"]["/api/v1/orgs/{org}/mailboxes"]["post"];
    let request = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let request = &schemas[request.rsplit('/').next().unwrap()];
    assert!(request["properties"]["address"].is_object(), "{request}");
    assert!(
        request["required"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("address")),
        "{request}"
    );
    // Links lead from a creation to what it created, and from /me to an organization.
    let links = &create["responses"]["201"]["links"];
    let get_mailbox = &links["get_api_v1_orgs__org__mailboxes__id_"];
    assert_eq!(
        get_mailbox["parameters"]["id"], "$response.body#/id",
        "{links}"
    );
    assert_eq!(
        get_mailbox["parameters"]["org"], "$request.path.org",
        "{links}"
    );
    let me = &doc["paths"]["/api/v1/me"]["get"]["responses"]["200"]["links"];
    assert_eq!(
        me["get_api_v1_orgs__org__mailboxes"]["parameters"]["org"],
        "$response.body#/organizations/0/id",
        "{me}"
    );
    for link in text.split("\"operationId\":").skip(1) {
        let id = link.split('"').nth(1).unwrap();
        assert!(ids.contains(id), "a link to {id}, which is no operation");
    }
    let list = &doc["paths"]["/api/v1/orgs/{org}/grants"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert!(
        list["properties"]["items"]["items"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("/GrantView"),
        "{list}"
    );
    let query_names = |path: &str| -> Vec<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let grants = query_names("/api/v1/orgs/{org}/grants");
    assert!(
        grants.contains(&"limit".into()) && grants.contains(&"cursor".into()),
        "{grants:?}"
    );
    let audit = query_names("/api/v1/orgs/{org}/audit");
    assert!(
        audit.contains(&"since".into()) && audit.contains(&"format".into()),
        "{audit:?}"
    );
    for (method, path) in [
        (Method::GET, "/api/v1/orgs/1/nothing"),
        (Method::GET, "/api/v1/secret"),
        (Method::PUT, "/api/v1/me"),
    ] {
        let (status, text) = api.text(method.clone(), path, None).await;
        assert!(
            status == StatusCode::METHOD_NOT_ALLOWED || text.contains("no such endpoint"),
            "{method} {path} is served but not documented: {status} {text}"
        );
    }
}
