//! What each folder name means for an IMAP session: the personal namespace, and for a user
//! the shared namespace `Shared/<address>/<folder>`. Who the session is lives in `login`.

pub use crate::login::{Identity, LoginRefusal};
use crate::model::*;
use crate::services::Services;
use crate::store::StoreResult;

/// The root of the shared namespace (RFC 2342), and the hierarchy separator.
pub const SHARED: &str = "Shared";
pub const SEP: char = '/';

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

    /// For a name under `Shared/` that designates nothing now: whether it names a mailbox of
    /// one of the user's organizations, where the user is not external (so the directory
    /// shows it anyway). Such a name answers NOPERM, not NONEXISTENT: access was taken away.
    pub fn names_own_org_mailbox(&self, services: &Services, name: &str) -> StoreResult<bool> {
        let Identity::User { facts, .. } = self else {
            return Ok(false);
        };
        let prefix = format!("{SHARED}{SEP}");
        let Some(rest) = name.strip_prefix(&prefix) else {
            return Ok(false);
        };
        let address = rest.split(SEP).next().unwrap_or(rest);
        let Some(mailbox) = services.store.mailbox_by_address(address)? else {
            return Ok(false);
        };
        Ok(facts
            .memberships
            .iter()
            .any(|m| m.org == mailbox.org && m.role != Role::External))
    }

    /// The name a session shows for folder `name` of `mailbox`.
    pub fn display_name(&self, mailbox: &Mailbox, name: &str) -> String {
        match self.personal() {
            Some(m) if m.id == mailbox.id => name.to_string(),
            _ => format!("{SHARED}{SEP}{}{SEP}{name}", mailbox.address),
        }
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

/// How IMAP words a refused login (RFC 5530 response codes).
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
            LoginRefusal::Suspended => {
                "[UNAVAILABLE] This organization is suspended; its mail is kept, try again later"
            }
            LoginRefusal::Throttled => {
                "[UNAVAILABLE] Too many failed logins from your network or for this name; try again in a minute"
            }
            LoginRefusal::Unavailable => {
                "[UNAVAILABLE] The server cannot check passwords right now; try again shortly"
            }
        }
    }
}
