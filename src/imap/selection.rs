//! The selected folder as one session sees it: the sequence-number → UID map, the flags last
//! reported, and the changes other sessions made since (RFC 3501 §7: EXISTS, EXPUNGE and
//! FETCH FLAGS are reported at the next command, EXPUNGE only where it is allowed).

use crate::model::*;
use crate::store::{Flags, Folder, FolderEvent, MessageRecord, Store, StoreResult};
use std::collections::{BTreeMap, HashSet};
use tokio::sync::broadcast;

/// How the session reports: what ENABLE turned on (CONDSTORE, QRESYNC, UTF8=ACCEPT).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reporting {
    /// FETCH responses carry MODSEQ.
    pub condstore: bool,
    /// Expunges are reported as VANISHED (UIDs) instead of EXPUNGE (sequence numbers).
    pub qresync: bool,
    /// RFC 6855 §3 (UTF8=ACCEPT): folder names are sent as UTF-8, not modified UTF-7.
    pub utf8: bool,
    /// RFC 9051 (ENABLE IMAP4rev2): no `\Recent`, no RECENT or UNSEEN at SELECT, SEARCH
    /// answered as ESEARCH, a UID in every untagged FETCH.
    pub rev2: bool,
}

/// What the session knows of one message: 16 bytes a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub uid: u32,
    pub flags: Flags,
    /// Whether the message has keywords: without, FETCH (UID FLAGS) needs no store access.
    pub keywords: bool,
    /// RFC 3501 §2.3.2: this session is the first to see the message.
    pub recent: bool,
    pub modseq: u64,
}

pub struct Selection {
    pub mailbox: Mailbox,
    pub folder: Folder,
    /// The name the client selected it by.
    pub display: String,
    pub read_only: bool,
    pub rights: Rights,
    /// Sequence number n is `messages[n - 1]`.
    pub messages: Vec<Slot>,
    pub events: broadcast::Receiver<FolderEvent>,
    /// The user whose own `\Seen` counts, in a mailbox that keeps `\Seen` per user.
    pub seen_user: Option<UserId>,
    /// Expunges seen but not yet reported (they wait for a command that may report them).
    pending_expunge: bool,
    /// RFC 5182: the UIDs a SEARCH RETURN (SAVE) kept, which `$` names.
    pub saved: Vec<u32>,
    /// RFC 5267 §4.2: searches kept updated while this folder is selected.
    pub live: super::context::LiveSearches,
    /// The keywords the session was told of in FLAGS (RFC 3501 §7.2.6): every keyword a
    /// message of the folder has, so that a FETCH never shows one FLAGS did not list.
    /// By their lower-case form: keywords are case-insensitive.
    keywords: BTreeMap<String, String>,
    /// Whether the session has `\Recent` (RFC 9051 removed it, §2.3.2): a session without
    /// neither claims nor shows it, leaving it to the IMAP4rev1 sessions.
    with_recent: bool,
}

/// The system flags, which FLAGS always lists.
const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// How a session sees the folder it opens: see `Selection`'s fields of these names.
pub struct View {
    pub read_only: bool,
    pub rights: Rights,
    pub seen_user: Option<UserId>,
    pub with_recent: bool,
}

impl Selection {
    pub fn open(
        store: &Store,
        mailbox: Mailbox,
        folder: Folder,
        display: String,
        view: View,
    ) -> StoreResult<Selection> {
        let View {
            read_only,
            rights,
            seen_user,
            with_recent,
        } = view;
        let events = store.hub().subscribe_folder(mailbox.id, folder.id);
        let mut sel = Selection {
            mailbox,
            folder,
            display,
            read_only,
            rights,
            messages: Vec::new(),
            events,
            seen_user,
            pending_expunge: false,
            saved: Vec::new(),
            live: Default::default(),
            keywords: BTreeMap::new(),
            with_recent,
        };
        let loaded = sel.load_records(store)?;
        sel.learn_keywords(loaded.iter().flat_map(|(_, r)| &r.keywords));
        sel.messages = loaded.into_iter().map(|(slot, _)| slot).collect();
        let uidnext = sel.folder.uidnext;
        sel.mark_recent(store, 0, uidnext)?;
        Ok(sel)
    }

    /// The untagged FLAGS response: the system flags and the folder's keywords.
    pub fn flags_line(&self) -> String {
        let mut line = format!("FLAGS ({SYSTEM_FLAGS}");
        for k in self.keywords.values() {
            line.push(' ');
            line.push_str(k);
        }
        line.push(')');
        line
    }

    /// Adds keywords the session now shows; the FLAGS response to send first if any was new.
    pub fn learn_keywords<'k>(
        &mut self,
        keywords: impl Iterator<Item = &'k String>,
    ) -> Option<String> {
        let mut new = false;
        for k in keywords {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                self.keywords.entry(k.to_ascii_lowercase())
            {
                slot.insert(k.clone());
                new = true;
            }
        }
        new.then(|| self.flags_line())
    }

    /// Marks `\Recent` the messages from index `from` that are this session's to see so.
    /// Only what a read-write session claimed: a message that arrived while loading is
    /// claimed (or not) by the next sync, so two sessions never both see it `\Recent`. A
    /// read-only one (EXAMINE) sees what no session has claimed yet, and leaves it to the
    /// next SELECT (RFC 3501 §6.3.2: EXAMINE MUST NOT make messages lose `\Recent`).
    fn mark_recent(&mut self, store: &Store, from: usize, uidnext: u32) -> StoreResult<()> {
        if !self.with_recent {
            return Ok(());
        }
        let (mailbox, folder) = (self.mailbox.id, self.folder.id);
        let floor = if self.read_only {
            store.recent_floor(mailbox, folder)?
        } else {
            store.claim_recent(mailbox, folder, uidnext)?
        };
        self.messages[from..]
            .iter_mut()
            .filter(|s| (floor..uidnext).contains(&s.uid))
            .for_each(|s| s.recent = true);
        Ok(())
    }

    /// The folder's messages as this session sees them now, with their records.
    fn load_records(&self, store: &Store) -> StoreResult<Vec<(Slot, MessageRecord)>> {
        let records = store.messages(self.mailbox.id, self.folder.id)?;
        let seen = self.seen_set(store)?;
        Ok(records
            .into_iter()
            .map(|r| (self.slot(&r, seen.as_ref()), r))
            .collect())
    }

    /// The UIDs the session's user has seen, where the mailbox keeps `\Seen` per user.
    fn seen_set(&self, store: &Store) -> StoreResult<Option<HashSet<u32>>> {
        match self.seen_user {
            Some(user) => {
                let seen = store.user_seen(self.mailbox.id, self.folder.id, user)?;
                Ok(Some(seen.into_iter().collect()))
            }
            None => Ok(None),
        }
    }

    fn slot(&self, r: &MessageRecord, seen: Option<&HashSet<u32>>) -> Slot {
        let flags = match seen {
            Some(seen) => r.flags.with(Flags::SEEN, seen.contains(&r.uid)),
            None => r.flags,
        };
        Slot {
            uid: r.uid,
            flags,
            keywords: !r.keywords.is_empty(),
            recent: false,
            modseq: r.modseq,
        }
    }

    pub fn seq_of(&self, uid: u32) -> Option<usize> {
        self.messages
            .binary_search_by_key(&uid, |s| s.uid)
            .ok()
            .map(|i| i + 1)
    }

    /// Brings the session up to date, returning the untagged responses to send. Expunges are
    /// reported only when `allow_expunge` (RFC 3501 §7.4.1); until then the session keeps the
    /// expunged messages' sequence numbers.
    pub fn sync(
        &mut self,
        store: &Store,
        allow_expunge: bool,
        reporting: Reporting,
    ) -> StoreResult<Vec<String>> {
        let changed = crate::store::hub::drain(&mut self.events) || self.pending_expunge;
        if !changed {
            return Ok(Vec::new());
        }
        let now = self.load_records(store)?;
        let mut out = Vec::new();
        // Before any FETCH that shows a keyword another session created.
        out.extend(self.learn_keywords(now.iter().flat_map(|(_, r)| &r.keywords)));
        let present: HashSet<u32> = now.iter().map(|(s, _)| s.uid).collect();
        if allow_expunge {
            let gone: Vec<(usize, u32)> = (1..=self.messages.len())
                .map(|seq| (seq, self.messages[seq - 1].uid))
                .filter(|(_, uid)| !present.contains(uid))
                .collect();
            out.extend(self.live.expunging(&gone));
            if reporting.qresync && !gone.is_empty() {
                let uids: Vec<u32> = gone.iter().map(|(_, uid)| *uid).collect();
                out.push(format!("VANISHED {}", uid_set(&uids)));
            } else {
                // Highest sequence number first, so that each is still valid when applied.
                out.extend(gone.iter().rev().map(|(seq, _)| format!("{seq} EXPUNGE")));
            }
            self.messages.retain(|s| present.contains(&s.uid));
            self.pending_expunge = false;
        } else {
            self.pending_expunge = self.messages.iter().any(|s| !present.contains(&s.uid));
        }
        let by_uid: std::collections::HashMap<u32, &(Slot, MessageRecord)> =
            now.iter().map(|entry| (entry.0.uid, entry)).collect();
        for (i, slot) in self.messages.iter_mut().enumerate() {
            if let Some((fresh, record)) = by_uid.get(&slot.uid)
                && fresh.modseq != slot.modseq
            {
                *slot = Slot {
                    recent: slot.recent,
                    ..*fresh
                };
                let flags = recent_flag_list(slot, &record.keywords);
                let modseq = if reporting.condstore {
                    format!(" MODSEQ ({})", slot.modseq)
                } else {
                    String::new()
                };
                out.push(format!(
                    "{} FETCH (UID {} FLAGS {flags}{modseq})",
                    i + 1,
                    slot.uid
                ));
            }
        }
        let last = self.messages.last().map_or(0, |s| s.uid);
        let before = self.messages.len();
        self.messages
            .extend(now.iter().map(|(s, _)| *s).filter(|s| s.uid > last));
        if self.messages.len() != before {
            out.push(format!("{} EXISTS", self.messages.len()));
            let uidnext = self.messages.last().map_or(1, |s| s.uid + 1);
            self.mark_recent(store, before, uidnext)?;
            let recent = self.messages.iter().filter(|s| s.recent).count();
            out.push(format!("{recent} RECENT"));
        }
        if let Some(folder) = store.folder(self.mailbox.id, self.folder.id)? {
            self.folder = folder;
        }
        Ok(out)
    }
}

/// UIDs as a compact set: `1:3,7`.
pub fn uid_set(uids: &[u32]) -> String {
    ranges_text(&merged(uids.iter().map(|u| (*u, *u)).collect()))
}

/// Sorts ranges and joins those that overlap or touch.
pub fn merged(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Sorted, disjoint UID ranges in IMAP's set syntax: `1:3,7`.
pub fn ranges_text(ranges: &[(u32, u32)]) -> String {
    let part = |&(lo, hi): &(u32, u32)| {
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}:{hi}")
        }
    };
    ranges.iter().map(part).collect::<Vec<_>>().join(",")
}

/// A FLAGS list with `\Recent` where the slot is recent.
pub fn recent_flag_list(slot: &Slot, keywords: &[String]) -> String {
    let mut out = Vec::new();
    super::wire::flags(&mut out, slot.flags, keywords, slot.recent);
    String::from_utf8_lossy(&out).into_owned()
}
