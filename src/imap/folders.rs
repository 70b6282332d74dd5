//! Commands of the authenticated state (RFC 3501 §6.3): CREATE, DELETE, RENAME, STATUS,
//! NAMESPACE and QUOTA, and their dispatch (SELECT is in `selecting`, LIST in `list`, APPEND
//! in `append`); the typed refusal every handler answers with.

use super::identity::{Identity, SEP, SHARED, Target};
use super::session::{Session, State};
use super::wire;
use crate::model::*;
use crate::store::spool::Loaded;
use crate::store::{Flags, Folder, FolderView, StoreError, Transfer};
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as WireMailbox};
use imap_codec::imap_types::status::StatusDataItemName;

/// Why a command is refused, with the response text: `NO` (it cannot be done: a missing
/// folder, a right lacking) or `BAD` (it is not a valid command here).
#[derive(Debug)]
pub(super) enum Refusal {
    No(String),
    Bad(String),
}

pub(super) use Refusal::{Bad, No};

impl Refusal {
    /// The tagged status and text.
    pub fn answer(&self) -> (&'static str, &str) {
        match self {
            No(text) => ("NO", text),
            Bad(text) => ("BAD", text),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        match e {
            StoreError::NotFound(_) => No("[NONEXISTENT] No such folder".into()),
            StoreError::FolderExists(_) => {
                No("[ALREADYEXISTS] A folder with that name exists".into())
            }
            StoreError::OverQuota { .. } => No("[OVERQUOTA] The mailbox is over its quota".into()),
            StoreError::Invalid { why, .. } => No(format!("[CANNOT] {why}")),
            other => {
                tracing::error!(error = %other, "store failure in IMAP");
                No("[SERVERBUG] Internal error; see the server log".into())
            }
        }
    }
}

pub(super) fn noperm(right: Right, what: &str) -> Refusal {
    No(format!(
        "[NOPERM] You lack the right '{}' to {what}",
        right.letter()
    ))
}

/// The folder name a client gave, decoded from modified UTF-7 (RFC 3501 §5.1.3).
pub(super) fn mailbox_name(m: &WireMailbox<'_>, utf8: bool) -> Result<String, Refusal> {
    match m {
        WireMailbox::Inbox => Ok("INBOX".into()),
        // RFC 6855 §3: once UTF8=ACCEPT is enabled, names come in UTF-8, `&` and all.
        WireMailbox::Other(other) if utf8 => Ok(String::from_utf8_lossy(other.as_ref()).into()),
        WireMailbox::Other(other) => from_wire(&String::from_utf8_lossy(other.as_ref())),
    }
}

/// A name that is not valid modified UTF-7 is refused with NO, as Dovecot does: it is a
/// string, so not a syntax error, and some clients (imaptest among them) drop the
/// connection after an unexpected BAD.
fn from_wire(name: &str) -> Result<String, Refusal> {
    // Modified UTF-7 is ASCII: 8-bit text is UTF-8, which only a client that enabled
    // UTF8=ACCEPT may send (RFC 6855 §3).
    if !name.is_ascii() {
        return Err(Bad(format!(
            "{name:?}: a folder name in UTF-8 needs ENABLE UTF8=ACCEPT (RFC 6855 §3)"
        )));
    }
    super::utf7::decode(name).ok_or_else(|| {
        No(format!(
            "[CANNOT] {name:?} is not a valid modified UTF-7 folder name (RFC 3501 §5.1.3)"
        ))
    })
}

impl Session {
    pub(super) async fn authenticated_command(
        &mut self,
        tag: Tag<'static>,
        body: CommandBody<'static>,
    ) {
        let name = body.name();
        let Some(identity) = self.identity().cloned() else {
            self.tagged(&tag, "BAD", &format!("{name} needs a login first"));
            return;
        };
        let result = match body {
            CommandBody::Select {
                mailbox,
                parameters,
            } => mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.select(&identity, &name, false, &parameters)),
            CommandBody::Examine {
                mailbox,
                parameters,
            } => mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.select(&identity, &name, true, &parameters)),
            CommandBody::Create { mailbox } => mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.create(&identity, &name)),
            CommandBody::Delete { mailbox } => mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.delete(&identity, &name)),
            CommandBody::Rename { from, to } => mailbox_name(&from, self.reporting.utf8)
                .and_then(|from| Ok((from, mailbox_name(&to, self.reporting.utf8)?)))
                .and_then(|(from, to)| self.rename(&identity, &from, &to)),
            CommandBody::Subscribe { mailbox } => mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.subscribe(&identity, &name, true)),
            CommandBody::Unsubscribe { mailbox } => mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.subscribe(&identity, &name, false)),
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => mailbox_name(&reference, self.reporting.utf8)
                .and_then(|r| Ok((r, pattern(&mailbox_wildcard)?)))
                .and_then(|(r, p)| self.list(&identity, &r, &p, false)),
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => mailbox_name(&reference, self.reporting.utf8)
                .and_then(|r| Ok((r, pattern(&mailbox_wildcard)?)))
                .and_then(|(r, p)| self.list(&identity, &r, &p, true)),
            CommandBody::Status {
                mailbox,
                item_names,
            } => mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.status(&identity, &name, &item_names)),
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                // A spooled message stands in for the empty literal its command was given.
                let spooled = self.spooled_messages.pop().map(|(_, m)| m);
                let message = spooled.unwrap_or_else(|| {
                    Loaded::from(match &message {
                        LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
                        LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
                    })
                });
                let date = date.map(|d| d.as_ref().timestamp_millis());
                match mailbox_name(&mailbox, self.reporting.utf8) {
                    Ok(name) => self.append(&identity, &name, &flags, date, message).await,
                    Err(no) => Err(no),
                }
            }
            CommandBody::Namespace => {
                let shared = match identity {
                    Identity::User { .. } => format!("((\"{SHARED}{SEP}\" \"{SEP}\"))"),
                    _ => "NIL".into(),
                };
                self.untagged(&format!("NAMESPACE ((\"\" \"{SEP}\")) NIL {shared}"));
                Ok("NAMESPACE completed".into())
            }
            CommandBody::GetQuotaRoot { mailbox } => mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.quota_root(&identity, &name)),
            CommandBody::GetQuota { root } => {
                self.quota(&identity, &String::from_utf8_lossy(root.as_ref()))
            }
            CommandBody::SetQuota { .. } => Err(No(
                "[NOPERM] Quotas are set by the organization's admins (admin API)".into(),
            )),
            CommandBody::Check => {
                self.sync_selection(true);
                Ok("CHECK completed".into())
            }
            body => {
                self.selected_command(tag, body).await;
                return;
            }
        };
        // RFC 3501 §7: what other sessions changed reaches this one at any command; EXPUNGE
        // may go with all but FETCH, STORE and SEARCH (§7.4.1).
        self.sync_selection(true);
        self.finish(&tag, result);
    }

    /// Sends what changed in the selected folder since the last command.
    pub(super) fn sync_selection(&mut self, allow_expunge: bool) {
        let store = self.services.store.clone();
        let reporting = self.reporting;
        let State::Selected(_, sel) = &mut self.state else {
            return;
        };
        match sel.sync(&store, allow_expunge, reporting) {
            Ok(lines) => lines.iter().for_each(|l| self.untagged(l)),
            Err(e) => tracing::error!(error = %e, "syncing the selected folder failed"),
        }
    }

    /// The folder `name` designates and the session's rights on its mailbox.
    pub(super) fn folder(
        &self,
        identity: &Identity,
        name: &str,
    ) -> Result<(Mailbox, Folder, Rights), Refusal> {
        let missing = || No(format!("[NONEXISTENT] No folder named {name:?}"));
        match identity.resolve(&self.services, name)? {
            Some(Target::Folder { mailbox, name }) => {
                let rights = identity.access(&mailbox).rights;
                if !rights.contains(Right::Lookup) && !rights.contains(Right::Read) {
                    return Err(missing());
                }
                let folder = self
                    .services
                    .store
                    .folder_by_name(mailbox.id, &name)?
                    .ok_or_else(missing)?;
                Ok((mailbox, folder, rights))
            }
            Some(Target::UserInbox) => Err(No(
                "[CANNOT] Your own INBOX holds no mail: your mailboxes are under Shared/".into(),
            )),
            Some(Target::NamespaceRoot) => Err(No("[CANNOT] That name only groups folders".into())),
            None if identity.names_own_org_mailbox(&self.services, name)? => Err(noperm(
                Right::Lookup,
                "see this mailbox (no grant gives access to it)",
            )),
            None => Err(missing()),
        }
    }

    /// The mailbox and folder name `name` would be created as, with the right checked.
    fn creatable(
        &self,
        identity: &Identity,
        name: &str,
        right: Right,
        what: &str,
    ) -> Result<(Mailbox, String), Refusal> {
        match identity.resolve(&self.services, name)? {
            Some(Target::Folder { mailbox, name }) => {
                if !identity.access(&mailbox).may(right) {
                    return Err(noperm(right, what));
                }
                Ok((mailbox, name))
            }
            _ => Err(No(
                "[CANNOT] Folders can only be made inside a mailbox".into()
            )),
        }
    }

    fn create(&mut self, identity: &Identity, name: &str) -> Result<String, Refusal> {
        // RFC 3501 §6.3.3: a trailing separator only says the name is meant to have children.
        let name = name.trim_end_matches(SEP);
        let (mailbox, name) =
            self.creatable(identity, name, Right::CreateFolder, "create folders")?;
        // Missing parents are made too (RFC 3501 §6.3.3).
        let mut path = String::new();
        for level in name.split(SEP) {
            if !path.is_empty() {
                path.push(SEP);
            }
            path.push_str(level);
            if path != name
                && self
                    .services
                    .store
                    .folder_by_name(mailbox.id, &path)?
                    .is_none()
            {
                self.services.store.create_folder(mailbox.id, &path, None)?;
            }
        }
        let folder = self.services.store.create_folder(mailbox.id, &name, None)?;
        // RFC 8474 §4.1.
        let id = super::objects::mailbox_id(folder.id);
        Ok(format!("[MAILBOXID ({id})] CREATE completed"))
    }

    fn delete(&mut self, identity: &Identity, name: &str) -> Result<String, Refusal> {
        let (mailbox, folder, rights) = self.folder(identity, name)?;
        if !rights.contains(Right::DeleteFolder) {
            return Err(noperm(Right::DeleteFolder, "delete folders"));
        }
        if folder.name == "INBOX" {
            return Err(No("[CANNOT] INBOX cannot be deleted".into()));
        }
        if let State::Selected(_, sel) = &self.state
            && sel.folder.id == folder.id
        {
            self.state = State::Authenticated(identity.clone());
        }
        self.services.store.delete_folder(mailbox.id, folder.id)?;
        Ok("DELETE completed".into())
    }

    fn rename(&mut self, identity: &Identity, from: &str, to: &str) -> Result<String, Refusal> {
        let (mailbox, folder, rights) = self.folder(identity, from)?;
        if !rights.contains(Right::DeleteFolder) {
            return Err(noperm(Right::DeleteFolder, "rename this folder"));
        }
        let (target_mailbox, to) =
            self.creatable(identity, to, Right::CreateFolder, "create folders")?;
        if target_mailbox.id != mailbox.id {
            return Err(No("[CANNOT] Folders cannot move between mailboxes".into()));
        }
        if folder.name == "INBOX" {
            // RFC 3501 §6.3.5: renaming INBOX moves its messages to the new folder and leaves
            // INBOX empty.
            let target = self.services.store.create_folder(mailbox.id, &to, None)?;
            let uids: Vec<u32> = (self.services.store.messages(mailbox.id, folder.id)?)
                .iter()
                .map(|r| r.uid)
                .collect();
            let view = |folder: FolderId| FolderView {
                mailbox: mailbox.id,
                folder,
                seen_user: identity.seen_user(&mailbox),
            };
            let store = &self.services.store;
            super::waiting_on_disk(|| {
                store.transfer(Transfer {
                    from: view(folder.id),
                    to: view(target.id),
                    uids: &uids,
                    permit: &|flags, keywords| (flags, keywords),
                    remove_source: true,
                })?;
                store.flush_blocking()
            })?;
        } else {
            self.services
                .store
                .rename_folder(mailbox.id, &folder.name, &to)?;
        }
        Ok("RENAME completed".into())
    }

    pub(super) fn status(
        &mut self,
        identity: &Identity,
        name: &str,
        items: &[StatusDataItemName],
    ) -> Result<String, Refusal> {
        if matches!(
            identity.resolve(&self.services, name)?,
            Some(Target::UserInbox)
        ) {
            self.untagged("STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1 UNSEEN 0 RECENT 0)");
            return Ok("STATUS completed".into());
        }
        let (mailbox, folder, rights) = self.folder(identity, name)?;
        if !rights.contains(Right::Read) {
            return Err(noperm(Right::Read, "read this folder's status"));
        }
        let records = self.services.store.messages(mailbox.id, folder.id)?;
        let mut parts = Vec::new();
        // What `objects` put in for imap-codec when MAILBOXID came alone is not answered.
        let items = if self.object_items.alone {
            &[][..]
        } else {
            items
        };
        for item in items {
            let value = match item {
                StatusDataItemName::Messages => format!("MESSAGES {}", records.len()),
                StatusDataItemName::Recent => {
                    let floor = self.services.store.recent_floor(mailbox.id, folder.id)?;
                    let recent = records.iter().filter(|r| r.uid >= floor).count();
                    format!("RECENT {recent}")
                }
                StatusDataItemName::UidNext => format!("UIDNEXT {}", folder.uidnext),
                // RFC 8438: the folder's size, as the sum of RFC822.SIZE.
                StatusDataItemName::Size => {
                    format!("SIZE {}", records.iter().map(|r| r.size).sum::<u64>())
                }
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", folder.uidvalidity),
                StatusDataItemName::HighestModSeq => {
                    format!("HIGHESTMODSEQ {}", folder.highestmodseq)
                }
                StatusDataItemName::Unseen => {
                    // Where \\Seen is kept per user, the user's own count.
                    let own_seen: Option<std::collections::HashSet<u32>> =
                        match identity.seen_user(&mailbox) {
                            Some(user) => Some(
                                self.services
                                    .store
                                    .user_seen(mailbox.id, folder.id, user)?
                                    .into_iter()
                                    .collect(),
                            ),
                            None => None,
                        };
                    let seen = |r: &crate::store::MessageRecord| match &own_seen {
                        Some(set) => set.contains(&r.uid),
                        None => r.flags.contains(Flags::SEEN),
                    };
                    let unseen = records.iter().filter(|r| !seen(r)).count();
                    format!("UNSEEN {unseen}")
                }
                // RFC 9051 §6.3.11: the messages marked \\Deleted.
                StatusDataItemName::Deleted => {
                    let deleted = records.iter().filter(|r| r.flags.contains(Flags::DELETED));
                    format!("DELETED {}", deleted.count())
                }
                other => {
                    return Err(No(format!(
                        "[CANNOT] STATUS item {other:?} is not supported"
                    )));
                }
            };
            parts.push(value);
        }
        if self.object_items.mailbox_id {
            // RFC 8474 §4.3.
            let id = super::objects::mailbox_id(folder.id);
            parts.push(format!("MAILBOXID ({id})"));
        }
        let mut line = b"STATUS ".to_vec();
        wire::folder_name(
            &mut line,
            &identity.display_name(&mailbox, &folder.name),
            self.reporting.utf8,
        );
        line.extend_from_slice(format!(" ({})", parts.join(" ")).as_bytes());
        self.untagged(&String::from_utf8_lossy(&line));
        Ok("STATUS completed".into())
    }
}

impl Session {
    /// RFC 9208 §4.3.2: the quota root of a folder is its mailbox, named by its address.
    fn quota_root(&mut self, identity: &Identity, name: &str) -> Result<String, Refusal> {
        if matches!(
            identity.resolve(&self.services, name)?,
            Some(Target::UserInbox)
        ) {
            self.untagged("QUOTAROOT INBOX");
            return Ok("GETQUOTAROOT completed".into());
        }
        let (mailbox, folder, _) = self.folder(identity, name)?;
        let mut line = b"QUOTAROOT ".to_vec();
        wire::folder_name(
            &mut line,
            &identity.display_name(&mailbox, &folder.name),
            self.reporting.utf8,
        );
        line.push(b' ');
        wire::astring(&mut line, &mailbox.address);
        self.untagged(&String::from_utf8_lossy(&line));
        self.quota_line(&mailbox)?;
        Ok("GETQUOTAROOT completed".into())
    }

    fn quota(&mut self, identity: &Identity, root: &str) -> Result<String, Refusal> {
        let missing = || No(format!("[NONEXISTENT] No quota root {root:?}"));
        let mailbox = self
            .services
            .store
            .mailbox_by_address(root)?
            .ok_or_else(missing)?;
        if identity.access(&mailbox).rights.is_empty() {
            return Err(missing());
        }
        self.quota_line(&mailbox)?;
        Ok("GETQUOTA completed".into())
    }

    /// `* QUOTA <root> (STORAGE <used> <limit>)` in KiB; no resource when unlimited.
    fn quota_line(&mut self, mailbox: &Mailbox) -> Result<(), Refusal> {
        let used = self.services.store.usage(mailbox.id)?.div_ceil(1024);
        let resources = match mailbox.quota_bytes {
            0 => String::new(),
            limit => format!("STORAGE {used} {}", limit / 1024),
        };
        let mut line = b"QUOTA ".to_vec();
        wire::astring(&mut line, &mailbox.address);
        line.extend_from_slice(format!(" ({resources})").as_bytes());
        self.untagged(&String::from_utf8_lossy(&line));
        Ok(())
    }
}

/// Flags as the store keeps them: system flags as bits, the rest as keywords.
/// The system flags and keywords of a flag list. `\Recent` and other backslash flags are
/// not keywords: RFC 3501 §2.3.2 makes \Recent the server's, and no other is defined.
pub(super) fn store_flags(flags: &[Flag<'_>]) -> Result<(Flags, Vec<String>), Refusal> {
    let mut bits = Flags::default();
    let mut keywords: Vec<String> = Vec::new();
    for flag in flags {
        match flag {
            Flag::Seen => bits = bits.with(Flags::SEEN, true),
            Flag::Answered => bits = bits.with(Flags::ANSWERED, true),
            Flag::Flagged => bits = bits.with(Flags::FLAGGED, true),
            Flag::Deleted => bits = bits.with(Flags::DELETED, true),
            Flag::Draft => bits = bits.with(Flags::DRAFT, true),
            Flag::Extension(_) => {
                let text = format!("{flag} cannot be stored (RFC 3501 §2.3.2)");
                return Err(Bad(text));
            }
            other => {
                let k = other.to_string();
                if !keywords.iter().any(|x| x.eq_ignore_ascii_case(&k)) {
                    keywords.push(k);
                }
            }
        }
    }
    Ok((bits, keywords))
}

/// A LIST pattern: one that is not valid modified UTF-7 is kept as it came and matches
/// no folder.
fn pattern(m: &ListMailbox<'_>) -> Result<String, Refusal> {
    let wire = match m {
        ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
        ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
    };
    Ok(super::utf7::decode(&wire).unwrap_or(wire))
}

/// A STATUS item named in LIST's RETURN (STATUS (…)) (RFC 5819).
pub(super) fn status_item(name: &str) -> Result<StatusDataItemName, Refusal> {
    Ok(match name {
        "MESSAGES" => StatusDataItemName::Messages,
        "RECENT" => StatusDataItemName::Recent,
        "UIDNEXT" => StatusDataItemName::UidNext,
        "UIDVALIDITY" => StatusDataItemName::UidValidity,
        "UNSEEN" => StatusDataItemName::Unseen,
        "HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
        "SIZE" => StatusDataItemName::Size,
        "DELETED" => StatusDataItemName::Deleted,
        other => return Err(Bad(format!("Unknown STATUS item {other}"))),
    })
}
