//! OBJECTID (RFC 8474) and SAVEDATE (RFC 8514), recognised around imap-codec, which knows
//! neither: their FETCH and STATUS items are taken out of the command and answered by the
//! session beside the others, and their SEARCH keys become a `UID` set of the selection's
//! matching messages before imap-codec parses the rest.

use super::extension::contains_ci;
use crate::store::{BlobId, MessageRecord};
use chrono::NaiveDate;

/// The items of RFC 8474 and RFC 8514 that a FETCH or STATUS asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectItems {
    pub email_id: bool,
    pub thread_id: bool,
    pub save_date: bool,
    pub mailbox_id: bool,
    /// Nothing else was asked: the item put in for imap-codec is not to be answered.
    pub alone: bool,
}

impl ObjectItems {
    pub fn any(self) -> bool {
        self.email_id || self.thread_id || self.save_date || self.mailbox_id
    }

    /// Marks `item` (upper case) as asked for; false when it is not one of these.
    fn take(&mut self, item: &str) -> bool {
        let flag = match item {
            "EMAILID" => &mut self.email_id,
            "THREADID" => &mut self.thread_id,
            "SAVEDATE" => &mut self.save_date,
            "MAILBOXID" => &mut self.mailbox_id,
            _ => return false,
        };
        *flag = true;
        true
    }
}

/// A SEARCH key of RFC 8474 §6 or RFC 8514 §4.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKey {
    EmailId(String),
    ThreadId(String),
    SavedBefore(NaiveDate),
    SavedOn(NaiveDate),
    SavedSince(NaiveDate),
    SaveDateSupported,
}

impl ObjectKey {
    /// Whether `record` matches. Every message has a save date here (RFC 8514 §4.2:
    /// SAVEDATESUPPORTED matches all of them), and none a thread (THREADID is NIL, §5.2 of
    /// RFC 8474), so THREADID matches nothing.
    pub fn matches(&self, record: &MessageRecord) -> bool {
        let saved = || {
            chrono::DateTime::from_timestamp_millis(record.saved)
                .unwrap_or_default()
                .date_naive()
        };
        match self {
            ObjectKey::EmailId(id) => email_id(&record.blob) == *id,
            ObjectKey::ThreadId(_) => false,
            ObjectKey::SavedBefore(d) => saved() < *d,
            ObjectKey::SavedOn(d) => saved() == *d,
            ObjectKey::SavedSince(d) => saved() >= *d,
            ObjectKey::SaveDateSupported => true,
        }
    }
}

/// RFC 8474 §5.1: the EMAILID of a message. Messages are content-addressed, so a message
/// keeps its id through COPY and MOVE (which the RFC asks for) and identical bytes share one
/// (which it allows: the content is immutable).
pub fn email_id(blob: &BlobId) -> String {
    format!("M{}", hex::encode(&blob.0[..12]))
}

/// RFC 8474 §4: the MAILBOXID of a folder: its store id, never reused and kept by RENAME.
pub fn mailbox_id(folder: crate::model::FolderId) -> String {
    format!("F{}", folder.0)
}

/// One token of a command: its span, and whether it is an atom (which may be a name).
struct Token {
    start: usize,
    end: usize,
    atom: bool,
}

/// Splits `bytes` from `pos` into tokens: parentheses, quoted strings, literals (inline, as
/// the fragmentizer delivers them), and atoms, which run to a space or a parenthesis and
/// take brackets whole (`BODY.PEEK[HEADER.FIELDS (A B)]<0.10>`). `None` when malformed:
/// the command is then left to imap-codec, which says why.
fn tokens(bytes: &[u8], mut pos: usize) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    while pos < bytes.len() {
        let start = pos;
        let (end, atom) = match bytes[pos] {
            b' ' | b'\r' | b'\n' => {
                pos += 1;
                continue;
            }
            b'(' | b')' => (pos + 1, false),
            b'"' => (quoted_end(bytes, pos)?, false),
            b'{' => (literal_end(bytes, pos)?, false),
            _ => (atom_end(bytes, pos)?, true),
        };
        out.push(Token { start, end, atom });
        pos = end;
    }
    Some(out)
}

fn quoted_end(bytes: &[u8], mut pos: usize) -> Option<usize> {
    pos += 1;
    while pos < bytes.len() {
        match bytes[pos] {
            b'\\' => pos += 2,
            b'"' => return Some(pos + 1),
            _ => pos += 1,
        }
    }
    None
}

fn literal_end(bytes: &[u8], pos: usize) -> Option<usize> {
    let close = pos + bytes[pos..].iter().position(|b| *b == b'}')?;
    let digits = std::str::from_utf8(&bytes[pos + 1..close]).ok()?;
    let n: usize = digits.trim_end_matches('+').parse().ok()?;
    let data = close + 1 + 2; // `}` then CRLF
    (bytes.get(close + 1..data)? == b"\r\n")
        .then_some(data.checked_add(n)?)
        .filter(|end| *end <= bytes.len())
}

fn atom_end(bytes: &[u8], mut pos: usize) -> Option<usize> {
    let mut depth = 0usize;
    while pos < bytes.len() {
        match bytes[pos] {
            b'[' => depth += 1,
            b']' => depth = depth.checked_sub(1)?,
            b'"' if depth > 0 => {
                pos = quoted_end(bytes, pos)?;
                continue;
            }
            b'{' if depth > 0 => {
                pos = literal_end(bytes, pos)?;
                continue;
            }
            b' ' | b'(' | b')' | b'\r' | b'\n' if depth == 0 => break,
            _ => {}
        }
        pos += 1;
    }
    Some(pos)
}

fn upper(bytes: &[u8], t: &Token) -> String {
    String::from_utf8_lossy(&bytes[t.start..t.end]).to_ascii_uppercase()
}

/// The command's name (after `UID`) and the index of the token after it.
fn command_name(bytes: &[u8], tokens: &[Token]) -> Option<(String, usize)> {
    let first = upper(bytes, tokens.get(1)?);
    if first == "UID" {
        return Some((upper(bytes, tokens.get(2)?), 3));
    }
    Some((first, 2))
}

/// Whether the command (after `UID`) is one of `verbs`, read from the first words alone:
/// every message passes here, an APPEND's megabytes too.
fn is_one_of(message: &[u8], verbs: &[&str]) -> bool {
    let mut words = message
        .split(|b| matches!(b, b' ' | b'\r' | b'\n'))
        .skip(1)
        .take(2);
    let verb = match words.next() {
        Some(w) if w.eq_ignore_ascii_case(b"UID") => words.next(),
        other => other,
    };
    verb.is_some_and(|v| verbs.iter().any(|n| v.eq_ignore_ascii_case(n.as_bytes())))
}

/// A FETCH or STATUS with the items of these extensions taken out, and which they were.
/// `None` when the message asks for none of them.
pub fn take_items(message: &[u8]) -> Option<(Vec<u8>, ObjectItems)> {
    let names: [&[u8]; 4] = [b"EMAILID", b"THREADID", b"SAVEDATE", b"MAILBOXID"];
    if !is_one_of(message, &["FETCH", "STATUS"]) || !names.iter().any(|n| contains_ci(message, n)) {
        return None;
    }
    let tokens = tokens(message, 0)?;
    let (name, next) = command_name(message, &tokens)?;
    // FETCH: `set items`; STATUS: `mailbox (items)`. Either way the items follow one token.
    let (filler, list) = match name.as_str() {
        "FETCH" => ("UID", next + 1),
        "STATUS" => ("(MESSAGES)", next + 1),
        _ => return None,
    };
    let mut items = ObjectItems::default();
    let mut keep: Vec<&Token> = Vec::new();
    let first = tokens.get(list)?;
    let parenthesized = &message[first.start..first.end] == b"(";
    let end = if parenthesized {
        list + tokens[list..]
            .iter()
            .position(|t| &message[t.start..t.end] == b")")?
    } else {
        list
    };
    let inner = if parenthesized {
        list + 1..end
    } else {
        list..list + 1
    };
    for t in &tokens[inner] {
        if !(t.atom && items.take(&upper(message, t))) {
            keep.push(t);
        }
    }
    if !items.any() {
        return None;
    }
    // What imap-codec needs when nothing else was asked: an item every answer may carry.
    let kept: Vec<&[u8]> = keep.iter().map(|t| &message[t.start..t.end]).collect();
    items.alone = kept.is_empty();
    let list_text = match (parenthesized, kept.is_empty()) {
        (_, true) => filler.as_bytes().to_vec(),
        (true, false) => [b"(".as_slice(), &kept.join(&b' '), b")"].concat(),
        (false, false) => kept.join(&b' '),
    };
    let mut out = message[..first.start].to_vec();
    out.extend_from_slice(&list_text);
    out.extend_from_slice(&message[tokens[end].end..]);
    Some((out, items))
}

/// The search keys that take string arguments, and how many (RFC 3501 §6.4.4, RFC 7162
/// §3.1.5, RFC 5032), so that an argument that happens to read `EMAILID` is not taken for
/// the key.
fn arity(key: &str) -> usize {
    match key {
        "BCC" | "BODY" | "CC" | "FROM" | "SUBJECT" | "TEXT" | "TO" | "KEYWORD" | "UNKEYWORD"
        | "BEFORE" | "ON" | "SINCE" | "SENTBEFORE" | "SENTON" | "SENTSINCE" | "LARGER"
        | "SMALLER" | "UID" | "OLDER" | "YOUNGER" | "CHARSET" => 1,
        "HEADER" => 2,
        _ => 0,
    }
}

/// A SEARCH, SORT or THREAD (UID or not) with the keys of these extensions replaced by what
/// `resolve` gives for each (a `UID` set); `None` when it has none. `Err` for a key whose
/// argument is wrong.
pub fn replace_keys(
    message: &[u8],
    mut resolve: impl FnMut(&ObjectKey) -> String,
) -> Option<Result<Vec<u8>, String>> {
    let names: [&[u8]; 3] = [b"EMAILID", b"THREADID", b"SAVED"];
    if !is_one_of(message, &["SEARCH", "SORT", "THREAD"])
        || !names.iter().any(|n| contains_ci(message, n))
    {
        return None;
    }
    let tokens = tokens(message, 0)?;
    let (name, next) = command_name(message, &tokens)?;
    if !matches!(name.as_str(), "SEARCH" | "SORT" | "THREAD") {
        return None;
    }
    let mut out = Vec::new();
    let mut copied = 0;
    let mut i = next;
    while i < tokens.len() {
        let t = &tokens[i];
        let key = if t.atom {
            upper(message, t)
        } else {
            String::new()
        };
        let (found, used) = match key.as_str() {
            "SAVEDATESUPPORTED" => (ObjectKey::SaveDateSupported, 1),
            "EMAILID" | "THREADID" | "SAVEDBEFORE" | "SAVEDON" | "SAVEDSINCE" => {
                let Some(arg) = tokens.get(i + 1) else {
                    return Some(Err(format!("{key} needs an argument")));
                };
                match object_key(&key, &string(message, arg)) {
                    Ok(k) => (k, 2),
                    Err(e) => return Some(Err(e)),
                }
            }
            "MODSEQ" => {
                // RFC 7162 §3.1.5: an optional entry name and type come before the value.
                let quoted = tokens.get(i + 1).is_some_and(|a| message[a.start] == b'"');
                i += if quoted { 4 } else { 2 };
                continue;
            }
            other => {
                i += 1 + arity(other);
                continue;
            }
        };
        out.extend_from_slice(&message[copied..t.start]);
        out.extend_from_slice(resolve(&found).as_bytes());
        copied = tokens[i + used - 1].end;
        i += used;
    }
    if copied == 0 {
        return None;
    }
    out.extend_from_slice(&message[copied..]);
    Some(Ok(out))
}

/// An argument's text: an atom or quoted string as it reads, a literal's bytes.
fn string(message: &[u8], t: &Token) -> String {
    let raw = &message[t.start..t.end];
    let text = match raw.first() {
        Some(b'"') => raw[1..raw.len() - 1].to_vec(),
        Some(b'{') => {
            let data = raw
                .iter()
                .position(|b| *b == b'\n')
                .map_or(raw.len(), |p| p + 1);
            raw[data..].to_vec()
        }
        _ => raw.to_vec(),
    };
    String::from_utf8_lossy(&text)
        .replace("\\\"", "\"")
        .replace("\\\\", "\\")
}

fn object_key(key: &str, arg: &str) -> Result<ObjectKey, String> {
    let date = || {
        NaiveDate::parse_from_str(arg, "%d-%b-%Y")
            .map_err(|_| format!("{key}: {arg:?} is no date (dd-Mon-yyyy)"))
    };
    // RFC 8474 §4: objectid = 1*255(ALPHA / DIGIT / "_" / "-").
    let valid_id = !arg.is_empty()
        && arg.len() <= 255
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match key {
        "EMAILID" | "THREADID" if !valid_id => Err(format!("{key}: {arg:?} is no object id")),
        "EMAILID" => Ok(ObjectKey::EmailId(arg.to_string())),
        "THREADID" => Ok(ObjectKey::ThreadId(arg.to_string())),
        "SAVEDBEFORE" => date().map(ObjectKey::SavedBefore),
        "SAVEDON" => date().map(ObjectKey::SavedOn),
        _ => date().map(ObjectKey::SavedSince),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(message: &str) -> Option<(String, ObjectItems)> {
        take_items(message.as_bytes()).map(|(m, i)| (String::from_utf8(m).unwrap(), i))
    }

    #[test]
    fn fetch_items_are_taken_out() {
        let (m, i) = take("a UID FETCH 1:* (FLAGS EMAILID SAVEDATE)\r\n").unwrap();
        assert_eq!(m, "a UID FETCH 1:* (FLAGS)\r\n");
        assert!(i.email_id && i.save_date && !i.thread_id);
        let (m, i) = take("a FETCH 1 (emailid threadid) (CHANGEDSINCE 4)\r\n").unwrap();
        assert_eq!(m, "a FETCH 1 UID (CHANGEDSINCE 4)\r\n");
        assert!(i.email_id && i.thread_id && i.alone);
        let (m, _) = take("a FETCH 2 THREADID\r\n").unwrap();
        assert_eq!(m, "a FETCH 2 UID\r\n");
        // A header named like an item, in a section, is the section's.
        let fetch = "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (EMAILID)] SAVEDATE)\r\n";
        let (m, i) = take(fetch).unwrap();
        assert_eq!(m, "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (EMAILID)])\r\n");
        assert!(i.save_date && !i.email_id);
        assert!(take("a FETCH 1 (BODY.PEEK[HEADER.FIELDS (EMAILID)])\r\n").is_none());
    }

    #[test]
    fn status_mailboxid_is_taken_out() {
        let (m, i) = take("a STATUS \"Sent Items\" (MESSAGES MAILBOXID)\r\n").unwrap();
        assert_eq!(m, "a STATUS \"Sent Items\" (MESSAGES)\r\n");
        assert!(i.mailbox_id);
        let (m, _) = take("a STATUS {9}\r\nMAILBOXID (MAILBOXID)\r\n").unwrap();
        assert_eq!(m, "a STATUS {9}\r\nMAILBOXID (MESSAGES)\r\n");
        assert!(take("a SELECT MAILBOXID\r\n").is_none());
        assert!(take("a APPEND INBOX {9}\r\nMAILBOXID\r\n").is_none());
        assert!(take("a uid fetch 1 emailid\r\n").is_some());
    }

    fn replace(message: &str) -> Option<Result<String, String>> {
        replace_keys(message.as_bytes(), |k| format!("<{k:?}>"))
            .map(|r| r.map(|m| String::from_utf8(m).unwrap()))
    }

    #[test]
    fn search_keys_are_replaced() {
        assert_eq!(
            replace("a UID SEARCH SEEN EMAILID M0a1 NOT SAVEDSINCE 1-Feb-2024\r\n"),
            Some(Ok(
                "a UID SEARCH SEEN <EmailId(\"M0a1\")> NOT <SavedSince(2024-02-01)>\r\n".into()
            ))
        );
        assert_eq!(
            replace("a SORT (DATE) UTF-8 OR SAVEDATESUPPORTED THREADID \"T1\"\r\n"),
            Some(Ok(
                "a SORT (DATE) UTF-8 OR <SaveDateSupported> <ThreadId(\"T1\")>\r\n".into()
            ))
        );
        // Arguments that read like keys stay arguments.
        assert_eq!(
            replace("a SEARCH SUBJECT EMAILID HEADER SAVEDON x\r\n"),
            None
        );
        assert!(matches!(
            replace("a SEARCH EMAILID \"a b\"\r\n"),
            Some(Err(_))
        ));
        assert!(matches!(
            replace("a SEARCH SAVEDON 31-Feb-2024\r\n"),
            Some(Err(_))
        ));
        assert!(matches!(replace("a SEARCH SAVEDON\r\n"), Some(Err(_))));
    }
}
