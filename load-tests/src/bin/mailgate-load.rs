//! `mailgate-load`: runs load scenarios against the mailgate binary and
//! writes a JSON report and a Markdown summary for each.
//!
//! ```text
//! mailgate-load load-tests/scenarios/burst.toml [more.toml ...] [--smoke] [--out DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mailfarm::{RunOptions, Scenario};

#[derive(Parser)]
#[command(about = "Run mailgate load scenarios and report their figures")]
struct Args {
    /// Scenario files (load-tests/scenarios/*.toml).
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Run each scenario's small `[smoke]` version (seconds; checks
    /// correctness, not speed).
    #[arg(long)]
    smoke: bool,
    /// Where reports go.
    #[arg(long, default_value = "load-tests/reports")]
    out: PathBuf,
    /// The mailgate binary (default: next to this one, same build profile).
    #[arg(long)]
    gateway: Option<PathBuf>,
    /// Keep the gateway's config, store and log here instead of a temporary
    /// directory.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// After each scenario, run it with imapflow (Node.js) in mailgate's
    /// place and report both side by side: idle scenarios hold the same
    /// sessions against the same farm; the catch-up scenario fetches and
    /// parses the same backlog (imapflow + mailparser) from Dovecot.
    #[arg(long)]
    vs_imapflow: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let gateway_bin = match args.gateway.or_else(|| {
        let exe = std::env::current_exe().ok()?;
        Some(exe.parent()?.join("mailgate"))
    }) {
        Some(p) if p.exists() => p,
        other => {
            eprintln!(
                "mailgate-load: no mailgate binary at {other:?}; build it (cargo build --release --workspace) or pass --gateway"
            );
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("mailgate-load: cannot create {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    let mut failed = false;
    for path in &args.scenarios {
        let scenario = match Scenario::load(path) {
            Ok(s) if args.smoke => s.smoke(),
            Ok(s) => s,
            Err(e) => {
                eprintln!("mailgate-load: {e}");
                return ExitCode::from(2);
            }
        };
        eprintln!("==> {}: {}", scenario.name, scenario.about);
        let opts = RunOptions {
            gateway_bin: gateway_bin.clone(),
            work_dir: args.work_dir.clone(),
        };
        match mailfarm::run(&scenario, &opts) {
            Ok(report) => {
                let md = report.markdown();
                println!("{md}");
                let base = args.out.join(&scenario.name);
                let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                let written = std::fs::write(base.with_extension("json"), json)
                    .and_then(|()| std::fs::write(base.with_extension("md"), &md));
                if let Err(e) = written {
                    eprintln!("mailgate-load: cannot write the report: {e}");
                    failed = true;
                }
                failed |= !report.problems().is_empty();
                if args.vs_imapflow {
                    match mailfarm::compare_with_imapflow(
                        &scenario,
                        &report,
                        args.work_dir.as_deref(),
                    ) {
                        Ok(c) => {
                            println!("{}", c.markdown);
                            let base = args.out.join(format!("{}-vs-imapflow", scenario.name));
                            if let Err(e) = std::fs::write(base.with_extension("json"), c.json)
                                .and_then(|()| {
                                    std::fs::write(base.with_extension("md"), &c.markdown)
                                })
                            {
                                eprintln!("mailgate-load: cannot write the comparison: {e}");
                                failed = true;
                            }
                        }
                        Err(e) => {
                            eprintln!("mailgate-load: {} with imapflow: {e}", scenario.name);
                            failed = true;
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("mailgate-load: {}: {e}", scenario.name);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
