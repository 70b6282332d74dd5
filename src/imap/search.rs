//! SEARCH criteria (RFC 3501 §6.4.4), evaluated on the stored summary; only BODY and TEXT read
//! the message's bytes, and only when asked.

use super::selected::set_holds;
use super::selection::{Selection, Slot};
use crate::mail::MessageSummary;
use crate::store::{Flags, MessageRecord, Store};
use chrono::NaiveDate;
use imap_codec::imap_types::search::SearchKey;
use std::cell::OnceCell;

/// One message being tested, with its summary and bytes loaded on first need.
pub struct Candidate<'a> {
    store: &'a Store,
    sel: &'a Selection,
    index: usize,
    record: &'a MessageRecord,
    flags: Flags,
    recent: bool,
    summary: OnceCell<MessageSummary>,
    raw: OnceCell<bytes::Bytes>,
    decoded: OnceCell<String>,
}

impl<'a> Candidate<'a> {
    pub fn new(
        store: &'a Store,
        sel: &'a Selection,
        index: usize,
        record: &'a MessageRecord,
        slot: Slot,
    ) -> Candidate<'a> {
        Candidate {
            store,
            sel,
            index,
            record,
            flags: slot.flags,
            recent: slot.recent,
            summary: OnceCell::new(),
            raw: OnceCell::new(),
            decoded: OnceCell::new(),
        }
    }

    fn summary(&self) -> &MessageSummary {
        self.summary
            .get_or_init(|| self.store.summary(&self.record.blob).unwrap_or_default())
    }

    fn raw(&self) -> &[u8] {
        self.raw.get_or_init(|| {
            self.store
                .read_message(&self.record.blob)
                .unwrap_or_default()
        })
    }

    fn decoded(&self) -> &str {
        self.decoded
            .get_or_init(|| crate::mail::text_of_parts(self.raw()))
    }

    fn header_contains(&self, name: &str, needle: &str) -> bool {
        let needle = needle.to_lowercase();
        self.summary()
            .headers
            .iter()
            .any(|(n, v)| n == name && v.to_lowercase().contains(&needle))
    }

    fn internal_date(&self) -> NaiveDate {
        chrono::DateTime::from_timestamp_millis(self.record.internal_date)
            .unwrap_or_default()
            .date_naive()
    }

    fn sent_date(&self) -> Option<NaiveDate> {
        let date = self.summary().envelope.date.clone()?;
        chrono::DateTime::parse_from_rfc2822(&date)
            .ok()
            .map(|d| d.date_naive())
    }
}

fn text(s: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(s.as_ref()).into_owned()
}

fn contains_ci(haystack: &[u8], needle: &str) -> bool {
    let h = String::from_utf8_lossy(haystack).to_lowercase();
    h.contains(&needle.to_lowercase())
}

/// Whether the criteria use MODSEQ: then SEARCH reports the highest MODSEQ it found
/// (RFC 7162 §3.1.5).
pub fn uses_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::ModSequence { .. } => true,
        SearchKey::And(keys) => keys.as_ref().iter().any(uses_modseq),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::Not(k) => uses_modseq(k),
        _ => false,
    }
}

/// Whether the message matches the key.
pub fn matches(key: &SearchKey<'_>, c: &Candidate<'_>) -> bool {
    use SearchKey::*;
    let f = c.flags;
    let kw = |k: &str| c.record.keywords.iter().any(|x| x.eq_ignore_ascii_case(k));
    match key {
        All => true,
        And(keys) => keys.as_ref().iter().all(|k| matches(k, c)),
        Or(a, b) => matches(a, c) || matches(b, c),
        Not(k) => !matches(k, c),
        // Tested per message without resolving the set each time: `SEARCH 1:*` over 100,000
        // messages stays linear. `*` is the last sequence number, or the highest UID.
        SequenceSet(set) => set_holds(set, c.index as u32 + 1, c.sel.messages.len() as u32),
        Uid(set) => set_holds(
            set,
            c.record.uid,
            c.sel.messages.last().map_or(0, |s| s.uid),
        ),
        Answered => f.contains(Flags::ANSWERED),
        Unanswered => !f.contains(Flags::ANSWERED),
        Deleted => f.contains(Flags::DELETED),
        Undeleted => !f.contains(Flags::DELETED),
        Draft => f.contains(Flags::DRAFT),
        Undraft => !f.contains(Flags::DRAFT),
        Flagged => f.contains(Flags::FLAGGED),
        Unflagged => !f.contains(Flags::FLAGGED),
        Seen => f.contains(Flags::SEEN),
        Unseen => !f.contains(Flags::SEEN),
        Recent => c.recent,
        New => c.recent && !f.contains(Flags::SEEN),
        Old => !c.recent,
        Keyword(k) => kw(k.inner()),
        Unkeyword(k) => !kw(k.inner()),
        Larger(n) => c.record.size > u64::from(*n),
        Smaller(n) => c.record.size < u64::from(*n),
        From(s) => c.header_contains("from", &text(s)),
        To(s) => c.header_contains("to", &text(s)),
        Cc(s) => c.header_contains("cc", &text(s)),
        Bcc(s) => c.header_contains("bcc", &text(s)),
        Subject(s) => c.header_contains("subject", &text(s)),
        Header(name, value) => {
            let name = text(name).to_ascii_lowercase();
            let value = text(value);
            // RFC 3501: an empty value matches every message that has the field.
            c.summary().headers.iter().any(|(n, _)| *n == name)
                && (value.is_empty() || c.header_contains(&name, &value))
        }
        Body(s) => {
            let body = &c.summary().body.offsets;
            let raw = c.raw();
            let needle = text(s);
            contains_ci(raw.get(body.body as usize..).unwrap_or_default(), &needle)
                || contains_ci(c.decoded().as_bytes(), &needle)
        }
        Text(s) => {
            let needle = text(s);
            contains_ci(c.raw(), &needle) || contains_ci(c.decoded().as_bytes(), &needle)
        }
        Before(d) => c.internal_date() < *d.as_ref(),
        On(d) => c.internal_date() == *d.as_ref(),
        Since(d) => c.internal_date() >= *d.as_ref(),
        SentBefore(d) => c.sent_date().is_some_and(|s| s < *d.as_ref()),
        SentOn(d) => c.sent_date().is_some_and(|s| s == *d.as_ref()),
        SentSince(d) => c.sent_date().is_some_and(|s| s >= *d.as_ref()),
        ModSequence { modseq, .. } => c.record.modseq >= *modseq,
    }
}
