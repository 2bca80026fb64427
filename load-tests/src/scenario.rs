//! Declarative load scenarios (`load-tests/scenarios/*.toml`): how many
//! mailboxes, what mail, how long, which fault, and the gateway settings
//! under test. A `[smoke]` table scales a scenario down for the test suite.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::traffic::{SizeBand, SizeMix};

/// A fault applied once every mailbox is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioFault {
    /// None.
    #[default]
    None,
    /// The server restarts: every session dropped, connections refused for
    /// `restart_refuse_seconds`, then accepted again.
    Restart,
}

/// The IMAP server the gateway reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    /// The mail farm, in the runner's process.
    #[default]
    Farm,
    /// A real Dovecot started by the runner (plain IMAP on loopback), the
    /// backlog delivered into its Maildirs; the run also measures the
    /// server's raw fetch rate as the catch-up's physical limit.
    Dovecot,
}

/// One size band as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// Relative share.
    pub weight: f64,
    /// Smallest size, bytes.
    pub min: usize,
    /// Largest size, bytes.
    pub max: usize,
}

/// The smoke-run overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
    /// Mailboxes in the smoke run.
    pub mailboxes: Option<u32>,
    /// Backlog per mailbox in the smoke run.
    pub preload_per_mailbox: Option<u32>,
    /// Messages per second in the smoke run.
    pub rate: Option<f64>,
    /// Measured phase in the smoke run.
    pub measure_seconds: Option<u64>,
    /// Sizes in the smoke run.
    pub sizes: Option<Vec<Band>>,
}

/// A load scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (the report's file name).
    pub name: String,
    /// What it answers.
    pub about: String,
    /// Mailboxes on the farm, all watched by the gateway.
    pub mailboxes: u32,
    /// The server the mailboxes live on.
    #[serde(default)]
    pub server: Server,
    /// Implicit TLS between gateway and farm.
    #[serde(default)]
    pub tls: bool,
    /// Messages waiting in every mailbox before the mailboxes connect.
    #[serde(default)]
    pub preload_per_mailbox: u32,
    /// Messages per second over the farm during the measured phase.
    #[serde(default)]
    pub rate: f64,
    /// Message sizes.
    pub sizes: Vec<Band>,
    /// Length of the measured phase.
    pub measure_seconds: u64,
    /// Fault at the start of the measured phase.
    #[serde(default)]
    pub fault: ScenarioFault,
    /// Whether peak RSS above the pipeline-derived bound fails the run (the
    /// slow-writer and big-attachments question; others only report it).
    #[serde(default)]
    pub memory_bound: bool,
    /// How long a restarting server refuses connections.
    #[serde(default = "default_refuse")]
    pub restart_refuse_seconds: u64,
    /// Longest wait for every mailbox to reach IDLE (and any backlog to be
    /// committed) before the run fails.
    #[serde(default = "default_settle")]
    pub settle_timeout_seconds: u64,
    /// Keys for the gateway config's `[gateway]` table.
    #[serde(default)]
    pub gateway: toml::Table,
    /// Keys for the gateway config's `[pipeline]` table.
    #[serde(default)]
    pub pipeline: toml::Table,
    /// Keys for the gateway config's `[defaults]` table.
    #[serde(default)]
    pub defaults: toml::Table,
    /// Overrides for the test suite's smoke run.
    #[serde(default)]
    pub smoke: Smoke,
}

fn default_refuse() -> u64 {
    2
}

fn default_settle() -> u64 {
    600
}

impl Scenario {
    /// Reads and checks a scenario file; the error names the file and field.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let scenario: Self =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        scenario
            .size_mix()
            .map_err(|e| format!("{}: sizes: {e}", path.display()))?;
        if scenario.mailboxes == 0 {
            return Err(format!("{}: mailboxes must be at least 1", path.display()));
        }
        if scenario.server == Server::Dovecot
            && (scenario.tls || scenario.rate > 0.0 || scenario.fault != ScenarioFault::None)
        {
            return Err(format!(
                "{}: server = \"dovecot\" runs a catch-up of the preloaded backlog over plain IMAP: \
                 remove tls, rate and fault (they need the farm)",
                path.display()
            ));
        }
        Ok(scenario)
    }

    /// The scenario with its `[smoke]` overrides applied: seconds, small counts.
    pub fn smoke(mut self) -> Self {
        let s = self.smoke.clone();
        self.mailboxes = s.mailboxes.unwrap_or(self.mailboxes.min(20));
        self.preload_per_mailbox = s
            .preload_per_mailbox
            .unwrap_or(self.preload_per_mailbox.min(5));
        self.rate = s.rate.unwrap_or(self.rate.min(50.0));
        self.measure_seconds = s.measure_seconds.unwrap_or(2);
        self.restart_refuse_seconds = self.restart_refuse_seconds.min(1);
        self.settle_timeout_seconds = self.settle_timeout_seconds.min(60);
        if let Some(sizes) = s.sizes {
            self.sizes = sizes;
        }
        self.name = format!("{}-smoke", self.name);
        self
    }

    /// The size bands as a mix.
    pub fn size_mix(&self) -> Result<SizeMix, String> {
        SizeMix::new(
            self.sizes
                .iter()
                .map(|b| SizeBand {
                    weight: b.weight,
                    min: b.min,
                    max: b.max,
                })
                .collect(),
        )
    }
}
