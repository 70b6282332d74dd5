//! Who a client session acts as (DESIGN.md §3), for IMAP and SMTP alike: a mailbox (its own
//! password), a user (their password), or a user acting as one mailbox (`mailbox*user`, SASL
//! authzid). What each may do is `access`'s to say.

use crate::access::{self, MailboxAccess, MailboxRef, Principal, UserFacts};
use crate::model::*;
use crate::net::Services;
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
                .is_some_and(|now| now.password == m.password)),
            Identity::User { user, facts } => refresh_user(services, user, facts),
            Identity::Delegate {
                user,
                facts,
                mailbox,
            } => Ok(refresh_user(services, user, facts)?
                && services.store.mailbox(mailbox.id)?.is_some()),
        }
    }
}

fn refresh_user(services: &Services, user: &mut User, facts: &mut UserFacts) -> StoreResult<bool> {
    match services.store.user(user.id)? {
        Some(u) if !u.disabled && u.password == user.password => {
            *facts = services.store.user_facts(u.id)?;
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
    /// An alias is not a box (DESIGN.md §1).
    Alias,
    Disabled,
    MustChangePassword,
    /// The user holds no right on the mailbox asked for.
    NoAccess,
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

/// Checks a login: `login` is a mailbox address, a user login, or `mailbox<sep>user`;
/// `authzid` (SASL) names a mailbox to act as.
pub async fn authenticate(
    services: &Services,
    login: &str,
    password: &str,
    authzid: Option<&str>,
) -> Result<Identity, LoginRefusal> {
    let (target, who) = split_login(services, login, authzid);
    let store = &services.store;
    let lookup_failed = |_| LoginRefusal::Credentials;
    if target.is_none()
        && let Some(entry) = store.resolve_address(who).map_err(lookup_failed)?
    {
        return match entry {
            crate::store::AddressEntry::Alias(_) => Err(LoginRefusal::Alias),
            crate::store::AddressEntry::Mailbox(id) => {
                let m = store
                    .mailbox(id)
                    .map_err(lookup_failed)?
                    .ok_or(LoginRefusal::Credentials)?;
                if services.passwords.verify(&m.password, password).await {
                    Ok(Identity::Mailbox(m))
                } else {
                    Err(LoginRefusal::Credentials)
                }
            }
        };
    }
    let user = store
        .user_by_login(who)
        .map_err(lookup_failed)?
        .ok_or(LoginRefusal::Credentials)?;
    if !services.passwords.verify(&user.password, password).await {
        return Err(LoginRefusal::Credentials);
    }
    if user.disabled {
        return Err(LoginRefusal::Disabled);
    }
    if user.must_change_password {
        return Err(LoginRefusal::MustChangePassword);
    }
    let facts = store.user_facts(user.id).map_err(lookup_failed)?;
    let Some(address) = target else {
        return Ok(Identity::User { user, facts });
    };
    let mailbox = match store.resolve_address(address).map_err(lookup_failed)? {
        Some(crate::store::AddressEntry::Mailbox(id)) => {
            store.mailbox(id).map_err(lookup_failed)?
        }
        Some(crate::store::AddressEntry::Alias(_)) => return Err(LoginRefusal::Alias),
        None => None,
    }
    .ok_or(LoginRefusal::NoAccess)?;
    let identity = Identity::Delegate {
        user,
        facts,
        mailbox,
    };
    let mailbox = identity.personal().cloned().ok_or(LoginRefusal::NoAccess)?;
    if identity.access(&mailbox).rights.is_empty() {
        return Err(LoginRefusal::NoAccess);
    }
    Ok(identity)
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

/// Records a login, successful or not, with both identities (issue 3).
pub fn record(services: &Services, attempt: &Attempt<'_>, result: &Result<Identity, LoginRefusal>) {
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
    services.metrics.login(attempt.action, result.is_ok());
    if result.is_ok() {
        services.throttle.succeeded(attempt.login);
    }
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

/// A refused password is answered after a pause that grows with the failures from the same
/// address and for the same login, to slow down guessing; a correct one never waits.
pub async fn pause_after(
    services: &Services,
    peer: std::net::IpAddr,
    login: &str,
    refusal: &LoginRefusal,
) {
    if *refusal == LoginRefusal::Credentials {
        penalize(services, peer, login).await;
    }
}

/// Counts a wrong password for `peer` and `login` and waits the penalty it earns.
pub async fn penalize(services: &Services, peer: std::net::IpAddr, login: &str) {
    tokio::time::sleep(services.throttle.failed(peer, login)).await;
}

/// Waits out what is left of a penalty before a password is checked, so that guesses sent
/// in parallel gain nothing.
pub async fn wait_out_penalty(services: &Services, peer: std::net::IpAddr, login: &str) {
    tokio::time::sleep(services.throttle.pending(peer, login)).await;
}

/// Failed logins, per client address and per login, over IMAP, SMTP and the admin API: the
/// n-th failure in a row waits 2^(n-1) seconds (1, 2, 4 … at most 30); a quarter of an hour
/// without a failure forgets them. A success clears the login's count, not the address's.
#[derive(Default)]
pub struct Throttle {
    failures: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);
const MAX_TRACKED: usize = 100_000;

impl Throttle {
    /// Counts a failure; returns how long to wait before answering it.
    pub fn failed(&self, peer: std::net::IpAddr, login: &str) -> std::time::Duration {
        let now = std::time::Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > MAX_TRACKED {
            map.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
        }
        let mut worst = 0;
        for key in [
            format!("ip:{peer}"),
            format!("login:{}", login.to_lowercase()),
        ] {
            let entry = map.entry(key).or_insert((0, now));
            if now.duration_since(entry.1) >= FORGET_AFTER {
                entry.0 = 0;
            }
            entry.0 = entry.0.saturating_add(1);
            entry.1 = now;
            worst = worst.max(entry.0);
        }
        std::time::Duration::from_secs(1u64 << worst.saturating_sub(1).min(5))
            .min(std::time::Duration::from_secs(30))
    }

    /// What is left of the current penalty for this address or login: an attempt waits it
    /// out before its password is even checked, so parallel guesses gain nothing.
    pub fn pending(&self, peer: std::net::IpAddr, login: &str) -> std::time::Duration {
        let now = std::time::Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        [
            format!("ip:{peer}"),
            format!("login:{}", login.to_lowercase()),
        ]
        .iter()
        .filter_map(|k| map.get(k))
        .filter(|(n, _)| *n > 0)
        .map(|(n, last)| {
            let penalty = std::time::Duration::from_secs(1u64 << n.saturating_sub(1).min(5))
                .min(std::time::Duration::from_secs(30));
            (*last + penalty).saturating_duration_since(now)
        })
        .max()
        .unwrap_or_default()
    }

    pub fn succeeded(&self, login: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("login:{}", login.to_lowercase()));
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

    #[test]
    fn failures_double_the_wait_per_address_and_per_login() {
        let t = Throttle::default();
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap_or_else(|_| unreachable!());
        let other: std::net::IpAddr = "192.0.2.8".parse().unwrap_or_else(|_| unreachable!());
        let secs = |d: std::time::Duration| d.as_secs();
        assert_eq!(secs(t.failed(ip, "a@x.example")), 1);
        assert_eq!(secs(t.failed(ip, "b@x.example")), 2, "the same address");
        assert_eq!(secs(t.failed(other, "A@X.example")), 2, "the same login");
        for _ in 0..10 {
            t.failed(ip, "a@x.example");
        }
        assert_eq!(secs(t.failed(ip, "a@x.example")), 30, "capped");
        t.succeeded("a@x.example");
        assert_eq!(
            secs(t.failed(other, "a@x.example")),
            2,
            "the login forgot; not the address"
        );
    }
}
