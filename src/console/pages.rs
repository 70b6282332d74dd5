//! The organization pages: the switcher, the mailboxes, and who can read a mailbox and why.
//! Each calls the admin API's handler for what it shows or changes.

use super::session::Visitor;
use super::{
    ConsoleResult, Layout, abilities, back_to, bytes, date, every, org_name, render,
    store_error as api,
};
use crate::access::{self, Action};
use crate::admin::error::{ApiJson, ApiPath, ApiQuery};
use crate::admin::mailboxes::{CreateAlias, CreateMailbox, MailboxView};
use crate::admin::page::PageQuery;
use crate::admin::review::{Holder, Path as Reason};
use crate::admin::{ClientAddr, grants, mailboxes, review, session};
use crate::model::*;
use crate::services::Services;
use crate::store::AuditQuery;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(askama::Template)]
#[template(path = "home.html", config = "src/console/askama.toml")]
struct Home {
    layout: Layout,
    organizations: Vec<session::MyOrganization>,
}

/// The organizations the user belongs to: where every visit starts.
pub async fn home(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
) -> ConsoleResult<Response> {
    let me = session::me(
        State(services.clone()),
        crate::admin::auth::PendingCaller(visitor.caller.clone()),
    )
    .await?
    .0;
    let page = Home {
        layout: Layout::with(visitor.bar(&services, None).await?),
        organizations: me.organizations,
    };
    Ok(render(&page)?.into_response())
}

/// One mailbox as the list shows it.
struct MailboxRow {
    id: MailboxId,
    address: String,
    display_name: String,
    used: String,
    quota: String,
}

impl From<MailboxView> for MailboxRow {
    fn from(m: MailboxView) -> MailboxRow {
        MailboxRow {
            id: m.id,
            address: m.address,
            display_name: m.display_name,
            used: bytes(m.used_bytes),
            quota: match m.quota_bytes {
                0 => "none".into(),
                quota => bytes(quota),
            },
        }
    }
}

/// A mailbox just created, and its generated password, shown this once.
struct Created {
    address: String,
    password: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "mailboxes.html", config = "src/console/askama.toml")]
struct Mailboxes {
    layout: Layout,
    csrf: String,
    org: OrgId,
    org_name: String,
    mailboxes: Vec<MailboxRow>,
    next_cursor: Option<String>,
    may_create: bool,
    /// Whether the user may see who can read the mailboxes (the access page).
    may_review: bool,
    created: Option<Created>,
    aliases: Vec<AliasRow>,
    /// The mailboxes this user may add an alias to.
    alias_targets: Vec<(MailboxId, String)>,
}

struct AliasRow {
    address: String,
    mailbox: String,
    may_remove: bool,
}

#[derive(Deserialize)]
pub struct Cursor {
    cursor: Option<String>,
}

/// The organization's mailboxes (those the user may see), and the form to create one for
/// those who may.
pub async fn mailboxes(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path(org): Path<OrgId>,
    Query(Cursor { cursor }): Query<Cursor>,
) -> ConsoleResult<Response> {
    mailboxes_page(&services, visitor, org, cursor, None).await
}

async fn mailboxes_page(
    services: &Arc<Services>,
    visitor: Visitor,
    org: OrgId,
    cursor: Option<String>,
    created: Option<Created>,
) -> ConsoleResult<Response> {
    let query = PageQuery {
        cursor,
        ..Default::default()
    };
    let listed = mailboxes::list(
        State(services.clone()),
        visitor.caller.clone(),
        ApiPath(org),
        ApiQuery(query),
    )
    .await?
    .0;
    let principal = visitor.caller.principal();
    let may_create = access::may(&principal, org, &Action::CreateMailbox).is_ok();
    let may_review = access::may(&principal, org, &Action::ViewAudit).is_ok();
    let manages = |id: MailboxId| access::may(&principal, org, &Action::ManageMailbox(id)).is_ok();
    let state = || State(services.clone());
    let caller = || visitor.caller.clone();
    let aliases = every(|q| mailboxes::list_aliases(state(), caller(), ApiPath(org), q))
        .await?
        .into_iter()
        .map(|a| AliasRow {
            may_remove: manages(a.mailbox_id),
            address: a.address,
            mailbox: a.mailbox,
        })
        .collect();
    // Every mailbox this user manages, not only this page's.
    let alias_targets = every(|q| mailboxes::list(state(), caller(), ApiPath(org), q))
        .await?
        .into_iter()
        .filter(|m| manages(m.id))
        .map(|m| (m.id, m.address))
        .collect();
    let page = Mailboxes {
        layout: Layout::with(visitor.bar(services, Some(org)).await?),
        csrf: visitor.csrf,
        org,
        org_name: org_name(services, org)?,
        mailboxes: listed.items.into_iter().map(MailboxRow::from).collect(),
        next_cursor: listed.next_cursor,
        may_create,
        may_review,
        created,
        aliases,
        alias_targets,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct NewMailboxForm {
    csrf: String,
    address: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    quota_mib: u64,
    #[serde(default)]
    seen_policy: SeenPolicy,
}

/// Creates a mailbox through the API, then shows the list with its generated password, once
/// (not a redirect: the password is nowhere else to be found afterwards).
pub async fn create_mailbox(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path(org): Path<OrgId>,
    Form(form): Form<NewMailboxForm>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    let request = CreateMailbox {
        address: form.address,
        display_name: form.display_name,
        password: None,
        quota_bytes: form.quota_mib.saturating_mul(1024 * 1024),
        seen_policy: form.seen_policy,
    };
    let (_, made) = mailboxes::create(
        State(services.clone()),
        client,
        visitor.caller.clone(),
        ApiPath(org),
        ApiJson(request),
    )
    .await?;
    let created = Created {
        address: made.0.address,
        password: made.0.password,
    };
    mailboxes_page(&services, visitor, org, None, Some(created)).await
}

#[derive(Deserialize)]
pub struct NewAliasForm {
    csrf: String,
    address: String,
    mailbox_id: MailboxId,
}

pub async fn create_alias(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path(org): Path<OrgId>,
    Form(form): Form<NewAliasForm>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    let request = CreateAlias {
        address: form.address,
        mailbox_id: form.mailbox_id,
    };
    let path = ApiPath(org);
    let _made = mailboxes::create_alias(
        State(services),
        client,
        visitor.caller,
        path,
        ApiJson(request),
    )
    .await?;
    Ok(back_to(format!("/console/orgs/{org}/mailboxes")))
}

pub async fn remove_alias(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    Path((org, address)): Path<(OrgId, String)>,
    super::session::Pressed(visitor): super::session::Pressed,
) -> ConsoleResult<Response> {
    let path = ApiPath((org, address));
    mailboxes::delete_alias(State(services), client, visitor.caller, path).await?;
    Ok(back_to(format!("/console/orgs/{org}/mailboxes")))
}

/// What one row of the access page says of one reason.
pub(super) struct ReasonRow {
    pub(super) why: String,
    granted: Option<String>,
    until: Option<String>,
    action: RowAction,
}

/// What can be done about a reason from the access page.
enum RowAction {
    /// A direct grant, removed here.
    Remove {
        grant: GrantId,
    },
    /// An inherited reason: where it comes from.
    Source {
        href: String,
        label: &'static str,
    },
    Nothing,
}

struct AccessRow {
    who: String,
    can: String,
    reasons: Vec<ReasonRow>,
    last_login: String,
    /// The person the "check access" box asked about.
    checked: bool,
}

#[derive(askama::Template)]
#[template(path = "access.html", config = "src/console/askama.toml")]
struct AccessPage {
    layout: Layout,
    csrf: String,
    org: OrgId,
    mailbox: MailboxId,
    address: String,
    rows: Vec<AccessRow>,
    check: String,
    verdict: Option<String>,
    /// Whether the user may give access to this mailbox (the grant editor's link).
    may_grant: bool,
}

#[derive(Deserialize)]
pub struct Check {
    #[serde(default)]
    check: String,
}

/// Who can read the mailbox and why: one row per person (the API's access review), each
/// reason with its grant's author, date and end, and a direct grant removable in place.
pub async fn access(
    State(services): State<Arc<Services>>,
    visitor: Visitor,
    Path((org, id)): Path<(OrgId, MailboxId)>,
    Query(Check { check }): Query<Check>,
) -> ConsoleResult<Response> {
    let review = review::mailbox(
        State(services.clone()),
        visitor.caller.clone(),
        ApiPath((org, id)),
    )
    .await?
    .0;
    let names = Names::of(&services, org)?;
    let check = check.trim().to_string();
    let mut rows: Vec<AccessRow> = review
        .principals
        .into_iter()
        .map(|holder| access_row(&services, org, &names, holder, &check))
        .collect::<ConsoleResult<_>>()?;
    rows.sort_by_key(|row| !row.checked);
    let verdict = (!check.is_empty()).then(|| match rows.iter().find(|r| r.checked) {
        Some(row) if row.can == super::NO_RIGHTS => format!(
            "{} holds no rights on this mailbox, but can reset its password (and so read it).",
            row.who
        ),
        Some(row) => format!("{} can {} this mailbox.", row.who, row.can),
        None => format!("{check} cannot read this mailbox."),
    });
    let may_grant =
        access::may(&visitor.caller.principal(), org, &Action::ManageMailbox(id)).is_ok();
    let page = AccessPage {
        may_grant,
        layout: Layout::with(visitor.bar(&services, Some(org)).await?),
        csrf: visitor.csrf,
        org,
        mailbox: id,
        address: review.address,
        rows,
        check,
        verdict,
    };
    Ok(render(&page)?.into_response())
}

fn access_row(
    services: &Services,
    org: OrgId,
    names: &Names,
    holder: Holder,
    check: &str,
) -> ConsoleResult<AccessRow> {
    let who = match holder.kind {
        "mailbox_password" => "Anyone with the mailbox password".to_string(),
        _ => holder.login.clone().unwrap_or_default(),
    };
    let checked = !check.is_empty()
        && holder
            .login
            .as_deref()
            .is_some_and(|l| holder.kind == "user" && l.eq_ignore_ascii_case(check));
    let reasons = holder
        .through
        .into_iter()
        .map(|reason| reason_row(services, org, names, reason))
        .collect::<ConsoleResult<_>>()?;
    Ok(AccessRow {
        who,
        can: abilities(&holder.rights, holder.send),
        reasons,
        last_login: holder.last_login.map_or("never".into(), date),
        checked,
    })
}

pub(super) fn reason_row(
    services: &Services,
    org: OrgId,
    names: &Names,
    reason: Reason,
) -> ConsoleResult<ReasonRow> {
    let plain = |why: String| ReasonRow {
        why,
        granted: None,
        until: None,
        action: RowAction::Nothing,
    };
    Ok(match reason {
        Reason::Password => plain("knows the mailbox password".into()),
        Reason::Role { role } => ReasonRow {
            action: RowAction::Source {
                href: format!("/console/orgs/{org}/members"),
                label: "members",
            },
            ..plain(format!(
                "{role} of the organization (may reset its password)"
            ))
        },
        Reason::Partnership { partner } => ReasonRow {
            action: RowAction::Source {
                href: format!("/console/orgs/{org}/partners"),
                label: "partners",
            },
            ..plain(format!(
                "manager at partner organization {}",
                names.organization(services, partner)
            ))
        },
        Reason::DirectGrant {
            grant, valid_until, ..
        } => ReasonRow {
            why: "direct grant".into(),
            granted: granted(services, org, grant)?,
            until: valid_until.map(date),
            action: RowAction::Remove { grant },
        },
        Reason::TeamGrant {
            grant,
            team,
            valid_until,
            ..
        } => ReasonRow {
            why: format!("work team {}", names.team(team)),
            granted: granted(services, org, grant)?,
            until: valid_until.map(date),
            action: RowAction::Source {
                href: format!("/console/orgs/{org}/teams#team-{team}"),
                label: "the team",
            },
        },
        Reason::AllMailboxesGrant {
            grant, valid_until, ..
        } => ReasonRow {
            why: "grant on every mailbox of the organization".into(),
            granted: granted(services, org, grant)?,
            until: valid_until.map(date),
            action: RowAction::Nothing,
        },
    })
}

/// When a grant was made, and by whom (from the audit log, where it was recorded).
fn granted(services: &Services, org: OrgId, grant: GrantId) -> ConsoleResult<Option<String>> {
    let query = AuditQuery {
        org: Some(org),
        action_prefix: Some("grant.create".into()),
        target: Some(format!("grant {grant}")),
        limit: 1,
        ..Default::default()
    };
    let event = services.store.audit_events(&query).map_err(api)?.pop();
    let made = services.store.grant(org, grant).map_err(api)?;
    let by = match event.map(|e| e.actor) {
        Some(Actor::User(user)) => services.store.user(user).map_err(api)?.map(|u| u.login),
        _ => None,
    };
    Ok(made.map(|g| match by {
        Some(login) => format!("{} by {login}", date(g.created)),
        None => date(g.created),
    }))
}

/// Team and organization names, for the reasons.
pub(super) struct Names {
    teams: Vec<Team>,
}

impl Names {
    pub(super) fn of(services: &Services, org: OrgId) -> ConsoleResult<Names> {
        Ok(Names {
            teams: services.store.teams(org).map_err(api)?,
        })
    }

    fn team(&self, id: TeamId) -> String {
        self.teams
            .iter()
            .find(|t| t.id == id)
            .map_or_else(|| format!("#{id}"), |t| t.name.clone())
    }

    fn organization(&self, services: &Services, id: OrgId) -> String {
        match services.store.organization(id) {
            Ok(Some(o)) => o.name,
            _ => format!("#{id}"),
        }
    }
}

#[derive(Deserialize)]
pub struct RemoveGrantForm {
    csrf: String,
    mailbox: MailboxId,
}

/// Removes a direct grant through the API, then back to the mailbox's access page.
pub async fn remove_grant(
    State(services): State<Arc<Services>>,
    client: ClientAddr,
    visitor: Visitor,
    Path((org, grant)): Path<(OrgId, GrantId)>,
    Form(form): Form<RemoveGrantForm>,
) -> ConsoleResult<Response> {
    visitor.check(&form.csrf)?;
    grants::delete(
        State(services),
        client,
        visitor.caller,
        ApiPath((org, grant)),
    )
    .await?;
    let back = format!("/console/orgs/{org}/mailboxes/{}/access", form.mailbox);
    Ok(Redirect::to(&back).into_response())
}
