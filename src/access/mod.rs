//! The access policy: the only code that decides who may do what (ARCHITECTURE.md §2, §4).
//!
//! Everything here is a pure function of facts the caller loads from the store (`UserFacts`),
//! so IMAP, SMTP and the admin API ask the same questions and every role × action × resource
//! case is a plain unit test.

use crate::model::*;

/// What the store knows about a user that bears on rights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFacts {
    pub user: UserId,
    pub disabled: bool,
    pub memberships: Vec<Membership>,
    /// The user's teams with their organizations.
    pub teams: Vec<(TeamId, OrgId)>,
    /// Grants that reach the user directly or through a team.
    pub grants: Vec<Grant>,
    /// Accepted partnerships in which one of the user's organizations is the partner.
    pub partnerships: Vec<Partnership>,
    /// A server operator: creates and renames organizations, names other operators.
    pub operator: bool,
}

impl UserFacts {
    pub fn role_in(&self, org: OrgId) -> Option<Role> {
        self.memberships
            .iter()
            .find(|m| m.org == org)
            .map(|m| m.role)
    }
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    /// A session opened with a mailbox's own password.
    Mailbox {
        mailbox: MailboxId,
        org: OrgId,
    },
    /// A user: either on their own, or acting as one mailbox (`mailbox*user`, SASL authzid),
    /// which the session restricts to that mailbox; the rights are the user's either way.
    User(UserFacts),
}

/// A mailbox as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxRef {
    pub id: MailboxId,
    pub org: OrgId,
}

/// What a principal may do with one mailbox's mail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailboxAccess {
    pub rights: Rights,
    pub send: Option<SendMode>,
}

impl MailboxAccess {
    pub const FULL: MailboxAccess = MailboxAccess {
        rights: Rights::ALL,
        send: Some(SendMode::As),
    };

    pub fn may(&self, right: Right) -> bool {
        self.rights.contains(right)
    }
}

/// A management action inside one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// See the organization at all (its name, that one belongs to it).
    ViewOrganization,
    EditOrganization,
    /// List the members (the directory).
    ListDirectory,
    InviteMember {
        role: Role,
    },
    ChangeRole {
        from: Role,
        to: Role,
    },
    RemoveMember {
        role: Role,
    },
    ManageDomains,
    CreateMailbox,
    /// Change a mailbox's quota, aliases, grants.
    ManageMailbox(MailboxId),
    /// Set a mailbox's password: that opens every right, sending included, so it is for those
    /// who manage the mailbox by role or partnership, not for holders of `a` by a grant.
    SetMailboxPassword(MailboxId),
    /// Create, change or remove a grant giving these rights on this target.
    Grant {
        target: GrantTarget,
        rights: Rights,
        send: Option<SendMode>,
    },
    ManageTeams,
    /// Invite, accept, refuse, rescope or end partnerships of this organization.
    ManagePartnerships,
    ViewAudit,
}

/// Why an action is refused; the front ends turn these into 403s and `NO [NOPERM]`s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("not logged in")]
    Anonymous,
    #[error("only a server operator may do this")]
    NotOperator,
    #[error("the user is disabled")]
    Disabled,
    #[error("not a member of this organization")]
    NotMember,
    #[error("this needs the role {needed} or higher")]
    RoleTooLow { needed: Role },
    #[error("only an owner can make, change or remove an owner")]
    OnlyOwnerTouchesOwner,
    #[error("outside the scope of the partnership")]
    OutsidePartnerScope,
    #[error("a mailbox login manages only its own mailbox")]
    MailboxLogin,
    #[error("cannot grant rights one does not hold: {missing}")]
    NotHeld { missing: String },
    #[error("this needs the right '{}' on the mailbox, through a grant", .0.letter())]
    MissingRight(Right),
    #[error("this belongs to the other side of the partnership: {0}")]
    OtherSide(&'static str),
}

/// The standing a user has in one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Standing {
    Member(Role),
    /// An owner or admin of a partner organization; `Full` acts as an admin for products, not
    /// for people (members, teams, partnerships stay the client's own business).
    Partner(PartnerScope),
    Outsider,
}

fn standing(facts: &UserFacts, org: OrgId) -> Standing {
    if let Some(role) = facts.role_in(org) {
        if role.is_manager() {
            return Standing::Member(role);
        }
        if let Some(scope) = partner_scope(facts, org) {
            return Standing::Partner(scope);
        }
        return Standing::Member(role);
    }
    match partner_scope(facts, org) {
        Some(scope) => Standing::Partner(scope),
        None => Standing::Outsider,
    }
}

/// The widest accepted partnership through which the user, as owner or admin of the partner
/// organization, manages `client`.
fn partner_scope(facts: &UserFacts, client: OrgId) -> Option<PartnerScope> {
    let mut best: Option<PartnerScope> = None;
    for p in &facts.partnerships {
        let manages_partner = facts.role_in(p.partner).is_some_and(Role::is_manager);
        if p.client != client || p.status != PartnershipStatus::Accepted || !manages_partner {
            continue;
        }
        best = Some(match (best, &p.scope) {
            (_, PartnerScope::Full) | (Some(PartnerScope::Full), _) => PartnerScope::Full,
            (Some(PartnerScope::Limited(mut a)), PartnerScope::Limited(b)) => {
                a.extend(b.iter().copied());
                PartnerScope::Limited(a)
            }
            (None, scope) => scope.clone(),
        });
    }
    best
}

/// Whether a grant reaches this user. RFC-free rule of ARCHITECTURE.md §2: external members are not
/// part of organization-wide sharing, so a grant on *every mailbox* reaches an external only
/// when it names the external directly, not through a team.
fn grant_reaches(facts: &UserFacts, grant: &Grant) -> bool {
    let Some(role) = facts.role_in(grant.org) else {
        return false;
    };
    match grant.grantee {
        Grantee::User(u) => u == facts.user,
        Grantee::Team(t) => {
            let in_team = facts.teams.contains(&(t, grant.org));
            let org_wide = grant.target == GrantTarget::AllMailboxes;
            in_team && !(org_wide && role == Role::External)
        }
    }
}

/// The rights and send mode `principal` has on `mailbox`'s mail. Owners and admins manage
/// every mailbox but read mail only through a grant (ARCHITECTURE.md §2).
pub fn mailbox_access(principal: &Principal, mailbox: MailboxRef) -> MailboxAccess {
    match principal {
        Principal::Anonymous => MailboxAccess::default(),
        Principal::Mailbox { mailbox: own, .. } if *own == mailbox.id => MailboxAccess::FULL,
        Principal::Mailbox { .. } => MailboxAccess::default(),
        Principal::User(facts) if facts.disabled => MailboxAccess::default(),
        Principal::User(facts) => {
            let mut access = MailboxAccess::default();
            for grant in &facts.grants {
                let on_it = grant.org == mailbox.org
                    && match grant.target {
                        GrantTarget::Mailbox(id) => id == mailbox.id,
                        GrantTarget::AllMailboxes => true,
                    };
                if on_it && grant_reaches(facts, grant) {
                    access.rights = access.rights | grant.rights;
                    access.send = widest_send(access.send, grant.send);
                }
            }
            access
        }
    }
}

/// The grants through which a user holds rights on `mailbox`'s mail: what a least-privilege
/// review shows as the path (direct, a team, every mailbox of the organization).
pub fn granting(facts: &UserFacts, mailbox: MailboxRef) -> Vec<Grant> {
    if facts.disabled {
        return Vec::new();
    }
    facts
        .grants
        .iter()
        .filter(|grant| {
            grant.org == mailbox.org
                && match grant.target {
                    GrantTarget::Mailbox(id) => id == mailbox.id,
                    GrantTarget::AllMailboxes => true,
                }
                && grant_reaches(facts, grant)
        })
        .cloned()
        .collect()
}

/// How a user manages `mailbox` (may reset its password, and so read it): by role in its
/// organization, or as a manager of a partner organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagedThrough {
    Role(Role),
    Partnership(OrgId),
}

pub fn manages(facts: &UserFacts, mailbox: MailboxRef) -> Option<ManagedThrough> {
    let principal = Principal::User(facts.clone());
    may(
        &principal,
        mailbox.org,
        &Action::SetMailboxPassword(mailbox.id),
    )
    .ok()?;
    match facts.role_in(mailbox.org) {
        Some(role) if role.is_manager() => Some(ManagedThrough::Role(role)),
        _ => facts
            .partnerships
            .iter()
            .find(|p| p.client == mailbox.org && p.status == PartnershipStatus::Accepted)
            .map(|p| ManagedThrough::Partnership(p.partner)),
    }
}

/// `As` includes `OnBehalf`: whoever may send as the mailbox may also sign as themselves.
fn widest_send(a: Option<SendMode>, b: Option<SendMode>) -> Option<SendMode> {
    match (a, b) {
        (Some(SendMode::As), _) | (_, Some(SendMode::As)) => Some(SendMode::As),
        (None, None) => None,
        _ => Some(SendMode::OnBehalf),
    }
}

/// May `principal` do `action` in organization `org`?
/// Server-wide actions (creating organizations, naming operators): operators only.
pub fn may_operate(principal: &Principal) -> Result<(), Denied> {
    match principal {
        Principal::Anonymous => Err(Denied::Anonymous),
        Principal::Mailbox { .. } => Err(Denied::NotOperator),
        Principal::User(facts) if facts.disabled => Err(Denied::Disabled),
        Principal::User(facts) if facts.operator => Ok(()),
        Principal::User(_) => Err(Denied::NotOperator),
    }
}

pub fn may(principal: &Principal, org: OrgId, action: &Action) -> Result<(), Denied> {
    match principal {
        Principal::Anonymous => Err(Denied::Anonymous),
        Principal::Mailbox { mailbox, org: own } => mailbox_may(*mailbox, *own, org, action),
        Principal::User(facts) if facts.disabled => Err(Denied::Disabled),
        Principal::User(facts) => user_may(facts, org, action),
    }
}

/// A mailbox login holds every right on itself, `a` included, and nothing else.
fn mailbox_may(mailbox: MailboxId, own: OrgId, org: OrgId, action: &Action) -> Result<(), Denied> {
    let itself = own == org;
    match action {
        Action::ManageMailbox(m) | Action::SetMailboxPassword(m) if itself && *m == mailbox => {
            Ok(())
        }
        Action::Grant {
            target: GrantTarget::Mailbox(m),
            ..
        } if itself && *m == mailbox => Ok(()),
        _ => Err(Denied::MailboxLogin),
    }
}

fn user_may(facts: &UserFacts, org: OrgId, action: &Action) -> Result<(), Denied> {
    let standing = standing(facts, org);
    if standing == Standing::Outsider {
        return Err(Denied::NotMember);
    }
    match action {
        Action::ViewOrganization => Ok(()),
        Action::EditOrganization | Action::ManageDomains | Action::CreateMailbox => {
            admin_or_full_partner(&standing)
        }
        Action::ListDirectory => match standing {
            Standing::Member(Role::External) => Err(Denied::RoleTooLow {
                needed: Role::Collaborator,
            }),
            Standing::Member(_) => Ok(()),
            Standing::Partner(PartnerScope::Full) => Ok(()),
            _ => Err(Denied::OutsidePartnerScope),
        },
        Action::InviteMember { role } | Action::RemoveMember { role } => {
            manage_people(&standing, *role, *role)
        }
        Action::ChangeRole { from, to } => manage_people(&standing, *from, *to),
        Action::ManageTeams | Action::ViewAudit => members_only(&standing, Role::Admin),
        Action::ManagePartnerships => members_only(&standing, Role::Owner),
        Action::ManageMailbox(m) => manage_mailbox(facts, &standing, org, *m),
        Action::SetMailboxPassword(m) => manager_of(&standing, *m),
        Action::Grant {
            target,
            rights,
            send,
        } => grant(facts, &standing, org, *target, *rights, *send),
    }
}

/// Whoever runs the mailbox by standing: an owner or admin, or a partner whose scope holds it.
fn manager_of(standing: &Standing, mailbox: MailboxId) -> Result<(), Denied> {
    match standing {
        Standing::Member(role) if role.is_manager() => Ok(()),
        Standing::Partner(PartnerScope::Full) => Ok(()),
        Standing::Partner(PartnerScope::Limited(set)) if set.contains(&mailbox) => Ok(()),
        Standing::Partner(_) => Err(Denied::OutsidePartnerScope),
        _ => Err(Denied::RoleTooLow {
            needed: Role::Admin,
        }),
    }
}

fn admin_or_full_partner(standing: &Standing) -> Result<(), Denied> {
    match standing {
        Standing::Member(role) if role.is_manager() => Ok(()),
        Standing::Partner(PartnerScope::Full) => Ok(()),
        Standing::Partner(_) => Err(Denied::OutsidePartnerScope),
        _ => Err(Denied::RoleTooLow {
            needed: Role::Admin,
        }),
    }
}

/// Actions kept for the organization's own members of at least `needed`.
fn members_only(standing: &Standing, needed: Role) -> Result<(), Denied> {
    match standing {
        Standing::Member(role) if *role <= needed => Ok(()),
        Standing::Partner(_) => Err(Denied::OutsidePartnerScope),
        _ => Err(Denied::RoleTooLow { needed }),
    }
}

/// Owners manage everyone; admins everyone but owners, and make no owner.
fn manage_people(standing: &Standing, from: Role, to: Role) -> Result<(), Denied> {
    members_only(standing, Role::Admin)?;
    let touches_owner = from == Role::Owner || to == Role::Owner;
    match standing {
        Standing::Member(Role::Admin) if touches_owner => Err(Denied::OnlyOwnerTouchesOwner),
        _ => Ok(()),
    }
}

/// The rights `facts`' user could delegate on `mailbox`: all of them for whoever manages it as
/// owner, admin or partner; otherwise the user's own, if they include `a`.
fn delegable(facts: &UserFacts, standing: &Standing, mailbox: MailboxRef) -> Option<MailboxAccess> {
    match standing {
        Standing::Member(role) if role.is_manager() => return Some(MailboxAccess::FULL),
        Standing::Partner(PartnerScope::Full) => return Some(MailboxAccess::FULL),
        Standing::Partner(PartnerScope::Limited(set)) if set.contains(&mailbox.id) => {
            return Some(MailboxAccess::FULL);
        }
        _ => {}
    }
    let own = mailbox_access(&Principal::User(facts.clone()), mailbox);
    own.may(Right::Administer).then_some(own)
}

fn manage_mailbox(
    facts: &UserFacts,
    standing: &Standing,
    org: OrgId,
    mailbox: MailboxId,
) -> Result<(), Denied> {
    let mref = MailboxRef { id: mailbox, org };
    match delegable(facts, standing, mref) {
        Some(_) => Ok(()),
        None if matches!(standing, Standing::Partner(_)) => Err(Denied::OutsidePartnerScope),
        None => Err(Denied::NotHeld {
            missing: "a".into(),
        }),
    }
}

fn grant(
    facts: &UserFacts,
    standing: &Standing,
    org: OrgId,
    target: GrantTarget,
    rights: Rights,
    send: Option<SendMode>,
) -> Result<(), Denied> {
    let held = match target {
        GrantTarget::AllMailboxes => {
            admin_or_full_partner(standing)?;
            MailboxAccess::FULL
        }
        GrantTarget::Mailbox(m) => {
            manage_mailbox(facts, standing, org, m)?;
            delegable(facts, standing, MailboxRef { id: m, org }).unwrap_or_default()
        }
    };
    let missing_rights = rights.without(held.rights);
    let send_ok = matches!(
        (send, held.send),
        (None, _) | (_, Some(SendMode::As)) | (Some(SendMode::OnBehalf), Some(SendMode::OnBehalf))
    );
    if missing_rights.is_empty() && send_ok {
        return Ok(());
    }
    let mut missing = missing_rights.letters();
    if !send_ok {
        missing.push_str(" send");
    }
    Err(Denied::NotHeld {
        missing: missing.trim().to_string(),
    })
}

#[cfg(test)]
mod tests;
