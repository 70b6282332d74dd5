//! RFC 4314 ACL commands on the grants of ARCHITECTURE.md §2: an IMAP ACL is the set of grants on
//! the mailbox a folder belongs to, and SETACL/DELETEACL change the same grants the admin API
//! changes, under the same rule (nobody grants what they do not hold).

use super::folders::{Bad, No, Refusal, noperm};
use super::identity::{Identity, Target};
use super::session::Session;
use super::wire;
use crate::access::{self, Action};
use crate::model::*;

/// Team grantees show as `team:<name>` (RFC 4314 §2 leaves identifiers to the server).
const TEAM_PREFIX: &str = "team:";

impl Session {
    /// The mailbox a folder name belongs to, with the folder checked to exist.
    fn acl_mailbox(&self, identity: &Identity, name: &str) -> Result<Mailbox, Refusal> {
        match identity.resolve(&self.services, name)? {
            Some(Target::Folder {
                mailbox,
                name: folder,
            }) => {
                let visible = !identity.access(&mailbox).rights.is_empty();
                match self.services.store.folder_by_name(mailbox.id, &folder)? {
                    Some(_) if visible => Ok(mailbox),
                    _ => Err(No("[NONEXISTENT] No such folder".into())),
                }
            }
            _ => Err(No("[CANNOT] That name holds no ACL".into())),
        }
    }

    fn line_with_name(&mut self, verb: &str, name: &str, rest: &str) {
        let mut line = format!("{verb} ").into_bytes();
        wire::folder_name(&mut line, name, self.reporting.utf8);
        line.extend_from_slice(rest.as_bytes());
        self.untagged(&String::from_utf8_lossy(&line));
    }

    pub(super) fn myrights(&mut self, identity: &Identity, name: &str) -> Result<String, Refusal> {
        let rights = match identity.resolve(&self.services, name)? {
            Some(Target::UserInbox) => "lr".to_string(),
            Some(Target::NamespaceRoot) => "l".to_string(),
            _ => identity
                .access(&self.acl_mailbox(identity, name)?)
                .rights
                .letters(),
        };
        self.line_with_name("MYRIGHTS", name, &format!(" {rights}"));
        Ok("MYRIGHTS completed".into())
    }

    pub(super) fn getacl(&mut self, identity: &Identity, name: &str) -> Result<String, Refusal> {
        let mailbox = self.acl_mailbox(identity, name)?;
        if !identity.access(&mailbox).may(Right::Administer) {
            return Err(noperm(Right::Administer, "read the ACL"));
        }
        let mut entries: Vec<(String, Rights)> = vec![(mailbox.address.clone(), Rights::ALL)];
        for grant in self.services.store.grants(mailbox.org)? {
            let on_it = match grant.target {
                GrantTarget::Mailbox(id) => id == mailbox.id,
                GrantTarget::AllMailboxes => true,
            };
            if !on_it {
                continue;
            }
            let who = self.identifier_of(grant.grantee)?;
            match entries.iter_mut().find(|(id, _)| *id == who) {
                Some((_, rights)) => *rights = *rights | grant.rights,
                None => entries.push((who, grant.rights)),
            }
        }
        let mut rest = Vec::new();
        for (who, rights) in entries {
            rest.push(b' ');
            wire::astring(&mut rest, &who);
            rest.push(b' ');
            wire::astring(&mut rest, &rights.letters());
        }
        self.line_with_name("ACL", name, &String::from_utf8_lossy(&rest));
        Ok("GETACL completed".into())
    }

    pub(super) fn listrights(
        &mut self,
        identity: &Identity,
        name: &str,
        who: &str,
    ) -> Result<String, Refusal> {
        let mailbox = self.acl_mailbox(identity, name)?;
        if !identity.access(&mailbox).may(Right::Administer) {
            return Err(noperm(Right::Administer, "read the ACL"));
        }
        let mut rest = b" ".to_vec();
        wire::astring(&mut rest, who);
        if who.eq_ignore_ascii_case(&mailbox.address) {
            rest.extend_from_slice(b" lrswipkxtea");
        } else {
            // Nothing is always granted; each right can be granted alone (RFC 4314 §3.7).
            rest.extend_from_slice(b" \"\" l r s w i p k x t e a");
        }
        self.line_with_name("LISTRIGHTS", name, &String::from_utf8_lossy(&rest));
        Ok("LISTRIGHTS completed".into())
    }

    fn identifier_of(&self, grantee: Grantee) -> Result<String, Refusal> {
        Ok(match grantee {
            Grantee::User(id) => self
                .services
                .store
                .user(id)?
                .map_or_else(|| format!("user:{id}"), |u| u.login),
            Grantee::Team(id) => {
                let name = self
                    .services
                    .store
                    .team(id)?
                    .map_or_else(|| id.to_string(), |t| t.name);
                format!("{TEAM_PREFIX}{name}")
            }
        })
    }

    fn grantee_of(&self, org: OrgId, who: &str) -> Result<Grantee, Refusal> {
        let unknown = || {
            No(format!(
                "[NONEXISTENT] {who} is no member or team of this organization"
            ))
        };
        if let Some(team) = who.strip_prefix(TEAM_PREFIX) {
            let teams = self.services.store.teams(org)?;
            let team = teams
                .into_iter()
                .find(|t| t.name == team)
                .ok_or_else(unknown)?;
            return Ok(Grantee::Team(team.id));
        }
        let user = self
            .services
            .store
            .user_by_login(who)?
            .ok_or_else(unknown)?;
        if self.services.store.role_in(org, user.id)?.is_none() {
            return Err(unknown());
        }
        Ok(Grantee::User(user.id))
    }

    /// SETACL (`rights` given, with an optional `+`/`-`) or DELETEACL (`None`), on the grant
    /// that names this grantee and this mailbox.
    pub(super) fn setacl(
        &mut self,
        identity: &Identity,
        name: &str,
        who: &str,
        rights: Option<&str>,
    ) -> Result<String, Refusal> {
        let verb = if rights.is_some() {
            "SETACL"
        } else {
            "DELETEACL"
        };
        let mailbox = self.acl_mailbox(identity, name)?;
        if !identity.access(&mailbox).may(Right::Administer) {
            return Err(noperm(Right::Administer, "change the ACL"));
        }
        if who.eq_ignore_ascii_case(&mailbox.address) {
            return Err(No("[CANNOT] The mailbox's own rights cannot change".into()));
        }
        let grantee = self.grantee_of(mailbox.org, who)?;
        let store = &self.services.store;
        let existing = store
            .grants(mailbox.org)?
            .into_iter()
            .find(|g| g.grantee == grantee && g.target == GrantTarget::Mailbox(mailbox.id));
        let current = existing.as_ref().map_or(Rights::NONE, |g| g.rights);
        let send = existing.as_ref().and_then(|g| g.send);
        // `removed`: the rights the client asks to be gone afterwards.
        let (wanted, removed) = match rights {
            None => (Rights::NONE, Rights::ALL),
            Some(spec) => {
                let parse = |s: &str| Rights::parse(s).map_err(|e| Bad(format!("{e}")));
                match spec.as_bytes().first() {
                    Some(b'+') => (current | parse(&spec[1..])?, Rights::NONE),
                    Some(b'-') => {
                        let minus = parse(&spec[1..])?;
                        (current.without(minus), minus)
                    }
                    _ => {
                        let exact = parse(spec)?;
                        (exact, Rights::ALL.without(exact))
                    }
                }
            }
        };
        // Rights an org-wide grant gives the same grantee stay whatever this ACL says: refuse
        // rather than answer OK to a removal that would not happen.
        let org_wide = store
            .grants(mailbox.org)?
            .into_iter()
            .filter(|g| g.grantee == grantee && g.target == GrantTarget::AllMailboxes)
            .fold(Rights::NONE, |acc, g| acc | g.rights);
        let kept = org_wide & removed;
        if !kept.is_empty() {
            return Err(No(format!(
                "[CANNOT] {who} holds {} on every mailbox of the organization; change that grant in the admin API",
                kept.letters()
            )));
        }
        let action = Action::Grant {
            target: GrantTarget::Mailbox(mailbox.id),
            rights: wanted,
            send,
        };
        access::may(&identity.principal(), mailbox.org, &action)
            .map_err(|d| No(format!("[NOPERM] {d}")))?;
        match (existing, wanted.is_empty() && send.is_none()) {
            (Some(g), true) => store.remove_grant(mailbox.org, g.id)?,
            (Some(g), false) => {
                store.update_grant(mailbox.org, g.id, wanted, send)?;
            }
            (None, true) => {}
            (None, false) => {
                store.add_grant(NewGrant {
                    org: mailbox.org,
                    grantee,
                    target: GrantTarget::Mailbox(mailbox.id),
                    rights: wanted,
                    send,
                })?;
            }
        }
        self.audit_acl(identity, &mailbox, verb, who, wanted);
        Ok(format!("{verb} completed"))
    }

    fn audit_acl(
        &self,
        identity: &Identity,
        mailbox: &Mailbox,
        verb: &str,
        who: &str,
        rights: Rights,
    ) {
        let event = AuditEvent {
            id: AuditId(0),
            at: 0,
            org: Some(mailbox.org),
            actor: identity.actor(),
            action: format!("imap.{}", verb.to_ascii_lowercase()),
            target: mailbox.address.clone(),
            client: Some(self.peer.ip().to_string()),
            outcome: Outcome::Success,
            detail: format!("{who} now {}", rights.letters()),
        };
        if let Err(e) = self.services.store.record_audit(event) {
            tracing::error!(error = %e, "could not record an ACL change");
        }
    }
}
