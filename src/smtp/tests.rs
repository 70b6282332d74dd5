//! The SMTP state machine without sockets: sequencing, limits, AUTH, delivery.

use super::{Action, Mode, Session};
use crate::harness::{ADDRESS, Harness, PASSWORD};
use base64::Engine;

async fn talk(session: &mut Session, input: &str) -> (String, Action) {
    let out = session.feed(input.as_bytes()).await;
    (String::from_utf8_lossy(&out.bytes).into_owned(), out.action)
}

fn codes(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect()
}

#[tokio::test]
async fn commands_out_of_order_get_503_and_the_session_goes_on() {
    let h = Harness::new();
    let mut s = h.smtp_session(Mode::Inbound);
    let (out, _) = talk(&mut s, "MAIL FROM:<a@b.example>\r\n").await;
    assert!(out.starts_with("503 5.5.1"), "{out}");
    let (out, _) = talk(
        &mut s,
        "EHLO c.example\r\nRCPT TO:<x@y.example>\r\nDATA\r\n",
    )
    .await;
    assert_eq!(codes(&out), ["250", "503", "503"], "{out}");
    let (out, action) = talk(&mut s, "QUIT\r\n").await;
    assert!(out.starts_with("221 2.0.0"), "{out}");
    assert_eq!(action, Action::Close);
}

#[tokio::test]
async fn a_pipelined_transaction_in_pieces_is_delivered_once() {
    let h = Harness::new();
    let mut s = h.smtp_session(Mode::Inbound);
    let input = format!(
        "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<{ADDRESS}>\r\nDATA\r\nSubject: t\r\n\r\nbody\r\n.\r\n"
    );
    let mut out = String::new();
    // Split at every third byte: the parsers must carry state across reads.
    for chunk in input.as_bytes().chunks(3) {
        out.push_str(
            &talk(&mut s, std::str::from_utf8(chunk).unwrap_or(""))
                .await
                .0,
        );
    }
    assert_eq!(codes(&out), ["250", "250", "250", "354", "250"], "{out}");
    let store = &h.services.store;
    let m = store.mailbox_by_address(ADDRESS).unwrap().unwrap();
    let inbox = store.folder_by_name(m.id, "INBOX").unwrap().unwrap();
    let records = store.messages(m.id, inbox.id).unwrap();
    let last = records.last().unwrap();
    let raw = store.read_message(&last.blob).unwrap();
    assert!(raw.starts_with(b"Received: from c.example"), "{raw:?}");
    assert!(raw.ends_with(b"Subject: t\r\n\r\nbody\r\n"), "{raw:?}");
}

#[tokio::test]
async fn starttls_drops_what_was_pipelined_after_it() {
    let h = Harness::new();
    let mut s = h.smtp_session(Mode::Inbound);
    talk(&mut s, "EHLO c.example\r\n").await;
    let (out, action) = talk(&mut s, "STARTTLS\r\nMAIL FROM:<a@b.example>\r\n").await;
    // The harness session is already "TLS": STARTTLS is refused, and MAIL still answered.
    assert!(out.starts_with("503 5.5.1 TLS is already active"), "{out}");
    assert_eq!(action, Action::Continue);
}

#[tokio::test]
async fn submission_needs_auth_and_checks_the_sender() {
    let h = Harness::new();
    let mut s = h.smtp_session(Mode::Submission);
    let (out, _) = talk(&mut s, "EHLO c.example\r\nMAIL FROM:<x@b.example>\r\n").await;
    assert!(
        out.contains("250-AUTH PLAIN LOGIN") || out.contains("250 AUTH PLAIN LOGIN"),
        "{out}"
    );
    assert!(out.contains("530 5.7.0"), "{out}");
    let bad = base64::engine::general_purpose::STANDARD.encode(format!("\0{ADDRESS}\0wrong"));
    let (out, _) = talk(&mut s, &format!("AUTH PLAIN {bad}\r\n")).await;
    assert!(out.starts_with("535 5.7.8"), "{out}");
    let (out, _) = talk(&mut s, "AUTH LOGIN\r\n").await;
    assert_eq!(out, "334 VXNlcm5hbWU6\r\n");
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let (out, _) = talk(&mut s, &format!("{}\r\n", b64(ADDRESS))).await;
    assert_eq!(out, "334 UGFzc3dvcmQ6\r\n");
    let (out, _) = talk(&mut s, &format!("{}\r\n", b64(PASSWORD))).await;
    assert!(out.starts_with("235 2.7.0"), "{out}");
    let (out, _) = talk(&mut s, "MAIL FROM:<someone@else.example>\r\n").await;
    assert!(out.starts_with("550 5.7.1"), "{out}");
    let (out, _) = talk(
        &mut s,
        &format!("MAIL FROM:<{ADDRESS}>\r\nRCPT TO:<far@away.example>\r\n"),
    )
    .await;
    assert_eq!(codes(&out), ["250", "250"], "{out}");
}

#[tokio::test]
async fn an_auth_exchange_can_be_cancelled_and_bad_base64_is_refused() {
    let h = Harness::new();
    let mut s = h.smtp_session(Mode::Submission);
    talk(&mut s, "EHLO c.example\r\n").await;
    talk(&mut s, "AUTH PLAIN\r\n").await;
    let (out, _) = talk(&mut s, "*\r\n").await;
    assert!(out.starts_with("501 5.0.0"), "{out}");
    let (out, _) = talk(&mut s, "AUTH PLAIN !!!notbase64\r\n").await;
    assert!(out.starts_with("501 5.5.2"), "{out}");
    let (out, _) = talk(&mut s, "AUTH CRAM-MD5\r\n").await;
    assert!(out.starts_with("504 5.5.4"), "{out}");
}

#[tokio::test]
async fn a_bdat_without_a_transaction_is_read_and_refused() {
    let h = Harness::new();
    let mut s = h.smtp_session(Mode::Inbound);
    talk(&mut s, "EHLO c.example\r\n").await;
    // The five bytes must not be taken for a command.
    let (out, _) = talk(&mut s, "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n").await;
    assert_eq!(codes(&out), ["503", "250"], "{out}");
}

#[tokio::test]
async fn an_over_long_line_is_refused() {
    let h = Harness::new();
    let mut s = h.smtp_session(Mode::Inbound);
    let long = format!("EHLO {}\r\nNOOP\r\n", "a".repeat(10_000));
    let (out, _) = talk(&mut s, &long).await;
    assert!(out.starts_with("500 5.5.2 Line too long"), "{out}");
}

/// DSN (RFC 3461) is offered on submission, where RET twice and NOTIFY=NEVER with another
/// value are refused (501 5.5.4); not on port 25, whose parameters are not looked at.
#[tokio::test]
async fn dsn_is_offered_on_submission_only_and_its_parameters_are_checked() {
    let h = Harness::new();
    let mut inbound = h.smtp_session(Mode::Inbound);
    let (out, _) = talk(&mut inbound, "EHLO c.example\r\n").await;
    assert!(!out.contains("DSN"), "{out}");
    let mut s = h.smtp_session(Mode::Submission);
    let plain =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{ADDRESS}\0{PASSWORD}"));
    let (out, _) = talk(&mut s, &format!("EHLO c.example\r\nAUTH PLAIN {plain}\r\n")).await;
    assert!(out.contains("250-DSN\r\n"), "{out}");
    let (out, _) = talk(
        &mut s,
        &format!("MAIL FROM:<{ADDRESS}> RET=FULL RET=HDRS\r\n"),
    )
    .await;
    assert!(out.starts_with("501 5.5.4"), "{out}");
    let (out, _) = talk(
        &mut s,
        &format!(
            "MAIL FROM:<{ADDRESS}> RET=HDRS ENVID=x+2By\r\n\
             RCPT TO:<a@away.example> NOTIFY=NEVER,SUCCESS\r\n\
             RCPT TO:<b@away.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;B@away.example\r\n\
             RCPT TO:<c@away.example>\r\n\
             RCPT TO:<d@away.example> ORCPT=rfc822;d+00@away.example\r\n"
        ),
    )
    .await;
    assert_eq!(codes(&out), ["250", "501", "250", "250", "501"], "{out}");
}
