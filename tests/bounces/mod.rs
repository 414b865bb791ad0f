//! `disparo bounces import` end to end: a campaign really sent through the smtp channel to the
//! test SMTP server, then the bounces and complaints mail systems would send back for those
//! very messages (tests/fixtures/bounces, filled with what the server received: the real
//! `Message-ID` and `X-Disparo-Ref`), imported from an mbox and from a Maildir.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::harness::{PLAN_NOW_MONDAY, Project, run_async};
use crate::support::bounce_fill::{self, Sent};

/// The import's clock: the evening after the send.
const IMPORT_NOW: &str = "2026-11-30T18:00:00Z";

/// Who gets what back: (fixture, recipient, what it is).
const BOUNCES: [(&str, &str, &str); 11] = [
    ("postfix-5.1.1.eml", "bruno@example.net", "hard_bounce"),
    ("exim-dsn.eml", "carla@example.org", "hard_bounce"),
    ("exim-text.eml", "davi@example.org", "hard_bounce"),
    (
        "outlook-5.1.10-global.eml",
        "dora@contoso.example",
        "hard_bounce",
    ),
    ("gmail-5.1.1.eml", "elisa@example.com", "hard_bounce"),
    ("outlook-5.1.10.eml", "fabio@contoso.example", "hard_bounce"),
    (
        "postfix-4.2.2-delayed.eml",
        "gabi@example.com",
        "soft_bounce",
    ),
    ("arf-yahoo.eml", "hugo@example.com", "complaint"),
    ("arf-microsoft-jmrp.eml", "ines@example.com", "complaint"),
    ("auto-reply.eml", "ana@example.com", "skipped"),
    ("truncated-dsn.eml", "julia@example.com", "unreadable"),
];

/// Got no bounce at all.
const QUIET: &str = "kaio@example.com";

fn recipients() -> Vec<&'static str> {
    let mut all: Vec<&str> = BOUNCES.iter().map(|b| b.1).collect();
    all.push(QUIET);
    all
}

/// A project whose campaign `c` was sent by `disparo run` through the smtp channel; what the
/// SMTP server received, by recipient.
async fn sent_campaign() -> (Arc<Project>, BTreeMap<String, Sent>) {
    let mut smtp = crate::support::SmtpServer::start(None, None).await;
    let p = Project::empty();
    let mut csv = String::from("id,name,email\n");
    for (i, a) in recipients().iter().enumerate() {
        csv.push_str(&format!("r{i},Pessoa {i},{a}\n"));
    }
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo\nchannels:\n  mail: {{ type: smtp, host: 127.0.0.1, port: {}, tls: none, from: 'Loja <news@loja.example>' }}\n",
            smtp.port
        ),
    )
    .file("campaigns/c.yaml", "channel: mail\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-11-30T09:00 }\n")
    .file("campaigns/next.yaml", "channel: mail\ntemplate: t\naudience: a.csv\nschedule: { at: 2026-12-07T09:00 }\n")
    .file("templates/t.hbs", "---\nsubject: Oferta\n---\nOi {{name}}!\nFrom now on, 40% off.\n")
    .file("a.csv", &csv);
    p.ok(&["-q", "--now", PLAN_NOW_MONDAY, "plan", "c"]);
    let p = Arc::new(p);
    let o = run_async(&p, &["--now", "2026-11-30T12:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut sent = BTreeMap::new();
    for _ in recipients() {
        let got = smtp.received().await;
        let address = got.rcpt_tos[0].clone();
        sent.insert(
            address.clone(),
            Sent {
                address,
                message_id: got.headers["message-id"].clone(),
                reference: got.headers["x-disparo-ref"].clone(),
                original: got.data,
            },
        );
    }
    // What the store keeps as each message's provider id is the Message-ID that was sent.
    let stored: BTreeMap<String, String> = p
        .messages()
        .into_iter()
        .map(|m| {
            (
                m["address"].as_str().unwrap().to_owned(),
                m["provider_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (a, s) in &sent {
        assert_eq!(stored[a], s.message_id, "{a}");
    }
    (p, sent)
}

/// Each bounce of [`BOUNCES`], filled for the message really sent, with CRLF line ends.
fn bounce_mail(sent: &BTreeMap<String, Sent>) -> Vec<String> {
    BOUNCES
        .iter()
        .map(|(fixture, address, _)| {
            let path = crate::harness::repo_root()
                .join("tests/fixtures/bounces")
                .join(fixture);
            let template = std::fs::read_to_string(&path).unwrap();
            bounce_fill::fill(&template, &sent[*address], true)
        })
        .collect()
}

fn suppressed(p: &Project) -> BTreeMap<String, (String, String)> {
    p.ok(&["--format", "json", "suppress", "list"])
        .json_lines()
        .into_iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_owned(),
                (
                    e["reason"].as_str().unwrap_or("").to_owned(),
                    e["source"].as_str().unwrap_or("").to_owned(),
                ),
            )
        })
        .collect()
}

fn count(p: &Project, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// What hard bounces and complaints must leave on the suppression list.
fn expected_suppressions() -> BTreeMap<String, (String, String)> {
    let reason = |f: &str| match f {
        "outlook-5.1.10.eml" | "outlook-5.1.10-global.eml" => "hard bounce 5.1.10",
        "exim-dsn.eml" => "hard bounce 5.0.0",
        f if f.starts_with("arf-") => "complaint (abuse)",
        _ => "hard bounce 5.1.1",
    };
    BOUNCES
        .iter()
        .filter(|b| b.2 == "hard_bounce" || b.2 == "complaint")
        .map(|(f, a, _)| (a.to_string(), (reason(f).to_owned(), "email".to_owned())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mbox_of_bounces_suppresses_hard_bounces_and_complaints_once() {
    let (p, sent) = sent_campaign().await;
    p.file("bounces.mbox", &bounce_fill::mbox(&bounce_mail(&sent)));

    let o = p.expect(
        1,
        &[
            "--now",
            IMPORT_NOW,
            "--format",
            "json",
            "bounces",
            "import",
            "bounces.mbox",
        ],
    );
    let rows = o.json_lines();
    let by_address: BTreeMap<&str, &serde_json::Value> = rows
        .iter()
        .filter_map(|r| r["address"].as_str().map(|a| (a, r)))
        .collect();
    for (fixture, address, outcome) in BOUNCES {
        if matches!(outcome, "skipped" | "unreadable") {
            continue;
        }
        let r = by_address
            .get(address)
            .unwrap_or_else(|| panic!("no row for {address} ({fixture}): {}", o.stdout));
        assert_eq!(r["outcome"], outcome, "{fixture}: {r}");
        assert_eq!(r["matched"], true, "{fixture} names its message: {r}");
        assert_eq!(r["applied"], "recorded", "{fixture}: {r}");
        assert_eq!(
            r["provider_id"],
            sent[address].message_id.as_str(),
            "{fixture}"
        );
        assert_eq!(
            r["reference"],
            sent[address].reference.as_str(),
            "{fixture}"
        );
    }
    // The auto-reply is message 10, the cut-off bounce message 11; both say where they were.
    let skipped: Vec<_> = rows.iter().filter(|r| r["outcome"] == "skipped").collect();
    assert_eq!(skipped.len(), 1, "{}", o.stdout);
    assert!(
        skipped[0]["location"]
            .as_str()
            .unwrap()
            .starts_with("bounces.mbox: message 10 (line ")
    );
    assert!(
        skipped[0]["detail"]
            .as_str()
            .unwrap()
            .contains("auto-reply")
    );
    let bad: Vec<_> = rows
        .iter()
        .filter(|r| r["outcome"] == "unreadable")
        .collect();
    assert_eq!(bad.len(), 1, "{}", o.stdout);
    let location = bad[0]["location"].as_str().unwrap();
    assert!(
        location.starts_with("bounces.mbox: message 11 (line "),
        "{location}"
    );
    assert!(
        o.stderr.contains(&format!("warning: {location}: a delivery report (report-type=delivery-status) without its message/delivery-status part")),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("bounces: read 11 message(s): 6 hard bounce(s), 1 soft bounce(s), 2 complaint(s); 9 matched to a message, 0 unmatched, 0 already imported; 8 address(es) newly suppressed; 1 skipped")
            && o.stderr.contains("; 1 unreadable"),
        "{}",
        o.stderr
    );

    // Hard bounces and complaints are on the list, from the source `email`; the soft bounce,
    // the auto-reply's sender and the quiet recipient are not.
    assert_eq!(suppressed(&p), expected_suppressions());
    assert_eq!(
        count(
            &p,
            "SELECT soft_bounces FROM delivery d JOIN messages m ON m.id = d.message_id WHERE m.address = 'gabi@example.com'"
        ),
        1
    );
    let report = p.ok(&["--format", "json", "export", "c"]).json_lines();
    let delivery: BTreeMap<&str, (Option<&str>, Option<&str>)> = report
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap(),
                (r["delivery"].as_str(), r["delivery_code"].as_str()),
            )
        })
        .collect();
    assert_eq!(
        delivery["bruno@example.net"],
        (Some("bounced"), Some("5.1.1"))
    );
    assert_eq!(
        delivery["fabio@contoso.example"],
        (Some("bounced"), Some("5.1.10"))
    );
    assert_eq!(delivery[QUIET], (None, None));
    assert!(
        report
            .iter()
            .any(|r| r["address"] == "hugo@example.com" && r["opted_out_at"].is_string())
    );

    // The same mailbox again (cron reads it whole every time): nothing new.
    let receipts = count(&p, "SELECT COUNT(*) FROM receipts");
    assert_eq!(receipts, 9);
    let again = p.expect(
        1,
        &[
            "--now",
            "2026-11-30T19:00:00Z",
            "--format",
            "json",
            "bounces",
            "import",
            "bounces.mbox",
        ],
    );
    let applied: Vec<_> = again
        .json_lines()
        .into_iter()
        .filter_map(|r| r["applied"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(applied, vec!["duplicate"; 9]);
    assert!(again.stderr.contains("0 matched to a message, 0 unmatched, 9 already imported; 0 address(es) newly suppressed"), "{}", again.stderr);
    assert_eq!(count(&p, "SELECT COUNT(*) FROM receipts"), receipts);
    assert_eq!(
        count(
            &p,
            "SELECT soft_bounces FROM delivery d JOIN messages m ON m.id = d.message_id WHERE m.address = 'gabi@example.com'"
        ),
        1,
        "the soft bounce is counted once"
    );

    // A later campaign skips every suppressed address, and only those.
    p.ok(&["-q", "--now", "2026-12-03T11:00:00Z", "plan", "next"]);
    let states: BTreeMap<String, String> = p
        .messages()
        .into_iter()
        .filter(|m| m["campaign"] == "next")
        .map(|m| {
            (
                m["address"].as_str().unwrap().to_owned(),
                m["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = expected_suppressions();
    for a in recipients() {
        let want = if expected.contains_key(a) {
            "skipped"
        } else {
            "pending"
        };
        assert_eq!(states[a], want, "{a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maildir_imports_the_same_and_names_the_file_it_cannot_read() {
    let (p, mut sent) = sent_campaign().await;
    // Returned without X-Disparo-Ref (a relay that keeps only some headers): the Message-ID
    // alone names each message.
    for s in sent.values_mut() {
        let cut: Vec<&str> = s
            .original
            .split("\r\n")
            .filter(|l| !l.starts_with("X-Disparo-Ref:"))
            .collect();
        s.original = cut.join("\r\n");
    }
    let mail = bounce_mail(&sent);
    assert!(mail.iter().all(|m| !m.contains("X-Disparo-Ref")));
    // As fetchmail or getmail leave them: unread in new/, read in cur/ with flags.
    for (i, m) in mail.iter().enumerate() {
        let name = if i % 2 == 0 {
            format!("new/1796061600.M{i}P4242.mx.loja.example")
        } else {
            format!("cur/1796061600.M{i}P4242.mx.loja.example:2,S")
        };
        p.file(&format!("Maildir/{name}"), m);
    }
    p.bytes(
        "Maildir/cur/1796061601.M99P4242.mx.loja.example:2,",
        b"\x00\x9f\x92\x96 not mail\n",
    );
    p.file(
        "Maildir/tmp/1796061602.M100P4242.mx.loja.example",
        "Subject: being delivered\n",
    );

    let o = p.expect(
        1,
        &[
            "--now", IMPORT_NOW, "--format", "csv", "bounces", "import", "Maildir",
        ],
    );
    let mut rdr = csv::Reader::from_reader(o.stdout.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    assert_eq!(&headers[0], "location");
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(
        rows.len(),
        12,
        "11 files, and the one that is no mail: {}",
        o.stdout
    );
    assert!(
        o.stderr.contains(
            "warning: Maildir/cur/1796061601.M99P4242.mx.loja.example:2,: not an email message"
        ),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("2 unreadable"), "{}", o.stderr);
    assert!(
        o.stderr.contains("9 matched to a message, 0 unmatched"),
        "{}",
        o.stderr
    );
    assert_eq!(suppressed(&p), expected_suppressions());
    assert_eq!(count(&p, "SELECT COUNT(*) FROM receipts"), 9);
}

#[test]
fn a_dry_run_shows_what_it_would_record_and_records_nothing() {
    let p = Project::empty();
    let sent = Sent {
        address: "bruno@example.net".into(),
        message_id: "<m-0123456789abcdef01234567@loja.example>".into(),
        reference: "m-0123456789abcdef01234567.1".into(),
        original: "Message-ID: <m-0123456789abcdef01234567@loja.example>\r\nX-Disparo-Ref: m-0123456789abcdef01234567.1\r\n\r\nOi\r\n".into(),
    };
    let template = std::fs::read_to_string(
        crate::harness::repo_root().join("tests/fixtures/bounces/postfix-5.1.1.eml"),
    )
    .unwrap();
    p.file("one.eml", &bounce_fill::fill(&template, &sent, true));
    // No database: a dry run needs none.
    let o = p.ok(&[
        "--format",
        "json",
        "bounces",
        "import",
        "--dry-run",
        "one.eml",
    ]);
    let rows = o.json_lines();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["outcome"], "hard_bounce");
    assert_eq!(rows[0]["address"], "bruno@example.net");
    assert_eq!(rows[0]["code"], "5.1.1");
    assert_eq!(rows[0]["dry_run"], true);
    assert!(rows[0]["applied"].is_null());
    assert!(
        o.stderr
            .contains("dry run: read 1 message(s): 1 hard bounce(s)")
            && o.stderr.contains("nothing recorded"),
        "{}",
        o.stderr
    );
    assert!(!p.path().join("disparo.db").exists());
    // Without --dry-run it needs the database a plan made.
    let o = p.expect(2, &["bounces", "import", "one.eml"]);
    assert!(o.stderr.contains("there is no database"), "{}", o.stderr);
}

#[test]
fn paths_that_are_no_mailbox_are_refused_before_anything_is_read() {
    let p = Project::empty();
    p.file("ok.eml", "From: a@example.com\n\nhi\n")
        .file("notes/readme.txt", "not mail");
    let o = p.expect(2, &["bounces", "import", "ok.eml", "no-such.mbox", "notes"]);
    assert!(
        o.stderr
            .contains("error: no-such.mbox: no such file or folder")
            && o.stderr
                .contains("error: notes: a folder that is neither a Maildir"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("hint: give an mbox file, a Maildir"),
        "{}",
        o.stderr
    );
    assert!(o.stdout.is_empty());
    let o = p.expect(2, &["bounces", "import"]);
    assert!(o.stderr.contains("PATH"), "{}", o.stderr);
}
