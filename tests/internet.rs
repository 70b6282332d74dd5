//! Ready for the Internet (issue 13), judged by tools we did not write: submitted mail carries
//! DKIM signatures (Ed25519 and RSA) that dkimpy verifies, with the public keys the admin API
//! hands out served by a DNS server (dnspython); keys rotate through the API.

mod common;

use common::api::Api;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Verifies every `DKIM-Signature:` of the message in the file given with dkimpy, the keys
/// asked of the DNS server on the port given; one line per signature: selector, algorithm,
/// pass or fail.
const DKIM_VERIFY: &str = r#"
import sys, dkim, dns.resolver
path, port = sys.argv[1], int(sys.argv[2])
message = open(path, "rb").read()
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = port
def txt(name, timeout=5):
    answer = resolver.resolve(name.decode().rstrip("."), "TXT", tcp=True)
    return b"".join(answer[0].strings)
headers, _ = dkim.rfc822_parse(message)
signatures = [v for k, v in headers if k.lower() == b"dkim-signature"]
verifier = dkim.DKIM(message)
for i, sig in enumerate(signatures):
    tags = dict(t.strip().split(b"=", 1) for t in sig.replace(b"\r\n", b"").split(b";") if b"=" in t)
    ok = verifier.verify(idx=i, dnsfunc=txt)
    print(tags[b"s"].decode().strip(), tags[b"a"].decode().strip(), "pass" if ok else "fail")
"#;

/// dkimpy's verdict on each signature of the message in `path`: (selector, algorithm,
/// pass/fail).
fn dkim_verify(dns: &Dns, path: &Path) -> Vec<(String, String, String)> {
    let out = python(
        DKIM_VERIFY,
        &[path.display().to_string(), dns.server.port.to_string()],
    );
    out.lines()
        .map(|line| {
            let mut parts = line.split(' ').map(str::to_string);
            let mut next = || parts.next().unwrap_or_default();
            (next(), next(), next())
        })
        .collect()
}

/// Submits `message` from contact@ to `recipients` over implicit TLS.
fn submit(server: &TestServer, message: &str, recipients: &[&str]) {
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL(sys.argv[1], int(sys.argv[2]), context=ctx)
s.login("contact@acme.example", "contact-password")
s.sendmail("contact@acme.example", sys.argv[4:], sys.argv[3].encode())
s.quit()
"#;
    let mut args = vec![
        "127.0.0.1".to_string(),
        server.addr("submission (TLS)").port().to_string(),
        message.replace('\n', "\r\n"),
    ];
    args.extend(recipients.iter().map(|r| r.to_string()));
    python(script, &args);
}

/// The INBOX message of contact@ whose subject is `subject`, as fetched over IMAP, written to
/// `path`.
fn fetch_local_copy(server: &TestServer, subject: &str, path: &Path) {
    let script = format!(
        r#"
m = tls()
ok(m.login("contact@acme.example", "contact-password"))
ok(m.select("INBOX"))
ids = ok(m.search(None, "SUBJECT", "{subject}"))[0].split()
assert len(ids) == 1, ids
data = ok(m.fetch(ids[0], "(BODY.PEEK[])"))
open({path:?}, "wb").write(data[0][1])
m.logout()
"#,
        path = path.display().to_string()
    );
    let out = imap_script(server, "imap (TLS)", &script);
    assert!(out.trim().is_empty(), "{out}");
}

/// The file's text once it holds `needle`; fails after 60 seconds.
fn wait_for(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "never got {needle:?}: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The relayed message (the only one the test sends out), written to `path`.
fn relayed_copy(sink_log: &Path, subject: &str, path: &Path) {
    let text = wait_for(sink_log, &format!("Subject: {subject}\r\n"));
    // The sink keeps the transparency dots (RFC 5321 §4.5.2); a receiving server removes them.
    std::fs::write(path, text.replace("\r\n..", "\r\n.")).unwrap();
}

const KEYS: &str = "/domains/acme.example/dkim";

async fn keys(api: &Api, org: u64) -> Value {
    let (status, body) = api.get(&format!("/api/v1/orgs/{org}{KEYS}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].clone()
}

fn active(keys: &Value) -> Vec<(String, String)> {
    keys.as_array()
        .unwrap()
        .iter()
        .filter(|k| k["state"] == "active")
        .map(|k| {
            let s = |f: &str| k[f].as_str().unwrap().to_string();
            (s("selector"), s("algorithm"))
        })
        .collect()
}

fn message(subject: &str) -> String {
    format!(
        "From: Contact <contact@acme.example>\nTo: contact@acme.example, far@away.example\n\
         Subject: {subject}\nDate: Wed, 02 Dec 2026 10:00:00 +0000\n\
         Message-ID: <{subject}@acme.example>\n\nHello,\n\n  a line with  spaces \n.starts with a dot\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_mail_is_signed_with_ed25519_and_rsa_and_dkimpy_verifies_both_copies() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    let dns = Dns::start(dir.path());
    let relayed_log = dir.path().join("relayed.eml");
    let smarthost = sink(ACCEPTING_SINK, &relayed_log);
    let server = start(dir.path(), &smarthost.queue_config());
    let api = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let keys = keys(&api, seeded.org).await;
    let mut signing = active(&keys);
    signing.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        signing.iter().map(|k| k.1.as_str()).collect::<Vec<_>>(),
        ["ed25519", "rsa"],
        "{keys}"
    );
    for key in keys.as_array().unwrap() {
        let name = key["dns_name"].as_str().unwrap();
        assert!(name.ends_with("._domainkey.acme.example"), "{key}");
        assert!(key.get("private_der").is_none(), "{key}");
    }
    dns.publish(&keys);

    submit(&server, &message("signed"), &[CONTACT, "far@away.example"]);
    let local = dir.path().join("local.eml");
    fetch_local_copy(&server, "signed", &local);
    let relayed = dir.path().join("relayed-one.eml");
    relayed_copy(&relayed_log, "signed", &relayed);
    let expected: Vec<(String, String, String)> = signing
        .iter()
        .map(|(selector, algorithm)| {
            let a = if algorithm == "rsa" {
                "rsa-sha256"
            } else {
                "ed25519-sha256"
            };
            (selector.clone(), a.to_string(), "pass".to_string())
        })
        .collect();
    for copy in [&local, &relayed] {
        let mut verdicts = dkim_verify(&dns, copy);
        verdicts.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            verdicts,
            expected,
            "{}",
            std::fs::read_to_string(copy).unwrap()
        );
    }

    // The verifier can fail: a changed subject breaks both signatures.
    let text = std::fs::read_to_string(&local).unwrap();
    let tampered = dir.path().join("tampered.eml");
    std::fs::write(
        &tampered,
        text.replace("Subject: signed", "Subject: changed"),
    )
    .unwrap();
    let verdicts = dkim_verify(&dns, &tampered);
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert!(verdicts.iter().all(|v| v.2 == "fail"), "{verdicts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_keys_rotate_published_first_then_active_then_retired() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    seed_beta(dir.path());
    let dns = Dns::start(dir.path());
    let relayed_log = dir.path().join("relayed.eml");
    let smarthost = sink(ACCEPTING_SINK, &relayed_log);
    let server = start(dir.path(), &smarthost.queue_config());
    let api = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let org = seeded.org;
    let old = active(&keys(&api, org).await);

    // A new pair: published first, signing nothing yet.
    let (status, body) = api
        .post(&format!("/api/v1/orgs/{org}{KEYS}"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new = body["keys"].clone();
    assert_eq!(new.as_array().unwrap().len(), 2, "{new}");
    assert!(
        new.as_array().unwrap().iter().all(|k| k["state"] == "next"),
        "{new}"
    );
    dns.publish(&keys(&api, org).await);
    submit(&server, &message("before"), &[CONTACT]);
    let copy = dir.path().join("before.eml");
    fetch_local_copy(&server, "before", &copy);
    let signed_by: Vec<String> = dkim_verify(&dns, &copy).into_iter().map(|v| v.0).collect();
    let old_selectors: Vec<String> = old.iter().map(|k| k.0.clone()).collect();
    assert_eq!(signed_by.len(), 2);
    assert!(
        signed_by.iter().all(|s| old_selectors.contains(s)),
        "{signed_by:?}"
    );

    // The new Ed25519 key signs; the old one retires, the RSA rotation is its own.
    let new_ed = new
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["algorithm"] == "ed25519")
        .unwrap()["selector"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = api
        .post(
            &format!("/api/v1/orgs/{org}{KEYS}/{new_ed}/activate"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let state = |keys: &Value, selector: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["selector"] == selector)
            .map(|k| k["state"].as_str().unwrap().to_string())
    };
    let old_ed = &old.iter().find(|k| k.1 == "ed25519").unwrap().0;
    assert_eq!(state(&body["keys"], &new_ed).as_deref(), Some("active"));
    assert_eq!(state(&body["keys"], old_ed).as_deref(), Some("retiring"));
    submit(&server, &message("after"), &[CONTACT]);
    let copy = dir.path().join("after.eml");
    fetch_local_copy(&server, "after", &copy);
    let verdicts = dkim_verify(&dns, &copy);
    assert!(verdicts.iter().all(|v| v.2 == "pass"), "{verdicts:?}");
    let signed_by: Vec<&str> = verdicts.iter().map(|v| v.0.as_str()).collect();
    assert!(signed_by.contains(&new_ed.as_str()), "{signed_by:?}");
    assert!(!signed_by.contains(&old_ed.as_str()), "{signed_by:?}");

    // The key that signs cannot go; the retiring one can.
    let path = |selector: &str| format!("/api/v1/orgs/{org}{KEYS}/{selector}");
    let (status, body) = api.call(Method::DELETE, &path(&new_ed), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("signs"),
        "{body}"
    );
    let (status, body) = api.call(Method::DELETE, &path(old_ed), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(state(&keys(&api, org).await, old_ed), None);
    let (status, _) = api.call(Method::DELETE, &path("nosuch"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A collaborator sees nothing to rotate; another organization's domain is unknown here.
    let lucie = Api::login(&server, LUCIE, LUCIE_PASSWORD).await;
    let (status, body) = lucie
        .post(&format!("/api/v1/orgs/{org}{KEYS}"), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = api
        .get(&format!("/api/v1/orgs/{org}/domains/beta.example/dkim"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// Sends mail from other "Internet" domains to contact@ on the inbound listener, each
/// domain's SPF, DKIM and DMARC records in the test's DNS (DKIM signatures made by dkimpy with
/// a key from openssl), then reads where each message landed and its
/// `Authentication-Results:`. Prints one line per message: subject, folder, the field.
const INBOUND: &str = r#"
import base64, imaplib, smtplib, ssl, subprocess, sys, dkim
host, smtp_port, imap_port, zone, workdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
key = f"{workdir}/signer.pem"
subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
der = subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
public = base64.b64encode(der).decode()
records = [
    "pass.test TXT v=spf1 ip4:127.0.0.1 -all",
    "_dmarc.pass.test TXT v=DMARC1; p=reject",
    "fail.test TXT v=spf1 -all",
    "soft.test TXT v=spf1 ~all",
    "_dmarc.soft.test TXT v=DMARC1; p=quarantine",
    "reject.test TXT v=spf1 -all",
    "_dmarc.reject.test TXT v=DMARC1; p=reject",
    "temp.test SERVFAIL",
    "signer.test TXT v=spf1 -all",
    "_dmarc.signer.test TXT v=DMARC1; p=reject",
    f"s1._domainkey.signer.test TXT v=DKIM1; k=rsa; p={public}",
    "tampered.test TXT v=spf1 -all",
    "_dmarc.tampered.test TXT v=DMARC1; p=quarantine",
    f"s1._domainkey.tampered.test TXT v=DKIM1; k=rsa; p={public}",
    "sealer.test TXT v=spf1 -all",
    f"s1._domainkey.sealer.test TXT v=DKIM1; k=rsa; p={public}",
]
open(zone, "a").write("\n".join(records) + "\n")

def message(domain, subject, extra=b""):
    return (f"From: someone@{domain}\r\nTo: contact@acme.example\r\nSubject: {subject}\r\n"
            "Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject}@{domain}>\r\n").encode() + extra + b"\r\nHello from the Internet.\r\n"

def signed(domain, subject):
    raw = message(domain, subject)
    return dkim.sign(raw, b"s1", domain.encode(), open(key, "rb").read(),
                     include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + raw

def sealed(domain, subject):
    # As a forwarder (a mailing list) passes it on: its own verdict, sealed with ARC.
    raw = message(domain, subject, f"Authentication-Results: mx.{domain}; spf=pass smtp.mailfrom=a@origin.test\r\n".encode())
    return b"".join(dkim.arc_sign(raw, b"s1", domain.encode(), open(key, "rb").read(), f"mx.{domain}".encode())) + raw

def send(domain, raw, refused=None):
    s = smtplib.SMTP(host, smtp_port)
    s.ehlo(f"mx.{domain}")
    try:
        s.sendmail(f"bounces@{domain}", ["contact@acme.example"], raw)
        assert refused is None, ("accepted", domain)
    except smtplib.SMTPDataError as e:
        assert refused is not None and e.smtp_code == refused, (domain, e.smtp_code, e.smtp_error)
        print("refused", domain, e.smtp_code, e.smtp_error.decode().replace("\n", " "))
    s.quit()

forged = b"Authentication-Results: mail.test; dkim=pass header.d=pass.test\r\nAuthentication-Results: other.example; spf=pass\r\n"
send("pass.test", message("pass.test", "spf-pass", forged))
send("fail.test", message("fail.test", "spf-fail"))
send("soft.test", message("soft.test", "spf-softfail"))
send("temp.test", message("temp.test", "spf-temperror"))
send("reject.test", message("reject.test", "dmarc-reject"), refused=550)
send("signer.test", signed("signer.test", "dkim-pass"))
# A signed field changed on the way: the signature fails (a changed body would be "neutral",
# the body hash not matching).
send("tampered.test", signed("tampered.test", "dkim-fail").replace(b"10:00:00", b"10:00:01"))
send("sealer.test", sealed("sealer.test", "arc-pass"))

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(host, imap_port, ssl_context=ctx)
m.login("contact@acme.example", "contact-password")
for folder in ["INBOX", "Junk"]:
    typ, _ = m.select(folder)
    if typ != "OK":
        continue
    typ, data = m.search(None, "ALL")
    for n in data[0].split():
        typ, data = m.fetch(n, "(BODY.PEEK[HEADER])")
        header = data[0][1].decode()
        fields = header.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n")
        subject = next(f[9:] for f in fields if f.startswith("Subject: "))
        results = [f for f in fields if f.lower().startswith("authentication-results:")]
        print(subject, folder, " | ".join(results))
m.logout()
"#;

#[test]
fn inbound_mail_is_judged_by_spf_dkim_arc_and_dmarc_and_filed_as_its_domain_asks() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let dns = Dns::start(dir.path());
    let config = format!(
        "[queue]\nnameservers = [\"127.0.0.1:{}\"]\n[inbound]\ntrusted_networks = []\n",
        dns.server.port
    );
    let server = start(dir.path(), &config);
    let out = python(
        INBOUND,
        &[
            "127.0.0.1".to_string(),
            server.addr("smtp (STARTTLS)").port().to_string(),
            server.addr("imap (TLS)").port().to_string(),
            dns.zone.display().to_string(),
            dir.path().display().to_string(),
        ],
    );
    let line = |subject: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{subject} ")))
            .unwrap_or_else(|| panic!("no {subject} in {out}"))
            .to_string()
    };
    let landed = |subject: &str, folder: &str, verdicts: &[&str]| {
        let line = line(subject);
        assert!(
            line.starts_with(&format!(
                "{subject} {folder} Authentication-Results: mail.test;"
            )),
            "{line}"
        );
        for verdict in verdicts {
            assert!(line.contains(verdict), "{verdict} not in {line}");
        }
    };
    landed(
        "spf-pass",
        "INBOX",
        &["spf=pass", "smtp.mailfrom=bounces@pass.test", "dmarc=pass"],
    );
    // The sender's field claiming to be ours is gone; another server's stays.
    let pass = line("spf-pass");
    assert_eq!(
        pass.matches("Authentication-Results: mail.test").count(),
        1,
        "{pass}"
    );
    assert!(!pass.contains("header.d=pass.test"), "{pass}");
    assert!(
        pass.contains("Authentication-Results: other.example; spf=pass"),
        "{pass}"
    );
    landed("spf-fail", "INBOX", &["spf=fail", "dmarc=none"]);
    landed(
        "spf-softfail",
        "Junk",
        &["spf=softfail", "dmarc=fail", "policy.dmarc=quarantine"],
    );
    landed(
        "spf-temperror",
        "INBOX",
        &["spf=temperror", "dmarc=temperror"],
    );
    landed(
        "dkim-pass",
        "INBOX",
        &[
            "spf=fail",
            "dkim=pass header.i=@signer.test header.s=s1",
            "dmarc=pass",
        ],
    );
    landed(
        "dkim-fail",
        "Junk",
        &["dkim=fail", "dmarc=fail", "policy.dmarc=quarantine"],
    );
    // RFC 8617: the chain of custody a forwarder sealed is verified and reported.
    landed("arc-pass", "INBOX", &["arc=pass"]);
    assert!(
        out.contains("refused reject.test 550 5.7.1 reject.test asks"),
        "{out}"
    );
    assert!(
        !out.contains("dmarc-reject INBOX") && !out.contains("dmarc-reject Junk"),
        "{out}"
    );
}

/// Test rules for the real rspamd: a subject decides the score, so that each of its actions
/// can be met. The thresholds (`local.d/actions.conf` below: greylist 4, add header 8,
/// rewrite subject 12) leave 3 points of margin around each rule for the distribution's own
/// rules, whose score for a clean message varies with the machine and the clock (1.3 on CI).
const RSPAMD_RULES: &str = r#"
local function subject_has(text)
  return function(task)
    local subject = task:get_subject() or ''
    return subject:find(text, 1, true) ~= nil
  end
end
rspamd_config:register_symbol({ name = 'MAILGATE_TEST_DEFER', score = 5.0, callback = subject_has('try me later') })
rspamd_config:register_symbol({ name = 'MAILGATE_TEST_JUNK', score = 9.0, callback = subject_has('cheap watches') })
rspamd_config:register_symbol({ name = 'MAILGATE_TEST_REWRITE', score = 13.0, callback = subject_has('miracle pills') })
"#;

/// A real rspamd (Debian's package, installed by `.ci/run`) with the distribution's
/// configuration, its normal worker alone on a port of its own, its state in `dir`.
struct Rspamd {
    child: std::process::Child,
    port: u16,
}

impl Rspamd {
    fn start(dir: &Path) -> Rspamd {
        let conf = dir.join("rspamd");
        for sub in ["local.d", "override.d", "db", "run", "log"] {
            std::fs::create_dir_all(conf.join(sub)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let write = |name: &str, text: &str| std::fs::write(conf.join(name), text).unwrap();
        write(
            "override.d/worker-normal.inc",
            &format!("bind_socket = \"127.0.0.1:{port}\";\ncount = 1;\n"),
        );
        for off in [
            "worker-controller.inc",
            "worker-proxy.inc",
            "worker-fuzzy.inc",
        ] {
            write(&format!("override.d/{off}"), "enabled = false;\n");
        }
        write(
            "local.d/logging.inc",
            "type = \"console\";\nlevel = \"error\";\n",
        );
        write(
            "local.d/actions.conf",
            "greylist = 4;\nadd_header = 8;\nrewrite_subject = 12;\nreject = 50;\n\
             subject = \"*** SPAM *** %s\";\n",
        );
        write("rspamd.local.lua", RSPAMD_RULES);
        let var = |name: &str, sub: &str| format!("{name}={}", conf.join(sub).display());
        let child = std::process::Command::new("rspamd")
            .args(["-f", "-i", "-c", "/etc/rspamd/rspamd.conf"])
            .args(["--var", &var("LOCAL_CONFDIR", "")])
            .args(["--var", &var("DBDIR", "db")])
            .args(["--var", &var("RUNDIR", "run")])
            .args(["--var", &var("LOGDIR", "log")])
            .arg("-p")
            .arg(conf.join("run/rspamd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(conf.join("log/stderr.log")).unwrap())
            .spawn()
            .expect("rspamd must be installed (.ci/run installs Debian's rspamd)");
        let rspamd = Rspamd { child, port };
        // It compiles its rules first: give it time.
        let deadline = Instant::now() + Duration::from_secs(180);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rspamd never listened on {port}");
            std::thread::sleep(Duration::from_millis(200));
        }
        rspamd
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        // SIGTERM: its main process then stops its workers.
        signal(self.child.id() as i32, "TERM");
        let _ = wait_with_timeout(&mut self.child, Duration::from_secs(20));
    }
}

/// Sends each message (subject, body) to contact@ on the inbound listener and prints its
/// SMTP answer; then prints, for each message delivered, its subject, folder and
/// `X-Spam-Status:`.
const SPAM_ROUND: &str = r#"
import email.utils, imaplib, smtplib, ssl, sys
host, smtp_port, imap_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
messages = [a.split("|", 1) for a in sys.argv[4:]]
for subject, body in messages:
    raw = (f"From: someone@outside.test\r\nTo: contact@acme.example\r\nSubject: {subject}\r\n"
           f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{abs(hash(subject))}@outside.test>\r\n"
           f"X-Spam-Status: No, forged by the sender\r\n\r\n{body}\r\n").encode()
    s = smtplib.SMTP(host, smtp_port)
    s.ehlo("mx.outside.test")
    try:
        s.sendmail("bounces@outside.test", ["contact@acme.example"], raw)
        print("answer", subject, "250")
    except smtplib.SMTPDataError as e:
        print("answer", subject, e.smtp_code, e.smtp_error.decode())
    s.quit()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(host, imap_port, ssl_context=ctx)
m.login("contact@acme.example", "contact-password")
for folder in ["INBOX", "Junk"]:
    m.select(folder)
    for n in m.search(None, "ALL")[1][0].split():
        header = m.fetch(n, "(BODY.PEEK[HEADER])")[1][0][1].decode()
        fields = header.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n")
        subject = next(f[9:] for f in fields if f.startswith("Subject: "))
        status = [f for f in fields if f.lower().startswith("x-spam-status:")]
        print("landed", folder, subject, "|", " | ".join(status))
m.logout()
"#;

fn spam_round(server: &TestServer, messages: &[&str]) -> String {
    let mut args = vec![
        "127.0.0.1".to_string(),
        server.addr("smtp (STARTTLS)").port().to_string(),
        server.addr("imap (TLS)").port().to_string(),
    ];
    args.extend(messages.iter().map(|m| m.to_string()));
    python(SPAM_ROUND, &args)
}

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

#[test]
fn a_real_rspamd_refuses_gtube_junks_spam_and_passes_clean_mail() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "lr");
    let dns = Dns::start(dir.path());
    let rspamd = Rspamd::start(dir.path());
    let config = format!(
        "[queue]\nnameservers = [\"127.0.0.1:{}\"]\n[inbound]\ntrusted_networks = []\n\
         [filter]\nrspamd = \"http://127.0.0.1:{}\"\n",
        dns.server.port, rspamd.port
    );
    let server = start(dir.path(), &config);
    let gtube = format!("gtube|{GTUBE}");
    let out = spam_round(
        &server,
        &[
            "lunch tomorrow|Shall we have lunch tomorrow?",
            &gtube,
            "cheap watches|Buy now.",
            "miracle pills|Buy now.",
            "try me later|Hello.",
        ],
    );
    let has = |needle: &str| assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    has("answer gtube 550 5.7.1 The message was judged spam: Gtube pattern");
    has("answer try me later 451 4.7.1");
    has("landed INBOX lunch tomorrow | X-Spam-Status: No, score=");
    has("landed Junk cheap watches | X-Spam-Status: Yes, score=");
    has("action=add header");
    has("landed Junk *** SPAM *** miracle pills | X-Spam-Status: Yes");
    assert!(!out.contains("forged by the sender"), "{out}");
    assert!(
        !out.contains("landed INBOX gtube") && !out.contains("landed Junk gtube"),
        "{out}"
    );
    assert_eq!(out.matches("landed").count(), 3, "{out}");
}

#[test]
fn an_unreachable_filter_accepts_unchecked_or_defers_as_configured() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (mode, expect) in [
        ("accept", "answer hello 250"),
        ("defer", "answer hello 451 4.7.1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path(), "lr");
        let config = format!(
            "[inbound]\nchecks = false\ntrusted_networks = []\n\
             [filter]\nrspamd = \"http://127.0.0.1:{closed}\"\nunreachable = \"{mode}\"\n"
        );
        let server = start(dir.path(), &config);
        let out = spam_round(&server, &["hello|Hello."]);
        assert!(out.contains(expect), "{mode}: {out}");
        if mode == "accept" {
            assert!(
                out.contains("landed INBOX hello | X-Spam-Status: unchecked"),
                "{out}"
            );
        } else {
            assert!(!out.contains("landed"), "{out}");
        }
    }
}

/// Sends one message on the listener `kind` ("smtp (STARTTLS)" from outside, or submission
/// as `login`) and prints the answer: `250`, or the refusing command's code and text.
const ONE_MESSAGE: &str = r#"
import smtplib, ssl, sys
host, port, sender, rcpt, login, password = sys.argv[1:7]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, int(port))
s.ehlo("client.outside.test")
if login:
    s.starttls(context=ctx)
    s.login(login, password)
raw = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: hello\r\n\r\nHello.\r\n".encode()
try:
    s.sendmail(sender, [rcpt], raw)
    print("250")
except smtplib.SMTPRecipientsRefused as e:
    code, text = list(e.recipients.values())[0]
    print(code, text.decode())
except smtplib.SMTPResponseException as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
"#;

fn one_message(
    server: &TestServer,
    kind: &str,
    from: &str,
    to: &str,
    login: (&str, &str),
) -> String {
    let args = [
        "127.0.0.1".to_string(),
        server.addr(kind).port().to_string(),
        from.to_string(),
        to.to_string(),
        login.0.to_string(),
        login.1.to_string(),
    ];
    python(ONE_MESSAGE, &args).trim().to_string()
}

/// The answers to a message from outside to box@new.example (port 25), and to one that
/// box@new.example submits to contact@.
fn to_and_from_new_domain(server: &TestServer) -> (String, String) {
    let inbound = one_message(
        server,
        "smtp (STARTTLS)",
        "a@outside.test",
        "box@new.example",
        ("", ""),
    );
    let submitted = one_message(
        server,
        "submission (STARTTLS)",
        "box@new.example",
        "contact@acme.example",
        ("box@new.example", "box-password-1"),
    );
    (inbound, submitted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_domain_shows_its_dns_records_and_takes_mail_once_its_token_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    seed_beta(dir.path());
    let dns = Dns::start(dir.path());
    let config = format!(
        "{}\n[queue]\nnameservers = [\"127.0.0.1:{}\"]\n",
        EPHEMERAL.replace("verify_domains = false", "verify_domains = true"),
        dns.server.port
    );
    let server = start_with(dir.path(), &config);
    let api = Api::login(&server, OWNER, OWNER_PASSWORD).await;
    let org = seeded.org;
    let (status, domain) = api
        .post(
            &format!("/api/v1/orgs/{org}/domains"),
            json!({"name": "new.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{domain}");
    assert_eq!(domain["verified"], false, "{domain}");
    let token_name = domain["verification"]["name"].as_str().unwrap().to_string();
    let token_value = domain["verification"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(token_name, "_mailgate.new.example");
    let (status, mailbox) = api
        .post(
            &format!("/api/v1/orgs/{org}/mailboxes"),
            json!({"address": "box@new.example", "password": "box-password-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mailbox}");

    // Unverified, the domain is not this server's for mail: no relay to it, no sending as it.
    let (inbound, submitted) = to_and_from_new_domain(&server);
    assert!(
        inbound.starts_with("554 5.7.1") && inbound.contains("relay"),
        "{inbound}"
    );
    assert!(
        submitted.starts_with("550") && submitted.contains("not verified"),
        "{submitted}"
    );

    // Some records published, some wrong, some missing.
    let dkim: Value = keys_of(&api, org, "new.example").await;
    let rsa = dkim
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["algorithm"] == "rsa")
        .unwrap();
    dns.add("new.example MX 10 mail.test.");
    dns.add("new.example TXT v=spf1 -all");
    dns.add("new.example TXT google-site-verification=abc");
    dns.add(&format!(
        "{} TXT {}",
        rsa["dns_name"].as_str().unwrap(),
        rsa["dns_value"].as_str().unwrap()
    ));
    let path = format!("/api/v1/orgs/{org}/domains/new.example/dns");
    let (status, body) = api.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let state = |purpose: &str, name_part: &str| {
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["purpose"] == purpose && r["name"].as_str().unwrap().contains(name_part))
            .unwrap_or_else(|| panic!("no {purpose} record in {body}"))
            .clone()
    };
    assert_eq!(state("verification", "")["state"], "missing", "{body}");
    assert_eq!(state("mx", "")["state"], "ok", "{body}");
    let spf = state("spf", "");
    assert_eq!(spf["state"], "different", "{body}");
    assert_eq!(spf["found"], json!(["v=spf1 -all"]), "{body}");
    assert_eq!(state("dkim", "rsa")["state"], "ok", "{body}");
    assert_eq!(state("dkim", "ed")["state"], "missing", "{body}");
    assert_eq!(state("dmarc", "")["state"], "missing", "{body}");
    assert_eq!(state("autoconfig", "")["type"], "CNAME", "{body}");
    assert_eq!(state("imaps", "")["type"], "SRV", "{body}");
    // Another organization's domain is not shown.
    let (status, _) = api
        .get(&format!("/api/v1/orgs/{org}/domains/beta.example/dns"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The command line prints it as a zone file.
    let home = dir.path().join("home");
    let url = format!("http://{}", server.addr("admin (HTTP)"));
    let cli = |args: &[&str], password: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mailgate"));
        cmd.arg("admin").args(args).env("XDG_CONFIG_HOME", &home);
        cmd.env_remove("MAILGATE_ORG")
            .env_remove("MAILGATE_PASSWORD");
        if let Some(p) = password {
            cmd.env("MAILGATE_PASSWORD", p);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["login", OWNER, "--server", &url], Some(OWNER_PASSWORD));
    let zone = cli(&["domains", "dns", "new.example"], None);
    assert!(
        zone.contains("; mx (ok)\nnew.example. 3600 IN MX 10 mail.test."),
        "{zone}"
    );
    assert!(
        zone.contains(&format!(
            "_mailgate.new.example. 3600 IN TXT \"{token_value}\""
        )),
        "{zone}"
    );
    assert!(
        zone.contains("; spf (different, found: v=spf1 -all)"),
        "{zone}"
    );

    // Verification: refused while the token is not there, then the domain takes mail.
    let verify = format!("/api/v1/orgs/{org}/domains/new.example/verify");
    let (status, body) = api.post(&verify, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("_mailgate.new.example"),
        "{body}"
    );
    dns.add(&format!("{token_name} TXT {token_value}"));
    let (status, body) = api.post(&verify, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["verified"], true, "{body}");
    let (inbound, submitted) = to_and_from_new_domain(&server);
    assert_eq!(inbound, "250");
    assert_eq!(submitted, "250");
}

async fn keys_of(api: &Api, org: u64, domain: &str) -> Value {
    let (status, body) = api
        .get(&format!("/api/v1/orgs/{org}/domains/{domain}/dkim"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].clone()
}
