//! The store's interface for grants on mailboxes and their clock.

use crate::access::UserFacts;
use crate::model::*;
use crate::store::*;

/// Grants on mailboxes, and the clock that ends time-limited ones.
pub trait GrantStore {
    // ----- teams -----
    fn create_team(&self, org: OrgId, name: &str) -> StoreResult<Team>;

    fn team(&self, id: TeamId) -> StoreResult<Option<Team>>;

    fn teams(&self, org: OrgId) -> StoreResult<Vec<Team>>;

    fn rename_team(&self, org: OrgId, id: TeamId, name: &str) -> StoreResult<Team>;

    /// Deletes a team, its member list and the grants it carried.
    fn delete_team(&self, org: OrgId, id: TeamId) -> StoreResult<()>;

    /// Adds a member of the team's organization to the team.
    fn add_team_member(&self, org: OrgId, team: TeamId, user: UserId) -> StoreResult<()>;

    fn remove_team_member(&self, org: OrgId, team: TeamId, user: UserId) -> StoreResult<()>;

    fn team_members(&self, team: TeamId) -> StoreResult<Vec<UserId>>;

    fn teams_of(&self, user: UserId) -> StoreResult<Vec<Team>>;

    // ----- grants -----
    /// Records a grant. The grantee must belong to the grant's organization and the target
    /// mailbox too; nothing here decides whether the granter may give it (that is `access`).
    fn add_grant(&self, new: NewGrant) -> StoreResult<Grant>;

    /// Records a grant that counts only within `validity` (`model::Validity`).
    fn add_grant_within(&self, new: NewGrant, validity: Validity) -> StoreResult<Grant>;

    fn grant(&self, org: OrgId, id: GrantId) -> StoreResult<Option<Grant>>;

    fn grants(&self, org: OrgId) -> StoreResult<Vec<Grant>>;

    /// Ends the time-limited grants whose end has come by `now` (returned, for the audit
    /// log), tells the open sessions of each organization where a grant started or ended
    /// after `since`, and says when the next grant starts or ends.
    fn grant_clock(&self, since: Millis, now: Millis) -> StoreResult<GrantClock>;

    /// Changes the rights and send mode of a grant; revocation reaches open sessions.
    fn update_grant(
        &self,
        org: OrgId,
        id: GrantId,
        rights: Rights,
        send: Option<SendMode>,
    ) -> StoreResult<Grant>;

    fn remove_grant(&self, org: OrgId, id: GrantId) -> StoreResult<()>;

    // ----- partnerships -----
    /// A client organization invites a partner to manage it.
    fn invite_partner(
        &self,
        client: OrgId,
        partner: OrgId,
        scope: PartnerScope,
    ) -> StoreResult<Partnership>;

    fn partnership(&self, id: PartnershipId) -> StoreResult<Option<Partnership>>;

    /// Every partnership in which `org` is the client or the partner.
    fn partnerships_of(&self, org: OrgId) -> StoreResult<Vec<Partnership>>;

    /// Accepts, refuses or ends a partnership, or changes its scope.
    fn update_partnership(
        &self,
        id: PartnershipId,
        status: PartnershipStatus,
        scope: Option<PartnerScope>,
    ) -> StoreResult<Partnership>;

    // ----- invitations -----
    fn create_invitation(&self, invitation: Invitation) -> StoreResult<()>;

    fn invitations(&self, org: OrgId) -> StoreResult<Vec<Invitation>>;

    /// Every pending invitation of every organization (an acceptance names none).
    fn all_invitations(&self) -> StoreResult<Vec<Invitation>>;

    /// Takes an invitation out of the store: it can be used once, and not after it expired.
    fn take_invitation(&self, token_hash: &[u8; 32]) -> StoreResult<Invitation>;

    fn delete_invitation(&self, org: OrgId, token_hash: &[u8; 32]) -> StoreResult<()>;

    /// Puts `renewed` (a new token) in the place of the invitation `old`, in one commit: a
    /// failure leaves the old one valid.
    fn renew_invitation(&self, org: OrgId, old: &[u8; 32], renewed: Invitation) -> StoreResult<()>;

    // ----- what access needs -----
    /// Everything `access` needs to decide for `user`: memberships, teams, the grants that
    /// reach the user directly or through a team, and the accepted partnerships in which one
    /// of the user's organizations is the partner.
    fn user_facts(&self, user: UserId) -> StoreResult<UserFacts>;
}
