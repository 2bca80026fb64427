//! The mail farm: an IMAP server on loopback that hosts thousands of
//! mailboxes (`user1` … `userN`), injects messages at a chosen rate and size
//! mix, and injects faults on command. It speaks exactly the part of IMAP
//! mailgate uses (CAPABILITY, LOGIN, AUTHENTICATE PLAIN/XOAUTH2, SELECT,
//! UID SEARCH, UID FETCH of UID/RFC822.SIZE/BODY.PEEK[], IDLE, NOOP, LOGOUT),
//! answering the way Dovecot does (`tests/farm.rs` holds the two side by side).
//!
//! It serves the load-test runner (`mailgate-load`) and `mailgate demo`,
//! which watch the gateway from outside through [`GatewayApi`] and [`Feed`].
//! [`dovecot`] starts a real Dovecot, for the test suite and for the
//! catch-up scenario (whose limit is that server's raw fetch rate).

mod catch_up;
mod certs;
pub mod dovecot;
mod farm;
mod fault;
mod message;
mod observe;
mod peer;
mod process;
mod raw_fetch;
mod report;
mod runner;
mod scenario;
mod session;
mod stats;
mod traffic;

pub use certs::{make_certs, server_config, TestCerts};
pub use farm::{Farm, FarmConfig, Running};
pub use fault::Fault;
pub use message::{
    message_id, parse_message_id, parse_subject, render as render_message, MIN_SIZE,
};
pub use observe::{Feed, GatewayApi, Latencies, Metrics};
pub use peer::{compare_with_imapflow, imapflow_dir, CatchUpPeerReport, Comparison, PeerReport};
pub use report::{LatencyFigures, Report};
pub use runner::{run, RunOptions};
pub use scenario::{Scenario, ScenarioFault, Server};
pub use stats::Stats;
pub use traffic::{SizeBand, SizeMix, Traffic};
