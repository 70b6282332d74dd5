//! Commands of the selected state (RFC 3501 §6.4): FETCH, STORE, SEARCH, COPY, MOVE,
//! EXPUNGE, CLOSE, UNSELECT, with their UID forms (RFC 4315, RFC 6851).

use super::fetch;
use super::folders::{Bad, No, Refusal, noperm, store_flags};
use super::identity::Identity;
use super::search::{self, Candidate};
use super::selection::{Selection, Slot};
use super::session::{Session, State};
use super::wire;
use crate::model::*;
use crate::store::{
    FlagChange, FlagOutcome, Flags, FolderView, MessageRecord, SeenFlags, Transfer,
};
use bounded_static::IntoBoundedStatic;
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::{CommandBody, FetchModifier, StoreModifier};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::fetch::MessageDataItemName;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use std::collections::HashMap;

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
                    self.search(criteria.as_ref(), uid)
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
            } => super::folders::mailbox_name(&mailbox)
                .and_then(|name| self.copy(&identity, &sequence_set, uid, &name, false)),
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => super::folders::mailbox_name(&mailbox)
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

    pub(super) fn selection(&self) -> &Selection {
        match &self.state {
            State::Selected(_, sel) => sel,
            _ => unreachable!("selected_command checked the state"),
        }
    }

    fn selection_mut(&mut self) -> &mut Selection {
        match &mut self.state {
            State::Selected(_, sel) => sel,
            _ => unreachable!("selected_command checked the state"),
        }
    }

    fn indices(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Refusal> {
        resolve(set, uid, self.selection()).map_err(|e| Bad(e.to_string()))
    }

    fn close(&mut self, identity: &Identity, expunge: bool) -> Result<String, Refusal> {
        let sel = self.selection();
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
        let sel = self.selection();
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
        let sel = self.selection();
        if sel.read_only {
            return Err(No("[READ-ONLY] The folder is selected read-only".into()));
        }
        if !sel.rights.contains(Right::Expunge) {
            return Err(noperm(Right::Expunge, "expunge"));
        }
        let within = uids.map(|set| self.indices(set, true)).transpose()?;
        let deleted = self.deleted_uids(within.as_deref())?;
        let (m, f) = (sel.mailbox.id, sel.folder.id);
        self.services.store.expunge_deleted(m, f, &deleted)?;
        self.sync_selection(true);
        Ok("EXPUNGE completed".into())
    }

    fn fetch(
        &mut self,
        set: &SequenceSet,
        uid: bool,
        mut items: Vec<MessageDataItemName<'static>>,
        modifiers: &[FetchModifier],
    ) -> Result<String, Refusal> {
        self.sync_selection(uid);
        let mut indices = self.indices(set, uid)?;
        let changed_since = modifiers.iter().find_map(|m| match m {
            FetchModifier::ChangedSince(n) => Some(n.get()),
            FetchModifier::Vanished => None,
        });
        let vanished = modifiers.contains(&FetchModifier::Vanished);
        if vanished && !(uid && self.reporting.qresync) {
            // RFC 7162 §3.2.6: only in UID FETCH, once QRESYNC is enabled.
            return Err(Bad("VANISHED needs UID FETCH and ENABLE QRESYNC".into()));
        }
        if items.contains(&MessageDataItemName::ModSeq) || changed_since.is_some() {
            self.enable_condstore();
        }
        if let Some(since) = changed_since {
            // RFC 7162 §3.1.4: only what changed since, with MODSEQ.
            let slots = &self.selection().messages;
            indices.retain(|i| slots[*i].modseq > since);
            if !items.contains(&MessageDataItemName::ModSeq) {
                items.push(MessageDataItemName::ModSeq);
            }
            if vanished {
                self.report_vanished(set, since)?;
            }
        } else if vanished {
            return Err(Bad("VANISHED needs CHANGEDSINCE (RFC 7162 §3.2.6)".into()));
        }
        if uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        let sel = self.selection();
        let mark_seen =
            fetch::sets_seen(&items) && !sel.read_only && sel.rights.contains(Right::KeepSeen);
        let needs_bytes = fetch::needs_bytes(&items);
        let needs_summary = needs_bytes
            || items.iter().any(|i| {
                matches!(
                    i,
                    MessageDataItemName::Envelope
                        | MessageDataItemName::Body
                        | MessageDataItemName::BodyStructure
                )
            });
        // UID and FLAGS of a message without keywords come from the session's own map.
        let only_slot = !mark_seen
            && items.iter().all(|i| {
                matches!(
                    i,
                    MessageDataItemName::Uid
                        | MessageDataItemName::Flags
                        | MessageDataItemName::ModSeq
                )
            });
        let slots = &self.selection().messages;
        let wanted: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|i| !only_slot || slots[*i].keywords)
            .collect();
        let records = self.records_of(&wanted)?;
        for index in indices {
            let slot = self.selection().messages[index];
            if only_slot && !slot.keywords {
                self.out.extend_from_slice(&slot_line(index, slot, &items));
                continue;
            }
            let Some(mut record) = records.get(&slot.uid).cloned() else {
                continue; // expunged by another session, not reported yet
            };
            let mut line_items = std::borrow::Cow::Borrowed(&items);
            if mark_seen && !slot.flags.contains(Flags::SEEN) {
                match self.mark_seen(slot.uid)? {
                    Some(now) => record = now,
                    None => continue,
                }
                // RFC 3501 §6.4.5: flags set implicitly SHOULD be part of the FETCH response;
                // RFC 7162 §3.1.4.1: with CONDSTORE, so is the new MODSEQ.
                if !items.contains(&MessageDataItemName::Flags) {
                    line_items.to_mut().push(MessageDataItemName::Flags);
                }
                if self.reporting.condstore && !items.contains(&MessageDataItemName::ModSeq) {
                    line_items.to_mut().push(MessageDataItemName::ModSeq);
                }
            }
            let line = self.fetch_line(index, &record, &line_items, needs_summary, needs_bytes)?;
            self.out.extend_from_slice(&line.unwrap_or_default());
        }
        Ok(if uid {
            "UID FETCH completed"
        } else {
            "FETCH completed"
        }
        .into())
    }

    /// The records of the messages at `indices` (sorted), read in one range scan.
    fn records_of(&self, indices: &[usize]) -> Result<HashMap<u32, MessageRecord>, Refusal> {
        let sel = self.selection();
        let (Some(first), Some(last)) = (indices.first(), indices.last()) else {
            return Ok(HashMap::new());
        };
        let (first, last) = (sel.messages[*first].uid, sel.messages[*last].uid);
        let store = &self.services.store;
        let records = store.messages_between(sel.mailbox.id, sel.folder.id, first, last)?;
        Ok(records.into_iter().map(|r| (r.uid, r)).collect())
    }

    /// Sets `\Seen` on one message for FETCH of its body (RFC 3501 §6.4.5); returns its record.
    fn mark_seen(&mut self, uid: u32) -> Result<Option<MessageRecord>, Refusal> {
        let set_seen = |now: &SeenFlags| SeenFlags {
            flags: now.flags.with(Flags::SEEN, true),
            keywords: now.keywords.clone(),
        };
        let outcome = self.change_flags(&[uid], None, &set_seen)?;
        Ok(outcome
            .messages
            .into_iter()
            .next()
            .map(|(record, _)| record))
    }

    /// Changes flags in the store (under its lock, from the current record) and brings this
    /// session's view of the changed messages up to date.
    fn change_flags(
        &mut self,
        uids: &[u32],
        unchanged_since: Option<u64>,
        apply: &dyn Fn(&SeenFlags) -> SeenFlags,
    ) -> Result<FlagOutcome, Refusal> {
        let sel = self.selection();
        let change = FlagChange {
            seen_user: sel.seen_user,
            unchanged_since,
            apply,
        };
        let (m, f) = (sel.mailbox.id, sel.folder.id);
        let outcome = self.services.store.change_flags(m, f, uids, change)?;
        let sel = self.selection_mut();
        for (record, shown) in &outcome.messages {
            if let Some(seq) = sel.seq_of(record.uid) {
                let slot = &mut sel.messages[seq - 1];
                slot.flags = *shown;
                slot.modseq = record.modseq;
                slot.keywords = !record.keywords.is_empty();
            }
        }
        Ok(outcome)
    }

    fn fetch_line(
        &self,
        index: usize,
        record: &MessageRecord,
        items: &[MessageDataItemName<'static>],
        needs_summary: bool,
        needs_bytes: bool,
    ) -> Result<Option<Vec<u8>>, Refusal> {
        let sel = self.selection();
        let store = &self.services.store;
        // Another session may expunge the message after its record was read, and take its
        // summary and bytes with it: then it is left out, as one expunged before the
        // command (RFC 2180 §4.1), and the rest is answered.
        let gone = |e: crate::store::StoreError| -> Result<Option<Vec<u8>>, Refusal> {
            match store.message(sel.mailbox.id, sel.folder.id, record.uid) {
                Ok(None) => Ok(None),
                _ => Err(e.into()),
            }
        };
        let summary = match needs_summary.then(|| store.summary(&record.blob)) {
            Some(Err(e)) => return gone(e),
            other => other.transpose().ok().flatten(),
        };
        let raw = match needs_bytes.then(|| store.read_message(&record.blob)) {
            Some(Err(e)) => return gone(e),
            other => other.transpose().ok().flatten(),
        };
        let (flags, recent) = (sel.messages[index].flags, sel.messages[index].recent);
        let mut out = format!("* {} FETCH (", index + 1).into_bytes();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            let summary = summary.as_ref();
            let raw = raw.as_deref().unwrap_or_default();
            match item {
                MessageDataItemName::Uid => {
                    out.extend_from_slice(format!("UID {}", record.uid).as_bytes())
                }
                MessageDataItemName::Flags => {
                    out.extend_from_slice(b"FLAGS ");
                    wire::flags(&mut out, flags, &record.keywords, recent);
                }
                MessageDataItemName::InternalDate => {
                    out.extend_from_slice(b"INTERNALDATE ");
                    wire::internal_date(&mut out, record.internal_date);
                }
                MessageDataItemName::ModSeq => {
                    out.extend_from_slice(format!("MODSEQ ({})", record.modseq).as_bytes())
                }
                MessageDataItemName::Rfc822Size => {
                    out.extend_from_slice(format!("RFC822.SIZE {}", record.size).as_bytes())
                }
                MessageDataItemName::Envelope => {
                    out.extend_from_slice(b"ENVELOPE ");
                    wire::envelope(
                        &mut out,
                        &summary.map(|s| s.envelope.clone()).unwrap_or_default(),
                    );
                }
                MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
                    let extended = matches!(item, MessageDataItemName::BodyStructure);
                    out.extend_from_slice(if extended {
                        b"BODYSTRUCTURE "
                    } else {
                        b"BODY "
                    });
                    wire::body_structure(
                        &mut out,
                        &summary.map(|s| s.body.clone()).unwrap_or_default(),
                        extended,
                    );
                }
                MessageDataItemName::BodyExt {
                    section, partial, ..
                } => {
                    let bytes = fetch::section_bytes(
                        raw,
                        summary.unwrap_or(&Default::default()),
                        section.as_ref(),
                    );
                    let (bytes, origin) = fetch::partial(bytes, *partial);
                    out.extend_from_slice(
                        format!("BODY[{}]{origin} ", fetch::section_name(section.as_ref()))
                            .as_bytes(),
                    );
                    wire::literal(&mut out, &bytes);
                }
                MessageDataItemName::Binary {
                    section, partial, ..
                } => {
                    let bytes = binary(raw, summary, section)?;
                    let (bytes, origin) = fetch::partial(bytes, *partial);
                    let path = section_path(section);
                    out.extend_from_slice(format!("BINARY[{path}]{origin} ").as_bytes());
                    wire::binary_literal(&mut out, &bytes);
                }
                MessageDataItemName::BinarySize { section } => {
                    let size = binary(raw, summary, section)?.len();
                    let path = section_path(section);
                    out.extend_from_slice(format!("BINARY.SIZE[{path}] {size}").as_bytes());
                }
                MessageDataItemName::Rfc822 => {
                    out.extend_from_slice(b"RFC822 ");
                    wire::literal(&mut out, raw);
                }
                MessageDataItemName::Rfc822Header | MessageDataItemName::Rfc822Text => {
                    let header = matches!(item, MessageDataItemName::Rfc822Header);
                    let section = if header {
                        imap_codec::imap_types::fetch::Section::Header(None)
                    } else {
                        imap_codec::imap_types::fetch::Section::Text(None)
                    };
                    let bytes = fetch::section_bytes(
                        raw,
                        summary.unwrap_or(&Default::default()),
                        Some(&section),
                    );
                    out.extend_from_slice(if header {
                        b"RFC822.HEADER "
                    } else {
                        b"RFC822.TEXT "
                    });
                    wire::literal(&mut out, &bytes);
                }
            }
        }
        out.extend_from_slice(b")\r\n");
        Ok(Some(out))
    }

    fn store(
        &mut self,
        set: &SequenceSet,
        uid: bool,
        request: StoreRequest,
        flags: &[Flag<'_>],
    ) -> Result<String, Refusal> {
        self.sync_selection(uid);
        let indices = self.indices(set, uid)?;
        if request.unchanged_since.is_some() {
            self.enable_condstore();
        }
        let sel = self.selection();
        if sel.read_only {
            return Err(No("[READ-ONLY] The folder is selected read-only".into()));
        }
        let (bits, keywords) = store_flags(flags)?;
        check_flag_rights(sel.rights, bits, !keywords.is_empty(), request.kind)?;
        let rights = sel.rights;
        let uids: Vec<u32> = indices.iter().map(|i| sel.messages[*i].uid).collect();
        let apply = |now: &SeenFlags| apply_store(now, request.kind, bits, &keywords, rights);
        let outcome = self.change_flags(&uids, request.unchanged_since, &apply)?;
        // RFC 3501 §7.2.6: a keyword new to the folder is announced before it is shown.
        if let State::Selected(_, sel) = &mut self.state
            && let Some(line) = sel.learn_keywords(keywords.iter())
        {
            self.untagged(&line);
        }
        // RFC 7162 §3.1.3: once CONDSTORE is on, even .SILENT gets FETCH responses with
        // MODSEQ ("required to update the client's cache"), without FLAGS.
        let with_flags = request.response == StoreResponse::Answer;
        if with_flags || self.reporting.condstore {
            for (record, shown) in &outcome.messages {
                if let Some(seq) = self.selection().seq_of(record.uid) {
                    let flags = with_flags.then_some(*shown);
                    self.store_answer(seq - 1, uid, flags, record);
                }
            }
        }
        let verb = if uid { "UID STORE" } else { "STORE" };
        if outcome.modified.is_empty() {
            return Ok(format!("{verb} completed"));
        }
        // RFC 7162 §3.1.3: MODIFIED names UIDs after UID STORE, sequence numbers after STORE.
        let modified: Vec<u32> = if uid {
            outcome.modified
        } else {
            let sel = self.selection();
            outcome
                .modified
                .iter()
                .filter_map(|u| sel.seq_of(*u).map(|s| s as u32))
                .collect()
        };
        let set = super::selection::uid_set(&modified);
        Ok(format!(
            "[MODIFIED {set}] {verb} completed for the unmodified messages"
        ))
    }

    /// The FETCH response of a STORE: UID (after UID STORE), FLAGS (unless .SILENT), MODSEQ
    /// (with CONDSTORE).
    fn store_answer(
        &mut self,
        index: usize,
        uid: bool,
        shown: Option<Flags>,
        record: &MessageRecord,
    ) {
        let recent = self
            .selection()
            .messages
            .get(index)
            .is_some_and(|s| s.recent);
        let mut items = Vec::new();
        // RFC 7162 §3.2.4: once QRESYNC is on, every untagged FETCH carries the UID.
        if uid || self.reporting.qresync {
            items.push(format!("UID {}", record.uid).into_bytes());
        }
        if let Some(shown) = shown {
            let mut flags = b"FLAGS ".to_vec();
            wire::flags(&mut flags, shown, &record.keywords, recent);
            items.push(flags);
        }
        if self.reporting.condstore {
            items.push(format!("MODSEQ ({})", record.modseq).into_bytes());
        }
        let mut line = format!("* {} FETCH (", index + 1).into_bytes();
        line.extend_from_slice(&items.join(&b' '));
        line.extend_from_slice(b")\r\n");
        self.out.extend_from_slice(&line);
    }

    /// RFC 7162 §3.2.6: with VANISHED, the UIDs of the set expunged since `since`.
    fn report_vanished(&mut self, set: &SequenceSet, since: u64) -> Result<(), Refusal> {
        let sel = self.selection();
        let gone = self
            .services
            .store
            .expunged_since(sel.mailbox.id, sel.folder.id, since)?;
        if let Some(set) = super::vanished::earlier(gone, sel, Some(set)) {
            self.untagged(&format!("VANISHED (EARLIER) {set}"));
        }
        Ok(())
    }

    fn search(&mut self, criteria: &[SearchKey<'_>], uid: bool) -> Result<String, Refusal> {
        let hits = self.search_hits(criteria, uid)?;
        let mut list: String = hits.numbers.iter().map(|h| format!(" {h}")).collect();
        if let Some(highest) = hits.modseq_of(hits.records.iter().map(|r| r.modseq)) {
            list.push_str(&format!(" (MODSEQ {highest})"));
        }
        self.untagged(&format!("SEARCH{list}"));
        Ok(if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        }
        .into())
    }

    /// The matching messages, in order.
    pub(super) fn search_hits(
        &mut self,
        criteria: &[SearchKey<'_>],
        uid: bool,
    ) -> Result<Hits, Refusal> {
        self.sync_selection(uid);
        let sel = self.selection();
        let store = &self.services.store;
        let records = store.messages(sel.mailbox.id, sel.folder.id)?;
        let by_uid: HashMap<u32, &MessageRecord> = records.iter().map(|r| (r.uid, r)).collect();
        let mut hits = Hits {
            numbers: Vec::new(),
            records: Vec::new(),
            uid,
            with_modseq: criteria.iter().any(search::uses_modseq),
        };
        for (i, slot) in sel.messages.iter().enumerate() {
            let Some(record) = by_uid.get(&slot.uid) else {
                continue;
            };
            let candidate = Candidate::new(store, sel, i, record, *slot);
            if criteria.iter().all(|c| search::matches(c, &candidate)) {
                hits.numbers
                    .push(if uid { slot.uid } else { (i + 1) as u32 });
                hits.records.push((*record).clone());
            }
        }
        if hits.with_modseq {
            self.enable_condstore();
        }
        Ok(hits)
    }

    /// The matches of a SEARCH handed over as a plain command (`tag [UID] SEARCH …`) by the
    /// commands built on it (ESEARCH, SORT, THREAD), for imap-codec to parse.
    pub(super) fn plain_search(&mut self, verb: &str, plain: &[u8]) -> Result<Hits, Refusal> {
        if !matches!(self.state, State::Selected(..)) {
            return Err(Bad(format!("{verb} needs a selected folder")));
        }
        let command = CommandCodec::default()
            .decode(plain)
            .map(|(_, c)| c.into_static())
            .map_err(|_| Bad("Syntax error in the search criteria".into()))?;
        let CommandBody::Search { criteria, uid, .. } = command.body else {
            return Err(Bad("Syntax error in the search criteria".into()));
        };
        self.search_hits(criteria.as_ref(), uid)
    }

    fn copy(
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
            Some(super::identity::Target::Folder { mailbox, name }) => {
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
        let sel = self.selection();
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
        let pairs = self.services.store.transfer(transfer)?;
        if let Err(e) = self.services.store.flush_blocking() {
            tracing::error!(error = %e, "flush after {verb} failed");
            return Err(No("[SERVERBUG] The copy could not be made durable".into()));
        }
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

/// A FETCH line of only UID and FLAGS, for a message without keywords.
fn slot_line(index: usize, slot: Slot, items: &[MessageDataItemName<'_>]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(48);
    let _ = write!(out, "* {} FETCH (", index + 1);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if matches!(item, MessageDataItemName::Uid) {
            let _ = write!(out, "UID {}", slot.uid);
        } else if matches!(item, MessageDataItemName::ModSeq) {
            let _ = write!(out, "MODSEQ ({})", slot.modseq);
        } else {
            out.extend_from_slice(b"FLAGS ");
            wire::flags(&mut out, slot.flags, &[], slot.recent);
        }
    }
    out.extend_from_slice(b")\r\n");
    out
}

/// RFC 4314 §4: `\Seen` needs `s`, `\Deleted` needs `t`, every other flag `w`.
fn check_flag_rights(
    rights: Rights,
    bits: Flags,
    keywords: bool,
    kind: StoreType,
) -> Result<(), Refusal> {
    let other = bits.contains(Flags::ANSWERED)
        || bits.contains(Flags::FLAGGED)
        || bits.contains(Flags::DRAFT)
        || keywords
        || kind == StoreType::Replace;
    let needs = [
        (bits.contains(Flags::SEEN), Right::KeepSeen),
        (bits.contains(Flags::DELETED), Right::DeleteMessages),
        (other, Right::Write),
    ];
    for (needed, right) in needs {
        if needed && !rights.contains(right) {
            return Err(noperm(right, "change these flags"));
        }
    }
    Ok(())
}

/// The flags and keywords a STORE leaves on a message.
fn apply_store(
    now: &SeenFlags,
    kind: StoreType,
    bits: Flags,
    keywords: &[String],
    rights: Rights,
) -> SeenFlags {
    let (new, kept) = apply_unmasked(now, kind, bits, keywords);
    // RFC 4314 §4: a flag the session may not change keeps its value, also under FLAGS (…).
    let mut masked = now.flags;
    for flag in SYSTEM_FLAGS {
        if may_change(rights, flag) {
            masked = masked.with(flag, new.contains(flag));
        }
    }
    let keywords = if rights.contains(Right::Write) {
        kept
    } else {
        now.keywords.clone()
    };
    SeenFlags {
        flags: masked,
        keywords,
    }
}

const SYSTEM_FLAGS: [Flags; 5] = [
    Flags::SEEN,
    Flags::ANSWERED,
    Flags::FLAGGED,
    Flags::DELETED,
    Flags::DRAFT,
];

/// Which right changing `flag` needs: `s` for \Seen, `t` for \Deleted, `w` for the rest.
fn may_change(rights: Rights, flag: Flags) -> bool {
    let needed = if flag == Flags::SEEN {
        Right::KeepSeen
    } else if flag == Flags::DELETED {
        Right::DeleteMessages
    } else {
        Right::Write
    };
    rights.contains(needed)
}

/// The flags a session may set on a message it adds (APPEND, COPY, MOVE): the others dropped.
pub(super) fn permitted(
    rights: Rights,
    flags: Flags,
    keywords: Vec<String>,
) -> (Flags, Vec<String>) {
    let mut out = Flags::default();
    for flag in SYSTEM_FLAGS {
        out = out.with(flag, flags.contains(flag) && may_change(rights, flag));
    }
    let keywords = if rights.contains(Right::Write) {
        keywords
    } else {
        Vec::new()
    };
    (out, keywords)
}

fn apply_unmasked(
    now: &SeenFlags,
    kind: StoreType,
    bits: Flags,
    keywords: &[String],
) -> (Flags, Vec<String>) {
    let mut new_bits = now.flags;
    for flag in SYSTEM_FLAGS {
        let asked = bits.contains(flag);
        new_bits = match kind {
            StoreType::Replace => new_bits.with(flag, asked),
            StoreType::Add if asked => new_bits.with(flag, true),
            StoreType::Remove if asked => new_bits.with(flag, false),
            _ => new_bits,
        };
    }
    let mut new_keywords = now.keywords.clone();
    match kind {
        StoreType::Replace => new_keywords = keywords.to_vec(),
        StoreType::Add => {
            for k in keywords {
                if !new_keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    new_keywords.push(k.clone());
                }
            }
        }
        StoreType::Remove => {
            new_keywords.retain(|x| !keywords.iter().any(|k| k.eq_ignore_ascii_case(x)))
        }
    }
    (new_bits, new_keywords)
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

/// STORE's arguments besides the set and the flags.
struct StoreRequest {
    kind: StoreType,
    response: StoreResponse,
    /// RFC 7162 §3.1.3: change only messages not changed since.
    unchanged_since: Option<u64>,
}

fn uid_list(uids: &[u32]) -> String {
    uids.iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// What a SEARCH matched: sequence numbers (or UIDs) in order, with each one's record.
pub(super) struct Hits {
    pub numbers: Vec<u32>,
    pub records: Vec<MessageRecord>,
    /// The numbers are UIDs.
    pub uid: bool,
    /// The criteria used MODSEQ: the answer tells one (RFC 7162 §3.1.5).
    pub with_modseq: bool,
}

impl Hits {
    /// The MODSEQ to report for the given hits' MODSEQs: their highest, when the criteria used
    /// MODSEQ and something matched.
    pub fn modseq_of(&self, modseqs: impl IntoIterator<Item = u64>) -> Option<u64> {
        modseqs.into_iter().max().filter(|_| self.with_modseq)
    }

    /// Each hit's number and record with the message's summary; one expunged since the
    /// search (its summary gone with it) is left out.
    pub fn summarized(
        &self,
        store: &crate::store::Store,
    ) -> Vec<(u32, &MessageRecord, crate::mail::MessageSummary)> {
        self.numbers
            .iter()
            .zip(&self.records)
            .filter_map(|(n, r)| Some((*n, r, store.summary(&r.blob).ok()?)))
            .collect()
    }
}

/// BINARY[section]'s bytes, or the refusal of RFC 3516 §4.3.
fn binary(
    raw: &[u8],
    summary: Option<&crate::mail::MessageSummary>,
    section: &[std::num::NonZeroU32],
) -> Result<Vec<u8>, Refusal> {
    let path: Vec<u32> = section.iter().map(|n| n.get()).collect();
    fetch::binary_bytes(raw, summary.unwrap_or(&Default::default()), &path).map_err(|e| {
        No(format!(
            "[UNKNOWN-CTE] The transfer encoding {} cannot be undone here",
            e.0
        ))
    })
}

fn section_path(section: &[std::num::NonZeroU32]) -> String {
    section
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".")
}
