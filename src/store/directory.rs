//! Organizations, domains, addresses (mailboxes and aliases), users and memberships.

use super::codec::{self, decode, id_at, key, key_str};
use super::error::{StoreError, StoreResult};
use super::folders::STANDARD_FOLDERS;
use super::hub::AccessChange;
use super::interface::*;
use super::{Changes, SledStore};
use crate::model::*;
use serde::{Deserialize, Serialize};

/// What an address is: exactly one of a mailbox or an alias (ARCHITECTURE.md §1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddressEntry {
    Mailbox(MailboxId),
    Alias(Alias),
}

/// A mailbox before the store gives it an id.
/// What mail delivery asks of a mailbox before it takes a message for it
/// (`DirectoryStore::admission`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// 0: no limit.
    pub quota_bytes: u64,
    pub usage_bytes: u64,
    /// Its organization is suspended: mail waits (a temporary refusal).
    pub suspended: bool,
}

impl Admission {
    /// Whether `size` more bytes fit.
    pub fn has_room(&self, size: u64) -> bool {
        self.quota_bytes == 0 || self.usage_bytes.saturating_add(size) <= self.quota_bytes
    }
}

#[derive(Clone, Debug)]
pub struct NewMailbox {
    pub org: OrgId,
    pub address: String,
    pub display_name: String,
    pub password: PasswordHash,
    pub quota_bytes: u64,
    pub seen: SeenPolicy,
}

/// A user before the store gives it an id.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub login: String,
    pub display_name: String,
    pub password: PasswordHash,
    pub must_change_password: bool,
    /// The mailbox whose address the login may be: the one she is being granted as her own.
    pub own_mailbox: Option<MailboxId>,
}

impl DirectoryStore for SledStore {
    fn create_organization(&self, name: &str, owner: UserId) -> StoreResult<Organization> {
        let name = non_empty("organization name", name)?;
        let _guard = self.lock();
        self.user(owner)?
            .ok_or_else(|| StoreError::not_found(format!("user {owner}")))?;
        let org = Organization {
            id: OrgId(self.next_id()?),
            name: name.to_string(),
            created: now_millis(),
        };
        let mut changes = Changes::default();
        changes.put_model(key(codec::ORG, &[org.id.0]), &org)?;
        membership_changes(&mut changes, org.id, owner, Some(Role::Owner))?;
        self.commit(changes)?;
        Ok(org)
    }

    fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        self.get_model(&key(codec::ORG, &[id.0]), "organization")
    }

    fn organizations(&self) -> StoreResult<Vec<Organization>> {
        self.scan_model(&[codec::ORG], "organization")
    }

    fn set_operator(&self, user: UserId, operator: bool) -> StoreResult<()> {
        let _guard = self.lock();
        self.require_user(user)?;
        let mut changes = Changes::default();
        let k = key(codec::OPERATOR, &[user.0]);
        if operator {
            changes.put_model(k, &())?;
        } else {
            if self.operators()? == [user] {
                return Err(StoreError::LastOperator);
            }
            changes.del_model(k);
        }
        self.commit(changes)?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(())
    }

    fn operators(&self) -> StoreResult<Vec<UserId>> {
        let scan = self.inner.model.scan_prefix([codec::OPERATOR]);
        scan.keys().map(|k| Ok(UserId(id_at(&k?, 0)?))).collect()
    }

    fn is_operator(&self, user: UserId) -> StoreResult<bool> {
        Ok(self
            .inner
            .model
            .contains_key(key(codec::OPERATOR, &[user.0]))?)
    }

    fn rename_organization(&self, id: OrgId, name: &str) -> StoreResult<Organization> {
        let name = non_empty("organization name", name)?;
        let _guard = self.lock();
        let mut org = self
            .organization(id)?
            .ok_or_else(|| StoreError::not_found(format!("organization {id}")))?;
        org.name = name.to_string();
        let mut changes = Changes::default();
        changes.put_model(key(codec::ORG, &[id.0]), &org)?;
        self.commit(changes)?;
        Ok(org)
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
        let _guard = self.lock();
        self.require_org(org)?;
        let k = key_str(codec::DOMAIN, &[], &name);
        if self.inner.model.contains_key(&k)? {
            return Err(StoreError::DomainTaken(name));
        }
        let domain = Domain { name, org };
        let mut changes = Changes::default();
        changes.put_model(k, &domain)?;
        if let Some(token) = token {
            let claim = super::DomainClaim {
                token,
                verified: None,
            };
            changes.put_model(super::claims::claim_key(&domain.name), &claim)?;
        }
        self.commit(changes)?;
        Ok(domain)
    }

    fn domain(&self, name: &str) -> StoreResult<Option<Domain>> {
        let k = key_str(codec::DOMAIN, &[], &normalize_address(name));
        self.get_model(&k, "domain")
    }

    fn all_domains(&self) -> StoreResult<Vec<Domain>> {
        self.scan_model(&[codec::DOMAIN], "domain")
    }

    fn domains(&self, org: OrgId) -> StoreResult<Vec<Domain>> {
        let all: Vec<Domain> = self.scan_model(&[codec::DOMAIN], "domain")?;
        Ok(all.into_iter().filter(|d| d.org == org).collect())
    }

    fn remove_domain(&self, org: OrgId, name: &str) -> StoreResult<()> {
        let name = normalize_address(name);
        let _guard = self.lock();
        match self.domain(&name)? {
            Some(d) if d.org == org => {}
            _ => return Err(StoreError::not_found(format!("domain {name}"))),
        }
        let in_use = self
            .address_entries()?
            .iter()
            .any(|(address, _)| domain_of(address) == Some(name.as_str()));
        if in_use {
            return Err(StoreError::DomainInUse(name));
        }
        let mut changes = Changes::default();
        changes.del_model(key_str(codec::DOMAIN, &[], &name));
        changes.del_model(super::claims::claim_key(&name));
        self.drop_dkim_keys(&name, &mut changes)?;
        self.commit(changes)
    }

    fn resolve_address(&self, address: &str) -> StoreResult<Option<AddressEntry>> {
        let k = key_str(codec::ADDRESS, &[], &normalize_address(address));
        self.get_model(&k, "address")
    }

    fn create_mailbox(&self, new: NewMailbox) -> StoreResult<Mailbox> {
        let address = valid_address(&new.address)?;
        let _guard = self.lock();
        self.check_new_address(new.org, &address)?;
        // A user's login may be a mailbox's address only when she is a member of its
        // organization: it is her own mailbox, granted to her at once (see `login`).
        let owner = match self.user_by_login(&address)? {
            Some(user) if self.role_in(new.org, user.id)?.is_some() => Some(user.id),
            Some(_) => return Err(StoreError::AddressIsLogin(address)),
            None => None,
        };
        let mailbox = Mailbox {
            id: MailboxId(self.next_id()?),
            org: new.org,
            address: address.clone(),
            display_name: new.display_name,
            password: new.password,
            quota_bytes: new.quota_bytes,
            seen: new.seen,
            created: now_millis(),
        };
        let mut changes = Changes::default();
        changes.put_model(
            key_str(codec::ADDRESS, &[], &address),
            &AddressEntry::Mailbox(mailbox.id),
        )?;
        changes.put_model(key(codec::MAILBOX, &[mailbox.id.0]), &mailbox)?;
        for (name, special_use) in STANDARD_FOLDERS {
            self.new_folder_changes(&mut changes, mailbox.id, name, special_use)?;
        }
        if let Some(user) = owner {
            let own = NewGrant {
                org: new.org,
                grantee: Grantee::User(user),
                target: GrantTarget::Mailbox(mailbox.id),
                rights: Rights::ALL.without(Rights::of(&[Right::Administer])),
                send: Some(SendMode::As),
            };
            self.grant_changes(&mut changes, own, Validity::default())?;
        }
        self.commit(changes)?;
        if owner.is_some() {
            self.hub()
                .publish_access(AccessChange::Organization(new.org));
        }
        Ok(mailbox)
    }

    fn mailbox(&self, id: MailboxId) -> StoreResult<Option<Mailbox>> {
        self.get_model(&key(codec::MAILBOX, &[id.0]), "mailbox")
    }

    fn admission(&self, id: MailboxId) -> StoreResult<Option<Admission>> {
        let Some(mailbox) = self.mailbox(id)? else {
            return Ok(None);
        };
        Ok(Some(Admission {
            quota_bytes: mailbox.quota_bytes,
            usage_bytes: self.usage(id)?,
            suspended: self.is_suspended(mailbox.org)?,
        }))
    }

    fn mailbox_by_address(&self, address: &str) -> StoreResult<Option<Mailbox>> {
        match self.resolve_address(address)? {
            Some(AddressEntry::Mailbox(id)) => self.mailbox(id),
            _ => Ok(None),
        }
    }

    fn mailboxes(&self, org: OrgId) -> StoreResult<Vec<Mailbox>> {
        let all: Vec<Mailbox> = self.scan_model(&[codec::MAILBOX], "mailbox")?;
        Ok(all.into_iter().filter(|m| m.org == org).collect())
    }

    fn update_mailbox(
        &self,
        id: MailboxId,
        change: Box<dyn FnOnce(&mut Mailbox) + '_>,
    ) -> StoreResult<Mailbox> {
        let _guard = self.lock();
        let before = self.require_mailbox(id)?;
        let mut after = before.clone();
        change(&mut after);
        after.id = before.id;
        after.org = before.org;
        after.address = before.address.clone();
        let mut changes = Changes::default();
        changes.put_model(key(codec::MAILBOX, &[id.0]), &after)?;
        self.commit(changes)?;
        if after.password != before.password {
            self.hub().publish_access(AccessChange::Mailbox(id));
        }
        Ok(after)
    }

    fn delete_mailbox(&self, id: MailboxId) -> StoreResult<()> {
        let guard = self.lock();
        let mailbox = self.require_mailbox(id)?;
        let mut changes = Changes::default();
        changes.del_model(key(codec::MAILBOX, &[id.0]));
        for (address, entry) in self.address_entries()? {
            let points_here = match entry {
                AddressEntry::Mailbox(m) => m == id,
                AddressEntry::Alias(a) => a.mailbox == id,
            };
            if points_here {
                changes.del_model(key_str(codec::ADDRESS, &[], &address));
            }
        }
        for grant in self.grants(mailbox.org)? {
            if grant.target == GrantTarget::Mailbox(id) {
                changes.del_model(key(codec::GRANT, &[grant.org.0, grant.id.0]));
            }
        }
        self.drop_from_partner_scopes(&mut changes, id)?;
        for import in self.imports_of(id)? {
            changes.del_model(key(codec::IMPORT, &[import.id.0]));
        }
        self.mailbox_mail_removal(&mut changes, id)?;
        self.commit(changes)?;
        drop(guard);
        self.hub().publish_access(AccessChange::Mailbox(id));
        Ok(())
    }

    fn create_alias(&self, org: OrgId, address: &str, mailbox: MailboxId) -> StoreResult<Alias> {
        let address = valid_address(address)?;
        let _guard = self.lock();
        let target = self.require_mailbox(mailbox)?;
        if target.org != org {
            return Err(StoreError::AliasAcrossOrganizations);
        }
        self.check_new_address(org, &address)?;
        // Nobody logs in to an alias: as a user's login it would lock her out.
        if self.user_by_login(&address)?.is_some() {
            return Err(StoreError::AddressIsLogin(address));
        }
        let alias = Alias {
            address: address.clone(),
            org,
            mailbox,
        };
        let mut changes = Changes::default();
        changes.put_model(
            key_str(codec::ADDRESS, &[], &address),
            &AddressEntry::Alias(alias.clone()),
        )?;
        self.commit(changes)?;
        Ok(alias)
    }

    fn aliases_of(&self, mailbox: MailboxId) -> StoreResult<Vec<Alias>> {
        Ok(self
            .address_entries()?
            .into_iter()
            .filter_map(|(_, e)| match e {
                AddressEntry::Alias(a) if a.mailbox == mailbox => Some(a),
                _ => None,
            })
            .collect())
    }

    fn aliases(&self, org: OrgId) -> StoreResult<Vec<Alias>> {
        Ok(self
            .address_entries()?
            .into_iter()
            .filter_map(|(_, e)| match e {
                AddressEntry::Alias(a) if a.org == org => Some(a),
                _ => None,
            })
            .collect())
    }

    fn delete_alias(&self, org: OrgId, address: &str) -> StoreResult<()> {
        let address = normalize_address(address);
        let _guard = self.lock();
        match self.resolve_address(&address)? {
            Some(AddressEntry::Alias(a)) if a.org == org => {}
            _ => return Err(StoreError::not_found(format!("alias {address}"))),
        }
        let mut changes = Changes::default();
        changes.del_model(key_str(codec::ADDRESS, &[], &address));
        self.commit(changes)
    }

    fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let login = new.login.trim().to_string();
        let normalized = valid_address(&login)?;
        let _guard = self.lock();
        let login_key = key_str(codec::LOGIN, &[], &normalized);
        if self.inner.model.contains_key(&login_key)? {
            return Err(StoreError::LoginTaken(login));
        }
        // A login name must open exactly one thing: a mailbox's address only for the user
        // granted that mailbox as her own, never an alias's.
        match self.resolve_address(&normalized)? {
            None => {}
            Some(AddressEntry::Mailbox(id)) if new.own_mailbox == Some(id) => {}
            Some(_) => return Err(StoreError::LoginIsAddress(login)),
        }
        let user = User {
            id: UserId(self.next_id()?),
            login,
            display_name: new.display_name,
            password: new.password,
            must_change_password: new.must_change_password,
            disabled: false,
            created: now_millis(),
        };
        let mut changes = Changes::default();
        changes.put_model(login_key, &user.id)?;
        changes.put_model(key(codec::USER, &[user.id.0]), &user)?;
        self.commit(changes)?;
        Ok(user)
    }

    fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.get_model(&key(codec::USER, &[id.0]), "user")
    }

    fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        let k = key_str(codec::LOGIN, &[], &normalize_address(login));
        match self.get_model::<UserId>(&k, "login")? {
            Some(id) => self.user(id),
            None => Ok(None),
        }
    }

    fn update_user(
        &self,
        id: UserId,
        change: Box<dyn FnOnce(&mut User) + '_>,
    ) -> StoreResult<User> {
        let _guard = self.lock();
        let before = self.require_user(id)?;
        let mut after = before.clone();
        change(&mut after);
        after.id = before.id;
        after.login = before.login.clone();
        let mut changes = Changes::default();
        changes.put_model(key(codec::USER, &[id.0]), &after)?;
        self.commit(changes)?;
        if after.password != before.password || after.disabled != before.disabled {
            self.hub().publish_access(AccessChange::User(id));
        }
        Ok(after)
    }

    fn set_member(&self, org: OrgId, user: UserId, role: Role) -> StoreResult<Membership> {
        let _guard = self.lock();
        self.require_org(org)?;
        self.require_user(user)?;
        if role != Role::Owner {
            self.check_not_last_owner(org, user)?;
        }
        let mut changes = Changes::default();
        membership_changes(&mut changes, org, user, Some(role))?;
        self.commit(changes)?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(Membership { org, user, role })
    }

    fn remove_member(&self, org: OrgId, user: UserId) -> StoreResult<()> {
        let _guard = self.lock();
        if self.role_in(org, user)?.is_none() {
            return Err(StoreError::not_found(format!(
                "member {user} of organization {org}"
            )));
        }
        self.check_not_last_owner(org, user)?;
        let mut changes = Changes::default();
        membership_changes(&mut changes, org, user, None)?;
        for grant in self.grants(org)? {
            if grant.grantee == Grantee::User(user) {
                changes.del_model(key(codec::GRANT, &[org.0, grant.id.0]));
            }
        }
        for team in self.teams_of(user)? {
            if team.org == org {
                changes.del_model(key(codec::TEAM_MEMBER, &[team.id.0, user.0]));
                changes.del_model(key(codec::USER_TEAM, &[user.0, team.id.0]));
            }
        }
        self.commit(changes)?;
        self.hub().publish_access(AccessChange::User(user));
        Ok(())
    }

    fn role_in(&self, org: OrgId, user: UserId) -> StoreResult<Option<Role>> {
        self.get_model(&key(codec::MEMBER, &[org.0, user.0]), "membership")
    }

    fn members(&self, org: OrgId) -> StoreResult<Vec<Membership>> {
        let mut out = Vec::new();
        for item in self.inner.model.scan_prefix(key(codec::MEMBER, &[org.0])) {
            let (k, v) = item?;
            out.push(Membership {
                org,
                user: UserId(id_at(&k, 1)?),
                role: decode(&v, "membership")?,
            });
        }
        Ok(out)
    }

    fn memberships_of(&self, user: UserId) -> StoreResult<Vec<Membership>> {
        let mut out = Vec::new();
        for item in self
            .inner
            .model
            .scan_prefix(key(codec::USER_ORG, &[user.0]))
        {
            let (k, _) = item?;
            let org = OrgId(id_at(&k, 1)?);
            if let Some(role) = self.role_in(org, user)? {
                out.push(Membership { org, user, role });
            }
        }
        Ok(out)
    }
}

impl SledStore {
    fn address_entries(&self) -> StoreResult<Vec<(String, AddressEntry)>> {
        let mut out = Vec::new();
        for item in self.inner.model.scan_prefix([codec::ADDRESS]) {
            let (k, v) = item?;
            let address = String::from_utf8_lossy(&k[1..]).into_owned();
            out.push((address, decode(&v, "address")?));
        }
        Ok(out)
    }

    /// Checks that `address` may be created in `org`: its domain is the organization's and the
    /// address is not yet a mailbox or an alias anywhere.
    fn check_new_address(&self, org: OrgId, address: &str) -> StoreResult<()> {
        let domain = domain_of(address).ok_or_else(|| StoreError::Invalid {
            what: "address",
            why: format!("{address:?} is not of the form local@domain"),
        })?;
        match self.domain(domain)? {
            Some(d) if d.org == org => {}
            _ => return Err(StoreError::DomainNotOwned(address.to_string())),
        }
        if self.resolve_address(address)?.is_some() {
            return Err(StoreError::AddressTaken(address.to_string()));
        }
        Ok(())
    }

    pub(crate) fn require_mailbox(&self, id: MailboxId) -> StoreResult<Mailbox> {
        self.mailbox(id)?
            .ok_or_else(|| StoreError::not_found(format!("mailbox {id}")))
    }

    pub(crate) fn require_user(&self, id: UserId) -> StoreResult<User> {
        self.user(id)?
            .ok_or_else(|| StoreError::not_found(format!("user {id}")))
    }

    /// Refuses a change that would leave `org` without an owner because `user` stops being one.
    fn check_not_last_owner(&self, org: OrgId, user: UserId) -> StoreResult<()> {
        if self.role_in(org, user)? != Some(Role::Owner) {
            return Ok(());
        }
        let owners = self
            .members(org)?
            .iter()
            .filter(|m| m.role == Role::Owner)
            .count();
        if owners <= 1 {
            return Err(StoreError::LastOwner);
        }
        Ok(())
    }

    pub(crate) fn require_org(&self, org: OrgId) -> StoreResult<Organization> {
        self.organization(org)?
            .ok_or_else(|| StoreError::not_found(format!("organization {org}")))
    }
}

/// The records that make (`Some(role)`) or unmake (`None`) a membership.
fn membership_changes(
    changes: &mut Changes,
    org: OrgId,
    user: UserId,
    role: Option<Role>,
) -> StoreResult<()> {
    let member = key(codec::MEMBER, &[org.0, user.0]);
    let reverse = key(codec::USER_ORG, &[user.0, org.0]);
    match role {
        Some(role) => {
            changes.put_model(member, &role)?;
            changes.put_model(reverse, &())?;
        }
        None => {
            changes.del_model(member);
            changes.del_model(reverse);
        }
    }
    Ok(())
}

pub(super) fn non_empty<'a>(what: &'static str, value: &'a str) -> StoreResult<&'a str> {
    let value = value.trim();
    if value.is_empty() {
        return Err(StoreError::Invalid {
            what,
            why: "must not be empty".into(),
        });
    }
    Ok(value)
}

/// A domain name as the store keeps it: IDNA A-labels, lower case (`crate::address`).
pub(super) fn valid_domain(name: &str) -> StoreResult<String> {
    crate::address::parse_domain(name).map_err(|e| StoreError::Invalid {
        what: "domain",
        why: format!("{name:?}: {e}"),
    })
}

/// An address as the store keeps it (`crate::address`): lower case, A-label domain. The
/// delegation separator is the front ends' to refuse; the store knows no configuration.
pub(super) fn valid_address(address: &str) -> StoreResult<String> {
    crate::address::Address::parse(address, Default::default())
        .map(|a| a.key())
        .map_err(|e| StoreError::Invalid {
            what: "address",
            why: format!("{:?} {e}", address.trim()),
        })
}
