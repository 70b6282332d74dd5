//! The commands imap-codec does not parse, recognised around it: the ACL extension
//! (RFC 4314 §3), LIST's selection and RETURN options (RFC 5258, 5819, 6154), SEARCH
//! RETURN (ESEARCH, RFC 4731; PARTIAL and UPDATE, RFC 5267) and CANCELUPDATE, SORT and
//! THREAD (RFC 5256), MULTIAPPEND and CATENATE (`append`), NOTIFY (`notify`). A complete
//! message (literals inline, as the fragmentizer delivers it) is checked here first; anything
//! else goes to imap-codec unchanged. For ESEARCH, SORT and THREAD the search criteria are
//! left for imap-codec to parse.

use super::syntax::{Parser, atom_char};

/// A command of an extension imap-codec lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtCommand {
    MyRights {
        mailbox: String,
    },
    GetAcl {
        mailbox: String,
    },
    ListRights {
        mailbox: String,
        identifier: String,
    },
    SetAcl {
        mailbox: String,
        identifier: String,
        rights: String,
    },
    DeleteAcl {
        mailbox: String,
        identifier: String,
    },
    /// LIST with selection or RETURN options.
    ListExtended(ListExtended),
    /// SEARCH RETURN (…): the options, and the plain SEARCH for imap-codec to parse.
    Esearch {
        returns: Vec<String>,
        plain: Vec<u8>,
    },
    /// THREAD (RFC 5256 §4): the algorithm, and the search as a plain (UID) SEARCH.
    Thread {
        algorithm: super::thread::Algorithm,
        plain: Vec<u8>,
    },
    /// NOTIFY (RFC 5465).
    Notify(super::notify::NotifyCommand),
    /// CANCELUPDATE (RFC 5267 §4.3.5): the tags of searches no longer to update.
    CancelUpdate {
        tags: Vec<String>,
    },
    /// APPEND of several messages (RFC 3502) or with CATENATE (RFC 4469).
    AppendMany(super::append::AppendMany),
    /// SORT (RFC 5256): the criteria, and the search as a plain (UID) SEARCH for imap-codec.
    Sort {
        /// ESORT (RFC 5267 §3): `SORT RETURN (…)`, answered as ESEARCH.
        returns: Option<Vec<String>>,
        criteria: Vec<super::sort::SortCriterion>,
        plain: Vec<u8>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListExtended {
    /// Selection options, upper case: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE.
    pub select: Vec<String>,
    pub reference: String,
    pub patterns: Vec<String>,
    /// RETURN options, upper case: SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS.
    pub returns: Vec<String>,
    /// The items of RETURN (STATUS (…)), upper case.
    pub status: Vec<String>,
}

/// A folder name or pattern from the wire, decoded from modified UTF-7 (RFC 3501 §5.1.3).
/// One that is not valid modified UTF-7 is still a string: kept as it came, it names no
/// folder, so that the answer is a NO (or an empty LIST), not a BAD that some clients take
/// as the end of the connection.
pub(super) fn folder_name(wire: &str) -> String {
    super::utf7::decode(wire).unwrap_or_else(|| wire.to_string())
}

/// `None` when the message is not one of ours; otherwise the tag and the command, or the tag
/// and why its arguments are wrong.
pub fn recognize(message: &[u8]) -> Option<(String, Result<ExtCommand, String>)> {
    let mut p = Parser {
        input: message,
        pos: 0,
    };
    let tag = p.atom()?;
    p.space().ok()?;
    let name = p.atom()?.to_ascii_uppercase();
    match name.as_str() {
        "LIST" => return list_extended(&mut p).map(|r| (tag, r)),
        "NOTIFY" => {
            let parsed = super::notify::parse(&mut p).map_err(|e| format!("NOTIFY: {e}"));
            return Some((tag, parsed.map(ExtCommand::Notify)));
        }
        "CANCELUPDATE" => {
            let mut tags = Vec::new();
            let parsed = loop {
                if let Err(e) = p.space().and_then(|_| p.astring()).map(|t| tags.push(t)) {
                    break Err(format!("CANCELUPDATE: {e}"));
                }
                if p.end().is_ok() {
                    break Ok(ExtCommand::CancelUpdate { tags });
                }
            };
            return Some((tag, parsed));
        }
        "APPEND" => {
            let append = super::append::recognize(&mut p)?;
            return Some((tag, append.map(ExtCommand::AppendMany)));
        }
        "SEARCH" => return esearch(&mut p, &tag, message, false).map(|r| (tag, r)),
        "SORT" => return Some((tag.clone(), sort(&mut p, &tag, message, false))),
        "THREAD" => return Some((tag.clone(), thread(&mut p, &tag, message, false))),
        "UID" => {
            p.space().ok()?;
            let sub = p.atom()?.to_ascii_uppercase();
            return match sub.as_str() {
                "SEARCH" => esearch(&mut p, &tag, message, true).map(|r| (tag, r)),
                "SORT" => Some((tag.clone(), sort(&mut p, &tag, message, true))),
                "THREAD" => Some((tag.clone(), thread(&mut p, &tag, message, true))),
                _ => None,
            };
        }
        _ => {}
    }
    let arity = match name.as_str() {
        "MYRIGHTS" | "GETACL" => 1,
        "LISTRIGHTS" | "DELETEACL" => 2,
        "SETACL" => 3,
        _ => return None,
    };
    let args = (0..arity)
        .map(|_| p.space().and_then(|_| p.astring()))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|args| p.end().map(|_| args));
    // The first argument is a folder name, in modified UTF-7 on the wire.
    let args = args.map(|mut a| {
        a[0] = folder_name(&a[0]);
        a
    });
    let command = args.map(|mut a| {
        let mut next = || a.remove(0);
        match name.as_str() {
            "MYRIGHTS" => ExtCommand::MyRights { mailbox: next() },
            "GETACL" => ExtCommand::GetAcl { mailbox: next() },
            "LISTRIGHTS" => ExtCommand::ListRights {
                mailbox: next(),
                identifier: next(),
            },
            "DELETEACL" => ExtCommand::DeleteAcl {
                mailbox: next(),
                identifier: next(),
            },
            _ => ExtCommand::SetAcl {
                mailbox: next(),
                identifier: next(),
                rights: next(),
            },
        }
    });
    Some((tag, command.map_err(|e| format!("{name}: {e}"))))
}

/// `tag LOGIN a*b pw` with the user name quoted, when it is an atom but for `*`: the
/// delegation form (`contact@acme.example*lucie@acme.example`) as scripts and Python's
/// imaplib send it unquoted. `*` is no ATOM-CHAR (RFC 3501 §9), but Dovecot takes it, and
/// the name can mean nothing else. `None` for any other message.
pub fn quote_login_name(message: &[u8]) -> Option<Vec<u8>> {
    let mut p = Parser {
        input: message,
        pos: 0,
    };
    p.atom()?;
    p.space().ok()?;
    if !p.atom()?.eq_ignore_ascii_case("LOGIN") {
        return None;
    }
    p.space().ok()?;
    let start = p.pos;
    while p.peek().is_some_and(|b| b == b'*' || atom_char(b)) {
        p.pos += 1;
    }
    let name = &message[start..p.pos];
    if !name.contains(&b'*') || p.peek() != Some(b' ') {
        return None;
    }
    let mut out = Vec::with_capacity(message.len() + 2);
    out.extend_from_slice(&message[..start]);
    out.push(b'"');
    out.extend_from_slice(name);
    out.push(b'"');
    out.extend_from_slice(&message[p.pos..]);
    Some(out)
}

/// `SEARCH RETURN (opts) criteria` → the options and `tag [UID] SEARCH criteria`; `None` for a
/// SEARCH without RETURN, which imap-codec takes as it is.
fn esearch(
    p: &mut Parser<'_>,
    tag: &str,
    message: &[u8],
    uid: bool,
) -> Option<Result<ExtCommand, String>> {
    let save = p.pos;
    if p.space().is_err() || !p.atom().is_some_and(|w| w.eq_ignore_ascii_case("RETURN")) {
        p.pos = save;
        return None;
    }
    let result = (|| {
        p.space()?;
        let returns =
            p.paren_list(|p| p.atom().ok_or_else(|| "expected a RETURN option".into()))?;
        p.space()?;
        let verb = if uid { "UID SEARCH" } else { "SEARCH" };
        let mut plain = format!("{tag} {verb} ").into_bytes();
        plain.extend_from_slice(&message[p.pos..]);
        let returns = returns
            .into_iter()
            .map(|r| r.to_ascii_uppercase())
            .collect();
        Ok(ExtCommand::Esearch { returns, plain })
    })();
    Some(result.map_err(|e: String| format!("SEARCH: {e}")))
}

/// `THREAD algorithm charset search-criteria` → the algorithm and `tag SEARCH CHARSET
/// charset search-criteria` for imap-codec.
fn thread(p: &mut Parser<'_>, tag: &str, message: &[u8], uid: bool) -> Result<ExtCommand, String> {
    use super::thread::Algorithm;
    let result = (|| {
        p.space()?;
        let algorithm = match p.atom().map(|a| a.to_ascii_uppercase()).as_deref() {
            Some("ORDEREDSUBJECT") => Algorithm::OrderedSubject,
            Some("REFERENCES") => Algorithm::References,
            _ => return Err("unknown threading algorithm".to_string()),
        };
        let plain = search_part(p, tag, message, uid)?;
        Ok(ExtCommand::Thread { algorithm, plain })
    })();
    result.map_err(|e: String| format!("THREAD: {e}"))
}

/// ` charset search-criteria` at `p` → `tag [UID] SEARCH CHARSET charset search-criteria`.
fn search_part(
    p: &mut Parser<'_>,
    tag: &str,
    message: &[u8],
    uid: bool,
) -> Result<Vec<u8>, String> {
    p.space()?;
    let charset = p.astring()?;
    p.space()?;
    let verb = if uid { "UID SEARCH" } else { "SEARCH" };
    let mut plain = Vec::new();
    plain.extend_from_slice(format!("{tag} {verb} CHARSET ").as_bytes());
    super::wire::astring(&mut plain, &charset);
    plain.push(b' ');
    plain.extend_from_slice(&message[p.pos..]);
    Ok(plain)
}

/// `SORT (criteria) charset search-criteria` → the criteria and `tag SEARCH CHARSET charset
/// search-criteria` for imap-codec.
fn sort(p: &mut Parser<'_>, tag: &str, message: &[u8], uid: bool) -> Result<ExtCommand, String> {
    let result = (|| {
        p.space()?;
        let save = p.pos;
        let returns = if p.atom().is_some_and(|w| w.eq_ignore_ascii_case("RETURN")) {
            p.space()?;
            let options =
                p.paren_list(|p| p.atom().ok_or_else(|| "expected a RETURN option".into()))?;
            p.space()?;
            Some(options.iter().map(|o| o.to_ascii_uppercase()).collect())
        } else {
            p.pos = save;
            None
        };
        let atoms = p.paren_list(|p| p.atom().ok_or_else(|| "expected a sort criterion".into()))?;
        let criteria = super::sort::parse_criteria(
            &atoms
                .iter()
                .map(|a| a.to_ascii_uppercase())
                .collect::<Vec<_>>(),
        )?;
        let plain = search_part(p, tag, message, uid)?;
        Ok(ExtCommand::Sort {
            returns,
            criteria,
            plain,
        })
    })();
    result.map_err(|e: String| format!("SORT: {e}"))
}

/// Whether a parenthesized list of patterns follows the reference (RFC 5258 §3: `LIST ""
/// ("a" "b")`), which imap-codec does not take.
fn pattern_list_follows(p: &mut Parser<'_>) -> bool {
    p.space().is_ok() && p.astring().is_ok() && p.space().is_ok() && p.peek() == Some(b'(')
}

/// LIST with selection options (`LIST (SUBSCRIBED) …`), several patterns (`("a" "b")`) or
/// RETURN options; `None` for a plain LIST, which imap-codec takes.
fn list_extended(p: &mut Parser<'_>) -> Option<Result<ExtCommand, String>> {
    let start = p.pos;
    let extended = {
        let rest = &p.input[start..];
        rest.starts_with(b" (") || contains_ci(rest, b" RETURN (") || pattern_list_follows(p)
    };
    p.pos = start;
    if !extended {
        return None;
    }
    let result = (|| {
        let mut list = ListExtended::default();
        p.space()?;
        if p.peek() == Some(b'(') {
            list.select =
                p.paren_list(|p| p.atom().ok_or_else(|| "expected a selection option".into()))?;
            p.space()?;
        }
        list.reference = folder_name(&p.astring()?);
        p.space()?;
        let patterns = if p.peek() == Some(b'(') {
            p.paren_list(|p| p.list_mailbox())?
        } else {
            vec![p.list_mailbox()?]
        };
        list.patterns = patterns.iter().map(|p| folder_name(p)).collect();
        if p.space().is_ok() {
            if !p.atom().is_some_and(|w| w.eq_ignore_ascii_case("RETURN")) {
                return Err("expected RETURN".into());
            }
            p.space()?;
            p.expect(b'(')?;
            while p.peek() != Some(b')') {
                let option = p
                    .atom()
                    .ok_or("expected a RETURN option")?
                    .to_ascii_uppercase();
                if option == "STATUS" {
                    p.space()?;
                    list.status =
                        p.paren_list(|p| p.atom().ok_or_else(|| "expected a STATUS item".into()))?;
                }
                list.returns.push(option);
                if p.peek() == Some(b' ') {
                    p.pos += 1;
                }
            }
            p.pos += 1;
        }
        p.end()?;
        for v in list.select.iter_mut().chain(list.status.iter_mut()) {
            *v = v.to_ascii_uppercase();
        }
        Ok(ExtCommand::ListExtended(list))
    })();
    Some(result.map_err(|e: String| format!("LIST: {e}")))
}

/// RFC 5182 SEARCHRES: replaces every `$` that stands as a sequence set (outside quoted
/// strings and literals) with `uids` in a UID command, `seqs` otherwise, so that imap-codec
/// parses the command as if the client had written the set. `None` when there is no `$`.
pub fn replace_saved(message: &[u8], uids: &str, seqs: &str) -> Option<Vec<u8>> {
    if !message.contains(&b'$') {
        return None;
    }
    let uid_command = message
        .split(|b| *b == b' ')
        .nth(1)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"UID"));
    let set = if uid_command { uids } else { seqs };
    let mut out = Vec::with_capacity(message.len() + set.len());
    let (mut i, mut quoted, mut found) = (0, false, false);
    while i < message.len() {
        let b = message[i];
        if quoted {
            if b == b'\\' && i + 1 < message.len() {
                out.extend_from_slice(&message[i..i + 2]);
                i += 2;
                continue;
            }
            quoted = b != b'"';
        } else if b == b'"' {
            quoted = true;
        } else if b == b'{' {
            // Copy a literal through untouched.
            if let Some(len) = literal_length(&message[i..]) {
                let (head, body) = len;
                let end = i
                    .saturating_add(head)
                    .saturating_add(body)
                    .min(message.len());
                out.extend_from_slice(&message[i..end]);
                i = end;
                continue;
            }
        } else if b == b'$' {
            let before = i.checked_sub(1).map(|j| message[j]);
            let after = message.get(i + 1).copied();
            if matches!(before, Some(b' ' | b'('))
                && matches!(after, Some(b' ' | b')' | b'\r' | b'\n'))
            {
                out.extend_from_slice(set.as_bytes());
                found = true;
                i += 1;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    found.then_some(out)
}

/// For `{n}\r\n…` at the start of `bytes`: the length of `{n}\r\n` and n.
fn literal_length(bytes: &[u8]) -> Option<(usize, usize)> {
    let close = bytes.iter().position(|b| *b == b'}')?;
    let n: usize = std::str::from_utf8(&bytes[1..close])
        .ok()?
        .trim_end_matches('+')
        .parse()
        .ok()?;
    let head = close
        + 1
        + if bytes.get(close + 1) == Some(&b'\r') {
            2
        } else {
            1
        };
    Some((head, n))
}

pub(super) fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_commands_are_recognised_with_every_string_form() {
        assert_eq!(
            recognize(b"a1 MYRIGHTS INBOX\r\n"),
            Some((
                "a1".into(),
                Ok(ExtCommand::MyRights {
                    mailbox: "INBOX".into()
                })
            ))
        );
        assert_eq!(
            recognize(b"a2 setacl \"Shared/x\" {4}\r\nuser +lr\r\n"),
            Some((
                "a2".into(),
                Ok(ExtCommand::SetAcl {
                    mailbox: "Shared/x".into(),
                    identifier: "user".into(),
                    rights: "+lr".into()
                })
            ))
        );
    }

    #[test]
    fn an_unquoted_delegation_login_is_quoted() {
        assert_eq!(
            quote_login_name(b"a1 LOGIN contact@acme.example*lucie@acme.example pw\r\n").as_deref(),
            Some(&b"a1 LOGIN \"contact@acme.example*lucie@acme.example\" pw\r\n"[..])
        );
        assert_eq!(
            quote_login_name(b"a1 LOGIN plain@acme.example pw\r\n"),
            None
        );
        assert_eq!(quote_login_name(b"a1 LOGIN \"a*b\" pw\r\n"), None);
        assert_eq!(quote_login_name(b"a1 SELECT a*b\r\n"), None);
    }

    #[test]
    fn list_extended_forms() {
        let (_, r) = recognize(b"a LIST (SUBSCRIBED) \"\" (\"INBOX\" %) RETURN (CHILDREN STATUS (MESSAGES UNSEEN))\r\n").unwrap();
        let ExtCommand::ListExtended(l) = r.unwrap() else {
            panic!()
        };
        assert_eq!(l.select, ["SUBSCRIBED"]);
        assert_eq!(l.patterns, ["INBOX", "%"]);
        assert_eq!(l.returns, ["CHILDREN", "STATUS"]);
        assert_eq!(l.status, ["MESSAGES", "UNSEEN"]);
        assert_eq!(
            recognize(b"a LIST \"\" *\r\n"),
            None,
            "a plain LIST is imap-codec's"
        );
    }

    #[test]
    fn search_return_keeps_the_criteria_for_imap_codec() {
        let (_, r) = recognize(b"t UID SEARCH RETURN (MIN COUNT) FROM \"x\"\r\n").unwrap();
        assert_eq!(
            r.unwrap(),
            ExtCommand::Esearch {
                returns: vec!["MIN".into(), "COUNT".into()],
                plain: b"t UID SEARCH FROM \"x\"\r\n".to_vec()
            }
        );
        assert_eq!(recognize(b"t SEARCH ALL\r\n"), None);
    }

    #[test]
    fn saved_results_replace_dollar_where_a_set_stands() {
        let got = replace_saved(b"a UID FETCH $ (FLAGS)\r\n", "4:6", "1:3").unwrap();
        assert_eq!(got, b"a UID FETCH 4:6 (FLAGS)\r\n");
        let got = replace_saved(b"b SEARCH NOT $ SUBJECT \"$\"\r\n", "9", "2").unwrap();
        assert_eq!(got, b"b SEARCH NOT 2 SUBJECT \"$\"\r\n");
        assert_eq!(
            replace_saved(b"c SEARCH SUBJECT {1}\r\n$\r\n", "1", "1"),
            None
        );
        assert_eq!(replace_saved(b"d FETCH 1 (FLAGS)\r\n", "1", "1"), None);
    }

    #[test]
    fn other_commands_are_left_to_imap_codec() {
        assert_eq!(recognize(b"a SELECT INBOX\r\n"), None);
        assert_eq!(recognize(b"garbage"), None);
    }

    #[test]
    fn bad_arguments_keep_the_tag() {
        let (tag, result) = recognize(b"t GETACL\r\n").unwrap();
        assert_eq!(tag, "t");
        assert!(result.is_err());
        let (_, result) = recognize(b"t GETACL \"open\r\n").unwrap();
        assert!(result.is_err());
        let (_, result) = recognize(b"t DELETEACL INBOX {99}\r\nshort\r\n").unwrap();
        assert!(result.is_err());
    }
}
