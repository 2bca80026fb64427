//! `mailgate demo`: the whole gateway on one machine with nothing to set up.
//! An in-process mail farm (load-tests/) hosts the mailboxes and keeps
//! customer mail arriving; the gateway runs against it as in production —
//! a config file, RocksDB, the API and /metrics — and a progress line shows
//! what it does until Ctrl-C.

use std::{
    fmt::Write as _,
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use mailfarm::{Farm, FarmConfig, Feed, GatewayApi, SizeBand, SizeMix, Traffic};

use crate::{
    app::{self, AppError},
    config::{self, ConfigErrors},
};

/// Tickets the rolling p99 covers (20 s of the default traffic).
const LATENCY_WINDOW: usize = 1_000;

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Mailboxes the farm hosts (and the gateway watches).
    pub mailboxes: u32,
    /// New messages per second over all mailboxes.
    pub rate: f64,
    /// Where the config and the store go; a fresh temporary directory,
    /// removed at the end, when `None`.
    pub data_dir: Option<PathBuf>,
    /// The gateway's HTTP listener.
    pub listen: SocketAddr,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The data directory or config file could not be written.
    #[error("cannot write {path}: {reason}; pass --data-dir with a writable directory")]
    Files {
        /// What could not be written.
        path: String,
        /// OS error.
        reason: String,
    },
    /// The mail farm could not start.
    #[error("cannot start the demo mail farm: {0}")]
    Farm(String),
    /// The generated config did not validate (a bug, or a bad option value).
    #[error("the demo config is invalid:\n{0}")]
    Config(ConfigErrors),
    /// The gateway failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// An option is out of range.
    #[error("{0}")]
    Option(String),
}

/// Runs the demo until Ctrl-C.
pub fn run(opts: DemoOptions) -> Result<(), DemoError> {
    if opts.mailboxes == 0 || !(opts.rate.is_finite() && opts.rate >= 0.0) {
        return Err(DemoError::Option(format!(
            "--mailboxes must be at least 1 (got {}) and --rate 0 or more (got {})",
            opts.mailboxes, opts.rate
        )));
    }
    let (dir, temporary) = match &opts.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("mailgate-demo-{}", std::process::id())),
            true,
        ),
    };
    let result = run_in(&opts, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(opts: &DemoOptions, dir: &Path) -> Result<(), DemoError> {
    let files = |path: &Path, e: std::io::Error| DemoError::Files {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| files(dir, e))?;
    let farm = Farm::new(FarmConfig::new(opts.mailboxes));
    let imap = start_farm(&farm, opts.rate)?;
    let config_path = dir.join("mailgate.toml");
    std::fs::write(&config_path, demo_config(&farm, imap, opts.listen))
        .map_err(|e| files(&config_path, e))?;
    let cfg = config::load(&config_path).map_err(DemoError::Config)?;

    println!(
        "mailgate demo: {} mailboxes on a mail farm at {imap}, {} new messages/s",
        opts.mailboxes, opts.rate
    );
    println!("  config and store: {}", dir.display());
    println!("  tickets:   curl -s http://{}/api/tickets", opts.listen);
    println!("  mailboxes: curl -s http://{}/api/mailboxes", opts.listen);
    println!("  metrics:   curl -s http://{}/metrics", opts.listen);
    println!("Ctrl-C stops.\n");

    let stop = Arc::new(AtomicBool::new(false));
    let progress = {
        let (farm, stop) = (farm.clone(), stop.clone());
        let (api, mailboxes) = (GatewayApi::new(opts.listen), opts.mailboxes);
        std::thread::spawn(move || report_progress(api, farm, mailboxes, &stop))
    };
    let system = actix::System::new();
    let outcome = system.block_on(app::run(cfg, config_path));
    stop.store(true, Ordering::Relaxed);
    let _ = progress.join();
    println!();
    outcome.map_err(DemoError::from)
}

/// Starts the farm and its traffic on a runtime of their own (the gateway
/// has its own); the farm's IMAP address.
fn start_farm(farm: &Arc<Farm>, rate: f64) -> Result<SocketAddr, DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mail-farm")
        .enable_all()
        .build()
        .map_err(|e| DemoError::Farm(e.to_string()))?;
    let listener = runtime
        .block_on(farm.listen(SocketAddr::from(([127, 0, 0, 1], 0))))
        .map_err(|e| DemoError::Farm(e.to_string()))?;
    let addr = listener.addr();
    // Mostly short customer mail, now and then one with an attachment.
    let sizes = SizeMix::new(vec![
        SizeBand {
            weight: 97.0,
            min: 2 * 1024,
            max: 8 * 1024,
        },
        SizeBand {
            weight: 3.0,
            min: 50 * 1024,
            max: 300 * 1024,
        },
    ])
    .map_err(DemoError::Farm)?;
    let traffic = Traffic { rate, sizes };
    let farm = farm.clone();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let _listener = listener;
            let _ = traffic.spawn(farm).await;
        })
    });
    Ok(addr)
}

/// The config a user would write for these mailboxes.
fn demo_config(farm: &Farm, imap: SocketAddr, listen: SocketAddr) -> String {
    let mut toml = format!(
        "# Written by `mailgate demo`: one mailbox per mail-farm user.\n\
         [gateway]\ndata_dir = \"store\"\nlisten = \"{listen}\"\n\
         # The farm takes logins as fast as they come: connect in a second.\n\
         max_concurrent_logins_per_host = 32\nlogins_per_second_per_host = 500\n\n\
         [defaults]\nhost = \"{}\"\nport = {}\nsecurity = \"none\"\n\n",
        imap.ip(),
        imap.port()
    );
    for user in 1..=farm.mailboxes() {
        let name = Farm::username(user);
        let _ = write!(
            toml,
            "[[mailbox]]\nid = \"{name}\"\nusername = \"{name}\"\npassword = \"{}\"\n\
             reply_to = \"{name}@farm.invalid\"\n\n[mailbox.ticket]\ngroup = \"Tier 1\"\ntags = [\"demo\"]\n\n",
            farm.password()
        );
    }
    toml
}

/// Prints one progress line a second: mailboxes in IDLE, commit rate,
/// tickets, and the p99 from injection to commit over the last samples.
fn report_progress(api: GatewayApi, farm: Arc<Farm>, mailboxes: u32, stop: &AtomicBool) {
    let mut feed = Feed::new(api, farm.clone());
    let mut last = (Instant::now(), 0.0);
    while !stop.load(Ordering::Relaxed) {
        // Waits for the next commit (or a second) while following the feed.
        if feed.poll(Duration::from_secs(1)).is_err() {
            std::thread::sleep(Duration::from_millis(200));
        }
        feed.latencies.keep_last(LATENCY_WINDOW);
        if last.0.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let Ok(metrics) = api.metrics() else {
            continue;
        };
        let committed = metrics.sum(crate::telemetry::MESSAGES_COMMITTED);
        let rate = (committed - last.1) / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), committed);
        let idle = metrics
            .value(&format!(
                "{}{{state=\"idle\"}}",
                crate::telemetry::MAILBOXES
            ))
            .unwrap_or(0.0);
        let p99 = feed
            .latencies
            .quantile(0.99)
            .map(|d| format!("{} ms", d.as_millis()))
            .unwrap_or_else(|| "-".into());
        print!(
            "\rmailboxes idle {idle:.0}/{mailboxes} · {rate:.1} msgs/s · tickets {} · p99 {p99} · injected {}   ",
            feed.tickets,
            farm.stats().messages_total
        );
        let _ = std::io::stdout().flush();
    }
}
