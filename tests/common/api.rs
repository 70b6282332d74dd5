//! The admin API as a script calls it, with reqwest (a client we did not write).

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

pub struct Api {
    pub client: Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// An API client for `server`, logged in as `login` (a seeded user, no forced change).
    pub async fn login(server: &super::TestServer, login: &str, password: &str) -> Api {
        let mut api = Api {
            client: Client::new(),
            base: format!("http://{}", server.addr("admin (HTTP)")),
            token: None,
        };
        let (status, body) = api
            .post(
                "/api/v1/session",
                json!({"login": login, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        api.token = Some(body["token"].as_str().unwrap().to_string());
        api
    }

    /// The body as text, for the non-JSON answers (CSV, XML, metrics).
    pub async fn text(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> (StatusCode, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await.expect("request");
        (resp.status(), resp.text().await.unwrap())
    }
}
