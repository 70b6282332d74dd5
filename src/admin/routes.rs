//! Every endpoint of the API in one table: the router is built from it, and so is the OpenAPI
//! document (`GET /api/v1/openapi.json`), so the two cannot drift apart.

use super::*;
use crate::model::AuditEvent;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

/// A body type, as the document names and describes it (from its `ToSchema` derive, so a
/// field added to the type appears in the document).
#[derive(Clone, Copy)]
struct Body {
    name: fn() -> String,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
    /// A page of these (`{items, next_cursor}`).
    page: bool,
}

fn body<T: ToSchema>() -> Body {
    Body {
        name: || T::name().into_owned(),
        collect: |out| {
            T::schemas(out);
            out.push((T::name().into_owned(), T::schema()));
        },
        page: false,
    }
}

fn page<T: ToSchema>() -> Body {
    Body {
        page: true,
        ..body::<T>()
    }
}

/// One method on one path.
pub struct Endpoint {
    pub method: &'static str,
    pub path: String,
    pub summary: &'static str,
    /// Whether a bearer token is required.
    pub auth: bool,
    /// Whether the request has a JSON body.
    pub body: bool,
    /// The status of success.
    pub ok: u16,
    request: Option<Body>,
    response: Option<Body>,
    /// Query parameters besides a page's `limit` and `cursor`.
    query: &'static [&'static str],
    /// The media type of a request body that is a file, not JSON (an mbox upload).
    upload: Option<&'static str>,
    /// Whether the request and the answer are XML (Outlook's Autodiscover v1), not JSON.
    xml: bool,
    /// The schema of a 400 answer, where it is not the API's `Error` (Autodiscover v2 answers
    /// as Microsoft's clients expect).
    bad_request: Option<fn() -> Value>,
    handler: MethodRouter<Arc<Services>>,
}

type Handler = MethodRouter<Arc<Services>>;

fn ep(method: &'static str, path: &str, summary: &'static str, handler: Handler) -> Endpoint {
    let body = matches!(method, "post" | "patch" | "put");
    Endpoint {
        method,
        path: path.to_string(),
        summary,
        auth: true,
        body,
        ok: match method {
            "delete" => 204,
            _ => 200,
        },
        request: None,
        upload: None,
        response: None,
        query: &[],
        xml: false,
        bad_request: None,
        handler,
    }
}

impl Endpoint {
    fn public(mut self) -> Endpoint {
        self.auth = false;
        self
    }

    fn created(mut self) -> Endpoint {
        self.ok = 201;
        self
    }

    fn accepted(mut self) -> Endpoint {
        self.ok = 202;
        self
    }

    fn no_body(mut self) -> Endpoint {
        self.body = false;
        self
    }

    fn empty(mut self) -> Endpoint {
        self.ok = 204;
        self
    }

    fn uploads(mut self, media: &'static str) -> Endpoint {
        self.upload = Some(media);
        self
    }

    fn takes(mut self, request: Body) -> Endpoint {
        self.request = Some(request);
        self
    }

    fn gives(mut self, response: Body) -> Endpoint {
        self.response = Some(response);
        self
    }

    fn query(mut self, names: &'static [&'static str]) -> Endpoint {
        self.query = names;
        self
    }

    fn xml(mut self) -> Endpoint {
        self.xml = true;
        self
    }

    fn bad_request(mut self, schema: fn() -> Value) -> Endpoint {
        self.bad_request = Some(schema);
        self
    }
}

/// Autodiscover v2's refusal, in Microsoft's words.
fn outlook_v2_error() -> Value {
    json!({
        "type": "object",
        "required": ["ErrorCode", "ErrorMessage"],
        "properties": {"ErrorCode": {"type": "string"}, "ErrorMessage": {"type": "string"}},
    })
}

/// The whole API.
pub fn endpoints() -> Vec<Endpoint> {
    let o = "/api/v1/orgs/{org}";
    let at = |rest: &str| format!("{o}{rest}");
    vec![
        ep(
            "get",
            "/healthz",
            "Whether the server and its store answer",
            get(healthz),
        )
        .public(),
        ep(
            "get",
            "/.well-known/acme-challenge/{token}",
            "The answer to an ACME HTTP-01 challenge being validated now (RFC 8555 §8.3)",
            get(acme_challenge),
        )
        .public(),
        ep(
            "get",
            "/metrics",
            "Counters in Prometheus text format",
            get(metrics),
        )
        .public(),
        ep(
            "get",
            "/api/v1/openapi.json",
            "This document",
            get(openapi_json),
        )
        .public(),
        ep(
            "get",
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            "Thunderbird autoconfig",
            get(autoconfig::thunderbird),
        )
        .query(&["emailaddress"])
        .public(),
        ep(
            "get",
            "/mail/config-v1.1.xml",
            "Thunderbird autoconfig (ISP location)",
            get(autoconfig::thunderbird),
        )
        .query(&["emailaddress"])
        .public(),
        ep(
            "post",
            "/autodiscover/autodiscover.xml",
            "Outlook Autodiscover v1 (POX)",
            post(autoconfig::outlook_v1),
        )
        .xml()
        .public(),
        ep(
            "post",
            "/Autodiscover/Autodiscover.xml",
            "Outlook Autodiscover v1, as Outlook spells it",
            post(autoconfig::outlook_v1),
        )
        .xml()
        .public(),
        ep(
            "get",
            "/autodiscover/autodiscover.json",
            "Outlook Autodiscover v2",
            get(autoconfig::outlook_v2),
        )
        .query(&["Email", "Protocol"])
        .bad_request(
            || json!({"oneOf": [{"$ref": "#/components/schemas/Error"}, outlook_v2_error()]}),
        )
        .public(),
        ep(
            "get",
            "/autodiscover/autodiscover.json/v1.0/{email}",
            "Outlook Autodiscover v2, the address in the path",
            get(autoconfig::outlook_v2_path),
        )
        .query(&["Protocol"])
        .bad_request(
            || json!({"oneOf": [{"$ref": "#/components/schemas/Error"}, outlook_v2_error()]}),
        )
        .public(),
        ep(
            "get",
            "/apple/mobileconfig",
            "Apple configuration profile",
            get(autoconfig::apple),
        )
        .query(&["emailaddress"])
        .public(),
        ep(
            "post",
            "/api/v1/session",
            "Log in: a bearer token",
            post(session::login),
        )
        .takes(body::<session::LoginRequest>())
        .gives(body::<session::LoginResponse>())
        .public()
        .created(),
        ep(
            "delete",
            "/api/v1/session",
            "Log out: the token stops working",
            delete(session::logout),
        ),
        ep(
            "post",
            "/api/v1/invitations/{token}/accept",
            "Accept an invitation",
            post(invitations::accept),
        )
        .takes(body::<invitations::Acceptance>())
        .gives(body::<invitations::Accepted>())
        .public()
        .created(),
        ep(
            "get",
            "/api/v1/me",
            "Who you are and your organizations",
            get(session::me),
        )
        .gives(body::<session::Me>()),
        ep(
            "post",
            "/api/v1/me/password",
            "Change your password",
            post(session::change_password),
        )
        .takes(body::<session::PasswordChange>())
        .empty(),
        ep(
            "get",
            "/api/v1/me/audit",
            "Your own activity",
            get(audit_log::own_log),
        )
        .query(&["action", "target", "since", "until", "format"])
        .gives(page::<AuditEvent>()),
        ep(
            "get",
            "/api/v1/me/export",
            "Your data as JSON",
            get(export::me),
        )
        .gives(body::<export::MyData>()),
        ep(
            "get",
            "/api/v1/me/tokens",
            "Your personal API tokens",
            get(tokens::list),
        )
        .gives(page::<tokens::TokenView>()),
        ep(
            "post",
            "/api/v1/me/tokens",
            "Make a personal API token",
            post(tokens::create),
        )
        .takes(body::<tokens::NewToken>())
        .gives(body::<tokens::CreatedToken>())
        .created(),
        ep(
            "delete",
            "/api/v1/me/tokens/{name}",
            "Revoke a personal API token",
            delete(tokens::revoke),
        ),
        ep(
            "delete",
            "/api/v1/me/organizations/{org}",
            "Leave an organization: your grants there end at once",
            delete(session::leave),
        ),
        ep(
            "get",
            "/api/v1/orgs",
            "Every organization of the server (operators)",
            get(orgs::list),
        )
        .gives(page::<orgs::OrganizationView>()),
        ep(
            "post",
            "/api/v1/orgs",
            "Create an organization and its first owner (operators)",
            post(orgs::create),
        )
        .takes(body::<orgs::NewOrganization>())
        .gives(body::<orgs::CreatedOrganization>())
        .created(),
        ep(
            "patch",
            "/api/v1/orgs/{org}",
            "Rename an organization; suspend or resume it (operators)",
            patch(orgs::change),
        )
        .takes(body::<orgs::OrganizationChange>())
        .gives(body::<orgs::OrganizationView>()),
        ep(
            "delete",
            "/api/v1/orgs/{org}",
            "Suspend an organization now and delete it after the grace period, its mail exported first (operators)",
            delete(orgs::delete),
        )
        .gives(body::<orgs::OrganizationView>())
        .accepted(),
        ep(
            "get",
            "/api/v1/audit",
            "The server's own audit log: organizations created and deleted, operators named (operators)",
            get(audit_log::server_log),
        )
        .query(&["actor", "action", "target", "since", "until", "format"])
        .gives(page::<AuditEvent>()),
        ep(
            "get",
            "/api/v1/operators",
            "The server's operators",
            get(orgs::operators),
        )
        .gives(page::<orgs::OperatorView>()),
        ep(
            "post",
            "/api/v1/operators",
            "Name another operator",
            post(orgs::add_operator),
        )
        .takes(body::<orgs::NewOperator>())
        .gives(body::<orgs::OperatorView>())
        .created(),
        ep(
            "delete",
            "/api/v1/operators/{user}",
            "No longer an operator (the last one stays)",
            delete(orgs::remove_operator),
        ),
        ep("get", &at("/domains"), "List domains", get(domains::list))
            .gives(page::<domains::DomainView>()),
        ep(
            "post",
            &at("/domains"),
            "Add a domain",
            post(domains::create),
        )
        .takes(body::<domains::NewDomain>())
        .gives(body::<domains::DomainView>())
        .created(),
        ep(
            "delete",
            &at("/domains/{name}"),
            "Remove a domain",
            delete(domains::delete),
        ),
        ep(
            "get",
            &at("/domains/{name}/dns"),
            "Every DNS record the domain needs, with what the DNS has now",
            get(domain_dns::records),
        )
        .query(&["format"])
        .gives(body::<domain_dns::DomainRecords>()),
        ep(
            "post",
            &at("/domains/{name}/verify"),
            "Look for the domain's ownership token in the DNS",
            post(domain_dns::verify),
        )
        .gives(body::<domains::DomainView>()),
        ep(
            "get",
            &at("/domains/{name}/dkim"),
            "The domain's DKIM keys and their DNS records",
            get(domains::dkim_keys),
        )
        .gives(page::<domains::DkimKeyView>()),
        ep(
            "post",
            &at("/domains/{name}/dkim"),
            "New DKIM keys, to publish before activating them",
            post(domains::new_dkim_keys),
        )
        .gives(body::<domains::DkimKeys>())
        .created(),
        ep(
            "post",
            &at("/domains/{name}/dkim/{selector}/activate"),
            "Sign with this DKIM key; the one it replaces retires",
            post(domains::activate_dkim_key),
        )
        .gives(body::<domains::DkimKeys>()),
        ep(
            "delete",
            &at("/domains/{name}/dkim/{selector}"),
            "Forget a DKIM key that no longer signs",
            delete(domains::delete_dkim_key),
        ),
        ep(
            "get",
            &at("/mailboxes"),
            "List mailboxes with usage",
            get(mailboxes::list),
        )
        .gives(page::<mailboxes::MailboxView>()),
        ep(
            "post",
            &at("/mailboxes"),
            "Create a mailbox",
            post(mailboxes::create),
        )
        .takes(body::<mailboxes::CreateMailbox>())
        .gives(body::<mailboxes::MailboxView>())
        .created(),
        ep(
            "get",
            &at("/mailboxes/{id}"),
            "One mailbox",
            get(mailboxes::get),
        )
        .gives(body::<mailboxes::MailboxView>()),
        ep(
            "patch",
            &at("/mailboxes/{id}"),
            "Change password, quota or display name",
            patch(mailboxes::update),
        )
        .takes(body::<mailboxes::UpdateMailbox>())
        .gives(body::<mailboxes::MailboxView>()),
        ep(
            "delete",
            &at("/mailboxes/{id}"),
            "Delete a mailbox with its aliases and grants",
            delete(mailboxes::delete),
        ),
        ep(
            "get",
            &at("/mailboxes/{id}/imports"),
            "Imports into this mailbox, with their progress",
            get(imports::list),
        )
        .gives(page::<imports::ImportView>()),
        ep(
            "post",
            &at("/mailboxes/{id}/imports"),
            "Copy a mailbox from another IMAP server into this one, in the background",
            post(imports::create),
        )
        .takes(body::<imports::NewImport>())
        .gives(body::<imports::ImportView>())
        .accepted(),
        ep(
            "post",
            &at("/mailboxes/{id}/imports/mbox"),
            "Store the messages of an mbox (the body, up to 64 MiB) in this mailbox",
            post(imports::mbox).layer(axum::extract::DefaultBodyLimit::max(
                imports::MBOX_UPLOAD_LIMIT,
            )),
        )
        .query(&["folder"])
        .uploads("application/octet-stream")
        .gives(body::<imports::ImportView>())
        .created(),
        ep(
            "get",
            &at("/mailboxes/{id}/imports/{import}"),
            "An import's progress: folders, messages, bytes, rate, failures",
            get(imports::show),
        )
        .gives(body::<imports::ImportView>()),
        ep(
            "post",
            &at("/mailboxes/{id}/imports/{import}/resume"),
            "Resume an interrupted import after what it stored",
            post(imports::resume),
        )
        .takes(body::<imports::ResumeImport>())
        .gives(body::<imports::ImportView>())
        .accepted(),
        ep(
            "delete",
            &at("/mailboxes/{id}/imports/{import}"),
            "Stop a running import (resumable), or forget a stopped one",
            delete(imports::delete),
        ),
        ep(
            "get",
            &at("/mailboxes/{id}/access"),
            "Who can read this mailbox, and why",
            get(review::mailbox),
        )
        .gives(body::<review::MailboxAccessReview>()),
        ep(
            "get",
            &at("/mailboxes/{id}/export"),
            "The mailbox as mbox",
            get(export::mailbox),
        )
        .query(&["folder"]),
        ep(
            "get",
            &at("/aliases"),
            "List aliases",
            get(mailboxes::list_aliases),
        )
        .gives(page::<mailboxes::AliasView>()),
        ep(
            "post",
            &at("/aliases"),
            "Create an alias",
            post(mailboxes::create_alias),
        )
        .takes(body::<mailboxes::CreateAlias>())
        .gives(body::<mailboxes::AliasView>())
        .created(),
        ep(
            "delete",
            &at("/aliases/{address}"),
            "Remove an alias",
            delete(mailboxes::delete_alias),
        ),
        ep("get", &at("/grants"), "List grants", get(grants::list))
            .gives(page::<grants::GrantView>()),
        ep(
            "post",
            &at("/grants"),
            "Grant rights on a mailbox or on all",
            post(grants::create),
        )
        .takes(body::<grants::GrantRequest>())
        .gives(body::<grants::GrantView>())
        .created(),
        ep(
            "patch",
            &at("/grants/{id}"),
            "Change a grant",
            patch(grants::update),
        )
        .takes(body::<grants::GrantChange>())
        .gives(body::<grants::GrantView>()),
        ep(
            "delete",
            &at("/grants/{id}"),
            "Remove a grant",
            delete(grants::delete),
        ),
        ep("get", &at("/members"), "List members", get(grants::members))
            .gives(page::<grants::MemberView>()),
        ep(
            "patch",
            &at("/members/{user}"),
            "Change a member's role",
            patch(grants::change_role),
        )
        .takes(body::<grants::RoleChange>()),
        ep(
            "delete",
            &at("/members/{user}"),
            "Remove a member",
            delete(grants::remove_member),
        ),
        ep(
            "get",
            &at("/members/{user}/access"),
            "Everything a member can reach",
            get(review::user),
        )
        .gives(body::<review::UserReach>()),
        ep(
            "get",
            &at("/invitations"),
            "Pending invitations",
            get(invitations::list),
        )
        .gives(page::<invitations::InvitationView>()),
        ep(
            "post",
            &at("/invitations"),
            "Invite by email",
            post(invitations::create),
        )
        .takes(body::<invitations::InvitationRequest>())
        .gives(body::<invitations::InvitationView>())
        .created(),
        ep(
            "delete",
            &at("/invitations/{id}"),
            "Withdraw an invitation",
            delete(invitations::withdraw),
        ),
        ep(
            "post",
            &at("/invitations/{id}/resend"),
            "Send a new link",
            post(invitations::resend),
        )
        .gives(body::<invitations::InvitationView>())
        .no_body(),
        ep("get", &at("/teams"), "List teams", get(teams::list)).gives(page::<teams::TeamView>()),
        ep("post", &at("/teams"), "Create a team", post(teams::create))
            .takes(body::<teams::TeamName>())
            .gives(body::<teams::TeamView>())
            .created(),
        ep(
            "patch",
            &at("/teams/{id}"),
            "Rename a team",
            patch(teams::rename),
        )
        .takes(body::<teams::TeamName>())
        .gives(body::<teams::TeamView>()),
        ep(
            "delete",
            &at("/teams/{id}"),
            "Delete a team with its grants",
            delete(teams::delete),
        ),
        ep(
            "put",
            &at("/teams/{id}/members/{user}"),
            "Add a member to a team",
            put(teams::add_member),
        )
        .no_body()
        .empty(),
        ep(
            "delete",
            &at("/teams/{id}/members/{user}"),
            "Remove a member from a team",
            delete(teams::remove_member),
        ),
        ep(
            "get",
            &at("/audit"),
            "The audit log (JSON or CSV)",
            get(audit_log::org_log),
        )
        .query(&["actor", "action", "target", "since", "until", "format"])
        .gives(page::<AuditEvent>()),
        ep(
            "get",
            &at("/queue"),
            "Outbound mail not yet delivered",
            get(queue::list),
        )
        .gives(page::<queue::QueuedView>()),
        ep(
            "get",
            &at("/partnerships"),
            "Partnerships as client or partner",
            get(partnerships::list),
        )
        .gives(page::<partnerships::PartnershipView>()),
        ep(
            "post",
            &at("/partnerships"),
            "Invite a partner organization",
            post(partnerships::invite),
        )
        .takes(body::<partnerships::PartnerInvitation>())
        .gives(body::<partnerships::PartnershipView>())
        .created(),
        ep(
            "patch",
            &at("/partnerships/{id}"),
            "Change a partnership's scope",
            patch(partnerships::rescope),
        )
        .takes(body::<partnerships::ScopeChange>())
        .gives(body::<partnerships::PartnershipView>()),
        ep(
            "post",
            &at("/partnerships/{id}/accept"),
            "Accept as the partner",
            post(partnerships::accept),
        )
        .gives(body::<partnerships::PartnershipView>())
        .no_body(),
        ep(
            "post",
            &at("/partnerships/{id}/refuse"),
            "Refuse as the partner",
            post(partnerships::refuse),
        )
        .gives(body::<partnerships::PartnershipView>())
        .no_body(),
        ep(
            "post",
            &at("/partnerships/{id}/end"),
            "End it, with your password",
            post(partnerships::end),
        )
        .takes(body::<partnerships::Confirmation>())
        .gives(body::<partnerships::PartnershipView>()),
        ep(
            "get",
            &at("/clients"),
            "Organizations managed as a partner (JSON or CSV)",
            get(partnerships::clients),
        )
        .query(&["format"])
        .gives(page::<partnerships::PartnershipView>()),
    ]
}

/// The router of `endpoints()`: paths with several methods are merged by axum.
pub fn build(services: Arc<Services>) -> Router {
    let budget = axum::middleware::from_fn_with_state(services.clone(), body_budget);
    endpoints()
        .into_iter()
        .fold(Router::new(), |router, e| router.route(&e.path, e.handler))
        .route("/console/", crate::console::home())
        .nest("/console", crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(budget)
        .with_state(services)
}

/// The largest request body taken (axum's default limit, named here for the budget).
const MAX_BODY_BYTES: u64 = 2 * 1024 * 1024;

/// A request body counts against the server's budget of bytes in flight, as SMTP and IMAP
/// messages do, while its request is handled: its `Content-Length`, or the largest body taken
/// when it announces none. Over the budget: 503, try again.
async fn body_budget(
    axum::extract::State(services): axum::extract::State<Arc<Services>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    let largest = if request.uri().path().ends_with("/imports/mbox") {
        super::imports::MBOX_UPLOAD_LIMIT as u64
    } else {
        MAX_BODY_BYTES
    };
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let bodiless = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS
    );
    let bytes = match announced {
        // An mbox upload may be larger (`imports::MBOX_UPLOAD_LIMIT`); axum refuses bodies
        // over each route's limit, so what is reserved is what will be read. Elsewhere a
        // large announced length must not hold the budget (this runs before the login).
        Some(n) => n.min(largest),
        None if bodiless => 0,
        None => largest,
    };
    if bytes == 0 {
        return next.run(request).await;
    }
    match services.spool.reserve(bytes) {
        Ok(_held) => next.run(request).await,
        Err(_) => {
            ApiError::Unavailable("too much data in flight here; try again shortly").into_response()
        }
    }
}

async fn openapi_json() -> Json<Value> {
    Json(openapi())
}

/// The OpenAPI 3.1 document of `endpoints()`.
pub fn openapi() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    for e in endpoints() {
        for b in [e.request, e.response].into_iter().flatten() {
            (b.collect)(&mut schemas);
        }
        let item = paths.entry(e.path.clone()).or_insert_with(|| json!({}));
        item[e.method] = operation(&e);
    }
    add_links(&mut paths);
    let mut components: Map<String, Value> = Map::new();
    components.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error", "message"],
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
        }),
    );
    for (name, schema) in schemas {
        components.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mailgate admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Organizations, members, mailboxes, aliases, grants, teams, partnerships, invitations, audit. JSON in and out; errors are {\"error\": code, \"message\": text}.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components,
        },
        "paths": paths,
    })
}

fn operation(e: &Endpoint) -> Value {
    let paged = e.response.is_some_and(|b| b.page);
    let page_params: &[&str] = if paged { &["limit", "cursor"] } else { &[] };
    let queries = e.query.iter().chain(page_params).map(|name| {
        let schema = match *name {
            "limit" => json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            "format" => json!({"type": "string", "enum": ["json", "csv"]}),
            _ => json!({"type": "string"}),
        };
        json!({"name": name, "in": "query", "required": false, "schema": schema})
    });
    let parameters: Vec<Value> = path_params(&e.path)
        .into_iter()
        .map(|name| {
            let textual = matches!(name, "name" | "address" | "token")
                || (name == "id" && e.path.contains("/invitations/"));
            let schema = if textual {
                json!({"type": "string"})
            } else {
                json!({"type": "integer", "format": "int64"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .chain(queries)
        .collect();
    let error = |schema: Value| json!({"description": "An error", "content": {"application/json": {"schema": schema}}});
    let api_error = json!({"$ref": "#/components/schemas/Error"});
    let mut op = json!({
        "operationId": format!("{}{}", e.method, e.path.replace(['/', '{', '}', '.', '-'], "_")),
        "summary": e.summary,
        "tags": [tag(&e.path)],
        "parameters": parameters,
        "responses": {
            e.ok.to_string(): success(e),
            "4XX": error(api_error.clone()),
            // Password checks all taken, or the store failing for a moment: try again.
            "503": error(api_error),
        },
    });
    if let Some(schema) = e.bad_request {
        op["responses"]["400"] = error(schema());
    }
    if e.auth {
        op["security"] = json!([{"bearer": []}]);
    }
    if let Some(media) = e.upload {
        let schema = json!({"type": "string", "format": "binary"});
        op["requestBody"] = json!({"required": true, "content": {media: {"schema": schema}}});
    } else if e.body {
        let (media, schema) = match e.xml {
            true => ("application/xml", json!({"type": "string"})),
            false => (
                "application/json",
                e.request.map_or(json!({"type": "object"}), schema_ref),
            ),
        };
        op["requestBody"] = json!({"required": true, "content": {media: {"schema": schema}}});
    }
    op
}

/// OpenAPI links, so that clients and testers can follow what one answer names into the next
/// request: from `GET /api/v1/me` to every operation of an organization (its first one), and
/// from each creation (201) to the operations on what it created (`…/{id}` from the answer's
/// `id`, `…/{name}` from its `name`, and so on).
fn add_links(paths: &mut Map<String, Value>) {
    let operations: Vec<(String, String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, op)| {
                    let id = op["operationId"].as_str().unwrap_or_default().to_string();
                    (path.clone(), method.clone(), id)
                })
        })
        .collect();
    let org_only = |path: &str| path_params(path) == ["org"];
    for (path, method, _) in &operations {
        let mut links = Map::new();
        let status = if path == "/api/v1/me" && method == "get" {
            for (_, _, id) in operations.iter().filter(|(p, _, _)| org_only(p)) {
                let org = "$response.body#/organizations/0/id";
                links.insert(
                    id.clone(),
                    json!({"operationId": id, "parameters": {"org": org}}),
                );
            }
            "200"
        } else if paths[path][method]["responses"].get("201").is_some() {
            for (target, _, id) in &operations {
                let Some(rest) = target.strip_prefix(&format!("{path}/{{")) else {
                    continue;
                };
                let Some(name) = rest.split('}').next() else {
                    continue;
                };
                let mut parameters = Map::new();
                for p in path_params(path) {
                    parameters.insert(p.into(), json!(format!("$request.path.{p}")));
                }
                parameters.insert(name.into(), json!(format!("$response.body#/{name}")));
                links.insert(
                    id.clone(),
                    json!({"operationId": id, "parameters": parameters}),
                );
            }
            "201"
        } else {
            continue;
        };
        if !links.is_empty() {
            paths[path][method]["responses"][status]["links"] = Value::Object(links);
        }
    }
}

fn schema_ref(b: Body) -> Value {
    let item = json!({"$ref": format!("#/components/schemas/{}", (b.name)())});
    if b.page {
        json!({
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {"type": "array", "items": item},
                "next_cursor": {"type": ["string", "null"], "description": "Pass as ?cursor= for the next page"},
            },
        })
    } else {
        item
    }
}

fn success(e: &Endpoint) -> Value {
    let mut content = Map::new();
    if let Some(b) = e.response {
        content.insert("application/json".into(), json!({"schema": schema_ref(b)}));
    }
    if e.query.contains(&"format") {
        content.insert("text/csv".into(), json!({"schema": {"type": "string"}}));
    }
    if e.xml {
        content.insert(
            "application/xml".into(),
            json!({"schema": {"type": "string"}}),
        );
    }
    match content.is_empty() {
        true => json!({"description": "Success"}),
        false => json!({"description": "Success", "content": content}),
    }
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// The resource an endpoint belongs to: the segment after the organization, or after `v1`.
fn tag(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let after = |word: &str| {
        parts
            .iter()
            .position(|p| *p == word)
            .and_then(|i| parts.get(i + 2).or(parts.get(i + 1)))
    };
    if path.starts_with("/api/v1/orgs/") {
        after("orgs").map_or("orgs".into(), |s| s.to_string())
    } else if path.starts_with("/api/v1/") {
        parts.get(2).map_or("api".into(), |s| s.to_string())
    } else {
        "server".into()
    }
}
