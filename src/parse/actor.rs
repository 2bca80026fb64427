//! The parser actor: runs on a `SyncArbiter` thread so CPU-heavy MIME work
//! never blocks an IO thread, then hands the decision to the writer edge.

use std::panic::{catch_unwind, AssertUnwindSafe};

use actix::{Actor, Handler, Message, SyncContext};

use super::{parse_keyed, sha256_hex, sha256_hex_all, ParseError};
use crate::{
    pipeline::{Body, Edge, Fetched, Slot},
    telemetry,
    transform::{decide, Decision, Reject},
    write::{WriteJob, WriteJobs, Writer},
};

/// Fetched messages to parse (one mailbox's, in UID order); `slot` holds
/// their places on the parse edge.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ParseJob {
    /// The messages.
    pub fetched: Vec<Fetched>,
    /// Their slots on the mailbox → parser edge, freed once they move on.
    pub slot: Slot,
}

/// Parses messages and applies the filter and ticket mapping.
pub struct Parser {
    writer: Edge<Writer>,
}

impl Parser {
    /// A parser that forwards to `writer`.
    pub fn new(writer: Edge<Writer>) -> Self {
        Self { writer }
    }
}

impl Actor for Parser {
    type Context = SyncContext<Self>;
}

impl Handler<ParseJob> for Parser {
    type Result = ();

    fn handle(&mut self, job: ParseJob, _: &mut Self::Context) {
        let ParseJob { fetched, slot } = job;
        // Blob keys first, all together (see `digest`), in the order of
        // the messages that have a body.
        let raws: Vec<&[u8]> = fetched
            .iter()
            .filter_map(|f| match &f.body {
                Body::Raw(raw) => Some(&raw[..]),
                Body::TooLarge { .. } | Body::Refused { .. } => None,
            })
            .collect();
        let mut keys = sha256_hex_all(&raws).into_iter();
        let jobs: Vec<WriteJob> = fetched
            .into_iter()
            .map(|fetched| WriteJob {
                decision: decide_one(&fetched, &mut keys),
                fetched,
            })
            .collect();
        telemetry::parsed(jobs.len());
        self.writer
            .push_blocking(jobs.len(), |slot| WriteJobs { jobs, slot });
        drop(slot);
    }
}

/// Parses one message and applies its mailbox's rules; `keys` yields the
/// blob key of each message with a body, in turn.
fn decide_one(fetched: &Fetched, keys: &mut impl Iterator<Item = String>) -> Decision {
    match &fetched.body {
        Body::Raw(raw) => {
            let sha = keys.next().unwrap_or_else(|| sha256_hex(raw));
            // mail-parser is meant never to panic; if it ever does, the
            // message is still recorded instead of killing this thread.
            let parsed = catch_unwind(AssertUnwindSafe(|| parse_keyed(raw, sha))).unwrap_or_else(|_| {
                Err(ParseError {
                    reason: "the MIME parser panicked on this message".to_owned(),
                    // Its key went into the panicked call: hashed again.
                    raw_sha256: sha256_hex(raw),
                })
            });
            decide(parsed, &fetched.mailbox)
        }
        Body::TooLarge { size, limit } => Decision::Reject(Reject {
            code: "message_too_large",
            reason: format!(
                "{size} bytes exceeds pipeline.max_message_bytes ({limit}); raise the limit to import such messages"
            ),
            head: None,
            raw_sha256: None,
        }),
        Body::Refused { text, .. } => Decision::Reject(Reject {
            code: "message_refused_by_server",
            reason: format!(
                "the server would not send this message ({}); it stays in the mailbox: open it with a mail client, or ask the server's administrator",
                match text {
                    Some(text) => format!("it answered NO: {text:?}"),
                    None => "it left the message out of its answers to fetching it, though it still answered for its size".to_owned(),
                }
            ),
            head: None,
            raw_sha256: None,
        }),
    }
}
