//! The SMTP client of the outbound queue: one connection per attempt, to the smarthost or
//! to the domain's MX hosts in order of preference, STARTTLS when offered.

use crate::config::SmarthostTls;
use crate::net::Services;
use base64::Engine;
use std::sync::Arc;
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

/// RFC 5321 §4.5.3.2: 5 minutes for the greeting and MAIL/RCPT replies, 2 for DATA's 354,
/// 3 per block sent, 10 for the end of data. One 5-minute limit serves all but the last.
const TIMEOUT: Duration = Duration::from_secs(300);
const DATA_END_TIMEOUT: Duration = Duration::from_secs(600);

/// Tries every host in turn until one takes the message; returns a result per recipient.
pub async fn deliver(services: &Services, job: &Attempt<'_>) -> Vec<RecipientResult> {
    let hosts = match hosts(services, job.domain).await {
        Ok(hosts) => hosts,
        Err(f) => return all(job, f),
    };
    let mut last = Failure::Temporary(format!("no host to deliver to for {}", job.domain));
    for (host, port, tls) in hosts {
        // Each step has its own limit; this only stops a host that trickles forever.
        match tokio::time::timeout(TIMEOUT * 12, session(services, &host, port, tls, job)).await {
            Ok(Ok(results)) => return results,
            Ok(Err(f @ Failure::Permanent(_))) => return all(job, f),
            Ok(Err(f)) => last = f,
            Err(_) => last = Failure::Temporary(format!("{host}: timed out")),
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

/// Where to connect: the smarthost, else the MX hosts by preference (RFC 5321 §5.1), else
/// the domain itself when it has no MX.
async fn hosts(
    services: &Services,
    domain: &str,
) -> Result<Vec<(String, u16, SmarthostTls)>, Failure> {
    let config = &services.config.queue;
    if !config.smarthost.is_empty() {
        let (host, port) = config
            .smarthost
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
            .unwrap_or((config.smarthost.clone(), 25));
        return Ok(vec![(host, port, config.smarthost_tls)]);
    }
    let resolver = hickory_resolver::TokioResolver::builder_tokio()
        .map_err(|e| Failure::Temporary(format!("DNS resolver: {e}")))?
        .build();
    match resolver.mx_lookup(domain).await {
        Ok(mx) => {
            let mut records: Vec<(u16, String)> = mx
                .iter()
                .map(|r| {
                    (
                        r.preference(),
                        r.exchange().to_utf8().trim_end_matches('.').to_string(),
                    )
                })
                .collect();
            records.sort();
            // RFC 7505: a "null MX" says the domain takes no mail.
            if records.iter().any(|(_, host)| host.is_empty()) {
                return Err(Failure::Permanent(format!(
                    "{domain} accepts no mail (null MX)"
                )));
            }
            Ok(records
                .into_iter()
                .map(|(_, h)| (h, 25, SmarthostTls::Starttls))
                .collect())
        }
        Err(e) if e.is_no_records_found() => {
            Ok(vec![(domain.to_string(), 25, SmarthostTls::Starttls)])
        }
        Err(e) => Err(Failure::Temporary(format!("DNS: {e}"))),
    }
}

async fn session(
    services: &Services,
    host: &str,
    port: u16,
    tls: SmarthostTls,
    job: &Attempt<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| Failure::Temporary(format!("{host}:{port}: connection timed out")))??;
    if tls == SmarthostTls::Implicit {
        let stream = start_tls(services, host, tcp).await?;
        return converse(services, Conversation::new(stream), true, job).await;
    }
    let mut conv = Conversation::new(tcp);
    conv.expect(220).await?;
    let ehlo = conv.ehlo(&services.config.hostname).await?;
    let offers_tls = ehlo.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS"));
    if tls != SmarthostTls::None && offers_tls {
        conv.command("STARTTLS", 220).await?;
        let stream = start_tls(services, host, conv.into_inner()).await?;
        return converse(services, Conversation::new(stream), false, job).await;
    }
    // A password goes only over TLS, unless the configuration says the smarthost has none.
    let auth = !services.config.queue.smarthost_user.is_empty();
    if auth && tls != SmarthostTls::None {
        return Err(Failure::Temporary(format!(
            "{host} offers no STARTTLS; the smarthost password is not sent in clear"
        )));
    }
    deliver_on(services, &mut conv, &ehlo, job).await
}

/// After TLS: the greeting (implicit TLS only), EHLO again, then the transaction.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    services: &Services,
    mut conv: Conversation<S>,
    greeting: bool,
    job: &Attempt<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    if greeting {
        conv.expect(220).await?;
    }
    let ehlo = conv.ehlo(&services.config.hostname).await?;
    deliver_on(services, &mut conv, &ehlo, job).await
}

async fn deliver_on<S: AsyncRead + AsyncWrite + Unpin>(
    services: &Services,
    conv: &mut Conversation<S>,
    ehlo: &[String],
    job: &Attempt<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    let config = &services.config.queue;
    if !config.smarthost.is_empty() && !config.smarthost_user.is_empty() {
        let plain = format!("\0{}\0{}", config.smarthost_user, config.smarthost_password);
        let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
        conv.command(&format!("AUTH PLAIN {encoded}"), 235).await?;
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
    conv.command(&mail, 250).await?;
    let mut results = Vec::new();
    for rcpt in job.recipients {
        let (code, text) = conv.send(&format!("RCPT TO:<{rcpt}>")).await?;
        results.push(match code {
            200..=299 => RecipientResult::Delivered,
            400..=499 => RecipientResult::Temporary(format!("{code} {text}")),
            _ => RecipientResult::Permanent(format!("{code} {text}")),
        });
    }
    if !results.contains(&RecipientResult::Delivered) {
        let _ = conv.send("QUIT").await;
        return Ok(results);
    }
    conv.command("DATA", 354).await?;
    conv.write(&dot_stuff(job.raw)).await?;
    // RFC 5321 §4.5.3.2.6: up to 10 minutes for the answer to the final dot.
    conv.write(b".\r\n").await?;
    let (code, text) = conv
        .reply_within(DATA_END_TIMEOUT)
        .await
        .map(|(code, lines)| (code, lines.join(" ")))?;
    let _ = conv.send("QUIT").await;
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
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Failure::Temporary(format!("{host}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(client_config(services));
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| Failure::Temporary(format!("{host}: TLS: {e}")))
}

/// Certificates are checked against the web's roots. For MX hosts that fails often (private
/// CAs, names that do not match), and RFC 3207 §4.1 lets a server deliver anyway rather than
/// not at all; the smarthost, which gets a password, is always checked.
fn client_config(services: &Services) -> Arc<tokio_rustls::rustls::ClientConfig> {
    use tokio_rustls::rustls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"));
    let config = if services.config.queue.smarthost.is_empty() {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Arc::new(config)
}

/// Opportunistic TLS towards MX hosts: encrypts without authenticating the peer.
#[derive(Debug)]
struct AnyCertificate(Arc<tokio_rustls::rustls::crypto::CryptoProvider>);

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error>
    {
        Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let stream = self.stream.get_mut();
        tokio::time::timeout(TIMEOUT, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| Failure::Temporary("write timed out".into()))??;
        Ok(())
    }

    /// Sends one command line; returns the reply's code and text.
    async fn send(&mut self, line: &str) -> Result<(u16, String), Failure> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.reply()
            .await
            .map(|(code, lines)| (code, lines.join(" ")))
    }

    /// Sends a command that must get `expected`; a 5xx is a permanent failure of the whole
    /// attempt, anything else temporary.
    async fn command(&mut self, line: &str, expected: u16) -> Result<Vec<String>, Failure> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.expect(expected).await
    }

    async fn expect(&mut self, expected: u16) -> Result<Vec<String>, Failure> {
        let (code, lines) = self.reply().await?;
        match code {
            c if c == expected => Ok(lines),
            500..=599 => Err(Failure::Permanent(format!("{code} {}", lines.join(" ")))),
            _ => Err(Failure::Temporary(format!("{code} {}", lines.join(" ")))),
        }
    }

    /// EHLO, or HELO when the server does not know EHLO (RFC 5321 §3.2); the extensions.
    async fn ehlo(&mut self, hostname: &str) -> Result<Vec<String>, Failure> {
        self.write(format!("EHLO {hostname}\r\n").as_bytes())
            .await?;
        let (code, lines) = self.reply().await?;
        match code {
            250 => Ok(lines.into_iter().skip(1).collect()),
            500..=599 => {
                self.command(&format!("HELO {hostname}"), 250).await?;
                Ok(Vec::new())
            }
            _ => Err(Failure::Temporary(format!("{code} {}", lines.join(" ")))),
        }
    }

    async fn reply(&mut self) -> Result<(u16, Vec<String>), Failure> {
        self.reply_within(TIMEOUT).await
    }

    /// One reply, possibly multiline (RFC 5321 §4.2.1).
    async fn reply_within(&mut self, limit: Duration) -> Result<(u16, Vec<String>), Failure> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(limit, self.stream.read_line(&mut line))
                .await
                .map_err(|_| Failure::Temporary("reply timed out".into()))??;
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

    #[test]
    fn lines_starting_with_a_dot_are_stuffed() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n");
        assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n");
    }
}
