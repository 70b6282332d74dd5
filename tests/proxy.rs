//! Behind a load balancer (issue 14): with `[proxy] trusted`, a connection from the balancer
//! starts with a PROXY protocol v2 header, and the server sees the client it names. The
//! "balancer" here is Python connecting from 127.0.0.2 (the test's own requests come from
//! 127.0.0.1, a direct client): imaplib, its connection prefixed with the header as HAProxy's
//! `send-proxy-v2` writes it, fails a login, and an HTTP client creates a team through the
//! admin API; the audit log names the clients' addresses, not the balancer's. A connection
//! from the balancer without the header is closed without a greeting.

mod common;

use common::api::Api;
use common::*;
use reqwest::StatusCode;

/// The header and a connection from the balancer's address, for the scripts below.
const BALANCER: &str = r#"
import socket, struct, sys
def header(client, port):
    # PROXY v2: signature, version 2 + PROXY, TCP over IPv4, 12 bytes of addresses and ports.
    out = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack(">H", 12)
    return out + socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack(">HH", 40000, port)
def connect(port):
    return socket.create_connection(("127.0.0.1", port), 10, source_address=("127.0.0.2", 0))
"#;

const PROXIED_IMAP: &str = r#"
import imaplib, ssl
port = int(sys.argv[1])
class Proxied(imaplib.IMAP4):
    def _create_socket(self, timeout):
        sock = connect(self.port)
        sock.sendall(header("203.0.113.7", self.port))
        return sock
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = Proxied("127.0.0.1", port)
m.starttls(ssl_context=ctx)
try:
    m.login("contact@acme.example", "not-the-password")
except imaplib.IMAP4.error:
    print("refused")
m.logout()
# From the balancer without a header: closed, no greeting.
s = connect(port)
s.sendall(b"a1 LOGIN contact@acme.example contact-password\r\n")
s.settimeout(15)
try:
    print("closed" if s.recv(100) == b"" else "answered")
except ConnectionResetError:  # closed with the client's line unread
    print("closed")
"#;

const PROXIED_HTTP: &str = r#"
port, org, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = b'{"name": "Proxied"}'
request = (
    f"POST /api/v1/orgs/{org}/teams HTTP/1.1\r\nHost: mail.test\r\nAuthorization: Bearer {token}\r\n"
    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
).encode() + body
s = connect(port)
s.sendall(header("203.0.113.8", port) + request)
answer = b""
while chunk := s.recv(4096):
    answer += chunk
print(answer.split(b"\r\n")[0].decode())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balancer_names_the_client_and_one_without_a_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    let server = start(dir.path(), "[proxy]\ntrusted = [\"127.0.0.2/32\"]\n");
    let imap = server.addr("imap (STARTTLS)").port();
    let out = python(&format!("{BALANCER}{PROXIED_IMAP}"), &[imap.to_string()]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["refused", "closed"]
    );
    // A direct client (127.0.0.1) is served as it is.
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let org = seeded.org;
    let admin = server.addr("admin (HTTP)").port();
    let token = owner.token.clone().unwrap();
    let out = python(
        &format!("{BALANCER}{PROXIED_HTTP}"),
        &[admin.to_string(), org.to_string(), token],
    );
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");

    let clients = |page: &serde_json::Value| -> Vec<String> {
        let items = page["items"].as_array().unwrap();
        items
            .iter()
            .filter_map(|e| e["client"].as_str().map(str::to_string))
            .collect()
    };
    let (status, page) = owner
        .get(&format!("/api/v1/orgs/{org}/audit?action=imap."))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let imap_clients = clients(&page);
    assert!(!imap_clients.is_empty(), "{page}");
    assert!(imap_clients.iter().all(|c| c == "203.0.113.7"), "{page}");
    let (status, page) = owner
        .get(&format!("/api/v1/orgs/{org}/audit?action=team.create"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(clients(&page), ["203.0.113.8"], "{page}");
}
