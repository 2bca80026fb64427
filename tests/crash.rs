//! Nothing lost, nothing doubled: kill -9 the gateway repeatedly in the middle
//! of a 2,000-message catch-up, restart it, and check that every message is a
//! ticket exactly once, its raw message intact.

mod support;

use std::{collections::HashMap, time::Duration};

use sha2::{Digest, Sha256};
use support::{
    eventually, gateway::http_get, mail, mailbox, users, Dovecot, DovecotOptions, Gateway,
};

const MESSAGES: usize = 2000;

#[test]
fn kill_9_during_catch_up_loses_and_doubles_nothing() {
    let accounts = users("crash", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    for i in 0..MESSAGES {
        dovecot.deliver(
            "crash0",
            &mail::simple(&format!("crash-{i}@c.test"), &format!("crash {i:04}")),
            None,
        );
    }
    let data = tempfile::tempdir().unwrap();
    // Small fetches and batches make many commits, so a kill lands between them.
    let pipeline = "fetch_batch = 25\nmax_batch = 20\nparse_queue = 16\nwrite_queue = 16";
    let boxes = mailbox("m", &dovecot, "crash0", "");
    let mut g = Gateway::start(&data.path().join("store"), pipeline, &boxes);

    let mut kills_mid_way = 0;
    let mut last = 0;
    for _ in 0..3 {
        // Kill as soon as more tickets exist than at the previous kill.
        let mut seen = 0;
        eventually("catch-up progress", Duration::from_secs(60), || {
            seen = g.tickets(None).len();
            seen > last
        });
        g.kill9();
        last = seen;
        if seen < MESSAGES {
            kills_mid_way += 1;
        }
        g.restart();
    }
    assert!(
        kills_mid_way > 0,
        "every kill came after the catch-up had finished"
    );

    eventually("the catch-up to finish", Duration::from_secs(120), || {
        g.json("/api/mailboxes/m")["checkpoint"]["INBOX"]["uid"].as_u64() == Some(MESSAGES as u64)
    });
    let tickets = g.tickets(None);
    let mut by_subject: HashMap<String, usize> = HashMap::new();
    for t in &tickets {
        *by_subject
            .entry(t["subject"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let doubled: Vec<_> = by_subject.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "doubled: {doubled:?}");
    assert_eq!(
        by_subject.len(),
        MESSAGES,
        "lost {} messages",
        MESSAGES - by_subject.len()
    );
    assert_eq!(tickets.len(), MESSAGES);

    // Every ticket's raw message survived the kills too, byte for byte.
    for t in &tickets {
        let id = t["id"].as_u64().unwrap();
        let full = g.json(&format!("/api/tickets/{id}"));
        let sha = full["conversation"][0]["content"]["raw_sha256"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, raw) = http_get(g.port(), &format!("/api/messages/{sha}/raw")).unwrap();
        assert_eq!(status, 200, "ticket {id}: raw message {sha}: {raw}");
        assert_eq!(hex(&Sha256::digest(raw.as_bytes())), sha, "ticket {id}");
        assert!(raw.contains(t["subject"].as_str().unwrap()), "ticket {id}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
