//! COPY, MOVE and their UID forms (RFC 3501 §6.4.7, RFC 6851, RFC 4315 COPYUID).

use super::permitted;
use crate::imap::folders::{No, Refusal, noperm};
use crate::imap::identity::Identity;
use crate::imap::session::Session;
use crate::model::*;
use crate::store::{FolderView, Transfer};
use imap_codec::imap_types::sequence::SequenceSet;

impl Session {
    pub(in crate::imap) fn copy(
        &mut self,
        identity: &Identity,
        set: &SequenceSet,
        uid: bool,
        target: &str,
        move_: bool,
    ) -> Result<String, Refusal> {
        let indices = self.indices(set, uid)?;
        let verb = if move_ { "MOVE" } else { "COPY" };
        let (mailbox, folder) = match identity.resolve(&self.services, target)? {
            Some(crate::imap::identity::Target::Folder { mailbox, name }) => {
                let folder = self.services.store.folder_by_name(mailbox.id, &name)?;
                let folder = folder.ok_or_else(|| No("[TRYCREATE] No such folder".into()))?;
                (mailbox, folder)
            }
            _ => return Err(No("[TRYCREATE] No such folder".into())),
        };
        let target_rights = identity.access(&mailbox).rights;
        if !target_rights.contains(Right::Insert) {
            return Err(noperm(Right::Insert, "add messages to that folder"));
        }
        let sel = self.selection()?;
        if move_ && sel.read_only {
            return Err(No("[READ-ONLY] The folder is selected read-only".into()));
        }
        // RFC 6851 §3.3: MOVE needs what STORE \Deleted and EXPUNGE need; name the missing one.
        let needed = [Right::DeleteMessages, Right::Expunge];
        if let Some(missing) = needed
            .into_iter()
            .find(|r| move_ && !sel.rights.contains(*r))
        {
            return Err(noperm(missing, "move messages out of this folder"));
        }
        let uids: Vec<u32> = indices.iter().map(|i| sel.messages[*i].uid).collect();
        let transfer = Transfer {
            from: FolderView {
                mailbox: sel.mailbox.id,
                folder: sel.folder.id,
                seen_user: sel.seen_user,
            },
            to: FolderView {
                mailbox: mailbox.id,
                folder: folder.id,
                seen_user: identity.seen_user(&mailbox),
            },
            uids: &uids,
            permit: &|flags, keywords| permitted(target_rights, flags, keywords),
            remove_source: move_,
        };
        let store = &self.services.store;
        let pairs = crate::imap::waiting_on_disk(|| {
            let pairs = store.transfer(transfer)?;
            store.flush_blocking().map(|_| pairs).map_err(|e| {
                tracing::error!(error = %e, "flush after {verb} failed");
                No("[SERVERBUG] The copy could not be made durable".into())
            })
        })?;
        let source_uids: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let target_uids: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        let code = if source_uids.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {} {} {}] ",
                folder.uidvalidity,
                uid_list(&source_uids),
                uid_list(&target_uids)
            )
        };
        if move_ {
            // RFC 6851 §4.3: COPYUID comes untagged before the EXPUNGEs.
            if !code.is_empty() {
                self.untagged(&format!("OK {}Moved", code));
            }
            self.sync_selection(true);
            return Ok(format!("{verb} completed"));
        }
        Ok(format!("{code}{verb} completed"))
    }
}

pub(in crate::imap) fn uid_list(uids: &[u32]) -> String {
    uids.iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
