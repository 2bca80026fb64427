//! The load scenarios (load-tests/scenarios/*.toml), each in its small
//! `[smoke]` version: seconds and small counts, against the real gateway
//! binary and the mail farm. They assert correctness, not speed: every
//! mailbox reaches IDLE, every message becomes exactly one ticket, logins
//! stay within the limit, memory within its bound, shutdown is clean.

use std::path::{Path, PathBuf};

use mailfarm::{RunOptions, Scenario};

const SCENARIOS: [&str; 8] = [
    "idle-10k",
    "idle-10k-tls",
    "burst",
    "catch-up",
    "steady-latency",
    "reconnect-storm",
    "slow-writer",
    "big-attachments",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("load-tests/scenarios")
}

fn smoke(name: &str) -> mailfarm::Report {
    let scenario = Scenario::load(&dir().join(format!("{name}.toml")))
        .unwrap()
        .smoke();
    let opts = RunOptions {
        gateway_bin: PathBuf::from(env!("CARGO_BIN_EXE_mailgate")),
        work_dir: None,
    };
    let report = mailfarm::run(&scenario, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        report.problems().is_empty(),
        "{name}: {:?}\n{}",
        report.problems(),
        report.markdown()
    );
    assert_eq!(report.lost, 0);
    assert_eq!(report.distinct_tickets, report.messages_injected);
    report
}

#[test]
fn every_scenario_file_has_a_smoke_run() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".toml").map(str::to_owned))
        .collect();
    files.sort();
    let mut listed = SCENARIOS.map(str::to_owned).to_vec();
    listed.sort();
    assert_eq!(files, listed, "add the new scenario to SCENARIOS");
}

#[test]
fn idle_10k_smoke() {
    smoke("idle-10k");
}

#[test]
fn idle_10k_tls_smoke() {
    smoke("idle-10k-tls");
}

#[test]
fn burst_smoke() {
    let report = smoke("burst");
    // The writer's figures come from the gateway's commit metrics: every
    // backlog message went through one of its commits, and they took time.
    let w = report
        .catch_up_writer
        .expect("the writer's figures at catch-up");
    assert_eq!(w.messages, report.backlog, "{w:?}");
    assert!(w.commits > 0 && w.commits <= w.messages, "{w:?}");
    assert!(w.seconds > 0.0, "{w:?}");
    assert_eq!(report.writer.messages, report.messages_injected);
    assert!(report.markdown().contains("% of the catch-up"));
}

#[test]
fn catch_up_smoke() {
    let report = smoke("catch-up");
    assert_eq!(report.server, mailfarm::Server::Dovecot);
    let raw = report.raw_fetch_msgs_per_s.expect("the raw fetch rate");
    assert!(raw > 0.0, "{raw}");
    assert_eq!(report.backlog, 3 * 40);
}

#[test]
fn steady_latency_smoke() {
    smoke("steady-latency");
}

#[test]
fn reconnect_storm_smoke() {
    smoke("reconnect-storm");
}

#[test]
fn slow_writer_smoke() {
    smoke("slow-writer");
}

#[test]
fn big_attachments_smoke() {
    smoke("big-attachments");
}
