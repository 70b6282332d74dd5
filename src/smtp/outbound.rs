//! The outbound queue's worker: delivers queued mail to the smarthost or to each domain's MX
//! hosts, retries temporary failures with exponential backoff, and bounces permanent
//! failures and expired mail with a delivery status notification (RFC 3464).

use super::client::{self, Attempt, RecipientResult};
use super::dsn::{Action, Outcome, Reported};
use crate::model::*;
use crate::services::Services;
use crate::store::{Hold, Lease, QueueEntry, QueueId, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Deliveries in flight at once.
const PARALLEL: usize = 8;
/// Deliveries in flight to one domain: a backlog for it goes through this many connections,
/// each kept for the next message (Postfix's destination concurrency does the same), rather
/// than one connection per message.
const PER_DOMAIN: usize = 4;

/// An envelope as the queue takes it.
pub struct Outgoing<'a> {
    /// The reverse-path; empty for a bounce.
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// What the sender asked to be told (RFC 3461).
    pub dsn: &'a DsnRequest,
    pub hold: Hold,
}

/// Queues a message for its remote recipients; returns once it is on disk, with the entries'
/// ids.
pub async fn enqueue(
    services: &Services,
    raw: &[u8],
    outgoing: Outgoing<'_>,
) -> Result<Vec<QueueId>, StoreError> {
    let store = services.store.clone();
    let (raw, sender, recipients, dsn, hold) = (
        raw.to_vec(),
        outgoing.sender.to_string(),
        outgoing.recipients.to_vec(),
        outgoing.dsn.clone(),
        outgoing.hold,
    );
    let entries = blocking(move || {
        let entries = store.enqueue(&raw, &sender, &recipients, &dsn, hold)?;
        store.flush_blocking()?;
        Ok(entries)
    })
    .await?;
    services.queue_wake.notify_one();
    Ok(entries.into_iter().map(|e| e.id).collect())
}

/// Lets entries queued with [`Hold::UntilReleased`] leave; returns once that is on disk, so
/// that the message can be acknowledged.
pub async fn release(services: &Services, ids: &[QueueId]) -> Result<(), StoreError> {
    let (store, ids) = (services.store.clone(), ids.to_vec());
    blocking(move || {
        store.release(&ids)?;
        store.flush_blocking()
    })
    .await?;
    services.queue_wake.notify_one();
    Ok(())
}

/// Store work that waits for the disk, off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Corrupt(format!("store task failed: {e}")))?
}

/// Takes back entries just queued for a message the client will send again.
pub async fn withdraw(services: &Services, ids: &[QueueId]) {
    let (store, ids) = (services.store.clone(), ids.to_vec());
    let _ = blocking(move || {
        for id in ids {
            if let Err(e) = store.dequeue(id) {
                tracing::error!(queue = %id, error = %e, "withdrawing a queue entry failed");
            }
        }
        Ok(())
    })
    .await;
}

/// At start, before any session: drops the entries a crash left held, which belong to
/// messages never acknowledged (their clients send them again).
pub async fn drop_held(services: &Services) {
    let store = services.store.clone();
    let before = now_millis() - HELD_FOR_LONG.as_millis() as Millis;
    match blocking(move || store.drop_held(before)).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            entries = n,
            "dropped queue entries of messages never acknowledged"
        ),
        Err(e) => tracing::error!(error = %e, "dropping held queue entries failed"),
    }
}

/// How long an entry may stay held before it is taken for one of a message never
/// acknowledged: an SMTP transaction releases its entries within seconds, and others (on
/// another node sharing the queue) may be running at any time.
const HELD_FOR_LONG: Duration = Duration::from_secs(600);

/// Runs until `shutdown`: picks due entries and delivers them, and drops those a transaction
/// that never finished left held.
pub async fn run(services: Arc<Services>, shutdown: CancellationToken) {
    let in_flight: Arc<Mutex<InFlight>> = Arc::default();
    let mut last_drop = std::time::Instant::now();
    loop {
        if last_drop.elapsed() >= HELD_FOR_LONG / 10 {
            drop_held(&services).await;
            last_drop = std::time::Instant::now();
        }
        services.outbound_pool.close_idle().await;
        for (entry, lease) in due(&services, &in_flight) {
            let (services, in_flight) = (services.clone(), in_flight.clone());
            tokio::spawn(async move {
                // Released however the attempt ends, a panic included.
                let _claim = Claim {
                    id: entry.id,
                    in_flight,
                };
                let renewal = tokio::spawn(keep_lease(services.clone(), lease));
                attempt(&services, entry, lease).await;
                renewal.abort();
                services.queue_wake.notify_one();
            });
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = services.queue_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The entries being worked on, with their domains.
type InFlight = HashMap<QueueId, String>;

/// An entry being worked on; dropping it lets the next round pick the entry again.
struct Claim {
    id: QueueId,
    in_flight: Arc<Mutex<InFlight>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.id);
    }
}

fn lock(set: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

/// Renews `lease` while its attempt runs (the task is aborted when the attempt ends).
async fn keep_lease(services: Arc<Services>, lease: Lease) {
    let every = lease_time(&services) / 3;
    loop {
        tokio::time::sleep(every).await;
        let (store, until) = (services.store.clone(), lease_end(&services));
        match blocking(move || store.renew_lease(&lease, until)).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(queue = %lease.id, "the delivery's lease ran out and another node took the entry");
                return;
            }
            Err(e) => {
                tracing::warn!(queue = %lease.id, error = %e, "renewing the delivery's lease failed")
            }
        }
    }
}

fn lease_time(services: &Services) -> Duration {
    Duration::from_secs(services.config.queue.lease_seconds.max(3))
}

fn lease_end(services: &Services) -> Millis {
    now_millis() + lease_time(services).as_millis() as Millis
}

/// Entries whose time has come and that no task is working on, claimed for this round, each
/// with its lease (another node may hold some: those are left to it).
fn due(services: &Services, in_flight: &Mutex<InFlight>) -> Vec<(QueueEntry, Lease)> {
    let entries = match services.store.queue() {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(error = %e, "reading the queue failed");
            return Vec::new();
        }
    };
    let now = now_millis();
    let mut busy = lock(in_flight);
    let mut out = Vec::new();
    for entry in entries {
        if busy.len() >= PARALLEL {
            break;
        }
        let to_domain = busy.values().filter(|d| **d == entry.domain).count();
        if entry.next_attempt <= now && to_domain < PER_DOMAIN && !busy.contains_key(&entry.id) {
            let lease = match services.store.lease(entry.id, lease_end(services)) {
                Ok(Some(lease)) => lease,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(queue = %entry.id, error = %e, "leasing a queue entry failed");
                    continue;
                }
            };
            busy.insert(entry.id, entry.domain.clone());
            out.push((entry, lease));
        }
    }
    out
}

/// One delivery attempt of one entry, and what follows from it.
async fn attempt(services: &Services, mut entry: QueueEntry, lease: Lease) {
    let (raw, results) = match services.store.read_message(&entry.blob) {
        Ok(raw) => {
            let job = Attempt {
                sender: &entry.sender,
                domain: &entry.domain,
                recipients: &entry.recipients,
                raw: &raw,
                dsn: &entry.dsn,
            };
            let results = client::deliver(services, &job).await;
            (raw, results)
        }
        Err(e) => (bytes::Bytes::new(), unreadable(&entry, &e)),
    };
    let mut failed = Vec::new();
    let mut retry = Vec::new();
    let mut relayed = Vec::new();
    for (recipient, result) in entry.recipients.iter().zip(results) {
        match result {
            RecipientResult::Delivered => {
                tracing::info!(queue = %entry.id, %recipient, "delivered");
            }
            RecipientResult::Relayed => {
                tracing::info!(queue = %entry.id, %recipient, "delivered (relayed: no DSN onward)");
                relayed.push(Outcome::new(recipient, Action::Relayed, ""));
            }
            RecipientResult::Permanent(why) => failed.push((recipient.clone(), why)),
            RecipientResult::Temporary(why) => retry.push((recipient.clone(), why)),
        }
    }
    entry.attempts += 1;
    let config = &services.config.queue;
    let expired = now_millis() - entry.created >= config.give_up_after_seconds as i64 * 1000;
    if expired {
        failed.append(&mut retry);
    }
    // What the remote servers took is written down before anything else is sent (reports,
    // bounces), so that a node dying meanwhile leaves only the rest to the next.
    let still: Vec<_> = failed.iter().chain(&retry).cloned().collect();
    // Whether this attempt still has its entry to finish.
    let go_on = if still.is_empty() {
        finish(services, entry.clone(), lease, Vec::new()).await;
        false
    } else if still.len() < entry.recipients.len() {
        record_progress(services, &entry, &lease, still).await
    } else {
        true
    };
    if !relayed.is_empty()
        && let Err(e) = super::dsn::report(services, &Reported::of(&entry, &raw), relayed).await
    {
        tracing::error!(queue = %entry.id, error = %e, "the success report could not be sent");
    }
    if !go_on {
        return;
    }
    if !failed.is_empty()
        && let Err(e) = super::dsn::bounce(services, &entry, &raw, &failed).await
    {
        if expired {
            tracing::error!(queue = %entry.id, error = %e, "the bounce could not be sent; given up");
        } else {
            // Without the notice nobody would know: the recipients wait for the next
            // attempt, which refuses them again, until the queue gives up on them.
            tracing::error!(queue = %entry.id, error = %e, "the bounce could not be sent; retried");
            retry.append(&mut failed);
        }
    }
    finish(services, entry, lease, retry).await;
}

/// Narrows the entry to the recipients `still` to do, durably, keeping the lease; `false`
/// when the lease was lost: another node's attempt decides. A failed write is logged and the
/// attempt goes on: its end is written as one.
async fn record_progress(
    services: &Services,
    entry: &QueueEntry,
    lease: &Lease,
    still: Vec<(String, String)>,
) -> bool {
    let mut narrowed = entry.clone();
    (narrowed.recipients, narrowed.reasons) = still.into_iter().unzip();
    let store = services.store.clone();
    let lease = *lease;
    let id = entry.id;
    let written = blocking(move || {
        let kept = store.record_progress(&narrowed, &lease)?;
        store.flush_blocking()?;
        Ok(kept)
    })
    .await;
    match written {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!(queue = %id, "the lease ran out before the attempt ended: another node's attempt decides");
            false
        }
        Err(e) => {
            tracing::error!(queue = %id, error = %e, "recording the delivered recipients failed");
            true
        }
    }
}

/// A queued message whose file is gone (damage to the store) will never leave: it bounces,
/// without its content. Any other read error (too many open files, a permission) is waited
/// out like a refusal.
fn unreadable(entry: &QueueEntry, error: &StoreError) -> Vec<RecipientResult> {
    tracing::error!(queue = %entry.id, %error, "queued message unreadable");
    let result = if error.is_missing_file() {
        RecipientResult::Permanent("554 5.3.0 the queued copy of the message is missing".into())
    } else {
        RecipientResult::Temporary(format!(
            "451 4.3.0 the queued copy of the message could not be read: {error}"
        ))
    };
    vec![result; entry.recipients.len()]
}

/// Removes the entry when nobody is left to try, else defers it with those who are.
async fn finish(
    services: &Services,
    mut entry: QueueEntry,
    lease: Lease,
    retry: Vec<(String, String)>,
) {
    let store = services.store.clone();
    let id = entry.id;
    let outcome = if retry.is_empty() {
        blocking(move || {
            let done = store.finish(&lease)?;
            store.flush_blocking()?;
            Ok(done)
        })
        .await
    } else {
        entry.last_error = retry.last().map(|(_, why)| why.clone());
        (entry.recipients, entry.reasons) = retry.into_iter().unzip();
        entry.next_attempt = now_millis() + backoff(services, entry.attempts).as_millis() as i64;
        tracing::info!(queue = %id, attempts = entry.attempts, error = ?entry.last_error, "deferred");
        blocking(move || {
            let done = store.defer(&entry, &lease)?;
            store.flush_blocking()?;
            Ok(done)
        })
        .await
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(queue = %id, "the lease ran out before the attempt ended: another node's attempt decides")
        }
        Err(e) => tracing::error!(queue = %id, error = %e, "updating the queue failed"),
    }
}

/// The wait after the `attempts`-th failure: the first retry delay, doubled each time.
fn backoff(services: &Services, attempts: u32) -> Duration {
    let config = &services.config.queue;
    let first = config.first_retry_seconds.max(1);
    let factor = 1u64 << attempts.saturating_sub(1).min(20);
    Duration::from_secs(
        first
            .saturating_mul(factor)
            .min(config.max_retry_seconds.max(first)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::{ADDRESS, Harness};
    use crate::store::Hold;

    /// One attempt, with the lease the outbound loop would have taken (sled's: any).
    async fn attempt_now(services: &Services, entry: QueueEntry) {
        let lease = Lease {
            id: entry.id,
            token: 0,
        };
        attempt(services, entry, lease).await
    }

    fn queued(h: &Harness, hold: Hold) -> QueueEntry {
        let far = ["far@away.example".to_string()];
        let raw = b"Subject: x\r\n\r\nx\r\n";
        h.services
            .store
            .enqueue(raw, ADDRESS, &far, &DsnRequest::default(), hold)
            .unwrap()[0]
            .clone()
    }

    fn last_in_inbox(h: &Harness) -> String {
        let store = &h.services.store;
        let mailbox = h.mailbox();
        let inbox = store.folder_by_name(mailbox, "INBOX").unwrap().unwrap();
        let messages = store.messages(mailbox, inbox.id).unwrap();
        let raw = store.read_message(&messages.last().unwrap().blob).unwrap();
        String::from_utf8_lossy(&raw).into_owned()
    }

    #[tokio::test]
    async fn a_queued_message_whose_file_is_gone_bounces_and_leaves_the_queue() {
        let h = Harness::new();
        let store = &h.services.store;
        let entry = queued(&h, Hold::No);
        std::fs::remove_file(h.sled.blob_path(&entry.blob)).unwrap();
        attempt_now(&h.services, entry).await;
        assert!(store.queue().unwrap().is_empty(), "no longer tried");
        let dsn = last_in_inbox(&h);
        assert!(dsn.contains("Status: 5.3.0"), "{dsn}");
        assert!(
            !dsn.contains("text/rfc822-headers"),
            "no header to return: {dsn}"
        );
    }

    #[tokio::test]
    async fn a_queued_message_that_cannot_be_read_now_waits() {
        let h = Harness::new();
        let store = &h.services.store;
        let entry = queued(&h, Hold::No);
        // Reading a directory fails as a passing error would, not as a missing file.
        let path = h.sled.blob_path(&entry.blob);
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        attempt_now(&h.services, entry).await;
        let queue = store.queue().unwrap();
        assert_eq!(queue.len(), 1, "kept");
        assert!(
            queue[0]
                .last_error
                .as_deref()
                .unwrap_or("")
                .starts_with("451 4.3.0")
        );
        assert!(!last_in_inbox(&h).contains("delivery-status"), "no bounce");
    }

    #[tokio::test]
    async fn temporary_failures_back_off_and_bounce_when_the_queue_gives_up() {
        // Nothing listens on port 1: every attempt fails at once, temporarily.
        let unreachable = |c: &mut crate::config::Config, give_up_after_seconds| {
            c.queue.smarthost = "127.0.0.1:1".into();
            c.queue.smarthost_tls = crate::config::SmarthostTls::None;
            c.queue.first_retry_seconds = 60;
            c.queue.give_up_after_seconds = give_up_after_seconds;
        };
        let h = Harness::with_config(|c| unreachable(c, 3600));
        let mut entry = queued(&h, Hold::No);
        for expected_wait in [60, 120, 240] {
            let before = now_millis();
            attempt_now(&h.services, entry).await;
            let after = now_millis();
            entry = h.services.store.queue().unwrap().remove(0);
            // The wait counts from the end of the attempt, some moment between `before` and
            // `after`: exact however long a loaded machine took over the attempt.
            let wait: Millis = expected_wait * 1000;
            assert!(
                (before + wait..=after + wait).contains(&entry.next_attempt),
                "next attempt {} ms after the start of an attempt that took {} ms",
                entry.next_attempt - before,
                after - before
            );
            assert!(
                entry
                    .last_error
                    .as_deref()
                    .unwrap_or("")
                    .contains("connection")
            );
        }
        let h = Harness::with_config(|c| unreachable(c, 0));
        attempt_now(&h.services, queued(&h, Hold::No)).await;
        assert!(h.services.store.queue().unwrap().is_empty(), "given up");
        let dsn = last_in_inbox(&h);
        assert!(dsn.contains("Status: 4.4.7"), "expired: {dsn}");
    }

    #[tokio::test]
    async fn a_bounce_that_cannot_be_stored_keeps_the_entry_until_the_queue_gives_up() {
        for (give_up_after_seconds, kept) in [(3600, 1), (0, 0)] {
            let h = Harness::with_config(|c| c.queue.give_up_after_seconds = give_up_after_seconds);
            let store = &h.services.store;
            // The sender's mailbox is full: the notice cannot be stored now.
            let mailbox = h.mailbox();
            store
                .update_mailbox(mailbox, |m| m.quota_bytes = 1)
                .unwrap();
            let entry = queued(&h, Hold::No);
            std::fs::remove_file(h.sled.blob_path(&entry.blob)).unwrap();
            attempt_now(&h.services, entry).await;
            assert_eq!(
                store.queue().unwrap().len(),
                kept,
                "give up after {give_up_after_seconds} s"
            );
        }
    }

    #[tokio::test]
    async fn a_bounce_with_nowhere_to_go_is_dropped_at_once() {
        let h = Harness::new();
        let store = &h.services.store;
        let far = ["far@away.example".to_string()];
        // No such mailbox here: the notice has nowhere to go, now or later.
        let entry = store
            .enqueue(
                b"x",
                "ghost@harness.test",
                &far,
                &DsnRequest::default(),
                Hold::No,
            )
            .unwrap()[0]
            .clone();
        std::fs::remove_file(h.sled.blob_path(&entry.blob)).unwrap();
        attempt_now(&h.services, entry).await;
        assert!(store.queue().unwrap().is_empty());
    }

    #[test]
    fn no_more_than_a_few_deliveries_go_to_one_domain_at_once() {
        let h = Harness::new();
        for _ in 0..PER_DOMAIN + 2 {
            queued(&h, Hold::No);
        }
        let in_flight = Mutex::default();
        assert_eq!(due(&h.services, &in_flight).len(), PER_DOMAIN);
        // The rest wait for a slot, and are not claimed twice meanwhile.
        assert!(due(&h.services, &in_flight).is_empty());
        let first = *lock(&in_flight).keys().next().unwrap();
        lock(&in_flight).remove(&first);
        assert_eq!(due(&h.services, &in_flight).len(), 1);
    }

    #[test]
    fn held_entries_wait_for_their_release_and_are_dropped_at_start() {
        let h = Harness::new();
        let store = &h.services.store;
        let held = queued(&h, Hold::UntilReleased);
        let released = queued(&h, Hold::UntilReleased);
        let free = queued(&h, Hold::No);
        let in_flight = Mutex::default();
        let due_ids = |in_flight: &Mutex<InFlight>| {
            due(&h.services, in_flight)
                .into_iter()
                .map(|(e, _)| e.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(due_ids(&in_flight), [free.id], "held ones are not due");
        store.release(&[released.id]).unwrap();
        assert!(store.release(&[free.id]).is_err(), "not held: no 250 on it");
        assert!(
            store.release(&[QueueId(u64::MAX)]).is_err(),
            "gone: no 250 on it"
        );
        assert_eq!(due_ids(&Mutex::default()), [released.id, free.id]);
        assert_eq!(store.drop_held(now_millis() + 1).unwrap(), 1);
        let left: Vec<QueueId> = store.queue().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(left, [released.id, free.id]);
        assert!(!left.contains(&held.id));
    }
}

#[cfg(test)]
mod reasons_tests {
    use super::*;
    use crate::harness::{ADDRESS, Harness};
    use crate::store::Hold;

    /// Several recipients of one domain deferred for different reasons keep each its own.
    #[tokio::test]
    async fn each_deferred_recipient_keeps_its_reason() {
        let h = Harness::new();
        let far = ["a@away.example".to_string(), "b@away.example".to_string()];
        let raw = b"Subject: x\r\n\r\nx\r\n";
        let entry = h
            .services
            .store
            .enqueue(raw, ADDRESS, &far, &DsnRequest::default(), Hold::No)
            .unwrap()[0]
            .clone();
        let retry = vec![
            (
                "a@away.example".to_string(),
                "452 4.2.2 mailbox full".to_string(),
            ),
            (
                "b@away.example".to_string(),
                "451 4.7.1 greylisted".to_string(),
            ),
        ];
        let lease = Lease {
            id: entry.id,
            token: 0,
        };
        finish(&h.services, entry, lease, retry).await;
        let kept = h.services.store.queue().unwrap().remove(0);
        assert_eq!(kept.recipients, far);
        assert_eq!(
            kept.reasons,
            ["452 4.2.2 mailbox full", "451 4.7.1 greylisted"]
        );
    }
}
