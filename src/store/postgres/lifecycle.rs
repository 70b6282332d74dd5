//! Suspending and deleting organizations, and mailbox imports, on PostgreSQL. A suspension is
//! two columns of the organization's row; an import is a row whose progress is rewritten in
//! the transaction of each batch it counts.

use super::PgStore;
use super::directory::{require_mailbox, require_org};
use super::rows::Prepared;
use super::rows::{from_json, id, json, word};
use crate::model::*;
use crate::store::error::{StoreError, StoreResult};
use crate::store::hub::AccessChange;
use crate::store::interface::{
    DirectoryStore, ExportWriter, ImportStore, LifecycleStore, ServerStore,
};
use crate::store::{AppendMessage, Import, ImportSource, ImportState, MessageRecord};
use deadpool_postgres::GenericClient;
use std::path::PathBuf;
use tokio_postgres::Row;

impl LifecycleStore for PgStore {
    fn suspend_organization(
        &self,
        org: OrgId,
        deletion_due: Option<Millis>,
    ) -> StoreResult<Suspension> {
        let suspension = self.block(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            require_org(&tx, org, "FOR UPDATE").await?;
            let row = tx
                .query_one_cached(
                    "UPDATE organizations SET suspended_since = coalesce(suspended_since, $2), \
                     deletion_due = $3 WHERE id = $1 RETURNING suspended_since, deletion_due",
                    &[&id(org.0)?, &now_millis(), &deletion_due],
                )
                .await?;
            self.tell_nodes(&tx, AccessChange::Organization(org))
                .await?;
            tx.commit().await?;
            Ok(Suspension {
                since: row.try_get(0)?,
                deletion_due: row.try_get(1)?,
            })
        })?;
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(suspension)
    }

    fn resume_organization(&self, org: OrgId) -> StoreResult<()> {
        self.transaction(async |tx| {
            require_org(tx, org, "FOR UPDATE").await?;
            let due: Option<Millis> = tx
                .query_one_cached(
                    "SELECT deletion_due FROM organizations WHERE id = $1",
                    &[&id(org.0)?],
                )
                .await?
                .try_get(0)?;
            if due.is_some_and(|due| due <= now_millis()) {
                return Err(StoreError::Invalid {
                    what: "organization",
                    why: format!("{org} is being deleted; it cannot be resumed"),
                });
            }
            tx.execute_cached(
                "UPDATE organizations SET suspended_since = NULL, deletion_due = NULL \
                 WHERE id = $1",
                &[&id(org.0)?],
            )
            .await?;
            self.tell_nodes(tx, AccessChange::Organization(org)).await?;
            Ok(())
        })?;
        self.hub().publish_access(AccessChange::Organization(org));
        Ok(())
    }

    fn suspension(&self, org: OrgId) -> StoreResult<Option<Suspension>> {
        let row = self.query_opt(
            "SELECT suspended_since, deletion_due FROM organizations \
             WHERE id = $1 AND suspended_since IS NOT NULL",
            &[&id(org.0)?],
        )?;
        row.as_ref().map(suspension).transpose()
    }

    fn is_suspended(&self, org: OrgId) -> StoreResult<bool> {
        Ok(self.suspension(org)?.is_some())
    }

    fn suspensions(&self) -> StoreResult<Vec<(OrgId, Suspension)>> {
        let rows = self.query(
            "SELECT suspended_since, deletion_due, id FROM organizations \
             WHERE suspended_since IS NOT NULL ORDER BY id",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                let org = OrgId(super::rows::from_id(row.try_get(2)?, "organization")?);
                Ok((org, suspension(row)?))
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
        // One commit per mailbox, so that an interrupted deletion goes on where it stopped.
        for mailbox in self.mailboxes(org)? {
            self.delete_mailbox(mailbox.id)?;
        }
        let members = self.members(org)?;
        self.transaction(async |tx| {
            // Its domains (with claims and DKIM keys), memberships, teams, grants,
            // partnerships, invitations and imports go with it (ON DELETE CASCADE).
            tx.execute_cached("DELETE FROM organizations WHERE id = $1", &[&id(org.0)?])
                .await?;
            self.tell_nodes(tx, AccessChange::Organization(org)).await?;
            for m in &members {
                self.tell_nodes(tx, AccessChange::User(m.user)).await?;
            }
            Ok(())
        })?;
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
        crate::store::lifecycle::write_export(self.dir(), folder, name, write)
    }
}

impl ImportStore for PgStore {
    fn create_import(&self, mailbox: MailboxId, source: ImportSource) -> StoreResult<Import> {
        self.transaction(async |tx| {
            let m = require_mailbox(tx, mailbox, "FOR SHARE").await?;
            let import_id: i64 = tx
                .query_one_cached("SELECT nextval('ids')", &[])
                .await?
                .try_get(0)?;
            let now = now_millis();
            let import = Import {
                id: ImportId(super::rows::from_id(import_id, "import")?),
                org: m.org,
                mailbox,
                source: source.clone(),
                state: ImportState::Running,
                stopped_because: None,
                created: now,
                run_started: now,
                run_base: (0, 0),
                finished: None,
                folders: Vec::new(),
                failed: 0,
                failures: Vec::new(),
                messages: 0,
                bytes: 0,
            };
            write_import(tx, &import, Some(self.inner.home)).await?;
            Ok(import)
        })
    }

    fn import(&self, import_id: ImportId) -> StoreResult<Option<Import>> {
        let row = self.query_opt(
            "SELECT progress FROM imports WHERE id = $1",
            &[&id(import_id.0)?],
        )?;
        row.as_ref().map(import).transpose()
    }

    fn imports_of(&self, mailbox: MailboxId) -> StoreResult<Vec<Import>> {
        let rows = self.query(
            "SELECT progress FROM imports WHERE mailbox = $1 ORDER BY id",
            &[&id(mailbox.0)?],
        )?;
        rows.iter().map(import).collect()
    }

    fn imports(&self) -> StoreResult<Vec<Import>> {
        let rows = self.query("SELECT progress FROM imports ORDER BY id", &[])?;
        rows.iter().map(import).collect()
    }

    fn save_import(&self, record: &Import) -> StoreResult<()> {
        self.block(async {
            let client = self.client().await?;
            write_import(&client, record, Some(self.inner.home)).await
        })
    }

    fn import_batch(
        &self,
        record: &Import,
        folder: FolderId,
        messages: &[(Vec<u8>, AppendMessage)],
    ) -> StoreResult<Vec<MessageRecord>> {
        let targets = [(record.mailbox, folder)];
        let items: Vec<_> = messages
            .iter()
            .map(|(raw, meta)| (&targets[..], raw.as_slice(), meta.clone()))
            .collect();
        self.store_messages(&items, Some(record))
    }

    /// Only the imports this node ran (by its lasting name, `PgStore::home`) or that no node
    /// claims (copied from sled): another node's are its own, running or not.
    fn interrupt_running_imports(&self) -> StoreResult<usize> {
        let left = self.query(
            "SELECT progress FROM imports \
             WHERE state = 'running' AND (runner IS NULL OR runner = $1)",
            &[&self.inner.home],
        )?;
        for row in &left {
            let mut record = import(row)?;
            record.interrupt("the server stopped during the import");
            self.save_import(&record)?;
        }
        Ok(left.len())
    }

    fn delete_import(&self, import_id: ImportId) -> StoreResult<()> {
        self.execute("DELETE FROM imports WHERE id = $1", &[&id(import_id.0)?])?;
        Ok(())
    }
}

/// Writes an import's row as `record` has it; its mailbox must still be there.
/// `runner`: the node that runs it (`PgStore::home`), none for a copied record.
pub(super) async fn write_import(
    client: &impl GenericClient,
    record: &Import,
    runner: Option<i64>,
) -> StoreResult<()> {
    let written = client
        .execute_cached(
            "INSERT INTO imports (id, org, mailbox, state, progress, runner) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM mailboxes WHERE id = $3) \
             ON CONFLICT (id) DO UPDATE SET state = $4, progress = $5, runner = $6",
            &[
                &id(record.id.0)?,
                &id(record.org.0)?,
                &id(record.mailbox.0)?,
                &word(&record.state)?,
                &json(record)?,
                &runner,
            ],
        )
        .await?;
    match written {
        0 => Err(StoreError::not_found(format!("mailbox {}", record.mailbox))),
        _ => Ok(()),
    }
}

fn import(row: &Row) -> StoreResult<Import> {
    from_json(row.try_get(0)?, "import")
}

fn suspension(row: &Row) -> StoreResult<Suspension> {
    Ok(Suspension {
        since: row.try_get(0)?,
        deletion_due: row.try_get(1)?,
    })
}
