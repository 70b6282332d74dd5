//! Suspending and deleting organizations (issue 12). A suspension is a record of its own, so
//! an organization's record keeps its layout; the access facts and the login check read it.

use super::codec::{self, id_at, key, key_str};
use super::error::{StoreError, StoreResult};
use super::hub::AccessChange;
use super::interface::*;
use super::{Changes, SledStore};
use crate::model::*;
use std::path::PathBuf;

impl LifecycleStore for SledStore {
    fn suspend_organization(
        &self,
        org: OrgId,
        deletion_due: Option<Millis>,
    ) -> StoreResult<Suspension> {
        let guard = self.lock();
        self.require_org(org)?;
        let suspension = Suspension {
            since: self.suspension(org)?.map_or_else(now_millis, |s| s.since),
            deletion_due,
        };
        let mut changes = Changes::default();
        changes.put_model(key(codec::SUSPENDED, &[org.0]), &suspension)?;
        self.commit(changes)?;
        drop(guard);
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(suspension)
    }

    fn resume_organization(&self, org: OrgId) -> StoreResult<()> {
        let guard = self.lock();
        self.require_org(org)?;
        if let Some(due) = self.suspension(org)?.and_then(|s| s.deletion_due)
            && due <= now_millis()
        {
            return Err(StoreError::Invalid {
                what: "organization",
                why: format!("{org} is being deleted; it cannot be resumed"),
            });
        }
        let mut changes = Changes::default();
        changes.del_model(key(codec::SUSPENDED, &[org.0]));
        self.commit(changes)?;
        drop(guard);
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(())
    }

    fn suspension(&self, org: OrgId) -> StoreResult<Option<Suspension>> {
        self.get_model(&key(codec::SUSPENDED, &[org.0]), "suspension")
    }

    fn is_suspended(&self, org: OrgId) -> StoreResult<bool> {
        Ok(self
            .inner
            .model
            .contains_key(key(codec::SUSPENDED, &[org.0]))?)
    }

    fn suspensions(&self) -> StoreResult<Vec<(OrgId, Suspension)>> {
        self.inner
            .model
            .scan_prefix([codec::SUSPENDED])
            .map(|item| {
                let (k, v) = item?;
                Ok((OrgId(id_at(&k, 0)?), codec::decode(&v, "suspension")?))
            })
            .collect()
    }

    fn delete_organization(&self, org: OrgId) -> StoreResult<()> {
        if self.suspension(org)?.and_then(|s| s.deletion_due).is_none() {
            return Err(StoreError::Invalid {
                what: "organization",
                why: format!("{org} is not set for deletion"),
            });
        }
        for mailbox in self.mailboxes(org)? {
            self.delete_mailbox(mailbox.id)?;
        }
        let guard = self.lock();
        let members = self.members(org)?;
        let mut changes = Changes::default();
        for domain in self.domains(org)? {
            changes.del_model(key_str(codec::DOMAIN, &[], &domain.name));
            changes.del_model(super::claims::claim_key(&domain.name));
            self.drop_dkim_keys(&domain.name, &mut changes)?;
        }
        for m in &members {
            changes.del_model(key(codec::MEMBER, &[org.0, m.user.0]));
            changes.del_model(key(codec::USER_ORG, &[m.user.0, org.0]));
        }
        for team in self.teams(org)? {
            changes.del_model(key(codec::TEAM, &[team.id.0]));
            for user in self.team_members(team.id)? {
                changes.del_model(key(codec::TEAM_MEMBER, &[team.id.0, user.0]));
                changes.del_model(key(codec::USER_TEAM, &[user.0, team.id.0]));
            }
        }
        for grant in self.grants(org)? {
            changes.del_model(key(codec::GRANT, &[org.0, grant.id.0]));
        }
        for p in self.partnerships_of(org)? {
            changes.del_model(key(codec::PARTNERSHIP, &[p.id.0]));
        }
        for invitation in self.invitations(org)? {
            let mut k = vec![codec::INVITATION];
            k.extend_from_slice(&invitation.token_hash);
            changes.del_model(k);
        }
        changes.del_model(key(codec::SUSPENDED, &[org.0]));
        changes.del_model(key(codec::ORG, &[org.0]));
        self.commit(changes)?;
        drop(guard);
        self.hub().publish_access(AccessChange::Organization(org));
        for m in members {
            self.hub().publish_access(AccessChange::User(m.user));
        }
        Ok(())
    }

    fn save_export(
        &self,
        folder: &str,
        name: &str,
        write: ExportWriter<'_>,
    ) -> StoreResult<PathBuf> {
        write_export(&self.inner.dir, folder, name, write)
    }
}

/// Writes `exports/<folder>/<name>` under `data_dir` (`LifecycleStore::save_export`): on
/// local disk whichever backend keeps the rest.
pub(super) fn write_export(
    data_dir: &std::path::Path,
    folder: &str,
    name: &str,
    write: ExportWriter<'_>,
) -> StoreResult<PathBuf> {
    for part in [folder, name] {
        if part.is_empty() || part.contains(['/', '\\']) || part.starts_with('.') {
            return Err(StoreError::Invalid {
                what: "export name",
                why: format!("{part:?} is not a plain file name"),
            });
        }
    }
    let dir = data_dir.join("exports").join(folder);
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.part"));
    let io = |e| StoreError::io(&path, e);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    write(&mut file)?;
    let file = file.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(path)
}
