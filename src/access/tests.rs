//! The policy as tables: every principal × every action × every resource, written out so
//! that a reviewer reads the rules rather than the code.

use super::*;
use std::collections::BTreeSet;

const A: OrgId = OrgId(1);
const B: OrgId = OrgId(2);
const PARTNER: OrgId = OrgId(3);
/// Mailboxes of A.
const M: MailboxId = MailboxId(10);
const N: MailboxId = MailboxId(11);
const TEAM: TeamId = TeamId(50);

fn grant(
    org: OrgId,
    grantee: Grantee,
    target: GrantTarget,
    rights: &str,
    send: Option<SendMode>,
) -> Grant {
    Grant {
        id: GrantId(0),
        org,
        grantee,
        target,
        rights: Rights::parse(rights).unwrap(),
        send,
        created: 0,
        validity: Validity::default(),
    }
}

fn user(id: u64, memberships: &[(OrgId, Role)]) -> UserFacts {
    UserFacts {
        user: UserId(id),
        disabled: false,
        memberships: memberships
            .iter()
            .map(|(org, role)| Membership {
                org: *org,
                user: UserId(id),
                role: *role,
            })
            .collect(),
        teams: Vec::new(),
        grants: Vec::new(),
        partnerships: Vec::new(),
        operator: false,
    }
}

fn partnership(scope: PartnerScope, status: PartnershipStatus) -> Partnership {
    Partnership {
        id: PartnershipId(90),
        client: A,
        partner: PARTNER,
        scope,
        status,
        created: 0,
    }
}

/// The principals, in the column order of the tables.
fn principals() -> Vec<(&'static str, Principal)> {
    let owner = user(1, &[(A, Role::Owner)]);
    let admin = user(2, &[(A, Role::Admin)]);
    let mut collaborator = user(3, &[(A, Role::Collaborator)]);
    collaborator.teams = vec![(TEAM, A)];
    collaborator.grants = vec![grant(
        A,
        Grantee::Team(TEAM),
        GrantTarget::AllMailboxes,
        "lr",
        None,
    )];
    let mut external = user(4, &[(A, Role::External)]);
    external.teams = vec![(TEAM, A)];
    external.grants = vec![
        grant(
            A,
            Grantee::Team(TEAM),
            GrantTarget::AllMailboxes,
            "lr",
            None,
        ),
        grant(
            A,
            Grantee::User(UserId(4)),
            GrantTarget::Mailbox(N),
            "lrs",
            Some(SendMode::As),
        ),
    ];
    let mut delegate = user(5, &[(A, Role::Collaborator)]);
    delegate.grants = vec![grant(
        A,
        Grantee::User(UserId(5)),
        GrantTarget::Mailbox(M),
        "lrsa",
        Some(SendMode::OnBehalf),
    )];
    let mut partner_full = user(6, &[(PARTNER, Role::Admin)]);
    partner_full.partnerships = vec![partnership(PartnerScope::Full, PartnershipStatus::Accepted)];
    let mut partner_limited = user(7, &[(PARTNER, Role::Owner)]);
    partner_limited.partnerships = vec![partnership(
        PartnerScope::Limited(BTreeSet::from([M])),
        PartnershipStatus::Accepted,
    )];
    let mut partner_invited = user(8, &[(PARTNER, Role::Owner)]);
    partner_invited.partnerships =
        vec![partnership(PartnerScope::Full, PartnershipStatus::Invited)];
    let mut disabled = user(9, &[(A, Role::Owner)]);
    disabled.disabled = true;
    disabled.grants = vec![grant(
        A,
        Grantee::User(UserId(9)),
        GrantTarget::Mailbox(M),
        "lr",
        None,
    )];
    // A stale grant of A in the facts of someone who is not a member of A gives nothing.
    let mut other = user(10, &[(B, Role::Owner)]);
    other.grants = vec![grant(
        A,
        Grantee::User(UserId(10)),
        GrantTarget::Mailbox(M),
        "lr",
        None,
    )];
    vec![
        ("own", Principal::User(owner)),
        ("adm", Principal::User(admin)),
        ("col", Principal::User(collaborator)),
        ("ext", Principal::User(external)),
        ("dlg", Principal::User(delegate)),
        ("pful", Principal::User(partner_full)),
        ("plim", Principal::User(partner_limited)),
        ("pinv", Principal::User(partner_invited)),
        ("mbxM", Principal::Mailbox { mailbox: M, org: A }),
        ("mbxN", Principal::Mailbox { mailbox: N, org: A }),
        ("anon", Principal::Anonymous),
        ("dis", Principal::User(disabled)),
        ("other", Principal::User(other)),
    ]
}

fn grant_action(target: GrantTarget, rights: &str, send: Option<SendMode>) -> Action {
    Action::Grant {
        target,
        rights: Rights::parse(rights).unwrap(),
        send,
    }
}

/// Every management action in organization A, with who may do it (Y) or not (.).
#[rustfmt::skip]
fn management_table() -> Vec<(&'static str, Action, &'static str)> {
    use Role::*;
    let m = GrantTarget::Mailbox(M);
    let n = GrantTarget::Mailbox(N);
    let all = GrantTarget::AllMailboxes;
    let change = |from, to| Action::ChangeRole { from, to };
    vec![
        //                                                                   own adm col ext dlg pful plim pinv mbxM mbxN anon dis other
        ("view organization",         Action::ViewOrganization,                   "Y Y Y Y Y Y Y . . . . . ."),
        ("edit organization",         Action::EditOrganization,                   "Y Y . . . Y . . . . . . ."),
        ("list directory",            Action::ListDirectory,                      "Y Y Y . Y Y . . . . . . ."),
        ("invite owner",              Action::InviteMember { role: Owner },       "Y . . . . . . . . . . . ."),
        ("invite admin",              Action::InviteMember { role: Admin },       "Y Y . . . . . . . . . . ."),
        ("invite collaborator",       Action::InviteMember { role: Collaborator },"Y Y . . . . . . . . . . ."),
        ("invite external",           Action::InviteMember { role: External },    "Y Y . . . . . . . . . . ."),
        ("admin -> owner",            change(Admin, Owner),                       "Y . . . . . . . . . . . ."),
        ("owner -> admin",            change(Owner, Admin),                       "Y . . . . . . . . . . . ."),
        ("collaborator -> admin",     change(Collaborator, Admin),                "Y Y . . . . . . . . . . ."),
        ("admin -> external",         change(Admin, External),                    "Y Y . . . . . . . . . . ."),
        ("remove owner",              Action::RemoveMember { role: Owner },       "Y . . . . . . . . . . . ."),
        ("remove admin",              Action::RemoveMember { role: Admin },       "Y Y . . . . . . . . . . ."),
        ("remove external",           Action::RemoveMember { role: External },    "Y Y . . . . . . . . . . ."),
        ("manage domains",            Action::ManageDomains,                      "Y Y . . . Y . . . . . . ."),
        ("create mailbox",            Action::CreateMailbox,                      "Y Y . . . Y . . . . . . ."),
        ("manage mailbox M",          Action::ManageMailbox(M),                   "Y Y . . Y Y Y . Y . . . ."),
        ("manage mailbox N",          Action::ManageMailbox(N),                   "Y Y . . . Y . . . Y . . ."),
        ("set password of M",         Action::SetMailboxPassword(M),              "Y Y . . . Y Y . Y . . . ."),
        ("set password of N",         Action::SetMailboxPassword(N),              "Y Y . . . Y . . . Y . . ."),
        ("grant lr on M",             grant_action(m, "lr", None),                "Y Y . . Y Y Y . Y . . . ."),
        ("grant lrsa on M",           grant_action(m, "lrsa", None),              "Y Y . . Y Y Y . Y . . . ."),
        ("grant lrswi on M",          grant_action(m, "lrswi", None),             "Y Y . . . Y Y . Y . . . ."),
        ("grant send on behalf on M", grant_action(m, "l", Some(SendMode::OnBehalf)), "Y Y . . Y Y Y . Y . . . ."),
        ("grant send as on M",        grant_action(m, "l", Some(SendMode::As)),   "Y Y . . . Y Y . Y . . . ."),
        ("grant lr on N",             grant_action(n, "lr", None),                "Y Y . . . Y . . . Y . . ."),
        ("grant lr on every mailbox", grant_action(all, "lr", None),              "Y Y . . . Y . . . . . . ."),
        ("manage teams",              Action::ManageTeams,                        "Y Y . . . . . . . . . . ."),
        ("manage partnerships",       Action::ManagePartnerships,                 "Y . . . . . . . . . . . ."),
        ("view audit log",            Action::ViewAudit,                          "Y Y . . . . . . . . . . ."),
    ]
}

#[test]
fn every_principal_against_every_management_action() {
    let principals = principals();
    let mut failures = Vec::new();
    for (name, action, expected) in management_table() {
        let expected: Vec<bool> = expected.split(' ').map(|c| c == "Y").collect();
        assert_eq!(
            expected.len(),
            principals.len(),
            "row {name} has the wrong width"
        );
        for ((who, principal), allowed) in principals.iter().zip(expected) {
            let got = may(principal, A, &action);
            if got.is_ok() != allowed {
                failures.push(format!("{name} by {who}: expected {allowed}, got {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The use rights each principal has on M and N, as RFC 4314 letters and send mode.
#[test]
#[rustfmt::skip]
fn every_principal_against_every_mailbox() {
    type Row = (
        &'static str,
        &'static str,
        Option<SendMode>,
        &'static str,
        Option<SendMode>,
    );
    let table: [Row; 13] = [
        // Owners and admins manage mailboxes but read mail only through a grant.
        ("own", "", None, "", None),
        ("adm", "", None, "", None),
        // An org-wide team grant reaches a collaborator on every mailbox...
        ("col", "lr", None, "lr", None),
        // ...but not an external member, who gets only the direct grant.
        ("ext", "", None, "lrs", Some(SendMode::As)),
        ("dlg", "lrsa", Some(SendMode::OnBehalf), "", None),
        // Partners manage; they do not read.
        ("pful", "", None, "", None),
        ("plim", "", None, "", None),
        ("pinv", "", None, "", None),
        ("mbxM", "lrswipkxtea", Some(SendMode::As), "", None),
        ("mbxN", "", None, "lrswipkxtea", Some(SendMode::As)),
        ("anon", "", None, "", None),
        ("dis", "", None, "", None),
        ("other", "", None, "", None),
    ];
    let principals = principals();
    for ((who, principal), (row, on_m, send_m, on_n, send_n)) in principals.iter().zip(table) {
        assert_eq!(*who, row);
        for (mailbox, rights, send) in [(M, on_m, send_m), (N, on_n, send_n)] {
            let got = mailbox_access(
                principal,
                MailboxRef {
                    id: mailbox,
                    org: A,
                },
            );
            assert_eq!(got.rights.letters(), rights, "{who} on {mailbox}");
            assert_eq!(got.send, send, "{who} sending for {mailbox}");
        }
    }
}

/// Each RFC 4314 right, given alone, gives exactly that right.
#[test]
fn each_right_alone() {
    for right in Right::ALL {
        let mut facts = user(3, &[(A, Role::Collaborator)]);
        let letters = right.letter().to_string();
        facts.grants = vec![grant(
            A,
            Grantee::User(UserId(3)),
            GrantTarget::Mailbox(M),
            &letters,
            None,
        )];
        let access = mailbox_access(&Principal::User(facts), MailboxRef { id: M, org: A });
        for other in Right::ALL {
            assert_eq!(
                access.may(other),
                other == right,
                "{right:?} granted, {other:?} asked"
            );
        }
    }
}

#[test]
fn refusals_say_why() {
    let p = principals();
    let admin = &p[1].1;
    assert_eq!(
        may(admin, A, &Action::InviteMember { role: Role::Owner }),
        Err(Denied::OnlyOwnerTouchesOwner)
    );
    let delegate = &p[4].1;
    let err = may(
        delegate,
        A,
        &grant_action(GrantTarget::Mailbox(M), "lrw", Some(SendMode::As)),
    );
    assert_eq!(
        err,
        Err(Denied::NotHeld {
            missing: "w send".into()
        })
    );
    let limited = &p[6].1;
    assert_eq!(
        may(limited, A, &Action::ManageMailbox(N)),
        Err(Denied::OutsidePartnerScope)
    );
    assert_eq!(
        may(&p[10].1, A, &Action::ViewOrganization),
        Err(Denied::Anonymous)
    );
    assert_eq!(
        may(&p[11].1, A, &Action::ViewOrganization),
        Err(Denied::Disabled)
    );
    assert_eq!(
        may(&p[12].1, A, &Action::ViewOrganization),
        Err(Denied::NotMember)
    );
}

#[test]
fn a_partner_who_is_also_a_collaborator_gets_the_wider_standing() {
    let mut facts = user(6, &[(PARTNER, Role::Admin), (A, Role::Collaborator)]);
    facts.partnerships = vec![partnership(PartnerScope::Full, PartnershipStatus::Accepted)];
    assert!(may(&Principal::User(facts), A, &Action::CreateMailbox).is_ok());
}

#[test]
fn a_collaborator_of_the_partner_is_no_partner() {
    let mut facts = user(6, &[(PARTNER, Role::Collaborator)]);
    facts.partnerships = vec![partnership(PartnerScope::Full, PartnershipStatus::Accepted)];
    assert_eq!(
        may(&Principal::User(facts), A, &Action::ViewOrganization),
        Err(Denied::NotMember)
    );
}

/// Server-wide actions: an operator only, and not once disabled; no organization role
/// (an owner included) and no mailbox login is one.
#[test]
fn only_operators_operate_the_server() {
    use crate::access::{Denied, may_operate};
    let mut operator = user(1, &[]);
    operator.operator = true;
    assert_eq!(may_operate(&Principal::User(operator.clone())), Ok(()));
    operator.disabled = true;
    assert_eq!(
        may_operate(&Principal::User(operator)),
        Err(Denied::Disabled)
    );
    let owner = user(2, &[(OrgId(1), Role::Owner)]);
    assert_eq!(
        may_operate(&Principal::User(owner)),
        Err(Denied::NotOperator)
    );
    let mailbox = Principal::Mailbox {
        mailbox: MailboxId(3),
        org: OrgId(1),
    };
    assert_eq!(may_operate(&mailbox), Err(Denied::NotOperator));
    assert_eq!(may_operate(&Principal::Anonymous), Err(Denied::Anonymous));
}
