//! The gateway under test as a separate process (so its memory and CPU
//! are its own): config file, start, reload, stop, and /proc readings.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::observe::GatewayApi;

/// Memory and CPU time of a process, from /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
}

impl ProcSample {
    /// RSS over `base`'s, per one of `n` mailboxes.
    pub fn rss_per_mailbox(&self, base: &ProcSample, n: u64) -> f64 {
        self.rss_bytes.saturating_sub(base.rss_bytes) as f64 / n as f64
    }
}

/// Clock ticks per second for /proc/PID/stat times (USER_HZ, 100 on Linux).
pub const TICKS_PER_SECOND: u64 = 100;

/// Reads `pid`'s RSS and CPU time.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces, inside parens).
    let after = stat
        .rsplit_once(')')
        .ok_or_else(|| io::Error::other("bad stat"))?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0) };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after ')'.
    Ok(ProcSample {
        rss_bytes: rss_kib * 1024,
        cpu_ticks: ticks(11) + ticks(12),
    })
}

/// A running gateway process.
pub struct GatewayProcess {
    child: Child,
    config: PathBuf,
    header: String,
    /// Its HTTP API.
    pub api: GatewayApi,
    log: PathBuf,
}

impl GatewayProcess {
    /// Writes `header` (everything but the mailboxes) with no mailboxes,
    /// starts `binary run` in `dir`, and waits for /readyz.
    pub fn start(binary: &Path, dir: &Path, header: String) -> io::Result<Self> {
        let config = dir.join("mailgate.toml");
        fs::write(&config, &header)?;
        let log = dir.join("mailgate.log");
        let child = Command::new(binary)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("MAILGATE_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?)
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start {}: {e}", binary.display())))?;
        let api = GatewayApi::new(listen_addr(&header)?);
        let mut gateway = Self {
            child,
            config,
            header,
            api,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(
            gateway.api.get("/readyz", Duration::from_secs(2)),
            Ok((200, _))
        ) {
            if let Some(status) = gateway.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "the gateway exited ({status}): {}",
                    gateway.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("the gateway did not become ready in 60 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(gateway)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Replaces the mailboxes and reloads (SIGHUP).
    pub fn reload(&self, mailboxes: &str) -> io::Result<()> {
        fs::write(&self.config, format!("{}{mailboxes}", self.header))?;
        signal(self.pid(), "HUP")
    }

    /// SIGTERM, then waits for the two-phase shutdown; whether it exited 0.
    pub fn stop(mut self) -> io::Result<bool> {
        signal(self.pid(), "TERM")?;
        Ok(self.child.wait()?.success())
    }

    /// The last lines of the gateway's log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) -> io::Result<()> {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?
        .success();
    ok.then_some(())
        .ok_or_else(|| io::Error::other(format!("kill -{name} {pid} failed")))
}

fn listen_addr(header: &str) -> io::Result<SocketAddr> {
    header
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .and_then(|v| v.trim().trim_matches('"').parse().ok())
        .ok_or_else(|| io::Error::other("the config has no [gateway] listen line"))
}

/// A loopback address with a port nobody listens on now.
pub fn free_addr() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}
