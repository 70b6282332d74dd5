//! SELECT and EXAMINE (RFC 3501 §6.3.1–2), with CONDSTORE and QRESYNC's parameters
//! (RFC 7162 §3.1.8, §3.2.5).

use super::folders::{Bad, Refusal, noperm};
use super::identity::{Identity, Target};
use super::selection::Selection;
use super::session::{Session, State};
use crate::model::*;
use crate::store::Flags;
use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::sequence::SequenceSet;

impl Session {
    pub(super) fn select(
        &mut self,
        identity: &Identity,
        name: &str,
        examine: bool,
        parameters: &[SelectParameter],
    ) -> Result<String, Refusal> {
        // A failed SELECT leaves no folder selected (RFC 3501 §6.3.1); RFC 7162 §3.2.11
        // says so with [CLOSED] when one was.
        if matches!(self.state, State::Selected(..) | State::EmptyInbox(_)) {
            self.untagged("OK [CLOSED] Previous folder closed");
        }
        self.state = State::Authenticated(identity.clone());
        let mut qresync = None;
        for p in parameters {
            match p {
                SelectParameter::CondStore => self.reporting.condstore = true,
                // RFC 7162 §3.2.5: QRESYNC parameters need ENABLE QRESYNC first.
                SelectParameter::QResync { .. } if !self.reporting.qresync => {
                    return Err(Bad("QRESYNC must be enabled first (ENABLE QRESYNC)".into()));
                }
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    qresync = Some((
                        uid_validity.get(),
                        mod_sequence_value.get(),
                        known_uids.clone(),
                    ))
                }
            }
        }
        if matches!(
            identity.resolve(&self.services, name)?,
            Some(Target::UserInbox)
        ) {
            self.untagged("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
            self.untagged("0 EXISTS");
            if !self.reporting.rev2 {
                self.untagged("0 RECENT");
            }
            self.untagged("OK [UIDVALIDITY 1] UIDs valid");
            self.untagged("OK [UIDNEXT 1] Predicted next UID");
            self.state = State::EmptyInbox(identity.clone());
            return Ok(
                "[READ-ONLY] Your own INBOX is empty; shared mailboxes are under Shared/".into(),
            );
        }
        let (mailbox, folder, rights) = self.folder(identity, name)?;
        if !rights.contains(Right::Read) {
            return Err(noperm(Right::Read, "read this folder"));
        }
        let read_only = examine
            || !(rights.contains(Right::KeepSeen)
                || rights.contains(Right::Write)
                || rights.contains(Right::DeleteMessages)
                || rights.contains(Right::Expunge));
        let seen_user = identity.seen_user(&mailbox);
        let display = identity.display_name(&mailbox, &folder.name);
        let sel = Selection::open(
            &self.services.store,
            mailbox,
            folder,
            display,
            super::selection::View {
                read_only,
                rights,
                seen_user,
                with_recent: !self.reporting.rev2,
            },
        )?;
        self.record_opening(identity, &sel, examine);
        self.untagged(&sel.flags_line());
        self.untagged(&format!(
            "OK [PERMANENTFLAGS ({})] Flags you can change",
            permanent_flags(rights, read_only)
        ));
        self.untagged(&format!("{} EXISTS", sel.messages.len()));
        if self.reporting.rev2 {
            // RFC 9051 §6.3.2: LIST instead of RECENT and UNSEEN.
            let mut list = b"LIST () \"/\" ".to_vec();
            super::wire::folder_name(&mut list, &sel.display, self.reporting.utf8);
            self.untagged(&String::from_utf8_lossy(&list));
        } else {
            self.rev1_select_counts(&sel);
        }
        self.untagged(&format!(
            "OK [UIDVALIDITY {}] UIDs valid",
            sel.folder.uidvalidity
        ));
        self.untagged(&format!(
            "OK [UIDNEXT {}] Predicted next UID",
            sel.folder.uidnext
        ));
        // RFC 8474 §4.2.
        let id = super::objects::mailbox_id(sel.folder.id);
        self.untagged(&format!("OK [MAILBOXID ({id})] Ok"));
        if self.reporting.condstore {
            self.untagged(&format!(
                "OK [HIGHESTMODSEQ {}] Highest",
                sel.folder.highestmodseq
            ));
        }
        if let Some((uidvalidity, modseq, known)) = qresync
            && uidvalidity == sel.folder.uidvalidity
        {
            self.resync(&sel, modseq, known.as_ref())?;
        }
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let verb = if examine { "EXAMINE" } else { "SELECT" };
        self.state = State::Selected(identity.clone(), Box::new(sel));
        Ok(format!("[{mode}] {verb} completed"))
    }

    /// Issue 12: opening a mailbox by anyone but its own login (a user through a grant, a
    /// delegate) is recorded in its organization's log with both identities, once a session.
    fn record_opening(&mut self, identity: &Identity, sel: &Selection, examine: bool) {
        let mailbox = &sel.mailbox;
        let actor = identity.actor();
        if actor == Actor::Mailbox(mailbox.id) || !self.opened.insert(mailbox.id) {
            return;
        }
        let verb = if examine { "EXAMINE" } else { "SELECT" };
        let event = AuditEvent {
            id: AuditId(0),
            at: 0,
            org: Some(mailbox.org),
            actor,
            action: "imap.open".into(),
            target: mailbox.address.clone(),
            client: Some(self.peer.ip().to_string()),
            outcome: Outcome::Success,
            detail: format!("{verb} {}", sel.display),
        };
        if let Err(e) = self.services.store.record_audit(event) {
            tracing::error!(error = %e, "could not record a mailbox's opening");
        }
    }

    /// RFC 3501 §6.3.1: RECENT, and the first unseen message.
    fn rev1_select_counts(&mut self, sel: &Selection) {
        let recent = sel.messages.iter().filter(|s| s.recent).count();
        self.untagged(&format!("{recent} RECENT"));
        if let Some(first) = sel
            .messages
            .iter()
            .position(|m| !m.flags.contains(Flags::SEEN))
        {
            self.untagged(&format!("OK [UNSEEN {}] First unseen", first + 1));
        }
    }

    /// RFC 7162 §3.2.5.1: what changed since `modseq`: VANISHED (EARLIER) for the UIDs
    /// expunged since (among `known` when given), FETCH for the messages changed since.
    pub(super) fn resync(
        &mut self,
        sel: &Selection,
        modseq: u64,
        known: Option<&SequenceSet>,
    ) -> Result<(), Refusal> {
        let store = self.services.store.clone();
        let gone = store.expunged_since(sel.mailbox.id, sel.folder.id, modseq)?;
        if let Some(set) = super::vanished::earlier(gone, sel, known) {
            self.untagged(&format!("VANISHED (EARLIER) {set}"));
        }
        let changed: Vec<(usize, super::selection::Slot)> = sel
            .messages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.modseq > modseq)
            .map(|(i, s)| (i, *s))
            .collect();
        for (i, slot) in changed {
            let keywords = if slot.keywords {
                store
                    .message(sel.mailbox.id, sel.folder.id, slot.uid)?
                    .map(|r| r.keywords)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let flags = super::selection::recent_flag_list(&slot, &keywords);
            self.untagged(&format!(
                "{} FETCH (UID {} FLAGS {flags} MODSEQ ({}))",
                i + 1,
                slot.uid,
                slot.modseq
            ));
        }
        Ok(())
    }
}

/// The PERMANENTFLAGS a session may set, by its rights (RFC 4314 §4).
fn permanent_flags(rights: Rights, read_only: bool) -> String {
    if read_only {
        return String::new();
    }
    let mut flags = Vec::new();
    if rights.contains(Right::KeepSeen) {
        flags.push("\\Seen");
    }
    if rights.contains(Right::Write) {
        flags.extend(["\\Answered", "\\Flagged", "\\Draft", "\\*"]);
    }
    if rights.contains(Right::DeleteMessages) {
        flags.push("\\Deleted");
    }
    flags.join(" ")
}
