//! Inbound end to end against a real Dovecot: IDLE push, catch-up on start,
//! deduplication, sync start date, oversized mail, reconnects and TLS.

mod support;

use std::{
    collections::HashSet,
    time::{Duration, SystemTime},
};

use serde_json::Value;
use support::{
    dovecot::Transport, eventually, mail, mailbox, users, Dovecot, DovecotOptions, Gateway,
};

const WAIT: Duration = Duration::from_secs(30);

fn subjects(tickets: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = tickets
        .iter()
        .map(|t| t["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    s.sort();
    s
}

/// Waits until mailbox `id`'s INBOX checkpoint reaches `uid`: every message up
/// to it is committed, so counting tickets afterwards is exact.
fn wait_for_checkpoint(g: &Gateway, id: &str, uid: u64) {
    eventually(&format!("{id} checkpoint at {uid}"), WAIT, || {
        g.json(&format!("/api/mailboxes/{id}"))["checkpoint"]["INBOX"]["uid"].as_u64() == Some(uid)
    });
}

#[test]
fn idle_push_reaches_twenty_mailboxes_without_polling() {
    let accounts = users("idle", 20);
    let mut dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let data = tempfile::tempdir().unwrap();
    let boxes: String = accounts
        .iter()
        .map(|(u, _)| mailbox(u, &dovecot, u, ""))
        .collect();
    let g = Gateway::start(&data.path().join("store"), "", &boxes);
    for (u, _) in &accounts {
        g.wait_for_state(u, "idle", WAIT);
    }
    for (i, (u, _)) in accounts.iter().enumerate() {
        dovecot.deliver(
            u,
            &mail::simple(&format!("push-{i}@client.test"), &format!("push {i}")),
            None,
        );
    }
    for (u, _) in &accounts {
        let t = g.wait_for_tickets(Some(u), 1, WAIT);
        assert_eq!(t.len(), 1, "{u}: {t:?}");
    }
    assert_eq!(g.tickets(None).len(), 20);
    let view = g.json("/api/mailboxes/idle0");
    assert_eq!(view["state"], "idle");
    assert_eq!(view["checkpoint"]["INBOX"]["uid"], 1);
    let metrics = g.metrics();
    assert!(
        metrics.contains("mailgate_mailboxes{state=\"idle\"} 20"),
        "{metrics}"
    );
    // One login per mailbox: the mail arrived by IDLE push on the session
    // that was already open, not by reconnecting or re-selecting to poll.
    // Stopping Dovecot first makes its log complete.
    dovecot.stop();
    for (u, _) in &accounts {
        assert_eq!(
            dovecot.logins(u),
            1,
            "{u} logged in again:\n{}",
            dovecot.log()
        );
    }
}

#[test]
fn mail_that_arrives_while_stopped_is_picked_up_once() {
    let accounts = users("stopped", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let data = tempfile::tempdir().unwrap();
    for i in 0..5 {
        dovecot.deliver(
            "stopped0",
            &mail::simple(&format!("s{i}@c.test"), &format!("before {i}")),
            None,
        );
    }
    let boxes = mailbox("m", &dovecot, "stopped0", "");
    let mut g = Gateway::start(&data.path().join("store"), "", &boxes);
    wait_for_checkpoint(&g, "m", 5);
    assert!(g.stop(), "clean shutdown:\n{}", g.log());
    for i in 5..10 {
        dovecot.deliver(
            "stopped0",
            &mail::simple(&format!("s{i}@c.test"), &format!("while stopped {i}")),
            None,
        );
    }
    g.restart();
    wait_for_checkpoint(&g, "m", 10);
    let tickets = g.tickets(None);
    assert_eq!(tickets.len(), 10, "{:?}", subjects(&tickets));
    assert_eq!(
        subjects(&tickets).into_iter().collect::<HashSet<_>>().len(),
        10
    );
    assert!(g.log().contains("stopped"), "shutdown was logged");
}

#[test]
fn same_message_id_in_two_mailboxes_is_one_ticket() {
    let accounts = users("dup", 2);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let data = tempfile::tempdir().unwrap();
    let raw = mail::simple("shared@client.test", "cc'd to both");
    dovecot.deliver("dup0", &raw, None);
    dovecot.deliver("dup1", &raw, None);
    let boxes = mailbox("a", &dovecot, "dup0", "") + &mailbox("b", &dovecot, "dup1", "");
    let g = Gateway::start(&data.path().join("store"), "", &boxes);
    wait_for_checkpoint(&g, "a", 1);
    wait_for_checkpoint(&g, "b", 1);
    let tickets = g.tickets(None);
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let metrics = g.metrics();
    assert!(
        metrics.contains("mailgate_messages_committed_total{outcome=\"duplicate\"} 1"),
        "{metrics}"
    );
}

#[test]
fn sync_start_date_excludes_older_mail_on_first_run() {
    let accounts = users("since", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let data = tempfile::tempdir().unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800); // 2020-01-01
    for i in 0..3 {
        dovecot.deliver(
            "since0",
            &mail::simple(&format!("old{i}@c.test"), &format!("old {i}")),
            Some(old),
        );
    }
    for i in 0..2 {
        dovecot.deliver(
            "since0",
            &mail::simple(&format!("new{i}@c.test"), &format!("new {i}")),
            None,
        );
    }
    let boxes = mailbox("m", &dovecot, "since0", "sync_start_date = \"2024-01-01\"");
    let g = Gateway::start(&data.path().join("store"), "", &boxes);
    wait_for_checkpoint(&g, "m", 5);
    assert_eq!(subjects(&g.tickets(None)), vec!["new 0", "new 1"]);
}

#[test]
fn oversized_message_is_rejected_and_the_mailbox_goes_on() {
    let accounts = users("big", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let data = tempfile::tempdir().unwrap();
    dovecot.deliver("big0", &mail::simple("a@c.test", "small before"), None);
    dovecot.deliver("big0", &mail::sized("huge@c.test", 300_000), None);
    dovecot.deliver("big0", &mail::simple("b@c.test", "small after"), None);
    let boxes = mailbox("m", &dovecot, "big0", "");
    let g = Gateway::start(
        &data.path().join("store"),
        "max_message_bytes = 100000",
        &boxes,
    );
    wait_for_checkpoint(&g, "m", 3);
    assert_eq!(
        subjects(&g.tickets(None)),
        vec!["small after", "small before"]
    );
    let rejections = g.rejections();
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert_eq!(rejections[0]["code"], "message_too_large");
    assert_eq!(rejections[0]["source"]["uid"], 2);
    assert!(rejections[0]["size"].as_u64().unwrap() >= 300_000);
    // Still alive: new mail keeps coming in, and an oversized message that
    // arrives while it idles is found by its size too.
    dovecot.deliver("big0", &mail::simple("c@c.test", "later"), None);
    g.wait_for_tickets(None, 3, WAIT);
    dovecot.deliver("big0", &mail::sized("huge2@c.test", 300_000), None);
    wait_for_checkpoint(&g, "m", 5);
    let rejections = g.rejections();
    assert_eq!(rejections.len(), 2, "{rejections:?}");
    assert_eq!(rejections[1]["code"], "message_too_large");
    assert_eq!(rejections[1]["source"]["uid"], 5);
    assert_eq!(g.tickets(None).len(), 3);
}

/// The sync asks Dovecot which new messages are too large with a second
/// SEARCH. Untagged SEARCH answers carry no tag and Dovecot runs pipelined
/// SEARCHes at once, interleaving their answers: sent together, the two
/// were mixed up (every UID "new", none "too large") and the oversized
/// message was downloaded. Asked many times over, the answer stays right.
#[test]
fn the_too_large_search_answer_is_never_taken_for_the_new_mail_answer() {
    use mailgate::mailbox::imap::{Imap, Steps};
    let accounts = users("search", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    dovecot.deliver("search0", &mail::simple("a@c.test", "small"), None);
    let huge = mail::sized("huge@c.test", 300_000);
    dovecot.deliver("search0", &huge, None);
    dovecot.deliver("search0", &mail::simple("b@c.test", "small"), None);
    let text = mailbox("m", &dovecot, "search0", "");
    let cfg = mailgate::config::from_toml(&text, std::path::Path::new(".")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut imap = Imap::connect(&cfg.mailboxes[0], 100_000, &mut Steps::default())
            .await
            .unwrap();
        imap.select("INBOX").await.unwrap();
        for _ in 0..20 {
            assert_eq!(
                imap.search_with_larger((0, None), None, 100_000)
                    .await
                    .unwrap(),
                (vec![1, 2, 3], vec![(2, huge.len() as u32)])
            );
        }
        assert_eq!(
            imap.search_with_larger((3, None), None, 100_000)
                .await
                .unwrap(),
            (vec![], vec![])
        );
    });
}

/// A folder whose UIDs do not fit in one response: the catch-up's SEARCH
/// answer for 15,000 messages (≈ 79 KB) is longer than any response a
/// session reads with the smallest `max_message_bytes` (1 KiB + 64 KiB),
/// as a folder of millions is with the default. It failed the mailbox
/// with imap_response_too_long at every attempt; searched a window of UIDs
/// at a time, every message becomes a ticket.
#[test]
fn a_folder_too_large_for_one_search_answer_is_caught_up_in_windows() {
    const MESSAGES: u64 = 15_000;
    let accounts = users("huge", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    for i in 0..MESSAGES {
        let m = mail::simple(&format!("m{i}@c.test"), &format!("m {i}"));
        dovecot.deliver("huge0", &m, None);
    }
    let data = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        &data.path().join("store"),
        "max_message_bytes = 1024",
        &mailbox("m", &dovecot, "huge0", ""),
    );
    eventually("every message committed", 4 * WAIT, || {
        let view = g.json("/api/mailboxes/m");
        assert!(view["last_error"].is_null(), "{view}");
        view["checkpoint"]["INBOX"]["uid"].as_u64() == Some(MESSAGES)
    });
    g.wait_for_state("m", "idle", WAIT);
    assert!(g.rejections().is_empty());
    let metrics = g.metrics();
    assert!(
        metrics.contains(&format!(
            "mailgate_messages_committed_total{{outcome=\"ticket\"}} {MESSAGES}"
        )),
        "{metrics}"
    );
}

#[test]
fn reconnects_after_the_server_restarts_without_loss_or_duplicates() {
    let accounts = users("drop", 1);
    let mut dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let data = tempfile::tempdir().unwrap();
    for i in 0..3 {
        dovecot.deliver(
            "drop0",
            &mail::simple(&format!("d{i}@c.test"), &format!("first {i}")),
            None,
        );
    }
    let boxes = mailbox("m", &dovecot, "drop0", "");
    let g = Gateway::start(&data.path().join("store"), "", &boxes);
    wait_for_checkpoint(&g, "m", 3);
    g.wait_for_state("m", "idle", WAIT);
    dovecot.stop();
    eventually("the drop to be noticed", WAIT, || {
        let v = g.json("/api/mailboxes/m");
        v["state"] == "backoff" || v["state"] == "connecting"
    });
    for i in 3..6 {
        dovecot.deliver(
            "drop0",
            &mail::simple(&format!("d{i}@c.test"), &format!("during outage {i}")),
            None,
        );
    }
    dovecot.restart();
    wait_for_checkpoint(&g, "m", 6);
    let tickets = g.tickets(None);
    assert_eq!(tickets.len(), 6, "{:?}", subjects(&tickets));
    assert_eq!(
        subjects(&tickets).into_iter().collect::<HashSet<_>>().len(),
        6
    );
    assert!(dovecot.logins("drop0") >= 2);
    let view = g.json("/api/mailboxes/m");
    assert_eq!(view["state"], "idle");
    assert!(view["last_error"].is_null(), "healthy again: {view}");
}

#[test]
fn implicit_tls_with_a_trusted_test_ca() {
    let accounts = users("tls", 1);
    let dovecot = Dovecot::start(
        &accounts,
        DovecotOptions {
            transport: Transport::Tls,
            ..DovecotOptions::default()
        },
    );
    let data = tempfile::tempdir().unwrap();
    dovecot.deliver("tls0", &mail::simple("t1@c.test", "over tls"), None);
    let boxes = mailbox("m", &dovecot, "tls0", "");
    let g = Gateway::start(&data.path().join("store"), "", &boxes);
    assert_eq!(
        subjects(&g.wait_for_tickets(None, 1, WAIT)),
        vec!["over tls"]
    );
    g.wait_for_state("m", "idle", WAIT);
    dovecot.deliver("tls0", &mail::simple("t2@c.test", "pushed over tls"), None);
    g.wait_for_tickets(None, 2, WAIT);
}

#[test]
fn starttls_upgrades_before_login() {
    let accounts = users("starttls", 1);
    let dovecot = Dovecot::start(
        &accounts,
        DovecotOptions {
            transport: Transport::Starttls,
            ..DovecotOptions::default()
        },
    );
    dovecot.deliver(
        "starttls0",
        &mail::simple("st1@c.test", "after starttls"),
        None,
    );
    let data = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        &data.path().join("store"),
        "",
        &mailbox("m", &dovecot, "starttls0", ""),
    );
    assert_eq!(
        subjects(&g.wait_for_tickets(None, 1, WAIT)),
        vec!["after starttls"]
    );
    g.wait_for_state("m", "idle", WAIT);
    // Dovecot marks logins made over TLS.
    eventually("the login line", WAIT, || dovecot.logins("starttls0") == 1);
    let log = dovecot.log();
    let login = log
        .lines()
        .find(|l| l.contains("Login: user=<starttls0>"))
        .unwrap();
    assert!(login.contains(", TLS,"), "{login}");
}

#[test]
fn secrets_never_appear_in_logs_metrics_or_the_api() {
    let accounts = users("secret", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    dovecot.deliver("secret0", &mail::simple("s1@c.test", "hello"), None);
    let data = tempfile::tempdir().unwrap();
    // The most verbose logging there is, protocol traces included.
    let g = Gateway::start_logged(
        &data.path().join("store"),
        "",
        &mailbox("m", &dovecot, "secret0", ""),
        "trace",
    );
    g.wait_for_tickets(None, 1, WAIT);
    let password = &accounts[0].1;
    let log = g.log();
    assert!(
        log.contains("LOGIN") || log.len() > 1000,
        "trace logging is on"
    );
    for (what, text) in [
        ("log", log),
        ("metrics", g.metrics()),
        ("mailboxes", g.json("/api/mailboxes").to_string()),
        ("tickets", g.json("/api/tickets").to_string()),
    ] {
        assert!(
            !text.contains(password.as_str()),
            "the password appears in the {what}"
        );
    }
}

#[test]
fn oauth2_mailboxes_log_in_with_xoauth2() {
    let accounts = users("oauth", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    dovecot.deliver("oauth0", &mail::simple("o@c.test", "via xoauth2"), None);
    let data = tempfile::tempdir().unwrap();
    // The test Dovecot accepts the passdb password as the bearer token.
    let g = Gateway::start(
        &data.path().join("store"),
        "",
        &mailbox("m", &dovecot, "oauth0", "auth = \"oauth2\""),
    );
    assert_eq!(
        subjects(&g.wait_for_tickets(None, 1, WAIT)),
        vec!["via xoauth2"]
    );
    eventually("the login line", WAIT, || dovecot.logins("oauth0") == 1);
    let log = dovecot.log();
    let login = log
        .lines()
        .find(|l| l.contains("Login: user=<oauth0>"))
        .unwrap();
    assert!(login.contains("method=XOAUTH2"), "{login}");
}

#[test]
fn oauth2_access_tokens_are_refreshed_and_a_refused_grant_needs_reauth() {
    let accounts = users("oauthr", 2);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    dovecot.deliver(
        "oauthr0",
        &mail::simple("r@c.test", "via a refreshed token"),
        None,
    );
    // The access token the endpoint issues is what Dovecot accepts.
    let endpoint = support::token::TokenEndpoint::start("refresh-1", "pw-oauthr0");
    let data = tempfile::tempdir().unwrap();
    let oauth = |id: &str, user: &str, refresh: &str| {
        mailbox(
            id,
            &dovecot,
            user,
            &format!(
                "auth = \"oauth2\"\noauth2_token_url = \"{}\"\noauth2_client_id = \"mailgate-test\"\noauth2_client_secret = \"client-secret\"",
                endpoint.url
            ),
        )
        .replace(&format!("pw-{user}"), refresh)
    };
    let boxes =
        oauth("good", "oauthr0", "refresh-1") + &oauth("revoked", "oauthr1", "refresh-revoked");
    let g = Gateway::start(&data.path().join("store"), "", &boxes);
    assert_eq!(
        subjects(&g.wait_for_tickets(Some("good"), 1, WAIT)),
        vec!["via a refreshed token"]
    );
    g.wait_for_state("revoked", "needs_reauth", WAIT);
    let v = g.json("/api/mailboxes/revoked");
    assert_eq!(v["last_error"]["code"], "oauth_token_refresh_failed", "{v}");
    assert!(
        v["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{v}"
    );
    assert!(
        v["last_error"]["hint"]
            .as_str()
            .unwrap()
            .contains("re-authorise"),
        "{v}"
    );
    assert_eq!(
        endpoint.requests(),
        2,
        "one refresh per login, no retry loop"
    );
    assert!(endpoint.last_body().contains("client_id=mailgate-test"));
    assert!(
        !g.log().contains("client-secret") && !g.log().contains("refresh-1"),
        "secrets stay out of the log"
    );
}

#[test]
fn the_ticket_feed_long_polls_until_the_next_commit() {
    let accounts = users("feed", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    let data = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        &data.path().join("store"),
        "",
        &mailbox("feed0", &dovecot, "feed0", ""),
    );
    g.wait_for_state("feed0", "idle", WAIT);
    // Nothing committed: a short wait answers empty, with no cursor.
    let empty = g.json("/api/tickets?after=0&wait=1");
    assert_eq!(empty["tickets"].as_array().unwrap().len(), 0);
    assert!(empty["next"].is_null());
    // A request waiting 25 s is answered by the commit: only a woken request
    // can carry the ticket, a timed-out one would come back empty.
    std::thread::scope(|s| {
        let waiting = s.spawn(|| g.json("/api/tickets?after=0&wait=25"));
        dovecot.deliver("feed0", &mail::simple("feed@client.test", "fed"), None);
        let page = waiting.join().unwrap();
        assert_eq!(subjects(page["tickets"].as_array().unwrap()), ["fed"]);
        assert!(page["next"].as_u64().is_some());
    });
}
