//! The SMTP client of the outbound queue: one connection per attempt, to the smarthost or
//! to the domain's MX hosts in order of preference, STARTTLS when offered.

use crate::config::{QueueConfig, SmarthostTls};
use crate::net::Services;
use base64::Engine;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What one attempt carries.
pub struct Attempt<'a> {
    pub sender: &'a str,
    pub domain: &'a str,
    pub recipients: &'a [String],
    pub raw: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientResult {
    Delivered,
    /// 4xx, a connection failure, no host answering: tried again later.
    Temporary(String),
    /// 5xx: bounced.
    Permanent(String),
}

/// A whole-attempt failure, before recipients were answered one by one.
#[derive(Debug)]
enum Failure {
    Temporary(String),
    Permanent(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Temporary(format!("connection: {e}"))
    }
}

/// RFC 5321 §4.5.3.2: how long the client waits at each step. Steps the RFC does not name
/// (EHLO, STARTTLS, AUTH, QUIT) get the 5 minutes of the greeting.
mod wait {
    use std::time::Duration;
    /// §4.5.3.2.1, also for the TCP connection itself.
    pub const GREETING: Duration = Duration::from_secs(5 * 60);
    /// §4.5.3.2.2 and §4.5.3.2.3.
    pub const MAIL_RCPT: Duration = Duration::from_secs(5 * 60);
    /// §4.5.3.2.4: the 354 after DATA.
    pub const DATA_INIT: Duration = Duration::from_secs(2 * 60);
    /// §4.5.3.2.5: each block of the message.
    pub const DATA_BLOCK: Duration = Duration::from_secs(3 * 60);
    /// §4.5.3.2.6: the reply to the final dot.
    pub const DATA_END: Duration = Duration::from_secs(10 * 60);
    /// Stops a host that answers every step just in time, forever.
    pub const WHOLE_ATTEMPT: Duration = Duration::from_secs(60 * 60);
}

/// The size of one block written under [`wait::DATA_BLOCK`].
const BLOCK: usize = 64 * 1024;

/// One host to try.
struct Target {
    host: String,
    port: u16,
    tls: SmarthostTls,
    route: Route,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Reached by its name as the system resolves it; authenticated, may be sent a password.
    Smarthost,
    /// Found in the DNS; its addresses too; TLS without authentication.
    Mx,
}

/// Tries every host in turn until one takes the message; returns a result per recipient.
pub async fn deliver(services: &Services, job: &Attempt<'_>) -> Vec<RecipientResult> {
    let resolver = match resolver(&services.config.queue) {
        Ok(resolver) => resolver,
        Err(f) => return all(job, f),
    };
    let targets = match targets(services, &resolver, job.domain).await {
        Ok(targets) => targets,
        Err(f) => return all(job, f),
    };
    let mut last = Failure::Temporary(format!("no host to deliver to for {}", job.domain));
    for target in targets {
        let attempt = session(services, &resolver, &target, job);
        match tokio::time::timeout(wait::WHOLE_ATTEMPT, attempt).await {
            Ok(Ok(results)) => return results,
            Ok(Err(f @ Failure::Permanent(_))) => return all(job, f),
            Ok(Err(f)) => last = f,
            Err(_) => last = Failure::Temporary(format!("{}: timed out", target.host)),
        }
    }
    all(job, last)
}

fn all(job: &Attempt<'_>, failure: Failure) -> Vec<RecipientResult> {
    let result = match failure {
        Failure::Temporary(why) => RecipientResult::Temporary(why),
        Failure::Permanent(why) => RecipientResult::Permanent(why),
    };
    vec![result; job.recipients.len()]
}

/// The configured name servers, else the system's.
fn resolver(config: &QueueConfig) -> Result<TokioResolver, Failure> {
    if config.nameservers.is_empty() {
        return TokioResolver::builder_tokio()
            .map(|b| b.build())
            .map_err(|e| Failure::Temporary(format!("DNS resolver: {e}")));
    }
    let servers: Vec<NameServerConfig> = config
        .nameservers
        .iter()
        .flat_map(|ns| {
            [Protocol::Udp, Protocol::Tcp].map(|protocol| NameServerConfig::new(ns.0, protocol))
        })
        .collect();
    let config = ResolverConfig::from_parts(None, Vec::new(), servers);
    Ok(TokioResolver::builder_with_config(config, TokioConnectionProvider::default()).build())
}

/// Where to connect: the smarthost, else the MX hosts by preference (RFC 5321 §5.1), else
/// the domain itself when it has no MX.
async fn targets(
    services: &Services,
    resolver: &TokioResolver,
    domain: &str,
) -> Result<Vec<Target>, Failure> {
    let config = &services.config.queue;
    if !config.smarthost.is_empty() {
        let (host, port) = config
            .smarthost
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
            .unwrap_or((config.smarthost.clone(), 25));
        let tls = config.smarthost_tls;
        let route = Route::Smarthost;
        return Ok(vec![Target {
            host,
            port,
            tls,
            route,
        }]);
    }
    let mx = |host: String| Target {
        host,
        port: config.mx_port,
        tls: SmarthostTls::Starttls,
        route: Route::Mx,
    };
    match resolver.mx_lookup(domain).await {
        Ok(answer) => {
            let mut records: Vec<(u16, String)> = answer
                .iter()
                .map(|r| {
                    let host = r.exchange().to_utf8();
                    (r.preference(), host.trim_end_matches('.').to_string())
                })
                .collect();
            records.sort();
            // RFC 7505: a "null MX" says the domain takes no mail.
            if records.iter().any(|(_, host)| host.is_empty()) {
                return Err(Failure::Permanent(format!(
                    "{domain} accepts no mail (null MX)"
                )));
            }
            Ok(records.into_iter().map(|(_, host)| mx(host)).collect())
        }
        // RFC 5321 §5.1: no MX, the domain's own address is the host.
        Err(e) if e.is_no_records_found() => Ok(vec![mx(domain.to_string())]),
        Err(e) => Err(Failure::Temporary(format!("DNS: {e}"))),
    }
}

/// A connection to the target: an MX host's addresses come from the same resolver as its
/// name, and each is tried in turn (RFC 5321 §5.1).
async fn connect(resolver: &TokioResolver, target: &Target) -> Result<TcpStream, Failure> {
    let Target { host, port, .. } = target;
    let addrs: Vec<SocketAddr> = match target.route {
        Route::Smarthost => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .map_err(|e| Failure::Temporary(format!("{host}: {e}")))?
            .collect(),
        Route::Mx => resolver
            .lookup_ip(host.as_str())
            .await
            .map_err(|e| Failure::Temporary(format!("{host}: {e}")))?
            .iter()
            .map(|ip| SocketAddr::new(ip, *port))
            .collect(),
    };
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match tokio::time::timeout(wait::GREETING, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = format!("connection to {host} ({addr}) failed: {e}"),
            Err(_) => last = format!("connection to {host} ({addr}) timed out"),
        }
    }
    Err(Failure::Temporary(last))
}

async fn session(
    services: &Services,
    resolver: &TokioResolver,
    target: &Target,
    job: &Attempt<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    let tcp = connect(resolver, target).await?;
    let hostname = &services.config.hostname;
    if target.tls == SmarthostTls::Implicit {
        let mut conv = Conversation::new(start_tls(services, target, tcp).await?);
        conv.expect(220, wait::GREETING).await?;
        let ehlo = conv.ehlo(hostname).await?;
        return transaction(&services.config.queue, &mut conv, &ehlo, job).await;
    }
    let mut conv = Conversation::new(tcp);
    conv.expect(220, wait::GREETING).await?;
    let ehlo = conv.ehlo(hostname).await?;
    let offers_tls = ehlo.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS"));
    if target.tls != SmarthostTls::None && offers_tls {
        conv.command("STARTTLS", 220, wait::GREETING).await?;
        let stream = start_tls(services, target, conv.into_inner()).await?;
        let mut conv = Conversation::new(stream);
        // RFC 3207 §4.2: what was learnt before TLS is forgotten; EHLO again.
        let ehlo = conv.ehlo(hostname).await?;
        return transaction(&services.config.queue, &mut conv, &ehlo, job).await;
    }
    // A password goes only over TLS, unless the configuration says the smarthost has none.
    let auth = target.route == Route::Smarthost && !services.config.queue.smarthost_user.is_empty();
    if auth && target.tls != SmarthostTls::None {
        return Err(Failure::Temporary(format!(
            "{} offers no STARTTLS; the smarthost password is not sent in clear",
            target.host
        )));
    }
    transaction(&services.config.queue, &mut conv, &ehlo, job).await
}

/// AUTH to the smarthost when configured, then MAIL, RCPT and DATA.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    config: &QueueConfig,
    conv: &mut Conversation<S>,
    ehlo: &[String],
    job: &Attempt<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    if !config.smarthost.is_empty() && !config.smarthost_user.is_empty() {
        let plain = format!("\0{}\0{}", config.smarthost_user, config.smarthost_password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
        let auth = format!("AUTH PLAIN {encoded}");
        conv.command(&auth, 235, wait::GREETING).await?;
    }
    let offers = |ext: &str| ehlo.iter().any(|l| l.eq_ignore_ascii_case(ext));
    let utf8 = !(job.sender.is_ascii() && job.recipients.iter().all(|r| r.is_ascii()));
    let eight_bit = !job.raw.is_ascii();
    // RFC 6531 §3.4 and RFC 6152 §3: what the server cannot take is not sent (no downgrade).
    if utf8 && !offers("SMTPUTF8") {
        return Err(Failure::Permanent(
            "550 5.6.7 the receiving server does not take UTF-8 addresses (SMTPUTF8)".into(),
        ));
    }
    if eight_bit && !offers("8BITMIME") {
        return Err(Failure::Permanent(
            "554 5.6.3 the receiving server does not take 8-bit content (8BITMIME)".into(),
        ));
    }
    let mut mail = format!("MAIL FROM:<{}>", job.sender);
    if eight_bit {
        mail.push_str(" BODY=8BITMIME");
    }
    if utf8 {
        mail.push_str(" SMTPUTF8");
    }
    conv.command(&mail, 250, wait::MAIL_RCPT).await?;
    let mut results = Vec::new();
    for rcpt in job.recipients {
        let (code, text) = conv
            .send(&format!("RCPT TO:<{rcpt}>"), wait::MAIL_RCPT)
            .await?;
        results.push(match code {
            200..=299 => RecipientResult::Delivered,
            400..=499 => RecipientResult::Temporary(format!("{code} {text}")),
            _ => RecipientResult::Permanent(format!("{code} {text}")),
        });
    }
    if !results.contains(&RecipientResult::Delivered) {
        let _ = conv.send("QUIT", wait::GREETING).await;
        return Ok(results);
    }
    conv.command("DATA", 354, wait::DATA_INIT).await?;
    for block in dot_stuff(job.raw).chunks(BLOCK) {
        conv.write(block, wait::DATA_BLOCK).await?;
    }
    conv.write(b".\r\n", wait::DATA_BLOCK).await?;
    let (code, text) = conv
        .reply(wait::DATA_END)
        .await
        .map(|(code, lines)| (code, lines.join(" ")))?;
    let _ = conv.send("QUIT", wait::GREETING).await;
    let whole = match code {
        200..=299 => return Ok(results),
        400..=499 => RecipientResult::Temporary(format!("{code} {text}")),
        _ => RecipientResult::Permanent(format!("{code} {text}")),
    };
    // The message as a whole was refused: every recipient RCPT accepted shares that fate.
    Ok(results
        .into_iter()
        .map(|r| {
            if r == RecipientResult::Delivered {
                whole.clone()
            } else {
                r
            }
        })
        .collect())
}

/// RFC 5321 §4.5.2: a line that starts with "." gets another; the message ends with CRLF.
fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut line_start = true;
    for &b in raw {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn start_tls(
    services: &Services,
    target: &Target,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    let host = &target.host;
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|e| Failure::Temporary(format!("{host}: {e}")))?;
    let config = match target.route {
        Route::Smarthost => services.outbound_tls.smarthost.clone(),
        Route::Mx => services.outbound_tls.mx.clone(),
    };
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    match tokio::time::timeout(wait::GREETING, handshake).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(Failure::Temporary(format!("{host}: TLS: {e}"))),
        Err(_) => Err(Failure::Temporary(format!(
            "{host}: TLS handshake timed out"
        ))),
    }
}

/// Commands and replies over one connection.
struct Conversation<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conversation<S> {
    fn new(stream: S) -> Self {
        Conversation {
            stream: BufReader::new(stream),
        }
    }

    fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    async fn write(&mut self, bytes: &[u8], limit: Duration) -> Result<(), Failure> {
        let stream = self.stream.get_mut();
        tokio::time::timeout(limit, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| Failure::Temporary("write timed out".into()))??;
        Ok(())
    }

    /// Sends one command line; returns the reply's code and text.
    async fn send(&mut self, line: &str, limit: Duration) -> Result<(u16, String), Failure> {
        self.write(format!("{line}\r\n").as_bytes(), wait::GREETING)
            .await?;
        self.reply(limit)
            .await
            .map(|(code, lines)| (code, lines.join(" ")))
    }

    /// Sends a command that must get `expected`; a 5xx is a permanent failure of the whole
    /// attempt, anything else temporary.
    async fn command(
        &mut self,
        line: &str,
        expected: u16,
        limit: Duration,
    ) -> Result<Vec<String>, Failure> {
        self.write(format!("{line}\r\n").as_bytes(), wait::GREETING)
            .await?;
        self.expect(expected, limit).await
    }

    async fn expect(&mut self, expected: u16, limit: Duration) -> Result<Vec<String>, Failure> {
        let (code, lines) = self.reply(limit).await?;
        match code {
            c if c == expected => Ok(lines),
            500..=599 => Err(Failure::Permanent(format!("{code} {}", lines.join(" ")))),
            _ => Err(Failure::Temporary(format!("{code} {}", lines.join(" ")))),
        }
    }

    /// EHLO, or HELO when the server does not know EHLO (RFC 5321 §3.2); the extensions.
    async fn ehlo(&mut self, hostname: &str) -> Result<Vec<String>, Failure> {
        let (code, lines) = self.send_lines(&format!("EHLO {hostname}")).await?;
        match code {
            250 => Ok(lines.into_iter().skip(1).collect()),
            500..=599 => {
                self.command(&format!("HELO {hostname}"), 250, wait::GREETING)
                    .await?;
                Ok(Vec::new())
            }
            _ => Err(Failure::Temporary(format!("{code} {}", lines.join(" ")))),
        }
    }

    async fn send_lines(&mut self, line: &str) -> Result<(u16, Vec<String>), Failure> {
        self.write(format!("{line}\r\n").as_bytes(), wait::GREETING)
            .await?;
        self.reply(wait::GREETING).await
    }

    /// One reply, possibly multiline (RFC 5321 §4.2.1), within `limit`.
    async fn reply(&mut self, limit: Duration) -> Result<(u16, Vec<String>), Failure> {
        tokio::time::timeout(limit, self.reply_lines())
            .await
            .map_err(|_| Failure::Temporary("reply timed out".into()))?
    }

    async fn reply_lines(&mut self) -> Result<(u16, Vec<String>), Failure> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.stream.read_line(&mut line).await?;
            if n == 0 || line.len() > 4096 {
                return Err(Failure::Temporary(format!("bad reply {line:?}")));
            }
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| Failure::Temporary(format!("bad reply {line:?}")))?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").trim_end().to_string());
            if !more {
                return Ok((code, lines));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, DuplexStream};

    /// A server that answers each command line with the next reply, reads the message after
    /// a 354, and after its last reply goes silent; with `354 stall` it stops reading too.
    async fn scripted(stream: DuplexStream, replies: Vec<&'static str>) {
        let mut stream = BufReader::new(stream);
        for reply in replies {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            stream
                .write_all(format!("{reply}\r\n").as_bytes())
                .await
                .unwrap();
            if reply == "354 stall" {
                break;
            }
            if reply.starts_with("354") {
                while line != ".\r\n" {
                    line.clear();
                    stream.read_line(&mut line).await.unwrap();
                }
            }
        }
        std::future::pending::<()>().await;
    }

    /// How long `transaction` waits before it gives up on a server that stops answering
    /// after `replies`, with a connection of `capacity` bytes in flight.
    async fn gives_up_after(replies: Vec<&'static str>, capacity: usize) -> Duration {
        let (client, server) = tokio::io::duplex(capacity);
        tokio::spawn(scripted(server, replies));
        let raw = vec![b'x'; 300 * 1024];
        let recipients = ["a@remote.example".to_string()];
        let job = Attempt {
            sender: "s@local.example",
            domain: "remote.example",
            recipients: &recipients,
            raw: &raw,
        };
        let started = tokio::time::Instant::now();
        let mut conv = Conversation::new(client);
        let result = transaction(&QueueConfig::default(), &mut conv, &[], &job).await;
        assert!(matches!(result, Err(Failure::Temporary(_))), "{result:?}");
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn each_step_waits_as_long_as_rfc_5321_section_4_5_3_2_says() {
        let big = 1024 * 1024;
        assert_eq!(gives_up_after(vec![], big).await, wait::MAIL_RCPT);
        assert_eq!(gives_up_after(vec!["250 ok"], big).await, wait::MAIL_RCPT);
        let data = vec!["250 ok", "250 ok"];
        assert_eq!(gives_up_after(data, big).await, wait::DATA_INIT);
        let end = vec!["250 ok", "250 ok", "354 go on"];
        assert_eq!(gives_up_after(end, big).await, wait::DATA_END);
        // A server that stops reading: the first block that cannot be written fails.
        let stall = vec!["250 ok", "250 ok", "354 stall"];
        assert_eq!(gives_up_after(stall, 1024).await, wait::DATA_BLOCK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_greeting_is_waited_for_five_minutes() {
        let (client, _server) = tokio::io::duplex(1024);
        let started = tokio::time::Instant::now();
        let result = Conversation::new(client).expect(220, wait::GREETING).await;
        assert!(matches!(result, Err(Failure::Temporary(_))));
        assert_eq!(started.elapsed(), Duration::from_secs(300));
    }

    #[test]
    fn lines_starting_with_a_dot_are_stuffed() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n");
    }
}
