//! Follow-ups (`follows:`) end to end: a WhatsApp campaign sent by `run` to a loopback Cloud
//! API, its receipts posted through `disparo serve` as Meta signs them, an SMS follow-up "if
//! not read within 24 h" through a loopback Twilio API, and an email follow-up "if the SMS
//! failed" through a real SMTP server on loopback. Time moves by `--now` (a simulation).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use crate::harness::{Project, run_async};
use crate::serve::Server;
use crate::serve::whatsapp::{APP_SECRET, post, status};
use crate::support::http::{Reply, TestServer};

/// Five customers in three zones. WhatsApp goes out at 20:30 on each one's clock.
const AUDIENCE: &str = "id,first_name,phone,email,timezone
r0,Ana,+5511920000000,ana@example.com,America/Sao_Paulo
r1,Bia,+5511920000001,bia@example.com,America/Sao_Paulo
r2,Caio,+351912000002,caio@example.com,Europe/Lisbon
r3,Dai,+819012000003,dai@example.com,Asia/Tokyo
r4,Eva,+351912000004,eva@example.com,Europe/Lisbon
";

const WA: &str = "channel: wa\ntemplate: promo\naudience: a.csv\nschedule:\n  at: 2026-11-30T20:30\n  quiet_hours: { start: \"21:00\", end: \"08:00\" }\n";
/// 24 h after 20:30 is inside the SMS's quiet hours (20:00-08:00): 08:00 the next morning.
const SMS: &str = "channel: sms\ntemplate: nudge\naudience: a.csv\nfollows: { campaign: wa, when: not_read, after: 24h }\nschedule:\n  quiet_hours: { start: \"20:00\", end: \"08:00\" }\n";
const EMAIL: &str = "channel: mail\ntemplate: letter\naudience: a.csv\nfollows: { campaign: sms, when: failed, after: 1h }\n";

struct Chain {
    p: Arc<Project>,
    wa: TestServer,
    sms: TestServer,
    smtp: crate::support::SmtpServer,
    /// Per phone number (without `+`): Meta's message id and the callback data sent.
    sent: BTreeMap<String, (String, String)>,
}

async fn chain() -> Chain {
    let wa = TestServer::start(
        (0..5)
            .map(|i| Reply::json(200, json!({"messaging_product": "whatsapp", "messages": [{"id": format!("wamid.F{i}")}]})))
            .collect(),
    )
    .await;
    // r3's SMS is accepted; r4's number is refused for good (21211): its email follows.
    let sms = TestServer::start(vec![
        Reply::json(201, json!({"sid": "SM0001", "status": "queued"})),
        Reply::json(
            400,
            json!({"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}),
        ),
    ])
    .await;
    let smtp = crate::support::SmtpServer::start(None, None).await;
    let p = Project::empty()
        .env("WA_TOKEN", "EAAG-secret-token")
        .env("WA_APP_SECRET", APP_SECRET)
        .env("TW_SID", crate::support::prism::TWILIO_SID)
        .env("TW_TOKEN", "tw-auth-token-0123456789abcdef");
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo\nchannels:\n  wa: {{ type: whatsapp_cloud, phone_number_id: \"106540352242922\", token_env: WA_TOKEN, base_url: \"{}\", app_secret_env: WA_APP_SECRET }}\n  sms: {{ type: twilio, account_sid_env: TW_SID, auth_token_env: TW_TOKEN, from: '+15550001111', base_url: '{}', status_callback: 'https://hooks.example.com/twilio/status' }}\n  mail: {{ type: smtp, host: 127.0.0.1, port: {}, tls: none, from: 'Loja <news@loja.example>' }}\n",
            wa.url(""),
            sms.url(""),
            smtp.port
        ),
    )
    .file("campaigns/wa.yaml", WA)
    .file("campaigns/sms.yaml", SMS)
    .file("campaigns/email.yaml", EMAIL)
    .file("templates/promo.hbs", "---\nwhatsapp: { name: promo, language: pt_BR, body: [\"{{first_name}}\"] }\n---\nOi {{first_name}}")
    .file("templates/nudge.hbs", "{{first_name}}, your 40% coupon ends tonight: BF26")
    .file("templates/letter.hbs", "---\nsubject: Your coupon\n---\n{{first_name}}, we could not text you: your coupon is BF26.\n")
    .file("a.csv", AUDIENCE);
    let p = Arc::new(p);
    p.ok(&[
        "-q",
        "--now",
        "2026-11-30T10:00:00Z",
        "plan",
        "wa",
        "sms",
        "email",
    ]);
    let mut c = Chain {
        p,
        wa,
        sms,
        smtp,
        sent: BTreeMap::new(),
    };
    // Tokyo's 20:30 is 11:30Z, Lisbon's 20:30Z, São Paulo's 23:30Z: three runs, one per
    // evening, as cron would launch them.
    for now in [
        "2026-11-30T11:30:00Z",
        "2026-11-30T20:30:00Z",
        "2026-11-30T23:30:00Z",
    ] {
        c.run(now).await;
    }
    let ids = rows(
        &c.p,
        "SELECT m.address, q.provider_id FROM messages m JOIN queue q ON q.message_id = m.id JOIN campaigns c ON c.id = m.campaign_id WHERE c.name = 'wa'",
    );
    for r in c.wa.requests() {
        let body = r.json();
        let to = body["to"]
            .as_str()
            .unwrap()
            .trim_start_matches('+')
            .to_owned();
        let id = ids
            .iter()
            .find(|(a, _)| a.trim_start_matches('+') == to)
            .map(|(_, id)| id.clone())
            .unwrap();
        let callback = body["biz_opaque_callback_data"]
            .as_str()
            .unwrap()
            .to_owned();
        c.sent.insert(to, (id, callback));
    }
    assert_eq!(c.sent.len(), 5, "every WhatsApp message went out");
    c
}

impl Chain {
    async fn run(&self, now: &str) -> String {
        let o = run_async(&self.p, &["--now", now, "run", "--once"]).await;
        assert!(o.code == 0 || o.code == 1, "run at {now}: {}", o.stderr);
        o.stderr
    }

    /// Posts Meta's `event` for the recipient with this phone number, signed.
    async fn receipt(&self, server: &Server, phone: &str, event: &str, at: i64) {
        let (id, callback) = &self.sent[phone];
        let body = status(id, event, phone, Some(callback), at);
        let (code, _) = post(server, body.to_string().as_bytes(), Some(APP_SECRET)).await;
        assert_eq!(code, 200);
    }
}

/// Two-column text rows of a query on the project's database.
fn rows(p: &Project, sql: &str) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// recipient → (state, due_at as RFC 3339, last_error) of a campaign's messages.
fn states(p: &Project, campaign: &str) -> BTreeMap<String, (String, String, String)> {
    let db = rusqlite::Connection::open(p.path().join("disparo.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT m.recipient, q.state, q.due_at, COALESCE(q.last_error, '') FROM messages m JOIN queue q ON q.message_id = m.id
             JOIN campaigns c ON c.id = m.campaign_id WHERE c.name = ?1",
        )
        .unwrap();
    stmt.query_map([campaign], |r| {
        let due: i64 = r.get(2)?;
        Ok((
            r.get::<_, String>(0)?,
            (
                r.get::<_, String>(1)?,
                jiff::Timestamp::from_millisecond(due).unwrap().to_string(),
                r.get::<_, String>(3)?,
            ),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn unix(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_second()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_then_sms_if_not_read_then_email_if_the_sms_failed() {
    let mut c = chain().await;
    let p = c.p.clone();
    let server = Server::start(&p, &[]);
    // r0 and r2 read it that evening; r4 only got it delivered; r1 and r3 said nothing yet.
    c.receipt(
        &server,
        "5511920000000",
        "read",
        unix("2026-11-30T23:40:00Z"),
    )
    .await;
    c.receipt(
        &server,
        "351912000002",
        "delivered",
        unix("2026-11-30T20:31:00Z"),
    )
    .await;
    c.receipt(
        &server,
        "351912000002",
        "read",
        unix("2026-12-01T07:00:00Z"),
    )
    .await;
    c.receipt(
        &server,
        "351912000004",
        "delivered",
        unix("2026-11-30T20:31:00Z"),
    )
    .await;

    // Before a day has passed since each send, only those who read it are decided: they
    // will never need the SMS.
    c.run("2026-12-01T11:00:00Z").await;
    let sms = states(&p, "sms");
    assert_eq!(sms.keys().collect::<Vec<_>>(), ["r0", "r2"], "{sms:?}");
    assert!(sms.values().all(|s| s.0 == "cancelled"));

    // A day after São Paulo's evening every parent is decided: the two who read get nothing,
    // the three who did not get an SMS at 08:00 on their own clock (20:30 + 24 h is inside
    // the SMS's quiet hours). Tokyo's 08:00 has passed: sent now.
    // preview says who would get it now, and why, before any run has planned it.
    let o = p.ok(&[
        "--now",
        "2026-12-01T23:31:00Z",
        "--format",
        "json",
        "preview",
        "sms",
    ]);
    let verdicts: BTreeMap<String, serde_json::Value> = o
        .json_lines()
        .into_iter()
        .map(|m| {
            (
                m["recipient"].as_str().unwrap().to_owned(),
                m["follow_up"][0].clone(),
            )
        })
        .collect();
    assert_eq!(verdicts["r0"]["verdict"], "not_needed");
    assert_eq!(verdicts["r3"]["verdict"], "due");
    assert_eq!(verdicts["r3"]["at"], "2026-12-01T23:00:00Z");
    assert_eq!(
        verdicts["r3"]["why"],
        "wa sent at 2026-11-30 11:30 UTC, not read within 1d"
    );
    assert_eq!(verdicts["r4"]["at_local"], "Wed 2026-12-02 08:00 +00:00");
    assert_eq!(verdicts["r1"]["verdict"], "due");
    let table = p.ok(&["--now", "2026-12-01T11:00:00Z", "preview", "sms"]);
    assert!(
        table
            .stdout
            .contains("not needed: wa read at 2026-11-30 23:40 UTC"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains(
            "waiting: wa sent at 2026-11-30 11:30 UTC, not read yet (decided by 2026-12-01T11:30:00"
        ),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stderr
            .contains("now 0 due, 3 waiting, 2 not needed, 0 done"),
        "{}",
        table.stderr
    );

    let log = c.run("2026-12-01T23:31:00Z").await;
    assert!(
        log.contains("follow-ups: 3 planned"),
        "{log}\n{:?}",
        states(&p, "sms")
    );
    let sms = states(&p, "sms");
    assert_eq!(sms["r0"].0, "cancelled");
    assert!(
        sms["r0"].2.contains("wa read at 2026-11-30 23:40 UTC"),
        "{:?}",
        sms["r0"]
    );
    assert_eq!(sms["r2"].0, "cancelled");
    assert_eq!(sms["r3"].0, "sent", "{:?}", sms["r3"]);
    assert_eq!(sms["r3"].1, "2026-12-01T23:00:00Z", "08:00 in Tokyo");
    assert_eq!(
        sms["r1"],
        (
            "pending".into(),
            "2026-12-02T11:00:00Z".into(),
            String::new()
        ),
        "08:00 in São Paulo"
    );
    assert_eq!(
        sms["r4"],
        (
            "pending".into(),
            "2026-12-02T08:00:00Z".into(),
            String::new()
        ),
        "08:00 in Lisbon"
    );
    let texted: Vec<String> = c
        .sms
        .requests()
        .iter()
        .map(|r| form_to(&r.text()))
        .collect();
    assert_eq!(texted, ["+819012000003"]);

    // Lisbon's morning: r4's SMS is refused for good; an hour later its email goes out.
    c.run("2026-12-02T08:00:00Z").await;
    assert_eq!(states(&p, "sms")["r4"].0, "failed");
    let email = states(&p, "email");
    // r0's and r2's SMS were not needed, so neither is their email; r3's SMS was accepted:
    // its email waits for a failure report; r1's SMS is not sent yet.
    assert_eq!(
        email.keys().collect::<Vec<_>>(),
        ["r0", "r2", "r4"],
        "{email:?}"
    );
    assert_eq!(email["r0"].0, "cancelled");
    assert_eq!(email["r4"].0, "pending");
    assert!(
        email["r4"].1.starts_with("2026-12-02T09:00:00"),
        "an hour after the refusal: {:?}",
        email["r4"]
    );

    // r1 reads the WhatsApp message at 10:00Z, after its SMS was planned and before it left:
    // the run at 11:00Z withdraws it instead of sending it.
    c.receipt(
        &server,
        "5511920000001",
        "read",
        unix("2026-12-02T10:00:00Z"),
    )
    .await;
    c.run("2026-12-02T11:00:00Z").await;
    let sms = states(&p, "sms");
    assert_eq!(sms["r1"].0, "cancelled");
    assert!(
        sms["r1"]
            .2
            .contains("not needed: wa read at 2026-12-02 10:00 UTC"),
        "{:?}",
        sms["r1"]
    );
    let texted: Vec<String> = c
        .sms
        .requests()
        .iter()
        .map(|r| form_to(&r.text()))
        .collect();
    assert_eq!(
        texted,
        ["+819012000003", "+351912000004"],
        "exactly the two who never read it"
    );
    let mail = c.smtp.received().await;
    assert_eq!(mail.rcpt_tos, ["eva@example.com"]);
    assert_eq!(states(&p, "email")["r4"].0, "sent");

    // Re-plans and more runs change nothing: the follow-ups exist once per parent message.
    let before = (states(&p, "sms"), states(&p, "email"));
    p.ok(&[
        "-q",
        "--now",
        "2026-12-02T11:30:00Z",
        "plan",
        "wa",
        "sms",
        "email",
    ]);
    c.run("2026-12-02T12:00:00Z").await;
    c.run("2026-12-09T12:00:00Z").await;
    let after = (states(&p, "sms"), states(&p, "email"));
    assert_eq!(before.0, after.0);
    // r3's email was judged once its window for a failure closed (7 days): not needed.
    assert_eq!(after.1["r4"], before.1["r4"]);
    assert_eq!(after.1["r3"].0, "cancelled");
    assert_eq!(c.sms.requests().len(), 2);
    assert_eq!(c.wa.requests().len(), 5);

    // The per-step funnel: status rows for each campaign with each follow-up's rule and
    // progress, and the report's steps table.
    let status: BTreeMap<String, serde_json::Value> = p
        .ok(&["--format", "json", "status"])
        .json_lines()
        .into_iter()
        .map(|r| (r["campaign"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(status["wa"]["read"], 3);
    assert_eq!(status["wa"]["follows"], serde_json::Value::Null);
    assert_eq!(status["sms"]["follows"], "not_read of wa within 1d");
    assert_eq!(
        (
            status["sms"]["sent"].as_u64(),
            status["sms"]["failed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        (
            status["sms"]["not_needed"].as_u64(),
            status["sms"]["waiting"].as_u64()
        ),
        (Some(3), Some(0))
    );
    assert_eq!(status["email"]["follows"], "1h after sms failed");
    assert_eq!(
        (
            status["email"]["sent"].as_u64(),
            status["email"]["not_needed"].as_u64()
        ),
        (Some(1), Some(4))
    );
    let table = p.ok(&["status"]).stdout;
    assert!(table.contains("follow-ups:\n") && table.contains("  sms: not_read of wa within 1d — 5 recipient(s) planned, 0 parent message(s) not decided yet, 3 not needed"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&p.ok(&["--format", "json", "report", "sms"]).stdout).unwrap();
    let steps: Vec<(&str, u64, u64)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["campaign"].as_str().unwrap(),
                s["funnel"]["sent"].as_u64().unwrap(),
                s["progress"]["not_needed"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps, [("wa", 5, 0), ("sms", 1, 3), ("email", 1, 4)]);
    p.ok(&["report", "wa", "--html", "chain.html"]);
    let html = p.read("chain.html");
    for step in ["wa", "sms", "email"] {
        assert!(
            html.contains(&format!("<tr data-step=\"{step}\"")),
            "{html}"
        );
    }
    assert!(html.contains("<td class=\"text\">1h after sms failed</td>"));
    let _ = server.stop();
}

/// The `To` of a Twilio form body.
fn form_to(body: &str) -> String {
    let form: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap();
    form.into_iter()
        .find(|(k, _)| k == "To")
        .map(|(_, v)| v)
        .unwrap()
}

/// SIGKILL, for a crash.
fn kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_between_the_receipt_the_release_and_the_send_lose_nothing_and_send_once() {
    use crate::faults::dispatch::{Answer, Provider, finish, spawn};
    let wa = TestServer::start(
        (0..2)
            .map(|i| Reply::json(200, json!({"messaging_product": "whatsapp", "messages": [{"id": format!("wamid.K{i}")}]})))
            .collect(),
    )
    .await;
    // The follow-up's provider never answers the first request: the run sending it dies.
    let hook = Provider::scripted(|hit, _| {
        if hit.n == 1 {
            Answer::ok().held()
        } else {
            Answer::ok()
        }
    });
    let p = Project::empty()
        .env("WA_TOKEN", "EAAG-secret-token")
        .env("WA_APP_SECRET", APP_SECRET);
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo\nchannels:\n  wa: {{ type: whatsapp_cloud, phone_number_id: \"106540352242922\", token_env: WA_TOKEN, base_url: \"{}\", app_secret_env: WA_APP_SECRET }}\n  hook: {{ type: webhook, url: \"{}\" }}\n",
            wa.url(""),
            hook.url
        ),
    )
    .file("campaigns/wa.yaml", "channel: wa\ntemplate: promo\naudience: a.csv\nschedule: { at: 2026-11-30T10:00 }\n")
    .file("campaigns/nudge.yaml", "channel: hook\ntemplate: nudge\naudience: a.csv\nfollows: { campaign: wa, when: not_read, after: 24h }\n")
    .file("templates/promo.hbs", "---\nwhatsapp: { name: promo, language: pt_BR, body: [\"{{first_name}}\"] }\n---\nOi {{first_name}}")
    .file("templates/nudge.hbs", "{{first_name}}, did you see it?")
    .file("a.csv", "id,first_name,phone\nr0,Ana,+5511920000000\nr1,Bia,+5511920000001\n");
    let p = Arc::new(p);
    p.ok(&["-q", "--now", "2026-11-30T12:00:00Z", "plan", "wa", "nudge"]);
    let o = run_async(&p, &["--now", "2026-11-30T13:00:00Z", "run", "--once"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let callbacks: BTreeMap<String, (String, String)> = wa
        .requests()
        .iter()
        .map(|r| {
            let b = r.json();
            let to = b["to"].as_str().unwrap().trim_start_matches('+').to_owned();
            let id = rows(&p, &format!("SELECT m.recipient, q.provider_id FROM messages m JOIN queue q ON q.message_id = m.id WHERE m.address = '+{to}'"))[0].1.clone();
            (to, (id, b["biz_opaque_callback_data"].as_str().unwrap().to_owned()))
        })
        .collect();

    // r0 reads it; `serve` acknowledges the receipt and dies at once, before any run has
    // planned a follow-up: the receipt is on disk, and the next run acts on it.
    let server = Server::start(&p, &[]);
    let (id, callback) = &callbacks["5511920000000"];
    let body = status(
        id,
        "read",
        "5511920000000",
        Some(callback),
        unix("2026-11-30T14:00:00Z"),
    );
    assert_eq!(
        post(&server, body.to_string().as_bytes(), Some(APP_SECRET))
            .await
            .0,
        200
    );
    server.kill();

    // A day later a run releases r1's follow-up, starts sending it, and dies mid-send.
    let day = "2026-12-01T13:05:00Z";
    let child = spawn(&p, true, &["--now", day, "run", "--once", "--lease", "1s"]);
    let pid = child.id();
    tokio::task::block_in_place(|| hook.wait_for(1, std::time::Duration::from_secs(60)));
    kill(pid);
    let _ = tokio::task::spawn_blocking(move || child.wait_with_output()).await;
    let nudge = states(&p, "nudge");
    assert_eq!(
        nudge["r0"].0, "cancelled",
        "the receipt survived the crash: {nudge:?}"
    );
    assert_eq!(
        nudge["r1"].0, "sending",
        "released once and claimed when the run died"
    );

    // The next run takes the dead run's lease over and sends r1's follow-up again with the
    // same key; nothing is released twice, r0 is never messaged.
    let o = tokio::task::block_in_place(|| {
        finish(
            spawn(&p, true, &["--now", day, "run", "--once", "--lease", "1s"]),
            std::time::Duration::from_secs(120),
        )
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    let nudge = states(&p, "nudge");
    assert_eq!(nudge.len(), 2);
    assert_eq!(nudge["r1"].0, "sent");
    let hits = hook.hits();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits.iter().all(|h| h.recipient == "r1"), "{hits:?}");
    // One message for the provider: the retry carries the first attempt's key, so a provider
    // that received the unanswered first request sends it once.
    assert_eq!(hits[0].key, hits[1].key, "the same idempotency key");
    assert_eq!(hook.arrivals().len(), 1);
}

#[test]
fn bad_follows_are_refused_at_validate_with_the_line_and_what_to_write() {
    let p = Project::empty();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\nchannels:\n  sms: { type: console }\n")
        .file("templates/t.hbs", "Oi {{first_name}}")
        .file("a.csv", "id,first_name,phone\nr0,Ana,+5511920000000\n")
        .file("campaigns/wa.yaml", "channel: sms\ntemplate: t\naudience: a.csv\n")
        .file("campaigns/click.yaml", "channel: sms\ntemplate: t\naudience: a.csv\nfollows: { campaign: wa, when: clicked, after: 1h }\n")
        .file("campaigns/nowait.yaml", "channel: sms\ntemplate: t\naudience: a.csv\nfollows: { campaign: wa, when: not_read }\n")
        .file("campaigns/ghost.yaml", "channel: sms\ntemplate: t\naudience: a.csv\nfollows:\n  campaign: nobody\n  when: read\n")
        .file("campaigns/timed.yaml", "channel: sms\ntemplate: t\naudience: a.csv\nfollows: { campaign: wa, when: sent }\nschedule: { at: 2026-12-01T10:00 }\n")
        .file("campaigns/loop_a.yaml", "channel: sms\ntemplate: t\naudience: a.csv\nfollows: { campaign: loop_b, when: read }\n")
        .file("campaigns/loop_b.yaml", "channel: sms\ntemplate: t\naudience: a.csv\nfollows: { campaign: loop_a, when: read }\n")
        .file("campaigns/within.yaml", "channel: sms\ntemplate: t\naudience: a.csv\nfollows: { campaign: wa, when: not_read, after: 1d, within: 2d }\n");
    let cases = [
        ("click", "click.yaml:4:", "disparo does not track clicks"),
        ("nowait", "nowait.yaml:4:", "`when: not_read` needs `after`"),
        (
            "ghost",
            "ghost.yaml:5:",
            "follows an unknown campaign \"nobody\"",
        ),
        (
            "timed",
            "field `schedule.at`",
            "a follow-up has no `schedule.at`",
        ),
        (
            "loop_a",
            "loop_a.yaml:4:",
            "follow-ups form a cycle: loop_a → loop_b → loop_a",
        ),
        (
            "within",
            "field `follows.within`",
            "`within` does not apply to `when: not_read`",
        ),
    ];
    for (name, place, what) in cases {
        let o = p.expect(2, &["validate", name]);
        assert!(
            o.stderr.contains(place) && o.stderr.contains(what),
            "{name}:\n{}",
            o.stderr
        );
        // plan refuses the same, and stores nothing.
        let o = p.expect(2, &["plan", name]);
        assert!(o.stderr.contains(what), "{name}:\n{}", o.stderr);
    }
    assert!(!p.path().join("disparo.db").exists());
    p.ok(&["validate", "wa"]);
}

/// A two-step project on the outbox channel: `wa` (stem) whose campaign `name:` may differ,
/// and `nudge` following `parent_ref` "sent, after 1h".
fn outbox_pair(wa_name: Option<&str>, parent_ref: &str) -> Project {
    let p = Project::empty();
    let name = wa_name.map(|n| format!("name: {n}\n")).unwrap_or_default();
    p.file("disparo.yaml", "timezone: America/Sao_Paulo\nchannels:\n  out: { type: outbox, path: outbox.jsonl }\n")
        .file("templates/t.hbs", "Oi {{first_name}}")
        .file("a.csv", "id,first_name,phone\nr0,Ana,+5511920000000\nr1,Bia,+5511920000001\n")
        .file("campaigns/wa.yaml", &format!("{name}channel: out\ntemplate: t\naudience: a.csv\nschedule: {{ at: 2026-12-01T10:00 }}\n"))
        .file("campaigns/nudge.yaml", &format!("channel: out\ntemplate: t\naudience: a.csv\nfollows: {{ campaign: {parent_ref}, when: sent, after: 1h }}\n"));
    p
}

/// The docs let `follows.campaign` name the parent by its file's stem, and `validate`/`plan`
/// accept it; but the store knows the parent by its `name:`, so the release looks up a
/// campaign that does not exist and the follow-up is never released, silently.
#[test]
fn a_parent_named_by_its_file_stem_gets_its_follow_ups() {
    let p = outbox_pair(Some("Promo de Natal"), "wa");
    p.ok(&["validate", "nudge"]);
    p.ok(&["--now", "2026-12-01T12:00:00Z", "plan", "wa", "nudge"]);
    p.ok(&["--now", "2026-12-01T13:00:00Z", "run", "--once"]);
    assert_eq!(states(&p, "Promo de Natal").len(), 2);
    assert!(states(&p, "Promo de Natal").values().all(|s| s.0 == "sent"));
    p.ok(&["--now", "2026-12-01T15:00:00Z", "run", "--once"]);
    let nudge = states(&p, "nudge");
    assert_eq!(
        nudge.values().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["sent", "sent"],
        "an hour after the parent was sent, each recipient got the follow-up: {nudge:?}"
    );
}
