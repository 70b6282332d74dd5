//! LIST, LSUB, extended LIST and subscriptions (RFC 3501 §6.3.6–9, RFC 5258, RFC 6154).
//!
//! The session gathers every name it can see (`Session::names`); which of them a request
//! shows, and with which attributes, is decided by [`lines`] without I/O.
//!
//! Subscriptions are the client's: creating a folder subscribes nothing, and DELETE leaves a
//! subscription in place (RFC 3501 §6.3.6). Only the standard folders (INBOX and the
//! special-use ones) of every mailbox a session reaches count as subscribed until it says
//! otherwise, as Dovecot's `auto = subscribe` does: clients that show subscribed folders only
//! (Thunderbird by default) find Sent, Drafts and a granted mailbox without any setup.

use super::extension::ListExtended;
use super::folders::{Bad, No, Refusal};
use super::identity::{Identity, SEP, SHARED, Target};
use super::session::Session;
use super::wire;
use crate::model::*;
use crate::store::{Folder, Subscriber};
use std::collections::BTreeMap;

/// What a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A folder: it holds messages.
    Folder,
    /// A name that exists without holding messages: `Shared`, `Shared/<address>`.
    Root,
    /// No folder, but the parent of some (added by [`lines`]).
    Parent,
    /// Nothing but a subscription.
    Subscription,
}

/// A name the session can see.
#[derive(Clone, Debug)]
pub struct Name {
    pub name: String,
    pub kind: Kind,
    pub special: Option<&'static str>,
    pub subscribed: bool,
}

/// What a LIST or LSUB asks for.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The patterns, each with the reference before it.
    pub patterns: Vec<String>,
    pub lsub: bool,
    /// Selection options (RFC 5258 §3, RFC 6154 §3).
    pub subscribed: bool,
    pub recursive: bool,
    pub special_use: bool,
    /// RETURN options.
    pub return_subscribed: bool,
    pub return_children: bool,
}

/// One untagged LIST or LSUB answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub name: String,
    pub attrs: Vec<&'static str>,
    /// RFC 5258 §3.5: listed for a subscribed descendant the patterns do not show.
    pub childinfo: bool,
    /// A folder, whose STATUS may be asked for.
    pub folder: bool,
}

/// The lines a request shows, in name order.
pub fn lines(names: Vec<Name>, request: &Request) -> Vec<Line> {
    let tree = tree(names);
    let matches = |name: &str| request.patterns.iter().any(|p| wildcard_match(p, name));
    if request.lsub {
        return lsub(&tree, request, &matches);
    }
    let mut out = Vec::new();
    for (name, entry) in &tree {
        if !matches(name) {
            continue;
        }
        let childinfo = !entry.subscribed
            && request.recursive
            && descendants(&tree, name).any(|(d, e)| e.subscribed && !matches(d));
        let shown = if request.subscribed {
            entry.subscribed || childinfo
        } else {
            entry.kind != Kind::Subscription
        };
        if !shown || (request.special_use && entry.special.is_none()) {
            continue;
        }
        let mut attrs = Vec::new();
        match entry.kind {
            // RFC 5258 §3: \NonExistent implies \Noselect, which is not repeated.
            Kind::Subscription => attrs.push("\\NonExistent"),
            Kind::Root | Kind::Parent => attrs.push("\\Noselect"),
            Kind::Folder => {}
        }
        if entry.kind != Kind::Subscription || request.return_children {
            let children = descendants(&tree, name).any(|(_, e)| e.kind != Kind::Subscription);
            attrs.push(if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
        }
        attrs.extend(entry.special);
        if entry.subscribed && (request.subscribed || request.return_subscribed) {
            attrs.push("\\Subscribed");
        }
        out.push(Line {
            name: name.clone(),
            attrs,
            childinfo,
            folder: entry.kind == Kind::Folder,
        });
    }
    out
}

/// RFC 3501 §6.3.9: the subscribed names; with `%`, an unsubscribed parent of a subscribed
/// name that `%` stops short of is shown in its place, as `\Noselect`.
fn lsub(tree: &Tree, request: &Request, matches: &dyn Fn(&str) -> bool) -> Vec<Line> {
    let mut out: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
    let percent = request.patterns.iter().any(|p| p.contains('%'));
    for (name, entry) in tree.iter().filter(|(_, e)| e.subscribed) {
        if matches(name) {
            let attrs = match entry.kind {
                Kind::Folder => vec![],
                _ => vec!["\\Noselect"],
            };
            out.insert(name, attrs);
            continue;
        }
        if !percent {
            continue;
        }
        let mut path = name.as_str();
        while let Some((parent, _)) = path.rsplit_once(SEP) {
            let parent_subscribed = tree.get(parent).is_some_and(|e| e.subscribed);
            if matches(parent) && !parent_subscribed {
                out.entry(parent).or_insert_with(|| vec!["\\Noselect"]);
            }
            path = parent;
        }
    }
    out.into_iter()
        .map(|(name, attrs)| Line {
            name: name.to_string(),
            folder: attrs.is_empty(),
            attrs,
            childinfo: false,
        })
        .collect()
}

struct Entry {
    kind: Kind,
    special: Option<&'static str>,
    subscribed: bool,
}

type Tree = BTreeMap<String, Entry>;

/// The names by name, with the parents that exist only as the path to others.
fn tree(names: Vec<Name>) -> Tree {
    let mut tree = Tree::new();
    for n in &names {
        if n.kind == Kind::Subscription {
            continue;
        }
        let mut path = n.name.as_str();
        while let Some((parent, _)) = path.rsplit_once(SEP) {
            tree.entry(parent.to_string()).or_insert(Entry {
                kind: Kind::Parent,
                special: None,
                subscribed: false,
            });
            path = parent;
        }
    }
    for n in names {
        let entry = tree.entry(n.name).or_insert(Entry {
            kind: n.kind,
            special: n.special,
            subscribed: false,
        });
        // A subscription to a name that is a parent or a folder marks that name.
        if n.kind != Kind::Subscription {
            entry.kind = n.kind;
            entry.special = n.special;
        }
        entry.subscribed |= n.subscribed;
    }
    tree
}

/// The names below `name`.
fn descendants<'t>(tree: &'t Tree, name: &str) -> impl Iterator<Item = (&'t String, &'t Entry)> {
    let prefix = format!("{name}{SEP}");
    tree.range(prefix.clone()..)
        .take_while(move |(n, _)| n.starts_with(&prefix))
}

/// LIST wildcards (RFC 3501 §6.3.8): `*` matches anything, `%` anything but the separator.
/// `INBOX` matches case-insensitively. Dynamic programming, not backtracking: a pattern of
/// many wildcards (found by the fuzzer) costs pattern × name steps, not an exponential number.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let norm = |s: &str| -> Vec<char> {
        if s.len() >= 5 && s.is_char_boundary(5) && s[..5].eq_ignore_ascii_case("INBOX") {
            format!("INBOX{}", &s[5..]).chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, n) = (norm(pattern), norm(name));
    // row[j]: the pattern so far matches the first j characters of the name.
    let mut row = vec![false; n.len() + 1];
    row[0] = true;
    for pc in &p {
        let mut next = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            next[j] = match pc {
                '*' => row[j] || (j > 0 && next[j - 1]),
                '%' => row[j] || (j > 0 && next[j - 1] && n[j - 1] != SEP),
                c => j > 0 && row[j - 1] && n[j - 1] == *c,
            };
        }
        row = next;
    }
    row[n.len()]
}

/// The folders that count as subscribed until the session says otherwise.
fn subscribed_by_default(folder: &Folder) -> bool {
    folder.name == "INBOX" || folder.special_use.is_some()
}

/// Whose subscriptions a session keeps: a user's, whether she logged in as herself or as a
/// delegate of the mailbox.
fn subscriber(identity: &Identity) -> Subscriber {
    match identity.user() {
        Some(user) => Subscriber::User(user.id),
        None => Subscriber::MailboxLogin,
    }
}

impl Session {
    /// Every name this session can see: folders, namespace roots and subscriptions.
    pub(super) fn names(&self, identity: &Identity) -> Result<Vec<Name>, Refusal> {
        let mut out = Vec::new();
        let store = &self.services.store;
        let who = subscriber(identity);
        let mut add_mailbox = |mailbox: &Mailbox| -> Result<(), Refusal> {
            if !identity.access(mailbox).rights.contains(Right::Lookup) {
                return Ok(());
            }
            let mut choices = store.subscriptions(who, mailbox.id)?;
            for f in store.folders(mailbox.id)? {
                let choice = choices.remove(&f.name);
                out.push(Name {
                    name: identity.display_name(mailbox, &f.name),
                    kind: Kind::Folder,
                    special: f.special_use.map(|s| s.attribute()),
                    subscribed: choice.unwrap_or_else(|| subscribed_by_default(&f)),
                });
            }
            for (name, _) in choices.into_iter().filter(|(_, on)| *on) {
                out.push(Name {
                    name: identity.display_name(mailbox, &name),
                    kind: Kind::Subscription,
                    special: None,
                    subscribed: true,
                });
            }
            Ok(())
        };
        if let Some(m) = identity.personal() {
            add_mailbox(m)?;
            return Ok(out);
        }
        let shared = identity.shared_mailboxes(&self.services)?;
        for m in &shared {
            add_mailbox(m)?;
        }
        // A user's own INBOX: empty, always there, always subscribed.
        let root = |name: String, kind| Name {
            name,
            kind,
            special: None,
            subscribed: kind == Kind::Folder,
        };
        out.push(root("INBOX".into(), Kind::Folder));
        if !shared.is_empty() {
            out.push(root(SHARED.into(), Kind::Root));
        }
        for m in &shared {
            out.push(root(format!("{SHARED}{SEP}{}", m.address), Kind::Root));
        }
        Ok(out)
    }

    /// SUBSCRIBE and UNSUBSCRIBE: a name, existing or not (RFC 3501 §6.3.6).
    pub(super) fn subscribe(
        &mut self,
        identity: &Identity,
        name: &str,
        on: bool,
    ) -> Result<String, Refusal> {
        let verb = if on { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
        match identity.resolve(&self.services, name)? {
            Some(Target::Folder { mailbox, name }) => {
                self.services.store.set_subscription(
                    subscriber(identity),
                    mailbox.id,
                    &name,
                    on,
                )?;
            }
            // The namespace roots and a user's own INBOX: harmless (ARCHITECTURE.md §3).
            Some(_) => {}
            None => return Err(No("[NONEXISTENT] No such folder".into())),
        }
        Ok(format!("{verb} completed"))
    }

    /// LIST and LSUB of RFC 3501.
    pub(super) fn list(
        &mut self,
        identity: &Identity,
        reference: &str,
        pattern: &str,
        lsub: bool,
    ) -> Result<String, Refusal> {
        let verb = if lsub { "LSUB" } else { "LIST" };
        if pattern.is_empty() {
            // RFC 3501 §6.3.8: the hierarchy delimiter and root.
            self.untagged(&format!("{verb} (\\Noselect) \"{SEP}\" \"\""));
            return Ok(format!("{verb} completed"));
        }
        let request = Request {
            patterns: vec![format!("{reference}{pattern}")],
            lsub,
            ..Request::default()
        };
        for line in lines(self.names(identity)?, &request) {
            self.list_line(verb, &line);
        }
        Ok(format!("{verb} completed"))
    }

    /// RFC 5258 LIST with selection and RETURN options, RFC 5819 STATUS, RFC 6154 SPECIAL-USE.
    pub(super) fn list_extended(
        &mut self,
        identity: &Identity,
        list: &ListExtended,
    ) -> Result<String, Refusal> {
        let request = extended_request(list)?;
        // RFC 8474 §4.3: MAILBOXID, which imap-codec's items lack, as STATUS takes it.
        self.object_items.mailbox_id = list.status.iter().any(|s| s == "MAILBOXID");
        let status_items = list
            .status
            .iter()
            .filter(|s| *s != "MAILBOXID")
            .map(|s| super::folders::status_item(s))
            .collect::<Result<Vec<_>, _>>()?;
        let with_status = !list.status.is_empty();
        for line in lines(self.names(identity)?, &request) {
            self.list_line("LIST", &line);
            if with_status && line.folder {
                // RFC 5819 §2: a folder whose status cannot be had is listed without it.
                let mark = self.out.len();
                if self.status(identity, &line.name, &status_items).is_err() {
                    self.out.truncate(mark);
                }
            }
        }
        Ok("LIST completed".into())
    }

    fn list_line(&mut self, verb: &str, line: &Line) {
        let mut out = format!("{verb} ({}) \"{SEP}\" ", line.attrs.join(" ")).into_bytes();
        wire::folder_name(&mut out, &line.name, self.reporting.utf8);
        if line.childinfo {
            out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        self.untagged(&String::from_utf8_lossy(&out));
    }
}

/// The options of an extended LIST; unknown ones, and RECURSIVEMATCH without another
/// selection option, are errors (RFC 5258 §3, §6).
fn extended_request(list: &ListExtended) -> Result<Request, Refusal> {
    let mut request = Request {
        patterns: list
            .patterns
            .iter()
            .map(|p| format!("{}{p}", list.reference))
            .collect(),
        ..Request::default()
    };
    for option in &list.select {
        match option.as_str() {
            "SUBSCRIBED" => request.subscribed = true,
            "RECURSIVEMATCH" => request.recursive = true,
            "SPECIAL-USE" => request.special_use = true,
            // Every folder here is local (RFC 5258 §3.1).
            "REMOTE" => {}
            other => return Err(Bad(format!("Unknown LIST selection option {other}"))),
        }
    }
    if request.recursive && !request.subscribed {
        return Err(Bad(
            "RECURSIVEMATCH needs another selection option (RFC 5258 §3)".into(),
        ));
    }
    for option in &list.returns {
        match option.as_str() {
            "SUBSCRIBED" => request.return_subscribed = true,
            "CHILDREN" => request.return_children = true,
            // Special-use attributes and STATUS are given as they come.
            "SPECIAL-USE" | "STATUS" => {}
            other => return Err(Bad(format!("Unknown LIST RETURN option {other}"))),
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, subscribed: bool) -> Name {
        Name {
            name: name.into(),
            kind: Kind::Folder,
            special: None,
            subscribed,
        }
    }

    fn subscription(name: &str) -> Name {
        Name {
            name: name.into(),
            kind: Kind::Subscription,
            special: None,
            subscribed: true,
        }
    }

    fn show(names: &[Name], request: Request) -> Vec<String> {
        lines(names.to_vec(), &request)
            .into_iter()
            .map(|l| {
                let info = if l.childinfo { " CHILDINFO" } else { "" };
                format!("({}) {}{info}", l.attrs.join(" "), l.name)
            })
            .collect()
    }

    fn request(pattern: &str) -> Request {
        Request {
            patterns: vec![pattern.into()],
            ..Request::default()
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "Shared/a@b/INBOX"));
        assert!(wildcard_match("%", "Sent"));
        assert!(!wildcard_match("%", "Shared/a@b"));
        assert!(wildcard_match("Shared/%", "Shared/a@b"));
        assert!(wildcard_match("inbox", "INBOX"));
        assert!(!wildcard_match("Sent", "Sent/2024"));
        assert!(wildcard_match("%/%", "Sent/2024"));
        assert!(wildcard_match("S*4", "Sent/2024"));
    }

    #[test]
    fn many_wildcards_cost_steps_not_an_explosion() {
        let pattern = "*%".repeat(500) + "x";
        assert!(!wildcard_match(&pattern, &"y".repeat(2000)));
    }

    /// RFC 3501 §6.3.8: a parent that is no folder shows as `\Noselect`; a subscription alone
    /// does not show at all.
    #[test]
    fn list_shows_folders_and_their_parents() {
        let names = [folder("a/b", false), subscription("gone")];
        assert_eq!(
            show(&names, request("*")),
            ["(\\Noselect \\HasChildren) a", "(\\HasNoChildren) a/b"]
        );
    }

    /// RFC 3501 §6.3.9: `%` stops at the unsubscribed parent, shown as `\Noselect`.
    #[test]
    fn lsub_shows_the_unsubscribed_parent_of_a_subscribed_name() {
        let names = [
            folder("t", true),
            folder("t2", false),
            folder("t2/x", true),
            folder("t3/y", true),
        ];
        let lsub = |pattern: &str| {
            show(
                &names,
                Request {
                    lsub: true,
                    ..request(pattern)
                },
            )
        };
        assert_eq!(lsub("%"), ["() t", "(\\Noselect) t2", "(\\Noselect) t3"]);
        assert_eq!(lsub("*"), ["() t", "() t2/x", "() t3/y"]);
    }

    /// RFC 5258 §3: SUBSCRIBED shows subscriptions to names that do not exist as
    /// \NonExistent; RECURSIVEMATCH shows a parent whose subscribed child the pattern misses.
    #[test]
    fn extended_selection() {
        let names = [
            folder("t1", true),
            folder("t2", false),
            folder("t2/t1", true),
            subscription("t6"),
            folder("t7/t7", true),
            folder("t8/t8", true),
            folder("t8/t9", true),
        ];
        let subscribed = |patterns: &[&str], recursive| Request {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            subscribed: true,
            recursive,
            ..Request::default()
        };
        assert_eq!(
            show(&names, subscribed(&["*"], false)),
            [
                "(\\HasNoChildren \\Subscribed) t1",
                "(\\HasNoChildren \\Subscribed) t2/t1",
                "(\\NonExistent \\Subscribed) t6",
                "(\\HasNoChildren \\Subscribed) t7/t7",
                "(\\HasNoChildren \\Subscribed) t8/t8",
                "(\\HasNoChildren \\Subscribed) t8/t9",
            ]
        );
        assert_eq!(
            show(&names, subscribed(&["t2%"], true)),
            ["(\\HasChildren) t2 CHILDINFO"]
        );
        assert_eq!(
            show(&names, subscribed(&["*t7"], true)),
            ["(\\HasNoChildren \\Subscribed) t7/t7"],
            "the subscribed child is shown itself: no CHILDINFO for its parent"
        );
        assert_eq!(
            show(&names, subscribed(&["*t8"], true)),
            [
                "(\\Noselect \\HasChildren) t8 CHILDINFO",
                "(\\HasNoChildren \\Subscribed) t8/t8"
            ]
        );
    }

    #[test]
    fn unknown_options_and_recursivematch_alone_are_errors() {
        let list = |select: &[&str], returns: &[&str]| ListExtended {
            select: select.iter().map(|s| s.to_string()).collect(),
            returns: returns.iter().map(|s| s.to_string()).collect(),
            patterns: vec!["*".into()],
            ..ListExtended::default()
        };
        for bad in [
            list(&["IMAPTEST"], &[]),
            list(&["RECURSIVEMATCH"], &[]),
            list(&["RECURSIVEMATCH", "REMOTE"], &[]),
            list(&[], &["IMAPTEST"]),
        ] {
            let Err(Bad(_)) = extended_request(&bad) else {
                panic!("{bad:?} not refused as BAD");
            };
        }
        assert!(extended_request(&list(&["SUBSCRIBED", "RECURSIVEMATCH"], &["CHILDREN"])).is_ok());
    }
}
