//! The `mailgate` command line.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    // imap-next traces raw protocol bytes (LOGIN included) in debug builds;
    // its level is pinned so RUST_LOG=trace can never print a password.
    let mut filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if let Ok(pin) = "imap_next=info".parse() {
        filter = filter.add_directive(pin);
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
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
