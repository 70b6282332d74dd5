//! The PROXY protocol, version 2 (HAProxy's specification): behind a load balancer, the
//! client's real address comes first on the connection, in a binary header, so that audit
//! events, the per-address connection cap and the login throttle see the client and not the
//! balancer. A connection from a configured balancer must start with the header (read within
//! a time limit), and one from anywhere else is taken as it is: a client cannot name its own
//! address. The parsing is the `ppp` crate's.

use crate::config::Network;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::Stream;

/// How long a balancer may take to send the header.
const HEADER_WITHIN: Duration = Duration::from_secs(5);
/// The fixed part of a version 2 header: the signature, version and command, family, length.
const FIXED: usize = 16;
/// The longest header taken (addresses and TLVs): balancers send a few hundred bytes at most.
const MAX_HEADER: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY header within {}s", HEADER_WITHIN.as_secs())]
    Timeout,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a PROXY protocol v2 header: {0}")]
    Invalid(String),
    #[error("a PROXY header of {0} bytes (at most {MAX_HEADER} are taken)")]
    TooLong(usize),
}

/// The address the connection from `peer` is served as: the one its header names when
/// `peer` is a trusted balancer (the balancer's own for a LOCAL header, its health checks),
/// else `peer` itself.
pub async fn client_address<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    trusted: &[Network],
) -> Result<SocketAddr, ProxyError> {
    if !trusted.iter().any(|n| n.contains(peer.ip())) {
        return Ok(peer);
    }
    match tokio::time::timeout(HEADER_WITHIN, read_header(stream)).await {
        Ok(header) => Ok(source(&header?)?.unwrap_or(peer)),
        Err(_) => Err(ProxyError::Timeout),
    }
}

/// A listener for axum (the admin API): each connection's PROXY header read, when its peer is
/// a trusted balancer, and its TLS handshake run, when the listener is a TLS one, before it is
/// handed over with the client's address. Both run per connection, concurrently, so that a
/// slow client holds up no other.
pub struct AdminListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(Stream, SocketAddr)>,
}

impl AdminListener {
    pub fn new(
        listener: TcpListener,
        trusted: Vec<Network>,
        tls: Option<TlsAcceptor>,
        shutdown: CancellationToken,
    ) -> std::io::Result<AdminListener> {
        let local = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(64);
        // Shared by the connections' tasks, not copied for each.
        let trusted: std::sync::Arc<[Network]> = trusted.into();
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = super::accept(&listener) => accepted,
                };
                let (sender, trusted, tls) = (sender.clone(), trusted.clone(), tls.clone());
                tokio::spawn(async move {
                    match admitted(tcp, peer, &trusted, tls.as_ref()).await {
                        Ok(admitted) => {
                            let _ = sender.send(admitted).await;
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "admin connection dropped"),
                    }
                });
            }
        });
        Ok(AdminListener { local, ready })
    }
}

/// The connection ready for HTTP, with its client's address.
async fn admitted(
    mut tcp: TcpStream,
    peer: SocketAddr,
    trusted: &[Network],
    tls: Option<&TlsAcceptor>,
) -> std::io::Result<(Stream, SocketAddr)> {
    let _ = tcp.set_nodelay(true);
    let client = client_address(&mut tcp, peer, trusted)
        .await
        .map_err(std::io::Error::other)?;
    let stream = match tls {
        Some(acceptor) => Stream::Plain(tcp).start_tls(acceptor).await?,
        None => Stream::Plain(tcp),
    };
    Ok((stream, client))
}

impl axum::serve::Listener for AdminListener {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Stream, SocketAddr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Exactly the header's bytes, so that what follows stays for the protocol.
async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, ProxyError> {
    let mut header = vec![0u8; FIXED];
    stream.read_exact(&mut header).await?;
    if !header.starts_with(ppp::v2::PROTOCOL_PREFIX) {
        return Err(ProxyError::Invalid("the signature is missing".into()));
    }
    let length = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if FIXED + length > MAX_HEADER {
        return Err(ProxyError::TooLong(FIXED + length));
    }
    header.resize(FIXED + length, 0);
    stream.read_exact(&mut header[FIXED..]).await?;
    Ok(header)
}

/// The source address a header names; `None` for LOCAL (the balancer's own health checks).
/// A PROXY header without an IP source is refused: served as the balancer's address, such a
/// client would be taken for a local one.
fn source(header: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    use ppp::v2::{Addresses, Command, Header};
    let parsed = Header::try_from(header).map_err(|e| ProxyError::Invalid(e.to_string()))?;
    if parsed.command == Command::Local {
        return Ok(None);
    }
    match parsed.addresses {
        Addresses::IPv4(a) => Ok(Some(SocketAddr::from((a.source_address, a.source_port)))),
        Addresses::IPv6(a) => Ok(Some(SocketAddr::from((a.source_address, a.source_port)))),
        Addresses::Unspecified | Addresses::Unix(_) => Err(ProxyError::Invalid(
            "a PROXY header without the client's IP address".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(command: &str, source: &str, destination: &str) -> Vec<u8> {
        use ppp::v2::{Builder, Command, Protocol, Version};
        let source: SocketAddr = source.parse().unwrap();
        let destination: SocketAddr = destination.parse().unwrap();
        let command = match command {
            "LOCAL" => Command::Local,
            _ => Command::Proxy,
        };
        Builder::with_addresses(
            Version::Two | command,
            Protocol::Stream,
            (source, destination),
        )
        .build()
        .unwrap()
    }

    fn trusted() -> Vec<Network> {
        vec![Network::try_from("10.0.0.0/8".to_string()).unwrap()]
    }

    /// From a balancer: the header's source, and the bytes after it left for the protocol;
    /// LOCAL keeps the balancer's address; from elsewhere nothing is read.
    #[tokio::test]
    async fn the_client_address_comes_from_a_trusted_balancer_only() {
        let balancer: SocketAddr = "10.1.2.3:40000".parse().unwrap();
        let mut bytes = header("PROXY", "203.0.113.7:4444", "10.9.9.9:993");
        bytes.extend_from_slice(b"a1 CAPABILITY\r\n");
        let mut stream = bytes.as_slice();
        let client = client_address(&mut stream, balancer, &trusted()).await;
        assert_eq!(client.unwrap(), "203.0.113.7:4444".parse().unwrap());
        assert_eq!(stream, b"a1 CAPABILITY\r\n");

        let six = header("PROXY", "[2001:db8::7]:4444", "[2001:db8::1]:993");
        let client = client_address(&mut six.as_slice(), balancer, &trusted()).await;
        assert_eq!(client.unwrap(), "[2001:db8::7]:4444".parse().unwrap());

        let local = header("LOCAL", "10.1.2.3:1", "10.9.9.9:993");
        let client = client_address(&mut local.as_slice(), balancer, &trusted()).await;
        assert_eq!(client.unwrap(), balancer);

        let direct: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let mut stream = bytes.as_slice();
        let client = client_address(&mut stream, direct, &trusted()).await;
        assert_eq!(client.unwrap(), direct);
        assert_eq!(stream.len(), bytes.len(), "nothing read");
    }

    #[tokio::test]
    async fn a_balancer_without_a_valid_header_is_refused() {
        let balancer: SocketAddr = "10.1.2.3:40000".parse().unwrap();
        let plain = b"a1 LOGIN user password\r\n".as_slice();
        let err = client_address(&mut { plain }, balancer, &trusted()).await;
        assert!(matches!(err, Err(ProxyError::Invalid(_))), "{err:?}");
        let short = b"\r\n\r\n\0\r\n".as_slice();
        let err = client_address(&mut { short }, balancer, &trusted()).await;
        assert!(matches!(err, Err(ProxyError::Io(_))), "{err:?}");
        let unix = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            ppp::v2::Unix::new([0; 108], [0; 108]),
        )
        .build()
        .unwrap();
        let err = client_address(&mut unix.as_slice(), balancer, &trusted()).await;
        assert!(matches!(err, Err(ProxyError::Invalid(_))), "{err:?}");
        let mut long = header("PROXY", "203.0.113.7:4444", "10.9.9.9:993");
        long[14..16].copy_from_slice(&60000u16.to_be_bytes());
        let err = client_address(&mut long.as_slice(), balancer, &trusted()).await;
        assert!(matches!(err, Err(ProxyError::TooLong(_))), "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_balancer_is_given_up() {
        let balancer: SocketAddr = "10.1.2.3:40000".parse().unwrap();
        let (mut silent, _other_end) = tokio::io::duplex(64);
        let err = client_address(&mut silent, balancer, &trusted()).await;
        assert!(matches!(err, Err(ProxyError::Timeout)), "{err:?}");
    }
}
