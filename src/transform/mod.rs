//! Filter and ticket mapping: pure functions from a parsed message and its
//! mailbox's rules to a [`Decision`]. No IO, so every rule is unit-tested.

use crate::{
    config::MailboxConfig,
    parse::{ParseError, Parsed},
    store::{Address, EncodedContent, Importance, MessageContent},
};

/// What the writer records of a message beside its encoded content: the
/// ticket's fields and the raw message's blob key. The decoded body stays on
/// the parser thread (freed there), so the write queue holds each message's
/// content once, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Message-ID (synthesised if missing).
    pub message_id: String,
    /// Decoded subject.
    pub subject: String,
    /// Sender.
    pub from: Address,
    /// sha256 of the raw message, hex: its blob key.
    pub raw_sha256: String,
}

impl Head {
    fn of(content: &MessageContent) -> Self {
        Self {
            message_id: content.message_id.clone(),
            subject: content.subject.clone(),
            from: content.from.clone(),
            raw_sha256: content.raw_sha256.clone(),
        }
    }
}

impl From<MessageContent> for Head {
    /// Moves the head's fields out of a content that is done with.
    fn from(content: MessageContent) -> Self {
        Self {
            message_id: content.message_id,
            subject: content.subject,
            from: content.from,
            raw_sha256: content.raw_sha256,
        }
    }
}

/// What the writer should do with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Becomes a ticket, or an entry of the ticket it replies to.
    Accept {
        /// What the ticket and its indexes take from the message.
        head: Head,
        /// The decoded content, encoded for the store (here, on a parser thread).
        encoded: EncodedContent,
        /// Message-IDs it replies to, most specific first.
        replies_to: Vec<String>,
        /// Priority for a new ticket.
        priority: String,
    },
    /// Recorded as a rejection.
    Reject(Reject),
}

/// Why a message does not become a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Stable code.
    pub code: &'static str,
    /// Operator-facing reason.
    pub reason: String,
    /// What could be read of the message.
    pub head: Option<Head>,
    /// The message's blob key, when it was downloaded (the rejection
    /// record keeps the raw message).
    pub raw_sha256: Option<String>,
}

/// Applies the mailbox's filter and mapping to a parse result.
pub fn decide(parsed: Result<Parsed, ParseError>, mailbox: &MailboxConfig) -> Decision {
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Decision::Reject(Reject {
                code: "message_unparseable",
                reason: format!("{}; the raw message is kept for inspection", e.reason),
                head: None,
                raw_sha256: Some(e.raw_sha256),
            })
        }
    };
    let sender = parsed.content.from.address.clone().unwrap_or_default();
    let reject = |code, reason: String| {
        Decision::Reject(Reject {
            code,
            reason,
            head: Some(Head::of(&parsed.content)),
            raw_sha256: Some(parsed.content.raw_sha256.clone()),
        })
    };
    if !sender.is_empty() && mailbox.is_own_address(&sender) {
        return reject(
            "mail_loop",
            format!("sent from the mailbox's own address {sender}; not turned into a ticket to avoid a loop"),
        );
    }
    if mailbox.exclude_auto_replies {
        if let Some(why) = &parsed.auto_reply {
            return reject(
                "auto_reply",
                format!("automatic reply ({why}); set exclude_auto_replies = false to keep these"),
            );
        }
    }
    if !mailbox.allowed_domains.is_empty() {
        let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let allowed = mailbox
            .allowed_domains
            .iter()
            .any(|d| domain == d || domain.ends_with(&format!(".{d}")));
        if !allowed {
            return reject(
                "sender_domain_not_allowed",
                format!("sender domain {domain:?} is not in allowed_domains"),
            );
        }
    }
    let priority = match (parsed.content.importance, mailbox.ticket.priority.as_str()) {
        (Importance::High, "low" | "medium") => "high".to_owned(),
        (_, p) => p.to_owned(),
    };
    let encoded = EncodedContent::of(&parsed.content);
    Decision::Accept {
        head: Head::from(parsed.content),
        encoded,
        replies_to: parsed.replies_to,
        priority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::test_mailbox as mailbox, parse::parse};

    fn code(d: &Decision) -> &str {
        match d {
            Decision::Accept { .. } => "accept",
            Decision::Reject(r) => r.code,
        }
    }

    #[test]
    fn rules_in_order() {
        let plain = b"From: c@client.test\r\nSubject: hi\r\n\r\nx";
        let auto = b"From: c@client.test\r\nAuto-Submitted: auto-replied\r\n\r\nx";
        let own = b"From: Support@Acme.test\r\n\r\nx";
        let m = mailbox("");
        assert_eq!(code(&decide(parse(plain), &m)), "accept");
        assert_eq!(code(&decide(parse(auto), &m)), "auto_reply");
        assert_eq!(code(&decide(parse(own), &m)), "mail_loop");
        assert_eq!(code(&decide(parse(b""), &m)), "message_unparseable");
        let keep_auto = mailbox("exclude_auto_replies = false");
        assert_eq!(code(&decide(parse(auto), &keep_auto)), "accept");
        let only = mailbox("allowed_domains = [\"partner.test\"]");
        assert_eq!(
            code(&decide(parse(plain), &only)),
            "sender_domain_not_allowed"
        );
        let sub = b"From: c@eu.partner.test\r\n\r\nx";
        assert_eq!(code(&decide(parse(sub), &only)), "accept");
    }

    #[test]
    fn high_importance_raises_priority() {
        let urgent = b"From: c@client.test\r\nX-Priority: 1\r\n\r\nx";
        match decide(parse(urgent), &mailbox("")) {
            Decision::Accept { priority, .. } => assert_eq!(priority, "high"),
            other => panic!("{other:?}"),
        }
    }
}
