//! Test connection: connect → TLS → greeting → (STARTTLS) → login →
//! capabilities → SELECT each folder → LOGOUT, reporting every step with its
//! duration and, on failure, the catalogue's code, message and hint. Works
//! for any configured mailbox, drafts included, and changes nothing.

use serde::Serialize;
use tokio::time::Instant;

use super::{
    error::{ErrorReport, MailboxError},
    imap::{Imap, Step, Steps},
};
use crate::config::{MailboxConfig, Security};

/// What test-connection found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    /// Mailbox id.
    pub mailbox: String,
    /// Server.
    pub host: String,
    /// Port.
    pub port: u16,
    /// How the connection was secured.
    pub security: Security,
    /// Whether every step succeeded.
    pub ok: bool,
    /// The steps, in order; the last one failed if `ok` is false.
    pub steps: Vec<Step>,
    /// Capabilities announced after login.
    pub capabilities: Vec<String>,
    /// Whether the server offers IDLE (without it mailgate has to poll).
    pub idle: bool,
    /// Whether the server offers CONDSTORE.
    pub condstore: bool,
    /// Each folder that could be selected.
    pub folders: Vec<FolderProbe>,
    /// The failure, when there was one.
    pub error: Option<ErrorReport>,
}

/// One selected folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderProbe {
    /// Folder name.
    pub name: String,
    /// Its UIDVALIDITY.
    pub uidvalidity: u32,
    /// Messages in it.
    pub messages: u32,
}

/// Runs the test against `cfg`'s server.
pub async fn probe(cfg: &MailboxConfig, max_message_bytes: u32) -> ProbeReport {
    let mut report = ProbeReport {
        mailbox: cfg.id.clone(),
        host: cfg.host.clone(),
        port: cfg.port,
        security: cfg.security,
        ok: false,
        steps: Vec::new(),
        capabilities: Vec::new(),
        idle: false,
        condstore: false,
        folders: Vec::new(),
        error: None,
    };
    let mut steps = Steps::default();
    let result = async {
        let mut imap = Imap::connect(cfg, max_message_bytes, &mut steps).await?;
        report.capabilities = imap.capabilities().map(str::to_owned).collect();
        report.idle = imap.has("IDLE");
        report.condstore = imap.has("CONDSTORE");
        for folder in &cfg.folders {
            let started = Instant::now();
            let selected = imap.select(folder).await;
            steps.record(format!("select {folder}"), started, selected.is_ok());
            let selected = selected?;
            report.folders.push(FolderProbe {
                name: folder.clone(),
                uidvalidity: selected.uidvalidity,
                messages: selected.exists,
            });
        }
        let started = Instant::now();
        imap.logout().await;
        steps.record("logout".to_owned(), started, true);
        Ok::<(), MailboxError>(())
    }
    .await;
    report.steps = steps.0;
    match result {
        Ok(()) => report.ok = true,
        Err(e) => report.error = Some(e.report()),
    }
    report
}

impl ProbeReport {
    /// The report as an operator reads it in a terminal.
    pub fn render(&self) -> String {
        let security = match self.security {
            Security::Tls => "tls",
            Security::Starttls => "starttls",
            Security::None => "none",
        };
        let mut out = format!(
            "test-connection {} ({}:{}, security {security})\n",
            self.mailbox, self.host, self.port
        );
        for s in &self.steps {
            let mark = if s.ok { "ok  " } else { "FAIL" };
            out.push_str(&format!("  {mark} {:<20} {:>6} ms\n", s.step, s.millis));
        }
        if self.ok {
            let yes = |b: bool| if b { "yes" } else { "no" };
            out.push_str(&format!(
                "  IDLE: {}   CONDSTORE: {}\n",
                yes(self.idle),
                yes(self.condstore)
            ));
            for f in &self.folders {
                out.push_str(&format!(
                    "  folder {:?}: {} messages, UIDVALIDITY {}\n",
                    f.name, f.messages, f.uidvalidity
                ));
            }
            out.push_str("result: ok\n");
        } else if let Some(e) = &self.error {
            out.push_str(&format!(
                "  error {}: {}\n  hint: {}\nresult: failed ({})\n",
                e.code, e.message, e.hint, e.code
            ));
        }
        out
    }
}
