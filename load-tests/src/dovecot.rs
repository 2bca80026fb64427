//! A real Dovecot on 127.0.0.1, started by the tests and the load runner
//! themselves: its own config, passwd-file users and Maildirs in a temp dir,
//! a free port, and optionally implicit TLS with a certificate from a test CA.
//!
//! A test peer: every method panics with the reason when the machine cannot
//! do what it asks (Dovecot missing, a port that never opens).

use std::{
    fs,
    io::Write,
    net::{TcpListener, TcpStream},
    os::unix::fs::{chown, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime},
};

use crate::certs::make_certs;

const NOBODY: u32 = 65534;

/// A running Dovecot and the files that make it.
pub struct Dovecot {
    dir: tempfile::TempDir,
    /// IMAP port (plain, or TLS when started with `tls`).
    pub port: u16,
    child: Option<Child>,
    /// The CA certificate clients should trust, when TLS is on.
    pub ca_file: Option<PathBuf>,
    /// How clients connect.
    pub transport: Transport,
    no_idle: bool,
    extra_config: String,
    login_process_limit: Option<u32>,
}

/// How clients reach the test Dovecot.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transport {
    /// Plain IMAP (plaintext login allowed on loopback).
    #[default]
    Plain,
    /// Implicit TLS with a `localhost` certificate signed by a test CA.
    Tls,
    /// Plain greeting, STARTTLS required before login.
    Starttls,
}

impl Transport {
    /// The mailbox `security` value that matches.
    pub fn security(self) -> &'static str {
        match self {
            Self::Plain => "none",
            Self::Tls => "tls",
            Self::Starttls => "starttls",
        }
    }
}

/// Options for [`Dovecot::start`].
#[derive(Default, Clone)]
pub struct DovecotOptions {
    /// How clients connect.
    pub transport: Transport,
    /// Hide IDLE from the capabilities announced after login.
    pub no_idle: bool,
    /// Extra lines for dovecot.conf.
    pub extra_config: String,
    /// One imap-login process per connection, at most this many at once:
    /// beyond it Dovecot logs "process_limit (N) reached".
    pub login_process_limit: Option<u32>,
}

/// Waits until `done` holds, panicking with `what` after `within`. For
/// events in another process (a server's port, the gateway's API) that can
/// be observed but not subscribed to.
pub fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A port nobody is listening on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn open_dir(path: &Path) {
    // Dovecot's auth process runs as nobody: every directory on the way
    // to its files needs o+x (temp dirs are created 0700).
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

impl Dovecot {
    /// Starts Dovecot with `users` as (name, password); fails the test if
    /// Dovecot is not installed or does not come up.
    pub fn start(users: &[(String, String)], opts: DovecotOptions) -> Self {
        assert!(
            Path::new("/usr/sbin/dovecot").exists(),
            "Dovecot is required for the real-server tests: run scripts/test (it installs dovecot-imapd)"
        );
        let dir = tempfile::Builder::new()
            .prefix("mailgate-dovecot")
            .tempdir()
            .expect("tempdir");
        open_dir(dir.path());
        let root = dir.path();
        for d in ["run", "state", "log", "home"] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
            open_dir(&root.join(d));
        }
        let mut passwd = String::new();
        for (user, password) in users {
            let home = root.join("home").join(user);
            for sub in ["new", "cur", "tmp"] {
                fs::create_dir_all(home.join("Maildir").join(sub)).expect("mkdir");
            }
            chown_tree(&home);
            passwd.push_str(&format!(
                "{user}:{{PLAIN}}{password}:{NOBODY}:{NOBODY}::{}\n",
                home.display()
            ));
        }
        fs::write(root.join("passwd"), passwd).expect("passwd");
        let ca_file = (opts.transport != Transport::Plain)
            .then(|| make_certs(root).expect("test certificates").ca);
        let port = free_port();
        let me = Self {
            dir,
            port,
            child: None,
            ca_file,
            transport: opts.transport,
            no_idle: opts.no_idle,
            extra_config: opts.extra_config.clone(),
            login_process_limit: opts.login_process_limit,
        };
        me.write_config();
        let mut me = me;
        me.launch();
        me
    }

    fn write_config(&self) {
        let root = self.dir.path().display();
        let cert = format!("ssl_cert = <{root}/server.pem\nssl_key = <{root}/server.key\n");
        let (ssl, imap_port, imaps_port) = match self.transport {
            Transport::Plain => ("ssl = no\n".to_owned(), self.port, 0),
            Transport::Tls => (format!("ssl = required\n{cert}"), 0, self.port),
            // Plaintext login is refused until STARTTLS has run.
            Transport::Starttls => (format!("ssl = required\n{cert}"), self.port, 0),
        };
        let capability = if self.no_idle {
            "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT UIDPLUS LITERAL+ NAMESPACE\n"
        } else {
            ""
        };
        let extra = &self.extra_config;
        let login_limit = match self.login_process_limit {
            Some(n) => format!("service_count = 1\n  process_limit = {n}\n"),
            None => String::new(),
        };
        let plaintext = if self.transport == Transport::Starttls {
            "yes"
        } else {
            "no"
        };
        let conf = format!(
            r#"protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
info_log_path = {root}/log/dovecot.log
default_internal_user = nobody
default_internal_group = nogroup
default_login_user = nobody
disable_plaintext_auth = {plaintext}
auth_mechanisms = plain login xoauth2 oauthbearer
mail_location = maildir:~/Maildir
{ssl}
{capability}
{extra}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
service imap-login {{
  {login_limit}
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"#
        );
        fs::write(self.dir.path().join("dovecot.conf"), conf).expect("conf");
    }

    fn launch(&mut self) {
        let conf = self.dir.path().join("dovecot.conf");
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        let port = self.port;
        eventually("dovecot listening", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stops Dovecot (the port closes; sessions drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // The master waits up to 10 s for its imap processes; end them
            // at once, as a crashing or restarting server would.
            let pid = c.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = Command::new("pkill")
                .args(["-KILL", "-x", "-P", &pid, "imap"])
                .status();
            let _ = c.wait();
            // Children (imap, auth) exit after the master; wait for the port.
            let port = self.port;
            eventually("dovecot's port closed", Duration::from_secs(10), || {
                TcpStream::connect(("127.0.0.1", port)).is_err()
            });
            let _ = fs::remove_file(self.dir.path().join("run/master.pid"));
        }
    }

    /// Starts Dovecot again on the same port with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log/dovecot.log")).unwrap_or_default()
    }

    /// Successful IMAP logins of `user` so far, read from Dovecot's log.
    pub fn logins(&self, user: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(&format!("Login: user=<{user}>")))
            .count()
    }

    /// Creates the folder `name` in `user`'s mailbox (Maildir++ layout).
    pub fn create_folder(&self, user: &str, name: &str) {
        let dir = self
            .dir
            .path()
            .join("home")
            .join(user)
            .join("Maildir")
            .join(format!(".{name}"));
        for sub in ["new", "cur", "tmp"] {
            fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        chown_tree(&dir);
    }

    /// Delivers a message into `user`'s INBOX the Maildir way (tmp, then
    /// rename into new), optionally with an old internal date.
    pub fn deliver(&self, user: &str, raw: &[u8], internal_date: Option<SystemTime>) {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let maildir = self.dir.path().join("home").join(user).join("Maildir");
        // Named as Dovecot's own delivery names them: with the size and the
        // CRLF size ("virtual size"), which RFC822.SIZE then reads from the
        // name instead of from the message.
        let bare_lfs = raw
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
            .count();
        let name = format!(
            "{}.M{n}P{}.mailgate-test,S={},W={}",
            1_700_000_000 + n,
            std::process::id(),
            raw.len(),
            raw.len() + bare_lfs
        );
        let tmp = maildir.join("tmp").join(&name);
        let mut f = fs::File::create(&tmp).expect("create message");
        f.write_all(raw).expect("write message");
        if let Some(t) = internal_date {
            f.set_modified(t).expect("set mtime");
        }
        drop(f);
        chown(&tmp, Some(NOBODY), Some(NOBODY)).expect("chown");
        fs::rename(&tmp, maildir.join("new").join(&name)).expect("deliver");
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- dovecot log ----\n{}", self.log());
        }
        self.stop();
    }
}

fn chown_tree(path: &Path) {
    chown(path, Some(NOBODY), Some(NOBODY)).expect("chown");
    if path.is_dir() {
        for e in fs::read_dir(path).expect("read_dir") {
            chown_tree(&e.expect("entry").path());
        }
    }
}
