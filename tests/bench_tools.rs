//! Checks for the benchmark tools in `examples/`: the audience generator and the webhook sink.
//!
//! The example binaries are built (or found up to date) with the same `cargo` that runs this
//! test, and located through `--message-format=json`, so `cargo test --test suite bench_tools::` works
//! on its own.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Builds both examples once per test process and returns their paths by name.
fn examples() -> &'static BTreeMap<String, PathBuf> {
    static PATHS: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "--quiet",
                "--message-format=json",
                "--example",
                "gen_audience",
                "--example",
                "webhook_sink",
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build for the examples");
        assert!(out.status.success(), "cargo build --example failed");
        let mut paths = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if msg["reason"] == "compiler-artifact"
                && let (Some(name), Some(exe)) =
                    (msg["target"]["name"].as_str(), msg["executable"].as_str())
            {
                paths.insert(name.to_string(), PathBuf::from(exe));
            }
        }
        assert!(
            paths.contains_key("gen_audience") && paths.contains_key("webhook_sink"),
            "example executables not reported by cargo: {paths:?}"
        );
        paths
    })
}

fn generate(args: &[&str]) -> String {
    let out = Command::new(&examples()["gen_audience"])
        .args(args)
        .output()
        .expect("run gen_audience");
    assert!(
        out.status.success(),
        "gen_audience {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("generator output is UTF-8")
}

fn valid_e164(p: &str) -> bool {
    let Some(digits) = p.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

#[test]
fn generated_audience_is_realistic_and_deterministic() {
    let text = generate(&["--rows", "2000", "--seed", "7"]);
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(
        header[..10],
        [
            "id",
            "first_name",
            "last_name",
            "phone",
            "email",
            "timezone",
            "locale",
            "city",
            "plan",
            "points"
        ]
    );
    let (mut ids, mut zones, mut phones) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut rows = 0;
    let mut empty_tz = 0;
    let mut accented = 0;
    for rec in rdr.records() {
        let rec = rec.expect("well-formed CSV row");
        assert_eq!(rec.len(), header.len());
        rows += 1;
        assert!(ids.insert(rec[0].to_string()), "duplicate id {}", &rec[0]);
        assert!(valid_e164(&rec[3]), "bad phone {}", &rec[3]);
        phones.insert(rec[3].to_string());
        let email = &rec[4];
        assert_eq!(email.matches('@').count(), 1, "bad email {email}");
        assert!(
            email
                .bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_uppercase()),
            "{email}"
        );
        if rec[5].is_empty() {
            empty_tz += 1;
        } else {
            assert!(rec[5].contains('/'), "not an IANA name: {}", &rec[5]);
            zones.insert(rec[5].to_string());
        }
        assert!(
            ["pt-BR", "pt-PT", "en", "es"].contains(&&rec[6]),
            "locale {}",
            &rec[6]
        );
        if rec[5].starts_with("America/Sao_Paulo") {
            assert!(rec[3].starts_with("+55") && &rec[6] == "pt-BR", "{rec:?}");
        }
        rec[9].parse::<u32>().expect("numeric points");
        if !rec[1].is_ascii() || !rec[2].is_ascii() {
            accented += 1;
        }
    }
    assert_eq!(rows, 2000);
    assert_eq!(phones.len(), 2000, "phones are unique");
    assert!(zones.len() >= 30, "only {} zones", zones.len());
    assert!(
        (10..=100).contains(&empty_tz),
        "{empty_tz} rows without a zone"
    );
    assert!(accented > 200, "only {accented} accented names");

    // Same seed, same bytes; another seed, other bytes; a shorter run is a prefix.
    assert_eq!(text, generate(&["--rows", "2000", "--seed", "7"]));
    assert_ne!(text, generate(&["--rows", "2000", "--seed", "8"]));
    assert!(text.starts_with(&generate(&["--rows", "100", "--seed", "7"])));

    // JSON Lines: same people, one object per line, missing zone as an absent key.
    let jsonl = generate(&["--rows", "50", "--seed", "7", "--format", "jsonl"]);
    let first_csv: Vec<csv::StringRecord> = csv::Reader::from_reader(text.as_bytes())
        .records()
        .take(50)
        .map(Result::unwrap)
        .collect();
    for (line, rec) in jsonl.lines().zip(&first_csv) {
        let v: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
        assert_eq!(v["id"], rec[0]);
        assert_eq!(v["first_name"], rec[1]);
        assert_eq!(v["timezone"].as_str().unwrap_or(""), &rec[5]);
        assert!(v["points"].is_u64());
    }
    assert_eq!(jsonl.lines().count(), 50);

    // Bad flags are a usage error.
    let bad = Command::new(&examples()["gen_audience"])
        .arg("--rowz")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn webhook_sink_counts_requests_and_idempotency_keys() {
    // One thread (the default), and a multi-threaded runtime.
    sink_counts(&[]);
    sink_counts(&["--threads", "2"]);
}

fn sink_counts(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("sink.json");
    let mut child = Command::new(&examples()["webhook_sink"])
        .args(extra)
        .args(["--listen", "127.0.0.1:0", "--until-stdin-eof", "--stats"])
        .arg(&stats_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start webhook_sink");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening ")
        .expect("`listening ADDR` line")
        .to_string();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let live = rt.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/send");
        for key in [Some("msg-1"), Some("msg-2"), Some("msg-1"), None] {
            let mut req = client
                .post(&url)
                .json(&serde_json::json!({"to": "+5511987654321", "text": "Olá"}));
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            let resp = req.send().await.expect("sink answers");
            assert_eq!(resp.status(), 200);
            let body: serde_json::Value = resp.json().await.unwrap();
            assert!(body["id"].as_str().unwrap().starts_with("sink-"), "{body}");
        }
        let live: serde_json::Value = client
            .get(format!("http://{addr}/__stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        live
    });
    assert_eq!(live["total"], 4, "{live}");

    drop(child.stdin.take()); // EOF: the sink writes its stats and exits
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("webhook_sink did not exit on stdin EOF");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());

    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
    assert_eq!(stats["total"], 4, "{stats}");
    assert_eq!(stats["by_status"]["200"], 4);
    assert_eq!(stats["distinct_keys"], 2);
    assert_eq!(stats["duplicates"], 1);
    assert_eq!(stats["duplicates_after_success"], 1);
    assert_eq!(stats["without_key"], 1);
    assert_eq!(stats["duplicate_key_sample"], serde_json::json!(["msg-1"]));
    assert_eq!(stats["connections"], 1, "keep-alive reuses one connection");
    let per_second: u64 = stats["per_second"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(per_second, 4);
    assert_eq!(stats["max_1s_window"], 4);
    assert!(stats["first_request_at"].is_string() && stats["last_request_at"].is_string());
}
