//! mailgate patch: the FETCH response that carries a message body, in the
//! two shapes servers send it (`* 7 FETCH (UID 42 BODY[] {n}\r\n…)\r\n` and
//! `* 7 FETCH (BODY[] {n}\r\n… UID 42)\r\n`), decoded without the general
//! grammar. The general parser spent ~0.9 µs on every such response, most
//! of it trying alternatives; this takes the exact byte shape or nothing,
//! and anything else (lower case, leading zeros, other items, a NUL in the
//! literal) goes to the general parser, which decodes or rejects it as
//! before.

use alloc::vec::Vec;
use core::num::NonZeroU32;

use imap_types::{
    core::{IString, Literal, LiteralMode, NString, Vec1},
    fetch::MessageDataItem,
    response::{Data, Response},
};

/// `(remaining, response)` if `input` starts with a body FETCH response of
/// exactly one of the two shapes.
pub(crate) fn fetch_body(input: &[u8]) -> Option<(&[u8], Response<'_>)> {
    let rest = input.strip_prefix(b"* ")?;
    let (seq, rest) = nz_number(rest)?;
    let rest = rest.strip_prefix(b" FETCH (")?;
    let (items, rest) = match rest.strip_prefix(b"UID ") {
        Some(rest) => {
            let (uid, rest) = nz_number(rest)?;
            let (body, rest) = body(rest.strip_prefix(b" ")?)?;
            ([MessageDataItem::Uid(uid), body], rest)
        }
        None => {
            let (body, rest) = body(rest)?;
            let (uid, rest) = nz_number(rest.strip_prefix(b" UID ")?)?;
            ([body, MessageDataItem::Uid(uid)], rest)
        }
    };
    let rest = rest.strip_prefix(b")\r\n")?;
    let items = Vec1::try_from(Vec::from(items)).ok()?;
    Some((rest, Response::Data(Data::Fetch { seq, items })))
}

/// `BODY[] {n}\r\n` and the n bytes of a literal without a NUL.
fn body(input: &[u8]) -> Option<(MessageDataItem<'_>, &[u8])> {
    let rest = input.strip_prefix(b"BODY[] {")?;
    let (len, rest) = number(rest)?;
    let rest = rest.strip_prefix(b"}\r\n")?;
    let len = usize::try_from(len).ok()?;
    let data = rest.get(..len)?;
    if memchr::memchr(0, data).is_some() {
        return None;
    }
    let mut literal = Literal::unvalidated(data);
    literal.set_mode(LiteralMode::Sync);
    let item = MessageDataItem::BodyExt {
        section: None,
        origin: None,
        data: NString(Some(IString::Literal(literal))),
    };
    Some((item, &rest[len..]))
}

/// A non-zero number without leading zeros that fits in a u32.
fn nz_number(input: &[u8]) -> Option<(NonZeroU32, &[u8])> {
    let (n, rest) = number(input)?;
    Some((NonZeroU32::new(n)?, rest))
}

/// Decimal digits without a leading zero (except "0" itself), as a u32.
fn number(input: &[u8]) -> Option<(u32, &[u8])> {
    let digits = input.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 10 || (digits > 1 && input[0] == b'0') {
        return None;
    }
    let mut n: u32 = 0;
    for &d in &input[..digits] {
        n = n.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
    }
    Some((n, &input[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::response;

    #[test]
    fn takes_exactly_what_the_general_parser_decodes_the_same_way() {
        let cases: [&[u8]; 10] = [
            b"* 7 FETCH (UID 42 BODY[] {5}\r\nhello)\r\n",
            b"* 7 FETCH (BODY[] {5}\r\nhello UID 42)\r\n",
            b"* 4294967295 FETCH (UID 4294967295 BODY[] {0}\r\n)\r\n",
            b"* 7 FETCH (UID 42 BODY[] {5}\r\nhel\0o)\r\n",
            b"* 07 FETCH (UID 42 BODY[] {5}\r\nhello)\r\n",
            b"* 7 fetch (UID 42 BODY[] {5}\r\nhello)\r\n",
            b"* 7 FETCH (UID 42 RFC822.SIZE 5 BODY[] {5}\r\nhello)\r\n",
            b"* 0 FETCH (UID 42 BODY[] {5}\r\nhello)\r\n",
            b"* 7 FETCH (UID 42 BODY[] {5}\r\nhello)\r\n* 8 FETCH (UID 43)\r\n",
            b"* 4294967296 FETCH (UID 42 BODY[] {5}\r\nhello)\r\n",
        ];
        for (i, input) in cases.into_iter().enumerate() {
            let general = response(input).ok();
            match fetch_body(input) {
                Some(fast) => assert_eq!(Some(fast), general, "case {i}"),
                None => assert!(i >= 3, "case {i} should take the fast path"),
            }
        }
    }
}
