//! The client's waits and verdicts against scripted servers, on paused time.

use super::*;

use crate::config::QueueConfig;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

/// A server that answers each command line with the next reply, reads the message after
/// a 354, and after its last reply goes silent; with `354 stall` it stops reading too, and
/// `CLOSE` (instead of a reply) hangs up.
async fn scripted(stream: DuplexStream, replies: Vec<&'static str>) {
    let mut stream = BufReader::new(stream);
    for reply in replies {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        stream
            .write_all(format!("{reply}\r\n").as_bytes())
            .await
            .unwrap();
        if reply == "354 stall" {
            break;
        }
        if reply == "CLOSE" {
            return;
        }
        if reply.starts_with("354") {
            while line != ".\r\n" {
                line.clear();
                stream.read_line(&mut line).await.unwrap();
            }
        }
    }
    std::future::pending::<()>().await;
}

/// A transaction against `replies` (see `scripted`) for `recipients`, smarthost settings
/// from `config`, EHLO having offered `ehlo`: its result and how long it took.
async fn run(
    replies: Vec<&'static str>,
    capacity: usize,
    recipients: &[&str],
    config: &QueueConfig,
    ehlo: &[&str],
) -> (Result<Vec<RecipientResult>, Failure>, Duration) {
    let (client, server) = tokio::io::duplex(capacity);
    tokio::spawn(scripted(server, replies));
    let raw = vec![b'x'; 300 * 1024];
    let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    let ehlo: Vec<String> = ehlo.iter().map(|e| e.to_string()).collect();
    let job = Attempt {
        sender: "s@local.example",
        domain: "remote.example",
        recipients: &recipients,
        raw: &raw,
        dsn: &crate::model::DsnRequest::default(),
    };
    let route = if config.smarthost.is_empty() {
        Route::Mx
    } else {
        Route::Smarthost
    };
    let started = tokio::time::Instant::now();
    let mut conv = Conversation::new(client);
    let result = transaction(config, route, &mut conv, &ehlo, &job, true).await;
    (result, started.elapsed())
}

/// How long `transaction` waits before it gives up on a server that stops answering
/// after `replies`, with a connection of `capacity` bytes in flight.
async fn gives_up_after(replies: Vec<&'static str>, capacity: usize) -> Duration {
    let config = QueueConfig::default();
    let (result, elapsed) = run(replies, capacity, &["a@remote.example"], &config, &[]).await;
    let waits = |r: &RecipientResult| matches!(r, RecipientResult::Temporary(_));
    let waiting = match &result {
        Err(f) => matches!(f, Failure::Temporary(_)),
        Ok(results) => results.iter().all(waits),
    };
    assert!(waiting, "{result:?}");
    elapsed
}

#[tokio::test(start_paused = true)]
async fn each_step_waits_as_long_as_rfc_5321_section_4_5_3_2_says() {
    let big = 1024 * 1024;
    assert_eq!(gives_up_after(vec![], big).await, wait::MAIL_RCPT);
    assert_eq!(gives_up_after(vec!["250 ok"], big).await, wait::MAIL_RCPT);
    let data = vec!["250 ok", "250 ok"];
    assert_eq!(gives_up_after(data, big).await, wait::DATA_INIT);
    let end = vec!["250 ok", "250 ok", "354 go on"];
    assert_eq!(gives_up_after(end, big).await, wait::DATA_END);
    // A server that stops reading: the first block that cannot be written fails.
    let stall = vec!["250 ok", "250 ok", "354 stall"];
    assert_eq!(gives_up_after(stall, 1024).await, wait::DATA_BLOCK);
}

#[tokio::test(start_paused = true)]
async fn a_silent_greeting_is_waited_for_five_minutes() {
    let (client, _server) = tokio::io::duplex(1024);
    let started = tokio::time::Instant::now();
    let result = Conversation::new(client).expect(220, wait::GREETING).await;
    assert!(matches!(result, Err(Failure::Temporary(_))));
    assert_eq!(started.elapsed(), Duration::from_secs(300));
}

#[test]
fn lines_starting_with_a_dot_are_stuffed() {
    assert_eq!(dot_stuff(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n");
    assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n");
}

#[tokio::test(start_paused = true)]
async fn a_refused_data_bounces_the_accepted_recipients_and_keeps_the_deferred() {
    let replies = vec![
        "250 ok",
        "250 ok",
        "450 4.2.1 try later",
        "554 5.7.1 no thanks",
    ];
    let config = QueueConfig::default();
    let (result, _) = run(
        replies,
        1 << 20,
        &["a@r.example", "b@r.example"],
        &config,
        &[],
    )
    .await;
    let results = result.unwrap();
    assert_eq!(
        results,
        [
            RecipientResult::Permanent("554 5.7.1 no thanks".into()),
            RecipientResult::Temporary("450 4.2.1 try later".into()),
        ]
    );
}

fn smarthost_with_user() -> QueueConfig {
    QueueConfig {
        smarthost: "relay.example:587".into(),
        smarthost_user: "u".into(),
        smarthost_password: "p".into(),
        ..QueueConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_refused_smarthost_login_keeps_the_mail_for_later() {
    let config = smarthost_with_user();
    let replies = vec!["535 5.7.8 bad credentials"];
    let (result, _) = run(
        replies,
        1 << 20,
        &["a@r.example"],
        &config,
        &["AUTH LOGIN PLAIN"],
    )
    .await;
    assert!(
        matches!(&result, Err(Failure::Temporary(why)) if why.contains("535")),
        "{result:?}"
    );
    // Not offered at all: nothing is sent, and the mail waits too.
    let (result, _) = run(vec![], 1 << 20, &["a@r.example"], &config, &["8BITMIME"]).await;
    assert!(
        matches!(&result, Err(Failure::Temporary(why)) if why.contains("no AUTH PLAIN")),
        "{result:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_line_that_never_ends_is_refused_without_growing() {
    let (client, mut server) = tokio::io::duplex(1 << 20);
    server.write_all(&[b'2'; 100_000]).await.unwrap();
    let result = Conversation::new(client).reply(wait::GREETING).await;
    assert!(matches!(result, Err(Failure::Temporary(why)) if why.starts_with("bad reply")));
}

#[test]
fn extensions_are_recognised_by_their_first_word() {
    let ehlo = [
        "SIZE 1000".to_string(),
        "AUTH=LOGIN PLAIN".into(),
        "STARTTLS".into(),
    ];
    assert!(offers(&ehlo, "size") && offers(&ehlo, "STARTTLS"));
    assert!(!offers(&ehlo, "SMTPUTF8"));
    assert!(offers_auth(&ehlo, "PLAIN") && !offers_auth(&ehlo, "CRAM-MD5"));
}

#[tokio::test(start_paused = true)]
async fn a_connection_lost_after_the_final_dot_is_not_taken_elsewhere_at_once() {
    let config = QueueConfig::default();
    let recipients = ["a@r.example", "b@r.example"];
    for replies in [
        vec![
            "250 ok",
            "550 5.1.1 unknown",
            "250 ok",
            "354 go on",
            "CLOSE",
        ],
        vec!["250 ok", "550 5.1.1 unknown", "250 ok", "354 go on"],
    ] {
        // An answer (Ok), so no other host is tried; the accepted recipient waits, the
        // refused one keeps its refusal.
        let (result, _) = run(replies, 1 << 20, &recipients, &config, &[]).await;
        let results = result.unwrap();
        assert!(matches!(&results[0], RecipientResult::Permanent(w) if w.starts_with("550")));
        assert!(matches!(&results[1], RecipientResult::Temporary(w) if w.starts_with("no answer")));
    }
}

#[tokio::test(start_paused = true)]
async fn content_a_host_cannot_take_is_for_another_host() {
    let (client, _server) = tokio::io::duplex(1024);
    let raw = "Subject: caf\u{e9}\r\n\r\n8 bits\r\n".as_bytes().to_vec();
    let recipients = ["a@r.example".to_string()];
    let job = Attempt {
        sender: "s@local.example",
        domain: "r.example",
        recipients: &recipients,
        raw: &raw,
        dsn: &crate::model::DsnRequest::default(),
    };
    let mut conv = Conversation::new(client);
    let result = transaction(
        &QueueConfig::default(),
        Route::Mx,
        &mut conv,
        &[],
        &job,
        true,
    )
    .await;
    assert!(
        matches!(&result, Err(Failure::Unusable(why)) if why.contains("5.6.3")),
        "{result:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn replies_in_latin_1_count_and_endless_replies_do_not() {
    let (client, mut server) = tokio::io::duplex(1 << 20);
    server
        .write_all(b"550 5.1.1 M\xfcller unknown\r\n")
        .await
        .unwrap();
    let mut conv = Conversation::new(client);
    let (code, lines) = conv.reply(wait::GREETING).await.unwrap();
    assert_eq!(
        (code, lines[0].as_str()),
        (550, "5.1.1 M\u{fffd}ller unknown")
    );
    server
        .write_all(&b"250-more\r\n".repeat(150))
        .await
        .unwrap();
    let result = conv.reply(wait::GREETING).await;
    assert!(
        matches!(&result, Err(Failure::Temporary(why)) if why.contains("100 lines")),
        "{result:?}"
    );
}

#[test]
fn a_host_that_was_down_outweighs_one_that_cannot_take_the_content() {
    let down = || Failure::Temporary("connection refused".into());
    let unable = || Failure::Unusable("554 5.6.3 no 8BITMIME".into());
    assert!(matches!(
        telling(Some(down()), unable()),
        Failure::Temporary(_)
    ));
    assert!(matches!(
        telling(Some(unable()), down()),
        Failure::Temporary(_)
    ));
    assert!(matches!(telling(None, unable()), Failure::Unusable(_)));
    assert!(matches!(
        telling(Some(unable()), unable()),
        Failure::Unusable(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn the_fuzz_replay_delivers_against_a_willing_server() {
    let seed = |name: &str| {
        let path = format!(
            "{}/fuzz/corpus/smtp_replies/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    };
    // a@ asked to hear of its delivery (NOTIFY=SUCCESS): a host without DSN ends that
    // request here (relayed); one with DSN takes it on.
    let delivered = replay(seed("success")).await;
    assert_eq!(
        delivered,
        [RecipientResult::Relayed, RecipientResult::Delivered]
    );
    let delivered = replay(seed("success_dsn")).await;
    assert_eq!(
        delivered,
        [RecipientResult::Delivered, RecipientResult::Delivered]
    );
    let refused = replay(seed("rcpt_refused")).await;
    assert!(matches!(&refused[0], RecipientResult::Permanent(why) if why.starts_with("550")));
    assert!(matches!(&refused[1], RecipientResult::Temporary(why) if why.starts_with("451")));
}

/// The lines a server got, answering each with the next of `replies` (none left: silence).
async fn recording(stream: DuplexStream, replies: Vec<&'static str>) -> Vec<String> {
    let mut stream = BufReader::new(stream);
    let mut got = Vec::new();
    let mut replies = replies.into_iter();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(600), stream.read_line(&mut line));
        match read.await {
            Ok(Ok(n)) if n > 0 => got.push(line.trim_end().to_string()),
            _ => return got,
        }
        match replies.next() {
            Some(reply) => {
                let _ = stream.write_all(format!("{reply}\r\n").as_bytes()).await;
            }
            None => return got,
        }
    }
}

/// RFC 5321 §4.1.1.10: a refusal mid-session is followed by QUIT; a server that stopped
/// answering is not sent one (nor waited on for it).
#[tokio::test(start_paused = true)]
async fn a_host_given_up_mid_session_gets_its_quit_unless_it_went_silent() {
    for (replies, expected) in [
        (
            vec!["550 5.7.1 not from you", "221 bye"],
            vec!["MAIL FROM:<s@x.example>", "QUIT"],
        ),
        (vec![], vec!["MAIL FROM:<s@x.example>"]),
    ] {
        let (client, server) = tokio::io::duplex(4096);
        let server = tokio::spawn(recording(server, replies));
        let mut conv = Conversation::new(client);
        let sent = conv
            .command("MAIL FROM:<s@x.example>", 250, wait::MAIL_RCPT)
            .await;
        let result = closing(&mut conv, sent).await;
        assert!(result.is_err());
        drop(conv);
        assert_eq!(server.await.unwrap(), expected);
    }
}
