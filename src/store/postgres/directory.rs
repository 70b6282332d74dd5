//! Organizations, domains, addresses, users and memberships on PostgreSQL. The checks are
//! sled's (`store::directory`); here each runs in the transaction that makes the change,
//! holding the rows it depends on, so that two nodes cannot both pass a check the other's
//! change breaks:
//! - an organization's row, locked by every change of its members (the last owner stays);
//! - a domain's row, shared by what makes an address there and taken by its removal;
//! - an advisory lock on an address, taken by whatever makes it a mailbox, an alias or a
//!   login (a login is never an alias's address, nor another's mailbox's).

use super::PgStore;
use super::rows::Prepared;
use super::rows::{self, from_id, from_word, id, word};
use crate::model::*;
use crate::store::directory::{Admission, non_empty, valid_address, valid_domain};
use crate::store::error::{StoreError, StoreResult};
use crate::store::folders::STANDARD_FOLDERS;
use crate::store::hub::AccessChange;
use crate::store::interface::{DirectoryStore, ServerStore};
use crate::store::{AddressEntry, NewMailbox, NewUser};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

const MAILBOX_COLUMNS: &str =
    "id, org, address, display_name, password, quota_bytes, seen, created";

impl DirectoryStore for PgStore {
    fn create_organization(&self, name: &str, owner: UserId) -> StoreResult<Organization> {
        let name = non_empty("organization name", name)?;
        self.transaction(async |tx| {
            require_user(tx, owner, "FOR SHARE").await?;
            let row = tx
                .query_one_cached(
                    "INSERT INTO organizations (id, name, created) VALUES (nextval('ids'), $1, $2) \
                     RETURNING id, name, created",
                    &[&name, &now_millis()],
                )
                .await?;
            let org = organization(&row)?;
            set_role(tx, org.id, owner, Role::Owner).await?;
            Ok(org)
        })
    }

    fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let row = self.query_opt(
            "SELECT id, name, created FROM organizations WHERE id = $1",
            &[&rows::id(id.0)?],
        )?;
        row.as_ref().map(organization).transpose()
    }

    fn organizations(&self) -> StoreResult<Vec<Organization>> {
        let rows = self.query(
            "SELECT id, name, created FROM organizations ORDER BY id",
            &[],
        )?;
        rows.iter().map(organization).collect()
    }

    fn set_operator(&self, user: UserId, operator: bool) -> StoreResult<()> {
        self.transaction(async |tx| {
            // One change of the operators at a time, so that two nodes cannot each remove
            // one of the last two.
            tx.execute_cached("SELECT pg_advisory_xact_lock(hashtext('operators'))", &[])
                .await?;
            require_user(tx, user, "FOR UPDATE").await?;
            if !operator && operators(tx).await? == [user] {
                return Err(StoreError::LastOperator);
            }
            tx.execute_cached(
                "UPDATE users SET operator = $2 WHERE id = $1",
                &[&id(user.0)?, &operator],
            )
            .await?;
            self.tell_nodes(tx, AccessChange::User(user)).await?;
            Ok(())
        })?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(())
    }

    fn operators(&self) -> StoreResult<Vec<UserId>> {
        self.block(async { operators(&self.client().await?).await })
    }

    fn is_operator(&self, user: UserId) -> StoreResult<bool> {
        let row = self.query_opt("SELECT operator FROM users WHERE id = $1", &[&id(user.0)?])?;
        Ok(row.map(|row| row.try_get(0)).transpose()?.unwrap_or(false))
    }

    fn rename_organization(&self, org: OrgId, name: &str) -> StoreResult<Organization> {
        let name = non_empty("organization name", name)?;
        let row = self
            .query_opt(
                "UPDATE organizations SET name = $2 WHERE id = $1 RETURNING id, name, created",
                &[&id(org.0)?, &name],
            )?
            .ok_or_else(|| StoreError::not_found(format!("organization {org}")))?;
        organization(&row)
    }

    fn add_domain(&self, org: OrgId, name: &str) -> StoreResult<Domain> {
        self.add_domain_claimed(org, name, None)
    }

    fn add_domain_claimed(
        &self,
        org: OrgId,
        name: &str,
        token: Option<String>,
    ) -> StoreResult<Domain> {
        let name = valid_domain(name)?;
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            require_org(&tx, org, "FOR SHARE").await?;
            let added = tx
                .execute_cached(
                    "INSERT INTO domains (name, org) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&name, &id(org.0)?],
                )
                .await?;
            if added == 0 {
                return Err(StoreError::DomainTaken(name.clone()));
            }
            if let Some(token) = &token {
                tx.execute_cached(
                    "INSERT INTO domain_claims (domain, token) VALUES ($1, $2)",
                    &[&name, token],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(Domain {
                name: name.clone(),
                org,
            })
        })
    }

    fn domain(&self, name: &str) -> StoreResult<Option<Domain>> {
        let row = self.query_opt(
            "SELECT name, org FROM domains WHERE name = $1",
            &[&normalize_address(name)],
        )?;
        row.as_ref().map(domain).transpose()
    }

    fn all_domains(&self) -> StoreResult<Vec<Domain>> {
        let rows = self.query(
            "SELECT name, org FROM domains ORDER BY name COLLATE \"C\"",
            &[],
        )?;
        rows.iter().map(domain).collect()
    }

    fn domains(&self, org: OrgId) -> StoreResult<Vec<Domain>> {
        let rows = self.query(
            "SELECT name, org FROM domains WHERE org = $1 ORDER BY name COLLATE \"C\"",
            &[&id(org.0)?],
        )?;
        rows.iter().map(domain).collect()
    }

    fn remove_domain(&self, org: OrgId, name: &str) -> StoreResult<()> {
        let name = normalize_address(name);
        self.transaction(async |tx| {
            let owner = tx
                .query_opt_cached(
                    "SELECT org FROM domains WHERE name = $1 FOR UPDATE",
                    &[&name],
                )
                .await?
                .map(|row| row.try_get::<_, i64>(0))
                .transpose()?;
            if owner != Some(id(org.0)?) {
                return Err(StoreError::not_found(format!("domain {name}")));
            }
            let in_use: bool = tx
                .query_one_cached(
                    "SELECT EXISTS (SELECT 1 FROM addresses \
                     WHERE right(address, length($1) + 1) = '@' || $1)",
                    &[&name],
                )
                .await?
                .try_get(0)?;
            if in_use {
                return Err(StoreError::DomainInUse(name.clone()));
            }
            // Its claim and DKIM keys go with it (ON DELETE CASCADE).
            tx.execute_cached("DELETE FROM domains WHERE name = $1", &[&name])
                .await?;
            Ok(())
        })
    }

    fn resolve_address(&self, address: &str) -> StoreResult<Option<AddressEntry>> {
        self.block(async { resolve(&self.client().await?, &normalize_address(address)).await })
    }

    fn create_mailbox(&self, new: NewMailbox) -> StoreResult<Mailbox> {
        let address = valid_address(&new.address)?;
        let org = new.org;
        let (mailbox, owned) = self.transaction(async |tx| {
            lock_address(tx, &address).await?;
            check_new_address(tx, org, &address).await?;
            // A user's login may be a mailbox's address only when she is a member of its
            // organization: it is her own mailbox, granted to her at once (see `login`).
            let owner = match user_by_login(tx, &address).await? {
                Some(user) if role_in(tx, org, user.id, "FOR SHARE").await?.is_some() => {
                    Some(user.id)
                }
                Some(_) => return Err(StoreError::AddressIsLogin(address.clone())),
                None => None,
            };
            let row = tx
                .query_one_cached(
                    &format!(
                        "INSERT INTO mailboxes ({MAILBOX_COLUMNS}) \
                         VALUES (nextval('ids'), $1, $2, $3, $4, $5, $6, $7) \
                         RETURNING {MAILBOX_COLUMNS}"
                    ),
                    &[
                        &id(org.0)?,
                        &address,
                        &new.display_name,
                        &new.password.0,
                        &quota(new.quota_bytes)?,
                        &word(&new.seen)?,
                        &now_millis(),
                    ],
                )
                .await?;
            let created = mailbox(&row)?;
            tx.execute_cached(
                "INSERT INTO addresses (address, mailbox, alias) VALUES ($1, $2, false)",
                &[&address, &id(created.id.0)?],
            )
            .await?;
            for (name, special_use) in STANDARD_FOLDERS {
                super::folders::make_folder(tx, created.id, name, special_use).await?;
            }
            if let Some(user) = owner {
                let own = NewGrant {
                    org,
                    grantee: Grantee::User(user),
                    target: GrantTarget::Mailbox(created.id),
                    rights: Rights::ALL.without(Rights::of(&[Right::Administer])),
                    send: Some(SendMode::As),
                };
                super::grants::insert_grant(tx, &own, Validity::default()).await?;
                self.tell_nodes(tx, AccessChange::Organization(org)).await?;
            }
            Ok((created, owner.is_some()))
        })?;
        if owned {
            self.hub().publish_access(AccessChange::Organization(org));
        }
        Ok(mailbox)
    }

    fn mailbox(&self, id: MailboxId) -> StoreResult<Option<Mailbox>> {
        let row = self.query_opt(
            &format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1"),
            &[&rows::id(id.0)?],
        )?;
        row.as_ref().map(mailbox).transpose()
    }

    fn admission(&self, id: MailboxId) -> StoreResult<Option<Admission>> {
        let row = self.query_opt(
            "SELECT m.quota_bytes, m.usage_bytes, o.suspended_since IS NOT NULL \
             FROM mailboxes m JOIN organizations o ON o.id = m.org WHERE m.id = $1",
            &[&rows::id(id.0)?],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (quota, usage): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        Ok(Some(Admission {
            quota_bytes: quota.max(0) as u64,
            usage_bytes: usage.max(0) as u64,
            suspended: row.try_get(2)?,
        }))
    }

    fn mailbox_by_address(&self, address: &str) -> StoreResult<Option<Mailbox>> {
        let row = self.query_opt(
            &format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE address = $1"),
            &[&normalize_address(address)],
        )?;
        row.as_ref().map(mailbox).transpose()
    }

    fn mailboxes(&self, org: OrgId) -> StoreResult<Vec<Mailbox>> {
        let rows = self.query(
            &format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE org = $1 ORDER BY id"),
            &[&id(org.0)?],
        )?;
        rows.iter().map(mailbox).collect()
    }

    fn update_mailbox(
        &self,
        id: MailboxId,
        change: Box<dyn FnOnce(&mut Mailbox) + '_>,
    ) -> StoreResult<Mailbox> {
        // Once: the caller's change runs once.
        let (after, moved) = self.transaction_once(async |tx| {
            let before = require_mailbox(tx, id, "FOR UPDATE").await?;
            let mut after = before.clone();
            change(&mut after);
            let row = tx
                .query_one_cached(
                    &format!(
                        "UPDATE mailboxes SET display_name = $2, password = $3, \
                         quota_bytes = $4, seen = $5 WHERE id = $1 RETURNING {MAILBOX_COLUMNS}"
                    ),
                    &[
                        &rows::id(id.0)?,
                        &after.display_name,
                        &after.password.0,
                        &quota(after.quota_bytes)?,
                        &word(&after.seen)?,
                    ],
                )
                .await?;
            let moved = after.password != before.password;
            if moved {
                self.tell_nodes(tx, AccessChange::Mailbox(id)).await?;
            }
            Ok((mailbox(&row)?, moved))
        })?;
        if moved {
            self.hub().publish_access(AccessChange::Mailbox(id));
        }
        Ok(after)
    }

    fn delete_mailbox(&self, id: MailboxId) -> StoreResult<()> {
        let held = self.transaction(async |tx| {
            require_mailbox(tx, id, "FOR UPDATE").await?;
            // The references its messages hold on their bytes go with them; bytes nothing
            // else holds go too.
            let held: Vec<Vec<u8>> = tx
                .query_cached(
                    "WITH gone AS (SELECT m.blob, count(*) AS n FROM messages m \
                     JOIN folders f ON f.id = m.folder WHERE f.mailbox = $1 GROUP BY m.blob) \
                     UPDATE blobs b SET refs = b.refs - gone.n FROM gone WHERE b.id = gone.blob \
                     RETURNING b.id",
                    &[&rows::id(id.0)?],
                )
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            // Its addresses, folders, messages, grants, subscriptions, imports and places in
            // partners' scopes go with it (ON DELETE CASCADE).
            tx.execute_cached("DELETE FROM mailboxes WHERE id = $1", &[&rows::id(id.0)?])
                .await?;
            tx.execute_cached(
                "DELETE FROM blobs WHERE id = ANY($1) AND refs = 0",
                &[&held],
            )
            .await?;
            self.tell_nodes(tx, AccessChange::Mailbox(id)).await?;
            Ok(held)
        })?;
        self.forget_bodies(
            held.into_iter()
                .filter_map(|b| <[u8; 32]>::try_from(b).ok())
                .map(crate::store::BlobId),
        );
        self.hub().publish_access(AccessChange::Mailbox(id));
        Ok(())
    }

    fn create_alias(&self, org: OrgId, address: &str, mailbox: MailboxId) -> StoreResult<Alias> {
        let address = valid_address(address)?;
        self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_address(&tx, &address).await?;
            if require_mailbox(&tx, mailbox, "FOR SHARE").await?.org != org {
                return Err(StoreError::AliasAcrossOrganizations);
            }
            check_new_address(&tx, org, &address).await?;
            // Nobody logs in to an alias: as a user's login it would lock her out.
            if user_by_login(&tx, &address).await?.is_some() {
                return Err(StoreError::AddressIsLogin(address.clone()));
            }
            tx.execute_cached(
                "INSERT INTO addresses (address, mailbox, alias) VALUES ($1, $2, true)",
                &[&address, &id(mailbox.0)?],
            )
            .await?;
            tx.commit().await?;
            Ok(Alias {
                address: address.clone(),
                org,
                mailbox,
            })
        })
    }

    fn aliases_of(&self, mailbox: MailboxId) -> StoreResult<Vec<Alias>> {
        let rows = self.query(
            "SELECT a.address, m.org, a.mailbox FROM addresses a JOIN mailboxes m \
             ON m.id = a.mailbox WHERE a.alias AND a.mailbox = $1 ORDER BY a.address COLLATE \"C\"",
            &[&id(mailbox.0)?],
        )?;
        rows.iter().map(alias).collect()
    }

    fn aliases(&self, org: OrgId) -> StoreResult<Vec<Alias>> {
        let rows = self.query(
            "SELECT a.address, m.org, a.mailbox FROM addresses a JOIN mailboxes m \
             ON m.id = a.mailbox WHERE a.alias AND m.org = $1 ORDER BY a.address COLLATE \"C\"",
            &[&id(org.0)?],
        )?;
        rows.iter().map(alias).collect()
    }

    fn delete_alias(&self, org: OrgId, address: &str) -> StoreResult<()> {
        let address = normalize_address(address);
        let deleted = self.execute(
            "DELETE FROM addresses a USING mailboxes m \
             WHERE a.address = $1 AND a.alias AND m.id = a.mailbox AND m.org = $2",
            &[&address, &id(org.0)?],
        )?;
        match deleted {
            0 => Err(StoreError::not_found(format!("alias {address}"))),
            _ => Ok(()),
        }
    }

    fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let login = new.login.trim().to_string();
        let login_key = valid_address(&login)?;
        self.transaction(async |tx| {
            lock_address(tx, &login_key).await?;
            if user_by_login(tx, &login_key).await?.is_some() {
                return Err(StoreError::LoginTaken(login.clone()));
            }
            // A login name must open exactly one thing: a mailbox's address only for the user
            // granted that mailbox as her own, never an alias's.
            match resolve(tx, &login_key).await? {
                None => {}
                Some(AddressEntry::Mailbox(id)) if new.own_mailbox == Some(id) => {}
                Some(_) => return Err(StoreError::LoginIsAddress(login.clone())),
            }
            let row = tx
                .query_one_cached(
                    &format!(
                        "INSERT INTO users (id, login, login_key, display_name, password, \
                         must_change_password, disabled, created) \
                         VALUES (nextval('ids'), $1, $2, $3, $4, $5, false, $6) RETURNING {}",
                        rows::USER_COLUMNS
                    ),
                    &[
                        &login,
                        &login_key,
                        &new.display_name,
                        &new.password.0,
                        &new.must_change_password,
                        &now_millis(),
                    ],
                )
                .await?;
            rows::user(&row)
        })
    }

    fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = self.query_opt(
            &format!("SELECT {} FROM users WHERE id = $1", rows::USER_COLUMNS),
            &[&rows::id(id.0)?],
        )?;
        row.as_ref().map(rows::user).transpose()
    }

    fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        self.block(async { user_by_login(&self.client().await?, &normalize_address(login)).await })
    }

    fn update_user(
        &self,
        id: UserId,
        change: Box<dyn FnOnce(&mut User) + '_>,
    ) -> StoreResult<User> {
        // Once: the caller's change runs once.
        let (after, moved) = self.transaction_once(async |tx| {
            let before = require_user(tx, id, "FOR UPDATE").await?;
            let mut after = before.clone();
            change(&mut after);
            let row = tx
                .query_one_cached(
                    &format!(
                        "UPDATE users SET display_name = $2, password = $3, \
                         must_change_password = $4, disabled = $5 WHERE id = $1 RETURNING {}",
                        rows::USER_COLUMNS
                    ),
                    &[
                        &rows::id(id.0)?,
                        &after.display_name,
                        &after.password.0,
                        &after.must_change_password,
                        &after.disabled,
                    ],
                )
                .await?;
            let moved = after.password != before.password || after.disabled != before.disabled;
            if moved {
                self.tell_nodes(tx, AccessChange::User(id)).await?;
            }
            Ok((rows::user(&row)?, moved))
        })?;
        if moved {
            self.hub().publish_access(AccessChange::User(id));
        }
        Ok(after)
    }

    fn set_member(&self, org: OrgId, user: UserId, role: Role) -> StoreResult<Membership> {
        self.transaction(async |tx| {
            require_org(tx, org, "FOR UPDATE").await?;
            require_user(tx, user, "FOR SHARE").await?;
            if role != Role::Owner {
                check_not_last_owner(tx, org, user).await?;
            }
            set_role(tx, org, user, role).await?;
            self.tell_nodes(tx, AccessChange::User(user)).await?;
            Ok(())
        })?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(Membership { org, user, role })
    }

    fn remove_member(&self, org: OrgId, user: UserId) -> StoreResult<()> {
        self.transaction(async |tx| {
            require_org(tx, org, "FOR UPDATE").await?;
            if role_in(tx, org, user, "FOR UPDATE").await?.is_none() {
                return Err(StoreError::not_found(format!(
                    "member {user} of organization {org}"
                )));
            }
            check_not_last_owner(tx, org, user).await?;
            let (org_id, user_id) = (id(org.0)?, id(user.0)?);
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&org_id, &user_id];
            tx.execute_cached(
                "DELETE FROM memberships WHERE org = $1 AND user_id = $2",
                &params,
            )
            .await?;
            tx.execute_cached(
                "DELETE FROM grants WHERE org = $1 AND grantee_user = $2",
                &params,
            )
            .await?;
            tx.execute_cached(
                "DELETE FROM team_members tm USING teams t \
                 WHERE t.id = tm.team AND t.org = $1 AND tm.user_id = $2",
                &params,
            )
            .await?;
            self.tell_nodes(tx, AccessChange::User(user)).await?;
            Ok(())
        })?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(())
    }

    fn role_in(&self, org: OrgId, user: UserId) -> StoreResult<Option<Role>> {
        self.block(async { role_in(&self.client().await?, org, user, "").await })
    }

    fn members(&self, org: OrgId) -> StoreResult<Vec<Membership>> {
        let rows = self.query(
            "SELECT org, user_id, role FROM memberships WHERE org = $1 ORDER BY user_id",
            &[&id(org.0)?],
        )?;
        rows.iter().map(membership).collect()
    }

    fn memberships_of(&self, user: UserId) -> StoreResult<Vec<Membership>> {
        let rows = self.query(
            "SELECT org, user_id, role FROM memberships WHERE user_id = $1 ORDER BY org",
            &[&id(user.0)?],
        )?;
        rows.iter().map(membership).collect()
    }
}

/// Serialises everything that makes `address` (normalized) a mailbox's, an alias's or a
/// login, until the transaction ends.
async fn lock_address(client: &impl GenericClient, address: &str) -> StoreResult<()> {
    client
        .execute_cached(
            "SELECT pg_advisory_xact_lock(hashtext('address:' || $1))",
            &[&address],
        )
        .await?;
    Ok(())
}

/// Checks that `address` may be created in `org`: its domain is the organization's (its row
/// held until the transaction ends) and the address is not yet a mailbox or an alias.
async fn check_new_address(
    client: &impl GenericClient,
    org: OrgId,
    address: &str,
) -> StoreResult<()> {
    let domain = domain_of(address).ok_or_else(|| StoreError::Invalid {
        what: "address",
        why: format!("{address:?} is not of the form local@domain"),
    })?;
    let owner = client
        .query_opt_cached(
            "SELECT org FROM domains WHERE name = $1 FOR SHARE",
            &[&domain],
        )
        .await?
        .map(|row| row.try_get::<_, i64>(0))
        .transpose()?;
    if owner != Some(id(org.0)?) {
        return Err(StoreError::DomainNotOwned(address.to_string()));
    }
    if resolve(client, address).await?.is_some() {
        return Err(StoreError::AddressTaken(address.to_string()));
    }
    Ok(())
}

async fn resolve(client: &impl GenericClient, address: &str) -> StoreResult<Option<AddressEntry>> {
    let row = client
        .query_opt_cached(
            "SELECT a.address, m.org, a.mailbox, a.alias FROM addresses a \
             JOIN mailboxes m ON m.id = a.mailbox WHERE a.address = $1",
            &[&address],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(match row.try_get::<_, bool>(3)? {
        true => AddressEntry::Alias(alias(&row)?),
        false => AddressEntry::Mailbox(MailboxId(from_id(row.try_get(2)?, "mailbox")?)),
    }))
}

/// The user whose login, as compared (`login_key`), is `key`.
async fn user_by_login(client: &impl GenericClient, key: &str) -> StoreResult<Option<User>> {
    let row = client
        .query_opt_cached(
            &format!(
                "SELECT {} FROM users WHERE login_key = $1",
                rows::USER_COLUMNS
            ),
            &[&key],
        )
        .await?;
    row.as_ref().map(rows::user).transpose()
}

async fn operators(client: &impl GenericClient) -> StoreResult<Vec<UserId>> {
    let rows = client
        .query_cached("SELECT id FROM users WHERE operator ORDER BY id", &[])
        .await?;
    rows.iter()
        .map(|row| Ok(UserId(from_id(row.try_get(0)?, "user")?)))
        .collect()
}

/// `lock` is a row-locking clause (`FOR SHARE`, `FOR UPDATE`) or empty.
pub(super) async fn require_user(
    client: &impl GenericClient,
    user: UserId,
    lock: &str,
) -> StoreResult<User> {
    let row = client
        .query_opt_cached(
            &format!(
                "SELECT {} FROM users WHERE id = $1 {lock}",
                rows::USER_COLUMNS
            ),
            &[&id(user.0)?],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("user {user}")))?;
    rows::user(&row)
}

pub(super) async fn require_org(
    client: &impl GenericClient,
    org: OrgId,
    lock: &str,
) -> StoreResult<Organization> {
    let row = client
        .query_opt_cached(
            &format!("SELECT id, name, created FROM organizations WHERE id = $1 {lock}"),
            &[&id(org.0)?],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("organization {org}")))?;
    organization(&row)
}

pub(super) async fn require_mailbox(
    client: &impl GenericClient,
    mailbox_id: MailboxId,
    lock: &str,
) -> StoreResult<Mailbox> {
    let row = client
        .query_opt_cached(
            &format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1 {lock}"),
            &[&id(mailbox_id.0)?],
        )
        .await?
        .ok_or_else(|| StoreError::not_found(format!("mailbox {mailbox_id}")))?;
    mailbox(&row)
}

pub(super) async fn role_in(
    client: &impl GenericClient,
    org: OrgId,
    user: UserId,
    lock: &str,
) -> StoreResult<Option<Role>> {
    let row = client
        .query_opt_cached(
            &format!("SELECT role FROM memberships WHERE org = $1 AND user_id = $2 {lock}"),
            &[&id(org.0)?, &id(user.0)?],
        )
        .await?;
    row.map(|row| from_word(row.try_get(0)?, "role"))
        .transpose()
}

async fn set_role(
    client: &impl GenericClient,
    org: OrgId,
    user: UserId,
    role: Role,
) -> StoreResult<()> {
    client
        .execute_cached(
            "INSERT INTO memberships (org, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (org, user_id) DO UPDATE SET role = EXCLUDED.role",
            &[&id(org.0)?, &id(user.0)?, &word(&role)?],
        )
        .await?;
    Ok(())
}

/// Refuses a change that would leave `org` without an owner because `user` stops being one.
/// The caller holds the organization's row.
async fn check_not_last_owner(
    client: &impl GenericClient,
    org: OrgId,
    user: UserId,
) -> StoreResult<()> {
    if role_in(client, org, user, "").await? != Some(Role::Owner) {
        return Ok(());
    }
    let owners: i64 = client
        .query_one_cached(
            "SELECT count(*) FROM memberships WHERE org = $1 AND role = 'owner'",
            &[&id(org.0)?],
        )
        .await?
        .try_get(0)?;
    match owners {
        ..=1 => Err(StoreError::LastOwner),
        _ => Ok(()),
    }
}

fn quota(bytes: u64) -> StoreResult<i64> {
    i64::try_from(bytes).map_err(|_| StoreError::Invalid {
        what: "quota",
        why: format!("{bytes} bytes is beyond what the database keeps"),
    })
}

fn organization(row: &Row) -> StoreResult<Organization> {
    Ok(Organization {
        id: OrgId(from_id(row.try_get(0)?, "organization")?),
        name: row.try_get(1)?,
        created: row.try_get(2)?,
    })
}

fn domain(row: &Row) -> StoreResult<Domain> {
    Ok(Domain {
        name: row.try_get(0)?,
        org: OrgId(from_id(row.try_get(1)?, "organization")?),
    })
}

pub(super) fn mailbox(row: &Row) -> StoreResult<Mailbox> {
    let quota: i64 = row.try_get(5)?;
    Ok(Mailbox {
        id: MailboxId(from_id(row.try_get(0)?, "mailbox")?),
        org: OrgId(from_id(row.try_get(1)?, "organization")?),
        address: row.try_get(2)?,
        display_name: row.try_get(3)?,
        password: PasswordHash(row.try_get(4)?),
        quota_bytes: u64::try_from(quota)
            .map_err(|_| StoreError::Corrupt(format!("quota {quota}")))?,
        seen: from_word(row.try_get(6)?, "seen policy")?,
        created: row.try_get(7)?,
    })
}

/// An alias from (address, org, mailbox).
fn alias(row: &Row) -> StoreResult<Alias> {
    Ok(Alias {
        address: row.try_get(0)?,
        org: OrgId(from_id(row.try_get(1)?, "organization")?),
        mailbox: MailboxId(from_id(row.try_get(2)?, "mailbox")?),
    })
}

fn membership(row: &Row) -> StoreResult<Membership> {
    Ok(Membership {
        org: OrgId(from_id(row.try_get(0)?, "organization")?),
        user: UserId(from_id(row.try_get(1)?, "user")?),
        role: from_word(row.try_get(2)?, "role")?,
    })
}
