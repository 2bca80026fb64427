//! Generated messages: deterministic from (uidvalidity, user, uid, size, date),
//! so the farm stores a few numbers per message instead of its bytes. Small
//! ones are one text/plain part; large ones carry a base64 attachment, the
//! shape of real big mail.

use chrono::{DateTime, Utc};

/// The smallest generated message: its headers always fit.
pub const MIN_SIZE: usize = 1024;
/// Messages at least this large get a base64 attachment.
const ATTACHMENT_FROM: usize = 64 * 1024;
const LINE: usize = 76;

/// The Message-ID of a generated message; unique per farm start (the
/// uidvalidity is the start time), so runs never collide in one store.
pub fn message_id(uidvalidity: u32, user: u32, uid: u32) -> String {
    format!("<{uid}.{user}.{uidvalidity}@farm.invalid>")
}

/// `(user, uid)` of a farm Message-ID, with or without angle brackets.
pub fn parse_message_id(id: &str) -> Option<(u32, u32)> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    let local = id.strip_suffix("@farm.invalid")?;
    let mut parts = local.split('.');
    let uid = parts.next()?.parse().ok()?;
    let user = parts.next()?.parse().ok()?;
    Some((user, uid))
}

/// `(user, uid)` of a generated message's subject (the subject is what a
/// ticket shows, so the feed can be matched to injections).
pub fn parse_subject(subject: &str) -> Option<(u32, u32)> {
    let rest = subject.strip_prefix("Order ")?;
    let (uid, rest) = rest.split_once(" for user")?;
    let user = rest.strip_suffix(" needs help")?;
    Some((user.parse().ok()?, uid.parse().ok()?))
}

/// Renders the message the farm serves as `uid` of `user`: exactly `size`
/// bytes (at least [`MIN_SIZE`]); also the benches' sample of farm mail.
pub fn render(uidvalidity: u32, user: u32, uid: u32, size: usize, date: DateTime<Utc>) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(512));
    let id = message_id(uidvalidity, user, uid);
    let date = date.to_rfc2822();
    let sender = uid % 997;
    let head = format!(
        "Message-ID: {id}\r\nDate: {date}\r\nFrom: \"Customer {sender}\" <customer{sender}@example.com>\r\n\
         To: user{user}@farm.invalid\r\nSubject: Order {uid} for user{user} needs help\r\nMIME-Version: 1.0\r\n"
    );
    out.extend_from_slice(head.as_bytes());
    if size < ATTACHMENT_FROM {
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n\r\n");
        fill(&mut out, size, b"Hello, my order has not arrived yet. ");
    } else {
        out.extend_from_slice(
            b"Content-Type: multipart/mixed; boundary=\"farm-boundary\"\r\n\r\n\
              --farm-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
              The invoice is attached.\r\n\
              --farm-boundary\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\n\
              Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
              Content-Transfer-Encoding: base64\r\n\r\n",
        );
        let closing = b"\r\n--farm-boundary--\r\n";
        fill(
            &mut out,
            size.saturating_sub(closing.len()),
            b"JVBERi0xLjQK",
        );
        out.extend_from_slice(closing);
    }
    out
}

/// Appends CRLF-terminated lines cut from `pattern` until `out` is `size`
/// bytes long (a last short line makes the length exact).
fn fill(out: &mut Vec<u8>, size: usize, pattern: &[u8]) {
    let mut i = 0;
    while out.len() + 2 < size {
        let len = LINE.min(size - out.len() - 2);
        for _ in 0..len {
            out.push(pattern[i % pattern.len()]);
            i += 1;
        }
        out.extend_from_slice(b"\r\n");
    }
    // One byte short of a line: a trailing space keeps the size exact.
    out.resize(out.len().max(size), b' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_sizes_are_exact_and_ids_round_trip() {
        let date = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for size in [MIN_SIZE, 4096, 4097, ATTACHMENT_FROM, 5 * 1024 * 1024 + 3] {
            let m = render(7, 12, 34, size, date);
            assert_eq!(m.len(), size, "size {size}");
            assert!(m.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r'));
        }
        let m = render(7, 12, 34, 4096, date);
        let text = String::from_utf8(m).unwrap();
        assert!(text.starts_with("Message-ID: <34.12.7@farm.invalid>\r\n"));
        assert_eq!(parse_message_id("<34.12.7@farm.invalid>"), Some((12, 34)));
        assert_eq!(parse_message_id("34.12.7@farm.invalid"), Some((12, 34)));
        assert_eq!(parse_message_id("<a@example.com>"), None);
        assert!(text.contains("\r\nSubject: Order 34 for user12 needs help\r\n"));
        assert_eq!(
            parse_subject("Order 34 for user12 needs help"),
            Some((12, 34))
        );
        assert_eq!(parse_subject("Re: Order 34 for user12 needs help"), None);
    }
}
