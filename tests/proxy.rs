//! Behind a load balancer (issue 14): with `[proxy] trusted`, a connection from the balancer
//! starts with a PROXY protocol v2 header, and the server sees the client it names: Python's
//! imaplib, its connection prefixed with the header as HAProxy's `send-proxy-v2` writes it,
//! logs in and fails, and the audit log names the client's address, not the balancer's. A
//! connection from the balancer without the header is closed without a greeting.

mod common;

use common::api::Api;
use common::*;
use reqwest::StatusCode;

const PROXIED_LOGIN: &str = r#"
import imaplib, socket, ssl, struct, sys
port = int(sys.argv[1])
# PROXY v2: signature, version 2 + PROXY, TCP over IPv4, 12 bytes of addresses and ports.
header = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack(">H", 12)
header += socket.inet_aton("203.0.113.7") + socket.inet_aton("127.0.0.1") + struct.pack(">HH", 40000, port)
class Proxied(imaplib.IMAP4):
    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        sock.sendall(header)
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
s = socket.create_connection(("127.0.0.1", port), 10)
s.sendall(b"a1 LOGIN contact@acme.example contact-password\r\n")
s.settimeout(15)
try:
    print("closed" if s.recv(100) == b"" else "answered")
except ConnectionResetError:  # closed with the client's line unread
    print("closed")
"#;

#[tokio::test]
async fn a_balancer_names_the_client_and_one_without_a_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    let server = start(dir.path(), "[proxy]\ntrusted = [\"127.0.0.0/8\"]\n");
    let port = server.addr("imap (STARTTLS)").port();
    let out = python(PROXIED_LOGIN, &[port.to_string()]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["refused", "closed"]
    );
    let owner = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, page) = owner
        .get(&format!("/api/v1/orgs/{}/audit?action=imap.", seeded.org))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let clients: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["client"].as_str())
        .collect();
    assert!(!clients.is_empty(), "{page}");
    assert!(clients.iter().all(|c| *c == "203.0.113.7"), "{page}");
}
