//! The mail side: folders, messages, flags, per-user `\\Seen`, subscriptions, quota, COPY and
//! MOVE, imports, and organizations suspended and deleted with their mail.

use super::{Test, Whole, World, new_mailbox, new_user, refused, world};
use crate::model::*;
use crate::store::error::{StoreError, StoreResult};
use crate::store::*;

/// Every test of this family, for each backend's tests to run in turn.
pub fn all<S: Whole>() -> Vec<Test<S>> {
    vec![
        (
            "admission_tells_room_and_suspension_in_one_read",
            admission_tells_room_and_suspension_in_one_read::<S>,
        ),
        (
            "deleting_a_mailbox_removes_aliases_grants_and_unshared_blobs",
            deleting_a_mailbox_removes_aliases_grants_and_unshared_blobs::<S>,
        ),
        (
            "new_mailboxes_get_the_standard_folders",
            new_mailboxes_get_the_standard_folders::<S>,
        ),
        (
            "quota_is_enforced_and_usage_follows_expunge",
            quota_is_enforced_and_usage_follows_expunge::<S>,
        ),
        (
            "uids_modseqs_and_uidvalidity_only_grow",
            uids_modseqs_and_uidvalidity_only_grow::<S>,
        ),
        (
            "rename_moves_children_and_keeps_uidvalidity",
            rename_moves_children_and_keeps_uidvalidity::<S>,
        ),
        (
            "per_user_seen_and_subscriptions",
            per_user_seen_and_subscriptions::<S>,
        ),
        (
            "subscriptions_outlive_the_folder",
            subscriptions_outlive_the_folder::<S>,
        ),
        (
            "concurrent_flag_changes_all_land",
            concurrent_flag_changes_all_land::<S>,
        ),
        (
            "unchanged_since_is_checked_against_the_record_written",
            unchanged_since_is_checked_against_the_record_written::<S>,
        ),
        (
            "expunge_deleted_spares_a_message_undeleted_meanwhile",
            expunge_deleted_spares_a_message_undeleted_meanwhile::<S>,
        ),
        (
            "copy_over_quota_leaves_no_partial_copy",
            copy_over_quota_leaves_no_partial_copy::<S>,
        ),
        (
            "move_within_a_mailbox_keeps_usage_and_leaves_tombstones",
            move_within_a_mailbox_keeps_usage_and_leaves_tombstones::<S>,
        ),
        (
            "a_move_inside_a_mailbox_keeps_every_users_own_seen",
            a_move_inside_a_mailbox_keeps_every_users_own_seen::<S>,
        ),
        (
            "messages_appended_together_are_stored_together_or_not_at_all",
            messages_appended_together_are_stored_together_or_not_at_all::<S>,
        ),
        (
            "a_suspended_organization_counts_for_nothing_until_resumed",
            a_suspended_organization_counts_for_nothing_until_resumed::<S>,
        ),
        (
            "only_an_organization_set_for_deletion_is_deleted_and_then_wholly",
            only_an_organization_set_for_deletion_is_deleted_and_then_wholly::<S>,
        ),
        (
            "an_import_batch_is_stored_with_the_progress_that_counts_it",
            an_import_batch_is_stored_with_the_progress_that_counts_it::<S>,
        ),
        (
            "any_range_of_a_message_reads_as_the_same_bytes_of_the_whole",
            any_range_of_a_message_reads_as_the_same_bytes_of_the_whole::<S>,
        ),
    ]
}

/// A mailbox of Acme in the world: the world, the mailbox, its INBOX.
pub fn one_mailbox(store: &impl Whole, address: &str) -> (World, Mailbox, FolderId) {
    let w = world(store);
    let m = new_mailbox(store, w.acme.id, address);
    let f = inbox(store, m.id).id;
    (w, m, f)
}

pub fn inbox(store: &(impl FolderStore + ?Sized), mailbox: MailboxId) -> Folder {
    store.folder_by_name(mailbox, "inbox").unwrap().unwrap()
}

pub fn transfer_between(
    store: &impl Whole,
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

/// Adds `flags` to one message, as STORE +FLAGS does; returns its record.
pub fn set_flags(
    store: &impl Whole,
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

/// A range of a message, across PostgreSQL's chunks or not, past its end or empty, is what
/// the whole message holds there.
pub fn any_range_of_a_message_reads_as_the_same_bytes_of_the_whole<S: Whole>(store: &S) {
    let (_w, m, inbox) = one_mailbox(store, "contact@acme.example");
    let mut raw = b"Subject: large\r\n\r\n".to_vec();
    raw.extend((0..3 * 256 * 1024 + 100).map(|i| b'a' + (i % 26) as u8));
    let record = store
        .append(m.id, inbox, &raw, AppendMessage::default())
        .unwrap();
    let size = raw.len() as u64;
    let chunk = 256 * 1024;
    for range in [
        0..10,
        0..size,
        chunk - 5..chunk + 5,
        chunk..2 * chunk,
        10..3 * chunk + 7,
        size - 3..size + 100,
        size + 5..size + 10,
        7..7,
    ] {
        let expected = &raw[(range.start.min(size) as usize)..(range.end.min(size) as usize)];
        let read = store
            .read_message_range(&record.blob, range.clone())
            .unwrap();
        assert_eq!(read.as_ref(), expected, "{range:?}");
    }
}

pub fn deleting_a_mailbox_removes_aliases_grants_and_unshared_blobs<S: Whole>(store: &S) {
    let w = world(store);
    let contact = new_mailbox(store, w.acme.id, "contact@acme.example");
    let sales = new_mailbox(store, w.acme.id, "sales@acme.example");
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
        (contact.id, inbox(store, contact.id).id),
        (sales.id, inbox(store, sales.id).id),
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
    // sled removes the file in a sweep after the commit; PostgreSQL in the commit.
    store.sweep_freed_blobs().unwrap();

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

pub fn new_mailboxes_get_the_standard_folders<S: Whole>(store: &S) {
    let w = world(store);
    let m = new_mailbox(store, w.acme.id, "contact@acme.example");
    let folders = store.folders(m.id).unwrap();
    let names: Vec<_> = folders
        .iter()
        .map(|f| (f.name.as_str(), f.special_use))
        .collect();
    for (name, special) in STANDARD_FOLDERS {
        assert!(names.contains(&(name, special)), "{name} missing");
    }
}

pub fn quota_is_enforced_and_usage_follows_expunge<S: Whole>(store: &S) {
    let w = world(store);
    let m = new_mailbox(store, w.acme.id, "small@acme.example");
    store
        .update_mailbox(m.id, Box::new(|m| m.quota_bytes = 100))
        .unwrap();
    let f = inbox(store, m.id).id;
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

pub fn uids_modseqs_and_uidvalidity_only_grow<S: Whole>(store: &S) {
    let w = world(store);
    let m = new_mailbox(store, w.acme.id, "c@acme.example");
    let f = store.create_folder(m.id, "Projects", None).unwrap();
    let a = store
        .append(m.id, f.id, b"a", AppendMessage::default())
        .unwrap();
    let b = store
        .append(m.id, f.id, b"b", AppendMessage::default())
        .unwrap();
    assert_eq!((a.uid, b.uid), (1, 2));
    assert!(b.modseq > a.modseq);
    let flagged = set_flags(store, m.id, f.id, 1, None, Flags::SEEN);
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

pub fn rename_moves_children_and_keeps_uidvalidity<S: Whole>(store: &S) {
    let w = world(store);
    let m = new_mailbox(store, w.acme.id, "c@acme.example");
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

pub fn per_user_seen_and_subscriptions<S: Whole>(store: &S) {
    let w = world(store);
    let m = new_mailbox(store, w.acme.id, "boss@acme.example");
    let f = inbox(store, m.id).id;
    store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    let lucie = new_user(store, "lucie@gmail.example");
    let before = store.message(m.id, f, 1).unwrap().unwrap();
    let after = set_flags(store, m.id, f, 1, Some(lucie.id), Flags::SEEN);
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
pub fn subscriptions_outlive_the_folder<S: Whole>(store: &S) {
    let w = world(store);
    let m = new_mailbox(store, w.acme.id, "boss@acme.example");
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

pub fn concurrent_flag_changes_all_land<S: Whole>(store: &S) {
    let (_, m, f) = one_mailbox(store, "c@acme.example");
    store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    // Two sessions each add their own flag, many times over: neither may undo the other's.
    std::thread::scope(|scope| {
        for flag in [Flags::FLAGGED, Flags::ANSWERED] {
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

pub fn unchanged_since_is_checked_against_the_record_written<S: Whole>(store: &S) {
    let (_, m, f) = one_mailbox(store, "c@acme.example");
    let first = store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    set_flags(store, m.id, f, 1, None, Flags::FLAGGED);
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

pub fn expunge_deleted_spares_a_message_undeleted_meanwhile<S: Whole>(store: &S) {
    let (_, m, f) = one_mailbox(store, "c@acme.example");
    store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    store
        .append(m.id, f, b"y", AppendMessage::default())
        .unwrap();
    set_flags(store, m.id, f, 2, None, Flags::DELETED);
    // A session saw both flagged \Deleted; one was cleared since.
    assert_eq!(store.expunge_deleted(m.id, f, &[1, 2]).unwrap(), vec![2]);
    assert!(store.message(m.id, f, 1).unwrap().is_some());
}

pub fn copy_over_quota_leaves_no_partial_copy<S: Whole>(store: &S) {
    let w = world(store);
    let source = new_mailbox(store, w.acme.id, "a@acme.example");
    let target = new_mailbox(store, w.acme.id, "b@acme.example");
    store
        .update_mailbox(target.id, Box::new(|m| m.quota_bytes = 150))
        .unwrap();
    let (fs, ft) = (inbox(store, source.id).id, inbox(store, target.id).id);
    for body in [&b"1"[..], b"2", b"3"] {
        let raw = [body, &[b'x'; 59][..]].concat();
        store
            .append(source.id, fs, &raw, AppendMessage::default())
            .unwrap();
    }
    refused!(
        store,
        transfer_between(store, (source.id, fs), (target.id, ft), &[1, 2, 3], false),
        StoreError::OverQuota { .. }
    );
    assert!(store.messages(target.id, ft).unwrap().is_empty());
    assert_eq!(store.usage(target.id).unwrap(), 0);
    let pairs = transfer_between(store, (source.id, fs), (target.id, ft), &[1, 2], false).unwrap();
    assert_eq!(pairs, vec![(1, 1), (2, 2)]);
    // The copies share the bytes: expunging the originals keeps them readable.
    store.expunge(source.id, fs, &[1, 2, 3]).unwrap();
    let copy = store.message(target.id, ft, 1).unwrap().unwrap();
    assert_eq!(&store.read_message(&copy.blob).unwrap().as_ref()[..1], b"1");
}

pub fn move_within_a_mailbox_keeps_usage_and_leaves_tombstones<S: Whole>(store: &S) {
    let (_, m, f) = one_mailbox(store, "a@acme.example");
    let archive = store.folder_by_name(m.id, "Archive").unwrap().unwrap().id;
    let first = store
        .append(m.id, f, b"hello", AppendMessage::default())
        .unwrap();
    let usage = store.usage(m.id).unwrap();
    let pairs = transfer_between(store, (m.id, f), (m.id, archive), &[1], true).unwrap();
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

pub fn a_move_inside_a_mailbox_keeps_every_users_own_seen<S: Whole>(store: &S) {
    let (w, m, f) = one_mailbox(store, "team@acme.example");
    let archive = store.folder_by_name(m.id, "Archive").unwrap().unwrap().id;
    store
        .append(m.id, f, b"x", AppendMessage::default())
        .unwrap();
    let lucie = new_user(store, "lucie@gmail.example");
    set_flags(store, m.id, f, 1, Some(lucie.id), Flags::SEEN);
    set_flags(store, m.id, f, 1, Some(w.owner.id), Flags::SEEN);
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

pub fn messages_appended_together_are_stored_together_or_not_at_all<S: Whole>(store: &S) {
    let w = world(store);
    let m = new_mailbox(store, w.acme.id, "small@acme.example");
    store
        .update_mailbox(m.id, Box::new(|m| m.quota_bytes = 10))
        .unwrap();
    let f = inbox(store, m.id).id;
    let message = |b: &[u8]| crate::store::spool::Loaded::from(b.to_vec());
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
    assert_eq!(records[0].blob, records[1].blob, "one blob, two records");
    assert_eq!(store.usage(m.id).unwrap(), 10);
    // Its bytes stay while a record holds them.
    store.expunge(m.id, f, &[1]).unwrap();
    store.sweep_freed_blobs().unwrap();
    assert_eq!(
        store.read_message(&records[1].blob).unwrap().as_ref(),
        b"12345"
    );
}

/// What delivery asks before taking a message: quota, use and suspension, as the separate
/// reads would tell them.
pub fn admission_tells_room_and_suspension_in_one_read<S: Whole>(store: &S) {
    let w = world(store);
    let small = store
        .create_mailbox(NewMailbox {
            org: w.acme.id,
            address: "small@acme.example".into(),
            display_name: String::new(),
            password: super::hash(),
            quota_bytes: 100,
            seen: SeenPolicy::Shared,
        })
        .unwrap();
    let admission = store.admission(small.id).unwrap().unwrap();
    assert_eq!(
        (
            admission.quota_bytes,
            admission.usage_bytes,
            admission.suspended
        ),
        (100, 0, false)
    );
    assert!(admission.has_room(100) && !admission.has_room(101));
    let inbox = store.folder_by_name(small.id, "INBOX").unwrap().unwrap();
    let raw = b"Subject: x\r\n\r\n0123456789\r\n";
    store
        .append(small.id, inbox.id, raw, AppendMessage::default())
        .unwrap();
    let admission = store.admission(small.id).unwrap().unwrap();
    assert_eq!(admission.usage_bytes, store.usage(small.id).unwrap());
    assert_eq!(admission.usage_bytes, raw.len() as u64);
    store.suspend_organization(w.acme.id, None).unwrap();
    assert!(store.admission(small.id).unwrap().unwrap().suspended);
    assert_eq!(store.admission(MailboxId(999_999)).unwrap(), None);
}

pub fn a_suspended_organization_counts_for_nothing_until_resumed<S: Whole>(store: &S) {
    let w = world(store);
    let contact = new_mailbox(store, w.acme.id, "contact@acme.example");
    let lucie = new_user(store, "lucie@gmail.example");
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

    // Suspended again: `since` stays, a deletion date a minute away is set; resumed (before
    // it is due): all of it back.
    let again = store
        .suspend_organization(w.acme.id, Some(suspension.since + 60_000))
        .unwrap();
    assert_eq!(again.since, suspension.since);
    store.resume_organization(w.acme.id).unwrap();
    let facts = store.user_facts(lucie.id).unwrap();
    assert_eq!(facts.role_in(w.acme.id), Some(Role::Collaborator));
    assert_eq!(facts.grants.len(), 1);
    assert!(!store.is_suspended(w.acme.id).unwrap());
}

pub fn only_an_organization_set_for_deletion_is_deleted_and_then_wholly<S: Whole>(store: &S) {
    let w = world(store);
    let contact = new_mailbox(store, w.acme.id, "contact@acme.example");
    let inbox = inbox(store, contact.id).id;
    store
        .append(
            contact.id,
            inbox,
            b"Subject: x\r\n\r\nx\r\n",
            AppendMessage::default(),
        )
        .unwrap();
    let lucie = new_user(store, "lucie@gmail.example");
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

pub fn an_import_batch_is_stored_with_the_progress_that_counts_it<S: Whole>(store: &S) {
    let (_, m, f) = one_mailbox(store, "contact@acme.example");
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
