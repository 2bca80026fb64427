//! Generated messages: deterministic from (uidvalidity, user, uid, size, date),
//! so the farm keeps only those numbers for a large message and renders it
//! when fetched (small ones it renders once, when injected). Small
//! ones are one text/plain part; large ones carry a base64 attachment, the
//! shape of real big mail. Their bytes compress like real mail does: the
//! text is words drawn from a vocabulary (≈ 3:1 with zstd, as English prose),
//! the attachment random base64 (≈ 4:3, as an encoded PDF or image), so
//! the store's compression is measured on realistic input.

use std::{io::Write, sync::OnceLock};

use chrono::{DateTime, Utc};

/// The smallest generated message: its headers always fit.
pub const MIN_SIZE: usize = 1024;
/// Messages at least this large get a base64 attachment.
const ATTACHMENT_FROM: usize = 64 * 1024;
const LINE: usize = 76;
/// The words of generated text.
const WORDS: [&str; 64] = [
    "the", "order", "has", "not", "arrived", "yet", "and", "I", "was", "told", "it", "would", "be",
    "here", "by", "Monday", "please", "check", "tracking", "number", "for", "my", "invoice",
    "account", "refund", "payment", "card", "charged", "twice", "this", "month", "can", "you",
    "help", "with", "delivery", "address", "changed", "last", "week", "package", "damaged", "box",
    "missing", "item", "size", "wrong", "colour", "return", "label", "thanks", "regards",
    "customer", "service", "team", "support", "ticket", "reply", "soon", "today", "urgent",
    "again", "still", "waiting",
];
/// Bytes of generated text messages copy from.
const TEXT_POOL: usize = 256 * 1024;
/// Bytes of base64 attachments copy from.
const BASE64_POOL: usize = 1024 * 1024;
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

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
    render_into(&mut out, uidvalidity, user, uid, size, date);
    out
}

/// [`render`], appended to `out` (the farm writes it straight into a FETCH
/// response).
pub(crate) fn render_into(
    out: &mut Vec<u8>,
    uidvalidity: u32,
    user: u32,
    uid: u32,
    size: usize,
    date: DateTime<Utc>,
) {
    // Where the message ends in `out`.
    let end = out.len() + size;
    let sender = uid % 997;
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "Message-ID: {}\r\nDate: {}\r\n\
         From: \"Customer {sender}\" <customer{sender}@example.com>\r\n\
         To: user{user}@farm.invalid\r\nSubject: Order {uid} for user{user} needs help\r\n\
         MIME-Version: 1.0\r\n",
        message_id(uidvalidity, user, uid),
        date.to_rfc2822()
    );
    // Where in the pool this message's body starts.
    let start = Draw(seed(uidvalidity, user, uid)).next();
    if size < ATTACHMENT_FROM {
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n\r\n");
        fill(out, end, &pools().text, start);
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
            out,
            end.saturating_sub(closing.len()),
            &pools().base64,
            start,
        );
        out.extend_from_slice(closing);
    }
}

/// Generated text and base64, made once: a message copies its body from
/// them at an offset of its own (rendering is on the farm's serving path,
/// so it must cost little more than a copy).
struct Pools {
    text: Vec<u8>,
    base64: Vec<u8>,
}

fn pools() -> &'static Pools {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    POOLS.get_or_init(|| {
        let mut rng = Draw(0x005E_ED0F_FA12);
        let mut text = Vec::with_capacity(TEXT_POOL + 16);
        while text.len() < TEXT_POOL {
            // Every eighth word or so a number (orders, tracking, amounts),
            // as in real support mail.
            let draw = rng.next();
            if draw.is_multiple_of(8) {
                text.extend_from_slice((draw % 10_000_000).to_string().as_bytes());
            } else {
                text.extend_from_slice(WORDS[draw % WORDS.len()].as_bytes());
            }
            text.push(b' ');
        }
        // Random base64 digits: six random bits each, as encoded binary.
        let base64 = (0..BASE64_POOL).map(|_| BASE64[rng.next() & 63]).collect();
        Pools { text, base64 }
    })
}

fn seed(uidvalidity: u32, user: u32, uid: u32) -> u64 {
    let seed = (u64::from(uidvalidity) << 32) ^ (u64::from(user) << 20) ^ u64::from(uid);
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// A small deterministic generator (xorshift64*).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize
    }
}

/// Appends CRLF-terminated lines of at most [`LINE`] bytes, copied from
/// `pool` (wrapping around) from `start` on, until `out` is `size` bytes
/// long (a last short line and trailing spaces make the length exact).
fn fill(out: &mut Vec<u8>, size: usize, pool: &[u8], start: usize) {
    let mut at = start % pool.len();
    while out.len() + 2 < size {
        let len = LINE.min(size - out.len() - 2).min(pool.len() - at);
        out.extend_from_slice(&pool[at..at + len]);
        at = (at + len) % pool.len();
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
