//! The catch-up scenario's server: a real Dovecot holding the farm's
//! backlog (the same generated messages, delivered into its Maildirs), its
//! raw fetch rate measured as the physical limit, and the wait for every
//! gateway checkpoint to reach the mailbox's last UID.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dovecot::{Dovecot, DovecotOptions};
use crate::farm::Farm;
use crate::observe::GatewayApi;
use crate::raw_fetch::{fetch_all, RawFetch};

/// How often the checkpoints are read while the gateway catches up.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// A Dovecot serving the farm's users.
pub(crate) struct Upstream {
    dovecot: Dovecot,
    accounts: Vec<(String, String)>,
}

impl Upstream {
    /// Starts Dovecot with an empty INBOX for each of the farm's users.
    pub(crate) fn start(farm: &Farm) -> Self {
        let accounts: Vec<_> = (1..=farm.mailboxes())
            .map(|u| (Farm::username(u), farm.password().to_owned()))
            .collect();
        Self {
            dovecot: Dovecot::start(&accounts, DovecotOptions::default()),
            accounts,
        }
    }

    /// Where Dovecot listens (plain IMAP).
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.dovecot.port))
    }

    /// Delivers every farm message into Dovecot, lets Dovecot index them
    /// (one untimed fetch, which also warms the page cache as the gateway's
    /// run will find it), then times a raw fetch of everything.
    pub(crate) fn load(
        &self,
        farm: &Farm,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<RawFetch, String> {
        for user in 1..=farm.mailboxes() {
            let name = Farm::username(user);
            for uid in 1..=farm.count(user) {
                let raw = farm
                    .message(user, uid)
                    .ok_or_else(|| format!("farm message {name}/{uid} is missing"))?;
                self.dovecot.deliver(&name, &raw, None);
            }
        }
        runtime.block_on(fetch_all(self.addr(), &self.accounts))?;
        let raw = runtime.block_on(fetch_all(self.addr(), &self.accounts))?;
        let expected = farm.stats().messages_total;
        if raw.messages() != expected {
            return Err(format!(
                "Dovecot served {} of the {expected} messages delivered",
                raw.messages()
            ));
        }
        Ok(raw)
    }

    /// The mailbox ids (login names) and the last UID of each INBOX, as
    /// the raw fetch saw them.
    pub(crate) fn last_uids(&self, raw: &RawFetch) -> HashMap<String, u32> {
        self.accounts
            .iter()
            .zip(&raw.mailboxes)
            .map(|((user, _), f)| (user.clone(), f.last_uid))
            .collect()
    }
}

/// Reads the gateway's checkpoints until every mailbox's INBOX is at its
/// last UID; the moment it was.
pub(crate) fn wait_for_checkpoints(
    api: &GatewayApi,
    last_uids: &HashMap<String, u32>,
    timeout: Duration,
) -> Result<Instant, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let views = api
            .json("/api/mailboxes", Duration::from_secs(10))
            .map_err(|e| format!("reading the checkpoints: {e}"))?;
        let behind = last_uids
            .iter()
            .filter(|(id, last)| {
                let at = views.as_array().and_then(|all| {
                    let view = all.iter().find(|v| v["id"] == id.as_str())?;
                    view["checkpoint"]["INBOX"]["uid"].as_u64()
                });
                at.unwrap_or(0) < u64::from(**last)
            })
            .count();
        if behind == 0 {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "timed out after {timeout:?}: {behind} mailboxes' checkpoints short of their last UID"
            ));
        }
        std::thread::sleep(POLL_EVERY);
    }
}
