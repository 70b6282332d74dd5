//! SEARCH RETURN's options (RFC 4731), PARTIAL results and searches kept up to date
//! (CONTEXT=SEARCH, RFC 5267 §4).

use super::folders::{Bad, Refusal};
use super::selection::{Selection, uid_set};
use super::session::{Session, State};
use std::collections::BTreeMap;

/// Searches one session may keep updated: each runs again after every change.
const MAX_LIVE_SEARCHES: usize = 8;

/// What a SEARCH RETURN (…) asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReturnOptions {
    pub min: bool,
    pub max: bool,
    pub count: bool,
    pub all: bool,
    pub save: bool,
    /// RFC 5267 §4.2: keep the result updated.
    pub update: bool,
    /// RFC 5267 §4.4: the hits at these positions (1-based, inclusive).
    pub partial: Option<(u32, u32)>,
}

impl ReturnOptions {
    /// The options as the RETURN list gave them (upper case); none at all means ALL.
    pub fn parse(returns: &[String]) -> Result<ReturnOptions, Refusal> {
        let mut o = ReturnOptions {
            all: returns.is_empty(),
            ..ReturnOptions::default()
        };
        let mut items = returns.iter();
        while let Some(item) = items.next() {
            match item.as_str() {
                "MIN" => o.min = true,
                "MAX" => o.max = true,
                "COUNT" => o.count = true,
                "ALL" => o.all = true,
                "SAVE" => o.save = true,
                "UPDATE" => o.update = true,
                // RFC 5267 §4.1: CONTEXT is a hint only.
                "CONTEXT" => {}
                "PARTIAL" => {
                    let range = items.next().map(String::as_str).unwrap_or_default();
                    o.partial = Some(partial_range(range)?);
                }
                other => return Err(Bad(format!("Unsupported RETURN option {other}"))),
            }
        }
        Ok(o)
    }
}

/// `m:n`, both positions from 1; given high to low, the same range.
fn partial_range(text: &str) -> Result<(u32, u32), Refusal> {
    let bad = || {
        Bad(format!(
            "PARTIAL needs a range of positions such as 1:100, not {text:?}"
        ))
    };
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    let a: u32 = a.parse().map_err(|_| bad())?;
    let b: u32 = b.parse().map_err(|_| bad())?;
    if a == 0 || b == 0 {
        return Err(bad());
    }
    Ok((a.min(b), a.max(b)))
}

/// ` PARTIAL (m:n set)` for the hits at those positions, `NIL` when there are none.
pub fn partial_item((lo, hi): (u32, u32), hits: &[u32]) -> String {
    let start = (lo - 1) as usize;
    let end = (hi as usize).min(hits.len());
    let set = match hits.get(start..end) {
        Some(chosen) if !chosen.is_empty() => uid_set(chosen),
        _ => "NIL".into(),
    };
    format!(" PARTIAL ({lo}:{hi} {set})")
}

/// The searches a session keeps updated in its selected folder.
#[derive(Default)]
pub struct LiveSearches {
    searches: Vec<LiveSearch>,
    /// The folder as the searches last saw it: (messages, last UID, highest MODSEQ).
    seen: (usize, u32, u64),
}

struct LiveSearch {
    tag: String,
    /// The search as a plain (UID) SEARCH.
    plain: Vec<u8>,
    uid: bool,
    /// The last result: UID → sequence number then.
    last: BTreeMap<u32, u32>,
}

impl LiveSearches {
    /// RFC 5267 §4.3.4: messages about to be reported expunged leave each kept result first,
    /// by the numbers they have until then; the lines to send before the EXPUNGEs.
    pub fn expunging(&mut self, gone: &[(usize, u32)]) -> Vec<String> {
        let mut lines = Vec::new();
        for search in &mut self.searches {
            let numbers: Vec<u32> = gone
                .iter()
                .filter(|(_, uid)| search.last.remove(uid).is_some())
                .map(|(seq, uid)| if search.uid { *uid } else { *seq as u32 })
                .collect();
            lines.extend(search.update_line("REMOVEFROM", &numbers));
        }
        lines
    }
}

impl LiveSearch {
    /// `ESEARCH (TAG "t") [UID] ADDTO|REMOVEFROM (0 set)`, `None` for no numbers.
    fn update_line(&self, verb: &str, numbers: &[u32]) -> Option<String> {
        if numbers.is_empty() {
            return None;
        }
        let uid = if self.uid { " UID" } else { "" };
        let set = uid_set(numbers);
        Some(format!(
            "ESEARCH (TAG \"{}\"){uid} {verb} (0 {set})",
            self.tag
        ))
    }
}

fn fingerprint(sel: &Selection) -> (usize, u32, u64) {
    let last = sel.messages.last().map_or(0, |s| s.uid);
    let modseq = sel.messages.iter().map(|s| s.modseq).max().unwrap_or(0);
    (sel.messages.len(), last, modseq)
}

/// The hits as UID → sequence number.
fn result_of(sel: &Selection, hits: &[u32], uid: bool) -> BTreeMap<u32, u32> {
    let pair = |n: &u32| {
        if uid {
            Some((*n, sel.seq_of(*n)? as u32))
        } else {
            Some((sel.messages.get(*n as usize - 1)?.uid, *n))
        }
    };
    hits.iter().filter_map(pair).collect()
}

impl Session {
    /// RFC 5267 §4.2: keeps a search updated; past the bound, says it will not (§4.3.1).
    pub(super) fn watch_search(&mut self, tag: &str, plain: &[u8], uid: bool, hits: &[u32]) {
        let State::Selected(_, sel) = &mut self.state else {
            return;
        };
        if sel.live.searches.len() >= MAX_LIVE_SEARCHES {
            let text = format!(
                "NO [NOUPDATE \"{tag}\"] At most {MAX_LIVE_SEARCHES} searches are kept updated"
            );
            self.untagged(&text);
            return;
        }
        let last = result_of(sel, hits, uid);
        sel.live.seen = fingerprint(sel);
        sel.live.searches.retain(|s| s.tag != tag);
        sel.live.searches.push(LiveSearch {
            tag: tag.to_string(),
            plain: plain.to_vec(),
            uid,
            last,
        });
    }

    /// RFC 5267 §4.3.5 CANCELUPDATE.
    pub(super) fn cancel_updates(&mut self, tags: &[String]) -> Result<String, Refusal> {
        let State::Selected(_, sel) = &mut self.state else {
            return Err(Bad("CANCELUPDATE needs a selected folder".into()));
        };
        sel.live.searches.retain(|s| !tags.contains(&s.tag));
        Ok("CANCELUPDATE completed".into())
    }

    /// RFC 5267 §4.3: after a change to the selected folder, what each kept search gained
    /// (ADDTO) and lost (REMOVEFROM; an expunged message by the number it had). Positions
    /// order a sorted context only: a SEARCH's are 0.
    pub(super) fn report_live_searches(&mut self) {
        let State::Selected(_, sel) = &mut self.state else {
            return;
        };
        // Every command ends here: a session without kept searches pays nothing.
        if sel.live.searches.is_empty() {
            return;
        }
        let now = fingerprint(sel);
        if sel.live.seen == now {
            return;
        }
        sel.live.seen = now;
        let mut searches = std::mem::take(&mut sel.live.searches);
        for search in &mut searches {
            let hits = match self.plain_search("SEARCH", &search.plain) {
                Ok(hits) => hits,
                Err(_) => continue,
            };
            let State::Selected(_, sel) = &self.state else {
                return;
            };
            let result = result_of(sel, &hits.numbers, search.uid);
            let number = |(uid, seq): (&u32, &u32)| if search.uid { *uid } else { *seq };
            let removed: Vec<u32> = (search.last.iter())
                .filter(|(uid, _)| !result.contains_key(uid))
                .map(number)
                .collect();
            let added: Vec<u32> = (result.iter())
                .filter(|(uid, _)| !search.last.contains_key(uid))
                .map(number)
                .collect();
            for (verb, numbers) in [("REMOVEFROM", removed), ("ADDTO", added)] {
                if let Some(line) = search.update_line(verb, &numbers) {
                    self.untagged(&line);
                }
            }
            search.last = result;
        }
        if let State::Selected(_, sel) = &mut self.state {
            sel.live.searches = searches;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(items: &[&str]) -> Result<ReturnOptions, Refusal> {
        ReturnOptions::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn return_options_and_partial_ranges() {
        assert!(options(&[]).unwrap().all);
        let o = options(&["PARTIAL", "4:2", "UPDATE"]).unwrap();
        assert_eq!((o.partial, o.update, o.all), (Some((2, 4)), true, false));
        for bad in [
            &["PARTIAL", "1"][..],
            &["PARTIAL", "1:*"],
            &["PARTIAL", "*:1"],
            &["PARTIAL"],
            &["FUZZY"],
        ] {
            assert!(matches!(options(bad), Err(Bad(_))), "{bad:?}");
        }
    }

    #[test]
    fn partial_takes_the_hits_at_those_positions() {
        let hits = [1, 2, 4, 5];
        assert_eq!(partial_item((1, 3), &hits), " PARTIAL (1:3 1:2,4)");
        assert_eq!(partial_item((2, 10), &hits), " PARTIAL (2:10 2,4:5)");
        assert_eq!(partial_item((5, 6), &hits), " PARTIAL (5:6 NIL)");
    }
}
