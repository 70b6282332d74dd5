//! `mailgate admin mailboxes import`: a mailbox moved in from another IMAP server (started on
//! the server, followed here with a progress bar until it ends), or from a local mbox file
//! or Maildir, uploaded in parts.

use super::{Client, print};
use crate::import::mbox;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The mailbox the mail goes into.
    pub id: u64,
    /// Copy every folder from this IMAP server; the source password is read from standard
    /// input or MAILGATE_SOURCE_PASSWORD, used for this run and never stored.
    #[arg(long, conflicts_with_all = ["mbox", "maildir", "resume"])]
    pub host: Option<String>,
    #[arg(long, default_value_t = 993)]
    pub port: u16,
    /// `tls` (port 993), `starttls` (port 143) or `none`.
    #[arg(long, default_value = "tls")]
    pub tls: String,
    /// The login on the source server.
    #[arg(long)]
    pub login: Option<String>,
    /// Accept a certificate this machine does not trust (a self-signed one).
    #[arg(long)]
    pub accept_invalid_certificates: bool,
    /// Go on with this interrupted import (the source password again on standard input).
    #[arg(long, conflicts_with_all = ["mbox", "maildir"])]
    pub resume: Option<u64>,
    /// Upload this mbox file.
    #[arg(long, conflicts_with = "maildir")]
    pub mbox: Option<PathBuf>,
    /// Upload this Maildir (Maildir++: subfolders as `.Name.Sub`).
    #[arg(long)]
    pub maildir: Option<PathBuf>,
    /// Where an upload's messages go when they name no folder: INBOX by default.
    #[arg(long)]
    pub folder: Option<String>,
    /// Return once the import has started instead of following it to the end.
    #[arg(long)]
    pub detach: bool,
}

/// Parts of an upload stay under this size (the server takes up to 64 MiB).
const UPLOAD_PART: usize = 16 * 1024 * 1024;

pub async fn run(client: &Client, org: &str, args: ImportArgs) -> Result<(), String> {
    let imports = format!("{org}/mailboxes/{}/imports", args.id);
    if let Some(path) = &args.mbox {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return upload(client, &imports, args.folder.as_deref(), &bytes).await;
    }
    if let Some(dir) = &args.maildir {
        let bytes = maildir_as_mbox(dir, args.folder.as_deref().unwrap_or("INBOX"))?;
        return upload(client, &imports, None, &bytes).await;
    }
    let password = source_password()?;
    let started = match (args.resume, &args.host) {
        (Some(id), _) => {
            let body = json!({"password": password});
            let path = format!("{imports}/{id}/resume");
            client.json(Method::POST, &path, Some(body)).await?
        }
        (None, Some(host)) => {
            let login = args
                .login
                .as_deref()
                .ok_or("--login names the source login")?;
            let body = json!({
                "host": host, "port": args.port, "tls": args.tls, "login": login,
                "password": password,
                "accept_invalid_certificates": args.accept_invalid_certificates,
            });
            client.json(Method::POST, &imports, Some(body)).await?
        }
        (None, None) => return Err("give --host, --resume, --mbox or --maildir".into()),
    };
    if args.detach {
        print(&started.to_string());
        return Ok(());
    }
    let path = format!("{imports}/{}", started["id"]);
    follow(client, &path).await
}

/// The source password: MAILGATE_SOURCE_PASSWORD, else one line of standard input.
fn source_password() -> Result<String, String> {
    if let Ok(p) = std::env::var("MAILGATE_SOURCE_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the source password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Polls the import and draws its progress until it stops; prints the final state.
async fn follow(client: &Client, path: &str) -> Result<(), String> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} messages {msg}",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    let last = loop {
        let import = client.json(Method::GET, path, None).await?;
        show(&bar, &import);
        if import["state"] != "running" {
            break import;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bar.finish_and_clear();
    print(&last.to_string());
    match last["state"].as_str() {
        Some("done") => Ok(()),
        _ => Err(format!(
            "the import stopped: {}; go on with --resume {}",
            last["stopped_because"]
                .as_str()
                .unwrap_or("no reason given"),
            last["id"]
        )),
    }
}

fn show(bar: &ProgressBar, import: &Value) {
    let folders = import["folders"].as_array().cloned().unwrap_or_default();
    let total: u64 = folders.iter().filter_map(|f| f["total"].as_u64()).sum();
    let done: u64 = folders.iter().filter_map(|f| f["messages"].as_u64()).sum();
    let current = folders
        .iter()
        .rev()
        .find(|f| f["done"] == false)
        .and_then(|f| f["source"].as_str())
        .unwrap_or("");
    bar.set_length(total.max(done));
    bar.set_position(done);
    bar.set_message(format!(
        "· {} · {:.0} msg/s · {} failed · {current}",
        indicatif::HumanBytes(import["bytes"].as_u64().unwrap_or(0)),
        import["messages_per_second"].as_f64().unwrap_or(0.0),
        import["failed"].as_u64().unwrap_or(0),
    ));
}

/// Uploads an mbox in parts cut between messages; prints the totals.
async fn upload(
    client: &Client,
    imports: &str,
    folder: Option<&str>,
    bytes: &[u8],
) -> Result<(), String> {
    let bar = ProgressBar::new(bytes.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    let query = folder.map_or(String::new(), |f| format!("?folder={}", encode_query(f)));
    let (mut messages, mut failed) = (0, 0);
    for part in parts(bytes, UPLOAD_PART) {
        let answer = client
            .upload(
                &format!("{imports}/mbox{query}"),
                "application/mbox",
                part.to_vec(),
            )
            .await?;
        messages += answer["messages"].as_u64().unwrap_or(0);
        failed += answer["failed"].as_u64().unwrap_or(0);
        bar.inc(part.len() as u64);
        bar.set_message(format!("{messages} messages"));
    }
    bar.finish_and_clear();
    print(&json!({"messages": messages, "failed": failed, "bytes": bytes.len()}).to_string());
    Ok(())
}

fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Cuts an mbox into parts of about `size` bytes, each ending where a message ends.
fn parts(bytes: &[u8], size: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() > size {
        let cut = rest[size..]
            .windows(6)
            .position(|w| w == b"\nFrom ")
            .map(|p| size + p + 1);
        match cut {
            Some(at) => {
                out.push(&rest[..at]);
                rest = &rest[at..];
            }
            None => break,
        }
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// A Maildir (and its Maildir++ subfolders) as one mbox, each message with its folder, its
/// flags from its file name (`:2,FRS`), its keywords from `dovecot-keywords`, and its file's
/// time as its date.
fn maildir_as_mbox(root: &Path, inbox: &str) -> Result<Vec<u8>, String> {
    let mut folders = vec![(root.to_path_buf(), inbox.to_string())];
    let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(sub) = name.strip_prefix('.')
            && !sub.is_empty()
            && entry.path().join("cur").is_dir()
        {
            folders.push((entry.path(), sub.replace('.', "/")));
        }
    }
    folders.sort_by(|a, b| a.1.cmp(&b.1));
    let mut out = Vec::new();
    for (dir, folder) in folders {
        let keywords = std::fs::read_to_string(dir.join("dovecot-keywords")).unwrap_or_default();
        // "N name": the letter `a` + N in a file name means that keyword.
        let mut numbered: Vec<(usize, &str)> = keywords
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(n, k)| Some((n.trim().parse().ok()?, k)))
            .filter(|(n, _)| *n < 26)
            .collect();
        numbered.sort();
        let mut keywords: Vec<&str> = vec![""; numbered.last().map_or(0, |(n, _)| n + 1)];
        for (n, k) in numbered {
            keywords[n] = k;
        }
        let mut files = Vec::new();
        for sub in ["cur", "new"] {
            let Ok(list) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            files.extend(list.flatten().map(|e| e.path()));
        }
        files.sort();
        for file in files {
            let raw = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let date = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            let flags = maildir_flags(name.as_deref().unwrap_or(""), &keywords);
            mbox::write_message(&mut out, "MAILER-DAEMON", date, Some(&folder), &flags, &raw);
        }
    }
    Ok(out)
}

/// The flags a Maildir file name carries after `:2,`: uppercase letters are system flags,
/// lowercase ones index `dovecot-keywords`.
fn maildir_flags(name: &str, keywords: &[&str]) -> Vec<String> {
    let Some((_, letters)) = name.rsplit_once(":2,") else {
        return Vec::new();
    };
    letters
        .chars()
        .filter_map(|c| match c {
            'S' => Some("\\Seen".to_string()),
            'R' => Some("\\Answered".to_string()),
            'F' => Some("\\Flagged".to_string()),
            'T' => Some("\\Deleted".to_string()),
            'D' => Some("\\Draft".to_string()),
            'a'..='z' => keywords
                .get(c as usize - 'a' as usize)
                .filter(|k| !k.is_empty())
                .map(|k| k.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_end_where_messages_end() {
        let mbox = b"From a\nx\nFrom b\ny\nFrom c\nz\n";
        let cut = parts(mbox, 4);
        assert_eq!(cut.concat(), mbox);
        assert!(cut.iter().all(|p| p.starts_with(b"From ")), "{cut:?}");
        assert_eq!(parts(mbox, 1000), [&mbox[..]]);
    }

    #[test]
    fn maildir_names_carry_flags_and_keywords() {
        let flags = maildir_flags("123.M1P1.host:2,FSab", &["$Forwarded", "Work"]);
        assert_eq!(flags, ["\\Flagged", "\\Seen", "$Forwarded", "Work"]);
        assert!(maildir_flags("123.M1P1.host", &[]).is_empty());
    }
}
