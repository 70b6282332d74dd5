//! BODYSTRUCTURE and ENVELOPE of the messages in `tests/messages/`, against hand-verified
//! expectations in the `.expected` file beside each (RFC 3501 §7.4.2). Set
//! `MAILGATE_PRINT_CORPUS=1` to print what the code produces, for a new message; never copy
//! it into `.expected` without checking it against the RFC by hand.

use super::wire;
use crate::mail::MessageSummary;
use std::path::Path;

fn render(raw: &[u8]) -> String {
    let summary = MessageSummary::parse(raw);
    let mut b = Vec::new();
    wire::body_structure(&mut b, &summary.body, true);
    let mut e = Vec::new();
    wire::envelope(&mut e, &summary.envelope);
    format!(
        "BODYSTRUCTURE {}\nENVELOPE {}\n",
        String::from_utf8_lossy(&b),
        String::from_utf8_lossy(&e)
    )
}

#[test]
fn bodystructure_and_envelope_of_the_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/messages");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus shrank");
    let print = std::env::var_os("MAILGATE_PRINT_CORPUS").is_some();
    let mut failures = Vec::new();
    for path in files {
        let got = render(&std::fs::read(&path).unwrap());
        if print {
            println!("== {}\n{got}", path.display());
            continue;
        }
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no .expected", path.display()));
        if got != expected {
            failures.push(format!(
                "{}\n  expected: {expected}  got:      {got}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
