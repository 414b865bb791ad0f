//! The loaders never panic: random bytes, and random mutations of valid campaign YAML, CSV,
//! JSON Lines, JSON and templates, go through `Campaign::parse`, `audience::read` and
//! `TemplateSet::load` (+ `render`) on temp files. Errors are fine; panics are not.

use std::ops::ControlFlow;
use std::path::Path;

use disparo::model::{Campaign, audience};
use disparo::template::TemplateSet;
use proptest::prelude::*;

const CAMPAIGN: &str = "name: bf\nchannel: whatsapp\ntemplate: black_friday\naudience: audiences/customers.csv\nvars: { coupon: BF26 }\nschedule:\n  at: 2026-11-27T10:00\n  timezone: America/Sao_Paulo\n  quiet_hours: { start: \"21:00\", end: \"08:00\" }\n  days: [mon, tue, wed, thu, fri, sat]\n  blackout_dates: [2026-12-25]\n  late: next_day\n  expire_after: 12h\nthrottle: 50/s\nfrequency_cap: { max: 2, per: 7d }\n";
const CRON_CAMPAIGN: &str = "channel: sms\ntemplate: t\naudience: a.jsonl\nschedule:\n  cron: \"0 10 * * MON-FRI\"\n  start: 2026-12-01T00:00\n  until: 2026-12-31\n  quiet_hours: us_tcpa\n";
const CSV: &str = "id,first_name,phone,timezone,locale\n1,Ana,+5511999990000,America/Sao_Paulo,pt-BR\n2,\"Bia, B\",+5511999990001,,en\n3,\"Caio\nC\",+5511999990002,Europe/Lisbon,\n";
const JSONL: &str = "{\"id\":\"1\",\"phone\":\"+5511999990000\",\"first_name\":\"Ana\",\"n\":3}\n{\"id\":2,\"phone\":\"+5511999990001\",\"tags\":[\"a\",\"b\"],\"o\":{\"x\":null}}\n";
const JSON: &str = "[{\"id\":\"1\",\"phone\":\"+5511999990000\"},{\"id\":\"2\",\"email\":\"a@b.co\",\"timezone\":\"Asia/Tokyo\"}]";
const YAML_AUDIENCE: &str = "- id: 1\n  phone: \"+5511999990000\"\n- { id: 2, phone: \"+5511999990001\", first_name: Bia }\n";
const TEMPLATE: &str = "---\nsubject: \"{{first_name}}, oferta\"\nwhatsapp: { name: promo, language: pt_BR, body: [\"{{first_name}}\", \"{{coupon}}\"] }\n---\nOlá {{first_name}}! {{#if coupon}}Cupom {{upper coupon}}{{else}}-{{/if}} {{default nickname \"amigo\"}} {{> sig}}\n";

/// A valid text, then a few random edits: byte flips, deletions, insertions of
/// syntax-significant characters, truncation, duplication of a slice.
fn mutated(seed: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((0usize..4096, 0u8..6, any::<u8>()), 0..8);
    edits.prop_map(move |edits| {
        let mut b = seed.as_bytes().to_vec();
        const SPECIAL: &[u8] = b"{}[]:,\"'\n\r-#>|&*!%@`\\\t \xff\xc3";
        for (pos, kind, byte) in edits {
            let at = pos % (b.len() + 1);
            match kind {
                0 if at < b.len() => b[at] = byte,
                1 if at < b.len() => {
                    b.remove(at);
                }
                2 => b.insert(at, SPECIAL[byte as usize % SPECIAL.len()]),
                3 => b.truncate(at),
                4 if at < b.len() => {
                    let end = (at + byte as usize % 32).min(b.len());
                    let slice = b[at..end].to_vec();
                    b.splice(at..at, slice);
                }
                _ => b.insert(at, byte),
            }
        }
        b
    })
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512)
}

fn parse_campaign(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("campaigns/fuzz.yaml");
    // The parser takes text; invalid UTF-8 is the caller's (`load`'s) error.
    let text = String::from_utf8_lossy(bytes);
    let _ = Campaign::parse(&path, &text, dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let _ = Campaign::load(&path, dir.path());
}

fn read_audience(ext: &str, bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("a.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    let mut n = 0u64;
    let _ = audience::read(&path, &mut |row| {
        n += 1;
        if let Ok(r) = row {
            let _ = (r.text("phone"), r.text_or_number("id"));
        }
        ControlFlow::Continue(())
    });
}

fn load_template(bytes: &[u8], partial: Option<&[u8]>) {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("templates");
    std::fs::create_dir_all(t.join("partials")).unwrap();
    std::fs::write(t.join("t.hbs"), bytes).unwrap();
    std::fs::write(t.join("t.pt-BR.hbs"), bytes).unwrap();
    if let Some(p) = partial {
        std::fs::write(t.join("partials/sig.hbs"), p).unwrap();
    }
    if let Ok(set) = TemplateSet::load(&t, "t") {
        let ctx = serde_json::json!({
            "first_name": "Ana", "coupon": "bf26", "n": 3, "items": ["a", "b"],
            "when": "2026-11-27T10:00:00Z", "timezone": "America/Sao_Paulo", "locale": "pt-BR"
        });
        for locale in [None, Some("pt-BR"), Some("pt"), Some("en")] {
            let _ = set.render(locale, &ctx);
        }
    }
    let _ = Path::new(&t);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn campaign_random_bytes(b in any_bytes()) { parse_campaign(&b); }

    #[test]
    fn campaign_mutations(b in mutated(CAMPAIGN)) { parse_campaign(&b); }

    #[test]
    fn cron_campaign_mutations(b in mutated(CRON_CAMPAIGN)) { parse_campaign(&b); }

    #[test]
    fn csv_random_bytes(b in any_bytes()) { read_audience("csv", &b); }

    #[test]
    fn csv_mutations(b in mutated(CSV)) { read_audience("csv", &b); }

    #[test]
    fn jsonl_mutations(b in mutated(JSONL)) { read_audience("jsonl", &b); }

    #[test]
    fn json_mutations(b in mutated(JSON)) { read_audience("json", &b); }

    #[test]
    fn yaml_audience_mutations(b in mutated(YAML_AUDIENCE)) { read_audience("yaml", &b); }

    #[test]
    fn audience_random_bytes_any_format(b in any_bytes(), ext in prop::sample::select(vec!["jsonl", "json", "yaml"])) {
        read_audience(ext, &b);
    }

    #[test]
    fn template_mutations(b in mutated(TEMPLATE), p in mutated("-- {{upper first_name}}\n")) {
        load_template(&b, Some(&p));
    }

    #[test]
    fn template_random_bytes(b in any_bytes()) { load_template(&b, None); }
}
