//! Who a client session acts as (ARCHITECTURE.md §3), for IMAP and SMTP alike: a mailbox (its own
//! password), a user (their password), or a user acting as one mailbox (`mailbox*user`, SASL
//! authzid). What each may do is `access`'s to say.

mod throttle;

pub use throttle::{Throttle, Throttled};

use crate::access::{self, MailboxAccess, MailboxRef, Principal, UserFacts};
use crate::model::*;
use crate::services::Services;
use crate::store::StoreResult;

#[derive(Clone, Debug)]
pub enum Identity {
    /// Logged in with the mailbox's own password: that mailbox, every right.
    Mailbox(Mailbox),
    /// A user: an empty INBOX of their own, and every mailbox granted to them under `Shared/`.
    User { user: User, facts: UserFacts },
    /// A user acting as one mailbox (`mailbox*user`, SASL authzid): the mailbox's folders,
    /// limited to the user's rights on it.
    Delegate {
        user: User,
        facts: UserFacts,
        mailbox: Mailbox,
    },
}

impl Identity {
    pub fn principal(&self) -> Principal {
        match self {
            Identity::Mailbox(m) => Principal::Mailbox {
                mailbox: m.id,
                org: m.org,
            },
            Identity::User { facts, .. } | Identity::Delegate { facts, .. } => {
                Principal::User(facts.clone())
            }
        }
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Identity::Mailbox(_) => None,
            Identity::User { user, .. } | Identity::Delegate { user, .. } => Some(user),
        }
    }

    /// The user whose own `\Seen` counts in `mailbox`: set where the mailbox keeps `\Seen` per
    /// user and a user is logged in.
    pub fn seen_user(&self, mailbox: &Mailbox) -> Option<UserId> {
        match (mailbox.seen, self.user()) {
            (SeenPolicy::PerUser, Some(user)) => Some(user.id),
            _ => None,
        }
    }

    /// The mailbox whose folders form the personal namespace, if any.
    pub fn personal(&self) -> Option<&Mailbox> {
        match self {
            Identity::Mailbox(m) | Identity::Delegate { mailbox: m, .. } => Some(m),
            Identity::User { .. } => None,
        }
    }

    pub fn actor(&self) -> Actor {
        match self {
            Identity::Mailbox(m) => Actor::Mailbox(m.id),
            Identity::User { user, .. } => Actor::User(user.id),
            Identity::Delegate { user, mailbox, .. } => Actor::Delegate {
                user: user.id,
                mailbox: mailbox.id,
            },
        }
    }

    /// What this session may do with `mailbox`.
    pub fn access(&self, mailbox: &Mailbox) -> MailboxAccess {
        access::mailbox_access(
            &self.principal(),
            MailboxRef {
                id: mailbox.id,
                org: mailbox.org,
            },
        )
    }

    /// Reloads the user's facts (after a grant, team or user change); `false` when the
    /// identity is no longer valid (user disabled or gone, mailbox deleted, password changed).
    pub fn refresh(&mut self, services: &Services) -> StoreResult<bool> {
        match self {
            // A new password ends what the old one opened.
            Identity::Mailbox(m) => Ok(services
                .store
                .mailbox(m.id)?
                .is_some_and(|now| now.password == m.password)
                && !services.store.is_suspended(m.org)?),
            Identity::User { user, facts } => refresh_user(services, user, facts),
            Identity::Delegate {
                user,
                facts,
                mailbox,
            } => Ok(refresh_user(services, user, facts)?
                && services.store.mailbox(mailbox.id)?.is_some()
                && !services.store.is_suspended(mailbox.org)?),
        }
    }
}

fn refresh_user(services: &Services, user: &mut User, facts: &mut UserFacts) -> StoreResult<bool> {
    match services.store.user(user.id)? {
        Some(u) if !u.disabled && u.password == user.password => {
            *facts = services.store.user_facts(u.id)?;
            // Every organization of hers suspended: as at login, nothing left to open.
            if facts.memberships.is_empty()
                && !facts.operator
                && !services.store.memberships_of(u.id)?.is_empty()
            {
                return Ok(false);
            }
            *user = u;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Why a login was refused; each protocol words it for its clients.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Unknown name or wrong password (one answer for both, so as not to reveal which).
    Credentials,
    /// An alias is not a box (ARCHITECTURE.md §1).
    Alias,
    Disabled,
    MustChangePassword,
    /// The user holds no right on the mailbox asked for.
    NoAccess,
    /// The mailbox's organization (or every organization of the user) is suspended by the
    /// server's operators: a temporary refusal, the mail is kept.
    Suspended,
    /// Too many failed logins from the client's network or for this login: try later. The
    /// password was not checked.
    Throttled,
    /// The server could not check now (as many password checks under way as it allows, or
    /// a store error, which is logged): try again shortly. Not counted as a failure.
    Unavailable,
}

/// A store error while checking a login: the client is told to try again, the log says why
/// (a disk fault must not look like a wave of wrong passwords).
fn unavailable(e: crate::store::StoreError) -> LoginRefusal {
    tracing::error!(error = %e, "store error while checking a login");
    LoginRefusal::Unavailable
}

/// Whether `password` opens `hash`; a busy server answers `Unavailable`.
async fn password_matches(
    services: &Services,
    hash: &PasswordHash,
    password: &str,
) -> Result<bool, LoginRefusal> {
    services
        .passwords
        .verify(hash, password)
        .await
        .map_err(|_| {
            tracing::warn!("password checks are all taken; a login was told to try again");
            LoginRefusal::Unavailable
        })
}

/// The mailbox a login acts as, if it names one, and who logs in.
fn split_login<'a>(
    services: &Services,
    login: &'a str,
    authzid: Option<&'a str>,
) -> (Option<&'a str>, &'a str) {
    let sep = services.config.auth.delegation_separator.as_str();
    match (authzid.filter(|a| !a.is_empty()), login.split_once(sep)) {
        (Some(mailbox), _) => (Some(mailbox), login),
        (None, Some((mailbox, user))) => (Some(mailbox), user),
        (None, None) => (None, login),
    }
}

/// The organizations whose audit log shows a failed login, following `authenticate`: the one
/// holding the mailbox it acts as or logs in to, else those the user it names belongs to.
/// None for a name nobody has; never the user's organizations for another's mailbox, which
/// would tell them about it.
pub fn orgs_concerned(services: &Services, login: &str, authzid: Option<&str>) -> Vec<OrgId> {
    match split_login(services, login, authzid) {
        (Some(mailbox), _) => org_of_address(services, mailbox).into_iter().collect(),
        (None, who) => match org_of_address(services, who) {
            Some(org) => vec![org],
            None => orgs_of_user(services, who),
        },
    }
}

/// The audit logs an event about `orgs` goes to: each of theirs, or the server's alone.
pub fn audit_logs(orgs: Vec<OrgId>) -> Vec<Option<OrgId>> {
    if orgs.is_empty() {
        vec![None]
    } else {
        orgs.into_iter().map(Some).collect()
    }
}

/// The organization of the mailbox (or alias) `address`.
fn org_of_address(services: &Services, address: &str) -> Option<OrgId> {
    let store = &services.store;
    let mailbox = match store.resolve_address(address).ok()?? {
        crate::store::AddressEntry::Mailbox(id) => id,
        crate::store::AddressEntry::Alias(alias) => alias.mailbox,
    };
    Some(store.mailbox(mailbox).ok()??.org)
}

/// The organizations the user whose login is `login` belongs to.
pub fn orgs_of_user(services: &Services, login: &str) -> Vec<OrgId> {
    let store = &services.store;
    let Ok(Some(user)) = store.user_by_login(login) else {
        return Vec::new();
    };
    let mut orgs: Vec<OrgId> = store
        .memberships_of(user.id)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.org)
        .collect();
    orgs.sort();
    orgs.dedup();
    orgs
}

/// Which identities a login may open: mail clients log in as mailboxes, users and delegates;
/// the admin API takes users only, and lets one whose password must change in (to change it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Realm {
    MailClient,
    AdminApi,
}

/// Checks a login: `login` is a mailbox address, a user login, or `mailbox<sep>user`;
/// `authzid` (SASL) names a mailbox to act as.
///
/// A name that is both a mailbox's address and a user's login (a person whose own mailbox has
/// her login's address; `Store::create_mailbox` and `Store::create_user` allow it only then)
/// opens the mailbox with either password: its own, with every right, or the user's, as her
/// delegation with her rights on it.
async fn authenticate(
    services: &Services,
    realm: Realm,
    login: &str,
    password: &str,
    authzid: Option<&str>,
) -> Result<Identity, LoginRefusal> {
    let (target, who) = match realm {
        Realm::MailClient => split_login(services, login, authzid),
        Realm::AdminApi => (None, login),
    };
    let store = &services.store;
    if realm == Realm::MailClient
        && target.is_none()
        && let Some(entry) = store.resolve_address(who).map_err(unavailable)?
    {
        let id = match entry {
            crate::store::AddressEntry::Alias(_) => return Err(LoginRefusal::Alias),
            crate::store::AddressEntry::Mailbox(id) => id,
        };
        let m = store
            .mailbox(id)
            .map_err(unavailable)?
            .ok_or(LoginRefusal::Credentials)?;
        if password_matches(services, &m.password, password).await? {
            refuse_if_suspended(services, m.org)?;
            return Ok(Identity::Mailbox(m));
        }
        // Her own mailbox's address is also her login: her password opens it as a delegate.
        return match store.user_by_login(who).map_err(unavailable)? {
            Some(user) => delegate(services, user, password, m).await,
            None => Err(LoginRefusal::Credentials),
        };
    }
    let user = store
        .user_by_login(who)
        .map_err(unavailable)?
        .ok_or(LoginRefusal::Credentials)?;
    let Some(address) = target else {
        let facts = check_user(services, &user, password, realm).await?;
        // One whose organizations are all suspended has nothing to open by mail; the admin
        // API still lets her in, to see why.
        if realm == Realm::MailClient && facts.memberships.is_empty() && !facts.operator {
            let memberships = store.memberships_of(user.id).map_err(unavailable)?;
            if !memberships.is_empty() {
                return Err(LoginRefusal::Suspended);
            }
        }
        return Ok(Identity::User { user, facts });
    };
    let mailbox = match store.resolve_address(address).map_err(unavailable)? {
        Some(crate::store::AddressEntry::Mailbox(id)) => store.mailbox(id).map_err(unavailable)?,
        Some(crate::store::AddressEntry::Alias(_)) => {
            // Checked first, so that the answer tells nothing to whoever lacks the password.
            check_user(services, &user, password, realm).await?;
            return Err(LoginRefusal::Alias);
        }
        None => None,
    };
    match mailbox {
        Some(mailbox) => delegate(services, user, password, mailbox).await,
        None => {
            check_user(services, &user, password, realm).await?;
            Err(LoginRefusal::NoAccess)
        }
    }
}

/// The user's password, state and facts.
async fn check_user(
    services: &Services,
    user: &User,
    password: &str,
    realm: Realm,
) -> Result<UserFacts, LoginRefusal> {
    if !password_matches(services, &user.password, password).await? {
        return Err(LoginRefusal::Credentials);
    }
    if user.disabled {
        return Err(LoginRefusal::Disabled);
    }
    if user.must_change_password && realm == Realm::MailClient {
        return Err(LoginRefusal::MustChangePassword);
    }
    services.store.user_facts(user.id).map_err(unavailable)
}

fn refuse_if_suspended(services: &Services, org: OrgId) -> Result<(), LoginRefusal> {
    match services.store.is_suspended(org) {
        Ok(false) => Ok(()),
        Ok(true) => Err(LoginRefusal::Suspended),
        Err(e) => Err(unavailable(e)),
    }
}

/// `user` acting as `mailbox`, with her rights on it.
async fn delegate(
    services: &Services,
    user: User,
    password: &str,
    mailbox: Mailbox,
) -> Result<Identity, LoginRefusal> {
    let facts = check_user(services, &user, password, Realm::MailClient).await?;
    refuse_if_suspended(services, mailbox.org)?;
    let may_use = !access::mailbox_access(
        &Principal::User(facts.clone()),
        MailboxRef {
            id: mailbox.id,
            org: mailbox.org,
        },
    )
    .rights
    .is_empty();
    if !may_use {
        return Err(LoginRefusal::NoAccess);
    }
    Ok(Identity::Delegate {
        user,
        facts,
        mailbox,
    })
}

/// The one way in, for IMAP, SMTP and the admin API: the throttle admits the attempt, the
/// password is checked, the attempt is recorded (audit log, metrics, throttle), and a wrong
/// password is answered after its pause. A right one never waits.
pub async fn log_in(
    services: &Services,
    realm: Realm,
    attempt: &Attempt<'_>,
    password: &str,
) -> Result<Identity, LoginRefusal> {
    let check = async {
        let result = authenticate(services, realm, attempt.login, password, attempt.authzid).await;
        record(services, attempt, &result);
        result
    };
    let result = throttled(services, attempt.peer.ip(), attempt.login, check).await;
    if let Err(LoginRefusal::Throttled) = result {
        // Refused unchecked, and cheaply: a storm of these writes nothing to the audit log.
        services.metrics.login(attempt.action, false);
    }
    result
}

/// Runs a password `check` for `login` from `ip` under the throttle: refused unchecked when
/// the throttle says so; a success ends the streak, a wrong password is answered after its
/// pause.
async fn throttled<T>(
    services: &Services,
    ip: std::net::IpAddr,
    login: &str,
    check: impl std::future::Future<Output = Result<T, LoginRefusal>>,
) -> Result<T, LoginRefusal> {
    services
        .throttle
        .admit(ip, login)
        .map_err(|Throttled| LoginRefusal::Throttled)?;
    let result = check.await;
    match &result {
        Ok(_) => services.throttle.succeeded(ip, login),
        Err(LoginRefusal::Credentials) => {
            tokio::time::sleep(services.throttle.failed(ip, login)).await;
        }
        Err(_) => {}
    }
    result
}

/// Checks the password of a user already known (a confirmation in the admin API: changing the
/// password, ending a partnership, accepting an invitation), held back by the throttle like
/// any login.
pub async fn confirm_password(
    services: &Services,
    ip: std::net::IpAddr,
    user: &User,
    password: &str,
) -> Result<(), LoginRefusal> {
    let check = async {
        match password_matches(services, &user.password, password).await? {
            true => Ok(()),
            false => Err(LoginRefusal::Credentials),
        }
    };
    throttled(services, ip, &user.login, check).await
}

/// Whether a password may not be taken on this connection: only over TLS, or from loopback
/// when the configuration allows it (RFC 3501 §6.2.3, RFC 4954 §4 advise against
/// plaintext passwords).
pub fn plaintext_refused(services: &Services, peer: std::net::SocketAddr, tls: bool) -> bool {
    let loopback_allowed =
        services.config.auth.allow_plaintext_on_loopback && peer.ip().is_loopback();
    !(tls || loopback_allowed)
}

/// The identities of a SASL PLAIN response (RFC 4616: `authzid NUL authcid NUL passwd`); an
/// authzid equal to the authcid asks for nothing more than the authcid.
pub fn plain_credentials(data: &[u8]) -> Option<(Option<String>, String, String)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut parts = text.split('\0');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(authzid), Some(authcid), Some(password), None) => {
            let authzid = (!authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid))
                .then(|| authzid.to_string());
            Some((authzid, authcid.to_string(), password.to_string()))
        }
        _ => None,
    }
}

/// One login attempt, as the audit log records it.
pub struct Attempt<'a> {
    /// `imap.login`, `smtp.login`.
    pub action: &'static str,
    pub peer: std::net::SocketAddr,
    pub tls: bool,
    pub login: &'a str,
    pub authzid: Option<&'a str>,
    pub mechanism: &'a str,
    /// The client's ID (RFC 2971), when it sent one.
    pub client_id: Option<&'a str>,
}

/// Records a login, successful or not, with both identities (issue 3); a success repeated
/// from the same address within the hour only in the metrics (`Throttle::worth_recording`).
pub fn record(services: &Services, attempt: &Attempt<'_>, result: &Result<Identity, LoginRefusal>) {
    services.metrics.login(attempt.action, result.is_ok());
    let ip = attempt.peer.ip();
    if result.is_ok()
        && !services
            .throttle
            .worth_recording(ip, attempt.login, attempt.action)
    {
        return;
    }
    let (actor, orgs, outcome) = match result {
        Ok(identity) => (
            identity.actor(),
            vec![identity.personal().map(|m| m.org)],
            Outcome::Success,
        ),
        Err(_) => {
            let orgs = orgs_concerned(services, attempt.login, attempt.authzid);
            (Actor::Anonymous, audit_logs(orgs), Outcome::Failure)
        }
    };
    let detail = format!(
        "mechanism={} tls={} authzid={} id={} {}",
        attempt.mechanism,
        attempt.tls,
        attempt.authzid.unwrap_or("-"),
        attempt.client_id.unwrap_or("-"),
        match result {
            Ok(_) => String::new(),
            Err(r) => format!("refused: {r:?}"),
        }
    );
    for org in orgs {
        let event = AuditEvent {
            id: AuditId(0),
            at: 0,
            org,
            actor: actor.clone(),
            action: attempt.action.into(),
            target: attempt.login.to_string(),
            client: Some(attempt.peer.ip().to_string()),
            outcome,
            detail: detail.clone(),
        };
        if let Err(e) = services.store.record_audit(event) {
            tracing::error!(error = %e, action = attempt.action, "could not record a login");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_login_concerns_the_org_of_the_mailbox_or_of_the_user_it_names() {
        let h = crate::harness::Harness::new();
        let org = h.services.store.organizations().unwrap()[0].id;
        let orgs = |login: &str, authzid: Option<&str>| orgs_concerned(&h.services, login, authzid);
        assert_eq!(orgs(crate::harness::ADDRESS, None), [org]);
        assert_eq!(orgs("owner@harness.test", None), [org], "a member");
        let delegated = format!("{}*owner@harness.test", crate::harness::ADDRESS);
        assert_eq!(orgs(&delegated, None), [org], "counted once");
        let unknown_target = orgs("owner@harness.test", Some("nobody@else.example"));
        assert!(
            unknown_target.is_empty(),
            "not the user's own organizations"
        );
        assert!(orgs("nobody@else.example", None).is_empty());
    }
}
