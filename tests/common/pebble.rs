//! Let's Encrypt's test authority, pebble (Debian's package), for the ACME tests: it
//! validates each name over HTTP-01 on one port, resolving the names through the test's DNS
//! server; and what a client trusting only pebble's root sees on a TLS listener.

use super::{Dns, free_port, python};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running pebble and what a client needs to trust it and what it issues.
pub struct Pebble {
    child: Child,
    pub directory: String,
    /// The CA of pebble's own HTTPS certificate (made by the test).
    pub https_ca: PathBuf,
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
    pub fn start(dir: &Path, http_port: u16, dns: &Dns) -> Pebble {
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
    pub fn root(&self, path: &Path) {
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
pub struct Presented {
    /// The names it covers, sorted.
    pub names: Vec<String>,
    /// A digest of the certificate.
    pub fingerprint: String,
}

/// Connects to `port` asking for `name` (SNI; none with `None`): the certificate presented,
/// if it verifies for that name under `root` alone.
pub fn presented(port: u16, name: Option<&str>, root: &Path) -> Option<Presented> {
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
pub fn certified_names(port: u16, name: &str, root: &Path) -> Vec<String> {
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
pub fn fingerprint(port: u16, name: &str, root: &Path) -> String {
    let found = presented(port, Some(name), root);
    found
        .unwrap_or_else(|| panic!("{name} does not verify"))
        .fingerprint
}

pub fn verifies(port: u16, name: &str, root: &Path) -> bool {
    presented(port, Some(name), root).is_some()
}
