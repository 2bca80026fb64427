//! `mailgate test-connection` and `POST /api/mailboxes/{id}/test` against a
//! real Dovecot: every step reported; a failure names its code and hint.

mod support;

use std::{fs, path::Path};

use support::{
    dovecot::free_port, gateway::http_post, mail, mailbox, users, Dovecot, DovecotOptions, Gateway,
};

fn test_connection(config: &Path, id: &str) -> (bool, String) {
    support::cli(
        &[
            "test-connection".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            id.as_ref(),
        ],
        &[],
    )
}

#[test]
fn reports_every_step_for_a_good_and_a_bad_mailbox() {
    let accounts = users("probe", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    dovecot.deliver("probe0", &mail::simple("p@c.test", "waiting"), None);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailgate.toml");
    let good = mailbox("good", &dovecot, "probe0", "status = \"draft\"");
    let bad = mailbox("bad", &dovecot, "probe0", "").replace("pw-probe0", "wrong-password");
    let closed = mailbox("closed", &dovecot, "probe0", "").replace(
        &format!("port = {}", dovecot.port),
        &format!("port = {}", free_port()),
    );
    fs::write(&config, format!("{good}\n{bad}\n{closed}")).unwrap();

    let (ok, out) = test_connection(&config, "good");
    assert!(ok, "{out}");
    for step in ["tcp_connect", "greeting", "login", "select INBOX", "logout"] {
        assert!(
            out.lines().any(|l| l.contains("ok") && l.contains(step)),
            "step {step} missing:\n{out}"
        );
    }
    assert!(out.contains("IDLE: yes"), "{out}");
    assert!(out.contains("folder \"INBOX\": 1 messages"), "{out}");
    assert!(out.contains("result: ok"), "{out}");

    let (ok, out) = test_connection(&config, "bad");
    assert!(!ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("FAIL") && l.contains("login")),
        "{out}"
    );
    assert!(out.contains("imap_auth_failed"), "{out}");
    assert!(
        out.contains("hint: check the username and password"),
        "{out}"
    );
    assert!(
        !out.contains("wrong-password"),
        "the password is never printed:\n{out}"
    );

    let (ok, out) = test_connection(&config, "closed");
    assert!(!ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("FAIL") && l.contains("tcp_connect")),
        "{out}"
    );
    assert!(out.contains("imap_connect_failed"), "{out}");

    let (ok, out) = test_connection(&config, "nope");
    assert!(!ok);
    assert!(out.contains("configured: good, bad, closed"), "{out}");
}

#[test]
fn the_api_tests_a_draft_mailbox() {
    let accounts = users("apiprobe", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let data = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        &data.path().join("store"),
        "",
        &mailbox("d", &dovecot, "apiprobe0", "status = \"draft\""),
    );
    assert_eq!(g.json("/api/mailboxes/d")["state"], "draft");
    let (status, body) = http_post(g.port(), "/api/mailboxes/d/test").expect("POST");
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["idle"], true);
    assert_eq!(report["folders"][0]["name"], "INBOX");
    // A draft is tested, not started: one login, from the test itself.
    assert_eq!(g.json("/api/mailboxes/d")["state"], "draft");
    let (status, _) = http_post(g.port(), "/api/mailboxes/missing/test").expect("POST");
    assert_eq!(status, 404);
}
