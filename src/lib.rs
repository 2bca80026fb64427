//! mailgate: a mail gateway between enterprise mailboxes and a helpdesk.
//!
//! Mail flows `mailbox` (IMAP sessions) → `parse` → `transform` → `write`
//! (RocksDB via `store`); `http` and `telemetry` expose it to operators.
//! See ARCHITECTURE.md for the supervision tree and the rules of the flow.

pub mod app;
pub mod config;
pub mod demo;
pub mod http;
pub mod mailbox;
pub mod parse;
pub mod pipeline;
pub mod store;
pub mod telemetry;
pub mod transform;
pub mod write;
