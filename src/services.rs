//! What every session shares: the configuration, the store, TLS, the password checker, the
//! login throttle, the spool of mail in flight, the metrics and the queue's wake-up.

use crate::config::Config;
use crate::password::Verifier;
use crate::store::{Spool, SpoolError, Store};
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Dns(#[from] crate::dns::DnsError),
    #[error(transparent)]
    Filter(#[from] crate::smtp::filter::FilterError),
}

/// What every session shares.
pub struct Services {
    pub config: Config,
    pub store: Store,
    pub tls: TlsAcceptor,
    /// The certificates `tls` presents, replaced as they are renewed.
    pub certificates: std::sync::Arc<crate::tls::Certificates>,
    /// The outbound queue's TLS client configurations.
    pub outbound_tls: crate::tls::OutboundTls,
    pub passwords: Verifier,
    /// Wakes the outbound queue's worker when mail is queued.
    pub queue_wake: tokio::sync::Notify,
    pub metrics: crate::metrics::Metrics,
    /// Slows down password guessing on every protocol.
    pub throttle: crate::login::Throttle,
    /// Mail on its way in, past a small size, and the budgets of bytes in flight.
    pub spool: Spool,
    /// The imports running now (issue 12).
    pub imports: crate::import::Running,
    /// The one DNS resolver, with its cache: MX hosts, SPF, DKIM and DMARC records.
    pub dns: std::sync::Arc<hickory_resolver::TokioResolver>,
    /// The spam filter `[filter]` names, if any.
    pub filter: Option<crate::smtp::filter::Filter>,
    /// The outbound queue's connections kept open between messages to one host.
    pub outbound_pool: crate::smtp::client::Pool,
    /// The DKIM private keys, parsed once.
    pub dkim_keys: crate::dkim::KeyCache,
    /// The server-wide jobs this node holds, and until when (`Services::runs`).
    held_jobs: std::sync::Mutex<std::collections::HashMap<Job, crate::model::Millis>>,
}

impl Services {
    /// Everything sessions share, from the configuration and the open store.
    pub fn new(config: Config, store: Store) -> Result<Services, ServicesError> {
        let certificates = crate::tls::certificates(&config.tls, &config.hostname, &store)?;
        let tls = crate::tls::acceptor(certificates.clone())?;
        let outbound_tls = crate::tls::outbound(&config.queue)?;
        let passwords = Verifier::new(
            Duration::from_secs(config.auth.password_cache_seconds),
            config.auth.password_check_limits(),
        );
        let dns = crate::dns::resolver(&config.queue)?;
        let filter = crate::smtp::filter::Filter::new(&config.filter)?;
        let spool = Spool::open(&store.dir().join("spool"), config.limits.spool_limits())?;
        Ok(Services {
            config,
            store,
            tls,
            certificates,
            outbound_tls,
            passwords,
            queue_wake: tokio::sync::Notify::new(),
            metrics: crate::metrics::Metrics::default(),
            throttle: crate::login::Throttle::default(),
            spool,
            imports: crate::import::Running::default(),
            dns,
            filter,
            outbound_pool: crate::smtp::client::Pool::default(),
            dkim_keys: crate::dkim::KeyCache::default(),
            held_jobs: Default::default(),
        })
    }
}

/// The server-wide periodic jobs that one node at a time runs, when several share a store
/// (`ServerStore::hold_job`); with one node, that node runs them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Job {
    /// Ordering and renewing ACME certificates: two nodes ordering at once would each
    /// answer challenges the other's order is judged by, and spend the authority's limits.
    AcmeOrders,
    /// Ending time-limited grants (recorded once in the audit log) and telling the nodes.
    GrantClock,
    /// Deleting organizations whose grace period is over.
    Deletions,
    /// Removing audit events past their retention.
    AuditPruning,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::AcmeOrders => "acme-orders",
            Job::GrantClock => "grant-clock",
            Job::Deletions => "deletions",
            Job::AuditPruning => "audit-pruning",
        }
    }

    /// How long a node holds the job each time it asks: several of its rounds (or one ACME
    /// order's longest wait, twice), so that the holder keeps it from round to round, and
    /// another node takes over soon after the holder dies.
    pub fn hold(self) -> Duration {
        match self {
            Job::AcmeOrders => Duration::from_secs(15 * 60),
            Job::GrantClock => Duration::from_secs(10),
            Job::Deletions => Duration::from_secs(30),
            Job::AuditPruning => Duration::from_secs(3 * 3600),
        }
    }
}

impl Services {
    /// Whether this node runs `job` now. The store is asked again once half the hold is gone
    /// (not at every round: a write per node per second for the grant clock), which keeps
    /// the job for as long as the node lives. A store that cannot answer says no: the job
    /// waits for the next round rather than run on two nodes at once.
    pub async fn runs(&self, job: Job) -> bool {
        let now = crate::model::now_millis();
        let hold = job.hold().as_millis() as crate::model::Millis;
        if self
            .held_jobs()
            .get(&job)
            .is_some_and(|until| until - now > hold / 2)
        {
            return true;
        }
        let store = self.store.clone();
        let until = now + hold;
        let held = tokio::task::spawn_blocking(move || store.hold_job(job.name(), until))
            .await
            .map_err(|e| e.to_string())
            .and_then(|held| held.map_err(|e| e.to_string()))
            .unwrap_or_else(|e| {
                tracing::error!(job = job.name(), error = %e, "asking who runs a job failed");
                false
            });
        match held {
            true => self.held_jobs().insert(job, until),
            false => self.held_jobs().remove(&job),
        };
        held
    }

    fn held_jobs(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Job, crate::model::Millis>> {
        self.held_jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}
