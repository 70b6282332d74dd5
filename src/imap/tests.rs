//! The IMAP state machine without sockets: framing, literals, limits, states.

use super::session::Action;
use crate::harness::{ADDRESS, Harness, PASSWORD, feed_selected};

async fn talk(session: &mut super::Session, input: &str) -> (String, Action) {
    let out = session.feed(input.as_bytes()).await;
    (String::from_utf8_lossy(&out.bytes).into_owned(), out.action)
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let h = Harness::new();
    let mut s = h.session();
    let (out, action) = talk(&mut s, "a NOOP\r\nb CAPABILITY\r\nc NOOP\r\n").await;
    let tags: Vec<&str> = out.lines().filter(|l| !l.starts_with('*')).collect();
    assert_eq!(
        tags,
        [
            "a OK NOOP completed",
            "b OK CAPABILITY completed",
            "c OK NOOP completed"
        ]
    );
    assert_eq!(action, Action::Continue);
}

/// The driver sends each answer before feeding the commands pipelined behind it, so a
/// client's first command is not kept waiting for the last; STARTTLS drops what follows it.
#[tokio::test]
async fn feeding_stops_after_each_answered_command() {
    let h = Harness::new();
    let peer = "127.0.0.1:50000".parse().expect("an address");
    let mut s = super::Session::new(h.services.clone(), peer, false);
    let input = b"a NOOP\r\nb NO";
    let (out, used) = s.feed_some(input).await;
    assert_eq!(out.bytes, b"a OK NOOP completed\r\n");
    assert_eq!(used, 8);
    let (out, used) = s.feed_some(&input[used..]).await;
    assert!(out.bytes.is_empty());
    assert_eq!(used, 4);
    let rest = b"OP\r\nc STARTTLS\r\nd NOOP\r\n";
    let (out, used) = s.feed_some(rest).await;
    assert_eq!(out.bytes, b"b OK NOOP completed\r\n");
    assert_eq!(used, 4);
    let (out, used) = s.feed_some(&rest[used..]).await;
    assert_eq!(out.action, Action::StartTls);
    assert_eq!(used, rest.len() - 4, "nothing after STARTTLS is kept");
}

#[tokio::test]
async fn a_command_split_across_reads_is_reassembled() {
    let h = Harness::new();
    let mut s = h.session();
    let (out, _) = talk(&mut s, "a NO").await;
    assert!(out.is_empty());
    let (out, _) = talk(&mut s, "OP\r\n").await;
    assert_eq!(out, "a OK NOOP completed\r\n");
}

#[tokio::test]
async fn synchronizing_literals_get_a_continuation_and_non_synchronizing_ones_do_not() {
    let h = Harness::new();
    let mut s = h.session();
    let login = format!("a LOGIN {{{}}}\r\n", ADDRESS.len());
    let (out, _) = talk(&mut s, &login).await;
    assert!(out.starts_with("+ "), "{out}");
    let (out, _) = talk(
        &mut s,
        &format!("{ADDRESS} {{{}+}}\r\n{PASSWORD}\r\n", PASSWORD.len()),
    )
    .await;
    assert!(out.starts_with("a OK"), "{out}");
}

#[tokio::test]
async fn an_oversized_literal_is_refused_and_the_session_goes_on() {
    let h = Harness::new();
    let mut s = h.session();
    talk(&mut s, &format!("l LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let (out, _) = talk(&mut s, "a APPEND INBOX {999999999}\r\n").await;
    assert!(out.starts_with("a NO [TOOBIG]"), "{out}");
    let (out, _) = talk(&mut s, "b NOOP\r\n").await;
    assert_eq!(out, "b OK NOOP completed\r\n");
}

#[tokio::test]
async fn syntax_errors_get_bad_with_the_tag_when_there_is_one() {
    let h = Harness::new();
    let mut s = h.session();
    let (out, _) = talk(&mut s, "a FROBNICATE\r\n").await;
    assert!(out.starts_with("a BAD"), "{out}");
    let (out, _) = talk(&mut s, "\r\n").await;
    assert!(out.starts_with("* BAD"), "{out}");
}

#[tokio::test]
async fn an_endless_line_ends_the_session() {
    let h = Harness::new();
    let mut s = h.session();
    let (out, action) = talk(&mut s, &"x".repeat(5000)).await;
    assert!(out.starts_with("* BYE"), "{out}");
    assert_eq!(action, Action::Close);
}

#[tokio::test]
async fn commands_need_the_right_state() {
    let h = Harness::new();
    let mut s = h.session();
    let (out, _) = talk(&mut s, "a SELECT INBOX\r\n").await;
    assert!(out.starts_with("a BAD"), "{out}");
    let (out, _) = talk(&mut s, &format!("b LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    assert!(out.starts_with("b OK"), "{out}");
    let (out, _) = talk(&mut s, "c FETCH 1 FLAGS\r\n").await;
    assert!(out.starts_with("c BAD"), "{out}");
    let (out, _) = talk(&mut s, "d LOGIN x y\r\n").await;
    assert!(out.starts_with("d BAD"), "{out}");
}

#[tokio::test]
async fn plaintext_logins_are_refused_without_tls() {
    let h = Harness::new();
    let mut s = super::Session::new(h.services.clone(), "192.0.2.1:1".parse().unwrap(), false);
    assert!(String::from_utf8_lossy(&s.greeting()).contains("LOGINDISABLED"));
    let (out, _) = talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    assert!(out.starts_with("a NO [PRIVACYREQUIRED]"), "{out}");
    let (out, action) = talk(&mut s, "b STARTTLS\r\nc NOOP\r\n").await;
    assert_eq!(
        out, "b OK Begin TLS negotiation now\r\n",
        "nothing after STARTTLS is used"
    );
    assert_eq!(action, Action::StartTls);
}

#[tokio::test]
async fn selected_state_fetches_by_sequence_and_uid() {
    let h = Harness::new();
    let mut s = h.session();
    let out = feed_selected(
        &mut s,
        b"f1 FETCH 1:* (UID FLAGS)\r\nf2 UID FETCH 2 (BODY.PEEK[1])\r\nf3 FETCH 9 FLAGS\r\n",
    )
    .await;
    let out = String::from_utf8_lossy(&out);
    // The first session to select the folder sees its messages as \\Recent.
    assert!(out.contains("* 1 FETCH (UID 1 FLAGS (\\Recent))"), "{out}");
    // RFC 2046 §5.1.1: the CRLF before a boundary belongs to the boundary.
    assert!(
        out.contains("* 2 FETCH (UID 2 BODY[1] {6}\r\nsecond)"),
        "{out}"
    );
    assert!(
        out.contains("f3 BAD"),
        "an unknown sequence number is an error: {out}"
    );
}

/// Sections, partial ranges and BINARY of a message with a large attachment answer the same
/// bytes when only the range they need is read.
#[tokio::test]
async fn sections_and_partial_ranges_of_a_large_message_are_exact() {
    let h = Harness::new();
    let store = &h.services.store;
    let mailbox = h.mailbox();
    let inbox = store.folder_by_name(mailbox, "inbox").unwrap().unwrap();
    let mut raw = b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nfirst part\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b"QUJD", 10_000).flatten());
    raw.extend_from_slice(b"\r\n--b--\r\n");
    let record = store
        .append(mailbox, inbox.id, &raw, Default::default())
        .unwrap();
    let command = format!(
        "f1 UID FETCH {} (BODY.PEEK[1]<2.3> BODY.PEEK[HEADER.FIELDS (SUBJECT)] \
         BINARY.PEEK[2]<3.4> BINARY.SIZE[2] BODY.PEEK[]<0.9> BODY.PEEK[2.MIME] RFC822.HEADER)\r\n",
        record.uid
    );
    let mut s = h.session();
    let out = feed_selected(&mut s, command.as_bytes()).await;
    let out = String::from_utf8_lossy(&out);
    for expected in [
        "BODY[1]<2> {3}\r\nrst",
        "BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: parts\r\n\r\n",
        "BINARY[2]<3> {4}\r\nABCA",
        "BINARY.SIZE[2] 30000",
        "BODY[]<0> {9}\r\nSubject: ",
        "BODY[2.MIME] {37}\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        "RFC822.HEADER {61}\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n",
        "f1 OK",
    ] {
        assert!(out.contains(expected), "{expected:?} in {out}");
    }
}

#[tokio::test]
async fn logout_closes() {
    let h = Harness::new();
    let mut s = h.session();
    let (out, action) = talk(&mut s, "z LOGOUT\r\n").await;
    assert!(out.starts_with("* BYE"));
    assert_eq!(action, Action::Close);
}

#[tokio::test]
async fn too_many_commands_a_second_get_no_limit() {
    use std::time::{Duration, Instant};
    let h = Harness::with_config(|c| c.imap.max_commands_per_second = 1);
    let burst = "a NOOP\r\n".repeat(12);
    // The bucket refills with real time: a burst that took a second or more (a loaded machine)
    // got a token back meanwhile and proves nothing, so it is tried again, generously.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = Instant::now();
        let mut s = h.session();
        let (out, action) = talk(&mut s, &burst).await;
        let took = started.elapsed();
        let limited = out
            .lines()
            .filter(|l| l.starts_with("a NO [LIMIT]"))
            .count();
        assert_eq!(action, Action::Continue);
        assert!(limited <= 2, "the first ten always pass: {out}");
        if took < Duration::from_secs(1) {
            assert_eq!(
                limited, 2,
                "ten pass as a burst, the rest are refused: {out}"
            );
            break;
        }
        eprintln!("the burst took {took:?}, long enough to refill the bucket: tried again");
        assert!(
            Instant::now() < deadline,
            "no burst of twelve commands ran within a second for 60 s"
        );
    }
}

/// A delegate reaching the harness mailbox through a team; returns the session logged in as
/// her with the shared INBOX selected, and the ids needed to take the access away.
async fn delegate_through_team(
    h: &Harness,
) -> (
    super::Session,
    crate::model::OrgId,
    crate::model::TeamId,
    crate::model::UserId,
) {
    use crate::model::*;
    let store = &h.services.store;
    let mailbox = store.mailbox_by_address(ADDRESS).unwrap().unwrap();
    let lucie = add_collaborator(store, mailbox.org);
    let team = store.create_team(mailbox.org, "Support").unwrap();
    store
        .add_team_member(mailbox.org, team.id, lucie.id)
        .unwrap();
    store
        .add_grant(NewGrant {
            org: mailbox.org,
            grantee: Grantee::Team(team.id),
            target: GrantTarget::Mailbox(mailbox.id),
            rights: Rights::parse("lrs").unwrap(),
            send: None,
        })
        .unwrap();
    let mut s = h.session();
    let login = format!(
        "a LOGIN lucie@gmail.example {PASSWORD}\r\nb SELECT \"Shared/{ADDRESS}/INBOX\"\r\n"
    );
    let (out, _) = talk(&mut s, &login).await;
    assert!(out.contains("b OK"), "{out}");
    (s, mailbox.org, team.id, lucie.id)
}

#[tokio::test]
async fn leaving_the_team_that_carried_the_grant_ends_the_session() {
    let h = Harness::new();
    let (mut s, org, team, lucie) = delegate_through_team(&h).await;
    h.services
        .store
        .remove_team_member(org, team, lucie)
        .unwrap();
    let out = s.access_update();
    assert!(String::from_utf8_lossy(&out.bytes).starts_with("* BYE [NOPERM]"));
    assert_eq!(out.action, Action::Close);
}

#[tokio::test]
async fn disabling_the_user_ends_the_session() {
    let h = Harness::new();
    let (mut s, _, _, lucie) = delegate_through_team(&h).await;
    h.services
        .store
        .update_user(lucie, |u| u.disabled = true)
        .unwrap();
    let (out, action) = talk(&mut s, "c NOOP\r\n").await;
    assert!(out.starts_with("* BYE"), "{out}");
    assert_eq!(action, Action::Close);
}

#[tokio::test]
async fn setacl_refuses_to_remove_what_an_org_wide_grant_gives() {
    use crate::model::*;
    let h = Harness::new();
    let store = &h.services.store;
    let mailbox = store.mailbox_by_address(ADDRESS).unwrap().unwrap();
    let lucie = add_collaborator(store, mailbox.org);
    store
        .add_grant(NewGrant {
            org: mailbox.org,
            grantee: Grantee::User(lucie.id),
            target: GrantTarget::AllMailboxes,
            rights: Rights::parse("lr").unwrap(),
            send: None,
        })
        .unwrap();
    let mut s = h.session();
    talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let (out, _) = talk(&mut s, "b SETACL INBOX lucie@gmail.example -r\r\n").await;
    assert!(out.starts_with("b NO [CANNOT]"), "{out}");
    let (out, _) = talk(&mut s, "c SETACL INBOX lucie@gmail.example +w\r\n").await;
    assert!(out.starts_with("c OK"), "{out}");
    let (out, _) = talk(&mut s, "d DELETEACL INBOX lucie@gmail.example\r\n").await;
    assert!(out.starts_with("d NO [CANNOT]"), "{out}");
}

/// Lucie, a collaborator of `org` with the harness password.
fn add_collaborator(store: &crate::store::Store, org: crate::model::OrgId) -> crate::model::User {
    let lucie = store
        .create_user(crate::store::NewUser {
            login: "lucie@gmail.example".into(),
            display_name: String::new(),
            password: crate::password::hash(PASSWORD).unwrap(),
            must_change_password: false,
            own_mailbox: None,
        })
        .unwrap();
    store
        .set_member(org, lucie.id, crate::model::Role::Collaborator)
        .unwrap();
    lucie
}

#[tokio::test]
async fn folder_names_are_modified_utf7_on_the_wire_and_utf8_in_the_store() {
    let h = Harness::new();
    let mut s = h.session();
    talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let (out, _) = talk(&mut s, "b CREATE \"Entw&APw-rfe\"\r\n").await;
    assert!(out.starts_with("b OK"), "{out}");
    let store = &h.services.store;
    let m = store.mailbox_by_address(ADDRESS).ok().flatten();
    let m = m.expect("the harness mailbox");
    assert!(
        store
            .folder_by_name(m.id, "Entwürfe")
            .ok()
            .flatten()
            .is_some()
    );
    let (out, _) = talk(&mut s, "c LIST \"\" \"Entw*\"\r\n").await;
    assert!(out.contains("\"/\" Entw&APw-rfe\r\n"), "{out}");
    let (out, _) = talk(&mut s, "d CREATE \"&Zé-\"\r\n").await;
    assert!(out.starts_with("d BAD"), "{out}");
    let (out, _) = talk(&mut s, "e MYRIGHTS \"Entw&APw-rfe\"\r\n").await;
    assert!(out.starts_with("* MYRIGHTS Entw&APw-rfe "), "{out}");
}

#[tokio::test]
async fn commands_pipelined_after_a_large_append_are_all_answered() {
    let h = Harness::with_config(|c| c.imap.max_message_bytes = 1024 * 1024);
    let mut s = h.session();
    talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let body = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(200 * 1024));
    // The fragmentizer is replaced after a large message only when nothing follows it.
    let pipelined = format!(
        "b APPEND INBOX {{{}+}}\r\n{body}\r\nc NOOP\r\nd NO",
        body.len()
    );
    let (out, _) = talk(&mut s, &pipelined).await;
    assert!(
        out.contains("b OK [APPENDUID") && out.contains("c OK NOOP"),
        "{out}"
    );
    let (out, _) = talk(&mut s, "OP\r\n").await;
    assert_eq!(out, "d OK NOOP completed\r\n");
    let alone = format!("e APPEND INBOX {{{}+}}\r\n{body}\r\n", body.len());
    let (out, _) = talk(&mut s, &alone).await;
    assert!(out.contains("e OK [APPENDUID"), "{out}");
    let (out, _) = talk(&mut s, "f NOOP\r\n").await;
    assert_eq!(out, "f OK NOOP completed\r\n");
}

#[tokio::test]
async fn recent_and_unknown_backslash_flags_cannot_be_stored() {
    let h = Harness::new();
    let mut s = h.session();
    let out =
        String::from_utf8_lossy(&feed_selected(&mut s, b"a STORE 1 +FLAGS (\\Recent)\r\n").await)
            .into_owned();
    assert!(out.starts_with("a BAD"), "{out}");
    let (out, _) = talk(
        &mut s,
        "b STORE 1 +FLAGS ($Label1)\r\nc FETCH 1 (FLAGS)\r\n",
    )
    .await;
    assert!(out.contains("b OK") && out.contains("$Label1"), "{out}");
}

#[tokio::test]
async fn an_absurd_literal_length_in_an_extension_command_is_refused_not_a_panic() {
    let h = Harness::new();
    let mut s = h.session();
    talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let (out, _) = talk(&mut s, "b MYRIGHTS {18446744073709551615}\r\n").await;
    assert!(!out.contains("b OK"), "{out}");
    let (out, _) = talk(&mut s, "c NOOP\r\n").await;
    assert!(out.contains("c OK"), "{out}");
}

#[tokio::test]
async fn a_sequence_set_search_is_answered_over_the_whole_folder() {
    let h = Harness::new();
    let mut s = h.session();
    let out = String::from_utf8_lossy(
        &feed_selected(&mut s, b"a SEARCH 2:* NOT 1\r\nb UID SEARCH UID 1:*\r\n").await,
    )
    .into_owned();
    assert!(
        out.contains("* SEARCH 2\r\n") && out.contains("* SEARCH 1 2\r\n"),
        "{out}"
    );
}

#[tokio::test]
async fn list_takes_several_patterns_without_selection_options() {
    let h = Harness::new();
    let mut s = h.session();
    talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let (out, _) = talk(&mut s, "b LIST \"\" (\"INBOX\" \"Sent\")\r\n").await;
    assert!(
        out.contains(" INBOX\r\n") && out.contains(" Sent\r\n") && out.contains("b OK"),
        "{out}"
    );
    assert!(!out.contains("Drafts"), "{out}");
}

#[tokio::test]
async fn literals_outside_append_have_their_own_smaller_limit() {
    let h = Harness::with_config(|c| c.imap.max_literal_bytes = 100);
    let mut s = h.session();
    talk(
        &mut s,
        &format!("a LOGIN {ADDRESS} {PASSWORD}\r\na2 SELECT INBOX\r\n"),
    )
    .await;
    let (out, _) = talk(&mut s, "b SEARCH TEXT {500}\r\n").await;
    assert!(out.starts_with("b NO [TOOBIG]"), "{out}");
    let (out, _) = talk(&mut s, "c APPEND INBOX {500}\r\n").await;
    assert!(out.starts_with("+ "), "a message may be larger: {out}");
}

/// RFC 7162 §3.2.6: a folder keeps its newest expunges only; a client resynchronising from
/// before them is told every UID the folder no longer holds, within its known UIDs.
#[tokio::test]
async fn qresync_from_before_the_remembered_expunges_reports_every_missing_uid() {
    let h = Harness::new();
    let store = &h.services.store;
    let m = store.mailbox_by_address(ADDRESS).unwrap().unwrap();
    let inbox = store.folder_by_name(m.id, "INBOX").unwrap().unwrap();
    let append = || {
        store
            .append(m.id, inbox.id, b"x", Default::default())
            .unwrap()
    };
    let uids: Vec<u32> = (0..1105).map(|_| append().uid).collect();
    assert_eq!((uids[0], uids[1104]), (3, 1107));
    store.expunge(m.id, inbox.id, &[1105]).unwrap();
    let modseq = |store: &crate::store::Store| {
        let folder = store.folder(m.id, inbox.id).unwrap().unwrap();
        folder.highestmodseq
    };
    let before = modseq(store);
    store.expunge(m.id, inbox.id, &uids[..600]).unwrap();
    let first = modseq(store);
    store.expunge(m.id, inbox.id, &uids[600..1100]).unwrap();

    let mut s = h.session();
    let login = format!("a LOGIN {ADDRESS} {PASSWORD}\r\nb ENABLE QRESYNC\r\n");
    talk(&mut s, &login).await;
    let v = inbox.uidvalidity;
    let select =
        |since: u64, known: &str| format!("c SELECT INBOX (QRESYNC ({v} {since}{known}))\r\n");
    let vanished = |out: String| -> String {
        let line = out.lines().find(|l| l.starts_with("* VANISHED (EARLIER) "));
        line.unwrap_or_else(|| panic!("{out}"))[21..].to_string()
    };
    let (out, _) = talk(&mut s, &select(before, "")).await;
    assert_eq!(vanished(out), "3:1102,1105");
    let (out, _) = talk(&mut s, &select(before, " 1:10,1100:*")).await;
    assert_eq!(vanished(out), "3:10,1100:1102,1105");
    let (out, _) = talk(&mut s, &select(first, "")).await;
    assert_eq!(vanished(out), "603:1102");
    let (out, _) = talk(
        &mut s,
        &format!("d UID FETCH 1:20 (FLAGS) (CHANGEDSINCE {before} VANISHED)\r\n"),
    )
    .await;
    assert_eq!(vanished(out), "3:20");
}

/// RFC 3502: several messages in one APPEND, stored together in order; the large ones go
/// through the spool, each in its place.
#[tokio::test]
async fn multiappend_stores_every_message_in_order_large_ones_spooled() {
    let h = Harness::with_config(|c| c.limits.spool_threshold_bytes = 1024);
    let store = &h.services.store;
    let m = store.mailbox_by_address(ADDRESS).unwrap().unwrap();
    let inbox = store.folder_by_name(m.id, "INBOX").unwrap().unwrap();
    let big = |c: &str| format!("Subject: {c}\r\n\r\n{}\r\n", c.repeat(3000));
    let (one, three) = (big("a"), big("c"));
    let two = "Subject: b\r\n\r\nsmall\r\n";
    let mut s = h.session();
    talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let command = format!(
        "b APPEND INBOX {{{}+}}\r\n{one} (\\Flagged) {{{}+}}\r\n{two} {{{}+}}\r\n{three}\r\n",
        one.len(),
        two.len(),
        three.len()
    );
    let (out, _) = talk(&mut s, &command).await;
    let v = inbox.uidvalidity;
    assert_eq!(
        out,
        format!("b OK [APPENDUID {v} 3:5] APPEND completed\r\n")
    );
    let records = store.messages(m.id, inbox.id).unwrap();
    let stored: Vec<Vec<u8>> = records[2..]
        .iter()
        .map(|r| store.read_message(&r.blob).unwrap().to_vec())
        .collect();
    assert_eq!(stored, [one.as_bytes(), two.as_bytes(), three.as_bytes()]);
    assert!(records[3].flags.contains(crate::store::Flags::FLAGGED));
    assert!(!records[2].flags.contains(crate::store::Flags::FLAGGED));
}

/// RFC 4469: CATENATE puts text and parts of stored messages together; a URL that names
/// nothing readable refuses the whole command, and nothing of it is stored.
#[tokio::test]
async fn catenate_joins_text_and_stored_parts_or_stores_nothing() {
    let h = Harness::new();
    let mut s = h.session();
    talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    // Message 2 of the harness is multipart: its part 1 is "second".
    let body = "\r\nthen ";
    let command = format!(
        "b APPEND Sent CATENATE (URL \"/INBOX/;UID=2/;SECTION=HEADER\" TEXT {{{}+}}\r\n{body} URL \"/INBOX/;UID=2/;SECTION=1\")\r\n",
        body.len()
    );
    let (out, _) = talk(&mut s, &command).await;
    assert!(out.starts_with("b OK [APPENDUID "), "{out}");
    let (out, _) = talk(&mut s, "c SELECT Sent\r\nd FETCH 1 BODY[]\r\n").await;
    let header = "Content-Type: multipart/mixed; boundary=x\r\nSubject: two\r\n\r\n";
    let expected = format!("{header}\r\nthen second");
    assert!(
        out.contains(&format!("BODY[] {{{}}}\r\n{expected} ", expected.len())),
        "{out}"
    );

    let (out, _) = talk(
        &mut s,
        "e APPEND Sent {2+}\r\nhi CATENATE (URL \"/INBOX;UIDVALIDITY=1/;UID=1\")\r\n",
    )
    .await;
    assert!(
        out.starts_with("e NO [BADURL /INBOX;UIDVALIDITY=1/;UID=1]"),
        "{out}"
    );
    let (out, _) = talk(
        &mut s,
        "f APPEND Missing CATENATE (URL \"/INBOX/;UID=1\")\r\n",
    )
    .await;
    assert!(out.starts_with("f NO [TRYCREATE]"), "{out}");
    let (out, _) = talk(&mut s, "g STATUS Sent (MESSAGES)\r\n").await;
    assert!(
        out.contains("(MESSAGES 1)"),
        "only the first APPEND stored: {out}"
    );
}

/// Each spooled literal holds a file open: one APPEND may spool a bounded number, and a
/// client that sends more is refused once its command ends, nothing of it stored.
#[tokio::test]
async fn an_append_with_too_many_large_messages_is_refused_whole() {
    let h = Harness::with_config(|c| c.limits.spool_threshold_bytes = 1024);
    let mut s = h.session();
    talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let message = format!("Subject: x\r\n\r\n{}\r\n", "x".repeat(2000));
    let n = super::spooled::MAX_SPOOLED_PER_COMMAND + 1;
    let one = format!(" {{{}+}}\r\n{message}", message.len());
    let (out, _) = talk(&mut s, &format!("b APPEND Drafts{}\r\n", one.repeat(n))).await;
    assert!(
        out.starts_with("b NO [LIMIT] At most 32 large messages"),
        "{out}"
    );
    let (out, _) = talk(&mut s, "c STATUS Drafts (MESSAGES)\r\n").await;
    assert!(out.contains("(MESSAGES 0)"), "{out}");
}

/// RFC 5267: a search kept updated tells what joins and leaves its result, an expunged
/// message before its EXPUNGE, until CANCELUPDATE; PARTIAL pages through a result.
#[tokio::test]
async fn a_search_kept_updated_reports_additions_and_removals() {
    let h = Harness::new();
    let mut s = h.session();
    let (out, _) = talk(
        &mut s,
        &format!("a LOGIN {ADDRESS} {PASSWORD}\r\nb SELECT INBOX\r\n"),
    )
    .await;
    assert!(out.contains("b OK"), "{out}");
    let (out, _) = talk(&mut s, "c SEARCH RETURN (UPDATE COUNT) FLAGGED\r\n").await;
    assert!(
        out.starts_with("* ESEARCH (TAG \"c\") COUNT 0\r\nc OK"),
        "{out}"
    );
    let (out, _) = talk(&mut s, "d STORE 1:2 +FLAGS.SILENT (\\Flagged)\r\n").await;
    assert!(
        out.starts_with("* ESEARCH (TAG \"c\") ADDTO (0 1:2)\r\nd OK"),
        "{out}"
    );
    let (out, _) = talk(
        &mut s,
        "e STORE 2 +FLAGS.SILENT (\\Deleted)\r\nf EXPUNGE\r\n",
    )
    .await;
    assert!(
        out.contains("* ESEARCH (TAG \"c\") REMOVEFROM (0 2)\r\n* 2 EXPUNGE\r\nf OK"),
        "REMOVEFROM before the EXPUNGE, by the number it had: {out}"
    );
    let (out, _) = talk(
        &mut s,
        "g CANCELUPDATE \"c\"\r\nh STORE 1 -FLAGS.SILENT (\\Flagged)\r\n",
    )
    .await;
    assert!(!out.contains("ESEARCH"), "{out}");
    let (out, _) = talk(
        &mut s,
        "i UID SEARCH RETURN (PARTIAL 2:5) ALL\r\nj SEARCH RETURN (PARTIAL 1) ALL\r\n",
    )
    .await;
    assert!(
        out.starts_with("* ESEARCH (TAG \"i\") UID PARTIAL (2:5 NIL)\r\n"),
        "{out}"
    );
    assert!(out.contains("j BAD PARTIAL needs a range"), "{out}");
}

/// The state table refuses a command before its literal is taken: an APPEND before login
/// sends nothing to the spool or the store.
#[tokio::test]
async fn a_command_in_the_wrong_state_is_refused_before_its_literal() {
    let h = Harness::with_config(|c| c.limits.spool_threshold_bytes = 1024);
    let mut s = h.session();
    let (out, _) = talk(&mut s, "a APPEND INBOX {50000}\r\n").await;
    assert_eq!(out, "a BAD APPEND needs a login first\r\n");
    let (out, _) = talk(&mut s, "b FETCH 1 FLAGS\r\nc NOOP\r\n").await;
    assert_eq!(
        out,
        "b BAD FETCH needs a login first\r\nc OK NOOP completed\r\n"
    );
    talk(&mut s, &format!("d LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let (out, _) = talk(&mut s, "e UID FETCH 1 FLAGS\r\nf LOGIN x y\r\n").await;
    assert_eq!(
        out,
        "e BAD UID needs a selected folder\r\nf BAD LOGIN is only valid before login\r\n"
    );
}

/// RFC 6855: after ENABLE UTF8=ACCEPT folder names travel as UTF-8 both ways (`&` is only
/// `&`), and APPEND takes a message marked UTF8; before, names are modified UTF-7.
#[tokio::test]
async fn utf8_accept_names_folders_in_utf8_and_appends_utf8_messages() {
    let h = Harness::new();
    let mut s = h.session();
    talk(&mut s, &format!("a LOGIN {ADDRESS} {PASSWORD}\r\n")).await;
    let (out, _) = talk(&mut s, "b CREATE Entw&APw-rfe\r\nc LIST \"\" Entw*\r\n").await;
    assert!(out.contains(" \"/\" Entw&APw-rfe\r\n"), "{out}");
    let (out, _) = talk(&mut s, "d ENABLE UTF8=ACCEPT\r\n").await;
    assert!(out.starts_with("* ENABLED UTF8=ACCEPT\r\n"), "{out}");
    let (out, _) = talk(&mut s, "e LIST \"\" Entw*\r\nf CREATE \"R&D\"\r\n").await;
    assert!(out.contains(" \"/\" \"Entwürfe\"\r\n"), "{out}");
    assert!(out.contains("f OK"), "{out}");
    let message = "Subject: Grüße\r\n\r\nhallo\r\n";
    let append = format!(
        "g APPEND \"Entwürfe\" UTF8 (~{{{}+}}\r\n{message})\r\n",
        message.len()
    );
    let (out, _) = talk(&mut s, &append).await;
    assert!(out.starts_with("g OK [APPENDUID "), "{out}");
    let (out, _) = talk(
        &mut s,
        "h STATUS \"Entwürfe\" (MESSAGES)\r\ni LIST \"\" R*\r\n",
    )
    .await;
    assert!(out.contains("* STATUS \"Entwürfe\" (MESSAGES 1)"), "{out}");
    assert!(out.contains(" \"/\" R&D\r\n"), "{out}");
}

fn between<'a>(text: &'a str, before: &str, after: &str) -> &'a str {
    let rest = text.split_once(before).map_or("", |(_, r)| r);
    rest.split_once(after).map_or("", |(v, _)| v)
}

/// RFC 8474 (OBJECTID) and RFC 8514 (SAVEDATE), which imap-codec lacks: ids and save dates
/// in FETCH, STATUS, LIST, SELECT and CREATE, and as SEARCH keys.
#[tokio::test]
async fn object_ids_and_save_dates() {
    let h = Harness::new();
    let mut s = h.session();
    let out = feed_selected(&mut s, b"a UID FETCH 1:* (EMAILID THREADID SAVEDATE)\r\n").await;
    let out = String::from_utf8_lossy(&out).into_owned();
    let email = between(&out, "* 1 FETCH (UID 1 EMAILID (", ")").to_string();
    assert!(email.starts_with('M') && email.len() > 8, "{out}");
    assert!(out.contains(") THREADID NIL SAVEDATE \""), "{out}");
    let (out, _) = talk(&mut s, &format!("b UID SEARCH EMAILID {email}\r\n")).await;
    assert!(out.starts_with("* SEARCH 1\r\nb OK"), "{out}");
    let (all, _) = talk(&mut s, "c1 SEARCH ALL\r\n").await;
    let search = "c1 SEARCH SAVEDATESUPPORTED SAVEDSINCE 1-Jan-2000 NOT SAVEDBEFORE 1-Jan-2000";
    let (saved, _) = talk(&mut s, &format!("{search}\r\n")).await;
    assert!(all.starts_with("* SEARCH 1 2"), "{all}");
    assert_eq!(saved, all);
    let (out, _) = talk(
        &mut s,
        "d SEARCH THREADID T1\r\ne SEARCH EMAILID \"no id\"\r\n",
    )
    .await;
    assert!(
        out.starts_with("* SEARCH\r\nd OK"),
        "a THREADID matches nothing: {out}"
    );
    assert!(out.contains("e BAD"), "{out}");
    let (out, _) = talk(
        &mut s,
        "f EXAMINE INBOX\r\ng STATUS INBOX (MESSAGES MAILBOXID)\r\nh CREATE Projects\r\n\
         i LIST \"\" Projects RETURN (STATUS (MAILBOXID))\r\nj STATUS Projects (MAILBOXID)\r\n",
    )
    .await;
    let inbox = between(&out, "* OK [MAILBOXID (", ")");
    assert!(inbox.starts_with('F'), "{out}");
    assert!(
        out.contains(&format!("MAILBOXID ({inbox}))\r\ng OK")),
        "{out}"
    );
    let created = between(&out, "h OK [MAILBOXID (", ")");
    assert!(created.starts_with('F') && created != inbox, "{out}");
    let listed = format!("* STATUS Projects (MAILBOXID ({created}))\r\n");
    assert_eq!(out.matches(&listed).count(), 2, "LIST and STATUS: {out}");
    let (out, _) = talk(&mut s, "k FETCH 1 (EMAILID)\r\n").await;
    assert!(
        out.starts_with(&format!("* 1 FETCH (EMAILID ({email}))\r\nk OK")),
        "{out}"
    );
}

/// RFC 9051 once `ENABLE IMAP4rev2`: no `\Recent`, RECENT or UNSEEN; a LIST at SELECT;
/// SEARCH answered as ESEARCH; STATUS DELETED; a UID in every unsolicited FETCH.
#[tokio::test]
async fn imap4rev2_once_enabled() {
    let h = Harness::new();
    let mut s = h.session();
    let login = format!("a LOGIN {ADDRESS} {PASSWORD}\r\nb CAPABILITY\r\n");
    let (out, _) = talk(&mut s, &login).await;
    assert!(out.contains(" IMAP4rev1 IMAP4rev2 "), "{out}");
    let (out, _) = talk(&mut s, "c ENABLE IMAP4rev2\r\n").await;
    assert!(out.starts_with("* ENABLED IMAP4rev2\r\nc OK"), "{out}");
    let (out, _) = talk(&mut s, "d SELECT INBOX\r\n").await;
    assert!(out.contains("* LIST () \"/\" INBOX\r\n"), "{out}");
    for gone in ["RECENT", "UNSEEN", "\\Recent"] {
        assert!(!out.contains(gone), "{gone}: {out}");
    }
    let commands = "e FETCH 1 FLAGS\r\nf STORE 1 +FLAGS (\\Deleted)\r\ng UID SEARCH DELETED\r\n\
                    h SEARCH SUBJECT nothing-like-this\r\ni STATUS INBOX (DELETED)\r\n";
    let (out, _) = talk(&mut s, commands).await;
    assert!(out.starts_with("* 1 FETCH (FLAGS ())\r\n"), "{out}");
    assert!(
        out.contains("* 1 FETCH (UID 1 FLAGS (\\Deleted))\r\nf OK"),
        "{out}"
    );
    assert!(
        out.contains("* ESEARCH (TAG \"g\") UID ALL 1\r\ng OK"),
        "{out}"
    );
    assert!(out.contains("* ESEARCH (TAG \"h\")\r\nh OK"), "{out}");
    assert!(out.contains("* STATUS INBOX (DELETED 1)\r\ni OK"), "{out}");
}
