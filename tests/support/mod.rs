//! The end-to-end test harness: a real Dovecot, the real gateway binary,
//! and message builders.

#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

pub mod gateway;
pub mod mail;
pub mod proxy;
pub mod token;

use std::process::Command;

pub use gateway::{mailbox, Gateway};
pub use mailfarm::dovecot::{self, eventually, Dovecot, DovecotOptions};

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
