//! Parse stage: raw RFC 5322 bytes → [`Parsed`] (decoded content plus the
//! headers the filter needs). Pure and panic-free on any input; the actor in
//! `actor.rs` runs it on dedicated threads.

mod actor;
mod digest;

use chrono::{DateTime, Utc};
use mail_parser::{Addr, HeaderValue, MessageParser, MimeHeaders, PartType};

pub use actor::{ParseJob, Parser};
pub use digest::{sha256_hex, sha256_hex_all};

use crate::store::{Address, Attachment, Importance, MessageContent};

/// A parsed message: what the ticket stores, plus the routing headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Decoded content.
    pub content: MessageContent,
    /// Message-IDs this one replies to (In-Reply-To, then References, newest first).
    pub replies_to: Vec<String>,
    /// Why it looks like an automatic reply, if it does.
    pub auto_reply: Option<String>,
}

/// Why a message could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message_unparseable: {reason}")]
pub struct ParseError {
    /// What could not be read.
    pub reason: String,
    /// The message's blob key (its [`sha256_hex`]): it is still stored.
    pub raw_sha256: String,
}

/// Parses one raw message. Anything mail-parser can read at all becomes a
/// [`Parsed`]; only input with no header structure is an error.
pub fn parse(raw: &[u8]) -> Result<Parsed, ParseError> {
    parse_keyed(raw, sha256_hex(raw))
}

/// [`parse`] for a message whose blob key `sha` (its [`sha256_hex`]) is
/// already known: the parser threads hash a hand-over's messages together
/// ([`sha256_hex_all`]).
pub fn parse_keyed(raw: &[u8], sha: String) -> Result<Parsed, ParseError> {
    let Some(msg) = MessageParser::default().parse(raw).filter(looks_like_mail) else {
        return Err(ParseError {
            reason: "no From, To, Cc, Subject, Date or Message-ID header could be read".to_owned(),
            raw_sha256: sha,
        });
    };

    let message_id = msg
        .message_id()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        // Stable for the same bytes, so a redelivered copy still deduplicates.
        .unwrap_or_else(|| format!("{sha}@mailgate.invalid"));
    let text_body = msg.body_text(0).map(|s| s.into_owned());
    // Only a real text/html part: for a text-only message mail-parser would
    // convert the text to HTML, a copy nobody asked for (3 % of the CPU
    // under load, and as much again to store it).
    let html_body = msg.html_part(0).and_then(|p| match &p.body {
        PartType::Html(html) => Some(html.clone().into_owned()),
        _ => None,
    });
    let attachments = msg
        .attachments()
        .map(|p| Attachment {
            name: p.attachment_name().map(str::to_owned),
            content_type: p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(sub) => format!("{}/{}", c.ctype(), sub),
                    None => c.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            size: match &p.body {
                PartType::Message(m) => m.raw_message().len() as u64,
                _ => p.contents().len() as u64,
            },
        })
        .collect();

    let mut replies_to = ids(msg.in_reply_to());
    let mut refs = ids(msg.references());
    refs.reverse();
    replies_to.extend(refs);

    let marks = Marks::of(&msg, raw);
    let content = MessageContent {
        message_id,
        subject: msg.subject().unwrap_or_default().to_owned(),
        from: msg
            .from()
            .and_then(|a| a.first())
            .map(address)
            .unwrap_or_default(),
        to: msg
            .to()
            .map(|a| a.iter().map(address).collect())
            .unwrap_or_default(),
        cc: msg
            .cc()
            .map(|a| a.iter().map(address).collect())
            .unwrap_or_default(),
        date: msg
            .date()
            .and_then(|d| DateTime::<Utc>::from_timestamp(d.to_timestamp(), 0)),
        text_body,
        html_body,
        attachments,
        importance: marks.importance(),
        raw_sha256: sha,
        size: raw.len() as u64,
    };
    Ok(Parsed {
        content,
        replies_to,
        auto_reply: marks.auto_reply(),
    })
}

/// mail-parser reads almost anything as headers; a message needs at least
/// one of the fields every mail client writes.
fn looks_like_mail(m: &mail_parser::Message<'_>) -> bool {
    m.from().is_some()
        || m.to().is_some()
        || m.cc().is_some()
        || m.subject().is_some()
        || m.date().is_some()
        || m.message_id().is_some()
}

fn address(a: &Addr<'_>) -> Address {
    Address {
        name: a.name().map(str::to_owned).filter(|s| !s.is_empty()),
        address: a.address().map(str::to_lowercase),
    }
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.trim().to_owned()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.trim().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// The headers that mark importance and automatic replies; a [`Mark`]
/// names one by its index here.
const MARKING: [&str; 8] = [
    "Importance",
    "X-MSMail-Priority",
    "X-Priority",
    "Auto-Submitted",
    "X-Autoreply",
    "X-Autorespond",
    "X-Auto-Response-Suppress",
    "Precedence",
];

/// One of the [`MARKING`] headers.
#[derive(Clone, Copy)]
enum Mark {
    Importance,
    MsMailPriority,
    XPriority,
    AutoSubmitted,
    XAutoreply,
    XAutorespond,
    XAutoResponseSuppress,
    Precedence,
}

/// The trimmed raw values of the [`MARKING`] headers (the last of repeated
/// ones), found in one pass over the header block: looked up one by one,
/// they took eight passes.
struct Marks<'a>([Option<&'a str>; MARKING.len()]);

impl<'a> Marks<'a> {
    fn of(msg: &mail_parser::Message<'_>, raw: &'a [u8]) -> Self {
        let mut found = [None; MARKING.len()];
        for h in msg.headers() {
            let name = h.name.as_str();
            if let Some(i) = MARKING.iter().position(|m| m.eq_ignore_ascii_case(name)) {
                found[i] = raw
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::trim);
            }
        }
        Self(found)
    }

    fn get(&self, mark: Mark) -> Option<&'a str> {
        self.0[mark as usize]
    }

    fn importance(&self) -> Importance {
        let marked = self
            .get(Mark::Importance)
            .or_else(|| self.get(Mark::MsMailPriority))
            .map(str::to_ascii_lowercase);
        match marked.as_deref() {
            Some("high") => return Importance::High,
            Some("low") => return Importance::Low,
            _ => {}
        }
        match self.get(Mark::XPriority).and_then(|p| p.chars().next()) {
            Some('1' | '2') => Importance::High,
            Some('4' | '5') => Importance::Low,
            _ => Importance::Normal,
        }
    }

    /// RFC 3834 and the de-facto headers of Exchange and common autoresponders.
    fn auto_reply(&self) -> Option<String> {
        if let Some(v) = self.get(Mark::AutoSubmitted) {
            if !v.eq_ignore_ascii_case("no") {
                return Some(format!("Auto-Submitted: {v}"));
            }
        }
        for mark in [
            Mark::XAutoreply,
            Mark::XAutorespond,
            Mark::XAutoResponseSuppress,
        ] {
            if let Some(v) = self.get(mark) {
                let suppress = matches!(mark, Mark::XAutoResponseSuppress);
                if !suppress || v.to_ascii_lowercase().contains("all") {
                    return Some(format!("{}: {v}", MARKING[mark as usize]));
                }
            }
        }
        if let Some(v) = self.get(Mark::Precedence) {
            if ["auto_reply", "bulk", "junk", "list"].contains(&v.to_ascii_lowercase().as_str()) {
                return Some(format!("Precedence: {v}"));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_simple_message() {
        let raw = b"From: \"Kim\" <Kim@Example.com>\r\nTo: support@acme.test\r\nSubject: =?UTF-8?B?7JWI64WV?=\r\nMessage-ID: <a1@example.com>\r\nImportance: high\r\n\r\nHello\r\n";
        let p = parse(raw).unwrap();
        assert_eq!(p.content.subject, "안녕");
        assert_eq!(p.content.message_id, "a1@example.com");
        assert_eq!(p.content.from.address.as_deref(), Some("kim@example.com"));
        assert_eq!(p.content.importance, Importance::High);
        assert_eq!(p.content.text_body.as_deref().map(str::trim), Some("Hello"));
        assert!(p.auto_reply.is_none());
    }

    #[test]
    fn missing_message_id_is_synthesised_stably() {
        let raw = b"From: a@b.test\r\nSubject: x\r\n\r\nbody\r\n";
        let a = parse(raw).unwrap();
        assert_eq!(a.content.message_id, parse(raw).unwrap().content.message_id);
        assert!(a.content.message_id.ends_with("@mailgate.invalid"));
    }

    #[test]
    fn auto_replies_and_threads_are_recognised() {
        let raw = b"From: a@b.test\r\nAuto-Submitted: auto-replied\r\nIn-Reply-To: <x@y>\r\nReferences: <w@y> <x@y>\r\n\r\nOut of office\r\n";
        let p = parse(raw).unwrap();
        assert_eq!(
            p.auto_reply.as_deref(),
            Some("Auto-Submitted: auto-replied")
        );
        assert_eq!(p.replies_to, vec!["x@y", "x@y", "w@y"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"").is_err());
        assert!(parse(&[0xff; 64]).is_err());
    }
}
