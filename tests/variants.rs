//! A/B variants end to end: each recipient's variant is rendered from its template, shown
//! by preview, stored, kept across re-plans, sent, exported and split in `status --by
//! variant`; mistakes in `variants:` are located.

use serde_json::Value;

use crate::harness::Project;

const NOW: &str = "2026-11-30T11:00:00Z";
/// 09:00 in São Paulo: the messages are due.
const RUN: &str = "2026-11-30T12:00:00Z";

fn project(variants: &str, n: usize) -> Project {
    let p = Project::empty();
    let mut csv = String::from("id,first_name,phone\n");
    for i in 0..n {
        csv.push_str(&format!("r{i},Ana {i},+55119{:08}\n", 30_000_000 + i));
    }
    p.file(
        "disparo.yaml",
        "timezone: America/Sao_Paulo\nchannels:\n  out: { type: outbox, path: outbox.jsonl }\n",
    )
    .file("templates/short.hbs", "A: oi {{first_name}}")
    .file("templates/long.hbs", "B: olá {{first_name}}, temos uma oferta")
    .file("a.csv", &csv)
    .file(
        "campaigns/c.yaml",
        &format!(
            "channel: out\naudience: a.csv\nschedule: {{ at: 2026-11-30T09:00 }}\nvariants:\n{variants}"
        ),
    );
    p
}

const AB: &str = "  - { name: short, template: short, weight: 30 }\n  - { name: long, template: long, weight: 70 }\n";

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn each_recipient_gets_its_variant_everywhere_and_keeps_it() {
    let p = project(AB, 400);
    p.ok(&["--now", NOW, "validate", "c"]);
    let pre = p.ok(&["--now", NOW, "--format", "json", "preview", "c"]);
    let lines = pre.json_lines();
    let assigned: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let v = l["variant"].as_str().unwrap().to_owned();
            let body = l["body"].as_str().unwrap();
            // Rendered from the variant's own template.
            assert!(
                body.starts_with(if v == "short" { "A: " } else { "B: " }),
                "{l}"
            );
            (l["recipient"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(assigned.len(), 400);
    let short = assigned.iter().filter(|(_, v)| v == "short").count();
    assert!(
        (80..=160).contains(&short),
        "{short} of 400 got the 30 % arm"
    );

    p.ok(&["--now", NOW, "plan", "c"]);
    p.ok(&["--now", NOW, "plan", "c"]);
    let o = p.ok(&["--now", RUN, "run", "--once"]);
    assert!(o.stderr.contains("400 sent"), "{}", o.stderr);
    // What left carries the variant with its content (the outbox line, a webhook's body).
    let outbox = json_lines(&p.read("outbox.jsonl"));
    assert_eq!(outbox.len(), 400);
    for line in &outbox {
        let id = line["recipient"].as_str().unwrap();
        let want = &assigned.iter().find(|(r, _)| r == id).unwrap().1;
        assert_eq!(
            line["content"]["variant"].as_str(),
            Some(want.as_str()),
            "{line}"
        );
    }
    let export = json_lines(&p.ok(&["--format", "json", "export", "c"]).stdout);
    for row in &export {
        let id = row["recipient"].as_str().unwrap();
        let want = &assigned.iter().find(|(r, _)| r == id).unwrap().1;
        assert_eq!(row["variant"].as_str(), Some(want.as_str()));
    }
    let by = json_lines(
        &p.ok(&["--format", "json", "status", "--by", "variant", "c"])
            .stdout,
    );
    let count = |name: &str, metric: &str| {
        by.iter()
            .find(|r| r["variant"] == name)
            .map(|r| r[metric].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(count("short", "sent"), short as u64);
    assert_eq!(count("long", "sent"), 400 - short as u64);
    assert_eq!(count("short", "planned") + count("long", "planned"), 400);
}

#[test]
fn reweighting_moves_only_pending_messages() {
    let p = project(AB, 200);
    p.ok(&["--now", NOW, "plan", "c"]);
    // Send the first 50, then give everything to `long`.
    p.ok(&["--now", RUN, "run", "--once", "--limit", "50"]);
    let before = json_lines(&p.ok(&["--format", "json", "export", "c"]).stdout);
    p.file(
        "campaigns/c.yaml",
        &p.read("campaigns/c.yaml")
            .replace("weight: 30", "weight: 0"),
    );
    p.ok(&["--now", NOW, "plan", "c"]);
    let after = json_lines(&p.ok(&["--format", "json", "export", "c"]).stdout);
    for a in &after {
        let b = before
            .iter()
            .find(|b| b["recipient"] == a["recipient"])
            .unwrap();
        if b["state"] == "sent" {
            assert_eq!(
                a["variant"], b["variant"],
                "a sent message keeps its variant"
            );
        } else {
            assert_eq!(a["variant"], "long", "{a}");
        }
    }
    assert!(
        before
            .iter()
            .any(|b| b["state"] == "sent" && b["variant"] == "short")
    );
}

#[test]
fn variant_mistakes_are_located() {
    for (variants, extra, says) in [
        (
            "  - { name: a, template: short, weight: 1 }\n  - { name: a, template: long, weight: 1 }\n",
            "",
            "field `variants[1].name`: two variants are named \"a\"",
        ),
        (
            "  - { name: a, template: short, weight: 0 }\n",
            "",
            "every variant has weight 0",
        ),
        (
            "  - { name: 'a b', template: short, weight: 1 }\n",
            "",
            "variant name \"a b\" is not a plain name",
        ),
        (
            "  - { name: a, template: short, weight: 1 }\n  - { name: b, template: nope, weight: 1 }\n",
            "",
            "c.yaml:6:26: field `variants[1].template`: no template named",
        ),
        (
            "  - { name: a, template: nope, weight: 1 }\n",
            "",
            "c.yaml:5:26: field `variants[0].template`: no template named",
        ),
        (
            "  - { name: a, template: short, weight: 1 }\n",
            "template: short\n",
            "`template` and `variants` both name the templates",
        ),
    ] {
        let p = project(variants, 3);
        if !extra.is_empty() {
            let c = p.read("campaigns/c.yaml");
            p.file("campaigns/c.yaml", &format!("{extra}{c}"));
        }
        let o = p.expect(2, &["--now", NOW, "validate", "c"]);
        assert!(o.stderr.contains(says), "{variants}: {}", o.stderr);
    }
    let p = project("  - { name: a, template: short, weight: 1 }\n", 3);
    p.file("campaigns/c.yaml", "channel: out\naudience: a.csv\n");
    let o = p.expect(2, &["validate", "c"]);
    assert!(
        o.stderr.contains("the campaign names no template"),
        "{}",
        o.stderr
    );
}
