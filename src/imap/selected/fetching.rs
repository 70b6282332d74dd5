//! FETCH and UID FETCH (RFC 3501 §6.4.5, RFC 9051 §6.4.5): items, sections, BINARY,
//! MODSEQ and CHANGEDSINCE/VANISHED (RFC 7162).

use crate::imap::fetch;
use crate::imap::folders::{Bad, No, Refusal};
use crate::imap::selection::Slot;
use crate::imap::session::Session;
use crate::imap::wire;
use crate::model::*;
use crate::store::{Flags, MessageRecord, SeenFlags};
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::MessageDataItemName;
use imap_codec::imap_types::sequence::SequenceSet;
use std::collections::HashMap;

impl Session {
    pub(in crate::imap) fn fetch(
        &mut self,
        set: &SequenceSet,
        uid: bool,
        mut items: Vec<MessageDataItemName<'static>>,
        modifiers: &[FetchModifier],
    ) -> Result<String, Refusal> {
        self.sync_selection(uid);
        if self.object_items.alone {
            items.clear(); // only what `objects` put in for imap-codec
        }
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
            let slots = &self.selection()?.messages;
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
        let sel = self.selection()?;
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
            && !self.object_items.any()
            && items.iter().all(|i| {
                matches!(
                    i,
                    MessageDataItemName::Uid
                        | MessageDataItemName::Flags
                        | MessageDataItemName::ModSeq
                )
            });
        let slots = &self.selection()?.messages;
        let wanted: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|i| !only_slot || slots[*i].keywords)
            .collect();
        let records = self.records_of(&wanted)?;
        for index in indices {
            let slot = self.selection()?.messages[index];
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
    pub(in crate::imap) fn records_of(
        &self,
        indices: &[usize],
    ) -> Result<HashMap<u32, MessageRecord>, Refusal> {
        let sel = self.selection()?;
        let (Some(first), Some(last)) = (indices.first(), indices.last()) else {
            return Ok(HashMap::new());
        };
        let (first, last) = (sel.messages[*first].uid, sel.messages[*last].uid);
        let store = &self.services.store;
        let records = store.messages_between(sel.mailbox.id, sel.folder.id, first, last)?;
        Ok(records.into_iter().map(|r| (r.uid, r)).collect())
    }

    /// Sets `\Seen` on one message for FETCH of its body (RFC 3501 §6.4.5); returns its record.
    pub(in crate::imap) fn mark_seen(
        &mut self,
        uid: u32,
    ) -> Result<Option<MessageRecord>, Refusal> {
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

    pub(in crate::imap) fn fetch_line(
        &self,
        index: usize,
        record: &MessageRecord,
        items: &[MessageDataItemName<'static>],
        needs_summary: bool,
        needs_bytes: bool,
    ) -> Result<Option<Vec<u8>>, Refusal> {
        let sel = self.selection()?;
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
        // Offsets in a summary are 32-bit: a message that large is read whole.
        let size = u32::try_from(record.size).unwrap_or(u32::MAX);
        let range = needs_bytes
            .then(|| fetch::needed_range(items, summary.as_ref(), size))
            .flatten();
        let read = range.clone().map(|r| {
            let whole = r == (0..size);
            match whole {
                true => store.read_message(&record.blob),
                false => store.read_message_range(&record.blob, r.start as u64..r.end as u64),
            }
        });
        let raw = match read {
            Some(Err(e)) => return gone(e),
            other => other.transpose().ok().flatten(),
        };
        let window = match (&raw, range) {
            (Some(raw), Some(range)) => fetch::Window::at(range.start, raw),
            _ => fetch::Window::default(),
        };
        let (flags, recent) = (sel.messages[index].flags, sel.messages[index].recent);
        let mut out = format!("* {} FETCH (", index + 1).into_bytes();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            let summary = summary.as_ref();
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
                    let (bytes, origin) = fetch::body_section(
                        window,
                        summary.unwrap_or(&Default::default()),
                        section.as_ref(),
                        *partial,
                        size,
                    );
                    out.extend_from_slice(
                        format!("BODY[{}]{origin} ", fetch::section_name(section.as_ref()))
                            .as_bytes(),
                    );
                    wire::literal(&mut out, &bytes);
                }
                MessageDataItemName::Binary {
                    section, partial, ..
                } => {
                    let bytes = binary(window, summary, section, size)?;
                    let (bytes, origin) = fetch::partial(bytes, *partial);
                    let path = section_path(section);
                    out.extend_from_slice(format!("BINARY[{path}]{origin} ").as_bytes());
                    wire::binary_literal(&mut out, &bytes);
                }
                MessageDataItemName::BinarySize { section } => {
                    let size = binary(window, summary, section, size)?.len();
                    let path = section_path(section);
                    out.extend_from_slice(format!("BINARY.SIZE[{path}] {size}").as_bytes());
                }
                MessageDataItemName::Rfc822 => {
                    out.extend_from_slice(b"RFC822 ");
                    wire::literal(&mut out, raw.as_deref().unwrap_or_default());
                }
                MessageDataItemName::Rfc822Header | MessageDataItemName::Rfc822Text => {
                    let header = matches!(item, MessageDataItemName::Rfc822Header);
                    let section = if header {
                        imap_codec::imap_types::fetch::Section::Header(None)
                    } else {
                        imap_codec::imap_types::fetch::Section::Text(None)
                    };
                    let bytes = fetch::section_bytes(
                        window,
                        summary.unwrap_or(&Default::default()),
                        Some(&section),
                        size,
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
        self.object_items_of(&mut out, record);
        out.extend_from_slice(b")\r\n");
        Ok(Some(out))
    }

    /// RFC 8474 §5 EMAILID and THREADID, RFC 8514 §4.1 SAVEDATE, when the FETCH asked.
    fn object_items_of(&self, out: &mut Vec<u8>, record: &MessageRecord) {
        use crate::imap::objects::email_id;
        let items = self.object_items;
        let space = |out: &mut Vec<u8>| {
            if out.last() != Some(&b'(') {
                out.push(b' ');
            }
        };
        if items.email_id {
            space(out);
            out.extend_from_slice(format!("EMAILID ({})", email_id(&record.blob)).as_bytes());
        }
        if items.thread_id {
            // No thread ids are kept: RFC 8474 §5.2 answers NIL then.
            space(out);
            out.extend_from_slice(b"THREADID NIL");
        }
        if items.save_date {
            space(out);
            out.extend_from_slice(b"SAVEDATE ");
            wire::internal_date(out, record.saved);
        }
    }

    /// RFC 7162 §3.2.6: with VANISHED, the UIDs of the set expunged since `since`.
    pub(in crate::imap) fn report_vanished(
        &mut self,
        set: &SequenceSet,
        since: u64,
    ) -> Result<(), Refusal> {
        let sel = self.selection()?;
        let gone = self
            .services
            .store
            .expunged_since(sel.mailbox.id, sel.folder.id, since)?;
        if let Some(set) = crate::imap::vanished::earlier(gone, sel, Some(set)) {
            self.untagged(&format!("VANISHED (EARLIER) {set}"));
        }
        Ok(())
    }
}

/// A FETCH line of only UID and FLAGS, for a message without keywords.
pub(in crate::imap) fn slot_line(
    index: usize,
    slot: Slot,
    items: &[MessageDataItemName<'_>],
) -> Vec<u8> {
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

/// BINARY[section]'s bytes, or the refusal of RFC 3516 §4.3.
pub(in crate::imap) fn binary(
    raw: fetch::Window<'_>,
    summary: Option<&crate::mail::MessageSummary>,
    section: &[std::num::NonZeroU32],
    size: u32,
) -> Result<Vec<u8>, Refusal> {
    let none = Default::default();
    fetch::binary_bytes(raw, summary.unwrap_or(&none), section, size).map_err(|e| {
        No(format!(
            "[UNKNOWN-CTE] The transfer encoding {} cannot be undone here",
            e.0
        ))
    })
}

pub(in crate::imap) fn section_path(section: &[std::num::NonZeroU32]) -> String {
    section
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".")
}
