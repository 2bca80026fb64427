//! What a scenario run reports: JSON for machines, Markdown for people.

use serde::Serialize;

use crate::observe::Latencies;
use crate::scenario::Server;

/// Upper bounds of the latency histogram's buckets, milliseconds.
const BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/// Injection → commit latency figures, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyFigures {
    /// Messages timed.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Messages per bucket: at most 1, 2, 5 … 5000 ms, then above.
    pub histogram: Vec<(String, u64)>,
}

impl LatencyFigures {
    /// The figures of `l`; `None` without samples.
    pub fn from(l: &Latencies) -> Option<Self> {
        let ms = |q: f64| l.quantile(q).map(|d| d.as_secs_f64() * 1000.0);
        Some(Self {
            samples: l.len(),
            p50_ms: ms(0.5)?,
            p90_ms: ms(0.9)?,
            p99_ms: ms(0.99)?,
            max_ms: ms(1.0)?,
            histogram: BUCKETS_MS
                .iter()
                .map(|b| format!("≤ {b} ms"))
                .chain(std::iter::once("> 5000 ms".to_owned()))
                .zip(l.histogram(&BUCKETS_MS))
                .collect(),
        })
    }
}

/// One scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// What it answers.
    pub about: String,
    /// The IMAP server the gateway read from.
    pub server: Server,
    /// Mailboxes.
    pub mailboxes: u32,
    /// Implicit TLS to the farm.
    pub tls: bool,
    /// Messages the farm held by the end (backlog and traffic).
    pub messages_injected: u64,
    /// Farm messages seen as tickets in the feed.
    pub distinct_tickets: u64,
    /// Tickets in the feed.
    pub tickets_in_feed: u64,
    /// Farm messages seen as a ticket twice.
    pub duplicates: u64,
    /// Tickets that are not farm messages.
    pub foreign_tickets: u64,
    /// Messages the gateway recorded as rejected.
    pub rejections: u64,
    /// Injected messages not seen as tickets.
    pub lost: u64,
    /// Gateway RSS with no mailboxes.
    pub base_rss_bytes: u64,
    /// Gateway RSS with every mailbox in IDLE.
    pub idle_rss_bytes: u64,
    /// (idle − base) / mailboxes.
    pub rss_per_mailbox_bytes: f64,
    /// (RSS at the end of the measured phase − base) / mailboxes: in an
    /// idle scenario, after the mailboxes have idled through it (the figure
    /// above is sampled the moment the last one idles, just after the
    /// log-ins).
    pub rss_per_mailbox_settled_bytes: f64,
    /// Highest RSS sampled.
    pub peak_rss_bytes: u64,
    /// The bound the peak must stay under.
    pub rss_bound_bytes: u64,
    /// How the bound is derived.
    pub rss_bound_formula: String,
    /// Whether exceeding the bound fails the run.
    pub rss_bound_enforced: bool,
    /// From reload to every mailbox in IDLE.
    pub time_to_all_idle_s: f64,
    /// Most connections not yet logged in at once (farm side), while connecting.
    pub logins_in_flight_peak: u64,
    /// The gateway's max_concurrent_logins_per_host.
    pub login_limit: u64,
    /// Messages waiting before the mailboxes connected.
    pub backlog: u64,
    /// From reload to the backlog committed (against Dovecot: to every
    /// checkpoint at its mailbox's last UID).
    pub catch_up_s: Option<f64>,
    /// Gateway CPU time (user + system) from reload to caught up with every
    /// mailbox idle, seconds.
    pub catch_up_cpu_s: Option<f64>,
    /// The farm's CPU time (this process: farm and runner) over the same
    /// span, seconds; farm runs only. It shares the gateway's cores.
    pub farm_catch_up_cpu_s: Option<f64>,
    /// The server's raw fetch rate, all mailboxes at once, no parsing
    /// (Dovecot runs only): the catch-up's physical limit.
    pub raw_fetch_msgs_per_s: Option<f64>,
    /// Commits per second between 10 % and 90 % of all commits.
    pub sustained_msgs_per_s: Option<f64>,
    /// The writer's group commits over the whole run, from `/metrics`.
    pub writer: WriterFigures,
    /// The same when the backlog was caught up (backlog runs only).
    pub catch_up_writer: Option<WriterFigures>,
    /// Length of the measured phase.
    pub measure_s: f64,
    /// Gateway CPU during the measured phase, % of one core.
    pub cpu_percent_of_core: f64,
    /// Injection → commit during the measured phase.
    pub latency: Option<LatencyFigures>,
    /// From the server restart to every mailbox back in IDLE.
    pub recovery_s: Option<f64>,
    /// Most logins in flight at once during the recovery.
    pub recovery_logins_peak: Option<u64>,
    /// Whether the gateway exited 0 on SIGTERM.
    pub clean_exit: bool,
}

/// What the writer did over a run, from its commit metrics: whether a
/// backlog ran at the writer's pace (busy nearly all of it) or upstream's.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WriterFigures {
    /// Group commits.
    pub commits: u64,
    /// Messages they committed (tickets, replies, duplicates, rejections).
    pub messages: u64,
    /// Time in them, seconds: building each batch and committing it.
    pub seconds: f64,
}

impl WriterFigures {
    /// Messages per commit.
    pub fn batch(&self) -> f64 {
        self.messages as f64 / self.commits.max(1) as f64
    }

    /// Writer time per message, µs.
    pub fn micros_per_message(&self) -> f64 {
        1e6 * self.seconds / self.messages.max(1) as f64
    }
}

impl Report {
    /// Backlog messages per second from reload to caught up.
    pub fn catch_up_rate(&self) -> Option<f64> {
        self.catch_up_s.map(|s| self.backlog as f64 / s.max(1e-9))
    }

    /// What is wrong with the run's correctness (loss, doubles, rejections,
    /// login limit, memory bound, unclean exit); empty when nothing is.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.lost > 0 {
            p.push(format!("{} messages lost", self.lost));
        }
        if self.duplicates > 0 {
            p.push(format!("{} messages doubled", self.duplicates));
        }
        if self.rejections > 0 || self.foreign_tickets > 0 {
            p.push(format!(
                "{} rejections, {} foreign tickets",
                self.rejections, self.foreign_tickets
            ));
        }
        let peak = self
            .logins_in_flight_peak
            .max(self.recovery_logins_peak.unwrap_or(0));
        if peak > self.login_limit {
            p.push(format!(
                "{peak} logins in flight at once, above the limit {}",
                self.login_limit
            ));
        }
        if self.rss_bound_enforced && self.peak_rss_bytes > self.rss_bound_bytes {
            p.push(format!(
                "peak RSS {} above the bound {}",
                self.peak_rss_bytes, self.rss_bound_bytes
            ));
        }
        if !self.clean_exit {
            p.push("the gateway did not exit cleanly on SIGTERM".into());
        }
        p
    }

    /// A Markdown summary with the key figures.
    pub fn markdown(&self) -> String {
        let kib = |b: f64| format!("{:.1} KiB", b / 1024.0);
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
        let mut rows = vec![
            (
                "mailboxes",
                format!("{}{}", self.mailboxes, if self.tls { " (TLS)" } else { "" }),
            ),
            (
                "time to all IDLE",
                format!("{:.1} s", self.time_to_all_idle_s),
            ),
            (
                "logins in flight (peak / limit)",
                format!("{} / {}", self.logins_in_flight_peak, self.login_limit),
            ),
            (
                "RSS base → all idle",
                format!(
                    "{} → {}",
                    mib(self.base_rss_bytes),
                    mib(self.idle_rss_bytes)
                ),
            ),
            ("RSS per idle mailbox", kib(self.rss_per_mailbox_bytes)),
            (
                "RSS per mailbox at the end of the measured phase",
                kib(self.rss_per_mailbox_settled_bytes),
            ),
            (
                "peak RSS / bound",
                format!(
                    "{} / {}{}",
                    mib(self.peak_rss_bytes),
                    mib(self.rss_bound_bytes),
                    if self.rss_bound_enforced {
                        " (enforced)"
                    } else {
                        " (reported)"
                    }
                ),
            ),
            (
                "CPU during the measured phase",
                format!(
                    "{:.1} % of a core over {:.0} s",
                    self.cpu_percent_of_core, self.measure_s
                ),
            ),
            (
                "messages → tickets",
                format!(
                    "{} → {} (lost {}, doubled {})",
                    self.messages_injected, self.distinct_tickets, self.lost, self.duplicates
                ),
            ),
        ];
        if let (Some(s), Some(rate)) = (self.catch_up_s, self.catch_up_rate()) {
            rows.push((
                "backlog caught up",
                format!("{} messages in {s:.2} s ({rate:.0} msgs/s)", self.backlog),
            ));
        }
        for (figure, cpu) in [
            ("gateway CPU per backlog message", self.catch_up_cpu_s),
            (
                "farm CPU per backlog message (same cores)",
                self.farm_catch_up_cpu_s,
            ),
        ] {
            if let Some(cpu) = cpu {
                let per_message = 1e6 * cpu / self.backlog.max(1) as f64;
                rows.push((
                    figure,
                    format!("{per_message:.0} µs ({cpu:.2} CPU-seconds)"),
                ));
            }
        }
        if let (Some(raw), Some(rate)) = (self.raw_fetch_msgs_per_s, self.catch_up_rate()) {
            rows.push((
                "raw fetch (same server, no parsing)",
                format!(
                    "{raw:.0} msgs/s: catch-up at {:.0} % of it",
                    100.0 * rate / raw
                ),
            ));
        }
        if let Some(r) = self.sustained_msgs_per_s {
            rows.push(("sustained commit rate", format!("{r:.0} msgs/s")));
        }
        // A backlog's commits show whether it ran at the writer's pace.
        let (w, busy) = match (&self.catch_up_writer, self.catch_up_s) {
            (Some(w), Some(s)) => (
                w,
                format!(
                    ", in a commit {:.0} % of the catch-up",
                    100.0 * w.seconds / s
                ),
            ),
            _ => (&self.writer, String::new()),
        };
        if w.commits > 0 {
            rows.push((
                "writer (build + commit)",
                format!(
                    "{} commits, {:.1} messages each, {:.1} µs per message{busy}",
                    w.commits,
                    w.batch(),
                    w.micros_per_message()
                ),
            ));
        }
        if let Some(l) = &self.latency {
            rows.push((
                "injection → commit",
                format!(
                    "p50 {:.0} ms · p90 {:.0} ms · p99 {:.0} ms · max {:.0} ms ({} messages)",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.samples
                ),
            ));
        }
        if let (Some(s), Some(peak)) = (self.recovery_s, self.recovery_logins_peak) {
            rows.push((
                "restart → all IDLE again",
                format!("{s:.1} s, {peak} logins in flight at most"),
            ));
        }
        let mut out = format!(
            "## {}\n\n{}\n\n| figure | value |\n|---|---|\n",
            self.scenario, self.about
        );
        for (k, v) in rows {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        if let Some(l) = &self.latency {
            out.push_str("\nInjection → commit:\n\n| latency | messages | |\n|---|---|---|\n");
            let most = l
                .histogram
                .iter()
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(1)
                .max(1);
            for (bucket, n) in l.histogram.iter().filter(|(_, n)| *n > 0) {
                let bar = "█".repeat(((n * 40).div_ceil(most)) as usize);
                out.push_str(&format!("| {bucket} | {n} | {bar} |\n"));
            }
        }
        out.push_str(&format!("\nRSS bound: {}.\n", self.rss_bound_formula));
        let problems = self.problems();
        if problems.is_empty() {
            out.push_str(
                "\nCorrectness: every message exactly once, no rejection, clean shutdown.\n",
            );
        } else {
            out.push_str(&format!("\n**Problems:** {}\n", problems.join("; ")));
        }
        out
    }
}
