//! The real-world-shaped corpus (tests/fixtures/corpus, made by
//! scripts/make-corpus.py): every message becomes a ticket, a conversation
//! entry or a recorded rejection with the right decoded fields — checked once
//! through the parse and filter functions, and once end to end through
//! Dovecot, the pipeline and the API.

mod support;

use std::{collections::BTreeMap, fs, path::PathBuf, time::Duration};

use mailgate::{
    config::from_toml,
    parse::parse,
    store::MessageContent,
    transform::{decide, Decision},
};
use serde_json::Value;
use support::{eventually, mailbox, users, Dovecot, DovecotOptions, Gateway};

fn corpus() -> (PathBuf, BTreeMap<String, Value>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    let expected: BTreeMap<String, Value> =
        serde_json::from_str(&fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert!(
        expected.len() >= 30,
        "the corpus has {} messages",
        expected.len()
    );
    (dir, expected)
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the gateway made of one message, from either the library or the API.
struct Seen<'a> {
    subject: &'a str,
    from: Value,
    text: &'a str,
    html: &'a str,
    attachments: Vec<String>,
    priority: Option<&'a str>,
}

/// Checks decoded fields: subject, sender, bodies, attachments, priority.
fn check_content(name: &str, exp: &Value, seen: &Seen<'_>) {
    if let Some(s) = exp["subject"].as_str() {
        assert_eq!(squash(seen.subject), squash(s), "{name}: subject");
    }
    if let Some(a) = exp["from_address"].as_str() {
        assert_eq!(seen.from["address"], a, "{name}: sender");
    }
    if let Some(n) = exp["from_name"].as_str() {
        assert_eq!(seen.from["name"], n, "{name}: sender name");
    }
    if let Some(t) = exp["text_contains"].as_str() {
        assert!(
            seen.text.contains(t),
            "{name}: text body {:?} lacks {t:?}",
            seen.text
        );
    }
    if let Some(h) = exp["html_contains"].as_str() {
        assert!(
            seen.html.contains(h),
            "{name}: html body {:?} lacks {h:?}",
            seen.html
        );
    }
    if let Some(list) = exp["attachments"].as_array() {
        for want in list {
            let want = want.as_str().unwrap();
            assert!(
                seen.attachments.iter().any(|a| a == want),
                "{name}: attachment {want:?} not in {:?}",
                seen.attachments
            );
        }
    }
    if let (Some(want), Some(got)) = (exp["priority"].as_str(), seen.priority) {
        assert_eq!(got, want, "{name}: priority");
    }
}

#[test]
fn every_corpus_message_decodes_as_expected() {
    let (dir, expected) = corpus();
    let mb = from_toml(
        "[[mailbox]]\nid = \"m\"\nhost = \"h\"\nusername = \"support@acme.test\"\npassword = \"p\"\n",
        &dir,
    )
    .unwrap()
    .mailboxes
    .remove(0);
    for (name, exp) in &expected {
        let raw = fs::read(dir.join(name)).unwrap();
        match (decide(parse(&raw), &mb), exp["outcome"].as_str().unwrap()) {
            (
                Decision::Accept {
                    encoded, priority, ..
                },
                "ticket" | "reply",
            ) => {
                // What the store will hold, read back.
                let content: MessageContent = serde_json::from_slice(encoded.json()).unwrap();
                let seen = Seen {
                    subject: &content.subject,
                    from: serde_json::to_value(&content.from).unwrap(),
                    text: content.text_body.as_deref().unwrap_or(""),
                    html: content.html_body.as_deref().unwrap_or(""),
                    attachments: content
                        .attachments
                        .iter()
                        .filter_map(|a| a.name.clone())
                        .collect(),
                    priority: Some(&priority),
                };
                check_content(name, exp, &seen);
            }
            (Decision::Reject(r), "rejected") => assert_eq!(r.code, exp["code"], "{name}"),
            (got, want) => panic!("{name}: expected {want}, got {got:?}"),
        }
    }
}

#[test]
fn every_corpus_message_arrives_through_dovecot() {
    let (dir, expected) = corpus();
    let accounts = users("corpus", 1);
    let dovecot = Dovecot::start(&accounts, DovecotOptions::default());
    // Delivery order fixes the UIDs: file i has UID i + 1.
    let names: Vec<&String> = expected.keys().collect();
    for name in &names {
        dovecot.deliver("corpus0", &fs::read(dir.join(name)).unwrap(), None);
    }
    let data = tempfile::tempdir().unwrap();
    let g = Gateway::start(
        &data.path().join("store"),
        "",
        &mailbox("m", &dovecot, "corpus0", ""),
    );
    let last = names.len() as u64;
    eventually(
        "the corpus to be committed",
        Duration::from_secs(60),
        || g.json("/api/mailboxes/m")["checkpoint"]["INBOX"]["uid"].as_u64() == Some(last),
    );

    // UID → (ticket, entry) from every ticket's conversation.
    let mut by_uid: BTreeMap<u64, (Value, Value)> = BTreeMap::new();
    for t in g.tickets(None) {
        let full = g.json(&format!("/api/tickets/{}", t["id"]));
        for entry in full["conversation"].as_array().unwrap() {
            by_uid.insert(
                entry["source"]["uid"].as_u64().unwrap(),
                (full.clone(), entry.clone()),
            );
        }
    }
    let rejections: BTreeMap<u64, Value> = g
        .rejections()
        .into_iter()
        .map(|r| (r["source"]["uid"].as_u64().unwrap(), r))
        .collect();
    assert_eq!(
        by_uid.len() + rejections.len(),
        names.len(),
        "every message has exactly one outcome"
    );

    let uid_of = |file: &str| names.iter().position(|n| *n == file).unwrap() as u64 + 1;
    for (i, name) in names.iter().enumerate() {
        let exp = &expected[*name];
        let uid = i as u64 + 1;
        match exp["outcome"].as_str().unwrap() {
            "rejected" => {
                let r = rejections
                    .get(&uid)
                    .unwrap_or_else(|| panic!("{name}: no rejection"));
                assert_eq!(r["code"], exp["code"], "{name}");
            }
            outcome => {
                let (ticket, entry) = by_uid
                    .get(&uid)
                    .unwrap_or_else(|| panic!("{name}: no ticket"));
                let c = &entry["content"];
                let seen = Seen {
                    subject: c["subject"].as_str().unwrap(),
                    from: c["from"].clone(),
                    text: c["text_body"].as_str().unwrap_or(""),
                    html: c["html_body"].as_str().unwrap_or(""),
                    attachments: c["attachments"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|a| a["name"].as_str().map(str::to_owned))
                        .collect(),
                    priority: ticket["priority"].as_str(),
                };
                check_content(name, exp, &seen);
                if outcome == "reply" {
                    let parent = &by_uid[&uid_of(exp["parent"].as_str().unwrap())].0;
                    assert_eq!(
                        ticket["id"], parent["id"],
                        "{name}: threaded onto its parent"
                    );
                    assert_eq!(entry["seq"], 1, "{name}: second entry of the conversation");
                }
            }
        }
    }
}
