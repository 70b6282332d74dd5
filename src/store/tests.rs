//! The store's invariants (ARCHITECTURE.md §2), each shown to reject the bad change and to leave the
//! store exactly as it was.

use super::testing::temp_store;
use super::*;
use crate::model::*;

use super::suite::{Snapshot, new_mailbox, world};

impl Snapshot for SledStore {
    /// Every record of every tree.
    fn snapshot(&self) -> Vec<String> {
        let trees = [
            ("model", &self.inner.model),
            ("mail", &self.inner.mail),
            ("audit", &self.inner.audit),
        ];
        let mut out = Vec::new();
        for (name, tree) in trees {
            for item in tree.iter() {
                let (k, v) = item.unwrap();
                out.push(format!("{name} {k:?} {v:?}"));
            }
        }
        out
    }
}

/// A store with one mailbox of Acme: the store, its directory, the world, the mailbox and
/// its INBOX.
struct OneMailbox {
    store: SledStore,
    _dir: tempfile::TempDir,
    m: Mailbox,
    f: FolderId,
}

fn one_mailbox(address: &str) -> OneMailbox {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, address);
    let f = inbox(&store, m.id).id;
    OneMailbox { store, _dir, m, f }
}

fn inbox(store: &SledStore, mailbox: MailboxId) -> Folder {
    store.folder_by_name(mailbox, "inbox").unwrap().unwrap()
}

#[test]
fn one_message_to_many_mailboxes_is_stored_once() {
    let (store, dir) = temp_store();
    let w = world(&store);
    let targets: Vec<_> = (0..5)
        .map(|i| {
            let m = new_mailbox(&store, w.acme.id, &format!("m{i}@acme.example"));
            (m.id, inbox(&store, m.id).id)
        })
        .collect();
    let raw = b"Subject: once\r\n\r\nbody\r\n";
    let records = store
        .deliver(&targets, raw, AppendMessage::default())
        .unwrap();
    assert!(
        records
            .iter()
            .all(|r| r.blob == records[0].blob && r.uid == 1)
    );
    let blob_files = walk(&dir.path().join("blobs"));
    assert_eq!(blob_files, 1, "the body is written once");
    // Expunging it from four mailboxes keeps it for the fifth.
    for (m, f) in &targets[..4] {
        store.expunge(*m, *f, &[1]).unwrap();
    }
    assert_eq!(store.sweep_freed_blobs().unwrap(), 0);
    assert_eq!(store.read_message(&records[0].blob).unwrap().as_ref(), raw);
    store.expunge(targets[4].0, targets[4].1, &[1]).unwrap();
    // The file stays until the sweep, which removes it once.
    assert_eq!(store.read_message(&records[0].blob).unwrap().as_ref(), raw);
    assert_eq!(store.sweep_freed_blobs().unwrap(), 1);
    assert!(store.read_message(&records[0].blob).is_err());
    assert_eq!(store.sweep_freed_blobs().unwrap(), 0);
    // Freed, then delivered again before the files are swept: the sweep keeps it.
    store.expunge(targets[4].0, targets[4].1, &[1]).unwrap();
    let again = store
        .deliver(&targets[..1], raw, AppendMessage::default())
        .unwrap();
    assert_eq!(store.sweep_freed_blobs().unwrap(), 0);
    assert_eq!(store.read_message(&again[0].blob).unwrap().as_ref(), raw);
}

/// A crash between an expunge and the sweep leaves the file and its mark: the next open
/// removes it, so no unreferenced body stays on disk for good.
#[test]
fn a_freed_blob_left_by_a_crash_goes_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let blob = {
        let store = SledStore::open(dir.path()).unwrap();
        let w = world(&store);
        let m = new_mailbox(&store, w.acme.id, "m@acme.example");
        let f = inbox(&store, m.id).id;
        let raw = b"Subject: left\r\n\r\nbody\r\n";
        let record = store
            .append(m.id, f, raw, AppendMessage::default())
            .unwrap();
        store.expunge(m.id, f, &[record.uid]).unwrap();
        store.flush_blocking().unwrap();
        assert_eq!(store.read_message(&record.blob).unwrap().as_ref(), raw);
        record.blob
    };
    let store = SledStore::open(dir.path()).unwrap();
    assert!(store.read_message(&blob).is_err());
    assert_eq!(store.sweep_freed_blobs().unwrap(), 0);
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.ends_with("tmp") {
                0
            } else if p.is_dir() {
                walk(&p)
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn everything_survives_a_restart() {
    let (store, dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "contact@acme.example");
    let f = inbox(&store, m.id).id;
    let record = store
        .append(
            m.id,
            f,
            b"Subject: kept\r\n\r\n.\r\n",
            AppendMessage::default(),
        )
        .unwrap();
    store
        .record_audit(AuditEvent {
            id: AuditId(0),
            at: 0,
            org: Some(w.acme.id),
            actor: Actor::System,
            action: "test.event".into(),
            target: "x".into(),
            client: None,
            outcome: Outcome::Success,
            detail: String::new(),
        })
        .unwrap();
    store.flush_blocking().unwrap();
    drop(store);

    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.organization(w.acme.id).unwrap().unwrap().name, "Acme");
    assert_eq!(
        store
            .mailbox_by_address("CONTACT@acme.example")
            .unwrap()
            .unwrap()
            .id,
        m.id
    );
    assert_eq!(store.messages(m.id, f).unwrap(), vec![record.clone()]);
    let summary = store.summary(&record.blob).unwrap();
    assert_eq!(summary.envelope.subject.as_deref(), Some("kept"));
    let events = store
        .audit_events(&AuditQuery {
            action_prefix: Some("test.".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn audit_queries_filter_and_order_newest_first() {
    let (store, _dir) = temp_store();
    for (at, action) in [
        (1000, "imap.login"),
        (2000, "grant.create"),
        (3000, "imap.login"),
    ] {
        store
            .record_audit(AuditEvent {
                id: AuditId(0),
                at,
                org: None,
                actor: Actor::Anonymous,
                action: action.into(),
                target: String::new(),
                client: None,
                outcome: Outcome::Failure,
                detail: String::new(),
            })
            .unwrap();
    }
    let q = AuditQuery {
        action_prefix: Some("imap.".into()),
        ..Default::default()
    };
    let got: Vec<_> = store
        .audit_events(&q)
        .unwrap()
        .iter()
        .map(|e| e.at)
        .collect();
    assert_eq!(got, vec![3000, 1000]);
    let q = AuditQuery {
        since: Some(1500),
        until: Some(2500),
        ..Default::default()
    };
    assert_eq!(store.audit_events(&q).unwrap().len(), 1);
    // Retention: what came before the cut-off goes, what came at or after it stays.
    assert_eq!(store.prune_audit(2000).unwrap(), 1);
    let left: Vec<_> = store
        .audit_events(&AuditQuery::default())
        .unwrap()
        .iter()
        .map(|e| e.at)
        .collect();
    assert_eq!(left, vec![3000, 2000]);
    assert_eq!(store.prune_audit(2000).unwrap(), 0);
}

/// A spooled message's file becomes its blob: renamed, not written a second time.
#[tokio::test]
async fn a_spooled_message_is_moved_into_the_store_not_copied() {
    use std::os::unix::fs::MetadataExt;
    let (store, dir) = temp_store();
    let w = world(&store);
    let mailbox = new_mailbox(&store, w.acme.id, "spool@acme.example");
    let inbox = store.folder_by_name(mailbox.id, "INBOX").unwrap().unwrap();
    let limits = SpoolLimits {
        threshold: 64,
        in_flight: 1 << 20,
        processing: 1 << 20,
    };
    let spool = Spool::open(&dir.path().join("spool"), limits).unwrap();
    let spool_files = || std::fs::read_dir(dir.path().join("spool")).unwrap().count();
    let raw = b"Subject: big\r\n\r\n".repeat(100);

    let mut incoming = spool.incoming();
    for chunk in raw.chunks(7) {
        incoming.push(chunk).unwrap();
    }
    let message = incoming.load().await.unwrap();
    let inode = message.spooled().map(|s| s.path.metadata().unwrap().ino());
    let record = store
        .append_loaded(mailbox.id, inbox.id, &message, AppendMessage::default())
        .unwrap();
    let blob_path = store.inner.blobs.path(&record.blob);
    assert_eq!(
        Some(blob_path.metadata().unwrap().ino()),
        inode,
        "the same file"
    );
    assert_eq!(store.read_message(&record.blob).unwrap().as_ref(), raw);
    drop(message);
    assert_eq!(spool_files(), 0);

    // The same content again: stored once, the second spool file dropped.
    let mut again = spool.incoming();
    again.push(&raw).unwrap();
    let again = again.load().await.unwrap();
    let second = store
        .append_loaded(mailbox.id, inbox.id, &again, AppendMessage::default())
        .unwrap();
    assert_eq!(second.blob, record.blob);
    drop(again);
    assert_eq!(spool_files(), 0);
    assert_eq!(store.read_message(&record.blob).unwrap().as_ref(), raw);
}

/// Summaries are a cache of the blobs: those of an older layout go at open, and a missing
/// one is made again from its blob when read.
#[test]
fn summaries_are_made_again_from_the_blob() {
    let (store, dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "boss@acme.example");
    let f = inbox(&store, m.id).id;
    let record = store
        .append(
            m.id,
            f,
            b"Subject: kept\r\n\r\nx\r\n",
            AppendMessage::default(),
        )
        .unwrap();
    let key = folders::blob_key(codec::SUMMARY, &record.blob);
    let old = folders::blob_key(codec::OLD_SUMMARY, &record.blob);
    store.inner.mail.remove(&key).unwrap();
    store
        .inner
        .mail
        .insert(&old, b"old layout".to_vec())
        .unwrap();
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert!(
        store.inner.mail.get(&old).unwrap().is_none(),
        "dropped at open"
    );
    let summary = store.summary(&record.blob).unwrap();
    assert!(summary.headers.contains(&("subject".into(), "kept".into())));
    assert!(store.inner.mail.get(&key).unwrap().is_some(), "kept again");
}

/// A folder subscribed before subscriptions were kept by name stays subscribed.
#[test]
fn folder_subscriptions_of_an_older_layout_are_kept_by_name() {
    let (store, dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "boss@acme.example");
    let mut folder = store.create_folder(m.id, "Projects", None).unwrap();
    folder.subscribed = true;
    let k = codec::key(codec::FOLDER, &[m.id.0, folder.id.0]);
    store
        .inner
        .mail
        .insert(k, codec::encode(&folder).unwrap())
        .unwrap();
    // An older version's directory: no mark of the upgrade.
    store.inner.meta.remove(SUBSCRIPTIONS_BY_NAME).unwrap();
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    let subs = store.subscriptions(Subscriber::MailboxLogin, m.id).unwrap();
    assert_eq!(subs.get("Projects"), Some(&true));
    assert!(!store.folder(m.id, folder.id).unwrap().unwrap().subscribed);
}

#[test]
fn a_folder_forgets_its_oldest_expunges_and_says_so() {
    let OneMailbox { store, _dir, m, f } = one_mailbox("a@acme.example");
    let mut uids = Vec::new();
    for _ in 0..1100 {
        let added = store
            .append(m.id, f, b"x", AppendMessage::default())
            .unwrap();
        uids.push(added.uid);
    }
    let before = store.folder(m.id, f).unwrap().unwrap().highestmodseq;
    store.expunge(m.id, f, &uids[..600]).unwrap();
    let first = store.folder(m.id, f).unwrap().unwrap().highestmodseq;
    assert_eq!(
        store.expunged_since(m.id, f, before).unwrap(),
        ExpungedSince::Exactly(uids[..600].to_vec())
    );
    // 1,100 kept is past the bound: the older expunge (600) is forgotten whole.
    store.expunge(m.id, f, &uids[600..]).unwrap();
    assert_eq!(
        store.expunged_since(m.id, f, before).unwrap(),
        ExpungedSince::Forgotten
    );
    assert_eq!(
        store.expunged_since(m.id, f, first).unwrap(),
        ExpungedSince::Exactly(uids[600..].to_vec())
    );
    let kept = store.inner.mail.scan_prefix([codec::EXPUNGES]).count();
    assert_eq!(kept, 500);
    // Deleting the folder takes its record of expunges along.
    store.delete_folder(m.id, f).unwrap();
    assert_eq!(store.inner.mail.scan_prefix([codec::EXPUNGES]).count(), 0);
    assert_eq!(
        store.inner.mail.scan_prefix([codec::EXPUNGE_LOG]).count(),
        0
    );
}

#[test]
fn expunges_kept_by_uid_are_rewritten_by_modseq_at_open() {
    let OneMailbox { store, _dir, m, f } = one_mailbox("a@acme.example");
    // As an older version wrote them: UID → MODSEQ, every one; 1,200 of them, UID n at
    // MODSEQ 10 + n.
    for uid in 1..=1200u64 {
        let k = codec::key(codec::OLD_EXPUNGED, &[m.id.0, f.0, uid]);
        store
            .inner
            .mail
            .insert(k, codec::encode(&(10 + uid)).unwrap())
            .unwrap();
    }
    store.upgrade_expunge_records().unwrap();
    assert_eq!(
        store.inner.mail.scan_prefix([codec::OLD_EXPUNGED]).count(),
        0
    );
    // The newest 1,000 are kept (UIDs 201..=1200, MODSEQs 211..=1210), the rest forgotten.
    assert_eq!(
        store.expunged_since(m.id, f, 209).unwrap(),
        ExpungedSince::Forgotten
    );
    assert_eq!(
        store.expunged_since(m.id, f, 210).unwrap(),
        ExpungedSince::Exactly((201..=1200).collect())
    );
    assert_eq!(
        store.expunged_since(m.id, f, 1208).unwrap(),
        ExpungedSince::Exactly(vec![1199, 1200])
    );
}

#[test]
fn exports_are_kept_under_the_data_directory_by_plain_names() {
    let (store, dir) = temp_store();
    let path = store
        .save_export(
            "org-1",
            "2-a@b.example.mbox",
            Box::new(|out| {
                out.write_all(b"From x\n")
                    .map_err(|e| StoreError::io(std::path::Path::new("x"), e))
            }),
        )
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"From x\n");
    assert!(path.starts_with(dir.path()));
    for (folder, name) in [("..", "x"), ("a/b", "x"), ("org-1", "../x"), ("org-1", "")] {
        assert!(
            store
                .save_export(folder, name, Box::new(|_| Ok(())))
                .is_err(),
            "{folder}/{name}"
        );
    }
}

/// A grant written before time windows existed still decodes, open-ended.
#[test]
fn a_grant_of_the_layout_before_validity_counts_for_good() {
    let (w, lucie) = (OrgId(1), UserId(2));
    // The layout before validity: the same fields, without it.
    let old = (
        GrantId(99),
        w,
        Grantee::User(lucie),
        GrantTarget::AllMailboxes,
        Rights::parse("l").unwrap(),
        None::<SendMode>,
        5i64,
    );
    let bytes = super::codec::encode(&old).unwrap();
    let decoded = super::grants::decode_grant(&bytes).unwrap();
    assert_eq!(
        (decoded.id, decoded.validity),
        (GrantId(99), Validity::default())
    );
}

// ----- the suite every backend passes (`store::suite`) -----

#[test]
fn suite_audit_events_are_filtered_newest_first_and_pruned_by_age() {
    super::suite::audit_events_are_filtered_newest_first_and_pruned_by_age(&temp_store().0);
}

#[test]
fn suite_queued_mail_is_grouped_by_domain_held_released_deferred_and_dequeued() {
    super::suite::queued_mail_is_grouped_by_domain_held_released_deferred_and_dequeued(
        &temp_store().0,
    );
}

#[test]
fn suite_server_secrets_are_made_once_and_replaced_when_no_longer_good() {
    super::suite::server_secrets_are_made_once_and_replaced_when_no_longer_good(&temp_store().0);
}

#[test]
fn suite_mail() {
    let mut dirs = Vec::new();
    super::suite::run(super::suite::mail::all(), |_| {
        let (store, dir) = temp_store();
        dirs.push(dir);
        store
    });
}

#[test]
fn suite_directory() {
    let mut dirs = Vec::new();
    super::suite::run(super::suite::directory::all(), |_| {
        let (store, dir) = temp_store();
        dirs.push(dir);
        store
    });
}
