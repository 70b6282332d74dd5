//! The store's invariants (ARCHITECTURE.md §2), each shown to reject the bad change and to leave the
//! store exactly as it was.

use super::testing::temp_store;
use super::*;
use crate::model::*;

use super::suite::{Snapshot, World, new_mailbox, new_user, refused, world};

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
    w: World,
    m: Mailbox,
    f: FolderId,
}

fn one_mailbox(address: &str) -> OneMailbox {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, address);
    let f = inbox(&store, m.id).id;
    OneMailbox {
        store,
        _dir,
        w,
        m,
        f,
    }
}

fn inbox(store: &SledStore, mailbox: MailboxId) -> Folder {
    store.folder_by_name(mailbox, "inbox").unwrap().unwrap()
}

#[test]
fn deleting_a_mailbox_removes_aliases_grants_and_unshared_blobs() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let contact = new_mailbox(&store, w.acme.id, "contact@acme.example");
    let sales = new_mailbox(&store, w.acme.id, "sales@acme.example");
    store
        .create_alias(w.acme.id, "hello@acme.example", contact.id)
        .unwrap();
    store
        .add_grant(NewGrant {
            org: w.acme.id,
            grantee: Grantee::User(w.owner.id),
            target: GrantTarget::Mailbox(contact.id),
            rights: Rights::ALL,
            send: Some(SendMode::As),
        })
        .unwrap();
    let shared = b"Subject: to both\r\n\r\nhi\r\n".to_vec();
    let only_contact = b"Subject: only contact\r\n\r\nhi\r\n".to_vec();
    let targets = [
        (contact.id, inbox(&store, contact.id).id),
        (sales.id, inbox(&store, sales.id).id),
    ];
    store
        .deliver(&targets, &shared, AppendMessage::default())
        .unwrap();
    let lone = store
        .append(
            contact.id,
            targets[0].1,
            &only_contact,
            AppendMessage::default(),
        )
        .unwrap();

    store.delete_mailbox(contact.id).unwrap();
    assert_eq!(
        store.sweep_freed_blobs().unwrap(),
        1,
        "the unshared body goes"
    );

    assert!(
        store
            .resolve_address("contact@acme.example")
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .resolve_address("hello@acme.example")
            .unwrap()
            .is_none()
    );
    assert!(store.grants(w.acme.id).unwrap().is_empty());
    assert!(store.folders(contact.id).unwrap().is_empty());
    assert!(
        store.read_message(&lone.blob).is_err(),
        "unreferenced blob kept"
    );
    let kept = &store.messages(sales.id, targets[1].1).unwrap()[0];
    assert_eq!(store.read_message(&kept.blob).unwrap().as_ref(), shared);
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
fn new_mailboxes_get_the_standard_folders() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "contact@acme.example");
    let folders = store.folders(m.id).unwrap();
    let names: Vec<_> = folders
        .iter()
        .map(|f| (f.name.as_str(), f.special_use))
        .collect();
    for (name, special) in STANDARD_FOLDERS {
        assert!(names.contains(&(name, special)), "{name} missing");
    }
}

#[test]
fn quota_is_enforced_and_usage_follows_expunge() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "small@acme.example");
    store
        .update_mailbox(m.id, Box::new(|m| m.quota_bytes = 100))
        .unwrap();
    let f = inbox(&store, m.id).id;
    let record = store
        .append(m.id, f, &[b'x'; 60], AppendMessage::default())
        .unwrap();
    refused!(
        store,
        store.append(m.id, f, &[b'y'; 60], AppendMessage::default()),
        StoreError::OverQuota { quota: 100 }
    );
    assert_eq!(store.usage(m.id).unwrap(), 60);
    store.expunge(m.id, f, &[record.uid]).unwrap();
    assert_eq!(store.usage(m.id).unwrap(), 0);
}

#[test]
fn uids_modseqs_and_uidvalidity_only_grow() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "c@acme.example");
    let f = store.create_folder(m.id, "Projects", None).unwrap();
    let a = store
        .append(m.id, f.id, b"a", AppendMessage::default())
        .unwrap();
    let b = store
        .append(m.id, f.id, b"b", AppendMessage::default())
        .unwrap();
    assert_eq!((a.uid, b.uid), (1, 2));
    assert!(b.modseq > a.modseq);
    let flagged = set_flags(&store, m.id, f.id, 1, None, Flags::SEEN);
    assert!(flagged.modseq > b.modseq);
    store.expunge(m.id, f.id, &[2]).unwrap();
    let c = store
        .append(m.id, f.id, b"c", AppendMessage::default())
        .unwrap();
    assert_eq!(c.uid, 3, "UIDs are never reused");
    // A folder deleted and made again gets another UIDVALIDITY (RFC 3501 §2.3.1.1).
    store.delete_folder(m.id, f.id).unwrap();
    let again = store.create_folder(m.id, "Projects", None).unwrap();
    assert!(again.uidvalidity > f.uidvalidity);
}

#[test]
fn rename_moves_children_and_keeps_uidvalidity() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "c@acme.example");
    let parent = store.create_folder(m.id, "A", None).unwrap();
    store.create_folder(m.id, "A/B", None).unwrap();
    store.create_folder(m.id, "AB", None).unwrap();
    store.rename_folder(m.id, "A", "Z").unwrap();
    let names: Vec<String> = store
        .folders(m.id)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert!(names.contains(&"Z".into()) && names.contains(&"Z/B".into()));
    assert!(
        names.contains(&"AB".into()),
        "a sibling with the same prefix stays"
    );
    let z = store.folder_by_name(m.id, "Z").unwrap().unwrap();
    assert_eq!(z.uidvalidity, parent.uidvalidity);
    refused!(
        store,
        store.rename_folder(m.id, "AB", "Z"),
        StoreError::FolderExists(_)
    );
}

#[test]
fn per_user_seen_and_subscriptions() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "boss@acme.example");
    let f = inbox(&store, m.id).id;
    store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    let lucie = new_user(&store, "lucie@gmail.example");
    let before = store.message(m.id, f, 1).unwrap().unwrap();
    let after = set_flags(&store, m.id, f, 1, Some(lucie.id), Flags::SEEN);
    assert_eq!(store.user_seen(m.id, f, lucie.id).unwrap(), vec![1]);
    assert!(
        !after.flags.contains(Flags::SEEN),
        "the shared \\Seen stays as it was"
    );
    assert!(
        after.modseq > before.modseq,
        "a user's own \\Seen is a change the user's other devices must hear of"
    );
    assert!(store.user_seen(m.id, f, w.owner.id).unwrap().is_empty());
    let lucie_s = Subscriber::User(lucie.id);
    store.set_subscription(lucie_s, m.id, "Sent", true).unwrap();
    store
        .set_subscription(lucie_s, m.id, "inbox", false)
        .unwrap();
    let expected = [("INBOX".to_string(), false), ("Sent".to_string(), true)];
    assert_eq!(
        store.subscriptions(lucie_s, m.id).unwrap(),
        expected.into_iter().collect()
    );
    assert!(
        store
            .subscriptions(Subscriber::MailboxLogin, m.id)
            .unwrap()
            .is_empty(),
        "the mailbox's own login keeps its own"
    );
}

/// RFC 3501 §6.3.6: a subscription names a folder, whether it exists or not; DELETE leaves it.
#[test]
fn subscriptions_outlive_the_folder() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "boss@acme.example");
    let who = Subscriber::MailboxLogin;
    store
        .set_subscription(who, m.id, "Later/Plans", true)
        .unwrap();
    let folder = store.create_folder(m.id, "Projects", None).unwrap();
    store.set_subscription(who, m.id, "Projects", true).unwrap();
    store.delete_folder(m.id, folder.id).unwrap();
    let subs = store.subscriptions(who, m.id).unwrap();
    assert_eq!(subs.get("Projects"), Some(&true));
    assert_eq!(subs.get("Later/Plans"), Some(&true));
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

/// Adds `flags` to one message, as STORE +FLAGS does; returns its record.
fn set_flags(
    store: &SledStore,
    m: MailboxId,
    f: FolderId,
    uid: u32,
    seen_user: Option<UserId>,
    flags: Flags,
) -> MessageRecord {
    let add = |now: &SeenFlags| SeenFlags {
        flags: Flags(now.flags.0 | flags.0),
        keywords: now.keywords.clone(),
    };
    let change = FlagChange {
        seen_user,
        unchanged_since: None,
        apply: &add,
    };
    let outcome = store.change_flags(m, f, &[uid], change).unwrap();
    outcome.messages[0].0.clone()
}

#[test]
fn concurrent_flag_changes_all_land() {
    let OneMailbox {
        store,
        _dir,
        w: _,
        m,
        f,
    } = one_mailbox("c@acme.example");
    store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    // Two sessions each add their own flag, many times over: neither may undo the other's.
    std::thread::scope(|scope| {
        for flag in [Flags::FLAGGED, Flags::ANSWERED] {
            let store = &store;
            scope.spawn(move || {
                for _ in 0..200 {
                    set_flags(store, m.id, f, 1, None, flag);
                }
            });
        }
    });
    let record = store.message(m.id, f, 1).unwrap().unwrap();
    assert!(record.flags.contains(Flags::FLAGGED) && record.flags.contains(Flags::ANSWERED));
}

#[test]
fn unchanged_since_is_checked_against_the_record_written() {
    let OneMailbox {
        store,
        _dir,
        w: _,
        m,
        f,
    } = one_mailbox("c@acme.example");
    let first = store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    set_flags(&store, m.id, f, 1, None, Flags::FLAGGED);
    let keep = |now: &SeenFlags| now.clone();
    let change = FlagChange {
        seen_user: None,
        unchanged_since: Some(first.modseq),
        apply: &keep,
    };
    let outcome = store.change_flags(m.id, f, &[1], change).unwrap();
    assert_eq!(outcome.modified, vec![1]);
    assert!(outcome.messages.is_empty());
}

#[test]
fn expunge_deleted_spares_a_message_undeleted_meanwhile() {
    let OneMailbox {
        store,
        _dir,
        w: _,
        m,
        f,
    } = one_mailbox("c@acme.example");
    store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    store
        .append(m.id, f, b"y", AppendMessage::default())
        .unwrap();
    set_flags(&store, m.id, f, 2, None, Flags::DELETED);
    // A session saw both flagged \Deleted; one was cleared since.
    assert_eq!(store.expunge_deleted(m.id, f, &[1, 2]).unwrap(), vec![2]);
    assert!(store.message(m.id, f, 1).unwrap().is_some());
}

fn transfer_between(
    store: &SledStore,
    from: (MailboxId, FolderId),
    to: (MailboxId, FolderId),
    uids: &[u32],
    remove_source: bool,
) -> StoreResult<Transferred> {
    let view = |(mailbox, folder)| FolderView {
        mailbox,
        folder,
        seen_user: None,
    };
    store.transfer(Transfer {
        from: view(from),
        to: view(to),
        uids,
        permit: &|flags, keywords| (flags, keywords),
        remove_source,
    })
}

#[test]
fn copy_over_quota_leaves_no_partial_copy() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let source = new_mailbox(&store, w.acme.id, "a@acme.example");
    let target = new_mailbox(&store, w.acme.id, "b@acme.example");
    store
        .update_mailbox(target.id, Box::new(|m| m.quota_bytes = 150))
        .unwrap();
    let (fs, ft) = (inbox(&store, source.id).id, inbox(&store, target.id).id);
    for body in [&b"1"[..], b"2", b"3"] {
        let raw = [body, &[b'x'; 59][..]].concat();
        store
            .append(source.id, fs, &raw, AppendMessage::default())
            .unwrap();
    }
    refused!(
        store,
        transfer_between(&store, (source.id, fs), (target.id, ft), &[1, 2, 3], false),
        StoreError::OverQuota { .. }
    );
    assert!(store.messages(target.id, ft).unwrap().is_empty());
    assert_eq!(store.usage(target.id).unwrap(), 0);
    let pairs = transfer_between(&store, (source.id, fs), (target.id, ft), &[1, 2], false).unwrap();
    assert_eq!(pairs, vec![(1, 1), (2, 2)]);
    // The copies share the bytes: expunging the originals keeps them readable.
    store.expunge(source.id, fs, &[1, 2, 3]).unwrap();
    let copy = store.message(target.id, ft, 1).unwrap().unwrap();
    assert_eq!(&store.read_message(&copy.blob).unwrap().as_ref()[..1], b"1");
}

#[test]
fn move_within_a_mailbox_keeps_usage_and_leaves_tombstones() {
    let OneMailbox {
        store,
        _dir,
        w: _,
        m,
        f,
    } = one_mailbox("a@acme.example");
    let archive = store.folder_by_name(m.id, "Archive").unwrap().unwrap().id;
    let first = store
        .append(m.id, f, b"hello", AppendMessage::default())
        .unwrap();
    let usage = store.usage(m.id).unwrap();
    let pairs = transfer_between(&store, (m.id, f), (m.id, archive), &[1], true).unwrap();
    assert_eq!(pairs, vec![(1, 1)]);
    assert_eq!(store.usage(m.id).unwrap(), usage);
    assert!(store.messages(m.id, f).unwrap().is_empty());
    assert_eq!(
        store.expunged_since(m.id, f, first.modseq).unwrap(),
        ExpungedSince::Exactly(vec![1])
    );
    let moved = store.message(m.id, archive, 1).unwrap().unwrap();
    assert_eq!(store.read_message(&moved.blob).unwrap().as_ref(), b"hello");
}

#[test]
fn a_move_inside_a_mailbox_keeps_every_users_own_seen() {
    let OneMailbox {
        store,
        _dir,
        w,
        m,
        f,
    } = one_mailbox("team@acme.example");
    let archive = store.folder_by_name(m.id, "Archive").unwrap().unwrap().id;
    store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    let lucie = new_user(&store, "lucie@gmail.example");
    set_flags(&store, m.id, f, 1, Some(lucie.id), Flags::SEEN);
    set_flags(&store, m.id, f, 1, Some(w.owner.id), Flags::SEEN);
    let view = |folder| FolderView {
        mailbox: m.id,
        folder,
        seen_user: Some(lucie.id),
    };
    store
        .transfer(Transfer {
            from: view(f),
            to: view(archive),
            uids: &[1, 1],
            permit: &|flags, keywords| (flags, keywords),
            remove_source: true,
        })
        .unwrap();
    assert_eq!(store.user_seen(m.id, archive, lucie.id).unwrap(), vec![1]);
    assert_eq!(store.user_seen(m.id, archive, w.owner.id).unwrap(), vec![1]);
    assert_eq!(
        store.messages(m.id, archive).unwrap().len(),
        1,
        "a UID named twice moves once"
    );
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
    let OneMailbox {
        store,
        _dir,
        w: _,
        m,
        f,
    } = one_mailbox("a@acme.example");
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
    let OneMailbox {
        store,
        _dir,
        w: _,
        m,
        f,
    } = one_mailbox("a@acme.example");
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
fn messages_appended_together_are_stored_together_or_not_at_all() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let m = new_mailbox(&store, w.acme.id, "small@acme.example");
    store
        .update_mailbox(m.id, Box::new(|m| m.quota_bytes = 10))
        .unwrap();
    let f = inbox(&store, m.id).id;
    let message = |b: &[u8]| spool::Loaded::from(b.to_vec());
    let (a, b, c) = (message(b"12345"), message(b"12345"), message(b"x"));
    let meta = AppendMessage::default;
    // The third goes over the quota: none of the three is stored.
    let err = store.append_all(m.id, f, &[(&a, meta()), (&b, meta()), (&c, meta())]);
    assert!(matches!(err, Err(StoreError::OverQuota { .. })), "{err:?}");
    assert!(store.messages(m.id, f).unwrap().is_empty());
    assert_eq!(store.usage(m.id).unwrap(), 0);
    let records = store
        .append_all(m.id, f, &[(&a, meta()), (&b, meta())])
        .unwrap();
    assert_eq!(records.iter().map(|r| r.uid).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        store.blob_refs(&records[0].blob).unwrap(),
        2,
        "one blob, two records"
    );
    assert_eq!(store.usage(m.id).unwrap(), 10);
}

#[test]
fn a_suspended_organization_counts_for_nothing_until_resumed() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let contact = new_mailbox(&store, w.acme.id, "contact@acme.example");
    let lucie = new_user(&store, "lucie@gmail.example");
    store
        .set_member(w.acme.id, lucie.id, Role::Collaborator)
        .unwrap();
    store.set_member(w.beta.id, lucie.id, Role::Admin).unwrap();
    let team = store.create_team(w.acme.id, "Desk").unwrap();
    store.add_team_member(w.acme.id, team.id, lucie.id).unwrap();
    store
        .add_grant(NewGrant {
            org: w.acme.id,
            grantee: Grantee::User(lucie.id),
            target: GrantTarget::Mailbox(contact.id),
            rights: Rights::parse("lr").unwrap(),
            send: None,
        })
        .unwrap();
    let mut hub = store.hub().subscribe_access();
    let suspension = store.suspend_organization(w.acme.id, None).unwrap();
    assert!(matches!(hub.try_recv(), Ok(AccessChange::Organization(o)) if o == w.acme.id));
    assert_eq!(store.suspensions().unwrap(), [(w.acme.id, suspension)]);
    let facts = store.user_facts(lucie.id).unwrap();
    assert_eq!(facts.role_in(w.acme.id), None);
    assert_eq!(
        facts.role_in(w.beta.id),
        Some(Role::Admin),
        "Beta is not suspended"
    );
    assert!(
        facts.grants.is_empty() && facts.teams.is_empty(),
        "{facts:?}"
    );

    // Suspended again: `since` stays, a deletion date is set; resumed: all of it back.
    let again = store
        .suspend_organization(w.acme.id, Some(suspension.since + 5))
        .unwrap();
    assert_eq!(again.since, suspension.since);
    store.resume_organization(w.acme.id).unwrap();
    let facts = store.user_facts(lucie.id).unwrap();
    assert_eq!(facts.role_in(w.acme.id), Some(Role::Collaborator));
    assert_eq!(facts.grants.len(), 1);
    assert!(!store.is_suspended(w.acme.id).unwrap());
}

#[test]
fn only_an_organization_set_for_deletion_is_deleted_and_then_wholly() {
    let (store, _dir) = temp_store();
    let w = world(&store);
    let contact = new_mailbox(&store, w.acme.id, "contact@acme.example");
    let inbox = inbox(&store, contact.id).id;
    store
        .append(
            contact.id,
            inbox,
            b"Subject: x\r\n\r\nx\r\n",
            AppendMessage::default(),
        )
        .unwrap();
    let lucie = new_user(&store, "lucie@gmail.example");
    store
        .set_member(w.acme.id, lucie.id, Role::Collaborator)
        .unwrap();
    store.create_team(w.acme.id, "Desk").unwrap();
    refused!(
        store,
        store.delete_organization(w.acme.id),
        StoreError::Invalid { .. }
    );
    store.suspend_organization(w.acme.id, None).unwrap();
    refused!(
        store,
        store.delete_organization(w.acme.id),
        StoreError::Invalid { .. }
    );
    store
        .suspend_organization(w.acme.id, Some(now_millis()))
        .unwrap();
    // Once due, the deletion may be under way: no taking it back.
    refused!(
        store,
        store.resume_organization(w.acme.id),
        StoreError::Invalid { .. }
    );
    store.delete_organization(w.acme.id).unwrap();
    assert!(store.organization(w.acme.id).unwrap().is_none());
    assert!(store.mailbox(contact.id).unwrap().is_none());
    assert!(store.domain("acme.example").unwrap().is_none());
    assert!(
        store
            .resolve_address("contact@acme.example")
            .unwrap()
            .is_none()
    );
    assert!(store.teams(w.acme.id).unwrap().is_empty());
    assert!(store.memberships_of(lucie.id).unwrap().is_empty());
    assert!(store.memberships_of(w.owner.id).unwrap().is_empty());
    assert!(store.suspensions().unwrap().is_empty());
    assert!(store.user(lucie.id).unwrap().is_some(), "users stay");
    assert!(store.organization(w.beta.id).unwrap().is_some());
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

#[test]
fn an_import_batch_is_stored_with_the_progress_that_counts_it() {
    let OneMailbox {
        store, m, f, _dir, ..
    } = one_mailbox("contact@acme.example");
    let mut import = store.create_import(m.id, ImportSource::Mbox).unwrap();
    assert_eq!(import.state, ImportState::Running);
    import.messages = 2;
    let batch = vec![
        (
            b"Subject: a\r\n\r\na\r\n".to_vec(),
            AppendMessage::default(),
        ),
        (
            b"Subject: b\r\n\r\nb\r\n".to_vec(),
            AppendMessage::default(),
        ),
    ];
    let records = store.import_batch(&import, f, &batch).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(store.import(import.id).unwrap().unwrap().messages, 2);
    assert_eq!(store.messages(m.id, f).unwrap().len(), 2);

    // A batch the store refuses (its folder is gone) leaves the progress as it was.
    import.messages = 4;
    assert!(
        store
            .import_batch(&import, FolderId(999_999), &batch)
            .is_err()
    );
    assert_eq!(store.import(import.id).unwrap().unwrap().messages, 2);

    // Left running by a process that ended: interrupted at the next start.
    assert_eq!(store.interrupt_running_imports().unwrap(), 1);
    let after = store.import(import.id).unwrap().unwrap();
    assert_eq!(after.state, ImportState::Interrupted);
    store.delete_mailbox(m.id).unwrap();
    assert!(
        store.import(import.id).unwrap().is_none(),
        "goes with its mailbox"
    );
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
fn suite_directory() {
    let mut dirs = Vec::new();
    super::suite::run(super::suite::directory::all(), |_| {
        let (store, dir) = temp_store();
        dirs.push(dir);
        store
    });
}
