//! The `mailgate` command line.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// jemalloc rather than glibc's malloc. A message's buffers are allocated
/// on the mailbox and parser threads and freed on the writer's release
/// thread; glibc serves that through its arena locks and fastbin
/// consolidation (≈ 10 % of both cores in the burst profile). With jemalloc
/// the burst ran 5.7 % faster and an idle mailbox holds 7.1 KiB, not 7.7.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A mail gateway between enterprise mailboxes and a helpdesk.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM or Ctrl-C.
    Run {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and print every error.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Connect to one mailbox's server (drafts too) and report every step:
    /// connect, TLS, greeting, login, capabilities, each folder.
    TestConnection {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The mailbox id.
        mailbox: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Zero-setup demo: an in-process mail farm with hundreds of mailboxes
    /// and steady customer mail, the gateway against it, a live progress line.
    Demo {
        /// Mailboxes on the farm.
        #[arg(long, default_value_t = 300)]
        mailboxes: u32,
        /// New messages per second over all mailboxes.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Keep the config and store here (default: a temporary directory,
        /// removed at the end).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The gateway's HTTP listener (API and /metrics).
        #[arg(long, default_value = "127.0.0.1:8025")]
        listen: std::net::SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's progress line owns the terminal: only warnings by default.
    let default_level = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info",
    };
    // imap-next traces raw protocol bytes (LOGIN included) in debug builds;
    // its level is pinned so RUST_LOG=trace can never print a password, and
    // at warn because it opens an INFO span around every socket read and
    // write: formatting those cost a fifth of the CPU under load.
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_level.into());
    if let Ok(pin) = "imap_next=warn".parse() {
        filter = filter.add_directive(pin);
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Demo {
            mailboxes,
            rate,
            data_dir,
            listen,
        } => match mailgate::demo::run(mailgate::demo::DemoOptions {
            mailboxes,
            rate,
            data_dir,
            listen,
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mailgate demo: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { config } => match mailgate::config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: valid ({} mailboxes)",
                    config.display(),
                    c.mailboxes.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprint!("{errors}");
                eprintln!("{}: {} error(s)", config.display(), errors.0.len());
                ExitCode::from(2)
            }
        },
        Command::TestConnection {
            config,
            mailbox,
            json,
        } => {
            let cfg = match mailgate::config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprint!("{errors}");
                    return ExitCode::from(2);
                }
            };
            let Some(mb) = cfg.mailboxes.iter().find(|m| m.id == mailbox) else {
                let ids: Vec<&str> = cfg.mailboxes.iter().map(|m| m.id.as_str()).collect();
                eprintln!(
                    "no mailbox {mailbox:?} in {}; configured: {}",
                    config.display(),
                    ids.join(", ")
                );
                return ExitCode::from(2);
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("mailgate: cannot start a runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let report = runtime.block_on(mailgate::mailbox::probe::probe(
                mb,
                cfg.pipeline.max_message_bytes,
            ));
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", report.render());
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Run { config } => {
            let cfg = match mailgate::config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprint!("{errors}");
                    return ExitCode::from(2);
                }
            };
            let system = actix::System::new();
            match system.block_on(mailgate::app::run(cfg, config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mailgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
