//! Which command each state allows (RFC 3501 §6, RFC 9051 §6 and the extensions' own
//! sections), as data checked once, before a command is decoded or dispatched: a command in
//! the wrong state gets a BAD that says which state it needs.

use super::session::State;

/// The states in which a command is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Valid {
    /// RFC 3501 §6.1: any state.
    Any,
    /// §6.2: before login only.
    NotAuthenticated,
    /// §6.3: once logged in, a folder selected or not.
    LoggedIn,
    /// §6.4: with a folder selected.
    Selected,
}

use Valid::*;

const COMMANDS: &[(&str, Valid)] = &[
    ("CAPABILITY", Any),
    ("NOOP", Any),
    ("LOGOUT", Any),
    ("ID", Any),
    ("STARTTLS", NotAuthenticated),
    ("LOGIN", NotAuthenticated),
    ("AUTHENTICATE", NotAuthenticated),
    ("ENABLE", LoggedIn),
    ("IDLE", LoggedIn),
    ("SELECT", LoggedIn),
    ("EXAMINE", LoggedIn),
    ("CREATE", LoggedIn),
    ("DELETE", LoggedIn),
    ("RENAME", LoggedIn),
    ("SUBSCRIBE", LoggedIn),
    ("UNSUBSCRIBE", LoggedIn),
    ("LIST", LoggedIn),
    ("LSUB", LoggedIn),
    ("STATUS", LoggedIn),
    ("APPEND", LoggedIn),
    ("NAMESPACE", LoggedIn),
    ("GETQUOTA", LoggedIn),
    ("GETQUOTAROOT", LoggedIn),
    ("SETQUOTA", LoggedIn),
    ("MYRIGHTS", LoggedIn),
    ("GETACL", LoggedIn),
    ("LISTRIGHTS", LoggedIn),
    ("SETACL", LoggedIn),
    ("DELETEACL", LoggedIn),
    ("NOTIFY", LoggedIn),
    // RFC 3501 §6.4.1 puts CHECK in the selected state; it asks for nothing a session
    // without a folder lacks, so it is taken there too.
    ("CHECK", LoggedIn),
    ("CLOSE", Selected),
    ("UNSELECT", Selected),
    ("EXPUNGE", Selected),
    ("SEARCH", Selected),
    ("FETCH", Selected),
    ("STORE", Selected),
    ("COPY", Selected),
    ("MOVE", Selected),
    ("UID", Selected),
    ("SORT", Selected),
    ("THREAD", Selected),
    ("CANCELUPDATE", Selected),
];

/// Where `verb` is valid; `None` for a verb this server does not know (the decoder says so).
pub fn valid(verb: &str) -> Option<Valid> {
    COMMANDS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(verb))
        .map(|(_, valid)| *valid)
}

/// Why `verb` cannot run in `state`, if it cannot.
pub fn refusal(state: &State, verb: &str) -> Option<String> {
    let logged_in = matches!(
        state,
        State::Authenticated(_) | State::Selected(..) | State::EmptyInbox(_)
    );
    let selected = matches!(state, State::Selected(..) | State::EmptyInbox(_));
    refusal_in(logged_in, selected, verb)
}

fn refusal_in(logged_in: bool, selected: bool, verb: &str) -> Option<String> {
    let verb = verb.to_ascii_uppercase();
    match valid(&verb)? {
        Any => None,
        NotAuthenticated if logged_in => Some(format!("{verb} is only valid before login")),
        LoggedIn | Selected if !logged_in => Some(format!("{verb} needs a login first")),
        Selected if !selected => Some(format!("{verb} needs a selected folder")),
        _ => None,
    }
}

/// The tag and verb of a command as it came (`a UID FETCH …` → `a`, `UID`).
pub fn tag_and_verb(message: &[u8]) -> Option<(&str, &str)> {
    let line = message.split(|b| *b == b'\r' || *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    let tag = words.next().filter(|t| !t.is_empty())?;
    let verb = words.next().filter(|v| !v.is_empty())?;
    Some((tag, verb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_refuses_what_it_does_not_allow() {
        let selected_only = ["FETCH", "uid", "CLOSE", "SEARCH", "CANCELUPDATE"];
        let logged_in = [
            "SELECT", "APPEND", "LIST", "ENABLE", "IDLE", "NOTIFY", "GETACL",
        ];
        let before_login = ["LOGIN", "AUTHENTICATE", "STARTTLS"];
        // (logged in, selected)
        let (not_authenticated, authenticated, selected) =
            ((false, false), (true, false), (true, true));
        let why = |(l, s): (bool, bool), verb: &str| refusal_in(l, s, verb);
        for verb in selected_only.iter().chain(&logged_in) {
            let text = why(not_authenticated, verb).unwrap();
            assert!(text.ends_with("needs a login first"), "{text}");
            assert_eq!(why(selected, verb), None);
        }
        for verb in selected_only {
            let text = why(authenticated, verb).unwrap();
            assert!(text.ends_with("needs a selected folder"), "{text}");
        }
        for verb in logged_in {
            assert_eq!(why(authenticated, verb), None);
        }
        for verb in before_login {
            assert_eq!(why(not_authenticated, verb), None);
            let text = why(selected, verb).unwrap();
            assert!(text.ends_with("is only valid before login"), "{text}");
        }
        for verb in ["CAPABILITY", "NOOP", "LOGOUT", "ID", "FROBNICATE"] {
            for state in [not_authenticated, authenticated, selected] {
                assert_eq!(why(state, verb), None, "{verb}");
            }
        }
    }

    #[test]
    fn the_verb_is_the_second_word() {
        assert_eq!(
            tag_and_verb(b"a1 UID FETCH 1 FLAGS\r\n"),
            Some(("a1", "UID"))
        );
        assert_eq!(tag_and_verb(b"a1\r\n"), None);
        assert_eq!(tag_and_verb(b""), None);
    }
}
