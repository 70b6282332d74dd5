//! The entities of ARCHITECTURE.md §2, as plain data shared by `store`, `access` and the front ends.
//!
//! Nothing here touches disk or decides rights; these are the nouns the rest of the code speaks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Milliseconds since the Unix epoch: every timestamp the store keeps.
pub type Millis = i64;

/// Now, as `Millis`.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An organization: the tenant.
    OrgId
);
id_type!(
    /// Mail moved into a mailbox from another server or a file.
    ImportId
);
id_type!(
    /// A person's global identity.
    UserId
);
id_type!(
    /// A mailbox (a box with its own password and folders), not an address.
    MailboxId
);
id_type!(
    /// A work team inside one organization.
    TeamId
);
id_type!(
    /// One grant of rights.
    GrantId
);
id_type!(
    /// A client/partner relation between two organizations.
    PartnershipId
);
id_type!(
    /// A folder inside one mailbox.
    FolderId
);
id_type!(
    /// One audit event.
    AuditId
);

/// A role inside one organization, from most to least powerful.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The legal representative: every right; only an owner makes another owner.
    Owner,
    /// Every right on every product; manages members except owners.
    Admin,
    /// Only what is granted; sees the organization's directory.
    Collaborator,
    /// Only what is granted; not in the directory, not in organization-wide sharing.
    External,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Collaborator, Role::External];

    /// Owners and admins run the organization.
    pub fn is_manager(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// Higher is more: owner 3, admin 2, collaborator 1, external 0.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Collaborator => 1,
            Role::External => 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Collaborator => "collaborator",
            Role::External => "external",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One right of RFC 4314 §2.1. `Administer` (`a`) is the *manage* right of ARCHITECTURE.md §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Right {
    Lookup,
    Read,
    KeepSeen,
    Write,
    Insert,
    Post,
    CreateFolder,
    DeleteFolder,
    DeleteMessages,
    Expunge,
    Administer,
}

impl Right {
    pub const ALL: [Right; 11] = [
        Right::Lookup,
        Right::Read,
        Right::KeepSeen,
        Right::Write,
        Right::Insert,
        Right::Post,
        Right::CreateFolder,
        Right::DeleteFolder,
        Right::DeleteMessages,
        Right::Expunge,
        Right::Administer,
    ];

    /// The RFC 4314 letter.
    pub fn letter(self) -> char {
        match self {
            Right::Lookup => 'l',
            Right::Read => 'r',
            Right::KeepSeen => 's',
            Right::Write => 'w',
            Right::Insert => 'i',
            Right::Post => 'p',
            Right::CreateFolder => 'k',
            Right::DeleteFolder => 'x',
            Right::DeleteMessages => 't',
            Right::Expunge => 'e',
            Right::Administer => 'a',
        }
    }

    pub fn from_letter(c: char) -> Option<Right> {
        Right::ALL.into_iter().find(|r| r.letter() == c)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of RFC 4314 rights.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Rights(u16);

/// A rights string named a letter RFC 4314 does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown right {0:?}: rights are the RFC 4314 letters lrswipkxtea")]
pub struct UnknownRight(pub char);

impl Rights {
    pub const NONE: Rights = Rights(0);
    /// Every right, `a` included.
    pub const ALL: Rights = Rights((1 << 11) - 1);

    /// Parses letters such as `"lrs"`. RFC 4314 §2.1.1's obsolete `c` and `d` expand to the
    /// rights they stood for (`kx` and `xte`), as the RFC asks of servers.
    /// The rights as bits, one per RFC 4314 letter in `Right`'s order, as a database column
    /// keeps them.
    pub fn bits(self) -> u16 {
        self.0
    }

    /// Rights from [`Rights::bits`]; `None` if a bit names no right.
    pub fn from_bits(bits: u16) -> Option<Rights> {
        (bits & !Rights::ALL.0 == 0).then_some(Rights(bits))
    }

    pub fn parse(letters: &str) -> Result<Rights, UnknownRight> {
        let mut rights = Rights::NONE;
        for c in letters.chars() {
            match c {
                'c' => rights = rights | Rights::of(&[Right::CreateFolder, Right::DeleteFolder]),
                'd' => {
                    rights = rights
                        | Rights::of(&[Right::DeleteFolder, Right::DeleteMessages, Right::Expunge])
                }
                _ => rights.insert(Right::from_letter(c).ok_or(UnknownRight(c))?),
            }
        }
        Ok(rights)
    }

    pub fn of(rights: &[Right]) -> Rights {
        let mut set = Rights::NONE;
        for r in rights {
            set.insert(*r);
        }
        set
    }

    pub fn insert(&mut self, right: Right) {
        self.0 |= right.bit();
    }

    pub fn contains(self, right: Right) -> bool {
        self.0 & right.bit() != 0
    }

    /// Whether every right of `other` is in `self`.
    pub fn includes(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The rights of `self` that `other` lacks.
    pub fn without(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Right> {
        Right::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The letters in RFC 4314 order.
    pub fn letters(self) -> String {
        self.iter().map(Right::letter).collect()
    }
}

impl std::ops::BitOr for Rights {
    type Output = Rights;
    fn bitor(self, rhs: Rights) -> Rights {
        Rights(self.0 | rhs.0)
    }
}

impl std::ops::BitAnd for Rights {
    type Output = Rights;
    fn bitand(self, rhs: Rights) -> Rights {
        Rights(self.0 & rhs.0)
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rights({:?})", self.letters())
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.letters())
    }
}

/// How a delegate sends for a mailbox.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SendMode {
    /// The message looks sent by the mailbox itself.
    As,
    /// The server sets `Sender:` to the delegate.
    OnBehalf,
}

/// Who a grant is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    User(UserId),
    Team(TeamId),
}

/// What a grant is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantTarget {
    Mailbox(MailboxId),
    /// Every mailbox of the grant's organization, including ones created later.
    AllMailboxes,
}

/// Rights given to a user or a team on one mailbox or on all of an organization's mailboxes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grant {
    pub id: GrantId,
    pub org: OrgId,
    pub grantee: Grantee,
    pub target: GrantTarget,
    /// Use rights and, with `a`, the manage right.
    pub rights: Rights,
    /// Whether the grantee may send for the mailbox, and how.
    pub send: Option<SendMode>,
    pub created: Millis,
    /// Last, so that grants written before it existed still decode (`store::grants`).
    pub validity: Validity,
}

impl Grant {
    /// Whether the grant counts at `now`.
    pub fn active_at(&self, now: Millis) -> bool {
        self.validity.contains(now)
    }
}

/// When a grant counts: from `from` (or at once) until `until` (or for good), in
/// milliseconds since the epoch. Holiday cover that ends by itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Validity {
    pub from: Option<Millis>,
    pub until: Option<Millis>,
}

impl Validity {
    pub fn contains(self, now: Millis) -> bool {
        self.from.is_none_or(|f| f <= now) && self.until.is_none_or(|u| now < u)
    }

    /// Why this window can give nothing, if it cannot: it ends before it starts, or has ended.
    pub fn check(self, now: Millis) -> Result<(), String> {
        match (self.from, self.until) {
            (Some(f), Some(u)) if u <= f => Err("valid_until must come after valid_from".into()),
            (_, Some(u)) if u <= now => Err("valid_until is already past".into()),
            _ => Ok(()),
        }
    }
}

/// A grant before the store gives it an id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewGrant {
    pub org: OrgId,
    pub grantee: Grantee,
    pub target: GrantTarget,
    pub rights: Rights,
    pub send: Option<SendMode>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created: Millis,
}

/// An organization's suspension (issue 12): its mail is kept, its logins and deliveries are
/// refused with temporary answers. One set for deletion is suspended until it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suspension {
    pub since: Millis,
    /// When the organization is deleted (its mail exported first), if it is to be.
    pub deletion_due: Option<Millis>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Domain {
    pub name: String,
    pub org: OrgId,
}

/// A DKIM signing algorithm. Every domain signs with both (RFC 8463 §4: Ed25519 beside RSA,
/// for verifiers that know only RSA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DkimAlgorithm {
    /// `ed25519-sha256` (RFC 8463).
    Ed25519,
    /// `rsa-sha256` with a 2048-bit key (RFC 6376, RFC 8301).
    Rsa,
}

/// Where a DKIM key is in its rotation: published first, then signing, then kept published
/// for the mail it signed until an admin retires it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DkimState {
    /// To be published in the DNS; signs nothing yet.
    Next,
    /// Signs the domain's mail (one per algorithm).
    Active,
    /// Signs nothing any more; still to be published until retired.
    Retiring,
}

/// A domain's DKIM key, as the admin API shows it: never the private half.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub state: DkimState,
    pub created: Millis,
    /// The DER public key (Ed25519: the 32 raw bytes; RSA: SubjectPublicKeyInfo), base64.
    pub public_key: String,
}

impl DkimKey {
    /// Where the key is published: `{selector}._domainkey.{domain}` (RFC 6376 §3.6.2.1).
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record's text (RFC 6376 §3.6.1, RFC 8463 §4.2).
    pub fn dns_value(&self) -> String {
        let k = match self.algorithm {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        };
        format!("v=DKIM1; k={k}; p={}", self.public_key)
    }
}

/// Whether `\Seen` in a shared mailbox is one flag for all who use it or kept per user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeenPolicy {
    /// A team inbox: one `\Seen` for everybody.
    #[default]
    Shared,
    /// A manager's box read by an assistant: each user keeps their own `\Seen`.
    PerUser,
}

/// An argon2id password in PHC string form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    pub id: MailboxId,
    pub org: OrgId,
    pub address: String,
    pub display_name: String,
    pub password: PasswordHash,
    /// Bytes; 0 means no limit.
    pub quota_bytes: u64,
    pub seen: SeenPolicy,
    pub created: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub address: String,
    pub org: OrgId,
    pub mailbox: MailboxId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// The login as the person typed it; compared case-insensitively.
    pub login: String,
    pub display_name: String,
    pub password: PasswordHash,
    /// An initial password must be changed at first login.
    pub must_change_password: bool,
    pub disabled: bool,
    pub created: Millis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Membership {
    pub org: OrgId,
    pub user: UserId,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub org: OrgId,
    pub name: String,
}

/// What a partner organization may manage in its client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartnerScope {
    /// The whole client organization.
    Full,
    /// Only these mailboxes.
    Limited(BTreeSet<MailboxId>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartnershipStatus {
    Invited,
    Accepted,
    Refused,
    Ended,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Partnership {
    pub id: PartnershipId,
    pub client: OrgId,
    pub partner: OrgId,
    pub scope: PartnerScope,
    pub status: PartnershipStatus,
    pub created: Millis,
}

/// A pending invitation. The store keeps only the SHA-256 of its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub token_hash: [u8; 32],
    pub org: OrgId,
    pub email: String,
    pub role: Role,
    pub teams: Vec<TeamId>,
    pub grants: Vec<NewGrant>,
    pub invited_by: UserId,
    pub expires: Millis,
}

/// Who did something.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    System,
    Anonymous,
    User(UserId),
    Mailbox(MailboxId),
    /// A user acting as a mailbox through a grant (`mailbox*user`, SASL authzid).
    Delegate {
        user: UserId,
        mailbox: MailboxId,
    },
    /// A partner organization's member acting in a client.
    Partner {
        user: UserId,
        partner: OrgId,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: AuditId,
    pub at: Millis,
    pub org: Option<OrgId>,
    pub actor: Actor,
    /// A dotted verb such as `imap.login` or `grant.create`.
    pub action: String,
    /// What it was done to, in words (`mailbox 12`, `user lucie@gmail.example`).
    pub target: String,
    pub client: Option<String>,
    pub outcome: Outcome,
    /// Free details: mechanism, TLS, client ID, reason of a failure.
    pub detail: String,
}

/// Lower-cases an address or login: addresses and logins are unique case-insensitively.
pub fn normalize_address(address: &str) -> String {
    let lower = address.trim().to_lowercase();
    // An international domain is kept in A-labels (`crate::address`).
    match lower.rsplit_once('@') {
        Some((local, domain)) if !domain.is_ascii() => match idna::domain_to_ascii(domain) {
            Ok(ascii) => format!("{local}@{ascii}"),
            Err(_) => lower,
        },
        _ => lower,
    }
}

/// The domain part of an address, if it has one.
pub fn domain_of(address: &str) -> Option<&str> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_round_trip_in_rfc_order() {
        let r = Rights::parse("rlia").unwrap();
        assert_eq!(r.letters(), "lria");
        assert!(r.contains(Right::Administer));
        assert_eq!(Rights::ALL.letters(), "lrswipkxtea");
    }

    #[test]
    fn obsolete_c_and_d_expand() {
        assert_eq!(Rights::parse("c").unwrap().letters(), "kx");
        assert_eq!(Rights::parse("d").unwrap().letters(), "xte");
    }

    #[test]
    fn unknown_letter_is_an_error() {
        assert_eq!(Rights::parse("lz"), Err(UnknownRight('z')));
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("a@b.example"), Some("b.example"));
        assert_eq!(domain_of("@b"), None);
        assert_eq!(domain_of("nobody"), None);
    }

    #[test]
    fn a_validity_window_holds_from_its_start_until_before_its_end() {
        let w = Validity {
            from: Some(10),
            until: Some(20),
        };
        assert!(!w.contains(9) && w.contains(10) && w.contains(19) && !w.contains(20));
        assert!(Validity::default().contains(i64::MIN));
        assert!(w.check(5).is_ok());
        assert!(w.check(20).is_err(), "already past");
        let backwards = Validity {
            from: Some(20),
            until: Some(10),
        };
        assert!(backwards.check(0).is_err());
    }
}

/// What the sender of a message asked to be told about it (RFC 3461 §4): RET and ENVID for
/// the message, NOTIFY and ORCPT for each recipient that gave them. The default asks for
/// nothing: a failure is reported, with the header only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsnRequest {
    pub ret: Option<DsnReturn>,
    /// The sender's own identifier of the transaction, returned in every report (§4.4).
    pub envid: Option<String>,
    pub recipients: Vec<RecipientDsn>,
}

/// RET (RFC 3461 §4.3): what of the message a failure report returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DsnReturn {
    Full,
    Headers,
}

/// NOTIFY and ORCPT of one recipient (RFC 3461 §4.1, §4.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientDsn {
    pub address: String,
    /// `None` when NOTIFY was not given.
    pub notify: Option<Notify>,
    /// The address as the sender first gave it (`rfc822` type).
    pub orcpt: Option<String>,
}

/// The events NOTIFY asks to hear of; none of them is NOTIFY=NEVER.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl DsnRequest {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        *self == DsnRequest::default()
    }

    pub fn recipient(&self, address: &str) -> Option<&RecipientDsn> {
        self.recipients.iter().find(|r| r.address == address)
    }

    /// Whether a failure to deliver to `address` is reported: unless NOTIFY left it out
    /// (§4.1: without NOTIFY, failures are reported).
    pub fn wants_failure(&self, address: &str) -> bool {
        self.notify(address).is_none_or(|n| n.failure)
    }

    /// Whether a delivery to `address` is reported: only when NOTIFY asked for SUCCESS.
    pub fn wants_success(&self, address: &str) -> bool {
        self.notify(address).is_some_and(|n| n.success)
    }

    fn notify(&self, address: &str) -> Option<Notify> {
        self.recipient(address).and_then(|r| r.notify)
    }

    /// The part of the request that concerns `recipients` (one queue entry's).
    pub fn only_for(&self, recipients: &[String]) -> DsnRequest {
        DsnRequest {
            ret: self.ret,
            envid: self.envid.clone(),
            recipients: self
                .recipients
                .iter()
                .filter(|r| recipients.contains(&r.address))
                .cloned()
                .collect(),
        }
    }
}
