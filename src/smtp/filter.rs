//! The spam filter (issue 13): rspamd, asked over its HTTP protocol (`POST /checkv2`, the
//! message as the body, the envelope in headers), its action honoured. rspamd decides; this
//! module only carries the question and the answer.

use super::authenticity::Sender;
use super::delivery::Filing;
use crate::config::{FilterConfig, Unreachable};
use serde::Deserialize;
use std::time::Duration;

/// The filter named by `[filter]`.
pub struct Filter {
    client: reqwest::Client,
    url: String,
    unreachable: Unreachable,
}

/// What becomes of a message the filter saw.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Delivered to `filing`, with `header` (`X-Spam-Status:`, CRLF included) on top and,
    /// when rspamd rewrote it, a new subject.
    Deliver {
        header: String,
        filing: Filing,
        subject: Option<String>,
    },
    /// Refused at the end of DATA.
    Refuse {
        code: u16,
        status: &'static str,
        text: String,
    },
}

/// The part of rspamd's answer read here.
#[derive(Deserialize)]
struct Answer {
    action: String,
    #[serde(default)]
    score: f64,
    #[serde(default)]
    required_score: f64,
    /// The subject to use, for "rewrite subject".
    subject: Option<String>,
    #[serde(default)]
    messages: Messages,
}

#[derive(Default, Deserialize)]
struct Messages {
    smtp_message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("the spam filter's HTTP client cannot start: {0}")]
pub struct FilterError(#[from] reqwest::Error);

impl Filter {
    /// The configured filter, if any.
    pub fn new(config: &FilterConfig) -> Result<Option<Filter>, FilterError> {
        if config.rspamd.is_empty() {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds))
            .build()?;
        Ok(Some(Filter {
            client,
            url: format!("{}/checkv2", config.rspamd.trim_end_matches('/')),
            unreachable: config.unreachable,
        }))
    }

    /// rspamd's verdict on `message` from `sender` to `recipients`.
    pub async fn check(
        &self,
        sender: &Sender<'_>,
        recipients: &[&str],
        message: bytes::Bytes,
    ) -> Outcome {
        match self.ask(sender, recipients, message).await {
            Ok(answer) => verdict(answer),
            Err(why) => {
                tracing::warn!(error = %why, "the spam filter could not be asked");
                match self.unreachable {
                    Unreachable::Accept => Outcome::Deliver {
                        header: "X-Spam-Status: unchecked (the filter could not be asked)\r\n"
                            .into(),
                        filing: Filing::Inbox,
                        subject: None,
                    },
                    Unreachable::Defer => Outcome::Refuse {
                        code: 451,
                        status: "4.7.1",
                        text: "The message cannot be checked now; try again later".into(),
                    },
                }
            }
        }
    }

    async fn ask(
        &self,
        sender: &Sender<'_>,
        recipients: &[&str],
        message: bytes::Bytes,
    ) -> Result<Answer, String> {
        let mut request = self
            .client
            .post(&self.url)
            .header("IP", sender.ip.to_string())
            .header("Helo", sender.helo)
            .header("From", sender.mail_from);
        for rcpt in recipients {
            request = request.header("Rcpt", *rcpt);
        }
        let response = request
            .body(message)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("rspamd answered {}", response.status()));
        }
        response.json::<Answer>().await.map_err(|e| e.to_string())
    }
}

/// rspamd's action, as the server honours it (rspamd's own list of actions).
fn verdict(answer: Answer) -> Outcome {
    let status = |spam: &str| {
        format!(
            "X-Spam-Status: {spam}, score={:.2} required={:.2} action={}\r\n",
            answer.score, answer.required_score, answer.action
        )
    };
    match answer.action.as_str() {
        "reject" => Outcome::Refuse {
            code: 550,
            status: "5.7.1",
            text: answer
                .messages
                .smtp_message
                .filter(|m| !m.is_empty())
                .map_or_else(
                    || "The message was judged spam".into(),
                    |m| format!("The message was judged spam: {}", one_line(&m)),
                ),
        },
        "soft reject" | "greylist" => Outcome::Refuse {
            code: 451,
            status: "4.7.1",
            text: "The message is deferred by the spam filter; try again later".into(),
        },
        "add header" => Outcome::Deliver {
            header: status("Yes"),
            filing: Filing::Junk,
            subject: None,
        },
        "rewrite subject" => Outcome::Deliver {
            header: status("Yes"),
            filing: Filing::Junk,
            subject: answer.subject.clone(),
        },
        _ => Outcome::Deliver {
            header: status("No"),
            filing: Filing::Inbox,
            subject: None,
        },
    }
}

/// rspamd's text in a reply line: no line breaks, no control characters, not too long.
fn one_line(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// `raw` with its `Subject:` replaced by `subject` (RFC 2047 encoded when not ASCII).
pub fn with_subject(raw: &[u8], subject: &str) -> Vec<u8> {
    let is_subject = |field: &[u8]| {
        field
            .split(|b| *b == b':')
            .next()
            .is_some_and(|name| name.trim_ascii().eq_ignore_ascii_case(b"subject"))
    };
    let rest =
        super::submission::without_fields_where(raw, is_subject).unwrap_or_else(|| raw.to_vec());
    let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    let value = if subject.is_ascii() {
        subject
    } else {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(subject.as_bytes());
        format!("=?UTF-8?B?{encoded}?=")
    };
    let mut out = format!("Subject: {value}\r\n").into_bytes();
    out.extend_from_slice(&rest);
    out
}

/// Whether a header field is one a filter writes (the sender's own must not pass for ours).
pub fn is_spam_status(field: &[u8]) -> bool {
    field
        .split(|b| *b == b':')
        .next()
        .is_some_and(|name| name.trim_ascii().eq_ignore_ascii_case(b"x-spam-status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(action: &str) -> Answer {
        Answer {
            action: action.into(),
            score: 7.5,
            required_score: 15.0,
            subject: Some("*** SPAM *** hello".into()),
            messages: Messages {
                smtp_message: Some("Gtube pattern\r\n".into()),
            },
        }
    }

    #[test]
    fn each_rspamd_action_is_honoured() {
        assert_eq!(
            verdict(answer("reject")),
            Outcome::Refuse {
                code: 550,
                status: "5.7.1",
                text: "The message was judged spam: Gtube pattern".into()
            }
        );
        for deferred in ["soft reject", "greylist"] {
            assert!(matches!(
                verdict(answer(deferred)),
                Outcome::Refuse { code: 451, .. }
            ));
        }
        let Outcome::Deliver {
            header,
            filing,
            subject,
        } = verdict(answer("add header"))
        else {
            panic!("delivered")
        };
        assert_eq!(filing, Filing::Junk);
        assert_eq!(subject, None);
        assert_eq!(
            header,
            "X-Spam-Status: Yes, score=7.50 required=15.00 action=add header\r\n"
        );
        let Outcome::Deliver {
            subject, filing, ..
        } = verdict(answer("rewrite subject"))
        else {
            panic!("delivered")
        };
        assert_eq!(
            (subject.as_deref(), filing),
            (Some("*** SPAM *** hello"), Filing::Junk)
        );
        let Outcome::Deliver { header, filing, .. } = verdict(answer("no action")) else {
            panic!("delivered")
        };
        assert_eq!(filing, Filing::Inbox);
        assert!(
            header.starts_with("X-Spam-Status: No, score=7.50"),
            "{header}"
        );
    }

    #[test]
    fn a_rewritten_subject_replaces_the_old_one_whole() {
        let raw = b"From: a@b.example\r\nSubject: old\r\n\tfolded\r\nTo: c@d.example\r\n\r\nSubject: body\r\n";
        let out = with_subject(raw, "*** SPAM *** old");
        assert_eq!(
            out,
            b"Subject: *** SPAM *** old\r\nFrom: a@b.example\r\nTo: c@d.example\r\n\r\nSubject: body\r\n".to_vec()
        );
        let out = String::from_utf8(with_subject(raw, "é")).unwrap();
        assert!(out.starts_with("Subject: =?UTF-8?B?w6k=?=\r\n"), "{out}");
    }
}
