//! The SMTP client of the outbound queue: to the smarthost or to the domain's MX hosts in
//! order of preference, STARTTLS when offered, a connection kept for the host's next message
//! (`pool`).
//!
//! What a refusal means depends on when it comes. Before MAIL (greeting, EHLO, STARTTLS,
//! AUTH) it is the host's, not the message's: the next host is tried and the message kept
//! (RFC 5321 §3.1, §5.1). From MAIL on, a 5xx is the message's or the recipient's.

mod conversation;
pub(crate) use conversation::quoted_reply;
mod pool;
pub use pool::Pool;
mod route;
#[cfg(test)]
mod tests;

use crate::config::{QueueConfig, SmarthostTls};
use crate::model::DsnRequest;
use crate::services::Services;
use base64::Engine;
use conversation::{Conversation, dot_stuff};
use pool::Link;
use route::{Lookup, Route};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// What one attempt carries.
pub struct Attempt<'a> {
    pub sender: &'a str,
    pub domain: &'a str,
    pub recipients: &'a [String],
    pub raw: &'a [u8],
    /// What the sender asked to be told (RFC 3461), passed on where the host takes it.
    pub dsn: &'a DsnRequest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientResult {
    Delivered,
    /// Delivered to a host that does not take DSN requests (RFC 3461 §5.2.2): the sender,
    /// who asked to hear of the delivery, is told it was relayed, as far as we can tell.
    Relayed,
    /// 4xx, a connection failure, no host answering: tried again later.
    Temporary(String),
    /// 5xx: bounced.
    Permanent(String),
}

/// A whole-attempt failure, before recipients were answered one by one.
#[derive(Debug)]
enum Failure {
    /// Another host, or a later attempt, may do.
    Temporary(String),
    /// The message is refused, whichever host is asked.
    Permanent(String),
    /// TLS could not be set up; an MX host may still take the mail in clear.
    Tls(String),
    /// This host cannot take this message (its name has no address; SMTPUTF8, 8BITMIME);
    /// another may. Bounces when no host can.
    Unusable(String),
}

impl Failure {
    fn text(&self) -> &str {
        match self {
            Failure::Temporary(why)
            | Failure::Permanent(why)
            | Failure::Tls(why)
            | Failure::Unusable(why) => why,
        }
    }

    /// The same failure, as a verdict on the host rather than on the message.
    fn of_host(self) -> Failure {
        match self {
            Failure::Permanent(why) => Failure::Temporary(why),
            other => other,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Temporary(format!("connection: {e}"))
    }
}

/// RFC 5321 §4.5.3.2: how long the client waits at each step. Steps the RFC does not name
/// (EHLO, STARTTLS, AUTH) get the 5 minutes of the greeting.
mod wait {
    use std::time::Duration;
    /// RFC 5321 names none; Postfix's `smtp_connect_timeout`.
    pub const CONNECT: Duration = Duration::from_secs(30);
    /// §4.5.3.2.1.
    pub const GREETING: Duration = Duration::from_secs(5 * 60);
    /// §4.5.3.2.2 and §4.5.3.2.3.
    pub const MAIL_RCPT: Duration = Duration::from_secs(5 * 60);
    /// §4.5.3.2.4: the 354 after DATA.
    pub const DATA_INIT: Duration = Duration::from_secs(2 * 60);
    /// §4.5.3.2.5: each block of the message.
    pub const DATA_BLOCK: Duration = Duration::from_secs(3 * 60);
    /// §4.5.3.2.6: the reply to the final dot.
    pub const DATA_END: Duration = Duration::from_secs(10 * 60);
    /// After delivery, QUIT's answer changes nothing: not worth a long wait.
    pub const QUIT: Duration = Duration::from_secs(10);
    /// Stops hosts that answer every step just in time, forever.
    pub const WHOLE_ATTEMPT: Duration = Duration::from_secs(60 * 60);
}

/// The size of one block written under [`wait::DATA_BLOCK`].
const BLOCK: usize = 64 * 1024;

/// One host to try.
#[derive(Clone)]
struct Target {
    host: String,
    port: u16,
    tls: SmarthostTls,
    lookup: Lookup,
}

impl Target {
    fn route(&self) -> Route {
        self.lookup.route()
    }
}

/// Tries every host in turn until one takes the message; returns a result per recipient.
pub async fn deliver(services: &Services, job: &Attempt<'_>) -> Vec<RecipientResult> {
    let result = tokio::time::timeout(wait::WHOLE_ATTEMPT, try_hosts(services, job))
        .await
        .unwrap_or_else(|_| Err(Failure::Temporary("the attempt timed out".into())));
    per_recipient(result, job.recipients.len())
}

/// A whole attempt's outcome as one result per recipient.
fn per_recipient(
    result: Result<Vec<RecipientResult>, Failure>,
    recipients: usize,
) -> Vec<RecipientResult> {
    let failure = match result {
        Ok(results) => return results,
        Err(failure) => failure,
    };
    let result = match failure {
        Failure::Permanent(why) | Failure::Unusable(why) => RecipientResult::Permanent(why),
        Failure::Temporary(why) | Failure::Tls(why) => RecipientResult::Temporary(why),
    };
    vec![result; recipients]
}

/// For the fuzz target and its corpus: a conversation with a smarthost (greeting, EHLO,
/// AUTH, one message to two recipients) whose every byte is `replies`. Run on paused time,
/// every wait ends at once.
pub async fn replay(replies: Vec<u8>) -> Vec<RecipientResult> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let server_side = tokio::spawn(async move {
        let _ = server.write_all(&replies).await;
        let _ = server.shutdown().await;
        let mut drain = [0u8; 4096];
        while server.read(&mut drain).await.is_ok_and(|n| n > 0) {}
    });
    let config = QueueConfig {
        smarthost: "relay.fuzz.test".into(),
        smarthost_user: "user".into(),
        smarthost_password: "secret".into(),
        ..QueueConfig::default()
    };
    let recipients = ["a@fuzz.test".to_string(), "b@fuzz.test".to_string()];
    // A DSN request, so that a host offering DSN gets its parameters and one not offering
    // it makes relayed results.
    let dsn = DsnRequest {
        ret: Some(crate::model::DsnReturn::Full),
        envid: Some("fuzz envid".into()),
        recipients: vec![crate::model::RecipientDsn {
            address: "a@fuzz.test".into(),
            notify: Some(crate::model::Notify {
                success: true,
                ..Default::default()
            }),
            orcpt: Some("A@fuzz.test".into()),
        }],
    };
    let job = Attempt {
        sender: "sender@mailgate.test",
        domain: "fuzz.test",
        recipients: &recipients,
        raw: "Subject: fuzz\r\n\r\n.a dot\r\n8 bits: \u{e9}\r\n".as_bytes(),
        dsn: &dsn,
    };
    let mut conv = Conversation::new(client);
    let result = async {
        let ehlo = open(&mut conv, "mailgate.test", true).await?;
        transaction(&config, Route::Smarthost, &mut conv, &ehlo, &job, true).await
    }
    .await;
    server_side.abort();
    // Reaped here, not left to the runtime: nothing of one replay outlives it.
    let _ = server_side.await;
    per_recipient(result, recipients.len())
}

async fn try_hosts(
    services: &Services,
    job: &Attempt<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    let targets = route::targets(&services.config.queue, &services.dns, job.domain).await?;
    let mut last: Option<Failure> = None;
    for target in targets {
        let mut result = session(services, &target, job).await;
        if let (Route::Mx, Err(Failure::Tls(why))) = (target.route(), &result) {
            // RFC 3207 §4.1, RFC 7435: opportunistic TLS that fails is no reason not to
            // deliver; the smarthost, which gets a password, is never tried in clear.
            tracing::info!(host = %target.host, error = %why, "TLS failed; delivering without it");
            let clear = Target {
                tls: SmarthostTls::None,
                ..target.clone()
            };
            result = session(services, &clear, job).await;
        }
        match result {
            Ok(results) => return Ok(results),
            Err(f @ Failure::Permanent(_)) => return Err(f),
            Err(f) => last = Some(telling(last, f)),
        }
    }
    Err(last
        .unwrap_or_else(|| Failure::Temporary(format!("no host to deliver to for {}", job.domain))))
}

/// Which of two hosts' failures says more about the message: a host that could not be
/// reached now may take the content later, so that counts rather than another host's not
/// taking it; otherwise the latest.
fn telling(earlier: Option<Failure>, latest: Failure) -> Failure {
    match (earlier, latest) {
        (Some(f @ (Failure::Temporary(_) | Failure::Tls(_))), Failure::Unusable(_)) => f,
        (_, latest) => latest,
    }
}

async fn session(
    services: &Services,
    target: &Target,
    job: &Attempt<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    let key = pool::Key::of(target);
    if let Some(parked) = services.outbound_pool.take(&key) {
        let pool::Parked {
            mut link,
            ehlo,
            messages,
            ..
        } = parked;
        // A connection the host closed meanwhile fails its RSET: a fresh one is opened.
        if link.reset().await {
            let config = &services.config.queue;
            let result = link
                .transaction(config, target.route(), &ehlo, job, false)
                .await;
            return end(services, key, link, ehlo, messages + 1, result).await;
        }
    }
    let tcp = route::connect(target).await?;
    let hostname = &services.config.hostname;
    let config = &services.config.queue;
    if target.tls == SmarthostTls::Implicit {
        let stream = start_tls(services, target, tcp).await?;
        return fresh(services, target, key, stream, true, job).await;
    }
    let mut conv = Conversation::new(tcp).with_peer(&target.host);
    let ehlo = match open(&mut conv, hostname, true).await {
        Ok(ehlo) => ehlo,
        Err(f) => return closing(&mut conv, Err(f)).await,
    };
    if target.tls != SmarthostTls::None && offers(&ehlo, "STARTTLS") {
        if let Err(f) = conv.command("STARTTLS", 220, wait::GREETING).await {
            let refused = Failure::Tls(format!("STARTTLS refused: {}", f.text()));
            return closing(&mut conv, Err(refused)).await;
        }
        let stream = start_tls(services, target, conv.into_inner()).await?;
        // RFC 3207 §4.2: what was learnt before TLS is forgotten; EHLO again.
        return fresh(services, target, key, stream, false, job).await;
    }
    // A password goes only over TLS, unless the configuration says the smarthost has none.
    let auth = target.route() == Route::Smarthost && !config.smarthost_user.is_empty();
    if auth && target.tls != SmarthostTls::None {
        let refused = Failure::Temporary(format!(
            "{} offers no STARTTLS; the smarthost password is not sent in clear",
            target.host
        ));
        return closing(&mut conv, Err(refused)).await;
    }
    let mut link = Link::Plain(conv);
    let result = link
        .transaction(config, target.route(), &ehlo, job, true)
        .await;
    end(services, key, link, ehlo, 1, result).await
}

/// A new TLS session: the greeting (after implicit TLS), EHLO, then the message.
async fn fresh(
    services: &Services,
    target: &Target,
    key: pool::Key,
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    greeting: bool,
    job: &Attempt<'_>,
) -> Result<Vec<RecipientResult>, Failure> {
    let conv = Conversation::new(stream).with_peer(&target.host);
    let mut link = Link::Tls(Box::new(conv));
    match link.open(&services.config.hostname, greeting).await {
        Ok(ehlo) => {
            let config = &services.config.queue;
            let result = link
                .transaction(config, target.route(), &ehlo, job, true)
                .await;
            end(services, key, link, ehlo, 1, result).await
        }
        Err(f) => link.closing(Err(f)).await,
    }
}

/// After a message: a connection in step that delivered is kept for the host's next one;
/// one given up on gets its QUIT (`closing`).
async fn end(
    services: &Services,
    key: pool::Key,
    mut link: Link,
    ehlo: Vec<String>,
    messages: u32,
    result: Result<Vec<RecipientResult>, Failure>,
) -> Result<Vec<RecipientResult>, Failure> {
    if result.is_ok() && link.in_step() {
        services.outbound_pool.park(key, link, ehlo, messages).await;
        return result;
    }
    link.closing(result).await
}

/// A session of either kind, so that both are driven, kept and closed alike.
impl Link {
    fn in_step(&self) -> bool {
        match self {
            Link::Plain(conv) => conv.in_step(),
            Link::Tls(conv) => conv.in_step(),
        }
    }

    async fn open(&mut self, hostname: &str, greeting: bool) -> Result<Vec<String>, Failure> {
        match self {
            Link::Plain(conv) => open(conv, hostname, greeting).await,
            Link::Tls(conv) => open(&mut **conv, hostname, greeting).await,
        }
    }

    /// RSET answered 250: the connection still works, no transaction open.
    async fn reset(&mut self) -> bool {
        match self {
            Link::Plain(conv) => reset(conv).await,
            Link::Tls(conv) => reset(&mut **conv).await,
        }
    }

    async fn transaction(
        &mut self,
        config: &QueueConfig,
        route: Route,
        ehlo: &[String],
        job: &Attempt<'_>,
        fresh: bool,
    ) -> Result<Vec<RecipientResult>, Failure> {
        match self {
            Link::Plain(conv) => transaction(config, route, conv, ehlo, job, fresh).await,
            Link::Tls(conv) => transaction(config, route, &mut **conv, ehlo, job, fresh).await,
        }
    }

    async fn closing<T>(&mut self, result: Result<T, Failure>) -> Result<T, Failure> {
        match self {
            Link::Plain(conv) => closing(conv, result).await,
            Link::Tls(conv) => closing(&mut **conv, result).await,
        }
    }
}

/// RFC 5321 §4.1.1.10: a host given up on mid-session (a refused EHLO, MAIL or AUTH, an
/// extension missing) still gets its QUIT, as long as the connection is in step; one that
/// stopped answering does not.
async fn closing<S: AsyncRead + AsyncWrite + Unpin, T>(
    conv: &mut Conversation<S>,
    result: Result<T, Failure>,
) -> Result<T, Failure> {
    if result.is_err() && conv.in_step() {
        quit(conv).await;
    }
    result
}

/// The greeting (unless TLS just started) and EHLO; the extensions offered.
async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    conv: &mut Conversation<S>,
    hostname: &str,
    greeting: bool,
) -> Result<Vec<String>, Failure> {
    if greeting {
        conv.expect(220, wait::GREETING)
            .await
            .map_err(Failure::of_host)?;
    }
    conv.ehlo(hostname).await.map_err(Failure::of_host)
}

/// Whether EHLO offered `extension` (its first word, RFC 5321 §4.1.1.1).
fn offers(ehlo: &[String], extension: &str) -> bool {
    ehlo.iter().any(|line| {
        line.split([' ', '='])
            .next()
            .is_some_and(|word| word.eq_ignore_ascii_case(extension))
    })
}

/// Whether EHLO offered AUTH with `mechanism` (RFC 4954 §3).
fn offers_auth(ehlo: &[String], mechanism: &str) -> bool {
    ehlo.iter().any(|line| {
        let mut words = line.split([' ', '=']);
        words.next().is_some_and(|w| w.eq_ignore_ascii_case("AUTH"))
            && words.any(|w| w.eq_ignore_ascii_case(mechanism))
    })
}

/// AUTH to the smarthost when configured (on a `fresh` connection: a kept one is logged in),
/// then MAIL, RCPT and DATA. The connection is left in step for another message where it
/// can be: a transaction that ends early is reset (RSET), not quit.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    config: &QueueConfig,
    route: Route,
    conv: &mut Conversation<S>,
    ehlo: &[String],
    job: &Attempt<'_>,
    fresh: bool,
) -> Result<Vec<RecipientResult>, Failure> {
    if fresh && route == Route::Smarthost && !config.smarthost_user.is_empty() {
        authenticate(config, conv, ehlo).await?;
    }
    let utf8 = !(job.sender.is_ascii() && job.recipients.iter().all(|r| r.is_ascii()));
    let eight_bit = !job.raw.is_ascii();
    // RFC 6531 §3.4 and RFC 6152 §3: what the server cannot take is not sent (no downgrade).
    if utf8 && !offers(ehlo, "SMTPUTF8") {
        return Err(Failure::Unusable(
            "550 5.6.7 the receiving server does not take UTF-8 addresses (SMTPUTF8)".into(),
        ));
    }
    if eight_bit && !offers(ehlo, "8BITMIME") {
        return Err(Failure::Unusable(
            "554 5.6.3 the receiving server does not take 8-bit content (8BITMIME)".into(),
        ));
    }
    let dsn = offers(ehlo, "DSN").then_some(job.dsn);
    let mut mail = format!("MAIL FROM:<{}>", job.sender);
    if eight_bit {
        mail.push_str(" BODY=8BITMIME");
    }
    if utf8 {
        mail.push_str(" SMTPUTF8");
    }
    if let Some(dsn) = dsn {
        mail.push_str(&super::dsn::mail_parameters(dsn));
    }
    conv.command(&mail, 250, wait::MAIL_RCPT).await?;
    let mut results = Vec::new();
    for rcpt in job.recipients {
        let mut line = format!("RCPT TO:<{rcpt}>");
        if let Some(dsn) = dsn {
            line.push_str(&super::dsn::rcpt_parameters(dsn, rcpt));
        }
        let (code, text) = conv.send(&line, wait::MAIL_RCPT).await?;
        results.push(match code {
            200..=299 => RecipientResult::Delivered,
            _ => refusal(code, conv.said(code, &text)),
        });
    }
    if !results.contains(&RecipientResult::Delivered) {
        reset(conv).await;
        return Ok(results);
    }
    let (code, text) = conv.send("DATA", wait::DATA_INIT).await?;
    if code != 354 {
        reset(conv).await;
        return Ok(settle(results, refusal(code, conv.said(code, &text))));
    }
    for block in dot_stuff(job.raw).chunks(BLOCK) {
        conv.write(block, wait::DATA_BLOCK).await?;
    }
    conv.write(b".\r\n", wait::DATA_BLOCK).await?;
    let (code, lines) = match conv.reply(wait::DATA_END).await {
        Ok(reply) => reply,
        // The whole message went out and no answer came: the host may have it. Those RCPT
        // accepted are tried again later, never at once elsewhere (RFC 5321 §4.5.3.2.6 and
        // §6.1: better late than twice); those refused keep their answer.
        Err(f) => {
            let why = format!("no answer after the message: {}", f.text());
            return Ok(settle(results, RecipientResult::Temporary(why)));
        }
    };
    Ok(match code {
        200..=299 if dsn.is_none() => relayed(results, job),
        200..=299 => results,
        _ => settle(results, refusal(code, conv.said(code, &lines.join(" ")))),
    })
}

/// Deliveries to a host without DSN, of recipients whose sender asked to hear of them.
fn relayed(results: Vec<RecipientResult>, job: &Attempt<'_>) -> Vec<RecipientResult> {
    results
        .into_iter()
        .zip(job.recipients)
        .map(|(result, rcpt)| match result {
            RecipientResult::Delivered if job.dsn.wants_success(rcpt) => RecipientResult::Relayed,
            other => other,
        })
        .collect()
}

/// AUTH PLAIN (RFC 4954, RFC 4616). A refusal is the smarthost's (a password changed on one
/// side): the mail waits until it is fixed or the queue gives up, like Postfix's
/// `smtp_sasl_auth_soft_bounce`.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    config: &QueueConfig,
    conv: &mut Conversation<S>,
    ehlo: &[String],
) -> Result<(), Failure> {
    if !offers_auth(ehlo, "PLAIN") {
        return Err(Failure::Temporary(
            "the smarthost offers no AUTH PLAIN for the configured user".into(),
        ));
    }
    let plain = format!("\0{}\0{}", config.smarthost_user, config.smarthost_password);
    let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
    conv.command(&format!("AUTH PLAIN {encoded}"), 235, wait::GREETING)
        .await
        .map_err(Failure::of_host)?;
    Ok(())
}

/// A reply that is not a success (`said`: as the reason quotes it): 5xx for good, anything
/// else for now.
fn refusal(code: u16, said: String) -> RecipientResult {
    match code {
        500..=599 => RecipientResult::Permanent(said),
        _ => RecipientResult::Temporary(said),
    }
}

/// The message as a whole was refused: every recipient RCPT accepted shares that fate; the
/// others keep their own.
fn settle(results: Vec<RecipientResult>, whole: RecipientResult) -> Vec<RecipientResult> {
    results
        .into_iter()
        .map(|r| match r {
            RecipientResult::Delivered => whole.clone(),
            other => other,
        })
        .collect()
}

async fn quit<S: AsyncRead + AsyncWrite + Unpin>(conv: &mut Conversation<S>) {
    let _ = tokio::time::timeout(wait::QUIT, conv.send("QUIT", wait::QUIT)).await;
}

/// RSET (RFC 5321 §4.1.1.5): the open transaction dropped, the connection checked. A reply
/// other than 250 leaves the connection out of step, so that it is not kept.
async fn reset<S: AsyncRead + AsyncWrite + Unpin>(conv: &mut Conversation<S>) -> bool {
    let ok = matches!(conv.send("RSET", wait::QUIT).await, Ok((250, _)));
    if !ok {
        conv.lose_step();
    }
    ok
}

async fn start_tls(
    services: &Services,
    target: &Target,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    let host = &target.host;
    let name = rustls_pki_types::ServerName::try_from(host.clone())
        .map_err(|e| Failure::Tls(format!("{host}: {e}")))?;
    let config = match target.route() {
        Route::Smarthost => services.outbound_tls.smarthost.clone(),
        Route::Mx => services.outbound_tls.mx.clone(),
    };
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    match tokio::time::timeout(wait::GREETING, handshake).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(Failure::Tls(format!("{host}: TLS: {e}"))),
        Err(_) => Err(Failure::Tls(format!("{host}: TLS handshake timed out"))),
    }
}
