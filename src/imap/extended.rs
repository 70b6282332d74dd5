//! Answers to the commands `extension` recognises around imap-codec: ACL, LIST with options
//! (LIST-EXTENDED, LIST-STATUS, SPECIAL-USE) and ESEARCH.

use super::extension::ExtCommand;
use super::folders::{Bad, Refusal};
use super::session::{Session, State};

impl Session {
    pub(super) async fn ext_command(&mut self, tag: &str, command: ExtCommand) {
        let Some(identity) = self.identity().cloned() else {
            self.tagged_text(tag, "BAD", "Log in first");
            return;
        };
        let result = match command {
            ExtCommand::MyRights { mailbox } => self.myrights(&identity, &mailbox),
            ExtCommand::GetAcl { mailbox } => self.getacl(&identity, &mailbox),
            ExtCommand::ListRights {
                mailbox,
                identifier,
            } => self.listrights(&identity, &mailbox, &identifier),
            ExtCommand::SetAcl {
                mailbox,
                identifier,
                rights,
            } => self.setacl(&identity, &mailbox, &identifier, Some(&rights)),
            ExtCommand::DeleteAcl {
                mailbox,
                identifier,
            } => self.setacl(&identity, &mailbox, &identifier, None),
            ExtCommand::ListExtended(list) => self.list_extended(&identity, &list),
            ExtCommand::Esearch { returns, plain } => self.esearch(tag, &returns, &plain),
            ExtCommand::Thread { algorithm, plain } => self.thread(algorithm, &plain),
            ExtCommand::Sort {
                returns,
                criteria,
                plain,
            } => self.sort(tag, returns.as_deref(), &criteria, &plain),
            ExtCommand::AppendMany(append) => self.append_many(&identity, append).await,
        };
        match result {
            Ok(text) => self.tagged_text(tag, "OK", &text),
            Err(refusal) => {
                let (status, text) = refusal.answer();
                self.tagged_text(tag, status, text);
            }
        }
    }

    /// RFC 4731 SEARCH RETURN (MIN MAX COUNT ALL).
    fn esearch(&mut self, tag: &str, returns: &[String], plain: &[u8]) -> Result<String, Refusal> {
        for r in returns {
            if !["MIN", "MAX", "COUNT", "ALL", "SAVE"].contains(&r.as_str()) {
                return Err(Bad(format!("Unsupported RETURN option {r}")));
            }
        }
        let found = self.plain_search("SEARCH", plain)?;
        let uid = found.uid;
        let all = returns.is_empty();
        let want = |o: &str| all && o == "ALL" || returns.iter().any(|r| r == o);
        let hits = &found.numbers;
        if returns.iter().any(|r| r == "SAVE") {
            self.save_result(hits, uid, returns);
            // RFC 5182 §2.1: SAVE alone returns no ESEARCH.
            if returns.iter().all(|r| r == "SAVE") {
                return Ok("SEARCH completed, result saved".into());
            }
        }
        let mut line = format!("ESEARCH (TAG \"{tag}\")");
        if uid {
            line.push_str(" UID");
        }
        if let (true, Some(min)) = (want("MIN"), hits.first()) {
            line.push_str(&format!(" MIN {min}"));
        }
        if let (true, Some(max)) = (want("MAX"), hits.last()) {
            line.push_str(&format!(" MAX {max}"));
        }
        if want("COUNT") {
            line.push_str(&format!(" COUNT {}", hits.len()));
        }
        if want("ALL") && !hits.is_empty() {
            line.push_str(&format!(" ALL {}", super::selection::uid_set(hits)));
        }
        // RFC 7162 §3.1.5: with MIN or MAX alone, or both, the MODSEQ of what they return.
        let only_ends = !want("ALL") && !want("COUNT");
        let modseqs = found.records.iter().map(|r| r.modseq);
        let reported = match (found.records.first(), found.records.last()) {
            (Some(first), Some(last)) if only_ends => {
                let ends = [(want("MIN"), first), (want("MAX"), last)];
                found.modseq_of(ends.into_iter().filter(|(w, _)| *w).map(|(_, r)| r.modseq))
            }
            _ => found.modseq_of(modseqs),
        };
        if let Some(modseq) = reported {
            line.push_str(&format!(" MODSEQ {modseq}"));
        }
        self.untagged(&line);
        Ok(if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        }
        .into())
    }
}

impl Session {
    /// RFC 5182 §2.1: keeps the hits (as UIDs) for `$`; with MIN or MAX only those.
    fn save_result(&mut self, hits: &[u32], uid: bool, returns: &[String]) {
        let State::Selected(_, sel) = &mut self.state else {
            return;
        };
        let mut uids: Vec<u32> = if uid {
            hits.to_vec()
        } else {
            hits.iter()
                .filter_map(|s| sel.messages.get(*s as usize - 1))
                .map(|s| s.uid)
                .collect()
        };
        let min = returns.iter().any(|r| r == "MIN");
        let max = returns.iter().any(|r| r == "MAX");
        if min || max {
            let (lo, hi) = (uids.iter().min().copied(), uids.iter().max().copied());
            uids = [lo.filter(|_| min), hi.filter(|_| max)]
                .into_iter()
                .flatten()
                .collect();
        }
        sel.saved = uids;
    }
}
