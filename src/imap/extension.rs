//! The commands imap-codec does not parse, recognised around it: the ACL extension
//! (RFC 4314 §3). A complete message (literals inline, as the fragmentizer delivers it) is
//! checked here first; anything else goes to imap-codec unchanged.

/// A command of an extension imap-codec lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtCommand {
    MyRights {
        mailbox: String,
    },
    GetAcl {
        mailbox: String,
    },
    ListRights {
        mailbox: String,
        identifier: String,
    },
    SetAcl {
        mailbox: String,
        identifier: String,
        rights: String,
    },
    DeleteAcl {
        mailbox: String,
        identifier: String,
    },
}

/// `None` when the message is not one of ours; otherwise the tag and the command, or the tag
/// and why its arguments are wrong.
pub fn recognize(message: &[u8]) -> Option<(String, Result<ExtCommand, String>)> {
    let mut p = Parser {
        input: message,
        pos: 0,
    };
    let tag = p.atom()?;
    p.space().ok()?;
    let name = p.atom()?.to_ascii_uppercase();
    let arity = match name.as_str() {
        "MYRIGHTS" | "GETACL" => 1,
        "LISTRIGHTS" | "DELETEACL" => 2,
        "SETACL" => 3,
        _ => return None,
    };
    let args = (0..arity)
        .map(|_| p.space().and_then(|_| p.astring()))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|args| p.end().map(|_| args));
    let command = args.map(|mut a| {
        let mut next = || a.remove(0);
        match name.as_str() {
            "MYRIGHTS" => ExtCommand::MyRights { mailbox: next() },
            "GETACL" => ExtCommand::GetAcl { mailbox: next() },
            "LISTRIGHTS" => ExtCommand::ListRights {
                mailbox: next(),
                identifier: next(),
            },
            "DELETEACL" => ExtCommand::DeleteAcl {
                mailbox: next(),
                identifier: next(),
            },
            _ => ExtCommand::SetAcl {
                mailbox: next(),
                identifier: next(),
                rights: next(),
            },
        }
    });
    Some((tag, command.map_err(|e| format!("{name}: {e}"))))
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

/// RFC 3501 §9 ATOM-CHAR: anything printable but `(){ %*"\]`.
fn atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn atom(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(atom_char) {
            self.pos += 1;
        }
        (self.pos > start)
            .then(|| String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
    }

    fn space(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b' ') => {
                self.pos += 1;
                Ok(())
            }
            _ => Err("expected a space between arguments".into()),
        }
    }

    fn end(&mut self) -> Result<(), String> {
        match &self.input[self.pos..] {
            b"\r\n" | b"\n" => Ok(()),
            _ => Err("unexpected text after the arguments".into()),
        }
    }

    fn astring(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => self
                .atom()
                .ok_or_else(|| "expected an argument".to_string()),
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err("bad escape in a quoted string".into()),
                    }
                    self.pos += 1;
                }
                Some(b'\r' | b'\n') | None => return Err("unterminated quoted string".into()),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<String, String> {
        let rest = &self.input[self.pos..];
        let close = rest
            .iter()
            .position(|b| *b == b'}')
            .ok_or("unterminated literal")?;
        let spec = std::str::from_utf8(&rest[1..close]).map_err(|_| "bad literal length")?;
        let length: usize = spec
            .trim_end_matches('+')
            .parse()
            .map_err(|_| "bad literal length")?;
        let mut start = self.pos + close + 1;
        start += match &self.input[start..] {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            _ => return Err("a literal's length must end its line".into()),
        };
        let data = self
            .input
            .get(start..start + length)
            .ok_or("literal shorter than announced")?;
        self.pos = start + length;
        Ok(String::from_utf8_lossy(data).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_commands_are_recognised_with_every_string_form() {
        assert_eq!(
            recognize(b"a1 MYRIGHTS INBOX\r\n"),
            Some((
                "a1".into(),
                Ok(ExtCommand::MyRights {
                    mailbox: "INBOX".into()
                })
            ))
        );
        assert_eq!(
            recognize(b"a2 setacl \"Shared/x\" {4}\r\nuser +lr\r\n"),
            Some((
                "a2".into(),
                Ok(ExtCommand::SetAcl {
                    mailbox: "Shared/x".into(),
                    identifier: "user".into(),
                    rights: "+lr".into()
                })
            ))
        );
    }

    #[test]
    fn other_commands_are_left_to_imap_codec() {
        assert_eq!(recognize(b"a SELECT INBOX\r\n"), None);
        assert_eq!(recognize(b"garbage"), None);
    }

    #[test]
    fn bad_arguments_keep_the_tag() {
        let (tag, result) = recognize(b"t GETACL\r\n").unwrap();
        assert_eq!(tag, "t");
        assert!(result.is_err());
        let (_, result) = recognize(b"t GETACL \"open\r\n").unwrap();
        assert!(result.is_err());
        let (_, result) = recognize(b"t DELETEACL INBOX {99}\r\nshort\r\n").unwrap();
        assert!(result.is_err());
    }
}
