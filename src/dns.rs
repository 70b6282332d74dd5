//! The server's one DNS resolver: MX hosts for the outbound queue, SPF, DKIM and DMARC records
//! for the inbound checks. One instance, so that its cache (by the records' TTLs, negative
//! answers included) serves every session.

use crate::config::QueueConfig;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use std::sync::Arc;
use std::time::Duration;

/// How long one question may wait for one server's answer, and how often it is asked again:
/// a slow DNS makes a temporary failure, never a session that hangs.
const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: usize = 2;

#[derive(Debug, thiserror::Error)]
#[error("the DNS resolver cannot start: {0}")]
pub struct DnsError(String);

/// The resolver asking the configured name servers, else those of /etc/resolv.conf. Without
/// either it still starts, and every question fails as a temporary error (mail waits).
pub fn resolver(config: &QueueConfig) -> Result<Arc<TokioResolver>, DnsError> {
    let none = || ResolverConfig::from_parts(None, Vec::new(), Vec::new());
    let mut builder = if config.nameservers.is_empty() {
        TokioResolver::builder_tokio().unwrap_or_else(|e| {
            tracing::error!(error = %e, "no DNS servers: set queue.nameservers");
            TokioResolver::builder_with_config(none(), TokioRuntimeProvider::default())
        })
    } else {
        let servers: Vec<NameServerConfig> = config
            .nameservers
            .iter()
            .map(|ns| {
                let mut server = NameServerConfig::udp_and_tcp(ns.0.ip());
                for connection in &mut server.connections {
                    connection.port = ns.0.port();
                }
                server
            })
            .collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
    };
    let options = builder.options_mut();
    options.timeout = TIMEOUT;
    options.attempts = ATTEMPTS;
    let resolver = builder.build().map_err(|e| DnsError(e.to_string()))?;
    Ok(Arc::new(resolver))
}
