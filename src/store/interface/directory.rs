//! The store's interface for organizations, domains, users, mailboxes, aliases, teams and partnerships.

use crate::model::*;
use crate::store::*;

/// The directory: organizations, domains, users, memberships, mailboxes, aliases, teams and partnerships.
pub trait DirectoryStore {
    // ----- organizations -----
    /// Creates an organization with `owner` as its first owner: an organization is never
    /// without an owner.
    fn create_organization(&self, name: &str, owner: UserId) -> StoreResult<Organization>;

    fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>>;

    fn organizations(&self) -> StoreResult<Vec<Organization>>;

    // ----- server operators -----
    /// Makes `user` a server operator, or no longer one. The last operator stays one, so
    /// that someone can always create organizations.
    fn set_operator(&self, user: UserId, operator: bool) -> StoreResult<()>;

    fn operators(&self) -> StoreResult<Vec<UserId>>;

    fn is_operator(&self, user: UserId) -> StoreResult<bool>;

    fn rename_organization(&self, id: OrgId, name: &str) -> StoreResult<Organization>;

    // ----- domains -----
    /// Registers `name` as a domain of `org`. A domain belongs to exactly one organization.
    fn add_domain(&self, org: OrgId, name: &str) -> StoreResult<Domain>;

    /// Adds a domain; with a token, it takes mail only once that token is seen in its DNS
    /// (`Store::mark_domain_verified`).
    fn add_domain_claimed(
        &self,
        org: OrgId,
        name: &str,
        token: Option<String>,
    ) -> StoreResult<Domain>;

    fn domain(&self, name: &str) -> StoreResult<Option<Domain>>;

    /// Every domain of every organization.
    fn all_domains(&self) -> StoreResult<Vec<Domain>>;

    fn domains(&self, org: OrgId) -> StoreResult<Vec<Domain>>;

    /// Removes a domain that no longer holds any mailbox or alias.
    fn remove_domain(&self, org: OrgId, name: &str) -> StoreResult<()>;

    // ----- addresses -----
    /// What `address` is on this server, if anything.
    fn resolve_address(&self, address: &str) -> StoreResult<Option<AddressEntry>>;

    // ----- mailboxes -----
    /// Creates a mailbox with the standard folders (ARCHITECTURE.md §2).
    fn create_mailbox(&self, new: NewMailbox) -> StoreResult<Mailbox>;

    fn mailbox(&self, id: MailboxId) -> StoreResult<Option<Mailbox>>;

    /// What taking a message for `id` depends on (its quota and use, whether its organization
    /// is suspended), asked once per recipient of every delivery: one read.
    fn admission(&self, id: MailboxId) -> StoreResult<Option<Admission>>;

    /// The mailbox whose own address is `address` (not an alias).
    fn mailbox_by_address(&self, address: &str) -> StoreResult<Option<Mailbox>>;

    fn mailboxes(&self, org: OrgId) -> StoreResult<Vec<Mailbox>>;

    /// Changes a mailbox's password, display name, quota or `\Seen` policy. The address and
    /// organization cannot change.
    fn update_mailbox(
        &self,
        id: MailboxId,
        change: Box<dyn FnOnce(&mut Mailbox) + '_>,
    ) -> StoreResult<Mailbox>;

    /// Deletes a mailbox with its aliases, the grants on it, its folders and messages, and the
    /// blobs no other message references.
    fn delete_mailbox(&self, id: MailboxId) -> StoreResult<()>;

    // ----- aliases -----
    /// Adds `address` as another address of `mailbox`, in the mailbox's organization.
    fn create_alias(&self, org: OrgId, address: &str, mailbox: MailboxId) -> StoreResult<Alias>;

    fn aliases_of(&self, mailbox: MailboxId) -> StoreResult<Vec<Alias>>;

    fn aliases(&self, org: OrgId) -> StoreResult<Vec<Alias>>;

    fn delete_alias(&self, org: OrgId, address: &str) -> StoreResult<()>;

    // ----- users -----
    /// Creates a user; logins are unique case-insensitively across the server.
    fn create_user(&self, new: NewUser) -> StoreResult<User>;

    fn user(&self, id: UserId) -> StoreResult<Option<User>>;

    fn user_by_login(&self, login: &str) -> StoreResult<Option<User>>;

    /// Changes a user's password, display name, `must_change_password` or `disabled`. The
    /// login cannot change here.
    fn update_user(&self, id: UserId, change: Box<dyn FnOnce(&mut User) + '_>)
    -> StoreResult<User>;

    // ----- memberships -----
    /// Adds `user` to `org` with `role`, or changes the role of a member. Demoting the last
    /// owner is refused.
    fn set_member(&self, org: OrgId, user: UserId, role: Role) -> StoreResult<Membership>;

    /// Removes `user` from `org`, with the user's grants and team places there. Removing the
    /// last owner is refused.
    fn remove_member(&self, org: OrgId, user: UserId) -> StoreResult<()>;

    fn role_in(&self, org: OrgId, user: UserId) -> StoreResult<Option<Role>>;

    fn members(&self, org: OrgId) -> StoreResult<Vec<Membership>>;

    /// Every organization `user` belongs to, with the role there.
    fn memberships_of(&self, user: UserId) -> StoreResult<Vec<Membership>>;
}
