//! Commands of the selected state (RFC 3501 §6.4): FETCH, STORE, SEARCH, COPY, MOVE,
//! EXPUNGE, CLOSE, UNSELECT, with their UID forms (RFC 4315, RFC 6851).

use super::fetch;
use super::folders::{Bad, No, Refusal, noperm};
use super::identity::Identity;
use super::selection::Selection;
use super::session::{Session, State};
use crate::model::*;
use crate::store::Flags;
use imap_codec::imap_types::command::{CommandBody, StoreModifier};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

mod copying;
mod fetching;
mod searching;
mod storing;

pub(in crate::imap) use storing::{StoreRequest, permitted};

/// The indices (0-based) into the selection that a sequence set names. For message sequence
/// numbers an unknown number is an error (RFC 9051 §6.4.1); for UIDs it is skipped.
pub(super) fn resolve(set: &SequenceSet, uid: bool, sel: &Selection) -> Result<Vec<usize>, String> {
    let n = sel.messages.len() as u32;
    let largest = if uid {
        sel.messages.last().map_or(0, |s| s.uid)
    } else {
        n
    };
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    let mut out = Vec::new();
    for seq in set.0.as_ref() {
        let (a, b) = match seq {
            Sequence::Single(v) => (value(v), value(v)),
            Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
        };
        if uid {
            let start = sel.messages.partition_point(|s| s.uid < a);
            let end = sel.messages.partition_point(|s| s.uid <= b);
            out.extend(start..end);
        } else {
            // An empty saved result ($, RFC 5182) arrives as this sentinel and names nothing.
            if a == u32::MAX && b == u32::MAX {
                continue;
            }
            if a == 0 || b > n {
                return Err(format!(
                    "No message with sequence number {}",
                    if a == 0 { a } else { b }
                ));
            }
            out.extend((a - 1) as usize..b as usize);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl Session {
    pub(super) async fn selected_command(&mut self, tag: Tag<'static>, body: CommandBody<'static>) {
        let name = body.name();
        if let State::EmptyInbox(identity) = &self.state {
            let identity = identity.clone();
            self.empty_inbox_command(&tag, body, identity);
            return;
        }
        let State::Selected(identity, _) = &self.state else {
            let text = format!("{name} needs a selected folder");
            self.tagged(&tag, "BAD", &text);
            return;
        };
        let identity = identity.clone();
        // COPY may carry other sessions' changes, EXPUNGE included (RFC 3501 §7.4.1).
        let sync_after = matches!(body, CommandBody::Copy { .. });
        let result = match body {
            CommandBody::Close => self.close(&identity, true),
            CommandBody::Unselect => self.close(&identity, false),
            CommandBody::Expunge => self.expunge(None),
            CommandBody::ExpungeUid { sequence_set } => self.expunge(Some(&sequence_set)),
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => self.fetch(
                &sequence_set,
                uid,
                fetch::items(macro_or_item_names),
                &modifiers,
            ),
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let unchanged_since = modifiers
                    .iter()
                    .map(|StoreModifier::UnchangedSince(n)| *n)
                    .next();
                let store = StoreRequest {
                    kind,
                    response,
                    unchanged_since,
                };
                self.store(&sequence_set, uid, store, &flags)
            }
            CommandBody::Search {
                criteria,
                uid,
                charset,
            } => {
                let charset_ok = charset.as_ref().is_none_or(|c| {
                    let c = c.as_ref().to_ascii_uppercase();
                    c.contains("UTF-8") || c.contains("US-ASCII")
                });
                if charset_ok {
                    self.search(tag.inner(), criteria.as_ref(), uid)
                } else {
                    Err(No(
                        "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset".into()
                    ))
                }
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => super::folders::mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.copy(&identity, &sequence_set, uid, &name, false)),
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => super::folders::mailbox_name(&mailbox, self.reporting.utf8)
                .and_then(|name| self.copy(&identity, &sequence_set, uid, &name, true)),
            other => {
                let text = format!("{} is not supported", other.name());
                self.tagged(&tag, "BAD", &text);
                return;
            }
        };
        if sync_after {
            self.sync_selection(true);
        }
        self.finish(&tag, result);
    }

    /// A user's own, always empty INBOX: commands succeed on nothing; a message sequence
    /// number names no message there (RFC 9051 §6.4.1).
    fn empty_inbox_command(
        &mut self,
        tag: &Tag<'static>,
        body: CommandBody<'static>,
        identity: Identity,
    ) {
        let name = body.name();
        match body {
            CommandBody::Close | CommandBody::Unselect => {
                self.state = State::Authenticated(identity);
                self.tagged(tag, "OK", &format!("{name} completed"));
            }
            CommandBody::Search { uid, .. } if self.reporting.rev2 => {
                let uid = if uid { " UID" } else { "" };
                self.untagged(&format!("ESEARCH (TAG \"{}\"){uid}", tag.inner()));
                self.tagged(tag, "OK", "SEARCH completed");
            }
            CommandBody::Search { .. } => {
                self.untagged("SEARCH");
                self.tagged(tag, "OK", "SEARCH completed");
            }
            CommandBody::Fetch { uid: true, .. }
            | CommandBody::Store { uid: true, .. }
            | CommandBody::Copy { uid: true, .. }
            | CommandBody::Move { uid: true, .. }
            | CommandBody::ExpungeUid { .. } => {
                self.tagged(tag, "OK", &format!("{name} completed"))
            }
            CommandBody::Expunge => {
                self.tagged(tag, "NO", "[READ-ONLY] Your own INBOX is read-only")
            }
            CommandBody::Fetch { .. }
            | CommandBody::Store { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. } => self.tagged(
                tag,
                "BAD",
                "No message with that sequence number: the folder is empty",
            ),
            other => self.tagged(tag, "BAD", &format!("{} is not supported", other.name())),
        }
    }

    /// The selected folder; a command of the selected state (RFC 3501 §6.4) without one is
    /// refused before it gets here, so this refusal is only a second line.
    pub(super) fn selection(&self) -> Result<&Selection, Refusal> {
        match &self.state {
            State::Selected(_, sel) => Ok(sel),
            _ => Err(Bad("No folder is selected".into())),
        }
    }

    fn selection_mut(&mut self) -> Result<&mut Selection, Refusal> {
        match &mut self.state {
            State::Selected(_, sel) => Ok(sel),
            _ => Err(Bad("No folder is selected".into())),
        }
    }

    fn indices(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Refusal> {
        resolve(set, uid, self.selection()?).map_err(|e| Bad(e.to_string()))
    }

    fn close(&mut self, identity: &Identity, expunge: bool) -> Result<String, Refusal> {
        let sel = self.selection()?;
        // RFC 3501 §6.4.2: CLOSE expunges silently, when the session may.
        if expunge && !sel.read_only && sel.rights.contains(Right::Expunge) {
            let (m, f) = (sel.mailbox.id, sel.folder.id);
            let deleted = self.deleted_uids(None)?;
            self.services.store.expunge_deleted(m, f, &deleted)?;
        }
        self.state = State::Authenticated(identity.clone());
        Ok(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        }
        .into())
    }

    /// UIDs flagged `\Deleted`, among `within` when given.
    fn deleted_uids(&self, within: Option<&[usize]>) -> Result<Vec<u32>, Refusal> {
        let sel = self.selection()?;
        let records = self
            .services
            .store
            .messages(sel.mailbox.id, sel.folder.id)?;
        let allowed: Option<std::collections::HashSet<u32>> =
            within.map(|w| w.iter().map(|i| sel.messages[*i].uid).collect());
        Ok(records
            .iter()
            .filter(|r| r.flags.contains(Flags::DELETED))
            .filter(|r| allowed.as_ref().is_none_or(|a| a.contains(&r.uid)))
            .map(|r| r.uid)
            .collect())
    }

    fn expunge(&mut self, uids: Option<&SequenceSet>) -> Result<String, Refusal> {
        let sel = self.selection()?;
        if sel.read_only {
            return Err(No("[READ-ONLY] The folder is selected read-only".into()));
        }
        if !sel.rights.contains(Right::Expunge) {
            return Err(noperm(Right::Expunge, "expunge"));
        }
        let within = uids.map(|set| self.indices(set, true)).transpose()?;
        let deleted = self.deleted_uids(within.as_deref())?;
        let (m, f) = (sel.mailbox.id, sel.folder.id);
        // No disk wait: the files of freed blobs go in the next sweep, not here.
        self.services.store.expunge_deleted(m, f, &deleted)?;
        self.sync_selection(true);
        Ok("EXPUNGE completed".into())
    }
}

/// Whether a UID set (without `*`) holds `uid`.
/// Whether a sequence or UID set holds `n`, `*` standing for `star` (RFC 3501 §9: `n:*`
/// with n above `star` still holds `star`).
pub(super) fn set_holds(set: &SequenceSet, n: u32, star: u32) -> bool {
    let uid = n;
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => star,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(v) => value(v) == uid,
        Sequence::Range(a, b) => (value(a).min(value(b))..=value(a).max(value(b))).contains(&uid),
    })
}
