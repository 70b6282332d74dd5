//! The server's own mail (invitations, role changes): written here, then delivered like any
//! other message: to the mailbox when the address is local, through the queue otherwise.

use super::address::{self, Destination};
use super::outbound::Outgoing;
use crate::services::Services;

#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("{0:?} is not an address mail can be sent to")]
    BadAddress(String),
    #[error("{0}")]
    Delivery(String),
}

/// Sends a plain-text notice to `to`; returns once it is stored or queued durably.
pub async fn send(
    services: &Services,
    to: &str,
    subject: &str,
    text: &str,
) -> Result<(), NoticeError> {
    let raw = compose(&services.config.hostname, to, subject, text);
    match address::destination(services, to) {
        Ok(Destination::Local { mailbox }) => {
            super::delivery::deliver(services, &[mailbox], raw.into())
                .await
                .map_err(|e| NoticeError::Delivery(e.to_string()))
        }
        Ok(Destination::Remote { .. }) => {
            // A null reverse-path: nothing bounces back to a server notice (RFC 3834 §3.3).
            let recipients = [to.to_string()];
            let outgoing = Outgoing {
                sender: "",
                recipients: &recipients,
                dsn: &crate::model::DsnRequest::default(),
                hold: crate::store::Hold::No,
            };
            super::outbound::enqueue(services, &raw, outgoing)
                .await
                .map(|_| ())
                .map_err(|e| NoticeError::Delivery(e.to_string()))
        }
        _ => Err(NoticeError::BadAddress(to.to_string())),
    }
}

fn compose(hostname: &str, to: &str, subject: &str, text: &str) -> Vec<u8> {
    let id = hex::encode(rand::random::<[u8; 12]>());
    let date = chrono::Utc::now().to_rfc2822();
    let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    // RFC 2047: a header holds ASCII; anything else as an encoded word.
    let subject = if subject.is_ascii() {
        subject
    } else {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(subject.as_bytes());
        format!("=?utf-8?B?{b64}?=")
    };
    let body = text.replace("\r\n", "\n").replace('\n', "\r\n");
    format!(
        "From: mailgate <postmaster@{hostname}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{hostname}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n{body}\r\n"
    )
    .into_bytes()
}
