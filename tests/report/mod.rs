//! `status`, `export` and `report` on a campaign that really went out: planned by the binary,
//! sent by `disparo run` through a webhook channel to a loopback peer (one send refused with
//! a hostile error page), its receipts posted to `disparo serve` signed as the channel signs;
//! the HTML report then read back by headless Chromium (browser.rs, html.rs).
//!
//! The campaign's name, one locale, the refused send's error and a receipt's code are
//! hostile HTML whose URLs point at a [`Trap`]: a page that let any of it through would make
//! Chromium connect there.

mod browser;
mod html;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::harness::{Output, Project};
use crate::support::http::{Reply, TestServer};

/// The webhook channel's secret: it signs disparo's calls and the receipts posted back.
const SECRET: &str = "report-hmac-secret";
/// Planned the day before; each zone's 09:00 is due at 00:00Z (Tokyo), 09:00Z (Lisbon),
/// 12:00Z (São Paulo), and each run sends one zone's messages half an hour later.
const PLAN_NOW: &str = "2026-11-29T12:00:00Z";
const RUNS: [&str; 3] = [
    "2026-11-30T00:30:00Z",
    "2026-11-30T09:30:00Z",
    "2026-11-30T12:30:00Z",
];

/// A loopback port that counts the connections made to it: no page of ours may make one.
pub struct Trap {
    pub port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Trap {
    pub fn start() -> Trap {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok(_) => {
                        h.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Trap { port, hits, stop }
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Campaign data that is HTML, each trying to load something from the trap.
pub struct Hostile {
    pub name: String,
    pub locale: String,
    pub error_body: String,
    pub code: String,
}

impl Hostile {
    fn new(trap: &Trap) -> Hostile {
        Hostile {
            name: format!(
                "Black <script>fetch(\"{}\")</script> & \"Friday\" <img src=\"{}\">",
                trap.url("/name"),
                trap.url("/name.png")
            ),
            // No quote of the CSV's own and no `/`: only `"` and markup.
            locale: "\"><svg onload=alert(1)><b>x".into(),
            error_body: format!(
                "<html><script src=\"{}\"></script><img src=\"{}\" onerror=\"alert(2)\">bad number</html>",
                trap.url("/error.js"),
                trap.url("/error.png")
            ),
            code: format!("<iframe src=\"{}\"></iframe>30008", trap.url("/code")),
        }
    }
}

/// A campaign sent and reported on, and what the test needs to know of it.
pub struct Sent {
    pub p: Project,
    pub trap: Trap,
    pub hostile: Hostile,
    /// Recipient id → the callback reference its webhook call carried.
    pub refs: BTreeMap<String, String>,
    /// The Tokyo recipient whose send the peer refused.
    pub refused: String,
}

/// Eight recipients: Tokyo `t0`, `t1` (ja; one send refused with HTTP 400), Lisbon `l0`
/// (pt-PT) and `l1` (the hostile locale), São Paulo `s0`..`s2` (pt-BR) and `s3` (no locale).
/// Receipts: the Tokyo one delivered then read 2 min after its run; `l0` read 40 min after;
/// `l1` failed late with the hostile code; `s0` read 3 min after; `s1` delivered; `s2`
/// bounced (5.1.1); `s3` delivered, then opted out.
pub fn sent_campaign() -> Sent {
    let trap = Trap::start();
    let hostile = Hostile::new(&trap);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Replies in the order the runs make the calls (one at a time: concurrency 1).
    let ok = |id: &str| Reply::json(200, json!({ "id": id }));
    let replies = vec![
        ok("sink-t"),
        Reply::text(400, &hostile.error_body),
        ok("sink-l-a"),
        ok("sink-l-b"),
        ok("sink-s-a"),
        ok("sink-s-b"),
        ok("sink-s-c"),
        ok("sink-s-d"),
    ];
    let peer = rt.block_on(TestServer::start(replies));
    let p = project(&peer.url("/send"), &hostile);
    p.ok(&["-q", "--now", PLAN_NOW, "plan", "c"]);
    for now in RUNS {
        let o = p.run(&["-q", "--now", now, "run", "--once"]);
        assert!(o.code <= 1, "run at {now}: {}", o.stderr);
    }
    let calls = peer.requests();
    assert_eq!(calls.len(), 8, "one call per message");
    let recipient = |i: usize| calls[i].json()["recipient"].as_str().unwrap().to_owned();
    let refs: BTreeMap<String, String> = calls
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["recipient"].as_str().unwrap().to_owned(),
                body["reference"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let (sent_tokyo, refused) = (recipient(0), recipient(1));
    assert!(sent_tokyo.starts_with('t') && refused.starts_with('t'));
    drop(peer);
    post_receipts(&p, &rt, &receipts(&refs, &sent_tokyo, &hostile));
    Sent {
        p,
        trap,
        hostile,
        refs,
        refused,
    }
}

/// The project: the webhook channel to `url`, the campaign (hostile name), its audience.
fn project(url: &str, hostile: &Hostile) -> Project {
    let p = Project::empty().env("HOOK_SECRET", SECRET);
    let audience = format!(
        "id,first_name,phone,timezone,locale\n\
         t0,Aiko,+819011110000,Asia/Tokyo,ja\n\
         t1,Ren,+819011110001,Asia/Tokyo,ja\n\
         l0,Rita,+351911110000,Europe/Lisbon,pt-PT\n\
         l1,Rui,+351911110001,Europe/Lisbon,\"{}\"\n\
         s0,Ana,+5511911110000,America/Sao_Paulo,pt-BR\n\
         s1,Bia,+5511911110001,America/Sao_Paulo,pt-BR\n\
         s2,Caio,+5511911110002,America/Sao_Paulo,pt-BR\n\
         s3,Duda,+5511911110003,America/Sao_Paulo,\n",
        hostile.locale.replace('"', "\"\"")
    );
    p.file(
        "disparo.yaml",
        &format!(
            "timezone: America/Sao_Paulo\nchannels:\n  hook: {{ type: webhook, url: \"{url}\", secret_env: HOOK_SECRET, concurrency: 1 }}\n"
        ),
    )
    .file(
        "campaigns/c.yaml",
        &format!(
            "name: '{}'\nchannel: hook\ntemplate: t\naudience: a.csv\nschedule: {{ at: 2026-11-30T09:00 }}\n",
            hostile.name
        ),
    )
    .file("templates/t.hbs", "Oi {{first_name}}")
    .file("a.csv", &audience);
    p
}

/// The receipts [`sent_campaign`] describes, as the endpoint posts them.
fn receipts(refs: &BTreeMap<String, String>, sent_tokyo: &str, hostile: &Hostile) -> String {
    let event = |id: &str, who: &str, status: &str, at: &str| json!({"id": id, "reference": refs[who], "status": status, "at": at});
    let mut failed = event("e5", "l1", "failed", "2026-11-30T09:35:00Z");
    failed["code"] = json!(hostile.code);
    let mut bounced = event("e8", "s2", "bounced", "2026-11-30T12:31:00Z");
    bounced["code"] = json!("5.1.1");
    json!({"events": [
        event("e1", sent_tokyo, "delivered", "2026-11-30T00:31:00Z"),
        event("e2", sent_tokyo, "read", "2026-11-30T00:32:00Z"),
        event("e3", "l0", "delivered", "2026-11-30T09:31:00Z"),
        event("e4", "l0", "read", "2026-11-30T10:10:00Z"),
        failed,
        event("e6", "s0", "read", "2026-11-30T12:33:00Z"),
        event("e7", "s1", "delivered", "2026-11-30T12:31:00Z"),
        bounced,
        event("e9", "s3", "delivered", "2026-11-30T12:31:00Z"),
        event("e10", "s3", "opted_out", "2026-11-30T12:40:00Z"),
    ]})
    .to_string()
}

/// Posts `body` to a `disparo serve` of the project, signed; every event must be recorded.
fn post_receipts(p: &Project, rt: &tokio::runtime::Runtime, body: &str) {
    let server = crate::serve::Server::start(p, &[]);
    let answer: Value = rt.block_on(async {
        crate::serve::client()
            .post(server.url("/webhook/receipts"))
            .header(
                "X-Disparo-Signature",
                crate::support::hmac_sha256_header(SECRET.as_bytes(), body.as_bytes()),
            )
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let n = answer["received"].as_u64().unwrap_or(0) as usize;
    assert_eq!(
        answer["results"],
        Value::Array(vec![json!("recorded"); n.max(1)]),
        "{answer}\n{}",
        server.log()
    );
    server.stop();
}

/// The JSON Lines of a `--format json` command.
pub fn json_of(p: &Project, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    p.ok(&all).json_lines()
}

/// The funnel's metrics of a row, by name, as `(name, value)`.
pub fn funnel_metrics(row: &Value) -> Vec<(String, Value)> {
    [
        "planned",
        "sent",
        "delivered",
        "read",
        "failed",
        "bounced",
        "opted_out",
        "delivered_pct",
        "read_pct",
    ]
    .iter()
    .map(|k| (k.to_string(), row[*k].clone()))
    .collect()
}

#[test]
fn status_and_export_count_what_the_receipts_said() {
    let s = sent_campaign();
    let row = check_status(&s);
    check_groups(&s);
    check_export_funnel(&s.p, &row);
    check_export_rows(&s);
}

/// `status`: the queue's states and what the receipts said; returns the campaign's row.
fn check_status(s: &Sent) -> Value {
    let p = &s.p;
    let status = json_of(p, &["status"]);
    assert_eq!(status.len(), 1);
    let row = &status[0];
    assert_eq!(row["campaign"], s.hostile.name.as_str());
    let counts: Vec<(&str, Value)> = [
        "pending",
        "sent",
        "failed",
        "delivered",
        "read",
        "undelivered",
        "bounced",
        "opted_out",
        "delivered_pct",
        "read_pct",
    ]
    .iter()
    .map(|k| (*k, row[*k].clone()))
    .collect();
    // Seven sent (the queue's state), one refused at the send; of the seven, five delivered
    // (three of them read), one failed late, one bounced.
    assert_eq!(
        counts,
        [
            ("pending", json!(0)),
            ("sent", json!(7)),
            ("failed", json!(1)),
            ("delivered", json!(5)),
            ("read", json!(3)),
            ("undelivered", json!(1)),
            ("bounced", json!(1)),
            ("opted_out", json!(1)),
            ("delivered_pct", json!(71.4)),
            ("read_pct", json!(60.0)),
        ]
    );
    // The table shows the receipts' columns, and the hostile name as inert text.
    let table = p.ok(&["status"]).stdout;
    let header = table.lines().next().unwrap();
    for c in [
        "DELIVERED",
        "READ",
        "UNDELIVERED",
        "BOUNCED",
        "OPTED_OUT",
        "DELIVERED_PCT",
    ] {
        assert!(header.contains(c), "{header}");
    }
    assert!(table.contains("71.4"), "{table}");
    row.clone()
}

/// `status --by zone|locale`: the funnel per group, failed counting the late failure.
fn check_groups(s: &Sent) {
    let p = &s.p;
    let zones = json_of(p, &["status", "--by", "zone"]);
    let by_zone: Vec<(String, Vec<u64>)> = zones
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                r["zone"].as_str().unwrap().to_owned(),
                vec![
                    n("planned"),
                    n("sent"),
                    n("delivered"),
                    n("read"),
                    n("failed"),
                    n("undelivered"),
                    n("bounced"),
                    n("opted_out"),
                ],
            )
        })
        .collect();
    assert_eq!(
        by_zone,
        [
            (
                "America/Sao_Paulo".to_string(),
                vec![4, 4, 3, 1, 0, 0, 1, 1]
            ),
            ("Asia/Tokyo".to_string(), vec![2, 1, 1, 1, 1, 0, 0, 0]),
            ("Europe/Lisbon".to_string(), vec![2, 2, 1, 1, 1, 1, 0, 0]),
        ]
    );
    let locales = json_of(p, &["status", "--by", "locale"]);
    let names: Vec<Value> = locales.iter().map(|r| r["locale"].clone()).collect();
    assert_eq!(
        names,
        [
            Value::Null,
            json!(s.hostile.locale),
            json!("ja"),
            json!("pt-BR"),
            json!("pt-PT")
        ]
    );
    let table = p.ok(&["status", "--by", "locale"]).stdout;
    assert!(table.contains("(none)"), "{table}");
}

/// `export --funnel` prints the very same lines as `status --by`, and `status`'s counts.
fn check_export_funnel(p: &Project, row: &Value) {
    for by in ["zone", "locale"] {
        let status_rows = json_of(p, &["status", "--by", by]);
        let export_rows = json_of(p, &["export", "c", "--funnel", "--by", by]);
        assert_eq!(export_rows, status_rows, "--by {by}");
    }
    let whole = json_of(p, &["export", "c", "--funnel"]);
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0]["planned"], 8);
    for (k, v) in funnel_metrics(&whole[0]) {
        match k.as_str() {
            // status counts queue states; the funnel's failed adds the late failures.
            "planned" => {}
            "failed" => assert_eq!(v, 2),
            _ => assert_eq!(row[&k], v, "{k}: status and export --funnel agree"),
        }
    }
    assert_eq!(
        whole[0]["failed"].as_u64(),
        Some(row["failed"].as_u64().unwrap() + row["undelivered"].as_u64().unwrap())
    );
    let csv_out = p.ok(&["--format", "csv", "export", "c", "--funnel", "--by", "zone"]);
    assert!(
        csv_out
            .stdout
            .starts_with("campaign,zone,planned,sent,delivered,read,failed,undelivered,bounced,opted_out,delivered_pct,read_pct\n"),
        "{}",
        csv_out.stdout
    );
}

/// `export`: each message with what its receipts said, in CSV and JSON.
fn check_export_rows(s: &Sent) {
    let p = &s.p;
    let rows = export_csv(p);
    let get = |who: &str, col: &str| rows[who][col].clone();
    let tokyo_sent = s
        .refs
        .keys()
        .find(|r| r.starts_with('t') && **r != s.refused)
        .unwrap();
    assert_eq!(get(tokyo_sent, "delivery"), "read");
    assert_eq!(get(tokyo_sent, "delivered_at"), "2026-11-30T00:31:00Z");
    assert_eq!(get(tokyo_sent, "read_at"), "2026-11-30T00:32:00Z");
    assert_eq!(get(&s.refused, "state"), "failed");
    assert_eq!(get(&s.refused, "delivery"), "");
    assert_eq!(get(&s.refused, "last_code"), "HTTP 400");
    assert_eq!(get("l0", "delivery"), "read");
    assert_eq!(get("l1", "delivery"), "failed");
    assert_eq!(
        get("l1", "state"),
        "sent",
        "a late failure stays sent in the queue"
    );
    assert_eq!(get("l1", "delivery_code"), s.hostile.code);
    assert_eq!(get("s0", "delivery"), "read");
    assert_eq!(
        get("s0", "delivered_at"),
        "",
        "read alone sets no delivered_at"
    );
    assert_eq!(get("s1", "delivery"), "delivered");
    assert_eq!(get("s2", "delivery"), "bounced");
    assert_eq!(get("s2", "delivery_code"), "5.1.1");
    assert_eq!(get("s3", "delivery"), "delivered");
    assert_eq!(get("s3", "opted_out_at"), "2026-11-30T12:40:00Z");
    // JSON carries the same fields.
    let lines = json_of(p, &["export", "c"]);
    let s3 = lines.iter().find(|l| l["recipient"] == "s3").unwrap();
    assert_eq!(s3["opted_out_at"], "2026-11-30T12:40:00Z");
    assert_eq!(s3["delivery"], "delivered");
}

/// `export c` as CSV: recipient → column → cell.
fn export_csv(p: &Project) -> BTreeMap<String, BTreeMap<String, String>> {
    let o: Output = p.ok(&["--format", "csv", "export", "c"]);
    let mut r = csv::Reader::from_reader(o.stdout.as_bytes());
    let headers = r.headers().unwrap().clone();
    for c in [
        "delivery",
        "delivered_at",
        "read_at",
        "delivery_code",
        "opted_out_at",
    ] {
        assert!(headers.iter().any(|h| h == c), "CSV lacks {c}");
    }
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let row: BTreeMap<String, String> = headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect();
            (row["recipient"].clone(), row)
        })
        .collect()
}

#[test]
fn export_funnel_flags_are_checked() {
    let p = Project::example();
    p.ok(&[
        "-q",
        "--now",
        "2026-11-26T12:00:00Z",
        "plan",
        "payment-reminder",
    ]);
    let o = p.expect(2, &["export", "payment-reminder", "--by", "zone"]);
    assert!(o.stderr.contains("--funnel"), "{}", o.stderr);
    let o = p.expect(2, &["export", "payment-reminder", "--funnel", "--attempts"]);
    assert!(o.stderr.contains("--attempts"), "{}", o.stderr);
    let o = p.expect(2, &["status", "--by", "country"]);
    assert!(
        o.stderr.contains("locale") && o.stderr.contains("zone"),
        "{}",
        o.stderr
    );
    // Planned, nothing sent: every group is in the funnel with nothing past `planned`.
    let rows = json_of(
        &p,
        &["export", "payment-reminder", "--funnel", "--by", "locale"],
    );
    assert!(!rows.is_empty());
    let planned: u64 = rows.iter().map(|r| r["planned"].as_u64().unwrap()).sum();
    assert_eq!(planned, 21);
    assert!(
        rows.iter()
            .all(|r| r["sent"] == 0 && r["delivered_pct"].is_null())
    );
}
