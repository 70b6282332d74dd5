//! Certificates from an ACME authority (issue 13), judged by Let's Encrypt's test authority,
//! pebble (Debian's package): it validates each name over HTTP-01 against the admin listener,
//! resolving the names through the test's DNS server, and issues; Python's `ssl`, trusting
//! only pebble's root, then checks what each listener presents for each name (SNI).

mod common;

use common::api::Api;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running pebble and what a client needs to trust it and what it issues.
struct Pebble {
    child: Child,
    directory: String,
    /// The CA of pebble's own HTTPS certificate (made by the test).
    https_ca: PathBuf,
    management: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pebble {
    /// Starts pebble, validating HTTP-01 challenges on `http_port` of each name, as `dns`
    /// resolves it.
    fn start(dir: &Path, http_port: u16, dns: &Dns) -> Pebble {
        let https_ca = dir.join("pebble-https-ca.pem");
        let (cert, key) = (dir.join("pebble-cert.pem"), dir.join("pebble-key.pem"));
        https_certificate(&https_ca, &cert, &key);
        let (port, management) = (free_port(), free_port());
        let config = json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            // Two minutes: renewed with a third of that left, so a renewal can be watched.
            "certificateValidityPeriod": 120,
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{}", dns.server.port))
            // Validate at once rather than after a random pause of up to 15 s.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdout(Stdio::null())
            .spawn()
            .expect("pebble must be installed (.ci/run installs the Debian package)");
        let pebble = Pebble {
            child,
            directory: format!("https://localhost:{port}/dir"),
            https_ca,
            management,
        };
        pebble.wait_listening(port);
        pebble
    }

    fn wait_listening(&self, port: u16) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pebble did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The root that pebble issues under (made anew at each start), written to `path`.
    fn root(&self, path: &Path) {
        let script = r#"
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
pem = urllib.request.urlopen("https://localhost:%s/roots/0" % sys.argv[1], context=ctx).read()
open(sys.argv[3], "wb").write(pem)
"#;
        python(
            script,
            &[
                self.management.to_string(),
                self.https_ca.display().to_string(),
                path.display().to_string(),
            ],
        );
    }
}

/// A CA and, signed by it, a certificate for `localhost` and 127.0.0.1: pebble's HTTPS.
fn https_certificate(ca_path: &Path, cert_path: &Path, key_path: &Path) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "mailgate test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    std::fs::write(ca_path, ca.pem()).unwrap();
    std::fs::write(cert_path, cert.pem()).unwrap();
    std::fs::write(key_path, key.serialize_pem()).unwrap();
}

/// What a listener presents to a client that trusts `root` alone.
struct Presented {
    /// The names it covers, sorted.
    names: Vec<String>,
    /// A digest of the certificate.
    fingerprint: String,
}

/// Connects to `port` asking for `name` (SNI; none with `None`): the certificate presented,
/// if it verifies for that name under `root` alone.
fn presented(port: u16, name: Option<&str>, root: &Path) -> Option<Presented> {
    let script = r#"
import hashlib, socket, ssl, sys
port, name, root = int(sys.argv[1]), sys.argv[2] or None, sys.argv[3]
ctx = ssl.create_default_context(cafile=root)
ctx.check_hostname = name is not None
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            digest = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
            print(digest, *(v for _, v in tls.getpeercert()["subjectAltName"]))
except ssl.SSLError:
    print("unverified")
"#;
    let args = [
        port.to_string(),
        name.unwrap_or_default().to_string(),
        root.display().to_string(),
    ];
    let out = python(script, &args);
    let mut words = out.split_whitespace().map(str::to_string);
    let fingerprint = words.next().filter(|w| w != "unverified")?;
    let mut names: Vec<String> = words.collect();
    names.sort();
    Some(Presented { names, fingerprint })
}

/// The names of the certificate presented for `name`, once one verifies (within 90 s).
fn certified_names(port: u16, name: &str, root: &Path) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(found) = presented(port, Some(name), root) {
            return found.names;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no certificate for {name} under pebble's root within 90 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The digest of the certificate presented for `name`, which must verify.
fn fingerprint(port: u16, name: &str, root: &Path) -> String {
    let found = presented(port, Some(name), root);
    found
        .unwrap_or_else(|| panic!("{name} does not verify"))
        .fingerprint
}

fn verifies(port: u16, name: &str, root: &Path) -> bool {
    presented(port, Some(name), root).is_some()
}

/// The hostname's certificate and each verified domain's come from pebble over HTTP-01, for
/// the names that resolve; every TLS listener presents the right one per name; a domain added
/// while the server runs gets its own at once, and a certificate near its end is renewed,
/// without a restart; the challenges are answered by a listener of their own, which serves
/// nothing else; after a restart the stored certificates are served at once, the authority
/// gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_come_from_the_acme_authority_and_follow_new_domains() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    let dns = Dns::start(dir.path());
    // Only these resolve; autoconfig.acme.example has no address, so it is not asked for.
    for name in ["mail.test", "mail.acme.example"] {
        dns.add(&format!("{name} A 127.0.0.1"));
    }
    let challenge_port = free_port();
    let pebble = Pebble::start(dir.path(), challenge_port, &dns);
    let ephemeral = EPHEMERAL.replace(
        "[admin]\nlisten = [\"127.0.0.1:0\"]",
        "[admin]\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]",
    );
    let config = format!(
        "{ephemeral}\n[queue]\nnameservers = [\"127.0.0.1:{}\"]\n[tls.acme]\ndirectory = \"{}\"\n\
         contact = \"postmaster@acme.example\"\nca = \"{}\"\n\
         challenge_listen = [\"127.0.0.1:{challenge_port}\"]\n",
        dns.server.port,
        pebble.directory,
        pebble.https_ca.display()
    );
    let server = start_with(dir.path(), &config);
    assert_eq!(server.addr("acme-challenge (HTTP)").port(), challenge_port);
    let root = dir.path().join("pebble-root.pem");
    pebble.root(&root);
    let imaps = server.addr("imap (TLS)").port();
    let submissions = server.addr("submission (TLS)").port();

    assert_eq!(certified_names(imaps, "mail.test", &root), ["mail.test"]);
    assert_eq!(
        certified_names(submissions, "mail.acme.example", &root),
        ["mail.acme.example"]
    );
    // A client that names nothing (no SNI) gets the server's own certificate.
    let unnamed = presented(imaps, None, &root).expect("verifies");
    assert_eq!(unnamed.names, ["mail.test"]);
    assert!(!verifies(imaps, "autoconfig.acme.example", &root));
    let http = reqwest::Client::new();
    // The challenge listener answers challenges only: not the API.
    for path in [
        "/.well-known/acme-challenge/unknown",
        "/api/v1/openapi.json",
        "/healthz",
    ] {
        let answer = http
            .get(format!("http://127.0.0.1:{challenge_port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let first = fingerprint(imaps, "mail.test", &root);
    assert_eq!(fingerprint(submissions, "mail.test", &root), first);

    // A new domain, whose names resolve: its certificate follows without a restart, and the
    // STARTTLS listeners present it too.
    for name in ["mail", "autoconfig", "autodiscover"] {
        dns.add(&format!("{name}.new.example A 127.0.0.1"));
    }
    let api = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let (status, body) = api
        .post(
            &format!("/api/v1/orgs/{}/domains", seeded.org),
            json!({"name": "new.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        certified_names(imaps, "autoconfig.new.example", &root),
        [
            "autoconfig.new.example",
            "autodiscover.new.example",
            "mail.new.example"
        ]
    );
    // Thunderbird's autoconfig over HTTPS, on the admin API's TLS listener, by that name.
    let https = python(
        r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="autoconfig.new.example") as tls:
        tls.sendall(b"GET /mail/config-v1.1.xml?emailaddress=contact%40acme.example HTTP/1.1\r\n"
                    b"Host: autoconfig.new.example\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
print(answer.split(b"\r\n")[0].decode())
print("clientConfig" in answer.decode(errors="replace"))
"#,
        &[
            server.addr("admin (TLS)").port().to_string(),
            root.display().to_string(),
        ],
    );
    assert_eq!(
        https.lines().collect::<Vec<_>>(),
        ["HTTP/1.1 200 OK", "True"],
        "{https}"
    );
    let starttls = python(
        r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.host = sys.argv[2]  # the name asked for (SNI) and checked
m.starttls(ssl_context=ctx)
print(" ".join(v for _, v in m.sock.getpeercert()["subjectAltName"]))
m.logout()
"#,
        &[
            server.addr("imap (STARTTLS)").port().to_string(),
            "mail.new.example".into(),
            root.display().to_string(),
        ],
    );
    assert!(starttls.contains("mail.new.example"), "{starttls}");
    // Two minutes long, the hostname's certificate is renewed with 40 s left, by a round the
    // server schedules itself: IMAPS and submissions present the new one, without a restart.
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    let renewed = loop {
        let now = fingerprint(imaps, "mail.test", &root);
        if now != first || std::time::Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_ne!(renewed, first, "renewed without a restart");
    assert_eq!(fingerprint(submissions, "mail.test", &root), renewed);
    drop(pebble);

    // Restarted with the authority gone: the stored certificates are served at once.
    let (status, _) = server.terminate();
    assert!(status.success());
    let server = start_with(dir.path(), &config);
    let imaps = server.addr("imap (TLS)").port();
    assert!(verifies(imaps, "mail.test", &root));
    assert!(verifies(imaps, "mail.acme.example", &root));
}
