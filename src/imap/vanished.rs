//! VANISHED (EARLIER) for a client resynchronising (RFC 7162 §3.2.5.1 and §3.2.6).

use super::selection::{Selection, merged, ranges_text};
use crate::store::ExpungedSince;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// The UID set a VANISHED (EARLIER) response reports, `None` when empty: what the store knows
/// was expunged, or, where it forgot (RFC 7162 §3.2.6 allows a server to), every UID below
/// UIDNEXT the selection does not hold. Only UIDs in `within` count, when given.
pub(super) fn earlier(
    expunged: ExpungedSince,
    sel: &Selection,
    within: Option<&SequenceSet>,
) -> Option<String> {
    let gone = match expunged {
        ExpungedSince::Exactly(uids) => uids.iter().map(|u| (*u, *u)).collect(),
        ExpungedSince::Forgotten => missing(sel),
    };
    let gone = match within {
        Some(set) => intersection(&merged(gone), &ranges_of(set)),
        None => merged(gone),
    };
    (!gone.is_empty()).then(|| ranges_text(&gone))
}

/// The UID ranges below UIDNEXT that the selection does not hold.
fn missing(sel: &Selection) -> Vec<(u32, u32)> {
    let mut gaps = Vec::new();
    let mut next = 1u32;
    let held = sel.messages.iter().map(|s| s.uid);
    for uid in held.chain(std::iter::once(sel.folder.uidnext.max(1))) {
        if uid > next {
            gaps.push((next, uid - 1));
        }
        next = next.max(uid.saturating_add(1));
    }
    gaps
}

/// A client's set as sorted, disjoint ranges; `*` stands for any UID above (`n:*` holds
/// every UID from n).
fn ranges_of(set: &SequenceSet) -> Vec<(u32, u32)> {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => u32::MAX,
    };
    let ranges = set.0.as_ref().iter().map(|seq| match seq {
        Sequence::Single(v) => (value(v), value(v)),
        Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
    });
    merged(ranges.collect())
}

/// The UIDs in both lists of sorted, disjoint ranges.
fn intersection(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        let (lo, hi) = (x.0.max(y.0), x.1.min(y.1));
        if lo <= hi {
            out.push((lo, hi));
        }
        if x.1 < y.1 { i += 1 } else { j += 1 }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_meet_where_both_hold() {
        let a = merged(vec![(5, 9), (1, 2), (3, 3), (20, 30)]);
        assert_eq!(a, vec![(1, 3), (5, 9), (20, 30)]);
        let b = vec![(2, 6), (8, 25)];
        assert_eq!(intersection(&a, &b), vec![(2, 3), (5, 6), (8, 9), (20, 25)]);
        assert_eq!(intersection(&a, &[]), vec![]);
    }

    #[test]
    fn a_client_set_with_a_star_reaches_every_uid_above() {
        let set = SequenceSet::try_from("7:*,1,3:2").unwrap();
        assert_eq!(ranges_of(&set), vec![(1, 3), (7, u32::MAX)]);
    }
}
