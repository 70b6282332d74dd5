//! SEARCH and UID SEARCH (RFC 3501 §6.4.4): the hits ESEARCH, SORT and THREAD build on.

use crate::imap::folders::{Bad, Refusal};
use crate::imap::search::{self, Candidate};
use crate::imap::session::{Session, State};
use crate::store::MessageRecord;
use bounded_static::IntoBoundedStatic;
use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::search::SearchKey;
use std::collections::HashMap;

impl Session {
    pub(in crate::imap) fn search(
        &mut self,
        tag: &str,
        criteria: &[SearchKey<'_>],
        uid: bool,
    ) -> Result<String, Refusal> {
        let hits = self.search_hits(criteria, uid)?;
        let highest = hits.modseq_of(hits.records.iter().map(|r| r.modseq));
        if self.reporting.rev2 {
            // RFC 9051 §6.4.4: SEARCH is answered as ESEARCH, ALL when nothing is asked,
            // and without ALL when nothing matched.
            let mut line = format!("ESEARCH (TAG \"{tag}\")");
            if uid {
                line.push_str(" UID");
            }
            if !hits.numbers.is_empty() {
                let all = crate::imap::selection::uid_set(&hits.numbers);
                line.push_str(&format!(" ALL {all}"));
            }
            if let Some(highest) = highest {
                line.push_str(&format!(" MODSEQ {highest}"));
            }
            self.untagged(&line);
            return Ok("SEARCH completed".into());
        }
        let mut list: String = hits.numbers.iter().map(|h| format!(" {h}")).collect();
        if let Some(highest) = highest {
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
    pub(in crate::imap) fn search_hits(
        &mut self,
        criteria: &[SearchKey<'_>],
        uid: bool,
    ) -> Result<Hits, Refusal> {
        self.sync_selection(uid);
        let sel = self.selection()?;
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
    pub(in crate::imap) fn plain_search(
        &mut self,
        verb: &str,
        plain: &[u8],
    ) -> Result<Hits, Refusal> {
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
}

/// What a SEARCH matched: sequence numbers (or UIDs) in order, with each one's record.
pub(in crate::imap) struct Hits {
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
