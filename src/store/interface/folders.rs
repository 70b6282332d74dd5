//! The store's interface for folders, messages, per-user \\Seen, subscriptions and quota.

use crate::mail::MessageSummary;
use crate::model::*;
use crate::store::spool::Loaded;
use crate::store::*;

use std::collections::BTreeMap;

/// Folders, messages, per-user `\Seen`, subscriptions and quota usage.
pub trait FolderStore {
    fn create_folder(
        &self,
        mailbox: MailboxId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<Folder>;

    fn folder(&self, mailbox: MailboxId, id: FolderId) -> StoreResult<Option<Folder>>;

    /// The folder named `name` (`INBOX` in any case is the inbox, RFC 3501 §5.1).
    fn folder_by_name(&self, mailbox: MailboxId, name: &str) -> StoreResult<Option<Folder>>;

    /// Where the mailbox keeps junk: its `\\Junk` folder, else one named Junk, else a Junk
    /// folder made now with that attribute (RFC 6154) for mail judged spam.
    fn junk_folder(&self, mailbox: MailboxId) -> StoreResult<Folder> {
        let folders = self.folders(mailbox)?;
        if let Some(junk) = folders
            .into_iter()
            .find(|f| f.special_use == Some(SpecialUse::Junk))
        {
            return Ok(junk);
        }
        if let Some(named) = self.folder_by_name(mailbox, "Junk")? {
            return Ok(named);
        }
        match self.create_folder(mailbox, "Junk", Some(SpecialUse::Junk)) {
            // Made meanwhile by another delivery.
            Err(StoreError::FolderExists(_)) => self
                .folder_by_name(mailbox, "Junk")?
                .ok_or_else(|| StoreError::not_found(format!("Junk of mailbox {mailbox}"))),
            other => other,
        }
    }

    fn folders(&self, mailbox: MailboxId) -> StoreResult<Vec<Folder>>;

    /// Renames a folder and its children (`a` → `b` also moves `a/x` to `b/x`). The UIDs and
    /// UIDVALIDITY of the folders are kept: their messages did not change.
    fn rename_folder(&self, mailbox: MailboxId, from: &str, to: &str) -> StoreResult<()>;

    /// Deletes one folder with its messages (children stay, RFC 3501 §6.3.4).
    fn delete_folder(&self, mailbox: MailboxId, id: FolderId) -> StoreResult<()>;

    // ----- messages -----
    /// Stores one message in one folder. See `deliver` for several at once.
    fn append(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        raw: &[u8],
        meta: AppendMessage,
    ) -> StoreResult<MessageRecord>;

    /// Stores one message in several folders (of several mailboxes): the body once, a record
    /// in each, all in one transaction. The caller flushes before acknowledging.
    fn deliver(
        &self,
        targets: &[(MailboxId, FolderId)],
        raw: &[u8],
        meta: AppendMessage,
    ) -> StoreResult<Vec<MessageRecord>>;

    /// [`Store::deliver`] of a message that came in through the spool: a spooled one's file
    /// becomes its blob, unless the same content is stored already.
    fn deliver_loaded(
        &self,
        targets: &[(MailboxId, FolderId)],
        message: &Loaded,
        meta: AppendMessage,
    ) -> StoreResult<Vec<MessageRecord>>;

    /// [`Store::append`] of a message that came in through the spool.
    fn append_loaded(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        message: &Loaded,
        meta: AppendMessage,
    ) -> StoreResult<MessageRecord>;

    /// [`Store::append_loaded`] of several messages into one folder at once: all stored, or
    /// none (RFC 3502 MULTIAPPEND); their records in the given order.
    fn append_all(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        messages: &[(&Loaded, AppendMessage)],
    ) -> StoreResult<Vec<MessageRecord>>;

    /// The messages of a folder in UID order.
    fn messages(&self, mailbox: MailboxId, folder: FolderId) -> StoreResult<Vec<MessageRecord>>;

    /// The messages of a folder whose UIDs lie in `first..=last`, in UID order: one range
    /// scan, for FETCH and STORE over many messages.
    fn messages_between(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        first: u32,
        last: u32,
    ) -> StoreResult<Vec<MessageRecord>>;

    fn message(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uid: u32,
    ) -> StoreResult<Option<MessageRecord>>;

    /// Removes messages for good; returns the UIDs that were there.
    fn expunge(&self, mailbox: MailboxId, folder: FolderId, uids: &[u32]) -> StoreResult<Vec<u32>>;

    /// EXPUNGE: removes those of `uids` still flagged `\Deleted` when the lock is taken (another
    /// session may have cleared the flag since the caller looked).
    fn expunge_deleted(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        uids: &[u32],
    ) -> StoreResult<Vec<u32>>;

    /// RFC 3501 §2.3.2 \Recent: claims for the calling session every message below `uidnext`
    /// that no session has claimed; returns the lowest UID it claimed (those at or above it
    /// are recent for the caller alone).
    fn claim_recent(&self, mailbox: MailboxId, folder: FolderId, uidnext: u32) -> StoreResult<u32>;

    /// The lowest UID no session has claimed as recent, without claiming.
    fn recent_floor(&self, mailbox: MailboxId, folder: FolderId) -> StoreResult<u32>;

    /// Removes the files of blobs that lost their last reference (marked `FREED` by that
    /// change); returns how many went. A file goes only once "unreferenced" is on disk (a
    /// crash must not bring back records whose bodies are gone) and still true under the lock
    /// (a delivery of the same content may have taken it up again): hence a flush without the
    /// lock, which does the work, and one under it, which has little left to write. One sweep
    /// serves every expunge since the last; the server runs one a second
    /// (`net::sweep_freed_blobs`), and one at open takes what a crash left.
    fn sweep_freed_blobs(&self) -> StoreResult<usize>;

    /// The message's bytes.
    fn read_message(&self, blob: &BlobId) -> StoreResult<bytes::Bytes>;

    /// Bytes `range` of the message (fewer where it ends first), reading only what holds
    /// them: a partial FETCH of a large message, or of one attachment, reads no more.
    fn read_message_range(
        &self,
        blob: &BlobId,
        range: std::ops::Range<u64>,
    ) -> StoreResult<bytes::Bytes>;

    /// What delivery parsed of the message: envelope, body structure, header fields.
    fn summary(&self, blob: &BlobId) -> StoreResult<MessageSummary>;

    // ----- quota -----
    /// Bytes of mail the mailbox holds.
    fn usage(&self, mailbox: MailboxId) -> StoreResult<u64>;

    // ----- per-user state -----
    /// The UIDs `user` has seen in a folder of a mailbox that keeps `\Seen` per user.
    fn user_seen(
        &self,
        mailbox: MailboxId,
        folder: FolderId,
        user: UserId,
    ) -> StoreResult<Vec<u32>>;

    /// Records `who`'s choice on a folder name of `mailbox`: subscribed, or explicitly not.
    /// Subscriptions name folders, not records: they may name folders that do not exist and
    /// outlive a DELETE (RFC 3501 §6.3.6, §6.3.4). An explicit "not" overrides the default
    /// subscription of the standard folders (see `imap::list`).
    fn set_subscription(
        &self,
        who: Subscriber,
        mailbox: MailboxId,
        name: &str,
        on: bool,
    ) -> StoreResult<()>;

    /// The choices `who` made on `mailbox`'s folder names: name → subscribed.
    fn subscriptions(
        &self,
        who: Subscriber,
        mailbox: MailboxId,
    ) -> StoreResult<BTreeMap<String, bool>>;
}
