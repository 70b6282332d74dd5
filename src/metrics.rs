//! Counters for `GET /metrics` (Prometheus text format): connections per protocol, logins by
//! outcome, deliveries; the queue size is read from the store when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

const PROTOCOLS: [&str; 3] = ["imap", "smtp", "submission"];

#[derive(Default)]
pub struct Metrics {
    open: [AtomicI64; 3],
    accepted: [AtomicU64; 3],
    /// [protocol: imap, smtp] × [outcome: success, failure]
    logins: [[AtomicU64; 2]; 2],
    delivered_local: AtomicU64,
    queued_remote: AtomicU64,
}

/// An open connection, counted until dropped.
pub struct OpenConnection<'a> {
    metrics: &'a Metrics,
    index: usize,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.metrics.open[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a connection of `protocol` ("imap", "smtp", "submission") while the guard lives.
    pub fn connection(&self, protocol: &str) -> Option<OpenConnection<'_>> {
        let index = PROTOCOLS.iter().position(|p| *p == protocol)?;
        self.open[index].fetch_add(1, Ordering::Relaxed);
        self.accepted[index].fetch_add(1, Ordering::Relaxed);
        Some(OpenConnection {
            metrics: self,
            index,
        })
    }

    /// A login over IMAP (`imap.login`) or SMTP (`smtp.login`).
    pub fn login(&self, action: &str, success: bool) {
        let protocol = usize::from(action.starts_with("smtp"));
        self.logins[protocol][usize::from(!success)].fetch_add(1, Ordering::Relaxed);
    }

    /// A message accepted: `local` copies stored, `remote` recipients queued.
    pub fn delivery(&self, local: usize, remote: usize) {
        self.delivered_local
            .fetch_add(local as u64, Ordering::Relaxed);
        self.queued_remote
            .fetch_add(remote as u64, Ordering::Relaxed);
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self, queue_entries: usize) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP mailgate_connections_open Client connections open now.\n");
        out.push_str("# TYPE mailgate_connections_open gauge\n");
        for (i, p) in PROTOCOLS.iter().enumerate() {
            let n = self.open[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "mailgate_connections_open{{protocol=\"{p}\"}} {n}");
        }
        out.push_str("# HELP mailgate_connections_total Client connections accepted.\n");
        out.push_str("# TYPE mailgate_connections_total counter\n");
        for (i, p) in PROTOCOLS.iter().enumerate() {
            let n = get(&self.accepted[i]);
            let _ = writeln!(out, "mailgate_connections_total{{protocol=\"{p}\"}} {n}");
        }
        out.push_str("# HELP mailgate_logins_total Logins by protocol and outcome.\n");
        out.push_str("# TYPE mailgate_logins_total counter\n");
        for (i, p) in ["imap", "smtp"].iter().enumerate() {
            for (j, outcome) in ["success", "failure"].iter().enumerate() {
                let n = get(&self.logins[i][j]);
                let _ = writeln!(
                    out,
                    "mailgate_logins_total{{protocol=\"{p}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP mailgate_deliveries_total Messages accepted over SMTP, by where they went.\n",
        );
        out.push_str("# TYPE mailgate_deliveries_total counter\n");
        let _ = writeln!(
            out,
            "mailgate_deliveries_total{{to=\"local\"}} {}",
            get(&self.delivered_local)
        );
        let _ = writeln!(
            out,
            "mailgate_deliveries_total{{to=\"queue\"}} {}",
            get(&self.queued_remote)
        );
        out.push_str(
            "# HELP mailgate_queue_entries Outbound queue entries (one per message and domain).\n",
        );
        out.push_str("# TYPE mailgate_queue_entries gauge\n");
        let _ = writeln!(out, "mailgate_queue_entries {queue_entries}");
        out
    }
}
