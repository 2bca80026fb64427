//! Builders for test messages.

/// A small plain-text message with a given Message-ID and subject.
pub fn simple(message_id: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@client.test>\r\nTo: support@acme.test\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, this is {subject}.\r\n"
    )
    .into_bytes()
}

/// A message of about `bytes` bytes.
pub fn sized(message_id: &str, bytes: usize) -> Vec<u8> {
    let mut m = simple(message_id, "big");
    let line = "x".repeat(76) + "\r\n";
    while m.len() < bytes {
        m.extend_from_slice(line.as_bytes());
    }
    m
}
