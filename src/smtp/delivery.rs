//! Local delivery: one message into the INBOX of several mailboxes, its bytes stored once,
//! durable before the caller acknowledges it. Used by inbound SMTP, submission, delivery
//! status notifications and the server's own mail (invitations).

use crate::model::*;
use crate::services::Services;
use crate::store::spool::Loaded;
use crate::store::{AppendMessage, StoreError};

/// Why a message could not be delivered locally.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("a mailbox is over its quota")]
    OverQuota,
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error("the delivery task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Which folder of each mailbox a message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filing {
    Inbox,
    /// Judged spam or failing its domain's DMARC quarantine policy.
    Junk,
}

/// Delivers `message` to the INBOX of every mailbox of `mailboxes` (duplicates once), in one
/// transaction, and returns once it is on disk.
pub async fn deliver(
    services: &Services,
    mailboxes: &[MailboxId],
    message: Loaded,
) -> Result<(), DeliveryError> {
    deliver_to(services, mailboxes, message, Filing::Inbox).await
}

/// [`deliver`], to the folder `filing` names.
pub async fn deliver_to(
    services: &Services,
    mailboxes: &[MailboxId],
    message: Loaded,
    filing: Filing,
) -> Result<(), DeliveryError> {
    let mut unique = mailboxes.to_vec();
    unique.sort();
    unique.dedup();
    let store = services.store.clone();
    // Parsing, the blob's fsync and the transaction block: off the async threads.
    tokio::task::spawn_blocking(move || {
        let mut targets = Vec::with_capacity(unique.len());
        for mailbox in unique {
            let folder = match filing {
                Filing::Inbox => store
                    .folder_by_name(mailbox, "INBOX")?
                    .ok_or_else(|| StoreError::not_found(format!("INBOX of mailbox {mailbox}")))?,
                Filing::Junk => store.junk_folder(mailbox)?,
            };
            targets.push((mailbox, folder.id));
        }
        match store.deliver_loaded(&targets, &message, AppendMessage::default()) {
            Err(StoreError::OverQuota { .. }) => Err(DeliveryError::OverQuota),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(store.flush_blocking()?),
        }
    })
    .await?
}

/// Whether a mailbox takes a message now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    Yes,
    /// Its organization is suspended (issue 12): the sender is to retry until it is resumed.
    Suspended,
    /// It cannot take `size` more bytes.
    Full,
}

/// Whether `mailbox` takes a message of `size` bytes now: one read of the store. A store
/// error counts as suspended: a temporary refusal is the safe answer. A mailbox gone since
/// its address was resolved takes it (delivery then finds nothing to deliver to).
pub fn admission(services: &Services, mailbox: MailboxId, size: u64) -> Admitted {
    match services.store.admission(mailbox) {
        Ok(Some(a)) if a.suspended => Admitted::Suspended,
        Ok(Some(a)) if !a.has_room(size) => Admitted::Full,
        Ok(_) => Admitted::Yes,
        Err(_) => Admitted::Suspended,
    }
}

/// The trace field every accepted message gets first (RFC 5321 §4.4), with the protocol
/// names of RFC 3848 (ESMTPSA: TLS and authenticated).
pub fn received_header(
    services: &Services,
    helo: &str,
    peer: std::net::IpAddr,
    protocol: &str,
    recipient: Option<&str>,
) -> String {
    let host = &services.config.hostname;
    let id = hex::encode(rand::random::<[u8; 8]>());
    let date = chrono::Utc::now().to_rfc2822();
    let helo = sanitize(helo);
    let rcpt = recipient
        .map(|r| format!("\r\n\tfor <{}>", sanitize(r)))
        .unwrap_or_default();
    format!(
        "Received: from {helo} ([{peer}])\r\n\tby {host} (mailgate) with {protocol} id {id}{rcpt};\r\n\t{date}\r\n"
    )
}

/// Client-given text in a header: no line breaks, no control characters.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(255).collect()
}
