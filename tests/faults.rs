//! Faults a real server will not produce on request, injected by a TCP proxy
//! between the gateway and Dovecot: every connection dropped mid-IDLE, a
//! socket that goes silent past the IDLE keepalive deadline, a greeting
//! slower than the connection timeout, refused connections, and a link
//! slower than the command timeout. Each time
//! the mailbox recovers with no lost and no doubled ticket.

mod support;

use std::{collections::HashSet, time::Duration};

use support::{eventually, mail, mailbox, proxy::Proxy, users, Dovecot, DovecotOptions, Gateway};

const WAIT: Duration = Duration::from_secs(30);

fn through(proxy: &Proxy, dovecot: &Dovecot, user: &str, extra: &str) -> String {
    mailbox("m", dovecot, user, extra).replace(
        &format!("port = {}", dovecot.port),
        &format!("port = {}", proxy.port),
    )
}

/// A Dovecot with the one user `{prefix}0`, a proxy in front of it, and
/// the gateway through the proxy (mailbox settings `extra`), once the
/// mailbox idles.
fn idle_behind_proxy(prefix: &str, extra: &str) -> (Dovecot, Proxy, tempfile::TempDir, Gateway) {
    let accounts = users(prefix, 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let proxy = Proxy::start(dovecot.port);
    let data = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        &data.path().join("store"),
        "",
        &through(&proxy, &dovecot, &format!("{prefix}0"), extra),
    );
    g.wait_for_state("m", "idle", WAIT);
    (dovecot, proxy, data, g)
}

fn unique_subjects(g: &Gateway) -> usize {
    let tickets = g.tickets(None);
    let set: HashSet<String> = tickets.iter().map(|t| t["subject"].to_string()).collect();
    assert_eq!(set.len(), tickets.len(), "doubled tickets: {tickets:?}");
    set.len()
}

#[test]
fn every_connection_dropped_mid_idle() {
    let accounts = users("fdrop", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let proxy = Proxy::start(dovecot.port);
    let data = tempfile::tempdir().unwrap();
    dovecot.deliver("fdrop0", &mail::simple("a@c.test", "before the drop"), None);
    let g = Gateway::start(
        &data.path().join("store"),
        "",
        &through(&proxy, &dovecot, "fdrop0", ""),
    );
    g.wait_for_tickets(None, 1, WAIT);
    g.wait_for_state("m", "idle", WAIT);
    proxy.drop_all();
    eventually("the drop to be noticed", WAIT, || {
        g.json("/api/mailboxes/m")["last_error"]["code"] == "imap_connection_lost"
    });
    dovecot.deliver("fdrop0", &mail::simple("b@c.test", "after the drop"), None);
    g.wait_for_tickets(None, 2, WAIT);
    g.wait_for_state("m", "idle", WAIT);
    assert_eq!(unique_subjects(&g), 2);
}

#[test]
fn a_silent_socket_is_caught_by_the_idle_keepalive() {
    let extra = "idle_keepalive_seconds = 1\nconnection_timeout_ms = 1000\nbackoff_initial_ms = 100\nbackoff_max_ms = 200";
    let (dovecot, proxy, _data, g) = idle_behind_proxy("fstall", extra);
    proxy.stall(true);
    eventually("the silence to be detected", WAIT, || {
        g.json("/api/mailboxes/m")["last_error"]["code"] == "connection_timeout"
    });
    let view = g.json("/api/mailboxes/m");
    assert!(
        view["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{view}"
    );
    proxy.stall(false);
    dovecot.deliver(
        "fstall0",
        &mail::simple("s@c.test", "after the stall"),
        None,
    );
    g.wait_for_tickets(None, 1, WAIT);
    g.wait_for_state("m", "idle", WAIT);
    assert_eq!(unique_subjects(&g), 1);
}

/// A large message over a slow link (or from a server throttling the
/// user) takes longer than `command_timeout_seconds`, while bytes keep
/// coming: the deadline is one of silence, so it comes in. The whole
/// response used to have to fit in the deadline, so the mailbox timed out
/// on that message at every attempt, for good.
#[test]
fn a_message_slower_than_the_command_timeout_comes_in_while_bytes_flow() {
    let extra = "command_timeout_seconds = 1\nbackoff_initial_ms = 100\nbackoff_max_ms = 200";
    let (dovecot, proxy, _data, g) = idle_behind_proxy("fthrottle", extra);
    // 300 KB at 100 KB/s: three seconds, a third of them the deadline.
    proxy.throttle(100_000);
    dovecot.deliver("fthrottle0", &mail::sized("slow@c.test", 300_000), None);
    g.wait_for_tickets(None, 1, WAIT);
    let view = g.json("/api/mailboxes/m");
    assert!(view["last_error"].is_null(), "{view}");
}

/// Starts the gateway through `proxy` with short timeouts and retries.
fn quick(proxy: &Proxy, dovecot: &Dovecot, user: &str, data: &std::path::Path) -> Gateway {
    let extra = "connection_timeout_ms = 1000\nbackoff_initial_ms = 100\nbackoff_max_ms = 200\nmax_tries = 1000";
    Gateway::start(
        &data.join("store"),
        "",
        &through(proxy, dovecot, user, extra),
    )
}

#[test]
fn a_greeting_slower_than_the_timeout() {
    let accounts = users("fslow", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let proxy = Proxy::start(dovecot.port);
    proxy.delay_greeting(Duration::from_secs(3));
    dovecot.deliver(
        "fslow0",
        &mail::simple("g@c.test", "behind a slow greeting"),
        None,
    );
    let data = tempfile::tempdir().unwrap();
    let g = quick(&proxy, &dovecot, "fslow0", data.path());
    eventually("the slow greeting to time out", WAIT, || {
        let v = g.json("/api/mailboxes/m");
        v["last_error"]["code"] == "connection_timeout"
            && v["last_error"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("greeting")
    });
    proxy.delay_greeting(Duration::ZERO);
    g.wait_for_tickets(None, 1, WAIT);
    g.wait_for_state("m", "idle", WAIT);
    assert_eq!(unique_subjects(&g), 1);
}

#[test]
fn refused_connections() {
    let accounts = users("frefuse", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let proxy = Proxy::start(dovecot.port);
    let data = tempfile::tempdir().unwrap();
    let g = quick(&proxy, &dovecot, "frefuse0", data.path());
    g.wait_for_state("m", "idle", WAIT);
    proxy.refuse(true);
    proxy.drop_all();
    eventually("the refusals to be seen", WAIT, || {
        g.metrics()
            .contains("mailgate_mailbox_errors_total{code=\"imap_connection_lost\"} 3")
    });
    dovecot.deliver(
        "frefuse0",
        &mail::simple("r@c.test", "sent while refused"),
        None,
    );
    proxy.refuse(false);
    g.wait_for_tickets(None, 1, WAIT);
    g.wait_for_state("m", "idle", WAIT);
    assert_eq!(unique_subjects(&g), 1);
}
