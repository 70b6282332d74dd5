//! Every role against every organization endpoint, with the status each must get: owner,
//! admin, collaborator, external, a partner with a limited scope, a partner with full scope,
//! and nobody logged in. Each role gets its own server, so changes do not leak between rows.

mod common;

use common::api::Api;
use common::*;
use mailgate::model::*;
use mailgate::store::{NewMailbox, NewUser, Store};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ROLES: [&str; 7] = [
    "owner",
    "admin",
    "collaborator",
    "external",
    "partner-limited",
    "partner-full",
    "anonymous",
];

/// What `seed_world` made.
struct World {
    acme: u64,
    beta: u64,
    /// Beta's (limited) partnership with Acme.
    partnership: u64,
    contact: u64,
    other: u64,
    spare: u64,
    grant: u64,
    grant_other: u64,
    team: u64,
    spare_team: u64,
    lucie: u64,
    leaver: u64,
    external: u64,
}

fn user(store: &Store, login: &str) -> User {
    store
        .create_user(NewUser {
            login: login.into(),
            display_name: String::new(),
            password: mailgate::password::hash("role-password").unwrap(),
            must_change_password: false,
            own_mailbox: None,
        })
        .unwrap()
}

fn mailbox(store: &Store, org: OrgId, address: &str) -> Mailbox {
    store
        .create_mailbox(NewMailbox {
            org,
            address: address.into(),
            display_name: String::new(),
            password: mailgate::password::hash("mailbox-password").unwrap(),
            quota_bytes: 0,
            seen: SeenPolicy::Shared,
        })
        .unwrap()
}

/// Acme with an owner, an admin, Lucie (collaborator, `lr` on contact@), an external, a
/// member about to leave, teams and grants; Beta (a limited partner: contact@ only) and
/// Gamma (a full partner), each with its owner.
fn seed_world(dir: &std::path::Path) -> World {
    let store = common::open_store(&dir.join("data"));
    let owner = user(&store, "owner@acme.example");
    let acme = store.create_organization("Acme", owner.id).unwrap();
    let member = |login: &str, role| {
        let u = user(&store, login);
        store.set_member(acme.id, u.id, role).unwrap();
        u
    };
    member("admin@acme.example", Role::Admin);
    let lucie = member("lucie@gmail.example", Role::Collaborator);
    let external = member("ext@outside.example", Role::External);
    let leaver = member("leaver@acme.example", Role::Collaborator);
    store.add_domain(acme.id, "acme.example").unwrap();
    store.add_domain(acme.id, "spare.example").unwrap();
    let contact = mailbox(&store, acme.id, "contact@acme.example");
    let other = mailbox(&store, acme.id, "other@acme.example");
    let spare = mailbox(&store, acme.id, "spare@acme.example");
    store
        .create_alias(acme.id, "old@acme.example", contact.id)
        .unwrap();
    let grant = |grantee, target, letters| {
        store
            .add_grant(NewGrant {
                org: acme.id,
                grantee,
                target,
                rights: Rights::parse(letters).unwrap(),
                send: None,
            })
            .unwrap()
    };
    let g = grant(
        Grantee::User(lucie.id),
        GrantTarget::Mailbox(contact.id),
        "lr",
    );
    let g_other = grant(
        Grantee::User(leaver.id),
        GrantTarget::Mailbox(other.id),
        "lr",
    );
    let team = store.create_team(acme.id, "Support").unwrap();
    let spare_team = store.create_team(acme.id, "Old team").unwrap();
    let partner = |name: &str, login: &str, scope| {
        let o = user(&store, login);
        let org = store.create_organization(name, o.id).unwrap();
        let p = store.invite_partner(acme.id, org.id, scope).unwrap();
        store
            .update_partnership(p.id, PartnershipStatus::Accepted, None)
            .unwrap();
        (org, p)
    };
    let limited = PartnerScope::Limited([contact.id].into_iter().collect());
    let (beta, partnership) = partner("Beta", "boss@beta.example", limited);
    partner("Gamma", "boss@gamma.example", PartnerScope::Full);
    for (byte, email) in [(7u8, "a@x.example"), (8, "b@x.example")] {
        store
            .create_invitation(Invitation {
                token_hash: [byte; 32],
                org: acme.id,
                email: email.into(),
                role: Role::External,
                teams: vec![],
                grants: vec![],
                invited_by: owner.id,
                expires: now_millis() + 3_600_000,
            })
            .unwrap();
    }
    store.flush_blocking().unwrap();
    World {
        acme: acme.id.0,
        beta: beta.id.0,
        partnership: partnership.id.0,
        contact: contact.id.0,
        other: other.id.0,
        spare: spare.id.0,
        grant: g.id.0,
        grant_other: g_other.id.0,
        team: team.id.0,
        spare_team: spare_team.id.0,
        lucie: lucie.id.0,
        leaver: leaver.id.0,
        external: external.id.0,
    }
}

/// Method, path, body, and the status for each of `ROLES`, in that order. Changes come after
/// the reads that could see them. A mailbox (or its alias) the caller holds no right on and
/// may not manage answers 404, as if it were not there; one the caller can see but not
/// change answers 403.
fn table(w: &World) -> Vec<(Method, String, Option<Value>, [u16; 7])> {
    let o = format!("/api/v1/orgs/{}", w.acme);
    let (c, x) = (w.contact, w.other);
    use Method as M;
    vec![
        //                                                                 own  adm  col  ext  p-l  p-f  anon
        (
            M::GET,
            format!("{o}/domains"),
            None,
            [200, 200, 200, 200, 200, 200, 401],
        ),
        (
            M::GET,
            format!("{o}/mailboxes"),
            None,
            [200, 200, 200, 200, 200, 200, 401],
        ),
        (
            M::GET,
            format!("{o}/mailboxes/{c}"),
            None,
            [200, 200, 200, 404, 200, 200, 401],
        ),
        (
            M::GET,
            format!("{o}/mailboxes/{x}"),
            None,
            [200, 200, 404, 404, 404, 200, 401],
        ),
        (
            M::GET,
            format!("{o}/mailboxes/{c}/access"),
            None,
            [200, 200, 403, 403, 403, 403, 401],
        ),
        (
            M::GET,
            format!("{o}/mailboxes/{c}/export"),
            None,
            [403, 403, 200, 403, 403, 403, 401],
        ),
        (
            M::GET,
            format!("{o}/aliases"),
            None,
            [200, 200, 200, 200, 200, 200, 401],
        ),
        (
            M::GET,
            format!("{o}/grants"),
            None,
            [200, 200, 200, 200, 200, 200, 401],
        ),
        (
            M::GET,
            format!("{o}/members"),
            None,
            [200, 200, 200, 200, 200, 200, 401],
        ),
        (
            M::GET,
            format!("{o}/members/{}/access", w.lucie),
            None,
            [200, 200, 403, 403, 403, 403, 401],
        ),
        (
            M::GET,
            format!("{o}/invitations"),
            None,
            [200, 200, 200, 403, 403, 200, 401],
        ),
        (
            M::GET,
            format!("{o}/teams"),
            None,
            [200, 200, 200, 403, 403, 200, 401],
        ),
        (
            M::GET,
            format!("{o}/audit"),
            None,
            [200, 200, 403, 403, 403, 403, 401],
        ),
        (
            M::GET,
            format!("{o}/queue"),
            None,
            [200, 200, 403, 403, 403, 403, 401],
        ),
        (
            M::GET,
            format!("{o}/partnerships"),
            None,
            [200, 200, 403, 403, 403, 403, 401],
        ),
        (
            M::GET,
            format!("{o}/clients"),
            None,
            [200, 200, 403, 403, 403, 403, 401],
        ),
        (
            M::POST,
            format!("{o}/domains"),
            Some(json!({"name": "new.example"})),
            [201, 201, 403, 403, 403, 201, 401],
        ),
        (
            M::POST,
            format!("{o}/mailboxes"),
            Some(json!({"address": "new@acme.example"})),
            [201, 201, 403, 403, 403, 201, 401],
        ),
        (
            M::PATCH,
            format!("{o}/mailboxes/{c}"),
            Some(json!({"quota_bytes": 5000000})),
            [200, 200, 403, 404, 200, 200, 401],
        ),
        (
            M::PATCH,
            format!("{o}/mailboxes/{x}"),
            Some(json!({"quota_bytes": 5000000})),
            [200, 200, 404, 404, 404, 200, 401],
        ),
        (
            M::POST,
            format!("{o}/aliases"),
            Some(json!({"address": "new-alias@acme.example", "mailbox_id": c})),
            [201, 201, 403, 404, 201, 201, 401],
        ),
        (
            M::DELETE,
            format!("{o}/aliases/old@acme.example"),
            None,
            [204, 204, 403, 404, 204, 204, 401],
        ),
        (
            M::POST,
            format!("{o}/grants"),
            Some(
                json!({"grantee": {"user": w.external}, "target": {"mailbox": c}, "preset": "read"}),
            ),
            [201, 201, 403, 403, 201, 201, 401],
        ),
        (
            M::POST,
            format!("{o}/grants"),
            Some(
                json!({"grantee": {"user": w.external}, "target": "all_mailboxes", "preset": "read"}),
            ),
            [201, 201, 403, 403, 403, 201, 401],
        ),
        (
            M::PATCH,
            format!("{o}/grants/{}", w.grant),
            Some(json!({"preset": "read"})),
            [200, 200, 404, 404, 200, 200, 401],
        ),
        (
            M::DELETE,
            format!("{o}/grants/{}", w.grant_other),
            None,
            [204, 204, 404, 404, 404, 204, 401],
        ),
        (
            M::POST,
            format!("{o}/invitations"),
            Some(json!({"email": "new@x.example", "role": "collaborator"})),
            [201, 201, 403, 403, 403, 403, 401],
        ),
        (
            M::POST,
            format!("{o}/invitations/0707070707070707/resend"),
            None,
            [200, 200, 403, 403, 403, 403, 401],
        ),
        (
            M::DELETE,
            format!("{o}/invitations/0808080808080808"),
            None,
            [204, 204, 403, 403, 403, 403, 401],
        ),
        (
            M::POST,
            format!("{o}/teams"),
            Some(json!({"name": "New team"})),
            [201, 201, 403, 403, 403, 403, 401],
        ),
        (
            M::PATCH,
            format!("{o}/teams/{}", w.team),
            Some(json!({"name": "Helpdesk"})),
            [200, 200, 403, 403, 403, 403, 401],
        ),
        (
            M::PUT,
            format!("{o}/teams/{}/members/{}", w.team, w.lucie),
            None,
            [204, 204, 403, 403, 403, 403, 401],
        ),
        (
            M::DELETE,
            format!("{o}/teams/{}/members/{}", w.team, w.lucie),
            None,
            [204, 204, 403, 403, 403, 403, 401],
        ),
        (
            M::DELETE,
            format!("{o}/teams/{}", w.spare_team),
            None,
            [204, 204, 403, 403, 403, 403, 401],
        ),
        (
            M::PATCH,
            format!("{o}/members/{}", w.leaver),
            Some(json!({"role": "external"})),
            [200, 200, 403, 403, 403, 403, 401],
        ),
        (
            M::DELETE,
            format!("{o}/members/{}", w.leaver),
            None,
            [204, 204, 403, 403, 403, 403, 401],
        ),
        (
            M::POST,
            format!("{o}/partnerships"),
            Some(json!({"partner": w.beta, "scope": "full"})),
            [201, 403, 403, 403, 403, 403, 401],
        ),
        (
            M::DELETE,
            format!("{o}/mailboxes/{}", w.spare),
            None,
            [204, 204, 404, 404, 404, 204, 401],
        ),
        (
            M::DELETE,
            format!("{o}/domains/spare.example"),
            None,
            [204, 204, 403, 403, 403, 204, 401],
        ),
        (
            M::GET,
            "/api/v1/me".into(),
            None,
            [200, 200, 200, 200, 200, 200, 401],
        ),
        (
            M::GET,
            "/api/v1/me/tokens".into(),
            None,
            [200, 200, 200, 200, 200, 200, 401],
        ),
        (
            M::GET,
            "/api/v1/me/audit".into(),
            None,
            [200, 200, 200, 200, 200, 200, 401],
        ),
        (
            M::GET,
            "/api/v1/me/export".into(),
            None,
            [200, 200, 200, 200, 200, 200, 401],
        ),
        (
            M::PATCH,
            format!("{o}/partnerships/{}", w.partnership),
            Some(json!({"scope": "full"})),
            [200, 403, 403, 403, 403, 403, 401],
        ),
        (
            M::POST,
            format!("{o}/partnerships/{}/end", w.partnership),
            Some(json!({"password": "role-password"})),
            [200, 403, 403, 403, 403, 403, 401],
        ),
    ]
}

fn login_of(role: &str) -> Option<&'static str> {
    Some(match role {
        "owner" => "owner@acme.example",
        "admin" => "admin@acme.example",
        "collaborator" => "lucie@gmail.example",
        "external" => "ext@outside.example",
        "partner-limited" => "boss@beta.example",
        "partner-full" => "boss@gamma.example",
        _ => return None,
    })
}

async fn run_role(index: usize) -> Vec<String> {
    let role = ROLES[index];
    let dir = tempfile::tempdir().unwrap();
    let world = seed_world(dir.path());
    let server = start(dir.path(), "");
    let api = match login_of(role) {
        Some(login) => Api::login(&server, login, "role-password").await,
        None => Api {
            client: reqwest::Client::new(),
            base: format!("http://{}", server.addr("admin (HTTP)")),
            token: None,
        },
    };
    let mut wrong = Vec::new();
    for (method, path, body, expected) in table(&world) {
        let (status, answer) = api.call(method.clone(), &path, body).await;
        if status != StatusCode::from_u16(expected[index]).unwrap() {
            wrong.push(format!(
                "{role}: {method} {path}: expected {}, got {status} {answer}",
                expected[index]
            ));
        }
    }
    wrong
}

#[test]
fn every_role_gets_the_expected_status_from_every_endpoint() {
    // One thread and one server per role, side by side.
    let runs: Vec<_> = (0..ROLES.len())
        .map(|i| {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(run_role(i))
            })
        })
        .collect();
    let mut wrong = Vec::new();
    for run in runs {
        wrong.extend(run.join().unwrap());
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
