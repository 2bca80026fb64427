//! Runs one scenario: the farm in this process, the gateway as a child
//! process (its memory and CPU are its own), and the phases every scenario
//! shares — base process, connect (and catch up), measure, drain, verify.
//!
//! 1. The gateway starts with no mailboxes: its RSS is the base.
//! 2. The backlog is preloaded, the mailboxes are added by SIGHUP reload, and
//!    the run waits until every one is in IDLE and the backlog is committed.
//! 3. The measured phase: traffic at the scenario's rate (each message timed
//!    from injection to commit through the long-polled ticket feed), the
//!    fault if any, CPU and RSS sampled.
//! 4. Traffic stops; the run waits until every message is committed, reads
//!    the whole feed, and checks that each farm message is exactly one ticket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::catch_up::{wait_for_checkpoints, Upstream};
use crate::certs::{make_certs, server_config, TestCerts};
use crate::farm::{Farm, FarmConfig, Running};
use crate::fault::Fault;
use crate::observe::{Feed, GatewayApi, Latencies, Metrics};
use crate::process::{free_addr, sample, GatewayProcess, TICKS_PER_SECOND};
use crate::report::{LatencyFigures, Report, WriterFigures};
use crate::scenario::{Scenario, ScenarioFault, Server};
use crate::traffic::Traffic;

/// How often the gateway is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// Longest wait for the last messages after traffic stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// Series names, as the gateway exports them.
const IDLE_SERIES: &str = "mailgate_mailboxes{state=\"idle\"}";
const TICKETS_SERIES: &str = "mailgate_messages_committed_total{outcome=\"ticket\"}";
const REJECTED: &str = "mailgate_messages_rejected_total";
const STORE_BUDGET: &str = "mailgate_store_memory_budget_bytes";
const COMMITTED: &str = "mailgate_messages_committed_total";
const COMMIT_SECONDS_SUM: &str = "mailgate_commit_duration_seconds_sum";
const COMMIT_SECONDS_COUNT: &str = "mailgate_commit_duration_seconds_count";
const QUEUE_CAPACITY: &str = "mailgate_pipeline_queue_capacity";
/// The gateway's defaults, for the report when a scenario does not set them.
const DEFAULT_LOGIN_LIMIT: i64 = 16;
const DEFAULT_PARSERS: i64 = 2;
/// Allowance per mailbox in the RSS bound (an idle session measures ≈ 8 KiB).
const BOUND_PER_MAILBOX: u64 = 64 * 1024;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `mailgate` binary.
    pub gateway_bin: PathBuf,
    /// Where the gateway's config, store and log go (a fresh temporary
    /// directory, removed afterwards, when `None`).
    pub work_dir: Option<PathBuf>,
}

/// What the sampler saw of the gateway.
#[derive(Debug, Default)]
struct Watch {
    peak_rss: u64,
    idle: u64,
    tickets: u64,
    /// (seconds since the reload, tickets committed) every sample.
    series: Vec<(f64, u64)>,
}

/// Runs `scenario`; the report, or what went wrong.
pub fn run(scenario: &Scenario, opts: &RunOptions) -> Result<Report, String> {
    in_work_dir(scenario, opts.work_dir.as_deref(), |dir| {
        run_in(scenario, opts, dir)
    })
}

/// Runs `f` in `work_dir`, or in a fresh temporary directory removed after.
pub(crate) fn in_work_dir<T>(
    scenario: &Scenario,
    work_dir: Option<&Path>,
    f: impl FnOnce(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let dir = match work_dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "mailgate-load-{}-{}",
            scenario.name,
            std::process::id()
        )),
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = f(&dir);
    if work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// An I/O error with what was being done.
pub(crate) fn err(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// The scenario's farm, listening on loopback (with its test CA under TLS).
pub(crate) struct FarmUnderTest {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) farm: Arc<Farm>,
    pub(crate) listener: Running,
    pub(crate) certs: Option<TestCerts>,
}

pub(crate) fn start_farm(scenario: &Scenario, dir: &Path) -> Result<FarmUnderTest, String> {
    // One worker: the farm shares the gateway's cores, and a second worker
    // took more than it gave (the burst scenario, 8 interleaved pairs:
    // 36,234 → 39,043 msgs/s with one; the farm's CPU −10 %, the gateway's
    // per message −4 %: the two workers stole each other's tasks and woke
    // each other). One thread serves 10,000 idle sessions and the storms.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mail-farm")
        .enable_all()
        .build()
        .map_err(err("farm runtime"))?;
    let certs = match scenario.tls {
        true => Some(make_certs(dir).map_err(err("test certificates"))?),
        false => None,
    };
    let farm = Farm::new(FarmConfig {
        tls: match &certs {
            Some(c) => Some(server_config(c).map_err(err("TLS config"))?),
            None => None,
        },
        ..FarmConfig::new(scenario.mailboxes)
    });
    let listener = runtime
        .block_on(farm.listen(SocketAddr::from(([127, 0, 0, 1], 0))))
        .map_err(err("farm listener"))?;
    Ok(FarmUnderTest {
        runtime,
        farm,
        listener,
        certs,
    })
}

fn run_in(scenario: &Scenario, opts: &RunOptions, dir: &Path) -> Result<Report, String> {
    let sizes = scenario.size_mix()?;
    let n = scenario.mailboxes;
    let FarmUnderTest {
        runtime,
        farm,
        listener,
        certs,
    } = start_farm(scenario, dir)?;
    let ca = certs.as_ref().map(|c| c.ca.as_path());
    let upstream = (scenario.server == Server::Dovecot).then(|| Upstream::start(&farm));
    let imap = upstream.as_ref().map_or(listener.addr(), Upstream::addr);
    let header = config_header(scenario, imap, free_addr().map_err(err("port"))?, ca)?;
    let gateway = GatewayProcess::start(&opts.gateway_bin, dir, header).map_err(err("gateway"))?;
    let api = gateway.api;
    let pid = gateway.pid();
    let fail = |what: String| format!("{what}\n--- gateway log ---\n{}", gateway.log_tail());

    // 1. The base process.
    std::thread::sleep(Duration::from_secs(1));
    let base = sample(pid).map_err(err("base sample"))?;

    // 2. Backlog, then every mailbox connects.
    Traffic::preload(&farm, scenario.preload_per_mailbox, &sizes);
    let backlog = farm.stats().messages_total;
    let raw = match &upstream {
        Some(u) => Some(u.load(&farm, &runtime).map_err(&fail)?),
        None => None,
    };
    farm.reset_login_peak();
    let cpu_at_reload = sample(pid).map_err(err("cpu sample"))?.cpu_ticks;
    let farm_cpu_at_reload = sample(std::process::id())
        .map_err(err("cpu sample"))?
        .cpu_ticks;
    let reloaded = Instant::now();
    let reloaded_at = SystemTime::now();
    gateway
        .reload(&mailboxes(&farm, n))
        .map_err(err("reload"))?;
    let mut watch = Watch::default();
    let settle = Duration::from_secs(scenario.settle_timeout_seconds);
    // Against Dovecot, caught up means every checkpoint at its last UID,
    // read finely: the whole catch-up may take only seconds.
    let caught_up = match (&upstream, &raw) {
        (Some(u), Some(r)) => {
            Some(wait_for_checkpoints(&api, &u.last_uids(r), settle).map_err(&fail)?)
        }
        _ => None,
    };
    let all_idle = wait_until(&api, pid, reloaded, settle, &mut watch, |w| {
        w.idle == u64::from(n)
    })
    .map_err(&fail)?;
    let caught_up = match caught_up {
        Some(at) => at,
        None => wait_until(&api, pid, reloaded, settle, &mut watch, |w| {
            w.tickets >= backlog
        })
        .map_err(&fail)?,
    };
    // Nothing but the backlog has been committed yet.
    let catch_up_writer = match backlog {
        0 => None,
        _ => Some(writer_figures(&api.metrics().map_err(err("metrics"))?)),
    };
    let connect_logins_peak = farm.stats().logins_in_flight_peak;
    let idle = sample(pid).map_err(err("idle sample"))?;
    let farm_cpu_at_idle = sample(std::process::id())
        .map_err(err("cpu sample"))?
        .cpu_ticks;

    // 3. The measured phase.
    let stop_feed = Arc::new(AtomicBool::new(false));
    let follower = (scenario.rate > 0.0).then(|| {
        let (farm, stop) = (farm.clone(), stop_feed.clone());
        std::thread::spawn(move || follow(api, farm, &stop))
    });
    let traffic = (scenario.rate > 0.0).then(|| {
        let t = Traffic {
            rate: scenario.rate,
            sizes: sizes.clone(),
        };
        let _guard = runtime.enter();
        t.spawn(farm.clone())
    });
    let cpu_before = sample(pid).map_err(err("cpu sample"))?.cpu_ticks;
    let measure_start = Instant::now();
    let mut recovery = None;
    if scenario.fault == ScenarioFault::Restart {
        farm.reset_login_peak();
        farm.set_refuse(true);
        farm.fault(Fault::DropAll);
        wait_until(&api, pid, reloaded, settle, &mut watch, |w| {
            w.idle < u64::from(n)
        })
        .map_err(&fail)?;
        std::thread::sleep(Duration::from_secs(scenario.restart_refuse_seconds));
        farm.set_refuse(false);
        let back = wait_until(&api, pid, reloaded, settle, &mut watch, |w| {
            w.idle == u64::from(n)
        })
        .map_err(&fail)?;
        recovery = Some((
            back.saturating_duration_since(measure_start),
            farm.stats().logins_in_flight_peak,
        ));
    }
    let measure_for = Duration::from_secs(scenario.measure_seconds);
    let measure_end = measure_start + measure_for;
    if Instant::now() < measure_end {
        wait_until(&api, pid, reloaded, measure_for * 2, &mut watch, |_| {
            Instant::now() >= measure_end
        })
        .map_err(&fail)?;
    }
    let measured = measure_start.elapsed();
    let after = sample(pid).map_err(err("end-of-phase sample"))?;
    let cpu_after = after.cpu_ticks;
    if let Some(t) = traffic {
        t.abort();
        // Once the task is gone, no injection is half done.
        let _ = runtime.block_on(t);
    }

    // 4. Drain and verify.
    let injected = farm.stats().messages_total;
    wait_until(&api, pid, reloaded, DRAIN_TIMEOUT, &mut watch, |w| {
        w.tickets >= injected
    })
    .map_err(&fail)?;
    stop_feed.store(true, Ordering::Relaxed);
    let latencies = match follower {
        Some(f) => f
            .join()
            .map_err(|_| "the feed follower panicked".to_owned())??,
        None => Latencies::default(),
    };
    let mut feed = Feed::new(api, farm.clone());
    feed.catch_up().map_err(err("reading the ticket feed"))?;
    // From the farm, the backlog's commits are timed exactly by their
    // tickets' creation times; polling /metrics saw them up to one poll
    // (≈ 0.2–0.4 s under load) late.
    let backlog_commits = upstream
        .is_none()
        .then(|| feed.commit_series(reloaded_at, backlog as usize))
        .filter(|series| backlog > 0 && series.len() == backlog as usize);
    let metrics = api.metrics().map_err(err("metrics"))?;
    let clean_exit = gateway.stop().map_err(err("stopping the gateway"))?;

    let mailbox_count = u64::from(n);
    let cpu_seconds = (cpu_after - cpu_before) as f64 / TICKS_PER_SECOND as f64;
    let setting = |table: &toml::Table, key: &str, default: i64| {
        table
            .get(key)
            .and_then(|v| v.as_integer())
            .unwrap_or(default) as u64
    };
    // The edges' capacities as the gateway runs them (its /metrics), not
    // as assumed here.
    let capacity = |edge: &str| {
        metrics
            .value(&format!("{QUEUE_CAPACITY}{{edge=\"{edge}\"}}"))
            .map(|v| v as u64)
            .ok_or_else(|| format!("the gateway's /metrics give no capacity of the {edge} edge"))
    };
    let (q_parse, q_write) = (capacity("parse")?, capacity("write")?);
    let parsers = setting(&scenario.pipeline, "parsers", DEFAULT_PARSERS);
    let s_max = sizes.max() as u64;
    let store_budget = metrics.value(STORE_BUDGET).unwrap_or(0.0) as u64;
    let bound = base.rss_bytes
        + store_budget
        + mailbox_count * BOUND_PER_MAILBOX
        + (q_parse + 3 * parsers + 4 * q_write + mailbox_count) * s_max;
    Ok(Report {
        scenario: scenario.name.clone(),
        about: scenario.about.clone(),
        server: scenario.server,
        mailboxes: n,
        tls: scenario.tls,
        messages_injected: injected,
        distinct_tickets: feed.distinct() as u64,
        tickets_in_feed: feed.tickets,
        duplicates: feed.duplicates,
        foreign_tickets: feed.foreign,
        rejections: metrics.sum(REJECTED) as u64,
        lost: injected.saturating_sub(feed.distinct() as u64),
        base_rss_bytes: base.rss_bytes,
        idle_rss_bytes: idle.rss_bytes,
        rss_per_mailbox_bytes: idle.rss_per_mailbox(&base, mailbox_count),
        rss_per_mailbox_settled_bytes: after.rss_per_mailbox(&base, mailbox_count),
        peak_rss_bytes: watch.peak_rss,
        rss_bound_bytes: bound,
        rss_bound_enforced: scenario.memory_bound,
        rss_bound_formula: format!(
            "base {} + store budget {store_budget} + N {} × 64 KiB + (parse_queue {q_parse} + 3 × parsers {parsers} + 4 × write_queue {q_write} + N) × largest message {s_max} B",
            base.rss_bytes, mailbox_count
        ),
        time_to_all_idle_s: all_idle.saturating_duration_since(reloaded).as_secs_f64(),
        logins_in_flight_peak: connect_logins_peak,
        login_limit: setting(&scenario.gateway, "max_concurrent_logins_per_host", DEFAULT_LOGIN_LIMIT),
        backlog,
        catch_up_s: match &backlog_commits {
            Some(series) => series.last().map(|(t, _)| *t),
            None => (backlog > 0).then(|| caught_up.saturating_duration_since(reloaded).as_secs_f64()),
        },
        catch_up_cpu_s: (backlog > 0)
            .then(|| (idle.cpu_ticks - cpu_at_reload) as f64 / TICKS_PER_SECOND as f64),
        farm_catch_up_cpu_s: (backlog > 0 && upstream.is_none()).then(|| {
            (farm_cpu_at_idle - farm_cpu_at_reload) as f64 / TICKS_PER_SECOND as f64
        }),
        raw_fetch_msgs_per_s: raw.map(|r| r.rate()),
        sustained_msgs_per_s: sustained_rate(backlog_commits.as_deref().unwrap_or(&watch.series)),
        writer: writer_figures(&metrics),
        catch_up_writer,
        measure_s: measured.as_secs_f64(),
        cpu_percent_of_core: 100.0 * cpu_seconds / measured.as_secs_f64(),
        latency: LatencyFigures::from(&latencies),
        recovery_s: recovery.map(|r| r.0.as_secs_f64()),
        recovery_logins_peak: recovery.map(|r| r.1),
        clean_exit,
    })
}

/// The writer's commits so far, from the gateway's commit metrics.
fn writer_figures(m: &Metrics) -> WriterFigures {
    WriterFigures {
        commits: m.value(COMMIT_SECONDS_COUNT).unwrap_or(0.0) as u64,
        messages: m.sum(COMMITTED) as u64,
        seconds: m.value(COMMIT_SECONDS_SUM).unwrap_or(0.0),
    }
}

/// Samples the gateway until `done` holds; the moment it did.
fn wait_until(
    api: &GatewayApi,
    pid: u32,
    since: Instant,
    timeout: Duration,
    watch: &mut Watch,
    done: impl Fn(&Watch) -> bool,
) -> Result<Instant, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(p) = sample(pid) {
            watch.peak_rss = watch.peak_rss.max(p.rss_bytes);
        }
        if let Ok(m) = api.metrics() {
            record(watch, &m, since);
        }
        if done(watch) {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "timed out after {timeout:?}: {} mailboxes idle, {} tickets committed",
                watch.idle, watch.tickets
            ));
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

fn record(watch: &mut Watch, m: &Metrics, since: Instant) {
    watch.idle = m.value(IDLE_SERIES).unwrap_or(0.0) as u64;
    watch.tickets = m.value(TICKETS_SERIES).unwrap_or(0.0) as u64;
    watch
        .series
        .push((since.elapsed().as_secs_f64(), watch.tickets));
}

/// Commits per second between 10 % and 90 % of the tickets the run saw
/// committed (the ramp at either end left out); `None` for too few.
fn sustained_rate(series: &[(f64, u64)]) -> Option<f64> {
    let total = series.last()?.1;
    if total < 100 {
        return None;
    }
    let at = |fraction: f64| {
        let mark = (total as f64 * fraction) as u64;
        series.iter().find(|(_, n)| *n >= mark).copied()
    };
    let ((t0, n0), (t1, n1)) = (at(0.1)?, at(0.9)?);
    (t1 > t0).then(|| (n1 - n0) as f64 / (t1 - t0))
}

/// Follows the feed until `stop`, then to its end; the latencies.
fn follow(api: GatewayApi, farm: Arc<Farm>, stop: &AtomicBool) -> Result<Latencies, String> {
    let mut feed = Feed::new(api, farm);
    while !stop.load(Ordering::Relaxed) {
        feed.poll(Duration::from_secs(1))
            .map_err(|e| format!("following the feed: {e}"))?;
    }
    feed.catch_up()
        .map_err(|e| format!("following the feed: {e}"))?;
    Ok(std::mem::take(&mut feed.latencies))
}

/// The config up to its mailboxes: the scenario's tables over the
/// defaults; implicit TLS trusting `ca` when given.
fn config_header(
    scenario: &Scenario,
    imap: SocketAddr,
    listen: SocketAddr,
    ca: Option<&Path>,
) -> Result<String, String> {
    let table = |t: &toml::Table| toml::to_string(t).map_err(|e| format!("{}: {e}", scenario.name));
    let security = match ca {
        Some(ca) => format!(
            "security = \"tls\"\nca_file = {:?}\n",
            ca.display().to_string()
        ),
        None => "security = \"none\"\n".to_owned(),
    };
    Ok(format!(
        "[gateway]\ndata_dir = \"store\"\nlisten = \"{listen}\"\n{}\n[pipeline]\n{}\n\
         [defaults]\nhost = \"{}\"\nport = {}\n{security}{}\n",
        table(&scenario.gateway)?,
        table(&scenario.pipeline)?,
        imap.ip(),
        imap.port(),
        table(&scenario.defaults)?,
    ))
}

/// `[[mailbox]]` entries for every farm user.
fn mailboxes(farm: &Farm, n: u32) -> String {
    let mut out = String::with_capacity(n as usize * 80);
    for user in 1..=n {
        let name = Farm::username(user);
        out.push_str(&format!(
            "[[mailbox]]\nid = \"{name}\"\nusername = \"{name}\"\npassword = \"{}\"\n\n",
            farm.password()
        ));
    }
    out
}
