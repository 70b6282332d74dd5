//! THREAD (RFC 5256 §4): ORDEREDSUBJECT and REFERENCES over the messages a search matched.
//! The algorithms work on plain data (`Message`), without the store, so they are tested
//! alone; the session gathers that data from the summaries.

use super::folders::Refusal;
use super::session::Session;
use super::sort::base_subject;
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    OrderedSubject,
    References,
}

/// What threading needs of one message.
#[derive(Clone, Debug, Default)]
pub struct Message {
    /// The number shown: sequence number or UID.
    pub number: u32,
    /// The sent date (the internal date where there is none), in milliseconds.
    pub date: i64,
    pub subject: String,
    pub message_id: Option<String>,
    /// References, or else the first message ID of In-Reply-To.
    pub references: Vec<String>,
}

/// A node of a thread: a message (an index into the messages) or a dummy parent.
#[derive(Clone, Debug, Default)]
struct Node {
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The THREAD response's list: `(1)(2 (7)(12))(9 10)`.
pub fn thread(messages: &[Message], algorithm: Algorithm) -> String {
    let (nodes, roots) = match algorithm {
        Algorithm::OrderedSubject => ordered_subject(messages),
        Algorithm::References => references(messages),
    };
    let mut out = String::new();
    for root in roots {
        out.push('(');
        write(&nodes, messages, root, &mut out);
        out.push(')');
    }
    out
}

fn write(nodes: &[Node], messages: &[Message], node: usize, out: &mut String) {
    let n = &nodes[node];
    if let Some(m) = n.message {
        out.push_str(&messages[m].number.to_string());
        match n.children.as_slice() {
            [] => return,
            [only] => {
                out.push(' ');
                return write(nodes, messages, *only, out);
            }
            _ => out.push(' '),
        }
    }
    for child in &n.children {
        out.push('(');
        write(nodes, messages, *child, out);
        out.push(')');
    }
}

/// RFC 5256 §4 ORDEREDSUBJECT: by base subject, each group a parent (the earliest) with the
/// rest as its children; groups in the order of their first message's date.
fn ordered_subject(messages: &[Message]) -> (Vec<Node>, Vec<usize>) {
    let mut order: Vec<usize> = (0..messages.len()).collect();
    let subject: Vec<String> = messages
        .iter()
        .map(|m| base_subject(&m.subject).to_uppercase())
        .collect();
    order.sort_by(|a, b| {
        (&subject[*a], messages[*a].date, messages[*a].number).cmp(&(
            &subject[*b],
            messages[*b].date,
            messages[*b].number,
        ))
    });
    let mut nodes: Vec<Node> = (0..messages.len())
        .map(|m| Node {
            message: Some(m),
            ..Node::default()
        })
        .collect();
    let mut roots: Vec<usize> = Vec::new();
    let mut current: Option<usize> = None;
    for m in order {
        match current {
            Some(root) if subject[root] == subject[m] => nodes[root].children.push(m),
            _ => {
                roots.push(m);
                current = Some(m);
            }
        }
    }
    roots.sort_by_key(|r| (messages[*r].date, messages[*r].number));
    (nodes, roots)
}

/// RFC 5256 §4 REFERENCES.
fn references(messages: &[Message]) -> (Vec<Node>, Vec<usize>) {
    let mut t = Threader::default();
    for (i, m) in messages.iter().enumerate() {
        t.add(i, m);
    }
    let mut roots: Vec<usize> = (0..t.nodes.len())
        .filter(|n| t.nodes[*n].parent.is_none())
        .collect();
    roots = t.prune(roots, None);
    t.sort_children(messages, &roots);
    let date = |t: &Threader, n: usize| t.date(messages, n);
    roots.sort_by_key(|r| date(&t, *r));
    let roots = t.group_by_subject(messages, roots);
    t.sort_children(messages, &roots);
    (t.nodes, roots)
}

#[derive(Default)]
struct Threader {
    nodes: Vec<Node>,
    by_id: HashMap<String, usize>,
}

impl Threader {
    fn node_for(&mut self, id: &str) -> usize {
        if let Some(n) = self.by_id.get(id) {
            return *n;
        }
        self.nodes.push(Node::default());
        let n = self.nodes.len() - 1;
        self.by_id.insert(id.to_string(), n);
        n
    }

    /// Whether `node` is `ancestor` or below it.
    fn is_under(&self, node: usize, ancestor: usize) -> bool {
        let mut at = Some(node);
        let mut steps = 0;
        while let Some(n) = at {
            if n == ancestor {
                return true;
            }
            steps += 1;
            if steps > self.nodes.len() {
                return true; // a loop: treat as linked
            }
            at = self.nodes[n].parent;
        }
        false
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|c| *c != child);
        }
    }

    /// §4 (1): the message's references linked parent to child where not linked yet, and the
    /// message made a child of its last reference.
    fn add(&mut self, index: usize, m: &Message) {
        let refs: Vec<usize> = m.references.iter().map(|r| self.node_for(r)).collect();
        for pair in refs.windows(2) {
            let (parent, child) = (pair[0], pair[1]);
            if parent != child
                && self.nodes[child].parent.is_none()
                && !self.is_under(parent, child)
            {
                self.link(parent, child);
            }
        }
        // A message without an ID, or with one already taken, gets a node of its own.
        let own = match &m.message_id {
            Some(id)
                if self
                    .by_id
                    .get(id)
                    .is_none_or(|n| self.nodes[*n].message.is_none()) =>
            {
                self.node_for(id)
            }
            _ => {
                self.nodes.push(Node::default());
                self.nodes.len() - 1
            }
        };
        self.nodes[own].message = Some(index);
        self.unlink(own);
        if let Some(last) = refs.last().copied()
            && last != own
            && !self.is_under(last, own)
        {
            self.link(last, own);
        }
    }

    /// §4 (3): dummies without children go; a dummy's children take its place, except at
    /// the top where a dummy keeps two or more children together.
    fn prune(&mut self, list: Vec<usize>, parent: Option<usize>) -> Vec<usize> {
        let mut out = Vec::new();
        for n in list {
            let children = std::mem::take(&mut self.nodes[n].children);
            let children = self.prune(children, Some(n));
            self.nodes[n].children = children.clone();
            let dummy = self.nodes[n].message.is_none();
            if !dummy || (parent.is_none() && children.len() > 1) {
                out.push(n);
            } else {
                for c in children {
                    self.nodes[c].parent = parent;
                    out.push(c);
                }
            }
        }
        out
    }

    /// A node's date: its message's, or a dummy's first child's.
    fn date(&self, messages: &[Message], node: usize) -> (i64, u32) {
        let n = &self.nodes[node];
        match n.message {
            Some(m) => (messages[m].date, messages[m].number),
            None => n
                .children
                .first()
                .map_or((0, 0), |c| self.date(messages, *c)),
        }
    }

    /// §4 (6): every node's children by date.
    fn sort_children(&mut self, messages: &[Message], list: &[usize]) {
        for n in list {
            let mut children = std::mem::take(&mut self.nodes[*n].children);
            self.sort_children(messages, &children);
            children.sort_by_key(|c| self.date(messages, *c));
            self.nodes[*n].children = children;
        }
    }

    /// A node's subject for §4 (5): its message's, or a dummy's first child's; with whether
    /// it was a reply or forward.
    fn subject(&self, messages: &[Message], node: usize) -> (String, bool) {
        let n = &self.nodes[node];
        let m = n
            .message
            .or_else(|| n.children.first().and_then(|c| self.nodes[*c].message));
        match m {
            Some(m) => {
                let raw = &messages[m].subject;
                let base = base_subject(raw);
                let reply = normalize(raw) != base;
                (base.to_uppercase(), reply)
            }
            None => (String::new(), false),
        }
    }

    /// §4 (5): roots with the same base subject gathered into one thread.
    fn group_by_subject(&mut self, messages: &[Message], roots: Vec<usize>) -> Vec<usize> {
        let mut table: HashMap<String, usize> = HashMap::new();
        for r in &roots {
            let (subject, reply) = self.subject(messages, *r);
            if subject.is_empty() {
                continue;
            }
            match table.get(&subject).copied() {
                None => {
                    table.insert(subject, *r);
                }
                Some(old) => {
                    let this_dummy = self.nodes[*r].message.is_none();
                    let old_dummy = self.nodes[old].message.is_none();
                    let old_reply = self.subject(messages, old).1;
                    if (this_dummy && !old_dummy) || (old_reply && !reply && !old_dummy) {
                        table.insert(subject, *r);
                    }
                }
            }
        }
        let mut out: Vec<usize> = Vec::new();
        let mut replaced: HashMap<usize, usize> = HashMap::new();
        let mut gone: Vec<usize> = Vec::new();
        for r in roots.iter().copied() {
            let (subject, reply) = self.subject(messages, r);
            let Some(&target) = table.get(&subject) else {
                out.push(r);
                continue;
            };
            let target = replaced.get(&target).copied().unwrap_or(target);
            if target == r || subject.is_empty() {
                out.push(r);
                continue;
            }
            let this_dummy = self.nodes[r].message.is_none();
            let target_dummy = self.nodes[target].message.is_none();
            if this_dummy && target_dummy {
                for c in std::mem::take(&mut self.nodes[r].children) {
                    self.link(target, c);
                }
                gone.push(r);
            } else if target_dummy || (reply && !self.subject(messages, target).1) {
                self.link(target, r);
                gone.push(r);
            } else {
                // Neither is the other's reply: a new dummy holds both.
                self.nodes.push(Node::default());
                let dummy = self.nodes.len() - 1;
                self.link(dummy, target);
                self.link(dummy, r);
                replaced.insert(target, dummy);
                if let Some(key) = table
                    .iter()
                    .find(|(_, v)| **v == target)
                    .map(|(k, _)| k.clone())
                {
                    table.insert(key, dummy);
                }
                gone.push(r);
                if let Some(pos) = out.iter().position(|x| *x == target) {
                    out[pos] = dummy;
                }
            }
        }
        out.retain(|r| !gone.contains(r));
        out
    }
}

/// The subject as base-subject extraction sees it before removing anything.
fn normalize(subject: &str) -> String {
    subject.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Message IDs in a header value: `<a@b> <c@d>`, or as mail-parser decoded them.
pub fn message_ids(value: &str) -> Vec<String> {
    if value.contains('<') {
        value
            .split('<')
            .skip(1)
            .filter_map(|s| s.split_once('>').map(|(id, _)| id.trim().to_string()))
            .filter(|id| !id.is_empty())
            .collect()
    } else {
        value
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Session {
    /// THREAD and UID THREAD: `plain` is the search part as a (UID) SEARCH for imap-codec.
    pub(super) fn thread(&mut self, algorithm: Algorithm, plain: &[u8]) -> Result<String, Refusal> {
        let hits = self.plain_search("THREAD", plain)?;
        let messages: Vec<Message> = hits
            .summarized(&self.services.store)
            .into_iter()
            .map(|(number, record, summary)| {
                let header = |name: &str| {
                    summary
                        .headers
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.as_str())
                };
                let mut references = header("references").map(message_ids).unwrap_or_default();
                if references.is_empty() {
                    references = header("in-reply-to")
                        .map(message_ids)
                        .unwrap_or_default()
                        .into_iter()
                        .take(1)
                        .collect();
                }
                Message {
                    number,
                    date: super::sort::sent_date(record, &summary),
                    subject: header("subject").unwrap_or_default().to_string(),
                    message_id: header("message-id")
                        .and_then(|v| message_ids(v).into_iter().next()),
                    references,
                }
            })
            .collect();
        self.untagged(&format!("THREAD {}", thread(&messages, algorithm)));
        Ok(if hits.uid {
            "UID THREAD completed"
        } else {
            "THREAD completed"
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(number: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> Message {
        Message {
            number,
            date,
            subject: subject.into(),
            message_id: (!id.is_empty()).then(|| id.to_string()),
            references: refs.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        let messages = [
            m(1, 10, "a", "", &[]),
            m(2, 20, "b", "", &[]),
            m(3, 30, "Re: b", "", &[]),
            m(4, 15, "c", "", &[]),
            m(5, 40, "re: b", "", &[]),
        ];
        assert_eq!(
            thread(&messages, Algorithm::OrderedSubject),
            "(1)(4)(2 (3)(5))"
        );
    }

    #[test]
    fn references_follow_the_chain() {
        let messages = [
            m(1, 10, "x", "a@x", &[]),
            m(2, 20, "Re: x", "b@x", &["a@x"]),
            m(3, 30, "Re: x", "c@x", &["a@x", "b@x"]),
            m(4, 25, "Re: x", "d@x", &["a@x"]),
            m(5, 5, "other", "e@x", &[]),
        ];
        assert_eq!(thread(&messages, Algorithm::References), "(5)(1 (2 3)(4))");
    }

    #[test]
    fn message_ids_are_read_from_either_form() {
        assert_eq!(message_ids("<a@b> <c@d>"), ["a@b", "c@d"]);
        assert_eq!(message_ids("a@b, c@d"), ["a@b", "c@d"]);
    }
}
