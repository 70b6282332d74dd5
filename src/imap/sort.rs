//! SORT (RFC 5256 §3) and SORT=DISPLAY (RFC 5957): the messages a search matched, ordered
//! by keys read from the stored summaries.

use super::folders::{Bad, Refusal};
use super::session::Session;
use crate::mail::{EnvelopeAddress, MessageSummary};
use crate::store::MessageRecord;
use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// One sort criterion: a key, in reverse or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortCriterion {
    pub key: SortKey,
    pub reverse: bool,
}

/// The criteria of `SORT (…)`, given as upper-case atoms.
pub fn parse_criteria(atoms: &[String]) -> Result<Vec<SortCriterion>, String> {
    let mut out = Vec::new();
    let mut reverse = false;
    for atom in atoms {
        let key = match atom.as_str() {
            "REVERSE" if !reverse => {
                reverse = true;
                continue;
            }
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            other => return Err(format!("unknown sort criterion {other}")),
        };
        out.push(SortCriterion { key, reverse });
        reverse = false;
    }
    if reverse || out.is_empty() {
        return Err("a sort criterion is missing".into());
    }
    Ok(out)
}

/// A key's value for one message: compared as numbers or as text mapped to upper case
/// (i;ascii-casemap, RFC 4790 §9.2: `[` and `_` sort after letters).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Number(i64),
    Text(String),
}

fn value(key: SortKey, record: &MessageRecord, summary: &MessageSummary) -> Value {
    let envelope = &summary.envelope;
    match key {
        SortKey::Arrival => Value::Number(record.internal_date),
        SortKey::Size => Value::Number(record.size as i64),
        SortKey::Date => Value::Number(sent_date(record, summary)),
        SortKey::From => Value::Text(mailbox_part(&envelope.from)),
        SortKey::To => Value::Text(mailbox_part(&envelope.to)),
        SortKey::Cc => Value::Text(mailbox_part(&envelope.cc)),
        SortKey::DisplayFrom => Value::Text(display(&envelope.from)),
        SortKey::DisplayTo => Value::Text(display(&envelope.to)),
        SortKey::Subject => {
            let subject = summary
                .headers
                .iter()
                .find(|(name, _)| name == "subject")
                .map_or("", |(_, v)| v.as_str());
            Value::Text(base_subject(subject).to_uppercase())
        }
    }
}

/// RFC 5256 §3: the sent date in UTC, in milliseconds; the internal date when there is none.
pub(super) fn sent_date(record: &MessageRecord, summary: &MessageSummary) -> i64 {
    summary
        .envelope
        .date
        .as_deref()
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(d.trim()).ok())
        .map_or(record.internal_date, |d| d.timestamp_millis())
}

/// The first address of a list; a group's name counts as one (its mailbox is the name), and
/// so does a bare word (`From: d`, which Dovecot reads as a mailbox without a domain).
fn first(list: &[EnvelopeAddress]) -> Option<&EnvelopeAddress> {
    list.iter()
        .find(|a| a.mailbox.is_some() || a.name.is_some())
}

/// RFC 5256 §3: FROM, TO and CC compare the first address's mailbox (local part).
fn mailbox_part(list: &[EnvelopeAddress]) -> String {
    first(list)
        .and_then(|a| a.mailbox.as_deref().or(a.name.as_deref()))
        .unwrap_or_default()
        .to_uppercase()
}

/// RFC 5957 §3: the display name, or the address where there is none.
fn display(list: &[EnvelopeAddress]) -> String {
    let Some(a) = first(list) else {
        return String::new();
    };
    match a.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => name.to_uppercase(),
        _ => match (a.mailbox.as_deref(), a.host.as_deref()) {
            (Some(mailbox), Some(host)) => format!("{mailbox}@{host}").to_uppercase(),
            (mailbox, _) => mailbox.unwrap_or_default().to_uppercase(),
        },
    }
}

/// RFC 5256 §2.1: the subject without its reply and forward markers, blobs and trailers.
pub fn base_subject(subject: &str) -> String {
    // (1) Whitespace runs become one space.
    let mut s = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let before = s.clone();
        // (2) Trailers: "(fwd)" and whitespace at the end.
        loop {
            let trimmed = s.trim_end();
            match strip_suffix_ci(trimmed, "(fwd)") {
                Some(rest) => s = rest.to_string(),
                None => {
                    s = trimmed.to_string();
                    break;
                }
            }
        }
        // (3) and (4): leaders ("Re:", "[blob] Fwd:") and a leading blob that leaves text.
        loop {
            let stepped = strip_leader(&s).or_else(|| strip_blob(&s));
            match stepped {
                Some(rest) => s = rest,
                None => break,
            }
        }
        // (6) "[fwd: …]" around the whole subject.
        if let Some(inner) = strip_prefix_ci(&s, "[fwd:").and_then(|r| r.strip_suffix(']')) {
            s = inner.trim().to_string();
            continue;
        }
        if s == before {
            return s;
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let start = s.len().checked_sub(suffix.len())?;
    let tail = s.get(start..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..start])
}

/// `[blob]` at the start: its length, with the whitespace after it.
fn blob_len(s: &str) -> Option<usize> {
    if !s.starts_with('[') {
        return None;
    }
    let end = s[1..].find([']', '['])? + 1;
    if s.as_bytes()[end] != b']' {
        return None;
    }
    let rest = &s[end + 1..];
    Some(s.len() - rest.trim_start().len())
}

/// subj-leader: `*(blob) ("re" / "fw" / "fwd") [blob] ":"`, and the whitespace after it.
fn strip_leader(s: &str) -> Option<String> {
    let mut rest = s;
    while let Some(n) = blob_len(rest) {
        rest = &rest[n..];
    }
    let rest = ["fwd", "fw", "re"]
        .iter()
        .find_map(|w| strip_prefix_ci(rest, w))?;
    let rest = rest.trim_start();
    let rest = match blob_len(rest) {
        Some(n) => &rest[n..],
        None => rest,
    };
    let rest = rest.strip_prefix(':')?;
    Some(rest.trim_start().to_string())
}

/// subj-blob at the start, when what follows is not empty.
fn strip_blob(s: &str) -> Option<String> {
    let n = blob_len(s)?;
    let rest = &s[n..];
    (!rest.is_empty()).then(|| rest.to_string())
}

impl Session {
    /// SORT and UID SORT: `plain` is the search part as a SEARCH command for imap-codec
    /// (a UID SEARCH for UID SORT). Ties keep the order of the numbers, UIDs or sequence
    /// numbers alike.
    pub(super) fn sort(
        &mut self,
        tag: &str,
        returns: Option<&[String]>,
        criteria: &[SortCriterion],
        plain: &[u8],
    ) -> Result<String, Refusal> {
        if let Some(bad) = returns
            .unwrap_or_default()
            .iter()
            .find(|r| !["MIN", "MAX", "COUNT", "ALL"].contains(&r.as_str()))
        {
            return Err(Bad(format!("Unsupported RETURN option {bad}")));
        }
        let hits = self.plain_search("SORT", plain)?;
        let mut rows: Vec<(Vec<Value>, u32)> = hits
            .summarized(&self.services.store)
            .into_iter()
            .map(|(number, record, summary)| {
                let values = criteria
                    .iter()
                    .map(|c| value(c.key, record, &summary))
                    .collect();
                (values, number)
            })
            .collect();
        // Ties keep the folder's order (RFC 5256 §3): REVERSE turns its own key only.
        rows.sort_by(|a, b| {
            criteria
                .iter()
                .zip(a.0.iter().zip(&b.0))
                .map(|(c, (x, y))| if c.reverse { y.cmp(x) } else { x.cmp(y) })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
                .then(a.1.cmp(&b.1))
        });
        let numbers: Vec<u32> = rows.iter().map(|(_, n)| *n).collect();
        match returns {
            None => {
                let list: String = numbers.iter().map(|n| format!(" {n}")).collect();
                self.untagged(&format!("SORT{list}"));
            }
            Some(returns) => self.untagged(&esort_line(tag, hits.uid, returns, &numbers)),
        }
        Ok(if hits.uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        }
        .into())
    }
}

/// RFC 5267 §3.1: an ESEARCH answer in sort order: MIN and MAX are the first and last
/// sorted, ALL lists them in order (runs of consecutive numbers as ranges).
fn esort_line(tag: &str, uid: bool, returns: &[String], numbers: &[u32]) -> String {
    let all = returns.is_empty();
    let want = |o: &str| (all && o == "ALL") || returns.iter().any(|r| r == o);
    let mut line = format!("ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    if let (true, Some(min)) = (want("MIN"), numbers.first()) {
        line.push_str(&format!(" MIN {min}"));
    }
    if let (true, Some(max)) = (want("MAX"), numbers.last()) {
        line.push_str(&format!(" MAX {max}"));
    }
    if want("COUNT") {
        line.push_str(&format!(" COUNT {}", numbers.len()));
    }
    if want("ALL") && !numbers.is_empty() {
        line.push_str(" ALL ");
        line.push_str(&ordered_set(numbers));
    }
    line
}

/// Numbers in the given order, ascending runs written `a:b`.
fn ordered_set(numbers: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        parts.push(if end > start {
            format!("{start}:{end}")
        } else {
            start.to_string()
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        for (subject, base) in [
            ("a", "a"),
            ("Re: b", "b"),
            ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b"),
            ("Re: [FWD: c]", "c"),
            ("[xyz]", "[xyz]"),
            ("RE: C", "C"),
            ("Ad: Re: Ad: Re: Ad: x", "Ad: Re: Ad: Re: Ad: x"),
            ("re: [fwd: [fwd: re: [fwd: babylon]]]", "babylon"),
            ("b (a)", "b (a)"),
        ] {
            assert_eq!(base_subject(subject), base, "{subject}");
        }
    }

    #[test]
    fn esort_keeps_the_sort_order() {
        assert_eq!(ordered_set(&[3, 4, 5, 1, 9, 8]), "3:5,1,9,8");
        let all = esort_line("t", false, &[], &[2, 1, 3]);
        assert_eq!(all, "ESEARCH (TAG \"t\") ALL 2,1,3");
        let ends = esort_line("t", true, &["MIN".into(), "MAX".into()], &[2, 1, 3]);
        assert_eq!(ends, "ESEARCH (TAG \"t\") UID MIN 2 MAX 3");
    }

    #[test]
    fn criteria() {
        let atoms = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            parse_criteria(&atoms("REVERSE DATE SIZE")).unwrap(),
            [
                SortCriterion {
                    key: SortKey::Date,
                    reverse: true
                },
                SortCriterion {
                    key: SortKey::Size,
                    reverse: false
                }
            ]
        );
        assert!(parse_criteria(&atoms("REVERSE")).is_err());
        assert!(parse_criteria(&atoms("REVERSE REVERSE DATE")).is_err());
        assert!(parse_criteria(&atoms("COLOUR")).is_err());
    }
}
