//! Loading a [`Dump`] of sled's store (`store::copy`) into an empty database, every
//! identifier, UIDVALIDITY, UID and MODSEQ as it was, in one transaction: a failed copy
//! leaves the database empty. Then what the database holds is tallied and its message bytes
//! checked against their names (SHA-256), for the comparison `mailgate store copy` makes.

use super::PgStore;
use super::blobs;
use super::grants::GRANT_COLUMNS;
use super::lifecycle::write_import;
use super::messages::{record, set_user_seen, write_record};
use super::rows::Prepared;
use super::rows::{id, json, word};
use crate::model::*;
use crate::store::copy::{Dump, FolderDump, Tally, messages_digest};
use crate::store::error::{StoreError, StoreResult};
use crate::store::folders::canonical_name;
use crate::store::{BlobId, MessageRecord, TokenKind};
use deadpool_postgres::GenericClient;
use std::collections::BTreeMap;

/// Reads a message's bytes from where the dump came from.
pub type ReadBytes<'a> = &'a dyn Fn(&BlobId) -> StoreResult<bytes::Bytes>;

impl PgStore {
    /// Loads `dump` into this database, which must be empty; `read` gives each message's
    /// bytes, read once however many messages share them.
    pub fn load(&self, dump: &Dump, read: ReadBytes<'_>) -> StoreResult<()> {
        use crate::store::interface::ServerStore;
        if !self.is_empty()? {
            return Err(StoreError::Invalid {
                what: "copy target",
                why: "the database already holds organizations: copy into an empty one".into(),
            });
        }
        self.transaction(async |tx| {
            load_directory(tx, dump).await?;
            load_access(tx, dump).await?;
            load_mail(tx, dump, read).await?;
            load_server(tx, dump).await?;
            Ok(())
        })
    }

    /// What the database holds, counted as [`Dump::tally`] counts.
    pub fn tally(&self) -> StoreResult<Tally> {
        let tables = [
            ("organizations", "organizations"),
            ("users", "users"),
            ("memberships", "memberships"),
            ("domains", "domains"),
            ("mailboxes", "mailboxes"),
            ("aliases", "addresses WHERE alias"),
            ("teams", "teams"),
            ("grants", "grants"),
            ("partnerships", "partnerships"),
            ("invitations", "invitations"),
            ("api tokens", "api_tokens"),
            ("folders", "folders"),
            ("messages", "messages"),
            ("queue entries", "queue"),
            ("audit events", "audit"),
        ];
        let mut counts = BTreeMap::new();
        for (name, from) in tables {
            let n: i64 = self
                .query_one(&format!("SELECT count(*) FROM {from}"), &[])?
                .try_get(0)?;
            counts.insert(name, n.max(0) as u64);
        }
        // The columns `messages::record` reads, then the folder.
        let rows = self.query(
            "SELECT m.uid, m.flags, m.keywords, m.internal_date, m.size, m.modseq, m.blob, \
             m.saved, m.folder FROM messages m ORDER BY m.folder, m.uid",
            &[],
        )?;
        let mut folders: BTreeMap<FolderId, Vec<MessageRecord>> = BTreeMap::new();
        for row in &rows {
            let folder = super::rows::from_id(row.try_get(8)?, "folder")?;
            folders
                .entry(FolderId(folder))
                .or_default()
                .push(record(row)?);
        }
        Ok(Tally {
            counts,
            messages_digest: messages_digest(folders.iter().map(|(f, m)| (*f, m))),
        })
    }

    /// Reads every stored message's bytes and checks them against their name; how many.
    pub fn verify_bytes(&self) -> StoreResult<u64> {
        let ids = self.query("SELECT id FROM blobs ORDER BY id", &[])?;
        for row in &ids {
            let blob = BlobId(super::rows::hash32(row.try_get(0)?, "blob")?);
            let bytes = self.block(async { blobs::read(&self.client().await?, &blob).await })?;
            if BlobId::of(&bytes) != blob {
                return Err(StoreError::Corrupt(format!("{blob:?} holds other bytes")));
            }
        }
        Ok(ids.len() as u64)
    }
}

async fn load_directory(tx: &impl GenericClient, d: &Dump) -> StoreResult<()> {
    for (org, suspension) in &d.organizations {
        tx.execute_cached(
            "INSERT INTO organizations (id, name, created, suspended_since, deletion_due) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &id(org.id.0)?,
                &org.name,
                &org.created,
                &suspension.map(|s| s.since),
                &suspension.and_then(|s| s.deletion_due),
            ],
        )
        .await?;
    }
    for (user, operator) in &d.users {
        tx.execute_cached(
            "INSERT INTO users (id, login, login_key, display_name, password, \
             must_change_password, disabled, created, operator) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id(user.id.0)?,
                &user.login,
                &normalize_address(&user.login),
                &user.display_name,
                &user.password.0,
                &user.must_change_password,
                &user.disabled,
                &user.created,
                operator,
            ],
        )
        .await?;
    }
    for m in &d.memberships {
        tx.execute_cached(
            "INSERT INTO memberships (org, user_id, role) VALUES ($1, $2, $3)",
            &[&id(m.org.0)?, &id(m.user.0)?, &word(&m.role)?],
        )
        .await?;
    }
    for (domain, claim, keys) in &d.domains {
        tx.execute_cached(
            "INSERT INTO domains (name, org) VALUES ($1, $2)",
            &[&domain.name, &id(domain.org.0)?],
        )
        .await?;
        if let Some(claim) = claim {
            tx.execute_cached(
                "INSERT INTO domain_claims (domain, token, verified) VALUES ($1, $2, $3)",
                &[&domain.name, &claim.token, &claim.verified],
            )
            .await?;
        }
        for secret in keys {
            super::dkim::insert_key(tx, secret).await?;
        }
    }
    for (mailbox, usage) in &d.mailboxes {
        tx.execute_cached(
            "INSERT INTO mailboxes (id, org, address, display_name, password, quota_bytes, \
             seen, created, usage_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id(mailbox.id.0)?,
                &id(mailbox.org.0)?,
                &mailbox.address,
                &mailbox.display_name,
                &mailbox.password.0,
                &id(mailbox.quota_bytes)?,
                &word(&mailbox.seen)?,
                &mailbox.created,
                &id(*usage)?,
            ],
        )
        .await?;
        tx.execute_cached(
            "INSERT INTO addresses (address, mailbox, alias) VALUES ($1, $2, false)",
            &[&mailbox.address, &id(mailbox.id.0)?],
        )
        .await?;
    }
    for alias in &d.aliases {
        tx.execute_cached(
            "INSERT INTO addresses (address, mailbox, alias) VALUES ($1, $2, true)",
            &[&alias.address, &id(alias.mailbox.0)?],
        )
        .await?;
    }
    Ok(())
}

async fn load_access(tx: &impl GenericClient, d: &Dump) -> StoreResult<()> {
    for (team, members) in &d.teams {
        tx.execute_cached(
            "INSERT INTO teams (id, org, name) VALUES ($1, $2, $3)",
            &[&id(team.id.0)?, &id(team.org.0)?, &team.name],
        )
        .await?;
        for user in members {
            tx.execute_cached(
                "INSERT INTO team_members (team, user_id) VALUES ($1, $2)",
                &[&id(team.id.0)?, &id(user.0)?],
            )
            .await?;
        }
    }
    for g in &d.grants {
        let (user, team) = match g.grantee {
            Grantee::User(u) => (Some(id(u.0)?), None),
            Grantee::Team(t) => (None, Some(id(t.0)?)),
        };
        let mailbox = match g.target {
            GrantTarget::Mailbox(m) => Some(id(m.0)?),
            GrantTarget::AllMailboxes => None,
        };
        tx.execute_cached(
            &format!(
                "INSERT INTO grants ({GRANT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &id(g.id.0)?,
                &id(g.org.0)?,
                &user,
                &team,
                &mailbox,
                &i32::from(g.rights.bits()),
                &g.send.as_ref().map(word).transpose()?,
                &g.created,
                &g.validity.from,
                &g.validity.until,
            ],
        )
        .await?;
    }
    for p in &d.partnerships {
        let limited = match &p.scope {
            PartnerScope::Full => None,
            PartnerScope::Limited(set) => Some(set),
        };
        tx.execute_cached(
            "INSERT INTO partnerships (id, client, partner, full_scope, status, created) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &id(p.id.0)?,
                &id(p.client.0)?,
                &id(p.partner.0)?,
                &limited.is_none(),
                &word(&p.status)?,
                &p.created,
            ],
        )
        .await?;
        for mailbox in limited.into_iter().flatten() {
            tx.execute_cached(
                "INSERT INTO partnership_mailboxes (partnership, mailbox) VALUES ($1, $2)",
                &[&id(p.id.0)?, &id(mailbox.0)?],
            )
            .await?;
        }
    }
    for i in &d.invitations {
        super::grants::insert_invitation(tx, i).await?;
    }
    for t in &d.tokens {
        let name = match &t.kind {
            TokenKind::Session => None,
            TokenKind::Personal { name } => Some(name.as_str()),
        };
        tx.execute_cached(
            "INSERT INTO api_tokens (token_hash, user_id, name, created, expires, \
             password_change_only) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &t.token_hash.as_slice(),
                &id(t.user.0)?,
                &name,
                &t.created,
                &t.expires,
                &t.password_change_only,
            ],
        )
        .await?;
    }
    Ok(())
}

async fn load_mail(tx: &impl GenericClient, d: &Dump, read: ReadBytes<'_>) -> StoreResult<()> {
    // Each message's bytes once, with as many references as records and queue entries.
    let mut references: BTreeMap<BlobId, u64> = BTreeMap::new();
    for f in &d.folders {
        for m in &f.messages {
            *references.entry(m.blob).or_default() += 1;
        }
    }
    for q in &d.queue {
        *references.entry(q.blob).or_default() += 1;
    }
    for (blob, n) in &references {
        let bytes = read(blob)?;
        if BlobId::of(&bytes) != *blob {
            return Err(StoreError::Corrupt(format!("{blob:?} holds other bytes")));
        }
        blobs::hold(tx, *blob, &bytes, *n).await?;
    }
    for f in &d.folders {
        load_folder(tx, f).await?;
    }
    for (mailbox, who, name, on) in &d.subscriptions {
        tx.execute_cached(
            "INSERT INTO subscriptions (mailbox, subscriber, name, subscribed) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM mailboxes WHERE id = $1) \
             ON CONFLICT DO NOTHING",
            &[&id(mailbox.0)?, &id(*who)?, &canonical_name(name), on],
        )
        .await?;
    }
    for q in &d.queue {
        tx.execute_cached(
            "INSERT INTO queue (id, blob, sender, domain, recipients, created, attempts, \
             next_attempt, last_error, reasons, dsn, held) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &id(q.id.0)?,
                &q.blob.0.as_slice(),
                &q.sender,
                &q.domain,
                &q.recipients,
                &q.created,
                &i32::try_from(q.attempts).unwrap_or(i32::MAX),
                &q.next_attempt,
                &q.last_error,
                &q.reasons,
                &json(&q.dsn)?,
                &q.is_held(),
            ],
        )
        .await?;
    }
    for import in &d.imports {
        // No runner: the first node to start interrupts those that were running.
        write_import(tx, import, None).await?;
    }
    Ok(())
}

async fn load_folder(tx: &impl GenericClient, f: &FolderDump) -> StoreResult<()> {
    let folder = &f.folder;
    tx.execute_cached(
        "INSERT INTO folders (id, mailbox, name, name_key, special_use, uidvalidity, uidnext, \
         highestmodseq, recent_floor, expunges_forgotten_through) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &id(folder.id.0)?,
            &id(folder.mailbox.0)?,
            &folder.name,
            &canonical_name(&folder.name),
            &folder.special_use.as_ref().map(word).transpose()?,
            &i64::from(folder.uidvalidity),
            &i64::from(folder.uidnext),
            &id(folder.highestmodseq)?,
            &i64::from(f.recent_floor),
            &id(f.forgotten_through)?,
        ],
    )
    .await?;
    for m in &f.messages {
        write_record(tx, folder.id, m).await?;
    }
    for (uid, user) in &f.user_seen {
        set_user_seen(tx, folder.id, *uid, *user, true).await?;
    }
    for (modseq, uid) in &f.expunges {
        tx.execute_cached(
            "INSERT INTO expunges (folder, uid, modseq) VALUES ($1, $2, $3)",
            &[&id(folder.id.0)?, &i64::from(*uid), &id(*modseq)?],
        )
        .await?;
    }
    Ok(())
}

async fn load_server(tx: &impl GenericClient, d: &Dump) -> StoreResult<()> {
    for e in &d.audit {
        tx.execute_cached(
            "INSERT INTO audit (id, at, org, actor, action, target, client, outcome, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id(e.id.0)?,
                &e.at,
                &e.org.map(|o| id(o.0)).transpose()?,
                &json(&e.actor)?,
                &e.action,
                &e.target,
                &e.client,
                &word(&e.outcome)?,
                &e.detail,
            ],
        )
        .await?;
    }
    for (name, value) in &d.secrets {
        tx.execute_cached(
            "INSERT INTO secrets (name, value) VALUES ($1, $2)",
            &[name, value],
        )
        .await?;
    }
    tx.execute_cached(
        "UPDATE uidvalidity SET last = greatest(last, $1)",
        &[&i64::from(d.uidvalidity)],
    )
    .await?;
    // Every id the dump holds, and any sled gave, stays below the sequence's next.
    tx.execute_cached(
        "SELECT setval('ids', greatest($1, (SELECT coalesce(max(id), 0) + 1 FROM audit), \
         (SELECT coalesce(max(id), 0) + 1 FROM queue)), false)",
        &[&id(d.next_id.max(1))?],
    )
    .await?;
    Ok(())
}
