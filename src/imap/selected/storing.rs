//! STORE and UID STORE (RFC 3501 §6.4.6), UNCHANGEDSINCE (RFC 7162 §3.1.3), and which
//! flags the rights let a session set (RFC 4314 §4).

use crate::imap::folders::{No, Refusal, noperm, store_flags};
use crate::imap::session::{Session, State};
use crate::imap::wire;
use crate::model::*;
use crate::store::{FlagChange, FlagOutcome, Flags, MessageRecord, SeenFlags};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;

impl Session {
    /// Changes flags in the store (under its lock, from the current record) and brings this
    /// session's view of the changed messages up to date.
    pub(in crate::imap) fn change_flags(
        &mut self,
        uids: &[u32],
        unchanged_since: Option<u64>,
        apply: &dyn Fn(&SeenFlags) -> SeenFlags,
    ) -> Result<FlagOutcome, Refusal> {
        let sel = self.selection()?;
        let change = FlagChange {
            seen_user: sel.seen_user,
            unchanged_since,
            apply,
        };
        let (m, f) = (sel.mailbox.id, sel.folder.id);
        let outcome = self.services.store.change_flags(m, f, uids, change)?;
        let sel = self.selection_mut()?;
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

    pub(in crate::imap) fn store(
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
        let sel = self.selection()?;
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
                if let Some(seq) = self.selection()?.seq_of(record.uid) {
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
            let sel = self.selection()?;
            outcome
                .modified
                .iter()
                .filter_map(|u| sel.seq_of(*u).map(|s| s as u32))
                .collect()
        };
        let set = crate::imap::selection::uid_set(&modified);
        Ok(format!(
            "[MODIFIED {set}] {verb} completed for the unmodified messages"
        ))
    }

    /// The FETCH response of a STORE: UID (after UID STORE), FLAGS (unless .SILENT), MODSEQ
    /// (with CONDSTORE).
    pub(in crate::imap) fn store_answer(
        &mut self,
        index: usize,
        uid: bool,
        shown: Option<Flags>,
        record: &MessageRecord,
    ) {
        let recent = self
            .selection()
            .is_ok_and(|sel| sel.messages.get(index).is_some_and(|s| s.recent));
        let mut items = Vec::new();
        // RFC 7162 §3.2.4: once QRESYNC is on, every untagged FETCH carries the UID.
        // RFC 9051 §7.5.2: in IMAP4rev2 too.
        if uid || self.reporting.qresync || self.reporting.rev2 {
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
}

/// RFC 4314 §4: `\Seen` needs `s`, `\Deleted` needs `t`, every other flag `w`.
pub(in crate::imap) fn check_flag_rights(
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
pub(in crate::imap) fn apply_store(
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

pub(in crate::imap) const SYSTEM_FLAGS: [Flags; 5] = [
    Flags::SEEN,
    Flags::ANSWERED,
    Flags::FLAGGED,
    Flags::DELETED,
    Flags::DRAFT,
];

/// Which right changing `flag` needs: `s` for \Seen, `t` for \Deleted, `w` for the rest.
pub(in crate::imap) fn may_change(rights: Rights, flag: Flags) -> bool {
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
pub(in crate::imap) fn permitted(
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

pub(in crate::imap) fn apply_unmasked(
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

/// STORE's arguments besides the set and the flags.
pub(in crate::imap) struct StoreRequest {
    pub(in crate::imap) kind: StoreType,
    pub(in crate::imap) response: StoreResponse,
    /// RFC 7162 §3.1.3: change only messages not changed since.
    pub(in crate::imap) unchanged_since: Option<u64>,
}
