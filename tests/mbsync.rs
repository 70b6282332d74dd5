//! A two-way sync of every folder with mbsync (isync), a client we did not write: create,
//! flag, move and delete on both sides, sync again, and both sides agree.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const CLIENT: &str = r#"
import imaplib, ssl, sys
host, port, action = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
if action == "cert":
    print(ssl.get_server_certificate((host, port)))
    sys.exit(0)
m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
m.login("contact@acme.example", "contact-password")
def subjects(folder):
    typ, data = m.select(folder)
    assert typ == "OK", (folder, data)
    typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") if data != [b"0"] else ("OK", [])
    out = []
    for item in data:
        if isinstance(item, tuple):
            subject = item[1].decode().strip().removeprefix("Subject: ")
            out.append(subject + (" [flagged]" if b"\\Flagged" in item[0] else ""))
    return sorted(out)
if action == "seed":
    for s in ["one", "two", "three", "four", "five", "six"]:
        m.append("INBOX", None, None, f"Subject: {s}\r\n\r\nbody {s}\r\n".encode())
elif action == "remote-changes":
    m.create("Remote")
    m.append("Remote", None, None, b"Subject: made on the server\r\n\r\nx\r\n")
    m.select("INBOX")
    typ, data = m.search(None, "SUBJECT", "two")
    m.store(data[0].decode(), "+FLAGS", "(\\Flagged)")
    typ, data = m.search(None, "SUBJECT", "four")
    typ, _ = m.uid("MOVE", m.fetch(data[0].decode(), "(UID)")[1][0].split()[2].strip(b")").decode(), "Archive")
    assert typ == "OK"
    # A delete on the server.
    typ, data = m.search(None, "SUBJECT", "six")
    m.store(data[0].decode(), "+FLAGS", "(\\Deleted)")
    m.expunge()
elif action == "show":
    typ, data = m.list()
    names = sorted(d.decode().rsplit(" ", 1)[1].strip('"') for d in data)
    print("folders", names)
    for f in ["INBOX", "Remote", "Local", "Archive", "Trash"]:
        if f in names:
            print(f, subjects(f))
m.logout()
"#;

fn client(server: &TestServer, action: &str) -> String {
    let addr = server.addr("imap (TLS)");
    python(
        CLIENT,
        &[
            addr.ip().to_string(),
            addr.port().to_string(),
            action.to_string(),
        ],
    )
}

fn mbsync(config: &Path) {
    let out = Command::new("mbsync")
        .arg("-c")
        .arg(config)
        .arg("-a")
        .output()
        .expect("mbsync must be installed (.ci/run installs isync)");
    assert!(
        out.status.success(),
        "mbsync failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every message file of a maildir folder, as (subject, flags).
fn maildir(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_string();
            let name = e.file_name().to_string_lossy().into_owned();
            let flags = name
                .rsplit_once(":2,")
                .map(|(_, f)| f.to_string())
                .unwrap_or_default();
            out.push((subject, flags));
        }
    }
    out.sort();
    out
}

/// The maildir file of the message with this subject in a local folder.
fn local_file(folder: &Path, subject: &str) -> std::path::PathBuf {
    ["cur", "new"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(folder.join(sub)).unwrap().flatten())
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains(&format!("Subject: {subject}"))
        })
        .unwrap_or_else(|| panic!("message {subject} is local"))
}

fn write_message(dir: &Path, name: &str, text: &str) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("new").join(name), text).unwrap();
}

#[test]
fn mbsync_two_way_sync_of_all_folders_converges() {
    let (dir, _, server) = seeded_server("lr");
    client(&server, "seed");
    let cert = dir.path().join("server.pem");
    std::fs::write(&cert, client(&server, "cert")).unwrap();
    let local = dir.path().join("mail");
    std::fs::create_dir_all(&local).unwrap();
    let addr = server.addr("imap (TLS)");
    let config = dir.path().join("mbsyncrc");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount acme\nHost {}\nPort {}\nUser contact@acme.example\nPass contact-password\n\
             SSLType IMAPS\nCertificateFile {}\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount acme\n\n\
             MaildirStore local\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
             Channel acme\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nRemove Both\nExpunge Both\nSyncState *\n",
            addr.ip(),
            addr.port(),
            cert.display(),
            local.display(),
            local.display()
        ),
    )
    .unwrap();

    mbsync(&config);
    let inbox = maildir(&local.join("INBOX"));
    assert_eq!(inbox.len(), 6, "{inbox:?}");
    for folder in ["Sent", "Drafts", "Trash", "Junk", "Archive"] {
        assert!(local.join(folder).exists(), "{folder} was not synced");
    }

    // Changes on both sides.
    client(&server, "remote-changes");
    write_message(
        &local.join("Local"),
        "1.local:2,",
        "Subject: made locally\r\n\r\ny\r\n",
    );
    let one = local_file(&local.join("INBOX"), "one");
    std::fs::remove_file(&one).unwrap();
    // A local move: the file goes to another folder, without its mbsync UID.
    let five = local_file(&local.join("INBOX"), "five");
    let name = five.file_name().unwrap().to_string_lossy().into_owned();
    let bare = name.split(",U=").next().unwrap().to_string();
    std::fs::rename(&five, local.join("Trash/cur").join(format!("{bare}:2,S"))).unwrap();
    // A local flag: the maildir name says F.
    let three = local_file(&local.join("INBOX"), "three");
    let flagged = three.to_string_lossy().replace(":2,", ":2,F");
    std::fs::rename(
        &three,
        local
            .join("INBOX/cur")
            .join(Path::new(&flagged).file_name().unwrap()),
    )
    .unwrap();

    mbsync(&config);
    let shown = client(&server, "show");
    assert!(
        shown.contains("'Local'") && shown.contains("'Remote'"),
        "{shown}"
    );
    assert!(
        shown.contains("INBOX ['three [flagged]', 'two [flagged]']"),
        "{shown}"
    );
    assert!(shown.contains("Local ['made locally']"), "{shown}");
    assert!(shown.contains("Remote ['made on the server']"), "{shown}");
    assert!(
        shown.contains("Archive ['four']"),
        "moved on the server: {shown}"
    );
    assert!(shown.contains("Trash ['five']"), "moved locally: {shown}");
    assert_eq!(maildir(&local.join("Archive")).len(), 1);
    let inbox = maildir(&local.join("INBOX"));
    assert_eq!(
        inbox,
        vec![
            ("three".to_string(), "F".to_string()),
            ("two".to_string(), "F".to_string())
        ],
        "{inbox:?}"
    );
    assert_eq!(maildir(&local.join("Remote")).len(), 1);

    // A third sync changes nothing.
    mbsync(&config);
    assert_eq!(client(&server, "show"), shown);
    assert_eq!(maildir(&local.join("INBOX")), inbox);
}
