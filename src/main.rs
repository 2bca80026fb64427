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
        Command::Run { config } => {
            let cfg = match mailgate::config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprint!("{errors}");
                    return ExitCode::from(2);
                }
            };
            let system = actix::System::new();
            match system.block_on(mailgate::app::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mailgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
