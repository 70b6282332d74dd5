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
    /// The ACME client's pending challenges (answered by the admin listener) and wake-up.
    pub acme: crate::tls::acme::Acme,
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
            acme: crate::tls::acme::Acme::default(),
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
        })
    }
}
