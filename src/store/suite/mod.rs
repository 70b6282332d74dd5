//! Tests of the store's interface that every backend passes: the same function runs against
//! sled's store (`store::tests`) and PostgreSQL's (`store::postgres::tests`).

pub mod directory;
pub mod mail;

use crate::model::*;
use crate::store::error::StoreError;
use crate::store::interface::*;
use crate::store::{AuditQuery, Hold, NewMailbox, NewUser, QueueEntry, SecretMaker};

/// Everything a backend keeps, as text, to compare before and after a refused change.
pub trait Snapshot {
    fn snapshot(&self) -> Vec<String>;
}

/// A test of the suite, by name.
pub type Test<S> = (&'static str, fn(&S));

/// Runs `tests`, each on a fresh store from `fresh`, saying which runs (a failure names it).
pub fn run<S>(tests: Vec<Test<S>>, mut fresh: impl FnMut(usize) -> S) {
    for (n, (name, test)) in tests.into_iter().enumerate() {
        eprintln!("suite: {name}");
        test(&fresh(n));
    }
}

/// What the directory tests need of a backend.
pub trait Directory: DirectoryStore + GrantStore + ServerStore + Snapshot {}

impl<T: DirectoryStore + GrantStore + ServerStore + Snapshot> Directory for T {}

/// What the mail tests need: the whole interface.
pub trait Whole: Backend + Snapshot {}

impl<T: Backend + Snapshot> Whole for T {}

/// Asserts that `change` fails with an error matching `expected` and changes nothing.
macro_rules! refused {
    ($store:expr, $change:expr, $expected:pat) => {{
        #[allow(unused_imports)] // needed where the store is not generic
        use $crate::store::suite::Snapshot as _;
        let before = $store.snapshot();
        let result = $change;
        assert!(
            matches!(result, Err($expected)),
            "expected refusal, got {:?}",
            result.map(|_| ())
        );
        assert_eq!(
            before,
            $store.snapshot(),
            "a refused change altered the store"
        );
    }};
}
pub(crate) use refused;

pub fn hash() -> PasswordHash {
    PasswordHash("$argon2id$test".into())
}

pub fn new_user(store: &(impl DirectoryStore + ?Sized), login: &str) -> User {
    store
        .create_user(NewUser {
            login: login.into(),
            display_name: String::new(),
            password: hash(),
            must_change_password: false,
            own_mailbox: None,
        })
        .unwrap()
}

pub fn new_mailbox(store: &(impl DirectoryStore + ?Sized), org: OrgId, address: &str) -> Mailbox {
    store
        .create_mailbox(NewMailbox {
            org,
            address: address.into(),
            display_name: String::new(),
            password: hash(),
            quota_bytes: 0,
            seen: SeenPolicy::Shared,
        })
        .unwrap()
}

/// Two organizations, acme (acme.example) and beta (beta.example), each with an owner.
pub struct World {
    pub acme: Organization,
    pub beta: Organization,
    pub owner: User,
}

pub fn world(store: &(impl DirectoryStore + ?Sized)) -> World {
    let owner = new_user(store, "owner@acme.example");
    let other = new_user(store, "boss@beta.example");
    let acme = store.create_organization("Acme", owner.id).unwrap();
    let beta = store.create_organization("Beta", other.id).unwrap();
    store.add_domain(acme.id, "acme.example").unwrap();
    store.add_domain(beta.id, "beta.example").unwrap();
    World { acme, beta, owner }
}

/// A body larger than one of PostgreSQL's chunks (256 KiB).
const BIG: usize = 256 * 1024 + 10;

pub fn audit_events_are_filtered_newest_first_and_pruned_by_age(store: &impl AuditStore) {
    let event = |at: Millis, org: Option<u64>, actor: Actor, action: &str, outcome| AuditEvent {
        id: AuditId(0),
        at,
        org: org.map(OrgId),
        actor,
        action: action.into(),
        target: "contact@acme.example".into(),
        client: Some("192.0.2.1".into()),
        outcome,
        detail: String::new(),
    };
    let delegate = Actor::Delegate {
        user: UserId(7),
        mailbox: MailboxId(8),
    };
    let first = store
        .record_audit(event(
            1_000,
            Some(1),
            Actor::System,
            "imap.login",
            Outcome::Success,
        ))
        .unwrap();
    let second = store
        .record_audit(event(
            2_000,
            Some(1),
            delegate.clone(),
            "imap.login",
            Outcome::Failure,
        ))
        .unwrap();
    let third = store
        .record_audit(event(
            3_000,
            Some(2),
            Actor::Anonymous,
            "api.org.rename",
            Outcome::Success,
        ))
        .unwrap();
    assert!(first.id.0 > 0 && first.id != second.id);
    let all = store.audit_events(&AuditQuery::default()).unwrap();
    assert_eq!(all, vec![third.clone(), second.clone(), first.clone()]);
    let of = |q: AuditQuery| store.audit_events(&q).unwrap();
    let imap = AuditQuery {
        action_prefix: Some("imap.".into()),
        ..AuditQuery::default()
    };
    assert_eq!(of(imap.clone()), vec![second.clone(), first.clone()]);
    assert_eq!(
        of(AuditQuery {
            actor: Some(delegate),
            ..AuditQuery::default()
        }),
        vec![second.clone()]
    );
    assert_eq!(
        of(AuditQuery {
            org: Some(OrgId(2)),
            ..AuditQuery::default()
        }),
        vec![third.clone()]
    );
    assert_eq!(
        of(AuditQuery {
            since: Some(1_500),
            until: Some(2_500),
            ..AuditQuery::default()
        }),
        vec![second.clone()]
    );
    assert_eq!(of(AuditQuery { limit: 1, ..imap }), vec![second]);
    assert_eq!(store.prune_audit(2_500).unwrap(), 2);
    assert_eq!(of(AuditQuery::default()), vec![third]);
}

pub fn queued_mail_is_grouped_by_domain_held_released_deferred_and_dequeued(
    store: &impl QueueStore,
) {
    let recipients = [
        "a@one.example",
        "b@TWO.example",
        "c@two.example",
        "d@one.example",
    ]
    .map(String::from);
    // Larger than PostgreSQL's chunks, so that the body is stored in two there.
    let raw: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    let dsn = DsnRequest::default();
    let entries = store
        .enqueue(
            &raw,
            "me@acme.example",
            &recipients,
            &dsn,
            Hold::UntilReleased,
        )
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].recipients, ["a@one.example", "d@one.example"]);
    assert_eq!(entries[1].domain, "two.example");
    assert_eq!(entries[1].recipients, ["b@TWO.example", "c@two.example"]);
    assert!(entries.iter().all(QueueEntry::is_held));
    assert_eq!(store.queue().unwrap(), entries);
    assert!(matches!(
        store.enqueue(
            &raw,
            "me@acme.example",
            &["nodomain".into()],
            &dsn,
            Hold::No
        ),
        Err(StoreError::Invalid { .. })
    ));

    store.release(&[entries[0].id]).unwrap();
    let released = &store.queue().unwrap()[0];
    assert!(!released.is_held() && released.next_attempt <= now_millis());
    assert!(
        store.release(&[entries[1].id, entries[0].id]).is_err(),
        "one not held: none released"
    );
    assert!(store.queue().unwrap()[1].is_held());
    let mut deferred = released.clone();
    deferred.attempts = 1;
    deferred.last_error = Some("451 4.3.0 try later".into());
    deferred.reasons = vec!["451 4.3.0 try later".into()];
    let lease = store
        .lease(released.id, now_millis() + 60_000)
        .unwrap()
        .expect("a due entry is leased");
    assert!(
        store.lease(entries[1].id, now_millis()).unwrap().is_none(),
        "held"
    );
    assert!(store.renew_lease(&lease, now_millis() + 60_000).unwrap());
    // The attempt's answers: the first recipient took it; only the rest is left, still leased.
    let mut narrowed = released.clone();
    narrowed.recipients.remove(0);
    narrowed.reasons = vec!["451 4.3.0 try later".into(); narrowed.recipients.len()];
    assert!(store.record_progress(&narrowed, &lease).unwrap());
    assert_eq!(store.queue().unwrap()[0].recipients, narrowed.recipients);
    assert!(store.renew_lease(&lease, now_millis() + 60_000).unwrap());
    deferred.recipients = narrowed.recipients.clone();
    deferred.reasons = narrowed.reasons.clone();
    assert!(store.defer(&deferred, &lease).unwrap());
    assert_eq!(store.queue().unwrap()[0], deferred);

    let created = entries[1].created;
    assert_eq!(
        store.drop_held(created).unwrap(),
        0,
        "held since, not before"
    );
    assert_eq!(store.drop_held(created + 1).unwrap(), 1);
    store.dequeue(entries[0].id).unwrap();
    store.dequeue(entries[0].id).unwrap();
    assert!(store.queue().unwrap().is_empty());
    assert!(
        !store.defer(&deferred, &lease).unwrap(),
        "nothing written for an entry no longer there"
    );
}

pub fn server_secrets_are_made_once_and_replaced_when_no_longer_good(store: &impl ServerStore) {
    let make = |v: &'static [u8]| -> SecretMaker<'static> { Box::new(move || Ok(v.to_vec())) };
    let always = || Box::new(|_: &[u8]| true);
    assert_eq!(
        store
            .server_secret_while("x", always(), make(b"one"))
            .unwrap(),
        b"one"
    );
    assert_eq!(
        store
            .server_secret_while("x", always(), make(b"two"))
            .unwrap(),
        b"one"
    );
    let stale = Box::new(|v: &[u8]| v != b"one");
    assert_eq!(
        store
            .server_secret_while("x", stale, make(b"three"))
            .unwrap(),
        b"three"
    );
    assert_eq!(store.secret("x").unwrap().as_deref(), Some(&b"three"[..]));
    assert_eq!(store.secret("y").unwrap(), None);
    store.set_secret("y", b"four").unwrap();
    assert_eq!(store.secret("y").unwrap().as_deref(), Some(&b"four"[..]));
    let refused = store.server_secret_while("z", always(), Box::new(|| Err("no entropy".into())));
    assert!(
        matches!(refused, Err(StoreError::Invalid { .. })),
        "{refused:?}"
    );
    assert_eq!(
        store.secret("z").unwrap(),
        None,
        "nothing kept of a failed making"
    );
}
