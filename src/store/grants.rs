//! Teams, grants, partnerships and invitations: the records that carry access.

use super::codec::{self, id_at, key};
use super::error::{StoreError, StoreResult};
use super::hub::AccessChange;
use super::interface::*;
use super::{Changes, SledStore};
use crate::access::UserFacts;
use crate::model::*;

impl GrantStore for SledStore {
    fn create_team(&self, org: OrgId, name: &str) -> StoreResult<Team> {
        let name = team_name(name)?;
        let _guard = self.lock();
        self.require_org(org)?;
        let team = Team {
            id: TeamId(self.next_id()?),
            org,
            name: name.to_string(),
        };
        let mut changes = Changes::default();
        changes.put_model(key(codec::TEAM, &[team.id.0]), &team)?;
        self.commit(changes)?;
        Ok(team)
    }

    fn team(&self, id: TeamId) -> StoreResult<Option<Team>> {
        self.get_model(&key(codec::TEAM, &[id.0]), "team")
    }

    fn teams(&self, org: OrgId) -> StoreResult<Vec<Team>> {
        let all: Vec<Team> = self.scan_model(&[codec::TEAM], "team")?;
        Ok(all.into_iter().filter(|t| t.org == org).collect())
    }

    fn rename_team(&self, org: OrgId, id: TeamId, name: &str) -> StoreResult<Team> {
        let name = team_name(name)?;
        let _guard = self.lock();
        let mut team = self.require_team(org, id)?;
        team.name = name.to_string();
        let mut changes = Changes::default();
        changes.put_model(key(codec::TEAM, &[id.0]), &team)?;
        self.commit(changes)?;
        Ok(team)
    }

    fn delete_team(&self, org: OrgId, id: TeamId) -> StoreResult<()> {
        let _guard = self.lock();
        self.require_team(org, id)?;
        let mut changes = Changes::default();
        changes.del_model(key(codec::TEAM, &[id.0]));
        for user in self.team_members(id)? {
            changes.del_model(key(codec::TEAM_MEMBER, &[id.0, user.0]));
            changes.del_model(key(codec::USER_TEAM, &[user.0, id.0]));
        }
        for grant in self.grants(org)? {
            if grant.grantee == Grantee::Team(id) {
                changes.del_model(key(codec::GRANT, &[org.0, grant.id.0]));
            }
        }
        self.commit(changes)?;
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(())
    }

    fn add_team_member(&self, org: OrgId, team: TeamId, user: UserId) -> StoreResult<()> {
        let _guard = self.lock();
        self.require_team(org, team)?;
        if self.role_in(org, user)?.is_none() {
            return Err(StoreError::WrongOrganization(format!("user {user}")));
        }
        let mut changes = Changes::default();
        changes.put_model(key(codec::TEAM_MEMBER, &[team.0, user.0]), &())?;
        changes.put_model(key(codec::USER_TEAM, &[user.0, team.0]), &())?;
        self.commit(changes)?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(())
    }

    fn remove_team_member(&self, org: OrgId, team: TeamId, user: UserId) -> StoreResult<()> {
        let _guard = self.lock();
        self.require_team(org, team)?;
        let mut changes = Changes::default();
        changes.del_model(key(codec::TEAM_MEMBER, &[team.0, user.0]));
        changes.del_model(key(codec::USER_TEAM, &[user.0, team.0]));
        self.commit(changes)?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(())
    }

    fn team_members(&self, team: TeamId) -> StoreResult<Vec<UserId>> {
        self.inner
            .model
            .scan_prefix(key(codec::TEAM_MEMBER, &[team.0]))
            .map(|item| Ok(UserId(id_at(&item?.0, 1)?)))
            .collect()
    }

    fn teams_of(&self, user: UserId) -> StoreResult<Vec<Team>> {
        let mut out = Vec::new();
        for item in self
            .inner
            .model
            .scan_prefix(key(codec::USER_TEAM, &[user.0]))
        {
            let id = TeamId(id_at(&item?.0, 1)?);
            if let Some(team) = self.team(id)? {
                out.push(team);
            }
        }
        Ok(out)
    }

    fn add_grant(&self, new: NewGrant) -> StoreResult<Grant> {
        self.add_grant_within(new, Validity::default())
    }

    fn add_grant_within(&self, new: NewGrant, validity: Validity) -> StoreResult<Grant> {
        let _guard = self.lock();
        self.check_grant_parts(&new)?;
        let mut changes = Changes::default();
        let grant = self.grant_changes(&mut changes, new, validity)?;
        self.commit(changes)?;
        self.hub()
            .publish_access(AccessChange::Organization(grant.org));
        Ok(grant)
    }

    fn grant(&self, org: OrgId, id: GrantId) -> StoreResult<Option<Grant>> {
        let found = self.inner.model.get(key(codec::GRANT, &[org.0, id.0]))?;
        found.map(|v| decode_grant(&v)).transpose()
    }

    fn grants(&self, org: OrgId) -> StoreResult<Vec<Grant>> {
        self.grants_under(&key(codec::GRANT, &[org.0]))
    }

    fn grant_clock(&self, since: Millis, now: Millis) -> StoreResult<GrantClock> {
        let mut clock = GrantClock::default();
        let mut changes = Changes::default();
        let mut touched = std::collections::BTreeSet::new();
        for grant in self.grants_under(&[codec::GRANT])? {
            let Validity { from, until } = grant.validity;
            if from.is_some_and(|f| since < f && f <= now) {
                touched.insert(grant.org);
            }
            if until.is_some_and(|u| u <= now) {
                changes.del_model(key(codec::GRANT, &[grant.org.0, grant.id.0]));
                touched.insert(grant.org);
                clock.ended.push(grant);
                continue;
            }
            let upcoming = [from, until].into_iter().flatten().filter(|t| *t > now);
            clock.next = clock.next.into_iter().chain(upcoming).min();
        }
        if !clock.ended.is_empty() {
            // Removing one that went meanwhile removes nothing; one changed meanwhile ended too.
            let _guard = self.lock();
            self.commit(changes)?;
        }
        for org in touched {
            self.hub().publish_access(AccessChange::Organization(org));
        }
        Ok(clock)
    }

    fn update_grant(
        &self,
        org: OrgId,
        id: GrantId,
        rights: Rights,
        send: Option<SendMode>,
    ) -> StoreResult<Grant> {
        let _guard = self.lock();
        let mut grant = self
            .grant(org, id)?
            .ok_or_else(|| StoreError::not_found(format!("grant {id}")))?;
        grant.rights = rights;
        grant.send = send;
        let mut changes = Changes::default();
        changes.put_model(key(codec::GRANT, &[org.0, id.0]), &grant)?;
        self.commit(changes)?;
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(grant)
    }

    fn remove_grant(&self, org: OrgId, id: GrantId) -> StoreResult<()> {
        let _guard = self.lock();
        self.grant(org, id)?
            .ok_or_else(|| StoreError::not_found(format!("grant {id}")))?;
        let mut changes = Changes::default();
        changes.del_model(key(codec::GRANT, &[org.0, id.0]));
        self.commit(changes)?;
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(())
    }

    fn invite_partner(
        &self,
        client: OrgId,
        partner: OrgId,
        scope: PartnerScope,
    ) -> StoreResult<Partnership> {
        if client == partner {
            return Err(StoreError::Invalid {
                what: "partnership",
                why: "an organization cannot be its own partner".into(),
            });
        }
        let _guard = self.lock();
        self.require_org(client)?;
        self.require_org(partner)?;
        self.check_scope(client, &scope)?;
        let partnership = Partnership {
            id: PartnershipId(self.next_id()?),
            client,
            partner,
            scope,
            status: PartnershipStatus::Invited,
            created: now_millis(),
        };
        let mut changes = Changes::default();
        changes.put_model(key(codec::PARTNERSHIP, &[partnership.id.0]), &partnership)?;
        self.commit(changes)?;
        Ok(partnership)
    }

    fn partnership(&self, id: PartnershipId) -> StoreResult<Option<Partnership>> {
        self.get_model(&key(codec::PARTNERSHIP, &[id.0]), "partnership")
    }

    fn partnerships_of(&self, org: OrgId) -> StoreResult<Vec<Partnership>> {
        let all: Vec<Partnership> = self.scan_model(&[codec::PARTNERSHIP], "partnership")?;
        Ok(all
            .into_iter()
            .filter(|p| p.client == org || p.partner == org)
            .collect())
    }

    fn update_partnership(
        &self,
        id: PartnershipId,
        status: PartnershipStatus,
        scope: Option<PartnerScope>,
    ) -> StoreResult<Partnership> {
        let _guard = self.lock();
        let mut p = self
            .partnership(id)?
            .ok_or_else(|| StoreError::not_found(format!("partnership {id}")))?;
        if let Some(scope) = scope {
            self.check_scope(p.client, &scope)?;
            p.scope = scope;
        }
        p.status = status;
        let mut changes = Changes::default();
        changes.put_model(key(codec::PARTNERSHIP, &[id.0]), &p)?;
        self.commit(changes)?;
        self.hub()
            .publish_access(AccessChange::Organization(p.client));
        Ok(p)
    }

    fn create_invitation(&self, invitation: Invitation) -> StoreResult<()> {
        let _guard = self.lock();
        self.require_org(invitation.org)?;
        let mut changes = Changes::default();
        changes.put_model(invitation_key(&invitation.token_hash), &invitation)?;
        self.commit(changes)
    }

    fn invitations(&self, org: OrgId) -> StoreResult<Vec<Invitation>> {
        let all: Vec<Invitation> = self.scan_model(&[codec::INVITATION], "invitation")?;
        Ok(all.into_iter().filter(|i| i.org == org).collect())
    }

    fn all_invitations(&self) -> StoreResult<Vec<Invitation>> {
        self.scan_model(&[codec::INVITATION], "invitation")
    }

    fn take_invitation(&self, token_hash: &[u8; 32]) -> StoreResult<Invitation> {
        let _guard = self.lock();
        let k = invitation_key(token_hash);
        let invitation: Invitation = self
            .get_model(&k, "invitation")?
            .ok_or_else(|| StoreError::not_found("invitation"))?;
        let mut changes = Changes::default();
        changes.del_model(k);
        self.commit(changes)?;
        if invitation.expires < now_millis() {
            return Err(StoreError::not_found("invitation"));
        }
        Ok(invitation)
    }

    fn delete_invitation(&self, org: OrgId, token_hash: &[u8; 32]) -> StoreResult<()> {
        let _guard = self.lock();
        let mut changes = Changes::default();
        self.withdraw_invitation(&mut changes, org, token_hash)?;
        self.commit(changes)
    }

    fn renew_invitation(&self, org: OrgId, old: &[u8; 32], renewed: Invitation) -> StoreResult<()> {
        let _guard = self.lock();
        let mut changes = Changes::default();
        self.withdraw_invitation(&mut changes, org, old)?;
        changes.put_model(invitation_key(&renewed.token_hash), &renewed)?;
        self.commit(changes)
    }

    fn user_facts(&self, user: UserId) -> StoreResult<UserFacts> {
        let record = self.require_user(user)?;
        // A suspended organization's memberships, teams, grants and partnerships count for
        // nothing until it is resumed (issue 12).
        let suspended: Vec<OrgId> = self.suspensions()?.into_iter().map(|(o, _)| o).collect();
        let live = |org: &OrgId| !suspended.contains(org);
        let mut memberships = self.memberships_of(user)?;
        memberships.retain(|m| live(&m.org));
        let mut teams = self.teams_of(user)?;
        teams.retain(|t| live(&t.org));
        let mut grants = Vec::new();
        let mut partnerships = Vec::new();
        let now = now_millis();
        for m in &memberships {
            // A time-limited grant counts within its window only (`grant_clock` ends it).
            grants.extend(self.grants(m.org)?.into_iter().filter(|g| {
                g.active_at(now)
                    && match g.grantee {
                        Grantee::User(u) => u == user,
                        Grantee::Team(t) => teams.iter().any(|team| team.id == t),
                    }
            }));
            partnerships.extend(self.partnerships_of(m.org)?.into_iter().filter(|p| {
                p.partner == m.org && p.status == PartnershipStatus::Accepted && live(&p.client)
            }));
        }
        Ok(UserFacts {
            operator: self.is_operator(user)?,
            user,
            disabled: record.disabled,
            memberships,
            teams: teams.iter().map(|t| (t.id, t.org)).collect(),
            grants,
            partnerships,
        })
    }
}

impl SledStore {
    fn require_team(&self, org: OrgId, id: TeamId) -> StoreResult<Team> {
        match self.team(id)? {
            Some(t) if t.org == org => Ok(t),
            _ => Err(StoreError::not_found(format!("team {id}"))),
        }
    }

    /// The grant `new` with its id, written into `changes`.
    pub(super) fn grant_changes(
        &self,
        changes: &mut Changes,
        new: NewGrant,
        validity: Validity,
    ) -> StoreResult<Grant> {
        let grant = Grant {
            id: GrantId(self.next_id()?),
            org: new.org,
            grantee: new.grantee,
            target: new.target,
            rights: new.rights,
            send: new.send,
            created: now_millis(),
            validity,
        };
        changes.put_model(key(codec::GRANT, &[grant.org.0, grant.id.0]), &grant)?;
        Ok(grant)
    }

    fn check_grant_parts(&self, new: &NewGrant) -> StoreResult<()> {
        self.require_org(new.org)?;
        match new.grantee {
            Grantee::User(user) => {
                if self.role_in(new.org, user)?.is_none() {
                    return Err(StoreError::WrongOrganization(format!("user {user}")));
                }
            }
            Grantee::Team(team) => {
                self.require_team(new.org, team)?;
            }
        }
        if let GrantTarget::Mailbox(id) = new.target
            && self.require_mailbox(id)?.org != new.org
        {
            return Err(StoreError::WrongOrganization(format!("mailbox {id}")));
        }
        Ok(())
    }

    fn grants_under(&self, prefix: &[u8]) -> StoreResult<Vec<Grant>> {
        let scan = self.inner.model.scan_prefix(prefix);
        scan.map(|item| decode_grant(&item?.1)).collect()
    }

    fn check_scope(&self, client: OrgId, scope: &PartnerScope) -> StoreResult<()> {
        if let PartnerScope::Limited(mailboxes) = scope {
            for id in mailboxes {
                if self.require_mailbox(*id)?.org != client {
                    return Err(StoreError::WrongOrganization(format!("mailbox {id}")));
                }
            }
        }
        Ok(())
    }

    /// Removes a deleted mailbox from every limited partnership scope.
    pub(super) fn drop_from_partner_scopes(
        &self,
        changes: &mut Changes,
        mailbox: MailboxId,
    ) -> StoreResult<()> {
        let all: Vec<Partnership> = self.scan_model(&[codec::PARTNERSHIP], "partnership")?;
        for mut p in all {
            if let PartnerScope::Limited(set) = &mut p.scope
                && set.remove(&mailbox)
            {
                changes.put_model(key(codec::PARTNERSHIP, &[p.id.0]), &p)?;
            }
        }
        Ok(())
    }

    fn withdraw_invitation(
        &self,
        changes: &mut Changes,
        org: OrgId,
        token_hash: &[u8; 32],
    ) -> StoreResult<()> {
        let k = invitation_key(token_hash);
        match self.get_model::<Invitation>(&k, "invitation")? {
            Some(i) if i.org == org => {}
            _ => return Err(StoreError::not_found("invitation")),
        }
        changes.del_model(k);
        Ok(())
    }
}

/// What `Store::grant_clock` did and found.
#[derive(Debug, Default)]
pub struct GrantClock {
    /// The grants that ended, now removed.
    pub ended: Vec<Grant>,
    /// When the next grant starts or ends, if one will.
    pub next: Option<Millis>,
}

/// A grant as written before `validity` existed.
#[derive(serde::Deserialize)]
struct GrantV1 {
    id: GrantId,
    org: OrgId,
    grantee: Grantee,
    target: GrantTarget,
    rights: Rights,
    send: Option<SendMode>,
    created: Millis,
}

/// A grant of this layout, or of the one before `validity` (which counted for good).
pub(super) fn decode_grant(bytes: &[u8]) -> StoreResult<Grant> {
    codec::decode_either(bytes, "grant", |old: GrantV1| Grant {
        id: old.id,
        org: old.org,
        grantee: old.grantee,
        target: old.target,
        rights: old.rights,
        send: old.send,
        created: old.created,
        validity: Validity::default(),
    })
}

fn invitation_key(token_hash: &[u8; 32]) -> Vec<u8> {
    let mut k = vec![codec::INVITATION];
    k.extend_from_slice(token_hash);
    k
}

/// A team's name: what is left after trimming, never empty (creating and renaming alike).
pub(super) fn team_name(name: &str) -> StoreResult<&str> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StoreError::Invalid {
            what: "team name",
            why: "must not be empty".into(),
        });
    }
    Ok(name)
}
