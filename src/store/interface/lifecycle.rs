//! The store's interface for suspending, resuming, exporting and deleting organizations.

use crate::model::*;
use crate::store::*;
use std::io::Write;
use std::path::PathBuf;

/// What [`LifecycleStore::save_export`] writes an export's content with.
pub type ExportWriter<'a> = Box<dyn FnOnce(&mut dyn Write) -> StoreResult<()> + 'a>;

/// Suspending, resuming, exporting and deleting organizations.
pub trait LifecycleStore {
    /// Suspends `org` (kept as it is when already suspended, but for `deletion_due`, which
    /// this call sets or clears). Open sessions are told through the hub.
    fn suspend_organization(
        &self,
        org: OrgId,
        deletion_due: Option<Millis>,
    ) -> StoreResult<Suspension>;

    /// Lifts a suspension, and with it a deletion set for later; refused once the deletion is
    /// due (it may be under way: its mail exported, its mailboxes going).
    fn resume_organization(&self, org: OrgId) -> StoreResult<()>;

    fn suspension(&self, org: OrgId) -> StoreResult<Option<Suspension>>;

    fn is_suspended(&self, org: OrgId) -> StoreResult<bool>;

    /// Every suspended organization.
    fn suspensions(&self) -> StoreResult<Vec<(OrgId, Suspension)>>;

    /// Deletes an organization set for deletion: each mailbox with its mail (one commit each,
    /// so an interrupted deletion goes on where it stopped), then in one commit its domains,
    /// memberships, teams, grants, partnerships, invitations, suspension and record. Its
    /// users stay (a user may belong elsewhere; one left in none can still sign in to the
    /// admin API and be invited again). Refused for one not set for deletion, so that no
    /// slip deletes a live organization.
    fn delete_organization(&self, org: OrgId) -> StoreResult<()>;

    /// Writes `exports/<folder>/<name>` under the data directory with `write`, durably
    /// (written aside, synced, renamed): what an organization's deletion leaves of its mail.
    /// `write` gets the file as it goes, so an export of any size holds no more than one
    /// message in memory. Names are single path components.
    fn save_export(
        &self,
        folder: &str,
        name: &str,
        write: ExportWriter<'_>,
    ) -> StoreResult<PathBuf>;
}
