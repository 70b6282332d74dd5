//! The console through the admin listener's router, as a browser without JavaScript meets it:
//! pages and their status, escaping, the CSRF refusal, and authorization (a collaborator sees
//! no control she may not use, and posting it anyway is refused).

use crate::harness::{ADDRESS, Harness, PASSWORD};
use crate::model::*;
use crate::store::NewUser;
use axum::http::{HeaderMap, Request, StatusCode, header};
use std::collections::HashMap;
use tower::ServiceExt;

const OWNER: &str = "owner@harness.test";

/// A browser of one user: keeps the cookies the console sets.
struct Browser<'a> {
    harness: &'a Harness,
    cookies: HashMap<String, String>,
    /// Whether requests come from htmx (`HX-Request`).
    htmx: bool,
    /// The client's address, as the listener would give it (none: unknown).
    peer: Option<std::net::SocketAddr>,
    /// Whether the requests come over the listener's TLS.
    tls: bool,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The CSRF token of the page's first form.
    fn csrf(&self) -> String {
        let at = self.body.find(r#"name="csrf" value=""#).expect("a form");
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').expect("the value's end")].to_string()
    }
}

impl<'a> Browser<'a> {
    fn new(harness: &'a Harness) -> Browser<'a> {
        Browser {
            harness,
            cookies: HashMap::new(),
            htmx: false,
            peer: None,
            tls: false,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, String::new()).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", super::url_encoded(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send("POST", path, body).await
    }

    /// A form posted by htmx (an in-place edit), which asks for a fragment.
    async fn post_htmx(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.htmx = true;
        let page = self.post(path, form).await;
        self.htmx = false;
        page
    }

    async fn send(&mut self, method: &str, path: &str, body: String) -> Page {
        let cookies = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = Request::builder();
        if self.htmx {
            request = request.header("hx-request", "true");
        }
        let request = request
            .method(method)
            .uri(path)
            .header(header::COOKIE, cookies)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap();
        let mut request = request;
        if self.tls {
            let transport = super::Transport { tls: true };
            request.extensions_mut().insert(transport);
        }
        if let Some(peer) = self.peer {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        let router = crate::admin::router(self.harness.services.clone());
        let Ok(response) = router.oneshot(request).await;
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0;") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// Logs in as `login` through the login form; where the console sent the browser.
    async fn log_in(&mut self, login: &str, password: &str) -> Page {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/console/login",
            &[("csrf", &csrf), ("login", login), ("password", password)],
        )
        .await
    }
}

fn org(h: &Harness) -> OrgId {
    h.services.store.organizations().unwrap()[0].id
}

/// Lucie, a collaborator of the harness's organization, with `rights` granted directly on its
/// mailbox.
fn lucie(h: &Harness, rights: &str) -> Grant {
    let store = &h.services.store;
    let user = store
        .create_user(NewUser {
            login: "lucie@elsewhere.test".into(),
            display_name: String::new(),
            password: crate::password::hash("lucie-password").unwrap(),
            must_change_password: false,
            own_mailbox: None,
        })
        .unwrap();
    store
        .set_member(org(h), user.id, Role::Collaborator)
        .unwrap();
    store
        .add_grant(NewGrant {
            org: org(h),
            grantee: Grantee::User(user.id),
            target: GrantTarget::Mailbox(h.mailbox()),
            rights: Rights::parse(rights).unwrap(),
            send: None,
        })
        .unwrap()
}

#[tokio::test]
async fn logging_in_sets_a_strict_session_cookie_and_shows_the_organizations() {
    let h = Harness::new();
    let mut browser = Browser::new(&h);
    let login = browser.get("/console/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains(r#"<label for="login">Login</label>"#));
    assert!(login.body.contains(&format!("mailgate {}", super::VERSION)));
    let csp = login.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!login.body.contains("<script>"), "no inline script");

    let answer = browser.log_in(OWNER, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), "/console/");
    let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("mailgate_console="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");

    let home = browser.get("/console/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Harness"), "{}", home.body);
    assert_eq!(home.headers[header::CACHE_CONTROL], "no-store");
    let events = h.services.store.audit_events(&Default::default()).unwrap();
    assert!(
        events.iter().any(|e| e.action == "admin.login"),
        "audited as the API's"
    );

    // Logging out ends the session: its token no longer opens a page.
    let csrf = home.csrf();
    let out = browser.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.location(), "/console/login");
    let after = browser.get("/console/").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/console/login");
}

#[tokio::test]
async fn a_wrong_password_or_a_forged_login_form_is_refused() {
    let h = Harness::new();
    let mut browser = Browser::new(&h);
    let wrong = browser.log_in(OWNER, "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains(r#"role="alert""#), "{}", wrong.body);
    assert!(wrong.body.contains(OWNER), "the login stays filled in");
    // A login form posted from elsewhere has no matching cookie.
    let mut other = Browser::new(&h);
    let forged = other
        .post(
            "/console/login",
            &[("csrf", "x"), ("login", OWNER), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!other.cookies.contains_key("mailgate_console"));
}

#[tokio::test]
async fn a_user_who_must_change_the_password_sees_nothing_else_first() {
    let h = Harness::new();
    let store = &h.services.store;
    let user = store
        .create_user(NewUser {
            login: "new@elsewhere.test".into(),
            display_name: String::new(),
            password: crate::password::hash("first-password").unwrap(),
            must_change_password: true,
            own_mailbox: None,
        })
        .unwrap();
    store.set_member(org(&h), user.id, Role::Admin).unwrap();
    let mut browser = Browser::new(&h);
    let answer = browser.log_in("new@elsewhere.test", "first-password").await;
    assert_eq!(answer.location(), "/console/password", "{}", answer.body);
    let elsewhere = browser.get("/console/").await;
    assert_eq!(elsewhere.location(), "/console/password");
    let form = browser.get("/console/password").await;
    assert!(form.body.contains("must be changed"), "{}", form.body);
    let csrf = form.csrf();
    let change = |new: &'static str, again: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("current_password", "first-password".to_string()),
            ("new_password", new.to_string()),
            ("confirm_password", again.to_string()),
        ]
    };
    let pairs = change("a long new password", "another one entirely");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let differ = browser.post("/console/password", &pairs).await;
    assert_eq!(differ.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pairs = change("short", "short");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let short = browser.post("/console/password", &pairs).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.body.contains("at least"), "{}", short.body);
    let pairs = change("a long new password", "a long new password");
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = browser.post("/console/password", &pairs).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/console/");
    let home = browser.get("/console/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Harness"));
}

#[tokio::test]
async fn the_access_page_shows_who_can_read_and_why_and_removes_a_direct_grant() {
    let h = Harness::new();
    let grant = lucie(&h, "lrs");
    let (org, mailbox) = (org(&h), h.mailbox());
    let mut browser = Browser::new(&h);
    browser.log_in(OWNER, PASSWORD).await;
    let path = format!("/console/orgs/{org}/mailboxes/{mailbox}/access");
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for expected in [
        "Anyone with the mailbox password",
        "knows the mailbox password",
        "lucie@elsewhere.test",
        "direct grant",
        "owner of the organization (may reset its password)",
        r#"<label for="check">"#,
    ] {
        assert!(page.body.contains(expected), "{expected}: {}", page.body);
    }
    let checked = browser
        .get(&format!("{path}?check=LUCIE@elsewhere.test"))
        .await;
    assert!(
        checked
            .body
            .contains("lucie@elsewhere.test can read this mailbox."),
        "{}",
        checked.body
    );
    let owner = browser.get(&format!("{path}?check={OWNER}")).await;
    assert!(
        owner
            .body
            .contains("holds no rights on this mailbox, but can reset its password"),
        "{}",
        owner.body
    );
    let nobody = browser.get(&format!("{path}?check=nobody%40x.test")).await;
    assert!(
        nobody
            .body
            .contains("nobody@x.test cannot read this mailbox.")
    );

    let csrf = page.csrf();
    let removed = browser
        .post(
            &format!("/console/orgs/{org}/grants/{}/remove", grant.id),
            &[("csrf", &csrf), ("mailbox", &mailbox.to_string())],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.body);
    assert_eq!(removed.location(), path);
    let after = browser.get(&path).await;
    assert!(
        !after.body.contains("lucie@elsewhere.test"),
        "{}",
        after.body
    );
    let events = h.services.store.audit_events(&Default::default()).unwrap();
    assert!(events.iter().any(|e| e.action == "grant.delete"));
}

#[tokio::test]
async fn a_new_mailbox_shows_its_password_once_and_names_are_escaped() {
    let h = Harness::new();
    let org = org(&h);
    let mut browser = Browser::new(&h);
    browser.log_in(OWNER, PASSWORD).await;
    let list = browser.get(&format!("/console/orgs/{org}/mailboxes")).await;
    assert!(list.body.contains(ADDRESS), "{}", list.body);
    let csrf = list.csrf();
    let path = format!("/console/orgs/{org}/mailboxes");
    let made = browser
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("address", "sales@harness.test"),
                ("display_name", "<script>alert(1)</script>"),
                ("quota_mib", "5"),
                ("seen_policy", "per_user"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert!(made.body.contains("Mailbox sales@harness.test created"));
    assert!(
        made.body.contains("shown this once: <code>"),
        "{}",
        made.body
    );
    assert!(
        made.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        made.body
    );
    assert!(!made.body.contains("<script>alert"), "escaped");
    assert!(made.body.contains("5.0 MiB"));
    let again = browser.get(&path).await;
    assert!(!again.body.contains("shown this once"), "once only");
    let m = h.services.store.mailbox_by_address("sales@harness.test");
    assert_eq!(m.unwrap().unwrap().seen, SeenPolicy::PerUser);

    // An alias of the new mailbox, then removed.
    let sales = h
        .services
        .store
        .mailbox_by_address("sales@harness.test")
        .unwrap()
        .unwrap();
    let aliased = browser
        .post(
            &format!("/console/orgs/{org}/aliases"),
            &[
                ("csrf", &csrf),
                ("address", "deals@harness.test"),
                ("mailbox_id", &sales.id.to_string()),
            ],
        )
        .await;
    assert_eq!(aliased.location(), path, "{}", aliased.body);
    let list = browser.get(&path).await;
    assert!(
        list.body
            .contains("<td>deals@harness.test</td><td>sales@harness.test</td>"),
        "{}",
        list.body
    );
    let removed = browser
        .post(
            &format!("/console/orgs/{org}/aliases/deals%40harness.test/remove"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(removed.location(), path, "{}", removed.body);
    let list = browser.get(&path).await;
    assert!(!list.body.contains("deals@harness.test"));

    // Without the session's CSRF token (a form from another site): refused, nothing made.
    let forged = browser
        .post(
            &path,
            &[("csrf", "forged"), ("address", "evil@harness.test")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("Reload the page"));
    let evil = h.services.store.mailbox_by_address("evil@harness.test");
    assert!(evil.unwrap().is_none());
}

#[tokio::test]
async fn a_collaborator_sees_no_control_she_may_not_use_and_posting_it_is_refused() {
    let h = Harness::new();
    lucie(&h, "lrs");
    let (org, mailbox) = (org(&h), h.mailbox());
    let mut browser = Browser::new(&h);
    let answer = browser
        .log_in("lucie@elsewhere.test", "lucie-password")
        .await;
    assert_eq!(answer.location(), "/console/");
    let path = format!("/console/orgs/{org}/mailboxes");
    let list = browser.get(&path).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(!list.body.contains("New mailbox"), "{}", list.body);
    assert!(!list.body.contains("Create mailbox"));
    assert!(
        !list.body.contains("Add alias"),
        "no mailbox of hers to manage"
    );
    let csrf = list.csrf();
    let posted = browser
        .post(&path, &[("csrf", &csrf), ("address", "mine@harness.test")])
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN, "{}", posted.body);
    let access = browser.get(&format!("{path}/{mailbox}/access")).await;
    assert_eq!(access.status, StatusCode::FORBIDDEN);
    // Another organization's pages do not exist for her.
    let other = browser.get("/console/orgs/999/mailboxes").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_need_a_session_and_unknown_ones_are_html_404s() {
    let h = Harness::new();
    let mut browser = Browser::new(&h);
    let page = browser.get("/console/orgs/1/mailboxes").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/login");
    let missing = browser.get("/console/no-such-page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("<h1>Not Found</h1>"),
        "{}",
        missing.body
    );
    let style = browser.get("/console/static/style.css").await;
    assert_eq!(style.status, StatusCode::OK);
    assert_eq!(
        style.headers[header::CONTENT_TYPE],
        "text/css; charset=utf-8"
    );
    let htmx = browser.get("/console/static/htmx.min.js").await;
    assert!(htmx.body.starts_with("var htmx="));
    let bare = browser.get("/console").await;
    assert_eq!(bare.location(), "/console/");
}

#[tokio::test]
async fn the_grant_editor_gives_access_with_an_end_and_says_why_it_refuses() {
    let h = Harness::new();
    let (org, mailbox) = (org(&h), h.mailbox());
    // Lucie manages the mailbox (`la`), which lets her give no more than she holds.
    let lucie_grant = lucie(&h, "la");
    let lucie_id = match lucie_grant.grantee {
        Grantee::User(u) => u,
        Grantee::Team(_) => unreachable!(),
    };
    let team = h.services.store.create_team(org, "Front desk").unwrap();
    let mut owner = Browser::new(&h);
    owner.log_in(OWNER, PASSWORD).await;
    let editor = format!("/console/orgs/{org}/mailboxes/{mailbox}/grant");
    let form = owner.get(&editor).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    for expected in [
        r#"<label for="grantee">To</label>"#,
        "lucie@elsewhere.test (collaborator)",
        "work team Front desk",
        "Recipients see &#39;Lucie on behalf of Contact&#39;",
        r#"<label for="until">"#,
    ] {
        assert!(form.body.contains(expected), "{expected}: {}", form.body);
    }
    let csrf = form.csrf();
    let given = owner
        .post(
            &editor,
            &[
                ("csrf", &csrf),
                ("grantee", &format!("team:{}", team.id)),
                ("preset", "send-on-behalf"),
                ("until", "2099-01-31"),
            ],
        )
        .await;
    assert_eq!(given.status, StatusCode::SEE_OTHER, "{}", given.body);
    let grants = h.services.store.grants(org).unwrap();
    let made = grants
        .iter()
        .find(|g| g.grantee == Grantee::Team(team.id))
        .expect("the team's grant");
    assert_eq!(made.send, Some(SendMode::OnBehalf));
    assert_eq!(
        made.validity.until,
        Some(4_073_500_800_000),
        "2099-01-31T00:00Z"
    );
    let bad = owner
        .post(
            &editor,
            &[
                ("csrf", &csrf),
                ("grantee", "user:1"),
                ("preset", "read"),
                ("until", "soon"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("is not a date"), "{}", bad.body);

    // Lucie may give Read (within her rights) but not Read and write: refused, and why.
    let mut lucie = Browser::new(&h);
    lucie.log_in("lucie@elsewhere.test", "lucie-password").await;
    let form = lucie.get(&editor).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let csrf = form.csrf();
    let above = lucie
        .post(
            &editor,
            &[
                ("csrf", &csrf),
                ("grantee", &format!("user:{lucie_id}")),
                ("preset", "read-write"),
            ],
        )
        .await;
    assert_eq!(above.status, StatusCode::FORBIDDEN, "{}", above.body);
    assert!(
        above.body.contains(r#"class="problem" role="alert""#),
        "{}",
        above.body
    );
}

#[tokio::test]
async fn work_teams_carry_access_that_the_access_page_explains_and_the_audit_log_records() {
    let h = Harness::new();
    let lucie_grant = lucie(&h, "l");
    let Grantee::User(lucie_id) = lucie_grant.grantee else {
        unreachable!()
    };
    let (org, mailbox) = (org(&h), h.mailbox());
    let mut owner = Browser::new(&h);
    owner.log_in(OWNER, PASSWORD).await;
    let teams = format!("/console/orgs/{org}/teams");
    let page = owner.get(&teams).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("No work team yet."));
    let csrf = page.csrf();
    let made = owner
        .post(&teams, &[("csrf", &csrf), ("name", "Front desk")])
        .await;
    assert_eq!(made.location(), teams);
    let team = h.services.store.teams(org).unwrap()[0].id;
    let editor = format!("/console/orgs/{org}/mailboxes/{mailbox}/grant");
    let given = owner
        .post(
            &editor,
            &[
                ("csrf", &csrf),
                ("grantee", &format!("team:{team}")),
                ("preset", "read"),
            ],
        )
        .await;
    assert_eq!(given.status, StatusCode::SEE_OTHER, "{}", given.body);
    let added = owner
        .post(
            &format!("{teams}/{team}/members"),
            &[("csrf", &csrf), ("user", &lucie_id.to_string())],
        )
        .await;
    assert_eq!(added.location(), teams);
    let page = owner.get(&teams).await;
    for expected in [
        "<h2 id=\"team-",
        "Front desk",
        "lucie@elsewhere.test",
        ADDRESS,
        "read",
    ] {
        assert!(page.body.contains(expected), "{expected}: {}", page.body);
    }
    let access = owner
        .get(&format!("/console/orgs/{org}/mailboxes/{mailbox}/access"))
        .await;
    assert!(
        access.body.contains("work team Front desk"),
        "{}",
        access.body
    );
    // The inherited reason links to its source; who gave the team its grant, and when.
    let source = format!(r#"<a href="/console/orgs/{org}/teams#team-{team}">the team</a>"#);
    assert!(access.body.contains(&source), "{}", access.body);
    assert!(
        access.body.contains(&format!("by {OWNER}")),
        "{}",
        access.body
    );

    let removed = owner
        .post(
            &format!("{teams}/{team}/members/{lucie_id}/remove"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(removed.location(), teams);
    let access = owner
        .get(&format!("/console/orgs/{org}/mailboxes/{mailbox}/access"))
        .await;
    assert!(
        !access.body.contains("work team Front desk"),
        "{}",
        access.body
    );

    // The audit log, filtered to the team's events, and the same as CSV.
    let log = owner
        .get(&format!(
            "/console/orgs/{org}/audit?action=team.&actor=&target=&since=&until="
        ))
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    for expected in [
        "team.create",
        "team.member.add",
        "team.member.remove",
        OWNER,
    ] {
        assert!(log.body.contains(expected), "{expected}: {}", log.body);
    }
    assert!(!log.body.contains("grant.create"), "filtered: {}", log.body);
    // By target, and by who: Lucie did none of it.
    let by_target = owner
        .get(&format!("/console/orgs/{org}/audit?target=team+{team}"))
        .await;
    assert!(
        by_target.body.contains("team.member.add"),
        "{}",
        by_target.body
    );
    assert!(
        !by_target.body.contains("team.create"),
        "{}",
        by_target.body
    );
    let by_lucie = owner
        .get(&format!(
            "/console/orgs/{org}/audit?actor={lucie_id}&action=team."
        ))
        .await;
    assert_eq!(by_lucie.status, StatusCode::OK, "{}", by_lucie.body);
    assert!(!by_lucie.body.contains("<td>team."), "{}", by_lucie.body);
    let csv = owner
        .get(&format!("/console/orgs/{org}/audit.csv?action=team.member"))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        csv.body.starts_with("at,org,actor,action,target"),
        "{}",
        csv.body
    );
    assert_eq!(csv.body.matches("team.member.").count(), 2, "{}", csv.body);
    let bad = owner
        .get(&format!("/console/orgs/{org}/audit?since=yesterday"))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("is not a day"), "{}", bad.body);

    // Lucie, a collaborator: no team controls, refused when posting one, no audit log.
    let mut lucie = Browser::new(&h);
    lucie.log_in("lucie@elsewhere.test", "lucie-password").await;
    let page = lucie.get(&teams).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("New work team") && !page.body.contains("Remove"));
    let csrf = page.csrf();
    let posted = lucie
        .post(&teams, &[("csrf", &csrf), ("name", "Mine")])
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    let log = lucie.get(&format!("/console/orgs/{org}/audit")).await;
    assert_eq!(log.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn members_roles_in_place_reach_and_an_invitation_accepted_in_the_browser() {
    let h = Harness::new();
    let lucie_grant = lucie(&h, "lrs");
    let Grantee::User(lucie_id) = lucie_grant.grantee else {
        unreachable!()
    };
    let org = org(&h);
    let mut owner = Browser::new(&h);
    owner.log_in(OWNER, PASSWORD).await;
    let members = format!("/console/orgs/{org}/members");
    let page = owner.get(&members).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for expected in [
        "lucie@elsewhere.test",
        "collaborator",
        "active",
        "Invite someone",
    ] {
        assert!(page.body.contains(expected), "{expected}: {}", page.body);
    }
    let csrf = page.csrf();

    // A role changed in place: the row comes back, with the new role chosen.
    let row = owner
        .post_htmx(
            &format!("{members}/{lucie_id}/role"),
            &[("csrf", &csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(row.status, StatusCode::OK, "{}", row.body);
    assert!(
        row.body
            .trim_start()
            .starts_with(&format!("<tr id=\"member-{lucie_id}\">"))
    );
    assert!(
        row.body.contains(r#"<option value="admin" selected>"#),
        "{}",
        row.body
    );
    assert!(!row.body.contains("<html"), "a fragment");
    assert_eq!(
        h.services.store.role_in(org, lucie_id).unwrap(),
        Some(Role::Admin)
    );
    // Without script, the same form goes back to the list.
    let plain = owner
        .post(
            &format!("{members}/{lucie_id}/role"),
            &[("csrf", &csrf), ("role", "collaborator")],
        )
        .await;
    assert_eq!(plain.location(), members);

    // What Lucie can reach, and why.
    let reach = owner.get(&format!("{members}/{lucie_id}/reach")).await;
    assert!(
        reach.body.contains(ADDRESS) && reach.body.contains("direct grant"),
        "{}",
        reach.body
    );

    // An invitation whose mail cannot go out shows its link; opened in another browser, it
    // makes an account and signs in.
    let sent = owner
        .post(
            &format!("/console/orgs/{org}/invitations"),
            &[
                ("csrf", &csrf),
                ("email", "nobody@harness.test"),
                ("role", "collaborator"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    // At the server's public name, as the invitation mail gives it.
    let base = format!("https://{}", h.services.config.hostname);
    let at = sent
        .body
        .find(&format!("{base}/console/invitations/"))
        .expect("the link");
    let link = &sent.body[at + base.len()..];
    let link = &link[..link.find('<').unwrap()];
    assert!(sent.body.contains("Invitations not yet accepted"));
    let mut invited = Browser::new(&h);
    let form = invited.get(link).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let forged = invited
        .post(link, &[("csrf", "x"), ("password", "a good long password")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let form = invited.get(link).await;
    let csrf_invited = form.csrf();
    let short = invited
        .post(link, &[("csrf", &csrf_invited), ("password", "short")])
        .await;
    assert_eq!(
        short.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        short.body
    );
    let csrf_invited = short.csrf();
    let accepted = invited
        .post(
            link,
            &[
                ("csrf", &csrf_invited),
                ("password", "a good long password"),
            ],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    let home = invited.get("/console/").await;
    assert!(home.body.contains("Harness"), "{}", home.body);

    // Another invitation, withdrawn.
    let sent = owner
        .post(
            &format!("/console/orgs/{org}/invitations"),
            &[
                ("csrf", &csrf),
                ("email", "later@harness.test"),
                ("role", "external"),
            ],
        )
        .await;
    assert!(sent.body.contains("later@harness.test"));
    let id = h.services.store.invitations(org).unwrap()[0].token_hash;
    let id = hex::encode(&id[..8]);
    // Sent again: a new link (its mail cannot go out either).
    let resent = owner
        .post(
            &format!("/console/orgs/{org}/invitations/{id}/resend"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.body);
    assert!(
        resent.body.contains("Invitation for later@harness.test"),
        "{}",
        resent.body
    );
    let id = h.services.store.invitations(org).unwrap()[0].token_hash;
    let id = hex::encode(&id[..8]);
    let gone = owner
        .post(
            &format!("/console/orgs/{org}/invitations/{id}/withdraw"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(gone.location(), members);
    assert!(h.services.store.invitations(org).unwrap().is_empty());

    // Lucie (a collaborator) cannot change roles: no control, and refused in place.
    let mut lucie = Browser::new(&h);
    lucie.log_in("lucie@elsewhere.test", "lucie-password").await;
    let page = lucie.get(&members).await;
    assert!(!page.body.contains("Change the role") && !page.body.contains("Invite someone"));
    let csrf = page.csrf();
    let refused = lucie
        .post_htmx(
            &format!("{members}/{lucie_id}/role"),
            &[("csrf", &csrf), ("role", "owner")],
        )
        .await;
    assert!(
        refused.body.contains(r#"class="problem" role="alert""#),
        "{}",
        refused.body
    );
    assert_eq!(
        h.services.store.role_in(org, lucie_id).unwrap(),
        Some(Role::Collaborator)
    );
}

#[tokio::test]
async fn a_partner_is_invited_accepts_manages_and_the_partnership_ends_with_a_password() {
    let h = Harness::new();
    let store = &h.services.store;
    let (org, mailbox) = (org(&h), h.mailbox());
    let boss = store
        .create_user(NewUser {
            login: "boss@partner.test".into(),
            display_name: String::new(),
            password: crate::password::hash("boss-password").unwrap(),
            must_change_password: false,
            own_mailbox: None,
        })
        .unwrap();
    let partner = store.create_organization("Partner Co", boss.id).unwrap().id;
    let mut owner = Browser::new(&h);
    owner.log_in(OWNER, PASSWORD).await;
    let partners = format!("/console/orgs/{org}/partners");
    let page = owner.get(&partners).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.csrf();
    let vague = owner
        .post(
            &partners,
            &[("csrf", &csrf), ("partner", &partner.to_string())],
        )
        .await;
    assert_eq!(vague.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        vague
            .body
            .contains("Choose the whole organization or some mailboxes.")
    );
    let invited = owner
        .post(
            &partners,
            &[
                ("csrf", &csrf),
                ("partner", &partner.to_string()),
                ("mailbox", &mailbox.to_string()),
            ],
        )
        .await;
    assert_eq!(invited.location(), partners, "{}", invited.body);
    let page = owner.get(&partners).await;
    for expected in [
        "(its name once it accepts)",
        "they manage us",
        ADDRESS,
        "invited",
    ] {
        assert!(page.body.contains(expected), "{expected}: {}", page.body);
    }

    // The partner's owner accepts, and then manages the mailbox it was given.
    let mut boss_browser = Browser::new(&h);
    boss_browser
        .log_in("boss@partner.test", "boss-password")
        .await;
    let theirs = format!("/console/orgs/{partner}/partners");
    let page = boss_browser.get(&theirs).await;
    assert!(
        page.body.contains("we manage them") && page.body.contains("Harness"),
        "{}",
        page.body
    );
    let id = store.partnerships_of(org).unwrap()[0].id;
    let csrf_boss = page.csrf();
    let accepted = boss_browser
        .post(&format!("{theirs}/{id}/accept"), &[("csrf", &csrf_boss)])
        .await;
    assert_eq!(accepted.location(), theirs, "{}", accepted.body);
    // Its scope is one mailbox: it sees that one, not the organization's audit review.
    let listed = boss_browser
        .get(&format!("/console/orgs/{org}/mailboxes"))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert!(listed.body.contains(ADDRESS));
    let review = boss_browser
        .get(&format!("/console/orgs/{org}/mailboxes/{mailbox}/access"))
        .await;
    assert_eq!(review.status, StatusCode::FORBIDDEN, "{}", review.body);
    // On the owner's access page, the partner's manager is there, and why.
    let why = owner
        .get(&format!("/console/orgs/{org}/mailboxes/{mailbox}/access"))
        .await;
    assert!(
        why.body
            .contains("manager at partner organization Partner Co"),
        "{}",
        why.body
    );
    let source = format!(r#"<a href="/console/orgs/{org}/partners">partners</a>"#);
    assert!(why.body.contains(&source), "{}", why.body);

    // Ending it needs the password.
    let wrong = owner
        .post(
            &format!("{partners}/{id}/end"),
            &[("csrf", &csrf), ("password", "not it")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(
        wrong.body.contains("the password is wrong"),
        "{}",
        wrong.body
    );
    let ended = owner
        .post(
            &format!("{partners}/{id}/end"),
            &[("csrf", &csrf), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(ended.location(), partners, "{}", ended.body);
    assert_eq!(
        store.partnership(id).unwrap().unwrap().status,
        PartnershipStatus::Ended
    );
    let listed = boss_browser
        .get(&format!("/console/orgs/{org}/mailboxes"))
        .await;
    assert_eq!(
        listed.status,
        StatusCode::NOT_FOUND,
        "no longer theirs to see"
    );
}

#[tokio::test]
async fn a_mailbox_client_setup_lists_what_a_client_needs() {
    let h = Harness::new();
    let (org, mailbox) = (org(&h), h.mailbox());
    let mut owner = Browser::new(&h);
    owner.log_in(OWNER, PASSWORD).await;
    let setup = owner
        .get(&format!("/console/orgs/{org}/mailboxes/{mailbox}/setup"))
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    let host = &h.services.config.hostname;
    for expected in [ADDRESS, host.as_str(), "SSL/TLS", "*<var>their login</var>"] {
        assert!(setup.body.contains(expected), "{expected}: {}", setup.body);
    }
    let other = owner
        .get(&format!("/console/orgs/{org}/mailboxes/999999/setup"))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cookies_are_secure_for_a_browser_elsewhere_and_in_place_edits_survive_errors() {
    let h = Harness::new();
    // A browser on another machine (or behind a balancer): Secure cookies even over HTTP.
    let mut remote = Browser::new(&h);
    remote.peer = Some("192.0.2.7:50000".parse().unwrap());
    let form = remote.get("/console/login").await;
    let cookie = form.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let answer = remote.log_in(OWNER, PASSWORD).await;
    let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("Max-Age=43"),
        "{cookie}"
    );

    // On the admin listener's TLS (the listener marks its requests): Secure from loopback too.
    let mut over_tls = Browser::new(&h);
    over_tls.tls = true;
    let form = over_tls.get("/console/login").await;
    let cookie = form.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // An in-place edit without a session: htmx is told where to go, not handed the login page.
    let mut anonymous = Browser::new(&h);
    let org = org(&h);
    let edit = anonymous
        .post_htmx(
            &format!("/console/orgs/{org}/members/1/role"),
            &[("csrf", "x"), ("role", "admin")],
        )
        .await;
    assert_eq!(edit.status, StatusCode::OK);
    assert_eq!(edit.headers["hx-redirect"], "/console/login");
    // A stale form in place: the page is reloaded.
    let mut owner = Browser::new(&h);
    owner.log_in(OWNER, PASSWORD).await;
    let stale = owner
        .post_htmx(
            &format!("/console/orgs/{org}/members/1/role"),
            &[("csrf", "stale"), ("role", "admin")],
        )
        .await;
    assert_eq!(stale.headers["hx-refresh"], "true");
    // A path the console cannot read: its HTML error page, not axum's plain text.
    let bad = owner.get("/console/orgs/not-a-number/mailboxes").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("<h1>Bad Request</h1>"), "{}", bad.body);
    // The CSV export is not cached.
    let csv = owner.get(&format!("/console/orgs/{org}/audit.csv")).await;
    assert_eq!(csv.headers[header::CACHE_CONTROL], "no-store");
    // An invitation link that cannot be one is no page.
    let odd = owner.get("/console/invitations/..%2F..%2Fapi").await;
    assert_eq!(odd.status, StatusCode::NOT_FOUND);
}

/// Every form control on `body` has an accessible name: a `<label for>` or an `aria-label`.
fn assert_every_control_named(path: &str, body: &str) {
    for tag in ["<input", "<select"] {
        for (at, _) in body.match_indices(tag) {
            let end = body[at..].find('>').map_or(body.len(), |e| at + e);
            let element = &body[at..end];
            if element.contains(r#"type="hidden""#) || element.contains("aria-label=") {
                continue;
            }
            let id = element
                .split(r#"id=""#)
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("{path}: a control without id: {element}"));
            let label = format!(r#"<label for="{id}""#);
            assert!(body.contains(&label), "{path}: no label for {element}");
        }
    }
}

#[tokio::test]
async fn every_control_of_every_page_has_an_accessible_name() {
    let h = Harness::new();
    lucie(&h, "lrs");
    let (org, mailbox) = (org(&h), h.mailbox());
    h.services.store.create_team(org, "Desk").unwrap();
    let mut anonymous = Browser::new(&h);
    let login = anonymous.get("/console/login").await;
    assert_every_control_named("/console/login", &login.body);
    let mut owner = Browser::new(&h);
    owner.log_in(OWNER, PASSWORD).await;
    let csrf = owner.get("/console/").await.csrf();
    let invited = owner
        .post(
            &format!("/console/orgs/{org}/invitations"),
            &[
                ("csrf", &csrf),
                ("email", "nobody@harness.test"),
                ("role", "external"),
            ],
        )
        .await;
    let base = format!("https://{}", h.services.config.hostname);
    let at = invited
        .body
        .find(&format!("{base}/console/invitations/"))
        .unwrap();
    let link = invited.body[at + base.len()..]
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let accept = anonymous.get(&link).await;
    assert_every_control_named(&link, &accept.body);
    for page in [
        "/console/".to_string(),
        "/console/password".to_string(),
        format!("/console/orgs/{org}/mailboxes"),
        format!("/console/orgs/{org}/mailboxes/{mailbox}/access"),
        format!("/console/orgs/{org}/mailboxes/{mailbox}/grant"),
        format!("/console/orgs/{org}/mailboxes/{mailbox}/setup"),
        format!("/console/orgs/{org}/members"),
        format!("/console/orgs/{org}/teams"),
        format!("/console/orgs/{org}/audit"),
        format!("/console/orgs/{org}/partners"),
    ] {
        let shown = owner.get(&page).await;
        assert_eq!(shown.status, StatusCode::OK, "{page}: {}", shown.body);
        assert_every_control_named(&page, &shown.body);
    }
}
