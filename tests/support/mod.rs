//! The end-to-end test harness: a real Dovecot, the real gateway binary,
//! and message builders.

#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

pub mod dovecot;
pub mod gateway;
pub mod mail;
pub mod proxy;
pub mod token;

use std::{
    process::Command,
    time::{Duration, Instant},
};

pub use dovecot::{Dovecot, DovecotOptions};
pub use gateway::{mailbox, Gateway};

/// Waits until `done` holds, failing the test with `what` after `within`.
/// Used only where the event lives in another process (a server's port, the
/// gateway's API), which the test can observe but not subscribe to.
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

/// `n` users named `{prefix}{i}` with password `pw-{prefix}{i}`.
pub fn users(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}{i}"), format!("pw-{prefix}{i}")))
        .collect()
}

/// Runs the `mailgate` binary with `args` and `env`; returns whether it
/// exited 0, and stdout followed by stderr.
pub fn cli(args: &[&std::ffi::OsStr], env: &[(&str, Option<&str>)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailgate"));
    cmd.args(args);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().expect("run mailgate");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
