//! Recording what the admin API does: every change and every login, with who, from where and
//! with what outcome.

use crate::model::*;
use crate::services::Services;
use std::fmt::Display;
use std::net::SocketAddr;

/// An audit event being described; `record` writes it.
pub struct Entry {
    event: AuditEvent,
}

/// Starts an event: `action` is a dotted verb (`mailbox.create`), `target` names its object.
pub fn entry(action: &str, target: impl Display) -> Entry {
    Entry {
        event: AuditEvent {
            id: AuditId(0),
            at: 0,
            org: None,
            actor: Actor::System,
            action: action.to_string(),
            target: target.to_string(),
            client: None,
            outcome: Outcome::Success,
            detail: String::new(),
        },
    }
}

impl Entry {
    pub fn org(mut self, org: OrgId) -> Entry {
        self.event.org = Some(org);
        self
    }

    pub fn actor(mut self, actor: Actor) -> Entry {
        self.event.actor = actor;
        self
    }

    pub fn failure(mut self, why: impl Display) -> Entry {
        self.event.outcome = Outcome::Failure;
        self.event.detail = why.to_string();
        self
    }

    pub fn detail(mut self, detail: impl Display) -> Entry {
        self.event.detail = detail.to_string();
        self
    }

    /// Writes the event. An audit write that fails is logged, not fatal to the request: the
    /// change itself has already been made.
    pub fn record(mut self, services: &Services, client: Option<SocketAddr>) {
        self.event.client = client.map(|c| c.ip().to_string());
        if let Err(e) = services.store.record_audit(self.event) {
            tracing::error!(error = %e, "could not record an audit event");
        }
    }
}
