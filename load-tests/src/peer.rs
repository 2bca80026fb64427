//! The peer comparison: an idle scenario's sessions held by imapflow (the
//! Node IMAP client EmailEngine is built on) against the same farm, measured
//! the same way as the gateway — base RSS before connecting, RSS and CPU
//! with every session in IDLE (counted on the farm's side for both), time
//! to all-idle — and reported beside the gateway's figures as ratios.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::process::{sample, TICKS_PER_SECOND};
use crate::report::Report;
use crate::runner::{err, in_work_dir, start_farm, FarmUnderTest};
use crate::scenario::Scenario;

/// How often the peer is sampled while it connects.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// The imapflow peer's script (with its package.json beside it).
pub fn imapflow_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/imapflow/idle.mjs")
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
    /// From "go" to every session in IDLE (farm side).
    pub time_to_all_idle_s: f64,
    /// CPU while idle, % of one core.
    pub cpu_percent_of_core: f64,
    /// Length of the idle measurement.
    pub measure_s: f64,
}

/// Runs `scenario`'s idle phase with imapflow holding the sessions.
pub fn run_imapflow(scenario: &Scenario, work_dir: Option<&Path>) -> Result<PeerReport, String> {
    let script = imapflow_script();
    let package = script.parent().unwrap_or(Path::new("."));
    if !package.join("node_modules/imapflow").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(package)
            .status()
            .map_err(|e| format!("npm (install Node.js and npm): {e}"))?
            .success();
        if !ok {
            return Err(format!("npm ci in {} failed", package.display()));
        }
    }
    in_work_dir(scenario, work_dir, |dir| run_in(scenario, &script, dir))
}

fn run_in(scenario: &Scenario, script: &Path, dir: &Path) -> Result<PeerReport, String> {
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
            rss_per_mailbox_bytes: idle.rss_bytes.saturating_sub(base.rss_bytes) as f64
                / f64::from(n),
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
