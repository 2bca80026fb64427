//! `mailgate demo`, the README's first command: with nothing set up it
//! serves the API, turns the farm's mail into tickets, and stops cleanly on
//! Ctrl-C, leaving no temporary store behind.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{dovecot::free_port, eventually, gateway::http_get};

#[test]
fn the_demo_runs_with_nothing_set_up_and_stops_on_ctrl_c() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .args(["demo", "--mailboxes", "25", "--rate", "40", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        // The demo's default store goes under the temp dir: check it is removed.
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = Demo(Some(child));
    let within = Duration::from_secs(60);
    eventually("the demo's API", within, || {
        http_get(port, "/readyz").is_some()
    });
    // Tickets flow: a long-poll of the feed returns them as they commit.
    let mut after = 0;
    let mut tickets = 0;
    while tickets < 50 {
        let (status, body) = http_get(
            port,
            &format!("/api/tickets?after={after}&limit=1000&wait=5"),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        tickets += page["tickets"].as_array().unwrap().len();
        after = page["next"].as_u64().unwrap_or(after);
    }
    let boxes: Value = serde_json::from_str(&http_get(port, "/api/mailboxes").unwrap().1).unwrap();
    assert_eq!(boxes.as_array().unwrap().len(), 25);
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().count() == 1,
        "the demo's store is in TMPDIR"
    );

    // Ctrl-C.
    let child = demo.0.take().unwrap();
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("25 mailboxes on a mail farm"), "{stdout}");
    assert!(
        stdout.contains("mailboxes idle"),
        "no progress line: {stdout}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temporary store left behind"
    );
}

/// Kills the demo if the test fails before stopping it.
struct Demo(Option<std::process::Child>);

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
