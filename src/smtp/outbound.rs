//! The outbound queue's worker: delivers queued mail to the smarthost or to each domain's MX
//! hosts, retries temporary failures with exponential backoff, and bounces permanent
//! failures and expired mail with a delivery status notification (RFC 3464).

use super::client::{self, Attempt, RecipientResult};
use crate::model::*;
use crate::net::Services;
use crate::store::{QueueEntry, QueueId, StoreError};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Deliveries in flight at once.
const PARALLEL: usize = 8;

/// An envelope as the queue takes it.
pub struct Outgoing<'a> {
    /// The reverse-path; empty for a bounce.
    pub sender: &'a str,
    pub recipients: &'a [String],
}

/// Queues a message for its remote recipients; returns once it is on disk, with the entries'
/// ids.
pub async fn enqueue(
    services: &Services,
    raw: &[u8],
    outgoing: Outgoing<'_>,
) -> Result<Vec<QueueId>, StoreError> {
    let store = services.store.clone();
    let (raw, sender, recipients) = (
        raw.to_vec(),
        outgoing.sender.to_string(),
        outgoing.recipients.to_vec(),
    );
    let entries = tokio::task::spawn_blocking(move || {
        let entries = store.enqueue(&raw, &sender, &recipients)?;
        store.flush_blocking()?;
        Ok::<_, StoreError>(entries)
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("queueing task failed: {e}")))??;
    services.queue_wake.notify_one();
    Ok(entries.into_iter().map(|e| e.id).collect())
}

/// Takes back entries just queued for a message the client will send again.
pub fn withdraw(services: &Services, ids: &[QueueId]) {
    for id in ids {
        if let Err(e) = services.store.dequeue(*id) {
            tracing::error!(queue = %id, error = %e, "withdrawing a queue entry failed");
        }
    }
}

/// Runs until `shutdown`: picks due entries and delivers them.
pub async fn run(services: Arc<Services>, shutdown: CancellationToken) {
    let in_flight: Arc<Mutex<HashSet<QueueId>>> = Arc::default();
    loop {
        for entry in due(&services, &in_flight) {
            let (services, in_flight) = (services.clone(), in_flight.clone());
            tokio::spawn(async move {
                // Released however the attempt ends, a panic included.
                let _claim = Claim {
                    id: entry.id,
                    in_flight,
                };
                attempt(&services, entry).await;
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

/// An entry being worked on; dropping it lets the next round pick the entry again.
struct Claim {
    id: QueueId,
    in_flight: Arc<Mutex<HashSet<QueueId>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.id);
    }
}

fn lock(set: &Mutex<HashSet<QueueId>>) -> std::sync::MutexGuard<'_, HashSet<QueueId>> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

/// Entries whose time has come and that no task is working on, claimed for this round.
fn due(services: &Services, in_flight: &Mutex<HashSet<QueueId>>) -> Vec<QueueEntry> {
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
        if entry.next_attempt <= now && busy.insert(entry.id) {
            out.push(entry);
        }
    }
    out
}

/// One delivery attempt of one entry, and what follows from it.
async fn attempt(services: &Services, mut entry: QueueEntry) {
    let raw = match services.store.read_message(&entry.blob) {
        Ok(raw) => raw,
        Err(e) => return lost(services, &entry, &e.to_string()).await,
    };
    let job = Attempt {
        sender: &entry.sender,
        domain: &entry.domain,
        recipients: &entry.recipients,
        raw: &raw,
    };
    let results = client::deliver(services, &job).await;
    let mut failed = Vec::new();
    let mut retry = Vec::new();
    let mut last_error = None;
    for (recipient, result) in entry.recipients.iter().zip(results) {
        match result {
            RecipientResult::Delivered => {
                tracing::info!(queue = %entry.id, %recipient, "delivered");
            }
            RecipientResult::Permanent(why) => failed.push((recipient.clone(), why)),
            RecipientResult::Temporary(why) => {
                last_error = Some(why.clone());
                retry.push((recipient.clone(), why));
            }
        }
    }
    entry.attempts += 1;
    let config = &services.config.queue;
    let expired = now_millis() - entry.created >= config.give_up_after_seconds as i64 * 1000;
    if expired {
        failed.append(&mut retry);
    }
    if !failed.is_empty() {
        super::dsn::bounce(services, &entry, &raw, &failed).await;
    }
    let outcome = if retry.is_empty() {
        services.store.dequeue(entry.id)
    } else {
        entry.recipients = retry.into_iter().map(|(r, _)| r).collect();
        entry.last_error = last_error;
        entry.next_attempt = now_millis() + backoff(services, entry.attempts).as_millis() as i64;
        tracing::info!(queue = %entry.id, attempts = entry.attempts, error = ?entry.last_error, "deferred");
        services.store.defer(&entry)
    };
    if let Err(e) = outcome.and_then(|_| services.store.flush_blocking()) {
        tracing::error!(queue = %entry.id, error = %e, "updating the queue failed");
    }
}

/// A queued message whose bytes cannot be read (damage to the store) will never leave:
/// its sender is told, without the content, and the entry goes, rather than being tried
/// every second for ever.
async fn lost(services: &Services, entry: &QueueEntry, error: &str) {
    tracing::error!(queue = %entry.id, error, "queued message unreadable; bounced");
    let why = "554 5.3.0 the queued copy of the message could not be read";
    let failed: Vec<(String, String)> = entry
        .recipients
        .iter()
        .map(|r| (r.clone(), why.to_string()))
        .collect();
    super::dsn::bounce(services, entry, b"", &failed).await;
    if let Err(e) = services
        .store
        .dequeue(entry.id)
        .and_then(|_| services.store.flush_blocking())
    {
        tracing::error!(queue = %entry.id, error = %e, "removing a lost queue entry failed");
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

    #[tokio::test]
    async fn a_queued_message_whose_bytes_are_gone_bounces_and_leaves_the_queue() {
        let h = Harness::new();
        let store = &h.services.store;
        let far = ["far@away.example".to_string()];
        let entry = store
            .enqueue(b"Subject: x\r\n\r\nx\r\n", ADDRESS, &far)
            .unwrap()[0]
            .clone();
        std::fs::remove_file(store.blob_path(&entry.blob)).unwrap();
        attempt(&h.services, entry).await;
        assert!(store.queue().unwrap().is_empty(), "no longer tried");
        let Some(crate::store::AddressEntry::Mailbox(mailbox)) =
            store.resolve_address(ADDRESS).unwrap()
        else {
            panic!("the harness mailbox");
        };
        let inbox = store.folder_by_name(mailbox, "INBOX").unwrap().unwrap();
        let messages = store.messages(mailbox, inbox.id).unwrap();
        let dsn = store.read_message(&messages.last().unwrap().blob).unwrap();
        let dsn = String::from_utf8_lossy(&dsn);
        assert!(dsn.contains("Status: 5.3.0"), "{dsn}");
    }
}
