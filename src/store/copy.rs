//! `mailgate store copy`: a whole installation moved from sled to PostgreSQL (issue 14), with
//! every identifier, UIDVALIDITY, UID and MODSEQ kept, so that clients and the admin API's
//! scripts see the same server. sled's side writes a [`Dump`] of every record (message bytes
//! stay in their files, read one at a time); PostgreSQL's side loads it in one transaction
//! (`postgres::copy`), then both are compared by counts and digests.

use super::codec::{self, id_at, key};
use super::error::StoreResult;
use super::interface::*;
use super::{
    ApiToken, AuditQuery, DkimSecret, DomainClaim, Folder, Import, MessageRecord, QueueEntry,
    SledStore,
};
use crate::model::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Every record of an installation but the message bytes.
#[derive(Default)]
pub struct Dump {
    pub organizations: Vec<(Organization, Option<Suspension>)>,
    /// Each user, and whether a server operator.
    pub users: Vec<(User, bool)>,
    pub memberships: Vec<Membership>,
    pub domains: Vec<(Domain, Option<DomainClaim>, Vec<DkimSecret>)>,
    /// Each mailbox with the bytes its mail uses.
    pub mailboxes: Vec<(Mailbox, u64)>,
    pub aliases: Vec<Alias>,
    pub teams: Vec<(Team, Vec<UserId>)>,
    pub grants: Vec<Grant>,
    pub partnerships: Vec<Partnership>,
    pub invitations: Vec<Invitation>,
    pub tokens: Vec<ApiToken>,
    pub folders: Vec<FolderDump>,
    /// (mailbox, subscriber: 0 for the mailbox's own login or a user's id, name, subscribed).
    pub subscriptions: Vec<(MailboxId, u64, String, bool)>,
    pub queue: Vec<QueueEntry>,
    pub imports: Vec<Import>,
    pub audit: Vec<AuditEvent>,
    pub secrets: Vec<(String, Vec<u8>)>,
    /// Above every identifier given so far.
    pub next_id: u64,
    /// The last UIDVALIDITY given.
    pub uidvalidity: u32,
}

/// One folder with its messages and what is kept about them.
pub struct FolderDump {
    pub folder: Folder,
    pub recent_floor: u32,
    pub forgotten_through: u64,
    pub messages: Vec<MessageRecord>,
    /// (UID, user) for each message a user has seen, in a mailbox that keeps `\Seen` per user.
    pub user_seen: Vec<(u32, UserId)>,
    /// (MODSEQ, UID) of each expunge remembered for QRESYNC.
    pub expunges: Vec<(u64, u32)>,
}

/// What both sides hold, to compare after a copy: counts per kind, and one digest of every
/// folder's messages (UID, flags, keywords, MODSEQ, bytes' hash).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub counts: BTreeMap<&'static str, u64>,
    pub messages_digest: String,
}

impl Dump {
    pub fn tally(&self) -> Tally {
        let count = |n: usize| n as u64;
        let mut counts = BTreeMap::new();
        counts.insert("organizations", count(self.organizations.len()));
        counts.insert("users", count(self.users.len()));
        counts.insert("memberships", count(self.memberships.len()));
        counts.insert("domains", count(self.domains.len()));
        counts.insert("mailboxes", count(self.mailboxes.len()));
        counts.insert("aliases", count(self.aliases.len()));
        counts.insert("teams", count(self.teams.len()));
        counts.insert("grants", count(self.grants.len()));
        counts.insert("partnerships", count(self.partnerships.len()));
        counts.insert("invitations", count(self.invitations.len()));
        counts.insert("api tokens", count(self.tokens.len()));
        counts.insert("folders", count(self.folders.len()));
        let messages = self.folders.iter().map(|f| f.messages.len()).sum();
        counts.insert("messages", count(messages));
        counts.insert("queue entries", count(self.queue.len()));
        counts.insert("audit events", count(self.audit.len()));
        Tally {
            counts,
            messages_digest: messages_digest(
                self.folders.iter().map(|f| (f.folder.id, &f.messages)),
            ),
        }
    }
}

/// One digest over every folder's messages, folders and messages in id and UID order.
pub fn messages_digest<'a>(
    folders: impl Iterator<Item = (FolderId, &'a Vec<MessageRecord>)>,
) -> String {
    // A folder without messages adds nothing: one side may not list it.
    let mut sorted: Vec<_> = folders.filter(|(_, m)| !m.is_empty()).collect();
    sorted.sort_by_key(|(id, _)| *id);
    let mut hash = Sha256::new();
    for (folder, messages) in sorted {
        hash.update(folder.0.to_be_bytes());
        for m in messages {
            hash.update(m.uid.to_be_bytes());
            hash.update([m.flags.0]);
            for k in &m.keywords {
                hash.update(k.as_bytes());
                hash.update([0]);
            }
            hash.update(m.modseq.to_be_bytes());
            hash.update(m.internal_date.to_be_bytes());
            hash.update(m.blob.0);
        }
    }
    format!("{:x}", hash.finalize())
}

impl SledStore {
    /// Every record of this store (the server stopped: the store's lock says so).
    pub fn dump(&self) -> StoreResult<Dump> {
        let mut d = Dump::default();
        for org in self.organizations()? {
            d.memberships.extend(self.members(org.id)?);
            d.mailboxes.extend(
                self.mailboxes(org.id)?
                    .into_iter()
                    .map(|m| self.usage(m.id).map(|u| (m, u)))
                    .collect::<StoreResult<Vec<_>>>()?,
            );
            d.aliases.extend(self.aliases(org.id)?);
            for team in self.teams(org.id)? {
                let members = self.team_members(team.id)?;
                d.teams.push((team, members));
            }
            d.grants.extend(self.grants(org.id)?);
            for p in self.partnerships_of(org.id)? {
                if p.client == org.id {
                    d.partnerships.push(p);
                }
            }
            d.organizations
                .push((org.clone(), self.suspension(org.id)?));
        }
        let users: Vec<User> = self.scan_model(&[codec::USER], "user")?;
        for user in users {
            d.tokens.extend(self.api_tokens_of(user.id)?);
            let operator = self.is_operator(user.id)?;
            d.users.push((user, operator));
        }
        for domain in self.all_domains()? {
            let claim = self.domain_claim(&domain.name)?;
            let keys = self.dkim_secrets(&domain.name)?;
            d.domains.push((domain, claim, keys));
        }
        d.invitations = self.all_invitations()?;
        for (mailbox, _) in &d.mailboxes {
            for folder in self.folders(mailbox.id)? {
                d.folders.push(self.dump_folder(folder)?);
            }
        }
        d.subscriptions = self.dump_subscriptions()?;
        d.queue = self.queue()?;
        d.imports = self.imports()?;
        d.audit = self.audit_events(&AuditQuery::default())?;
        for item in self.inner.meta.scan_prefix("secret/") {
            let (k, v) = item?;
            let name = String::from_utf8_lossy(&k["secret/".len()..]).into_owned();
            d.secrets.push((name, v.to_vec()));
        }
        d.next_id = self.next_id()?;
        d.uidvalidity = self
            .inner
            .meta
            .get("uidvalidity")?
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0);
        Ok(d)
    }

    fn dump_folder(&self, folder: Folder) -> StoreResult<FolderDump> {
        let (m, f) = (folder.mailbox, folder.id);
        let mut user_seen = Vec::new();
        for item in self
            .inner
            .mail
            .scan_prefix(key(codec::USER_SEEN, &[m.0, f.0]))
        {
            let (k, _) = item?;
            user_seen.push((id_at(&k, 2)? as u32, UserId(id_at(&k, 3)?)));
        }
        let mut expunges = Vec::new();
        for item in self
            .inner
            .mail
            .scan_prefix(key(codec::EXPUNGES, &[m.0, f.0]))
        {
            let (k, _) = item?;
            expunges.push((id_at(&k, 2)?, id_at(&k, 3)? as u32));
        }
        Ok(FolderDump {
            recent_floor: self.recent_floor(m, f)?,
            forgotten_through: self.expunge_log(m, f)?.forgotten_through,
            messages: self.messages(m, f)?,
            user_seen,
            expunges,
            folder,
        })
    }

    fn dump_subscriptions(&self) -> StoreResult<Vec<(MailboxId, u64, String, bool)>> {
        let mut out = Vec::new();
        for item in self.inner.mail.scan_prefix([codec::SUBSCRIPTION]) {
            let (k, v) = item?;
            let (who, mailbox) = (id_at(&k, 0)?, MailboxId(id_at(&k, 1)?));
            let name = String::from_utf8_lossy(&k[17..]).into_owned();
            // Records written before choices were kept hold nothing: subscribed.
            out.push((mailbox, who, name, v.first() != Some(&0)));
        }
        Ok(out)
    }
}

/// What a copy moved and found: both sides' tallies (equal, or the copy is refused as
/// failed) and how many message bytes were read back and matched their names.
pub struct CopyReport {
    pub tally: Tally,
    pub bytes_checked: u64,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (what, n) in &self.tally.counts {
            writeln!(f, "{what}: {n}")?;
        }
        writeln!(
            f,
            "message bodies read back and matching their SHA-256: {}",
            self.bytes_checked
        )?;
        write!(
            f,
            "digest of every folder's messages: {}",
            self.tally.messages_digest
        )
    }
}

/// Copies the sled store in `dir` (the server stopped: its lock is taken) into the empty
/// PostgreSQL database at `url`, then compares the two by counts, by a digest of every
/// message record, and by reading every message's bytes back.
pub fn copy_to_postgres(
    dir: &std::path::Path,
    settings: &crate::config::StoreConfig,
    url: &str,
) -> StoreResult<CopyReport> {
    let from = SledStore::open_with(dir, settings)?;
    let dump = from.dump()?;
    // The target's own node directory, aside: the data directory is sled's, and locked.
    let aside = dir.join("postgres-copy");
    let to = super::postgres::PgStore::connect(url, &aside)?;
    to.load(&dump, &|blob| from.read_message(blob))?;
    let (before, after) = (dump.tally(), to.tally()?);
    if before != after {
        return Err(super::error::StoreError::Corrupt(format!(
            "the copy differs from the original: {before:?} against {after:?}"
        )));
    }
    let bytes_checked = to.verify_bytes()?;
    drop(to);
    let _ = std::fs::remove_dir_all(&aside);
    Ok(CopyReport {
        tally: after,
        bytes_checked,
    })
}
