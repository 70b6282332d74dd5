//! The configuration: every key has a default, so `mailgate serve` runs with no file at all.
//! `config/mailgate.toml` documents every key; an unknown key or a bad value stops start-up
//! with the file, the line and the key.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The name this server gives itself in greetings and in its generated certificate.
    pub hostname: String,
    /// Where the store and the blobs live; `--data` overrides it.
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    pub imap: ImapConfig,
    pub smtp: SmtpConfig,
    pub submission: DualListener,
    pub queue: QueueConfig,
    pub public: PublicConfig,
    pub admin: AdminConfig,
    pub limits: Limits,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub bootstrap: Bootstrap,
    pub import: ImportConfig,
    pub inbound: InboundConfig,
    pub filter: FilterConfig,
    pub proxy: ProxyConfig,
}

/// A spam filter asked about inbound mail (issue 13): rspamd over its HTTP protocol.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// rspamd's normal worker, `http://127.0.0.1:11333`; empty: no filter.
    pub rspamd: String,
    /// How long one answer may take.
    pub timeout_seconds: u64,
    /// What a message gets when rspamd cannot be asked.
    pub unreachable: Unreachable,
}

impl Default for FilterConfig {
    fn default() -> FilterConfig {
        FilterConfig {
            rspamd: String::new(),
            timeout_seconds: 20,
            unreachable: Unreachable::Accept,
        }
    }
}

/// The filter's failure: mail delivered unchecked, or refused for now.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unreachable {
    /// Delivered, with a header saying it was not checked.
    Accept,
    /// `451 4.7.1`: the sending server tries again later.
    Defer,
}

/// Load balancers that send the PROXY protocol v2 header before each connection.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Connections from these must start with the header; the address it names is served.
    pub trusted: Vec<Network>,
}

/// What is checked of mail arriving on the SMTP listener (issue 13).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// SPF, DKIM, ARC and DMARC checks, written in an `Authentication-Results:` field.
    pub checks: bool,
    /// Peers whose mail is not checked: the server's own networks, a filter in front of it.
    pub trusted_networks: Vec<Network>,
    /// What a DMARC failure under `p=reject` gets.
    pub dmarc_reject: DmarcAction,
    /// What a DMARC failure under `p=quarantine` gets.
    pub dmarc_quarantine: DmarcAction,
}

impl Default for InboundConfig {
    fn default() -> InboundConfig {
        InboundConfig {
            checks: true,
            trusted_networks: ["127.0.0.0/8", "::1/128"]
                .into_iter()
                .filter_map(|n| Network::try_from(n.to_string()).ok())
                .collect(),
            dmarc_reject: DmarcAction::Reject,
            dmarc_quarantine: DmarcAction::Junk,
        }
    }
}

/// What becomes of a message that fails DMARC.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DmarcAction {
    /// `550 5.7.1` at the end of DATA.
    Reject,
    /// Delivered to the recipient's `\Junk` folder.
    Junk,
    /// Delivered to the INBOX as any other message (the verdict is in its header).
    Deliver,
}

/// An IP network: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct Network {
    address: std::net::IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(V6(v6), V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (V4(net), V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl TryFrom<String> for Network {
    type Error = String;

    fn try_from(text: String) -> Result<Network, String> {
        let bad = || format!("{text:?} is not a network such as 192.0.2.0/24 or 2001:db8::/32");
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (
                a.parse().map_err(|_| bad())?,
                Some(p.parse::<u8>().map_err(|_| bad())?),
            ),
            None => (text.parse::<std::net::IpAddr>().map_err(|_| bad())?, None),
        };
        let longest = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(longest);
        if prefix > longest {
            return Err(bad());
        }
        Ok(Network { address, prefix })
    }
}

/// Moving mail in from other IMAP servers (issue 12).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    /// Imports running at once over the whole server; more are refused (503) until one ends.
    pub max_running: usize,
    /// Whether a source may be a loopback, private or link-local address. Off, an admin
    /// cannot make the server probe its own network through an import.
    pub allow_private_sources: bool,
}

impl Default for ImportConfig {
    fn default() -> ImportConfig {
        ImportConfig {
            max_running: 4,
            allow_private_sources: false,
        }
    }
}

/// Certificate and key in PEM; when both are absent a self-signed certificate is generated.
/// With `acme`, certificates from an ACME authority serve the names they cover.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub acme: Option<AcmeConfig>,
}

/// An ACME authority (RFC 8555) that issues the server's certificates.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The directory URL, such as Let's Encrypt's.
    pub directory: String,
    /// Where the authority writes about the account's certificates (an address).
    #[serde(default)]
    pub contact: Option<String>,
    /// A PEM file of the CA that the directory's HTTPS certificate comes from, when it is not
    /// one the system trusts (a test authority such as pebble).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Listeners that answer only the HTTP-01 challenges (port 80 on the Internet), so that
    /// the admin API need not be exposed; empty: the admin listener answers them.
    #[serde(default)]
    pub challenge_listen: Vec<SocketAddr>,
}

/// IMAP: listeners and the limits of a session.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    pub listen: Vec<SocketAddr>,
    pub listen_tls: Vec<SocketAddr>,
    /// The longest command line, in bytes, literals not counted.
    pub max_line_bytes: u32,
    /// The largest message APPEND takes.
    pub max_message_bytes: u32,
    /// The largest literal of any other command (a folder name, a password, a search
    /// string).
    pub max_literal_bytes: u32,
    /// A session that sends nothing for this long is logged out (RFC 3501 §5.4: 30 min).
    pub autologout_seconds: u64,
    /// Commands a session may send per second on average; bursts of ten seconds' worth pass.
    /// Beyond, commands are answered `NO [LIMIT]`.
    pub max_commands_per_second: u32,
    /// A client that takes none of an answer's next 64 KiB for this long is disconnected.
    pub write_stall_seconds: u64,
}

impl Default for ImapConfig {
    fn default() -> ImapConfig {
        ImapConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1143))],
            listen_tls: vec![SocketAddr::from(([127, 0, 0, 1], 1993))],
            max_line_bytes: 64 * 1024,
            max_message_bytes: 50 * 1024 * 1024,
            max_literal_bytes: 64 * 1024,
            autologout_seconds: 30 * 60,
            max_commands_per_second: 1000,
            write_stall_seconds: 120,
        }
    }
}

/// SMTP, inbound and submission: listeners and the limits of a session.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Inbound SMTP (port 25's role).
    pub listen: Vec<SocketAddr>,
    /// The largest message taken (SIZE, RFC 1870).
    pub max_message_bytes: usize,
    /// Recipients per message; beyond, RCPT gets `452 4.5.3`.
    pub max_recipients: usize,
    /// Commands answered with an error before the connection is dropped.
    pub max_errors: u32,
    /// Commands a submission client may send before it authenticates.
    pub max_commands_before_auth: u32,
    /// How long the server waits for a command, or for more of a message (RFC 5321
    /// §4.5.3.2.7: at least 5 minutes).
    pub timeout_seconds: u64,
    /// Whether `Contact@` and `contact@` are different addresses. Domains never are.
    pub local_part_case_sensitive: bool,
    /// `contact+news@acme.example` is delivered to `contact@acme.example`; empty turns it off.
    pub subaddress_separator: String,
}

impl Default for SmtpConfig {
    fn default() -> SmtpConfig {
        SmtpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
            max_message_bytes: 50 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            max_commands_before_auth: 20,
            timeout_seconds: 300,
            local_part_case_sensitive: false,
            subaddress_separator: "+".into(),
        }
    }
}

/// The outbound queue: where mail for other servers goes, and how long it is retried.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// `host:port` of a relay that takes all outbound mail; empty: the recipient domain's MX.
    pub smarthost: String,
    /// How to speak TLS to the smarthost: `starttls` (when offered), `implicit`, or `none`.
    pub smarthost_tls: SmarthostTls,
    /// AUTH PLAIN credentials for the smarthost; empty: no AUTH.
    pub smarthost_user: String,
    pub smarthost_password: String,
    /// PEM certificates trusted for the smarthost besides the web's roots: a private CA, or
    /// the smarthost's own self-signed certificate.
    pub smarthost_ca: Option<PathBuf>,
    /// Name servers asked for MX and address records; empty: the system's (resolv.conf).
    pub nameservers: Vec<NameServer>,
    /// The port MX hosts are reached on (Postfix's `smtp_tcp_port`).
    pub mx_port: u16,
    /// The wait before the first retry; it doubles after each failure.
    pub first_retry_seconds: u64,
    /// The longest wait between two attempts.
    pub max_retry_seconds: u64,
    /// How long temporary failures are retried before the message bounces (5 days).
    pub give_up_after_seconds: u64,
    /// How long a node holds a queue entry it is delivering, renewed meanwhile: a node that
    /// dies mid-delivery leaves the entry to the others after this (PostgreSQL only).
    pub lease_seconds: u64,
}

/// A DNS server: `192.0.2.53` (port 53) or `192.0.2.53:5353`, `[2001:db8::53]:53`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct NameServer(pub SocketAddr);

impl TryFrom<String> for NameServer {
    type Error = String;

    fn try_from(text: String) -> Result<NameServer, String> {
        text.parse::<SocketAddr>()
            .or_else(|_| text.parse().map(|ip| SocketAddr::new(ip, 53)))
            .map(NameServer)
            .map_err(|_| format!("{text:?} is not an IP address, with or without a port"))
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmarthostTls {
    Starttls,
    Implicit,
    None,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            smarthost: String::new(),
            smarthost_tls: SmarthostTls::Starttls,
            smarthost_user: String::new(),
            smarthost_password: String::new(),
            smarthost_ca: None,
            nameservers: Vec::new(),
            mx_port: 25,
            first_retry_seconds: 60,
            max_retry_seconds: 4 * 3600,
            give_up_after_seconds: 5 * 24 * 3600,
            lease_seconds: 300,
        }
    }
}

/// What clients are told to connect to (autoconfiguration), when it differs from what the
/// server listens on (a proxy, a NAT, port 993 forwarded to 1993).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PublicConfig {
    /// Default: `hostname`.
    pub hostname: Option<String>,
    /// Default: the port of the first `imap.listen_tls` address.
    pub imap_port: Option<u16>,
    /// Default: the port of the first `submission.listen_tls` address.
    pub submission_port: Option<u16>,
}

/// A protocol with a STARTTLS port and an implicit-TLS port. An empty list disables one.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DualListener {
    pub listen: Vec<SocketAddr>,
    pub listen_tls: Vec<SocketAddr>,
}

/// The admin HTTP API.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: Vec<SocketAddr>,
    /// The same API over TLS, with the listeners' certificates (autoconfig and Autodiscover
    /// over HTTPS, on the names ACME certifies).
    pub listen_tls: Vec<SocketAddr>,
    /// Whether any signed-in user may create an organization, becoming its owner (issue
    /// 12); otherwise only the server's operators create them.
    pub self_service_organizations: bool,
    /// Days between an operator's deletion of an organization (which suspends it at once)
    /// and the deletion itself, which exports its mail first; 0 deletes at the next check.
    pub organization_deletion_grace_days: i64,
    /// Whether a domain added through the API must show its token in the DNS before it
    /// receives or sends mail (issue 13: one tenant cannot take another's domain).
    pub verify_domains: bool,
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            listen_tls: Vec::new(),
            self_service_organizations: false,
            organization_deletion_grace_days: 30,
            verify_domains: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open connections over all listeners; further ones wait to be accepted.
    pub max_connections: usize,
    /// Open connections from one client address; further ones are refused.
    pub max_connections_per_client: usize,
    /// On SIGINT/SIGTERM, how long open sessions get to finish before they are cut.
    pub shutdown_grace_seconds: u64,
    /// Bytes of one incoming message (SMTP DATA/BDAT, IMAP APPEND, an admin API body) kept in
    /// memory; beyond, it goes to a file in the data directory's `spool/`.
    pub spool_threshold_bytes: usize,
    /// Bytes of messages still arriving, over all sessions, memory and spool together, and of
    /// admin API request bodies; beyond, SMTP answers `452 4.3.1`, IMAP `NO [UNAVAILABLE]`
    /// and the API 503.
    pub max_bytes_in_flight: u64,
    /// Bytes of arrived messages being parsed and stored at once (in memory); a message waits
    /// for its share. A larger message than this takes it all, alone.
    pub max_bytes_processing: u64,
}

impl Limits {
    pub fn spool_limits(&self) -> crate::store::SpoolLimits {
        crate::store::SpoolLimits {
            threshold: self.spool_threshold_bytes,
            in_flight: self.max_bytes_in_flight,
            processing: self.max_bytes_processing,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// How long a successful password check is remembered, so that a client that logs in
    /// again and again does not pay for argon2 each time. 0 turns the cache off.
    pub password_cache_seconds: u64,
    /// Whether IMAP and SMTP accept passwords over plain (not TLS) connections from loopback
    /// addresses. Never from anywhere else.
    pub allow_plaintext_on_loopback: bool,
    /// Between a mailbox address and a user login, logs a user in to that mailbox with the
    /// user's own password: `contact@acme.example*lucie@gmail.example`.
    pub delegation_separator: String,
    /// Password hashes (argon2id, about 19 MiB each) computed at once; 0: one per core.
    pub max_concurrent_password_checks: usize,
    /// Password checks waiting for their turn; more are refused at once as a temporary failure.
    pub max_waiting_password_checks: usize,
    /// How long a password check waits for its turn before it is refused (temporary failure).
    pub password_check_wait_seconds: u64,
}

impl AuthConfig {
    pub fn password_check_limits(&self) -> crate::password::CheckLimits {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        crate::password::CheckLimits {
            concurrent: match self.max_concurrent_password_checks {
                0 => cores,
                n => n,
            },
            waiting: self.max_waiting_password_checks,
            wait: std::time::Duration::from_secs(self.password_check_wait_seconds),
        }
    }
}

/// Where the server's state lives: the embedded database, or PostgreSQL.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user@host:port/database`: the whole state in PostgreSQL, which several
    /// nodes may share. Unset: sled in the data directory, for one node.
    pub postgres_url: Option<String>,
    /// sled's page cache, in MiB: the directory, folder indexes and message summaries that
    /// stay in memory. Message bodies are files, read through the kernel's page cache.
    pub cache_mib: u64,
    /// Message bodies kept in memory after they are written or read, in MiB; 0 for none.
    pub body_cache_mib: u64,
    /// Audit events older than this many days are removed (every hour); 0 keeps them all.
    pub audit_retention_days: u64,
    /// What sled favours: write throughput, or disk space (it rewrites data more often).
    pub mode: StoreMode,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreMode {
    #[default]
    HighThroughput,
    LowSpace,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            postgres_url: None,
            cache_mib: 64,
            body_cache_mib: 32,
            audit_retention_days: 365,
            mode: StoreMode::HighThroughput,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Bootstrap {
    /// The organization created on first start with an empty data directory.
    pub organization: String,
    /// The login of its owner; the initial password is printed once.
    pub owner: String,
}

impl Default for Config {
    fn default() -> Config {
        let local = |port: u16| vec![SocketAddr::from(([127, 0, 0, 1], port))];
        Config {
            hostname: "localhost".into(),
            data_dir: PathBuf::from("data"),
            tls: TlsConfig::default(),
            imap: ImapConfig::default(),
            smtp: SmtpConfig::default(),
            submission: DualListener {
                listen: local(1587),
                listen_tls: local(1465),
            },
            queue: QueueConfig::default(),
            public: PublicConfig::default(),
            admin: AdminConfig::default(),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            store: StoreConfig::default(),
            bootstrap: Bootstrap::default(),
            import: ImportConfig::default(),
            inbound: InboundConfig::default(),
            filter: FilterConfig::default(),
            proxy: ProxyConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 10_000,
            max_connections_per_client: 100,
            shutdown_grace_seconds: 10,
            spool_threshold_bytes: 128 * 1024,
            max_bytes_in_flight: 2 * 1024 * 1024 * 1024,
            max_bytes_processing: 128 * 1024 * 1024,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            password_cache_seconds: 300,
            allow_plaintext_on_loopback: false,
            delegation_separator: "*".into(),
            max_concurrent_password_checks: 0,
            max_waiting_password_checks: 200,
            password_check_wait_seconds: 10,
        }
    }
}

impl Default for Bootstrap {
    fn default() -> Bootstrap {
        Bootstrap {
            organization: "My Organization".into(),
            owner: "owner@localhost".into(),
        }
    }
}

/// Why the configuration could not be used; the message names file, line and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |line: usize, key: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            key,
            message,
        };
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.span().map_or(0, |s| line_of(text, s.start));
            invalid(line, key, inner.message().to_string())
        })?;
        config
            .check()
            .map_err(|(key, message)| invalid(line_of_key(text, &key), key, message))?;
        Ok(config)
    }

    /// Checks what the types alone cannot: returns the key at fault and why.
    fn check(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, why: &str| Err((key.to_string(), why.to_string()));
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            return bad("hostname", "must be a host name without spaces");
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            let key = if self.tls.cert.is_some() {
                "tls.key"
            } else {
                "tls.cert"
            };
            return bad(
                key,
                "tls.cert and tls.key go together: give both or neither",
            );
        }
        if self.auth.delegation_separator.is_empty() || self.auth.delegation_separator.contains('@')
        {
            return bad(
                "auth.delegation_separator",
                "must be a non-empty string without @",
            );
        }
        if self.imap.max_commands_per_second == 0 {
            return bad("imap.max_commands_per_second", "must be at least 1");
        }
        if self.imap.max_line_bytes < 1024 {
            return bad("imap.max_line_bytes", "must be at least 1024");
        }
        if self.limits.max_connections == 0 {
            return bad("limits.max_connections", "must be at least 1");
        }
        if self.limits.max_connections_per_client == 0 {
            return bad("limits.max_connections_per_client", "must be at least 1");
        }
        if crate::model::domain_of(&self.bootstrap.owner).is_none() {
            return bad("bootstrap.owner", "must be a login of the form name@domain");
        }
        let rspamd = &self.filter.rspamd;
        let url = rspamd.starts_with("http://") || rspamd.starts_with("https://");
        if !rspamd.is_empty() && !url {
            return bad(
                "filter.rspamd",
                "must be an http:// or https:// URL, or empty",
            );
        }
        if self.filter.timeout_seconds == 0 {
            return bad("filter.timeout_seconds", "must be at least 1");
        }
        if self.bootstrap.organization.trim().is_empty() {
            return bad("bootstrap.organization", "must not be empty");
        }
        Ok(())
    }
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where a dotted `key` is set; when the key itself is absent, the line of its
/// `[section]`; 0 when neither is in the text.
fn line_of_key(text: &str, key: &str) -> usize {
    let (section, last) = key.rsplit_once('.').unwrap_or(("", key));
    let header = format!("[{section}]");
    let mut in_section = section.is_empty();
    let mut section_line = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == header;
            if in_section {
                section_line = i + 1;
            }
        } else if in_section
            && line
                .strip_prefix(last)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return i + 1;
        }
    }
    section_line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn the_documented_file_is_valid_and_says_the_defaults() {
        let text = include_str!("../config/mailgate.toml");
        assert_eq!(parse(text).unwrap(), Config::default());
    }

    #[test]
    fn acme_takes_a_directory_and_may_take_a_contact_and_a_ca() {
        let c = parse("[tls.acme]\ndirectory = \"https://acme.test/dir\"\n").unwrap();
        let acme = c.tls.acme.unwrap();
        assert_eq!(acme.directory, "https://acme.test/dir");
        assert_eq!((acme.contact, acme.ca), (None, None));
        let err = parse("[tls.acme]\ncontact = \"pm@a.test\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("directory"), "{err}");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = parse("hostname = \"mx\"\n\n[imap]\nlisten = []\nlisten_tls = []\nlisen = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.toml:6:"), "{err}");
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn bad_value_names_file_line_and_key() {
        let err = parse("[admin]\nlisten = [\"not an address\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.toml:2: `admin.listen[0]`"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse("[limits]\nmax_connections = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("test.toml:2: `limits.max_connections`"),
            "{err}"
        );
    }

    #[test]
    fn checks_name_the_key_and_its_line() {
        let err = parse("[tls]\ncert = \"c.pem\"\n").unwrap_err().to_string();
        assert!(err.starts_with("test.toml:1: `tls.key`"), "{err}");
        let err = parse("\n[limits]\nmax_connections = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("test.toml:3: `limits.max_connections`"),
            "{err}"
        );
    }

    #[test]
    fn networks_contain_their_addresses_and_bad_ones_name_the_key() {
        let c = parse(
            "[inbound]\ntrusted_networks = [\"192.0.2.0/24\", \"2001:db8::/32\", \"10.1.2.3\"]\n",
        )
        .unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let trusted = |s: &str| c.inbound.trusted_networks.iter().any(|n| n.contains(ip(s)));
        assert!(trusted("192.0.2.200") && trusted("::ffff:192.0.2.1"));
        assert!(trusted("2001:db8:ffff::1") && trusted("10.1.2.3"));
        assert!(!trusted("192.0.3.1") && !trusted("10.1.2.4") && !trusted("2001:db9::1"));
        let all = Network::try_from("0.0.0.0/0".to_string()).unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        let defaults = Config::default().inbound;
        assert!(
            defaults
                .trusted_networks
                .iter()
                .any(|n| n.contains(ip("127.0.0.1")))
        );
        assert!(
            defaults
                .trusted_networks
                .iter()
                .any(|n| n.contains(ip("::1")))
        );
        let err = parse("[inbound]\ntrusted_networks = [\"192.0.2.0/33\"]\n").unwrap_err();
        assert!(
            err.to_string().contains("inbound.trusted_networks"),
            "{err}"
        );
    }

    #[test]
    fn name_servers_take_an_address_with_or_without_a_port() {
        let c = parse("[queue]\nnameservers = [\"192.0.2.53\", \"[2001:db8::1]:5353\"]\n").unwrap();
        let ports: Vec<u16> = c.queue.nameservers.iter().map(|n| n.0.port()).collect();
        assert_eq!(ports, [53, 5353]);
        let err = parse("[queue]\nnameservers = [\"dns.example\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("test.toml:2: `queue.nameservers[0]`"),
            "{err}"
        );
        assert!(err.contains("not an IP address"), "{err}");
    }

    #[test]
    fn a_listener_can_be_moved_or_disabled() {
        let c = parse("[imap]\nlisten = [\"127.0.0.1:143\"]\nlisten_tls = []\n").unwrap();
        assert_eq!(c.imap.listen[0].port(), 143);
        assert!(c.imap.listen_tls.is_empty());
    }
}
