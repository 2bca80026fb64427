//! The mailbox supervisor: starts one supervised actor per configured
//! mailbox, spread over the IO arbiters, and keeps the id → address registry.
//! An actor that stops is restarted by actix's `Supervisor`; failures inside a
//! mailbox are values handled by the actor itself, never panics.

use std::{collections::HashMap, sync::Arc};

use actix::{Actor, Addr, ArbiterHandle, Context, Handler, Message, MessageResult, Supervisor};

use super::{
    actor::{MailboxActor, Reconfigure, Shared},
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
            shared.board.publish(Arc::new(MailboxView::initial(cfg)));
        }
        Self {
            mailboxes,
            arbiters,
            shared,
            registry: HashMap::new(),
        }
    }
}

impl MailboxSupervisor {
    fn spawn(&mut self, cfg: Arc<MailboxConfig>) {
        let arbiter = &self.arbiters[self.registry.len() % self.arbiters.len()];
        let (id, shared) = (cfg.id.clone(), self.shared.clone());
        let addr = Supervisor::start_in_arbiter(arbiter, move |_| MailboxActor::new(cfg, shared));
        self.registry.insert(id, addr);
    }
}

impl Actor for MailboxSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        for cfg in self.mailboxes.clone() {
            self.spawn(cfg);
        }
        tracing::info!(mailboxes = self.registry.len(), "mailboxes started");
    }
}

/// A reloaded configuration's mailboxes: added ones start, removed ones
/// stop, changed ones start over with their new settings, and unchanged
/// ones keep their sessions.
#[derive(Debug, Message)]
#[rtype(result = "ReloadSummary")]
pub struct Reload(pub Vec<Arc<MailboxConfig>>);

/// What a reload did, by mailbox id.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReloadSummary {
    /// Started.
    pub added: Vec<String>,
    /// Stopped and forgotten.
    pub removed: Vec<String>,
    /// Restarted with new settings.
    pub changed: Vec<String>,
    /// Left alone.
    pub unchanged: usize,
}

impl Handler<Reload> for MailboxSupervisor {
    type Result = MessageResult<Reload>;

    fn handle(&mut self, Reload(next): Reload, _: &mut Context<Self>) -> Self::Result {
        let mut summary = ReloadSummary::default();
        let old: HashMap<String, Arc<MailboxConfig>> = self
            .mailboxes
            .iter()
            .map(|m| (m.id.clone(), m.clone()))
            .collect();
        for cfg in &next {
            match old.get(&cfg.id) {
                None => {
                    self.shared
                        .board
                        .publish(Arc::new(MailboxView::initial(cfg)));
                    self.spawn(cfg.clone());
                    summary.added.push(cfg.id.clone());
                }
                Some(prev) if **prev != **cfg => {
                    if let Some(addr) = self.registry.get(&cfg.id) {
                        addr.do_send(Reconfigure(Some(cfg.clone())));
                    }
                    summary.changed.push(cfg.id.clone());
                }
                Some(_) => summary.unchanged += 1,
            }
        }
        for id in old.keys().filter(|id| !next.iter().any(|m| &m.id == *id)) {
            if let Some(addr) = self.registry.remove(id) {
                addr.do_send(Reconfigure(None));
            }
            summary.removed.push(id.clone());
        }
        self.mailboxes = next;
        tracing::info!(?summary, "configuration reloaded");
        MessageResult(summary)
    }
}

/// Asks for the actor and the current settings of one mailbox.
#[derive(Debug, Message)]
#[rtype(result = "Option<(Addr<MailboxActor>, Arc<MailboxConfig>)>")]
pub struct Lookup(pub String);

impl Handler<Lookup> for MailboxSupervisor {
    type Result = MessageResult<Lookup>;

    fn handle(&mut self, Lookup(id): Lookup, _: &mut Context<Self>) -> Self::Result {
        let cfg = self.mailboxes.iter().find(|m| m.id == id).cloned();
        MessageResult(self.registry.get(&id).cloned().zip(cfg))
    }
}
