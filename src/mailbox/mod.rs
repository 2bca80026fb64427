//! Inbound: one supervised actor per mailbox, each running an IMAP session
//! per folder (connect → catch up → IDLE), with its lifecycle state, error
//! classification and reconnect schedule.

mod actor;
pub mod admission;
pub mod error;
pub mod imap;
pub mod lifecycle;
mod oauth;
pub mod probe;
pub mod schedule;
mod session;
pub mod status;
mod supervisor;
mod tls;

pub use actor::{Control, MailboxActor, Shared};
pub use supervisor::{Lookup, MailboxSupervisor, Reload, ReloadSummary};
