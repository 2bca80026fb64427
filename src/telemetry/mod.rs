//! Metrics: every metric name lives here, recorded through the `metrics`
//! facade into a `prometheus` registry that `/metrics` serves. Labels are
//! bounded (state, edge, outcome, error code); never a mailbox id.

use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Gauge,
};

use crate::write::BatchCounts;

/// Messages downloaded from IMAP (or skipped as too large).
pub const MESSAGES_FETCHED: &str = "mailgate_messages_fetched_total";
/// Messages through the parse stage.
pub const MESSAGES_PARSED: &str = "mailgate_messages_parsed_total";
/// Messages committed, by outcome (ticket, reply, duplicate, rejected, replay).
pub const MESSAGES_COMMITTED: &str = "mailgate_messages_committed_total";
/// Messages recorded as rejected, by rejection code.
pub const MESSAGES_REJECTED: &str = "mailgate_messages_rejected_total";
/// Messages on each pipeline edge.
pub const QUEUE_DEPTH: &str = "mailgate_pipeline_queue_depth";
/// Slots of each pipeline edge.
pub const QUEUE_CAPACITY: &str = "mailgate_pipeline_queue_capacity";
/// Mailboxes by lifecycle state.
pub const MAILBOXES: &str = "mailgate_mailboxes";
/// Group-commit duration.
pub const COMMIT_SECONDS: &str = "mailgate_commit_duration_seconds";
/// Group commits that failed and were retried.
pub const COMMIT_FAILURES: &str = "mailgate_commit_failures_total";
/// Mailbox session failures by error code.
pub const MAILBOX_ERRORS: &str = "mailgate_mailbox_errors_total";
/// Mailbox state changes by (from, to).
pub const MAILBOX_TRANSITIONS: &str = "mailgate_mailbox_transitions_total";
/// Waits scheduled before the next connection attempt, by reason.
pub const MAILBOX_RETRY_DELAY: &str = "mailgate_mailbox_retry_delay_seconds";
/// The longest time any connected mailbox has gone without a completed catch-up.
pub const MAILBOX_SYNC_AGE_MAX: &str = "mailgate_mailbox_sync_age_max_seconds";

/// The most memory the store's caches and write buffers may take.
pub const STORE_MEMORY_BUDGET: &str = "mailgate_store_memory_budget_bytes";

/// Installs the recorder (once per process) and describes every metric.
pub fn install() {
    // A second install (tests starting several gateways) keeps the first.
    let _ = metrics_prometheus::try_install();
    describe_counter!(
        MESSAGES_FETCHED,
        "Messages fetched from IMAP, including ones too large to download."
    );
    describe_counter!(MESSAGES_PARSED, "Messages through the parse stage.");
    describe_counter!(
        MESSAGES_COMMITTED,
        "Messages committed to the store, by outcome."
    );
    describe_counter!(
        MESSAGES_REJECTED,
        "Messages recorded as rejected instead of becoming tickets, by rejection code."
    );
    describe_gauge!(QUEUE_DEPTH, "Messages currently on each pipeline edge.");
    describe_gauge!(QUEUE_CAPACITY, "Capacity of each pipeline edge.");
    describe_gauge!(MAILBOXES, "Mailboxes by lifecycle state.");
    describe_gauge!(
        STORE_MEMORY_BUDGET,
        "Bytes the store's block cache and write buffers may take."
    );
    describe_histogram!(
        COMMIT_SECONDS,
        "Duration of one group commit (write batch, synced)."
    );
    describe_counter!(
        COMMIT_FAILURES,
        "Group commits that failed and are retried."
    );
    describe_counter!(MAILBOX_ERRORS, "Mailbox session failures by error code.");
    describe_counter!(
        MAILBOX_TRANSITIONS,
        "Mailbox state changes by from and to state."
    );
    describe_histogram!(MAILBOX_RETRY_DELAY, "Waits scheduled before the next connection attempt, by reason (backoff, cool_off, skipped).");
    describe_gauge!(
        MAILBOX_SYNC_AGE_MAX,
        "Longest time since any idle mailbox last completed a catch-up (IDLE refreshes count)."
    );
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::default_registry().gather())
        .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
}

/// `n` messages fetched (or sized and skipped) and handed to the parsers.
pub fn fetched(n: usize) {
    counter!(MESSAGES_FETCHED).increment(n as u64);
}

/// `n` messages parsed and decided.
pub fn parsed(n: usize) {
    counter!(MESSAGES_PARSED).increment(n as u64);
}

/// States the store's memory budget (it is fixed at open).
pub fn store_memory_budget(bytes: u64) {
    gauge!(STORE_MEMORY_BUDGET).set(bytes as f64);
}

/// One group commit succeeded.
pub fn committed(c: &BatchCounts, took: Duration) {
    for (outcome, n) in [
        ("ticket", c.tickets),
        ("reply", c.replies),
        ("duplicate", c.duplicates),
        ("rejected", c.rejections.len() as u64),
        ("replay", c.replays),
    ] {
        if n > 0 {
            counter!(MESSAGES_COMMITTED, "outcome" => outcome).increment(n);
        }
    }
    for &code in &c.rejections {
        counter!(MESSAGES_REJECTED, "code" => code).increment(1);
    }
    histogram!(COMMIT_SECONDS).record(took.as_secs_f64());
}

/// One group commit failed.
pub fn commit_failed() {
    counter!(COMMIT_FAILURES).increment(1);
}

/// The gauge of an edge's depth (messages on it).
pub fn queue_depth_gauge(edge: &'static str) -> Gauge {
    gauge!(QUEUE_DEPTH, "edge" => edge)
}

/// An edge was created.
pub fn queue_capacity(edge: &'static str, capacity: usize) {
    gauge!(QUEUE_CAPACITY, "edge" => edge).set(capacity as f64);
}

/// A mailbox moved from one state to another (`None`: it appeared or went away).
pub fn mailbox_state(from: Option<&'static str>, to: Option<&'static str>) {
    if let (Some(f), Some(t)) = (from, to) {
        counter!(MAILBOX_TRANSITIONS, "from" => f, "to" => t).increment(1);
    }
    if let Some(f) = from {
        gauge!(MAILBOXES, "state" => f).decrement(1.0);
    }
    if let Some(t) = to {
        gauge!(MAILBOXES, "state" => t).increment(1.0);
    }
}

/// A mailbox will wait `delay` before connecting, because it is in `state`.
pub fn retry_delay(state: &'static str, delay: Duration) {
    histogram!(MAILBOX_RETRY_DELAY, "reason" => state).record(delay.as_secs_f64());
}

/// The longest time since an idle mailbox last caught up.
pub fn sync_age_max(age: Duration) {
    gauge!(MAILBOX_SYNC_AGE_MAX).set(age.as_secs_f64());
}

/// A mailbox session failed with `code`.
pub fn mailbox_error(code: &'static str) {
    counter!(MAILBOX_ERRORS, "code" => code).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dashboards and alert rules ask only for metrics this module
    /// defines (a renamed metric would leave a panel empty and an alert
    /// silent, with no error anywhere).
    #[test]
    fn dashboards_and_alerts_name_only_defined_metrics() {
        let defined = [
            MESSAGES_FETCHED,
            MESSAGES_PARSED,
            MESSAGES_COMMITTED,
            MESSAGES_REJECTED,
            QUEUE_DEPTH,
            QUEUE_CAPACITY,
            MAILBOXES,
            COMMIT_SECONDS,
            COMMIT_FAILURES,
            MAILBOX_ERRORS,
            MAILBOX_TRANSITIONS,
            MAILBOX_RETRY_DELAY,
            MAILBOX_SYNC_AGE_MAX,
            STORE_MEMORY_BUDGET,
        ];
        let histograms = [COMMIT_SECONDS, MAILBOX_RETRY_DELAY];
        let dashboard = include_str!("../../dashboards/mailgate.json");
        serde_json::from_str::<serde_json::Value>(dashboard).expect("the dashboard is JSON");
        let alerts = include_str!("../../dashboards/alerts.yml");
        let mut named = 0;
        for (file, text) in [("mailgate.json", dashboard), ("alerts.yml", alerts)] {
            for (at, _) in text.match_indices("mailgate_") {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                let series_of = |h: &&str| {
                    ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{h}{s}"))
                };
                assert!(
                    defined.contains(&name.as_str()) || histograms.iter().any(series_of),
                    "{file} names {name}, which mailgate does not export"
                );
                named += 1;
            }
        }
        assert!(named > 20, "the files name {named} metrics");
    }
}
