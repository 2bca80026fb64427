//! The real `mailgate` binary as a child process, driven through its config
//! file, its HTTP API and signals (SIGTERM for a clean stop, SIGKILL for a crash).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use super::{dovecot::free_port, eventually, Dovecot};

/// One `[[mailbox]]` entry pointing at a test Dovecot user. The gateway's
/// `[defaults]` make logins patient (20 s): Dovecot delays repeated failed
/// logins by seconds.
pub fn mailbox(id: &str, dovecot: &Dovecot, user: &str, extra: &str) -> String {
    let security = dovecot.transport.security();
    let ca = match &dovecot.ca_file {
        Some(ca) => format!("ca_file = {:?}\n", ca.display().to_string()),
        None => String::new(),
    };
    format!(
        "[[mailbox]]\nid = {id:?}\nhost = \"localhost\"\nport = {}\nsecurity = \"{security}\"\n{ca}username = {user:?}\npassword = \"pw-{user}\"\n{extra}\n",
        dovecot.port
    )
}

/// A running gateway.
pub struct Gateway {
    child: Option<Child>,
    rust_log: String,
    port: u16,
    config: PathBuf,
    /// The config file up to its mailboxes.
    header: String,
    log: PathBuf,
}

impl Gateway {
    /// Writes a config for `mailboxes` with its store in `data_dir`, starts
    /// the gateway and waits until /readyz answers.
    pub fn start(data_dir: &Path, pipeline: &str, mailboxes: &str) -> Self {
        Self::start_logged(data_dir, pipeline, mailboxes, "info")
    }

    /// [`start`](Self::start) with `RUST_LOG` set to `rust_log`.
    pub fn start_logged(data_dir: &Path, pipeline: &str, mailboxes: &str, rust_log: &str) -> Self {
        Self::start_full(data_dir, "", pipeline, mailboxes, rust_log)
    }

    /// [`start`](Self::start) with extra `[gateway]` lines and `RUST_LOG`.
    pub fn start_full(
        data_dir: &Path,
        gateway: &str,
        pipeline: &str,
        mailboxes: &str,
        rust_log: &str,
    ) -> Self {
        let port = free_port();
        let config = data_dir.with_extension("toml");
        let header = format!(
            "[gateway]\ndata_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_seconds = 10\n{gateway}\n\n[pipeline]\n{pipeline}\n\n[defaults]\nconnection_timeout_ms = 20000\n\n",
            data_dir.display().to_string()
        );
        fs::write(&config, format!("{header}{mailboxes}")).expect("write config");
        let mut g = Self {
            child: None,
            rust_log: rust_log.to_owned(),
            port,
            log: data_dir.with_extension("log"),
            config,
            header,
        };
        g.launch();
        g
    }

    /// Starts the gateway and waits until it serves /readyz on its port. A
    /// port taken between [`free_port`] and the bind (by another test's
    /// connection or listener) is replaced and the start tried again.
    fn launch(&mut self) {
        for _ in 0..5 {
            let from = fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("log file");
            let mut child = Command::new(env!("CARGO_BIN_EXE_mailgate"))
                .arg("run")
                .arg("--config")
                .arg(&self.config)
                .env("RUST_LOG", &self.rust_log)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start mailgate");
            let port = self.port;
            let since_launch = || {
                fs::read(&self.log)
                    .map(|b| String::from_utf8_lossy(&b[from.min(b.len())..]).into_owned())
                    .unwrap_or_default()
            };
            let mut exited = false;
            // Ready means this process said it listens (another could
            // answer on a port it failed to take) and /readyz answers.
            eventually("mailgate /readyz", Duration::from_secs(20), || {
                exited = matches!(child.try_wait(), Ok(Some(_)));
                exited
                    || (since_launch().contains("mailgate running")
                        && http_get(port, "/readyz").is_some_and(|(status, _)| status == 200))
            });
            if !exited {
                self.child = Some(child);
                return;
            }
            let text = since_launch();
            assert!(
                text.contains("Address already in use"),
                "mailgate exited at start:\n{text}"
            );
            let listen = |port: u16| format!("listen = \"127.0.0.1:{port}\"");
            self.port = free_port();
            self.header = self.header.replace(&listen(port), &listen(self.port));
            let config = fs::read_to_string(&self.config).expect("read config");
            fs::write(
                &self.config,
                config.replace(&listen(port), &listen(self.port)),
            )
            .expect("write config");
        }
        panic!("no free port for mailgate after five tries");
    }

    /// Starts the gateway again with the same config and store.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the gateway first");
        self.launch();
    }

    /// Rewrites the mailboxes in the config file and sends SIGHUP.
    pub fn reload(&self, mailboxes: &str) {
        fs::write(&self.config, format!("{}{mailboxes}", self.header)).expect("write config");
        let pid = self.child.as_ref().expect("running").id().to_string();
        let _ = Command::new("kill").args(["-HUP", &pid]).status();
    }

    /// SIGKILL: a crash at an arbitrary point.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the clean exit; returns its exit status success.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(mut c) => {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(c.id().to_string())
                    .status();
                c.wait().map(|s| s.success()).unwrap_or(false)
            }
            None => true,
        }
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a JSON document from the API.
    pub fn json(&self, path: &str) -> Value {
        let (status, body) =
            http_get(self.port, path).unwrap_or_else(|| panic!("GET {path} failed"));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// The Prometheus text of /metrics.
    pub fn metrics(&self) -> String {
        http_get(self.port, "/metrics").expect("GET /metrics").1
    }

    /// Every ticket, following the change-feed cursor to its end.
    pub fn tickets(&self, mailbox: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        self.follow(mailbox, 0, &mut out);
        out
    }

    /// One page of the feed after cursor `after` into `out`, waiting up to
    /// `wait_s` seconds for a commit when there is nothing yet; the next
    /// cursor, if the page had any.
    fn page(
        &self,
        mailbox: Option<&str>,
        after: u64,
        wait_s: u64,
        out: &mut Vec<Value>,
    ) -> Option<u64> {
        let filter = mailbox.map(|m| format!("&mailbox={m}")).unwrap_or_default();
        let page = self.json(&format!(
            "/api/tickets?after={after}&limit=1000&wait={wait_s}{filter}"
        ));
        out.extend(page["tickets"].as_array().cloned().unwrap_or_default());
        page["next"].as_u64()
    }

    /// Reads the whole feed after `after` into `out`; the cursor reached.
    fn follow(&self, mailbox: Option<&str>, mut after: u64, out: &mut Vec<Value>) -> u64 {
        while let Some(next) = self.page(mailbox, after, 0, out) {
            after = next;
        }
        after
    }

    /// Every recorded rejection.
    pub fn rejections(&self) -> Vec<Value> {
        self.json("/api/rejections?limit=1000")["rejections"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until the API lists `n` tickets (for `mailbox`, or all).
    pub fn wait_for_tickets(
        &self,
        mailbox: Option<&str>,
        n: usize,
        within: Duration,
    ) -> Vec<Value> {
        // Long-polls the change feed: each request returns as soon as the
        // writer commits, so nothing here sleeps.
        let deadline = std::time::Instant::now() + within;
        let mut seen = Vec::new();
        let mut after = self.follow(mailbox, 0, &mut seen);
        while seen.len() < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {within:?} waiting for {n} tickets (have {})",
                seen.len()
            );
            let wait_s = left.as_secs().clamp(1, 5);
            if let Some(next) = self.page(mailbox, after, wait_s, &mut seen) {
                after = next;
            }
        }
        self.tickets(mailbox)
    }

    /// Waits until a mailbox reports `state`.
    pub fn wait_for_state(&self, id: &str, state: &str, within: Duration) {
        eventually(&format!("mailbox {id} {state}"), within, || {
            self.json(&format!("/api/mailboxes/{id}"))["state"] == state
        });
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- mailgate log ----\n{}", self.log());
        }
        self.kill9();
    }
}

/// A minimal HTTP/1.0 GET: (status, body), or `None` if nothing answered.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path)
}

/// A minimal HTTP/1.0 POST without a body.
pub fn http_post(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "POST", path)
}

fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    mailfarm::GatewayApi::new(([127, 0, 0, 1], port).into())
        .request(method, path, Duration::from_secs(30))
        .ok()
}
