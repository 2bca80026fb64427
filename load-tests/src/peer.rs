//! The peer comparison, reported beside the gateway's figures as ratios.
//!
//! - Idle scenarios: the same sessions held by imapflow (the Node IMAP
//!   client EmailEngine is built on) against the same farm, measured the
//!   same way as the gateway — base RSS before connecting, RSS and CPU with
//!   every session in IDLE (counted on the farm's side for both), time to
//!   all-idle.
//! - The catch-up scenario: the same backlog in a fresh Dovecot, fetched and
//!   parsed by imapflow + mailparser (nothing stored), against that
//!   server's raw fetch rate measured in the same run.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catch_up::Upstream;
use crate::process::{sample, TICKS_PER_SECOND};
use crate::report::Report;
use crate::runner::{err, in_work_dir, start_farm, FarmUnderTest};
use crate::scenario::{Scenario, Server};
use crate::traffic::Traffic;

/// How often the peer is sampled while it connects.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// The imapflow peer's directory (package.json and its scripts).
pub fn imapflow_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/imapflow")
}

/// A peer run: JSON for the record and Markdown beside the gateway's figures.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The peer's figures as JSON.
    pub json: String,
    /// Both side by side, as Markdown.
    pub markdown: String,
}

impl Comparison {
    fn new(peer: &impl Serialize, markdown: String) -> Self {
        Self {
            json: serde_json::to_string_pretty(peer).unwrap_or_default(),
            markdown,
        }
    }
}

/// Runs `scenario` with imapflow in mailgate's place and compares it with
/// the gateway's `report`: idle sessions against the farm, or (server =
/// "dovecot") a catch-up with imapflow + mailparser.
pub fn compare_with_imapflow(
    scenario: &Scenario,
    report: &Report,
    work_dir: Option<&Path>,
) -> Result<Comparison, String> {
    let package = imapflow_dir();
    if !package.join("node_modules/mailparser").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&package)
            .status()
            .map_err(|e| format!("npm (install Node.js and npm): {e}"))?
            .success();
        if !ok {
            return Err(format!("npm ci in {} failed", package.display()));
        }
    }
    in_work_dir(scenario, work_dir, |dir| match scenario.server {
        Server::Farm => {
            let peer = run_idle(scenario, &package.join("idle.mjs"), dir)?;
            Ok(Comparison::new(&peer, comparison(report, &peer)))
        }
        Server::Dovecot => {
            let peer = run_catch_up(scenario, &package.join("catchup.mjs"), dir)?;
            Ok(Comparison::new(&peer, catch_up_comparison(report, &peer)))
        }
    })
}

/// What the peer measured.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    /// The peer client.
    pub peer: String,
    /// Sessions held.
    pub mailboxes: u32,
    /// Implicit TLS.
    pub tls: bool,
    /// RSS before connecting.
    pub base_rss_bytes: u64,
    /// RSS with every session in IDLE.
    pub idle_rss_bytes: u64,
    /// (idle − base) / mailboxes.
    pub rss_per_mailbox_bytes: f64,
    /// (RSS after the measured idle phase − base) / mailboxes.
    pub rss_per_mailbox_settled_bytes: f64,
    /// From "go" to every session in IDLE (farm side).
    pub time_to_all_idle_s: f64,
    /// CPU while idle, % of one core.
    pub cpu_percent_of_core: f64,
    /// Length of the idle measurement.
    pub measure_s: f64,
}

/// Runs `scenario`'s idle phase with imapflow holding the sessions.
fn run_idle(scenario: &Scenario, script: &Path, dir: &Path) -> Result<PeerReport, String> {
    let n = scenario.mailboxes;
    let FarmUnderTest {
        farm,
        listener,
        certs,
        runtime: _runtime,
    } = start_farm(scenario, dir)?;
    let mut child = Command::new("node")
        .arg(script)
        .env("HOST", "127.0.0.1")
        .env("PORT", listener.addr().port().to_string())
        .env("MAILBOXES", n.to_string())
        .env("PASSWORD", farm.password())
        .env("TLS", if scenario.tls { "1" } else { "0" })
        .env(
            "CA_FILE",
            certs.as_ref().map(|c| c.ca.clone()).unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("peer.log")).map_err(err("peer log"))?)
        .spawn()
        .map_err(|e| format!("node (install Node.js): {e}"))?;
    let pid = child.id();
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let result = (|| {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l == "ready" => {}
            other => return Err(format!("the peer did not start: {other:?}")),
        }
        std::thread::sleep(Duration::from_secs(1));
        let base = sample(pid).map_err(err("peer sample"))?;
        let stdin = child.stdin.as_mut().ok_or("no stdin")?;
        let go = Instant::now();
        stdin.write_all(b"go\n").map_err(err("peer stdin"))?;
        let deadline = go + Duration::from_secs(scenario.settle_timeout_seconds);
        while farm.stats().idling < u64::from(n) {
            if Instant::now() > deadline {
                return Err(format!(
                    "imapflow: {} of {n} sessions in IDLE after {:?}",
                    farm.stats().idling,
                    deadline - go
                ));
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
        let all_idle = go.elapsed();
        let idle = sample(pid).map_err(err("peer sample"))?;
        let measure = Duration::from_secs(scenario.measure_seconds);
        std::thread::sleep(measure);
        let after = sample(pid).map_err(err("peer sample"))?;
        let cpu = (after.cpu_ticks - idle.cpu_ticks) as f64 / TICKS_PER_SECOND as f64;
        Ok(PeerReport {
            peer: "imapflow".into(),
            mailboxes: n,
            tls: scenario.tls,
            base_rss_bytes: base.rss_bytes,
            idle_rss_bytes: idle.rss_bytes,
            rss_per_mailbox_bytes: idle.rss_per_mailbox(&base, u64::from(n)),
            rss_per_mailbox_settled_bytes: after.rss_per_mailbox(&base, u64::from(n)),
            time_to_all_idle_s: all_idle.as_secs_f64(),
            cpu_percent_of_core: 100.0 * cpu / measure.as_secs_f64(),
            measure_s: measure.as_secs_f64(),
        })
    })();
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The gateway's and the peer's figures side by side, as Markdown.
pub fn comparison(gateway: &Report, peer: &PeerReport) -> String {
    let kib = |b: f64| format!("{:.1} KiB", b / 1024.0);
    let ratio = |p: f64, g: f64| {
        if g > 0.0 {
            format!("{:.1}×", p / g)
        } else {
            "–".into()
        }
    };
    let rows = [
        (
            "RSS per idle mailbox",
            kib(gateway.rss_per_mailbox_bytes),
            kib(peer.rss_per_mailbox_bytes),
            ratio(peer.rss_per_mailbox_bytes, gateway.rss_per_mailbox_bytes),
        ),
        (
            "RSS per idle mailbox after the measured phase",
            kib(gateway.rss_per_mailbox_settled_bytes),
            kib(peer.rss_per_mailbox_settled_bytes),
            ratio(
                peer.rss_per_mailbox_settled_bytes,
                gateway.rss_per_mailbox_settled_bytes,
            ),
        ),
        (
            "CPU while idle (% of a core)",
            format!("{:.1} %", gateway.cpu_percent_of_core),
            format!("{:.1} %", peer.cpu_percent_of_core),
            ratio(peer.cpu_percent_of_core, gateway.cpu_percent_of_core),
        ),
        (
            "time to all IDLE",
            format!("{:.1} s", gateway.time_to_all_idle_s),
            format!("{:.1} s", peer.time_to_all_idle_s),
            ratio(peer.time_to_all_idle_s, gateway.time_to_all_idle_s),
        ),
    ];
    let mut out = format!(
        "## {} — mailgate and {}\n\n{} sessions{}, against the same mail farm.\n\n| figure | mailgate | {} | {} / mailgate |\n|---|---|---|---|\n",
        gateway.scenario,
        peer.peer,
        peer.mailboxes,
        if peer.tls { " over TLS" } else { "" },
        peer.peer,
        peer.peer
    );
    for (what, g, p, r) in rows {
        out.push_str(&format!("| {what} | {g} | {p} | {r} |\n"));
    }
    out
}

/// What the catch-up peer measured.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUpPeerReport {
    /// The peer client.
    pub peer: String,
    /// Mailboxes fetched at once.
    pub mailboxes: u32,
    /// Messages fetched and parsed.
    pub messages: u64,
    /// From the first connect to the last message parsed.
    pub seconds: f64,
    /// The same server's raw fetch rate, measured just before.
    pub raw_fetch_msgs_per_s: f64,
}

impl CatchUpPeerReport {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }
}

/// The scenario's backlog in a fresh Dovecot, fetched and parsed by
/// imapflow + mailparser.
fn run_catch_up(
    scenario: &Scenario,
    script: &Path,
    dir: &Path,
) -> Result<CatchUpPeerReport, String> {
    let FarmUnderTest { runtime, farm, .. } = start_farm(scenario, dir)?;
    Traffic::preload(&farm, scenario.preload_per_mailbox, &scenario.size_mix()?);
    let upstream = Upstream::start(&farm);
    let raw = upstream.load(&farm, &runtime)?;
    let users: Vec<String> = (1..=farm.mailboxes()).map(crate::Farm::username).collect();
    let out = Command::new("node")
        .arg(script)
        .env("HOST", "127.0.0.1")
        .env("PORT", upstream.addr().port().to_string())
        .env("USERS", users.join(","))
        .env("PASSWORD", farm.password())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("node (install Node.js): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("the catch-up peer failed: {text}"));
    }
    #[derive(serde::Deserialize)]
    struct Line {
        messages: u64,
        seconds: f64,
    }
    let line: Line = serde_json::from_str(text.trim())
        .map_err(|e| format!("the catch-up peer printed {text:?}: {e}"))?;
    if line.messages != raw.messages() {
        return Err(format!(
            "imapflow fetched {} of the {} messages",
            line.messages,
            raw.messages()
        ));
    }
    Ok(CatchUpPeerReport {
        peer: "imapflow + mailparser".into(),
        mailboxes: farm.mailboxes(),
        messages: line.messages,
        seconds: line.seconds,
        raw_fetch_msgs_per_s: raw.rate(),
    })
}

/// The gateway's catch-up (fetch, parse, map, commit) and the peer's
/// (fetch and parse only), each against its run's raw fetch rate.
fn catch_up_comparison(gateway: &Report, peer: &CatchUpPeerReport) -> String {
    let gateway_rate = gateway.catch_up_rate().unwrap_or(0.0);
    let raw = gateway.raw_fetch_msgs_per_s.unwrap_or(0.0);
    let share = |rate: f64, raw: f64| match raw > 0.0 {
        true => format!("{:.0} %", 100.0 * rate / raw),
        false => "–".into(),
    };
    format!(
        "## {} — mailgate and {}\n\n{} messages in {} mailboxes of a real Dovecot, each run against \
         a fresh copy and that copy's raw fetch rate. mailgate parses, maps and commits every \
         message with its checkpoint; the peer only fetches and parses.\n\n\
         | figure | mailgate | {} | mailgate / {} |\n|---|---|---|---|\n\
         | catch-up rate | {gateway_rate:.0} msgs/s | {:.0} msgs/s | {:.1}× |\n\
         | share of the raw fetch rate | {} of {raw:.0} msgs/s | {} of {:.0} msgs/s | |\n",
        gateway.scenario,
        peer.peer,
        peer.messages,
        peer.mailboxes,
        peer.peer,
        peer.peer,
        peer.rate(),
        gateway_rate / peer.rate().max(1e-9),
        share(gateway_rate, raw),
        share(peer.rate(), peer.raw_fetch_msgs_per_s),
        peer.raw_fetch_msgs_per_s,
    )
}
