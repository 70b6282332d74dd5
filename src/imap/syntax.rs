//! A small reader of IMAP's syntax (RFC 3501 §9) for the commands `extension` recognises
//! around imap-codec: atoms, strings, literals as the fragmentizer delivers them (inline,
//! after their `{n}` line), parenthesized lists.

pub struct Parser<'a> {
    pub input: &'a [u8],
    pub pos: usize,
}

/// RFC 3501 §9 ATOM-CHAR: anything printable but `(){ %*"\]`.
pub fn atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b)
}

impl<'a> Parser<'a> {
    pub fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    pub fn atom(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(atom_char) {
            self.pos += 1;
        }
        (self.pos > start)
            .then(|| String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
    }

    pub fn space(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b' ') => {
                self.pos += 1;
                Ok(())
            }
            _ => Err("expected a space between arguments".into()),
        }
    }

    pub fn end(&mut self) -> Result<(), String> {
        match &self.input[self.pos..] {
            b"\r\n" | b"\n" => Ok(()),
            _ => Err("unexpected text after the arguments".into()),
        }
    }

    pub fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {:?}", byte as char))
        }
    }

    /// `(item item …)`, items read by `item`.
    pub fn paren_list(
        &mut self,
        item: impl Fn(&mut Self) -> Result<String, String>,
    ) -> Result<Vec<String>, String> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        while self.peek() != Some(b')') {
            if !items.is_empty() {
                self.space()?;
            }
            items.push(item(self)?);
        }
        self.pos += 1;
        Ok(items)
    }

    /// RFC 3501 list-mailbox: atom characters and the wildcards, or a string.
    pub fn list_mailbox(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| atom_char(b) || b"%*]".contains(&b))
                {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err("expected a mailbox pattern".into());
                }
                Ok(String::from_utf8_lossy(&self.input[start..self.pos]).into_owned())
            }
        }
    }

    pub fn astring(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => self
                .atom()
                .ok_or_else(|| "expected an argument".to_string()),
        }
    }

    pub fn quoted(&mut self) -> Result<String, String> {
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

    pub fn literal(&mut self) -> Result<String, String> {
        let data = self.literal_data()?;
        Ok(String::from_utf8_lossy(data).into_owned())
    }

    /// A literal's bytes, `{n}` or BINARY's `~{n}` (RFC 3516 §4.4), as the fragmentizer
    /// delivers it: the announcement's line, then the bytes.
    pub fn literal_data(&mut self) -> Result<&'a [u8], String> {
        if self.peek() == Some(b'~') {
            self.pos += 1;
        }
        let input: &'a [u8] = self.input;
        let rest = &input[self.pos..];
        if rest.first() != Some(&b'{') {
            return Err("expected a literal".into());
        }
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
        start += match &input[start..] {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            _ => return Err("a literal's length must end its line".into()),
        };
        let end = start
            .checked_add(length)
            .ok_or("literal longer than anything a client can send")?;
        let data = input
            .get(start..end)
            .ok_or("literal shorter than announced")?;
        self.pos = end;
        Ok(data)
    }

    /// Whether the next word is `word` (any case); if so, it is read.
    pub fn keyword(&mut self, word: &str) -> bool {
        let end = self.pos + word.len();
        let matches = self
            .input
            .get(self.pos..end)
            .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
            && !self.input.get(end).copied().is_some_and(atom_char);
        if matches {
            self.pos = end;
        }
        matches
    }
}
