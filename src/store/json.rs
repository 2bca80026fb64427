//! How message contents and entries are encoded for the store: JSON, with
//! the message bodies (most of a record's bytes) escaped sixteen bytes at
//! a time (serde_json escapes byte by byte: that was a third of a parser
//! thread's time on 4 KiB messages). An entry record names where its
//! encoded content lies in the segments (schema v2) or, written by v1,
//! holds it inline.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    model::{Address, Attachment, Entry, Importance, MessageContent, NewEntry, Source},
    segments::BlobRef,
    StoreError,
};

/// Appends `s` to `out` as a JSON string literal, escaped exactly as
/// serde_json escapes it.
pub(super) fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut clean = 0; // bytes[clean..at] need no escape and are not yet copied
    loop {
        let at = next_escape(bytes, clean);
        if at == bytes.len() {
            break;
        }
        out.extend_from_slice(&bytes[clean..at]);
        push_escape(out, bytes[at]);
        clean = at + 1;
    }
    out.extend_from_slice(&bytes[clean..]);
    out.push(b'"');
}

/// Where the first byte at or after `from` that JSON escapes is, or
/// `bytes.len()`: sixteen bytes at a time with SSE2 (part of every x86-64
/// CPU), then eight at a time in a word, then one by one.
fn next_escape(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        // SAFETY: SSE2 is in the x86-64 baseline, so these instructions
        // exist on every CPU this code runs on; each unaligned load reads
        // 16 bytes that lie inside `bytes` (`i + 16 <= bytes.len()`).
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let control = _mm_set1_epi8(0x1f);
            while i + 16 <= bytes.len() {
                let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast());
                // A byte is a control character when min(byte, 0x1f) is the byte.
                let found = _mm_or_si128(
                    _mm_cmpeq_epi8(_mm_min_epu8(v, control), v),
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                );
                let mask = _mm_movemask_epi8(found) as u32;
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // A byte of `w` is zero: the classic bit trick; exact for "any byte".
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    while i + 8 <= bytes.len() {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let quote = has_zero(w ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
        let found = control | quote | backslash;
        if found != 0 {
            // The lowest flagged byte is always a real match (a borrow only
            // flags bytes above one), so it is the first byte to escape.
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|&b| needs_escape(b))
        .map_or(bytes.len(), |at| i + at)
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\x08' => out.extend_from_slice(b"\\b"),
        b'\x0c' => out.extend_from_slice(b"\\f"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

/// `content` as JSON (UTF-8), the same object serde would write for it.
pub(super) fn content(content: &MessageContent) -> Vec<u8> {
    // Written field by field (through serde the small fields took about a
    // tenth of the map stage); `content_is_the_object_serde_writes` sets
    // every field and compares with serde's object.
    let (text_body, html_body) = (&content.text_body, &content.html_body);
    let bodies =
        text_body.as_ref().map_or(0, String::len) + html_body.as_ref().map_or(0, String::len);
    let mut out = Vec::with_capacity(bodies + bodies / 16 + 512);
    out.extend_from_slice(b"{\"message_id\":");
    push_str(&mut out, &content.message_id);
    out.extend_from_slice(b",\"subject\":");
    push_str(&mut out, &content.subject);
    out.extend_from_slice(b",\"from\":");
    push_address(&mut out, &content.from);
    out.extend_from_slice(b",\"to\":");
    push_list(&mut out, &content.to, push_address);
    out.extend_from_slice(b",\"cc\":");
    push_list(&mut out, &content.cc, push_address);
    out.extend_from_slice(b",\"date\":");
    match &content.date {
        Some(date) => super::timestamp::push_json(&mut out, date),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"attachments\":");
    push_list(&mut out, &content.attachments, push_attachment);
    out.extend_from_slice(b",\"importance\":");
    let importance: &[u8] = match content.importance {
        Importance::Low => b"\"low\"",
        Importance::Normal => b"\"normal\"",
        Importance::High => b"\"high\"",
    };
    out.extend_from_slice(importance);
    out.extend_from_slice(b",\"raw_sha256\":");
    push_str(&mut out, &content.raw_sha256);
    // Writing to a Vec cannot fail.
    let _ = write!(out, ",\"size\":{}", content.size);
    for (key, body) in [
        (",\"text_body\":", text_body),
        (",\"html_body\":", html_body),
    ] {
        out.extend_from_slice(key.as_bytes());
        push_opt_str(&mut out, body);
    }
    out.push(b'}');
    out
}

/// `null` or the string.
fn push_opt_str(out: &mut Vec<u8>, s: &Option<String>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn push_address(out: &mut Vec<u8>, a: &Address) {
    out.extend_from_slice(b"{\"name\":");
    push_opt_str(out, &a.name);
    out.extend_from_slice(b",\"address\":");
    push_opt_str(out, &a.address);
    out.push(b'}');
}

fn push_attachment(out: &mut Vec<u8>, a: &Attachment) {
    out.extend_from_slice(b"{\"name\":");
    push_opt_str(out, &a.name);
    out.extend_from_slice(b",\"content_type\":");
    push_str(out, &a.content_type);
    // Writing to a Vec cannot fail.
    let _ = write!(out, ",\"size\":{}}}", a.size);
}

/// A JSON array of `items`, each written by `push`.
fn push_list<T>(out: &mut Vec<u8>, items: &[T], push: fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push(out, item);
    }
    out.push(b']');
}

/// An entry record as stored.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    v: u32,
    ticket: u64,
    seq: u32,
    source: std::borrow::Cow<'a, Source>,
    #[serde(serialize_with = "super::timestamp::serialize")]
    received_at: DateTime<Utc>,
    /// Where the encoded content lies (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_at: Option<BlobRef>,
    /// The content itself (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<MessageContent>,
}

/// Appends the record of `entry`, whose encoded content lies at `content_at`, to `out`.
pub(super) fn entry(out: &mut Vec<u8>, entry: &NewEntry, content_at: BlobRef) {
    let NewEntry {
        v,
        ticket,
        seq,
        source,
        content: _,
        received_at,
    } = entry;
    let record = Record {
        v: *v,
        ticket: *ticket,
        seq: *seq,
        source: std::borrow::Cow::Borrowed(source),
        received_at: *received_at,
        content_at: Some(content_at),
        content: None,
    };
    // Plain data with string keys: serialising it cannot fail.
    let _ = serde_json::to_writer(out, &record);
}

/// Decodes an entry record, reading its content from the segments through
/// `read` when it is not inline.
pub(super) fn decode_entry(
    bytes: &[u8],
    read: impl FnOnce(BlobRef) -> Result<Vec<u8>, StoreError>,
) -> Result<Entry, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let r: Record = serde_json::from_slice(bytes).map_err(corrupt)?;
    let content = match (r.content, r.content_at) {
        (Some(c), _) => c,
        (None, Some(at)) => serde_json::from_slice(&read(at)?).map_err(corrupt)?,
        (None, None) => {
            return Err(StoreError::Corrupt(format!(
                "entry {}/{} has neither content nor content_at",
                r.ticket, r.seq
            )))
        }
    };
    Ok(Entry {
        v: r.v,
        ticket: r.ticket,
        seq: r.seq,
        source: r.source.into_owned(),
        content,
        received_at: r.received_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "plain ascii text that is longer than one word".into(),
            "\"quoted\" and back\\slash".into(),
            "line\r\nbreak\ttab\u{8}\u{c}\u{0}\u{1f}\u{7f}".into(),
            "caf\u{e9} \u{1F600} \u{2028} \u{ffff}".into(),
            "a\r\nb\"c\\d\te\r\n\r\n\"\"\\\\\u{1}\u{2}x".repeat(5),
            "line of text\r\n".repeat(40),
        ];
        // Every byte value below 0x80 at every offset of two 16-byte
        // vectors and the words after them, and multi-byte characters
        // straddling their boundaries.
        const BASE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS";
        for b in 0u8..0x80 {
            for at in 0..=BASE.len() {
                let mut s = BASE.to_owned();
                s.insert(at, char::from(b));
                cases.push(s);
            }
        }
        for at in 0..=BASE.len() {
            let mut s = BASE.to_owned();
            s.insert(at, '\u{1F600}');
            cases.push(s);
        }
        for s in &cases {
            assert_eq!(escaped(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn content_is_the_object_serde_writes() {
        let content = MessageContent {
            message_id: "a@b".into(),
            subject: "Order \"42\"".into(),
            from: Address {
                name: Some("Ann".into()),
                address: Some("ann@example.com".into()),
            },
            to: vec![Address::default()],
            cc: vec![Address {
                name: None,
                address: Some("cc@example.com".into()),
            }],
            date: DateTime::from_timestamp(1_700_000_000, 0),
            text_body: Some("line one\r\nline two\t\u{1F600}\\".into()),
            html_body: Some("<p>\"hi\"</p>\u{0}".into()),
            attachments: vec![Attachment {
                name: Some("a.pdf".into()),
                content_type: "application/pdf".into(),
                size: 3,
            }],
            importance: Importance::High,
            raw_sha256: "00ff".into(),
            size: 42,
        };
        let sparse = |importance| MessageContent {
            subject: "tab\tquote\" \u{7}".into(),
            from: Address::default(),
            to: Vec::new(),
            cc: Vec::new(),
            date: None,
            text_body: None,
            html_body: None,
            attachments: Vec::new(),
            importance,
            ..content.clone()
        };
        let cases = [
            sparse(Importance::Low),
            sparse(Importance::Normal),
            sparse(Importance::High),
            content,
        ];
        for c in cases {
            // The same object (the bodies come last in ours).
            let ours: serde_json::Value = serde_json::from_slice(&super::content(&c)).unwrap();
            assert_eq!(ours, serde_json::to_value(&c).unwrap());
        }
    }
}
