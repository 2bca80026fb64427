//! The mailbox supervisor: starts one supervised actor per configured
//! mailbox, spread over the IO arbiters, and keeps the id → address registry.
//! An actor that stops is restarted by actix's `Supervisor`; failures inside a
//! mailbox are values handled by the actor itself, never panics.

use std::{collections::HashMap, sync::Arc};

use actix::{Actor, Addr, ArbiterHandle, Context, Handler, Message, MessageResult, Supervisor};

use super::{
    actor::{MailboxActor, Shared},
    status::MailboxView,
};
use crate::config::MailboxConfig;

/// Owns the mailbox actors.
pub struct MailboxSupervisor {
    mailboxes: Vec<Arc<MailboxConfig>>,
    arbiters: Vec<ArbiterHandle>,
    shared: Shared,
    registry: HashMap<String, Addr<MailboxActor>>,
}

impl MailboxSupervisor {
    /// A supervisor for `mailboxes`, placing them round-robin on `arbiters`.
    pub fn new(
        mailboxes: Vec<Arc<MailboxConfig>>,
        arbiters: Vec<ArbiterHandle>,
        shared: Shared,
    ) -> Self {
        // Every mailbox is listed from the start, before its actor runs, so
        // the API never answers 404 for a configured mailbox.
        for cfg in &mailboxes {
            shared.board.publish(MailboxView::initial(cfg));
        }
        Self {
            mailboxes,
            arbiters,
            shared,
            registry: HashMap::new(),
        }
    }
}

impl Actor for MailboxSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        for (i, cfg) in self.mailboxes.iter().enumerate() {
            let arbiter = &self.arbiters[i % self.arbiters.len()];
            let (cfg2, shared) = (cfg.clone(), self.shared.clone());
            let addr =
                Supervisor::start_in_arbiter(arbiter, move |_| MailboxActor::new(cfg2, shared));
            self.registry.insert(cfg.id.clone(), addr);
        }
        tracing::info!(mailboxes = self.registry.len(), "mailboxes started");
    }
}

/// Asks for the actor of one mailbox.
#[derive(Debug, Message)]
#[rtype(result = "Option<Addr<MailboxActor>>")]
pub struct Lookup(pub String);

impl Handler<Lookup> for MailboxSupervisor {
    type Result = MessageResult<Lookup>;

    fn handle(&mut self, Lookup(id): Lookup, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.registry.get(&id).cloned())
    }
}
