//! Teams, grants, partnerships and invitations on PostgreSQL, and what `access` needs to
//! decide for a user (`user_facts`), read in one snapshot.

use super::PgStore;
use super::directory::{require_mailbox, require_org, require_user, role_in};
use super::rows::Prepared;
use super::rows::{from_id, from_json, from_word, hash32, id, json, word};
use crate::access::UserFacts;
use crate::model::*;
use crate::store::GrantClock;
use crate::store::error::{StoreError, StoreResult};
use crate::store::grants::team_name;
use crate::store::hub::AccessChange;
use crate::store::interface::{GrantStore, ServerStore};
use deadpool_postgres::GenericClient;
use std::collections::BTreeSet;
use tokio_postgres::Row;

pub(super) const GRANT_COLUMNS: &str =
    "id, org, grantee_user, grantee_team, mailbox, rights, send, created, valid_from, valid_until";
const PARTNERSHIP_COLUMNS: &str = "p.id, p.client, p.partner, p.full_scope, p.status, p.created, \
     ARRAY(SELECT mailbox FROM partnership_mailboxes WHERE partnership = p.id ORDER BY mailbox)";
const INVITATION_COLUMNS: &str = "token_hash, org, email, role, teams, grants, invited_by, expires";

impl GrantStore for PgStore {
    fn create_team(&self, org: OrgId, name: &str) -> StoreResult<Team> {
        let name = team_name(name)?;
        self.transaction(async |tx| {
            require_org(tx, org, "FOR SHARE").await?;
            let row = tx
                .query_one_cached(
                    "INSERT INTO teams (id, org, name) VALUES (nextval('ids'), $1, $2) \
                     RETURNING id, org, name",
                    &[&id(org.0)?, &name],
                )
                .await?;
            team(&row)
        })
    }

    fn team(&self, team_id: TeamId) -> StoreResult<Option<Team>> {
        let row = self.query_opt(
            "SELECT id, org, name FROM teams WHERE id = $1",
            &[&id(team_id.0)?],
        )?;
        row.as_ref().map(team).transpose()
    }

    fn teams(&self, org: OrgId) -> StoreResult<Vec<Team>> {
        let rows = self.query(
            "SELECT id, org, name FROM teams WHERE org = $1 ORDER BY id",
            &[&id(org.0)?],
        )?;
        rows.iter().map(team).collect()
    }

    fn rename_team(&self, org: OrgId, team_id: TeamId, name: &str) -> StoreResult<Team> {
        let name = team_name(name)?;
        let row = self
            .query_opt(
                "UPDATE teams SET name = $3 WHERE id = $1 AND org = $2 RETURNING id, org, name",
                &[&id(team_id.0)?, &id(org.0)?, &name],
            )?
            .ok_or_else(|| StoreError::not_found(format!("team {team_id}")))?;
        team(&row)
    }

    fn delete_team(&self, org: OrgId, team_id: TeamId) -> StoreResult<()> {
        self.transaction(async |tx| {
            // Its member list and the grants it carried go with it (ON DELETE CASCADE).
            let deleted = tx
                .execute_cached(
                    "DELETE FROM teams WHERE id = $1 AND org = $2",
                    &[&id(team_id.0)?, &id(org.0)?],
                )
                .await?;
            if deleted == 0 {
                return Err(StoreError::not_found(format!("team {team_id}")));
            }
            self.tell_nodes(tx, AccessChange::Organization(org)).await?;
            Ok(())
        })?;
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(())
    }

    fn add_team_member(&self, org: OrgId, team_id: TeamId, user: UserId) -> StoreResult<()> {
        self.transaction(async |tx| {
            require_team(tx, org, team_id).await?;
            // Held until commit: a removal from the organization waits, then removes this too.
            if role_in(tx, org, user, "FOR SHARE").await?.is_none() {
                return Err(StoreError::WrongOrganization(format!("user {user}")));
            }
            tx.execute_cached(
                "INSERT INTO team_members (team, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&id(team_id.0)?, &id(user.0)?],
            )
            .await?;
            self.tell_nodes(tx, AccessChange::User(user)).await?;
            Ok(())
        })?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(())
    }

    fn remove_team_member(&self, org: OrgId, team_id: TeamId, user: UserId) -> StoreResult<()> {
        self.transaction(async |tx| {
            require_team(tx, org, team_id).await?;
            tx.execute_cached(
                "DELETE FROM team_members WHERE team = $1 AND user_id = $2",
                &[&id(team_id.0)?, &id(user.0)?],
            )
            .await?;
            self.tell_nodes(tx, AccessChange::User(user)).await?;
            Ok(())
        })?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(())
    }

    fn team_members(&self, team_id: TeamId) -> StoreResult<Vec<UserId>> {
        let rows = self.query(
            "SELECT user_id FROM team_members WHERE team = $1 ORDER BY user_id",
            &[&id(team_id.0)?],
        )?;
        rows.iter()
            .map(|row| Ok(UserId(from_id(row.try_get(0)?, "user")?)))
            .collect()
    }

    fn teams_of(&self, user: UserId) -> StoreResult<Vec<Team>> {
        let rows = self.query(
            "SELECT t.id, t.org, t.name FROM team_members tm JOIN teams t ON t.id = tm.team \
             WHERE tm.user_id = $1 ORDER BY t.id",
            &[&id(user.0)?],
        )?;
        rows.iter().map(team).collect()
    }

    fn add_grant(&self, new: NewGrant) -> StoreResult<Grant> {
        self.add_grant_within(new, Validity::default())
    }

    fn add_grant_within(&self, new: NewGrant, validity: Validity) -> StoreResult<Grant> {
        let grant = self.transaction(async |tx| {
            check_grant_parts(tx, &new).await?;
            let grant = insert_grant(tx, &new, validity).await?;
            self.tell_nodes(tx, AccessChange::Organization(grant.org))
                .await?;
            Ok(grant)
        })?;
        self.hub()
            .publish_access(AccessChange::Organization(grant.org));
        Ok(grant)
    }

    fn grant(&self, org: OrgId, grant_id: GrantId) -> StoreResult<Option<Grant>> {
        let row = self.query_opt(
            &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE org = $1 AND id = $2"),
            &[&id(org.0)?, &id(grant_id.0)?],
        )?;
        row.as_ref().map(grant).transpose()
    }

    fn grants(&self, org: OrgId) -> StoreResult<Vec<Grant>> {
        let rows = self.query(
            &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE org = $1 ORDER BY id"),
            &[&id(org.0)?],
        )?;
        rows.iter().map(grant).collect()
    }

    /// Every node runs this clock; the grants that ended are removed, and so returned for the
    /// audit log, by exactly one of them.
    fn grant_clock(&self, since: Millis, now: Millis) -> StoreResult<GrantClock> {
        let (clock, touched) = self.transaction(async |tx| {
            let ended = tx
                .query_cached(
                    &format!(
                        "DELETE FROM grants WHERE valid_until <= $1 RETURNING {GRANT_COLUMNS}"
                    ),
                    &[&now],
                )
                .await?
                .iter()
                .map(grant)
                .collect::<StoreResult<Vec<Grant>>>()?;
            let started = tx
                .query_cached(
                    "SELECT DISTINCT org FROM grants WHERE valid_from > $1 AND valid_from <= $2",
                    &[&since, &now],
                )
                .await?;
            let next: Option<i64> = tx
                .query_one_cached(
                    "SELECT least((SELECT min(valid_from) FROM grants WHERE valid_from > $1), \
                     (SELECT min(valid_until) FROM grants WHERE valid_until > $1))",
                    &[&now],
                )
                .await?
                .try_get(0)?;
            let mut touched: BTreeSet<OrgId> = ended.iter().map(|g| g.org).collect();
            for row in &started {
                touched.insert(OrgId(from_id(row.try_get(0)?, "organization")?));
            }
            for org in &touched {
                self.tell_nodes(tx, AccessChange::Organization(*org))
                    .await?;
            }
            Ok((GrantClock { ended, next }, touched))
        })?;
        for org in touched {
            self.hub().publish_access(AccessChange::Organization(org));
        }
        Ok(clock)
    }

    fn update_grant(
        &self,
        org: OrgId,
        grant_id: GrantId,
        rights: Rights,
        send: Option<SendMode>,
    ) -> StoreResult<Grant> {
        let send = send.as_ref().map(word).transpose()?;
        let updated = self.transaction(async |tx| {
            let row = tx
                .query_opt_cached(
                    &format!(
                        "UPDATE grants SET rights = $3, send = $4 WHERE org = $1 AND id = $2 \
                         RETURNING {GRANT_COLUMNS}"
                    ),
                    &[
                        &id(org.0)?,
                        &id(grant_id.0)?,
                        &i32::from(rights.bits()),
                        &send,
                    ],
                )
                .await?
                .ok_or_else(|| StoreError::not_found(format!("grant {grant_id}")))?;
            self.tell_nodes(tx, AccessChange::Organization(org)).await?;
            grant(&row)
        })?;
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(updated)
    }

    fn remove_grant(&self, org: OrgId, grant_id: GrantId) -> StoreResult<()> {
        self.transaction(async |tx| {
            let deleted = tx
                .execute_cached(
                    "DELETE FROM grants WHERE org = $1 AND id = $2",
                    &[&id(org.0)?, &id(grant_id.0)?],
                )
                .await?;
            if deleted == 0 {
                return Err(StoreError::not_found(format!("grant {grant_id}")));
            }
            self.tell_nodes(tx, AccessChange::Organization(org)).await?;
            Ok(())
        })?;
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(())
    }

    fn invite_partner(
        &self,
        client_org: OrgId,
        partner: OrgId,
        scope: PartnerScope,
    ) -> StoreResult<Partnership> {
        if client_org == partner {
            return Err(StoreError::Invalid {
                what: "partnership",
                why: "an organization cannot be its own partner".into(),
            });
        }
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            require_org(&tx, client_org, "FOR SHARE").await?;
            require_org(&tx, partner, "FOR SHARE").await?;
            let row = tx
                .query_one_cached(
                    "INSERT INTO partnerships (id, client, partner, full_scope, status, created) \
                     VALUES (nextval('ids'), $1, $2, true, 'invited', $3) RETURNING id",
                    &[&id(client_org.0)?, &id(partner.0)?, &now_millis()],
                )
                .await?;
            let partnership_id = PartnershipId(from_id(row.try_get(0)?, "partnership")?);
            set_scope(&tx, partnership_id, client_org, &scope).await?;
            let made = require_partnership(&tx, partnership_id, "").await?;
            tx.commit().await?;
            Ok(made)
        })
    }

    fn partnership(&self, partnership_id: PartnershipId) -> StoreResult<Option<Partnership>> {
        let row = self.query_opt(
            &format!("SELECT {PARTNERSHIP_COLUMNS} FROM partnerships p WHERE p.id = $1"),
            &[&id(partnership_id.0)?],
        )?;
        row.as_ref().map(partnership).transpose()
    }

    fn partnerships_of(&self, org: OrgId) -> StoreResult<Vec<Partnership>> {
        let rows = self.query(
            &format!(
                "SELECT {PARTNERSHIP_COLUMNS} FROM partnerships p \
                 WHERE p.client = $1 OR p.partner = $1 ORDER BY p.id"
            ),
            &[&id(org.0)?],
        )?;
        rows.iter().map(partnership).collect()
    }

    fn update_partnership(
        &self,
        partnership_id: PartnershipId,
        status: PartnershipStatus,
        scope: Option<PartnerScope>,
    ) -> StoreResult<Partnership> {
        let updated = self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let before = require_partnership(&tx, partnership_id, "FOR UPDATE OF p").await?;
            if let Some(scope) = &scope {
                set_scope(&tx, partnership_id, before.client, scope).await?;
            }
            tx.execute_cached(
                "UPDATE partnerships SET status = $2 WHERE id = $1",
                &[&id(partnership_id.0)?, &word(&status)?],
            )
            .await?;
            let after = require_partnership(&tx, partnership_id, "").await?;
            self.tell_nodes(&tx, AccessChange::Organization(after.client))
                .await?;
            tx.commit().await?;
            Ok(after)
        })?;
        self.hub()
            .publish_access(AccessChange::Organization(updated.client));
        Ok(updated)
    }

    fn create_invitation(&self, invitation: Invitation) -> StoreResult<()> {
        self.transaction(async |tx| {
            require_org(tx, invitation.org, "FOR SHARE").await?;
            insert_invitation(tx, &invitation).await?;
            Ok(())
        })
    }

    fn invitations(&self, org: OrgId) -> StoreResult<Vec<Invitation>> {
        let rows = self.query(
            &format!(
                "SELECT {INVITATION_COLUMNS} FROM invitations WHERE org = $1 ORDER BY token_hash"
            ),
            &[&id(org.0)?],
        )?;
        rows.iter().map(invitation).collect()
    }

    fn all_invitations(&self) -> StoreResult<Vec<Invitation>> {
        let rows = self.query(
            &format!("SELECT {INVITATION_COLUMNS} FROM invitations ORDER BY token_hash"),
            &[],
        )?;
        rows.iter().map(invitation).collect()
    }

    fn take_invitation(&self, token_hash: &[u8; 32]) -> StoreResult<Invitation> {
        // Taken by one node only; an expired one goes too, and is refused.
        let row = self
            .query_opt(
                &format!(
                    "DELETE FROM invitations WHERE token_hash = $1 RETURNING {INVITATION_COLUMNS}"
                ),
                &[&token_hash.as_slice()],
            )?
            .ok_or_else(|| StoreError::not_found("invitation"))?;
        let taken = invitation(&row)?;
        if taken.expires < now_millis() {
            return Err(StoreError::not_found("invitation"));
        }
        Ok(taken)
    }

    fn delete_invitation(&self, org: OrgId, token_hash: &[u8; 32]) -> StoreResult<()> {
        self.block(async { withdraw_invitation(&self.client().await?, org, token_hash).await })
    }

    fn renew_invitation(&self, org: OrgId, old: &[u8; 32], renewed: Invitation) -> StoreResult<()> {
        self.transaction(async |tx| {
            withdraw_invitation(tx, org, old).await?;
            insert_invitation(tx, &renewed).await?;
            Ok(())
        })
    }

    fn user_facts(&self, user: UserId) -> StoreResult<UserFacts> {
        self.block(async {
            let mut client = self.client().await?;
            // One snapshot: a grant and the membership it needs are seen together or not.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let record = require_user(&tx, user, "").await?;
            let operator: bool = tx
                .query_one_cached("SELECT operator FROM users WHERE id = $1", &[&id(user.0)?])
                .await?
                .try_get(0)?;
            let facts = facts(&tx, record, operator).await?;
            tx.commit().await?;
            Ok(facts)
        })
    }
}

/// What `access` needs for `user`. A suspended organization's memberships, teams, grants
/// and partnerships count for nothing until it is resumed (issue 12).
async fn facts(client: &impl GenericClient, user: User, operator: bool) -> StoreResult<UserFacts> {
    let user_id = id(user.id.0)?;
    let memberships = client
        .query_cached(
            "SELECT m.org, m.user_id, m.role FROM memberships m \
             JOIN organizations o ON o.id = m.org \
             WHERE m.user_id = $1 AND o.suspended_since IS NULL ORDER BY m.org",
            &[&user_id],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(Membership {
                org: OrgId(from_id(row.try_get(0)?, "organization")?),
                user: user.id,
                role: from_word(row.try_get(2)?, "role")?,
            })
        })
        .collect::<StoreResult<Vec<Membership>>>()?;
    let teams = client
        .query_cached(
            "SELECT t.id, t.org, t.name FROM team_members tm JOIN teams t ON t.id = tm.team \
             JOIN organizations o ON o.id = t.org \
             WHERE tm.user_id = $1 AND o.suspended_since IS NULL ORDER BY t.id",
            &[&user_id],
        )
        .await?
        .iter()
        .map(team)
        .collect::<StoreResult<Vec<Team>>>()?;
    let orgs: Vec<i64> = memberships
        .iter()
        .map(|m| id(m.org.0))
        .collect::<StoreResult<_>>()?;
    let team_ids: Vec<i64> = teams
        .iter()
        .map(|t| id(t.id.0))
        .collect::<StoreResult<_>>()?;
    // A time-limited grant counts within its window only (`grant_clock` ends it).
    let grants = client
        .query_cached(
            &format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE org = ANY($1) \
                 AND (grantee_user = $2 OR grantee_team = ANY($3)) \
                 AND (valid_from IS NULL OR valid_from <= $4) \
                 AND (valid_until IS NULL OR $4 < valid_until) ORDER BY org, id"
            ),
            &[&orgs, &user_id, &team_ids, &now_millis()],
        )
        .await?
        .iter()
        .map(grant)
        .collect::<StoreResult<Vec<Grant>>>()?;
    let partnerships = client
        .query_cached(
            &format!(
                "SELECT {PARTNERSHIP_COLUMNS} FROM partnerships p \
                 JOIN organizations c ON c.id = p.client \
                 WHERE p.partner = ANY($1) AND p.status = 'accepted' \
                 AND c.suspended_since IS NULL ORDER BY p.partner, p.id"
            ),
            &[&orgs],
        )
        .await?
        .iter()
        .map(partnership)
        .collect::<StoreResult<Vec<Partnership>>>()?;
    Ok(UserFacts {
        operator,
        user: user.id,
        disabled: user.disabled,
        memberships,
        teams: teams.iter().map(|t| (t.id, t.org)).collect(),
        grants,
        partnerships,
    })
}

/// Writes the grant `new`, which the caller has checked.
pub(super) async fn insert_grant(
    client: &impl GenericClient,
    new: &NewGrant,
    validity: Validity,
) -> StoreResult<Grant> {
    let (user, team) = match new.grantee {
        Grantee::User(u) => (Some(id(u.0)?), None),
        Grantee::Team(t) => (None, Some(id(t.0)?)),
    };
    let mailbox = match new.target {
        GrantTarget::Mailbox(m) => Some(id(m.0)?),
        GrantTarget::AllMailboxes => None,
    };
    let row = client
        .query_one_cached(
            &format!(
                "INSERT INTO grants ({GRANT_COLUMNS}) \
                 VALUES (nextval('ids'), $1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 RETURNING {GRANT_COLUMNS}"
            ),
            &[
                &id(new.org.0)?,
                &user,
                &team,
                &mailbox,
                &i32::from(new.rights.bits()),
                &new.send.as_ref().map(word).transpose()?,
                &now_millis(),
                &validity.from,
                &validity.until,
            ],
        )
        .await?;
    grant(&row)
}

/// The grantee belongs to the grant's organization, and so does its mailbox; both rows are
/// held until the transaction ends.
async fn check_grant_parts(client: &impl GenericClient, new: &NewGrant) -> StoreResult<()> {
    require_org(client, new.org, "FOR SHARE").await?;
    match new.grantee {
        Grantee::User(user) => {
            if role_in(client, new.org, user, "FOR SHARE").await?.is_none() {
                return Err(StoreError::WrongOrganization(format!("user {user}")));
            }
        }
        Grantee::Team(team) => {
            require_team(client, new.org, team).await?;
        }
    }
    if let GrantTarget::Mailbox(mailbox) = new.target
        && require_mailbox(client, mailbox, "FOR SHARE").await?.org != new.org
    {
        return Err(StoreError::WrongOrganization(format!("mailbox {mailbox}")));
    }
    Ok(())
}

async fn require_team(
    client: &impl GenericClient,
    org: OrgId,
    team_id: TeamId,
) -> StoreResult<Team> {
    let row = client
        .query_opt_cached(
            "SELECT id, org, name FROM teams WHERE id = $1 AND org = $2 FOR SHARE",
            &[&id(team_id.0)?, &id(org.0)?],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("team {team_id}")))?;
    team(&row)
}

async fn require_partnership(
    client: &impl GenericClient,
    partnership_id: PartnershipId,
    lock: &str,
) -> StoreResult<Partnership> {
    let row = client
        .query_opt_cached(
            &format!("SELECT {PARTNERSHIP_COLUMNS} FROM partnerships p WHERE p.id = $1 {lock}"),
            &[&id(partnership_id.0)?],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("partnership {partnership_id}")))?;
    partnership(&row)
}

/// Gives a partnership `scope`, whose mailboxes must be the client's.
async fn set_scope(
    client: &impl GenericClient,
    partnership_id: PartnershipId,
    client_org: OrgId,
    scope: &PartnerScope,
) -> StoreResult<()> {
    let pid = id(partnership_id.0)?;
    client
        .execute_cached(
            "DELETE FROM partnership_mailboxes WHERE partnership = $1",
            &[&pid],
        )
        .await?;
    let mailboxes = match scope {
        PartnerScope::Full => None,
        PartnerScope::Limited(set) => Some(set),
    };
    client
        .execute_cached(
            "UPDATE partnerships SET full_scope = $2 WHERE id = $1",
            &[&pid, &mailboxes.is_none()],
        )
        .await?;
    for mailbox in mailboxes.into_iter().flatten() {
        if require_mailbox(client, *mailbox, "FOR SHARE").await?.org != client_org {
            return Err(StoreError::WrongOrganization(format!("mailbox {mailbox}")));
        }
        client
            .execute_cached(
                "INSERT INTO partnership_mailboxes (partnership, mailbox) VALUES ($1, $2)",
                &[&pid, &id(mailbox.0)?],
            )
            .await?;
    }
    Ok(())
}

/// Writes `invitation` (over one with the same token, if any).
pub(super) async fn insert_invitation(
    client: &impl GenericClient,
    invitation: &Invitation,
) -> StoreResult<()> {
    let teams: Vec<i64> = invitation
        .teams
        .iter()
        .map(|t| id(t.0))
        .collect::<StoreResult<_>>()?;
    client
        .execute_cached(
            &format!(
                "INSERT INTO invitations ({INVITATION_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (token_hash) DO UPDATE SET org = $2, email = $3, role = $4, \
                 teams = $5, grants = $6, invited_by = $7, expires = $8"
            ),
            &[
                &invitation.token_hash.as_slice(),
                &id(invitation.org.0)?,
                &invitation.email,
                &word(&invitation.role)?,
                &teams,
                &json(&invitation.grants)?,
                &id(invitation.invited_by.0)?,
                &invitation.expires,
            ],
        )
        .await?;
    Ok(())
}

async fn withdraw_invitation(
    client: &impl GenericClient,
    org: OrgId,
    token_hash: &[u8; 32],
) -> StoreResult<()> {
    let deleted = client
        .execute_cached(
            "DELETE FROM invitations WHERE token_hash = $1 AND org = $2",
            &[&token_hash.as_slice(), &id(org.0)?],
        )
        .await?;
    match deleted {
        0 => Err(StoreError::not_found("invitation")),
        _ => Ok(()),
    }
}

fn team(row: &Row) -> StoreResult<Team> {
    Ok(Team {
        id: TeamId(from_id(row.try_get(0)?, "team")?),
        org: OrgId(from_id(row.try_get(1)?, "organization")?),
        name: row.try_get(2)?,
    })
}

fn grant(row: &Row) -> StoreResult<Grant> {
    let user: Option<i64> = row.try_get(2)?;
    let team: Option<i64> = row.try_get(3)?;
    let grantee = match (user, team) {
        (Some(u), None) => Grantee::User(UserId(from_id(u, "user")?)),
        (None, Some(t)) => Grantee::Team(TeamId(from_id(t, "team")?)),
        _ => return Err(StoreError::Corrupt("a grant's grantee".into())),
    };
    let mailbox: Option<i64> = row.try_get(4)?;
    let target = match mailbox {
        Some(m) => GrantTarget::Mailbox(MailboxId(from_id(m, "mailbox")?)),
        None => GrantTarget::AllMailboxes,
    };
    let bits: i32 = row.try_get(5)?;
    let rights = u16::try_from(bits)
        .ok()
        .and_then(Rights::from_bits)
        .ok_or_else(|| StoreError::Corrupt(format!("rights {bits}")))?;
    let send: Option<&str> = row.try_get(6)?;
    Ok(Grant {
        id: GrantId(from_id(row.try_get(0)?, "grant")?),
        org: OrgId(from_id(row.try_get(1)?, "organization")?),
        grantee,
        target,
        rights,
        send: send.map(|s| from_word(s, "send mode")).transpose()?,
        created: row.try_get(7)?,
        validity: Validity {
            from: row.try_get(8)?,
            until: row.try_get(9)?,
        },
    })
}

fn partnership(row: &Row) -> StoreResult<Partnership> {
    let scope = match row.try_get::<_, bool>(3)? {
        true => PartnerScope::Full,
        false => {
            let ids: Vec<i64> = row.try_get(6)?;
            PartnerScope::Limited(
                ids.into_iter()
                    .map(|m| Ok(MailboxId(from_id(m, "mailbox")?)))
                    .collect::<StoreResult<_>>()?,
            )
        }
    };
    Ok(Partnership {
        id: PartnershipId(from_id(row.try_get(0)?, "partnership")?),
        client: OrgId(from_id(row.try_get(1)?, "organization")?),
        partner: OrgId(from_id(row.try_get(2)?, "organization")?),
        scope,
        status: from_word(row.try_get(4)?, "partnership status")?,
        created: row.try_get(5)?,
    })
}

fn invitation(row: &Row) -> StoreResult<Invitation> {
    let teams: Vec<i64> = row.try_get(4)?;
    Ok(Invitation {
        token_hash: hash32(row.try_get(0)?, "invitation")?,
        org: OrgId(from_id(row.try_get(1)?, "organization")?),
        email: row.try_get(2)?,
        role: from_word(row.try_get(3)?, "role")?,
        teams: teams
            .into_iter()
            .map(|t| Ok(TeamId(from_id(t, "team")?)))
            .collect::<StoreResult<_>>()?,
        grants: from_json(row.try_get(5)?, "invitation's grants")?,
        invited_by: UserId(from_id(row.try_get(6)?, "user")?),
        expires: row.try_get(7)?,
    })
}
