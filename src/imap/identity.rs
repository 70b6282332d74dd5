//! Who an IMAP session acts as (DESIGN.md §3), and what each folder name means for it: the
//! personal namespace, and for a user the shared namespace `Shared/<address>/<folder>`.

use crate::access::{self, MailboxAccess, MailboxRef, Principal, UserFacts};
use crate::model::*;
use crate::net::Services;
use crate::store::StoreResult;

/// The root of the shared namespace (RFC 2342), and the hierarchy separator.
pub const SHARED: &str = "Shared";
pub const SEP: char = '/';

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

/// What a folder name designates for a session.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A folder of a real mailbox.
    Folder { mailbox: Mailbox, name: String },
    /// A user's own INBOX: exists, is empty, takes nothing.
    UserInbox,
    /// `Shared` or `Shared/<address>`: names in the hierarchy that hold no messages.
    NamespaceRoot,
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
    /// identity is no longer valid (user disabled or gone, mailbox deleted).
    pub fn refresh(&mut self, services: &Services) -> StoreResult<bool> {
        match self {
            Identity::Mailbox(m) => Ok(services.store.mailbox(m.id)?.is_some()),
            Identity::User { user, facts } => refresh_user(services, user, facts),
            Identity::Delegate {
                user,
                facts,
                mailbox,
            } => Ok(refresh_user(services, user, facts)?
                && services.store.mailbox(mailbox.id)?.is_some()),
        }
    }

    /// The mailboxes of the shared namespace: those on which a user holds `l`.
    pub fn shared_mailboxes(&self, services: &Services) -> StoreResult<Vec<Mailbox>> {
        let Identity::User { facts, .. } = self else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for m in &facts.memberships {
            for mailbox in services.store.mailboxes(m.org)? {
                if self.access(&mailbox).may(Right::Lookup) {
                    out.push(mailbox);
                }
            }
        }
        out.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(out)
    }

    /// What `name` designates, or `None` when it designates nothing this session can know of.
    pub fn resolve(&self, services: &Services, name: &str) -> StoreResult<Option<Target>> {
        if let Some(m) = self.personal() {
            return Ok(Some(Target::Folder {
                mailbox: m.clone(),
                name: canonical(name),
            }));
        }
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok(Some(Target::UserInbox));
        }
        let Some(rest) = name.strip_prefix(SHARED) else {
            return Ok(None);
        };
        if rest.is_empty() {
            return Ok(Some(Target::NamespaceRoot));
        }
        let Some(rest) = rest.strip_prefix(SEP) else {
            return Ok(None);
        };
        let (address, folder) = match rest.split_once(SEP) {
            Some((a, f)) => (a, Some(f)),
            None => (rest, None),
        };
        let found = self
            .shared_mailboxes(services)?
            .into_iter()
            .find(|m| m.address.eq_ignore_ascii_case(address));
        Ok(found.map(|mailbox| match folder {
            None => Target::NamespaceRoot,
            Some(f) => Target::Folder {
                mailbox,
                name: canonical(f),
            },
        }))
    }

    /// The name a session shows for folder `name` of `mailbox`.
    pub fn display_name(&self, mailbox: &Mailbox, name: &str) -> String {
        match self.personal() {
            Some(m) if m.id == mailbox.id => name.to_string(),
            _ => format!("{SHARED}{SEP}{}{SEP}{name}", mailbox.address),
        }
    }
}

fn refresh_user(services: &Services, user: &mut User, facts: &mut UserFacts) -> StoreResult<bool> {
    match services.store.user(user.id)? {
        Some(u) if !u.disabled => {
            *facts = services.store.user_facts(u.id)?;
            *user = u;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// `INBOX` in any case is the inbox (RFC 3501 §5.1).
pub fn canonical(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".into()
    } else {
        name.to_string()
    }
}

/// Why a login was refused; the text goes to the client.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Unknown name or wrong password (one answer for both: RFC 3501 §6.2.3).
    Credentials,
    /// An alias is not a box (DESIGN.md §1).
    Alias,
    Disabled,
    MustChangePassword,
    /// The user holds no right on the mailbox asked for.
    NoAccess,
}

impl LoginRefusal {
    pub fn response(&self) -> &'static str {
        match self {
            LoginRefusal::Credentials => "[AUTHENTICATIONFAILED] Invalid credentials",
            LoginRefusal::Alias => {
                "[AUTHENTICATIONFAILED] That address is an alias; log in with its mailbox"
            }
            LoginRefusal::Disabled => "[AUTHENTICATIONFAILED] This user is disabled",
            LoginRefusal::MustChangePassword => {
                "[EXPIRED] The password must be changed first (admin API: POST /api/v1/me/password)"
            }
            LoginRefusal::NoAccess => "[AUTHORIZATIONFAILED] No access to that mailbox",
        }
    }
}

/// Checks a login: `login` is a mailbox address, a user login, or `mailbox<sep>user`;
/// `authzid` (SASL) names a mailbox to act as.
pub async fn authenticate(
    services: &Services,
    login: &str,
    password: &str,
    authzid: Option<&str>,
) -> Result<Identity, LoginRefusal> {
    let sep = services.config.auth.delegation_separator.as_str();
    let (target, who) = match (authzid.filter(|a| !a.is_empty()), login.split_once(sep)) {
        (Some(mailbox), _) => (Some(mailbox), login),
        (None, Some((mailbox, user))) => (Some(mailbox), user),
        (None, None) => (None, login),
    };
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
