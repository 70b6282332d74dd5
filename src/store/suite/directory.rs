//! The directory and the records that carry access: organizations, domains, addresses,
//! users, memberships, teams, grants, partnerships and invitations.

use super::{Directory, Test, World, hash, new_mailbox, new_user, refused, world};
use crate::model::*;
use crate::store::error::StoreError;
use crate::store::{NewMailbox, NewUser};

/// Every test of this family, for each backend's tests to run in turn.
pub fn all<S: Directory>() -> Vec<Test<S>> {
    vec![
        (
            "an_address_is_a_mailbox_or_an_alias_never_both",
            an_address_is_a_mailbox_or_an_alias_never_both::<S>,
        ),
        (
            "an_address_lives_in_its_domains_organization_only",
            an_address_lives_in_its_domains_organization_only::<S>,
        ),
        (
            "a_domain_has_one_organization",
            a_domain_has_one_organization::<S>,
        ),
        (
            "an_alias_points_into_its_own_organization",
            an_alias_points_into_its_own_organization::<S>,
        ),
        (
            "logins_are_unique_case_insensitively",
            logins_are_unique_case_insensitively::<S>,
        ),
        ("the_last_owner_stays", the_last_owner_stays::<S>),
        (
            "removing_a_member_removes_their_grants_and_team_places",
            removing_a_member_removes_their_grants_and_team_places::<S>,
        ),
        (
            "time_limited_grants_count_within_their_window_and_end_by_the_clock",
            time_limited_grants_count_within_their_window_and_end_by_the_clock::<S>,
        ),
        (
            "operators_are_named_and_the_last_one_stays",
            operators_are_named_and_the_last_one_stays::<S>,
        ),
        (
            "grants_need_grantee_and_mailbox_of_the_organization",
            grants_need_grantee_and_mailbox_of_the_organization::<S>,
        ),
        (
            "access_facts_follow_teams_and_partnerships",
            access_facts_follow_teams_and_partnerships::<S>,
        ),
        (
            "invitations_are_single_use",
            invitations_are_single_use::<S>,
        ),
        (
            "a_renewed_invitation_replaces_the_old_in_one_step",
            a_renewed_invitation_replaces_the_old_in_one_step::<S>,
        ),
        (
            "a_team_is_never_renamed_to_nothing",
            a_team_is_never_renamed_to_nothing::<S>,
        ),
    ]
}

pub fn an_address_is_a_mailbox_or_an_alias_never_both<S: Directory>(store: &S) {
    let w = world(store);
    let contact = new_mailbox(store, w.acme.id, "contact@acme.example");
    store
        .create_alias(w.acme.id, "hello@acme.example", contact.id)
        .unwrap();
    refused!(
        store,
        store.create_alias(w.acme.id, "Contact@ACME.example", contact.id),
        StoreError::AddressTaken(_)
    );
    let again = NewMailbox {
        org: w.acme.id,
        address: "HELLO@acme.example".into(),
        display_name: String::new(),
        password: hash(),
        quota_bytes: 0,
        seen: SeenPolicy::Shared,
    };
    refused!(
        store,
        store.create_mailbox(again),
        StoreError::AddressTaken(_)
    );
}

pub fn an_address_lives_in_its_domains_organization_only<S: Directory>(store: &S) {
    let w = world(store);
    let foreign = NewMailbox {
        org: w.beta.id,
        address: "x@acme.example".into(),
        display_name: String::new(),
        password: hash(),
        quota_bytes: 0,
        seen: SeenPolicy::Shared,
    };
    refused!(
        store,
        store.create_mailbox(foreign),
        StoreError::DomainNotOwned(_)
    );
}

pub fn a_domain_has_one_organization<S: Directory>(store: &S) {
    let w = world(store);
    refused!(
        store,
        store.add_domain(w.beta.id, "ACME.example"),
        StoreError::DomainTaken(_)
    );
    assert_eq!(
        store.domain("acme.example").unwrap().unwrap().org,
        w.acme.id
    );
}

pub fn an_alias_points_into_its_own_organization<S: Directory>(store: &S) {
    let w = world(store);
    let beta_box = new_mailbox(store, w.beta.id, "info@beta.example");
    refused!(
        store,
        store.create_alias(w.acme.id, "info@acme.example", beta_box.id),
        StoreError::AliasAcrossOrganizations
    );
}

pub fn logins_are_unique_case_insensitively<S: Directory>(store: &S) {
    new_user(store, "Lucie@Gmail.example");
    let dup = NewUser {
        login: "lucie@GMAIL.EXAMPLE".into(),
        display_name: String::new(),
        password: hash(),
        must_change_password: false,
        own_mailbox: None,
    };
    refused!(store, store.create_user(dup), StoreError::LoginTaken(_));
    let found = store.user_by_login("LUCIE@gmail.example").unwrap().unwrap();
    assert_eq!(found.login, "Lucie@Gmail.example");
}

pub fn the_last_owner_stays<S: Directory>(store: &S) {
    let w = world(store);
    refused!(
        store,
        store.set_member(w.acme.id, w.owner.id, Role::Admin),
        StoreError::LastOwner
    );
    refused!(
        store,
        store.remove_member(w.acme.id, w.owner.id),
        StoreError::LastOwner
    );
    let second = new_user(store, "second@acme.example");
    store.set_member(w.acme.id, second.id, Role::Owner).unwrap();
    store
        .set_member(w.acme.id, w.owner.id, Role::Admin)
        .unwrap();
    refused!(
        store,
        store.remove_member(w.acme.id, second.id),
        StoreError::LastOwner
    );
}

pub fn removing_a_member_removes_their_grants_and_team_places<S: Directory>(store: &S) {
    let w = world(store);
    let contact = new_mailbox(store, w.acme.id, "contact@acme.example");
    let lucie = new_user(store, "lucie@gmail.example");
    store
        .set_member(w.acme.id, lucie.id, Role::Collaborator)
        .unwrap();
    let team = store.create_team(w.acme.id, "Support").unwrap();
    store.add_team_member(w.acme.id, team.id, lucie.id).unwrap();
    store
        .add_grant(NewGrant {
            org: w.acme.id,
            grantee: Grantee::User(lucie.id),
            target: GrantTarget::Mailbox(contact.id),
            rights: Rights::parse("lr").unwrap(),
            send: None,
        })
        .unwrap();
    store.remove_member(w.acme.id, lucie.id).unwrap();
    assert!(store.grants(w.acme.id).unwrap().is_empty());
    assert!(store.team_members(team.id).unwrap().is_empty());
    let facts = store.user_facts(lucie.id).unwrap();
    assert!(facts.memberships.is_empty() && facts.grants.is_empty());
}

/// A time-limited grant counts within its window only; the clock removes it at its end,
/// tells the organization's sessions of each start and end, and names the next boundary.
pub fn time_limited_grants_count_within_their_window_and_end_by_the_clock<S: Directory>(store: &S) {
    let w = world(store);
    let contact = new_mailbox(store, w.acme.id, "contact@acme.example");
    let lucie = new_user(store, "lucie@gmail.example");
    store
        .set_member(w.acme.id, lucie.id, Role::Collaborator)
        .unwrap();
    let read = |validity| {
        let new = NewGrant {
            org: w.acme.id,
            grantee: Grantee::User(lucie.id),
            target: GrantTarget::Mailbox(contact.id),
            rights: Rights::parse("lr").unwrap(),
            send: None,
        };
        store.add_grant_within(new, validity).unwrap()
    };
    let now = now_millis();
    let running = read(Validity {
        from: None,
        until: Some(now + 60_000),
    });
    let later = read(Validity {
        from: Some(now + 30_000),
        until: None,
    });
    let ended = read(Validity {
        from: None,
        until: Some(now - 1),
    });
    let counted: Vec<GrantId> = store
        .user_facts(lucie.id)
        .unwrap()
        .grants
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(counted, [running.id], "only the running one counts");
    let mut sessions = store.hub().subscribe_access();
    let clock = store.grant_clock(now - 10, now).unwrap();
    assert_eq!(
        clock.ended.iter().map(|g| g.id).collect::<Vec<_>>(),
        [ended.id]
    );
    assert_eq!(
        clock.next,
        Some(now + 30_000),
        "the later one's start comes first"
    );
    assert!(sessions.try_recv().is_ok(), "the sessions hear of the end");
    let left: Vec<GrantId> = store
        .grants(w.acme.id)
        .unwrap()
        .iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(left, [running.id, later.id]);
    // At the later one's start the sessions hear of it; at the first one's end it goes.
    let clock = store.grant_clock(now, now + 30_000).unwrap();
    assert!(clock.ended.is_empty() && sessions.try_recv().is_ok());
    let clock = store.grant_clock(now + 30_000, now + 60_000).unwrap();
    assert_eq!(
        clock.ended.iter().map(|g| g.id).collect::<Vec<_>>(),
        [running.id]
    );
    assert_eq!(clock.next, None);
}

/// Operators: named and removed, the last one stays, and the facts access decides on say it.
pub fn operators_are_named_and_the_last_one_stays<S: Directory>(store: &S) {
    let a = new_user(store, "a@example.org");
    let b = new_user(store, "b@example.org");
    assert!(store.operators().unwrap().is_empty());
    store.set_operator(a.id, true).unwrap();
    store.set_operator(b.id, true).unwrap();
    assert_eq!(store.operators().unwrap(), [a.id, b.id]);
    assert!(store.user_facts(b.id).unwrap().operator);
    store.set_operator(b.id, false).unwrap();
    assert!(!store.user_facts(b.id).unwrap().operator);
    assert!(matches!(
        store.set_operator(a.id, false),
        Err(StoreError::LastOperator)
    ));
    assert_eq!(store.operators().unwrap(), [a.id]);
}

pub fn grants_need_grantee_and_mailbox_of_the_organization<S: Directory>(store: &S) {
    let w = world(store);
    let beta_box = new_mailbox(store, w.beta.id, "info@beta.example");
    let outsider = new_user(store, "x@gmail.example");
    let to_outsider = NewGrant {
        org: w.acme.id,
        grantee: Grantee::User(outsider.id),
        target: GrantTarget::AllMailboxes,
        rights: Rights::ALL,
        send: None,
    };
    refused!(
        store,
        store.add_grant(to_outsider),
        StoreError::WrongOrganization(_)
    );
    let on_foreign_box = NewGrant {
        org: w.acme.id,
        grantee: Grantee::User(w.owner.id),
        target: GrantTarget::Mailbox(beta_box.id),
        rights: Rights::ALL,
        send: None,
    };
    refused!(
        store,
        store.add_grant(on_foreign_box),
        StoreError::WrongOrganization(_)
    );
}

pub fn access_facts_follow_teams_and_partnerships<S: Directory>(store: &S) {
    let w = world(store);
    let contact = new_mailbox(store, w.acme.id, "contact@acme.example");
    let lucie = new_user(store, "lucie@gmail.example");
    store
        .set_member(w.acme.id, lucie.id, Role::Collaborator)
        .unwrap();
    let team = store.create_team(w.acme.id, "Support").unwrap();
    store.add_team_member(w.acme.id, team.id, lucie.id).unwrap();
    store
        .add_grant(NewGrant {
            org: w.acme.id,
            grantee: Grantee::Team(team.id),
            target: GrantTarget::Mailbox(contact.id),
            rights: Rights::parse("lrs").unwrap(),
            send: None,
        })
        .unwrap();
    let mref = crate::access::MailboxRef {
        id: contact.id,
        org: w.acme.id,
    };
    let principal = || crate::access::Principal::User(store.user_facts(lucie.id).unwrap());
    assert_eq!(
        crate::access::mailbox_access(&principal(), mref)
            .rights
            .letters(),
        "lrs"
    );
    store
        .remove_team_member(w.acme.id, team.id, lucie.id)
        .unwrap();
    assert!(
        crate::access::mailbox_access(&principal(), mref)
            .rights
            .is_empty()
    );

    let p = store
        .invite_partner(w.acme.id, w.beta.id, PartnerScope::Full)
        .unwrap();
    let boss = store.user_by_login("boss@beta.example").unwrap().unwrap();
    assert!(
        store.user_facts(boss.id).unwrap().partnerships.is_empty(),
        "not yet accepted"
    );
    store
        .update_partnership(p.id, PartnershipStatus::Accepted, None)
        .unwrap();
    assert_eq!(store.user_facts(boss.id).unwrap().partnerships.len(), 1);
}

pub fn invitations_are_single_use<S: Directory>(store: &S) {
    let w = world(store);
    let invitation = invitation(&w, [7; 32]);
    store.create_invitation(invitation.clone()).unwrap();
    assert_eq!(store.take_invitation(&[7; 32]).unwrap(), invitation);
    assert!(matches!(
        store.take_invitation(&[7; 32]),
        Err(StoreError::NotFound(_))
    ));
}

pub fn a_renewed_invitation_replaces_the_old_in_one_step<S: Directory>(store: &S) {
    let w = world(store);
    let old = invitation(&w, [7; 32]);
    store.create_invitation(old.clone()).unwrap();
    let renewed = Invitation {
        token_hash: [8; 32],
        ..old.clone()
    };
    // Not this organization's: refused, and the old one stays valid.
    refused!(
        store,
        store.renew_invitation(w.beta.id, &[7; 32], renewed.clone()),
        StoreError::NotFound(_)
    );
    store
        .renew_invitation(w.acme.id, &[7; 32], renewed.clone())
        .unwrap();
    assert!(
        store.take_invitation(&[7; 32]).is_err(),
        "the old token is void"
    );
    assert_eq!(store.take_invitation(&[8; 32]).unwrap(), renewed);
}

pub fn a_team_is_never_renamed_to_nothing<S: Directory>(store: &S) {
    let w = world(store);
    let team = store.create_team(w.acme.id, "Support").unwrap();
    refused!(
        store,
        store.rename_team(w.acme.id, team.id, "  "),
        StoreError::Invalid { .. }
    );
    let renamed = store
        .rename_team(w.acme.id, team.id, " Help desk ")
        .unwrap();
    assert_eq!(renamed.name, "Help desk");
}

/// An invitation of acme's owner to a collaborator, valid for a minute.
fn invitation(w: &World, token_hash: [u8; 32]) -> Invitation {
    Invitation {
        token_hash,
        org: w.acme.id,
        email: "new@gmail.example".into(),
        role: Role::Collaborator,
        teams: vec![],
        grants: vec![],
        invited_by: w.owner.id,
        expires: now_millis() + 60_000,
    }
}
