//! `where:` end to end: validate's located errors and counts, preview's forecast, plan and
//! re-plan (a recipient the filter drops loses its pending message), dates on each
//! recipient's own calendar, a value the filter cannot read named by row and field.

use crate::harness::Project;

const NOW: &str = "2026-12-02T01:30:00Z";

/// Six recipients; `last_purchase` is a date, `age` a number, some cells blank.
fn project(filter: &str) -> Project {
    let p = Project::empty();
    p.file(
        "disparo.yaml",
        "timezone: America/Sao_Paulo\nchannels:\n  out: { type: outbox, path: outbox.jsonl }\n",
    )
    .file("templates/t.hbs", "Oi {{first_name}}")
    .file(
        "audiences/a.csv",
        "id,first_name,phone,timezone,country,age,plan,last_purchase\n\
         r1,Ana,+5511911110001,America/Sao_Paulo,BR,34,gold,2026-11-01\n\
         r2,Bia,+5511911110002,America/Sao_Paulo,BR,17,gold,2026-11-20\n\
         r3,Caio,+5511911110003,America/Sao_Paulo,BR,40,gold,\n\
         r4,Duda,+351911110004,Europe/Lisbon,PT,52,black,2026-11-01\n\
         r5,Eva,+5511911110005,America/Sao_Paulo,,29,gold,2026-10-02\n\
         r6,Fabi,+5511911110006,America/Sao_Paulo,BR,61,black,2026-11-02\n",
    );
    p.file("campaigns/c.yaml", &campaign(filter));
    p
}

fn campaign(filter: &str) -> String {
    format!(
        "channel: out\ntemplate: t\naudience: audiences/a.csv\nschedule: {{ at: 2026-12-03T10:00 }}\nwhere: {filter}\n"
    )
}

fn planned(p: &Project) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .messages()
        .iter()
        .map(|m| {
            (
                m["recipient"].as_str().unwrap().to_owned(),
                m["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn validate_preview_and_plan_keep_only_the_recipients_the_filter_keeps() {
    let p = project("\"country == 'BR' and age >= 18 and plan in ['gold', 'black']\"");
    let v = p.ok(&["--now", NOW, "validate", "c"]);
    assert!(
        v.stderr
            .contains("where: 3 of 6 recipient(s) kept; removed 3: 2 by country == 'BR', 1 by age >= 18, 0 by plan in ['gold', 'black']"),
        "{}",
        v.stderr
    );
    assert!(
        v.stderr.contains("ok: c — 6 recipients, 3 messages"),
        "{}",
        v.stderr
    );

    let pre = p.ok(&[
        "--now",
        NOW,
        "--format",
        "json",
        "preview",
        "c",
        "--forecast",
    ]);
    let lines = pre.json_lines();
    let forecast = lines
        .iter()
        .find_map(|l| l.get("forecast"))
        .expect("a forecast line");
    assert_eq!(forecast["messages"], 3);
    assert_eq!(forecast["filter"]["kept"], 3);
    let removed: Vec<u64> = forecast["filter"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["recipients"].as_u64().unwrap())
        .collect();
    assert_eq!(removed, [2, 1, 0]);
    let shown: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["recipient"].as_str())
        .collect();
    assert_eq!(shown, ["r1", "r3", "r6"]);

    p.ok(&["--now", NOW, "plan", "c"]);
    let pending = |ids: &[&str]| -> Vec<(String, String)> {
        ids.iter()
            .map(|i| ((*i).to_owned(), "pending".to_owned()))
            .collect()
    };
    assert_eq!(planned(&p), pending(&["r1", "r3", "r6"]));
    // Planning again changes nothing.
    p.ok(&["--now", NOW, "plan", "c"]);
    assert_eq!(planned(&p), pending(&["r1", "r3", "r6"]));

    // A narrower filter: the recipients it drops lose their pending message.
    p.file(
        "campaigns/c.yaml",
        &campaign("\"country == 'BR' and age >= 35\""),
    );
    p.ok(&["--now", NOW, "plan", "c"]);
    assert_eq!(
        planned(&p),
        [
            ("r1".to_owned(), "cancelled".to_owned()),
            ("r3".to_owned(), "pending".to_owned()),
            ("r6".to_owned(), "pending".to_owned()),
        ]
    );
}

#[test]
fn dates_and_blanks_are_judged_on_each_recipients_calendar() {
    // At 01:30Z on 2 December it is still 1 December in São Paulo but already 2 December in
    // Lisbon, so "today - 30d" is 1 November in São Paulo and 2 November in Lisbon: r1 (1 Nov,
    // São Paulo), r4 (1 Nov, Lisbon) and r5 (2 Oct) are kept, r6 (2 Nov, São Paulo) is not.
    // A blank date (r3) is null: neither before nor after.
    let p = project("\"last_purchase <= today - 30d\"");
    p.ok(&["--now", NOW, "plan", "c"]);
    let kept: Vec<String> = planned(&p).into_iter().map(|(r, _)| r).collect();
    assert_eq!(kept, ["r1", "r4", "r5"]);

    let p = project("\"last_purchase == null or country == null\"");
    p.ok(&["--now", NOW, "plan", "c"]);
    let kept: Vec<String> = planned(&p).into_iter().map(|(r, _)| r).collect();
    assert_eq!(kept, ["r3", "r5"]);
}

#[test]
fn filter_mistakes_are_located_in_the_campaign_file() {
    let p = project("locale == pt-BR");
    let v = p.expect(2, &["--now", NOW, "validate", "c"]);
    assert!(
        v.stderr.contains(
            "campaigns/c.yaml:5:20: field `where`: this filter cannot be read: unexpected - here"
        ),
        "{}",
        v.stderr
    );
    assert!(v.stderr.contains("locale == 'pt-BR'"), "{}", v.stderr);
    assert!(!p.path().join("disparo.db").exists());

    // A column the audience does not have (a typo, or an unquoted value).
    let p = project("\"country == BR\"");
    let v = p.expect(2, &["--now", NOW, "plan", "c"]);
    assert!(
        v.stderr.contains("campaigns/c.yaml:5:8: field `where`: the filter reads `BR`, which the audience a.csv has no column for"),
        "{}",
        v.stderr
    );
    assert!(
        v.stderr.contains("its columns are id, first_name, phone"),
        "{}",
        v.stderr
    );

    // A value the filter cannot read: the row and the field, and nothing stored.
    let p = project("\"age > 18\"");
    let csv = p.read("audiences/a.csv").replace(",29,", ",twenty-nine,");
    p.file("audiences/a.csv", &csv);
    let v = p.expect(2, &["--now", NOW, "plan", "c"]);
    assert!(
        v.stderr.contains("a.csv:6: row 5: field `age`: where: the filter compares `age` with a number, and this recipient's `age` is \"twenty-nine\""),
        "{}",
        v.stderr
    );
    assert!(p.messages().is_empty());

    // An unknown zone is a problem only for a recipient the filter keeps.
    let p = project("\"country == 'BR'\"");
    let csv = p
        .read("audiences/a.csv")
        .replace("Europe/Lisbon", "Mars/Olympus");
    p.file("audiences/a.csv", &csv);
    p.ok(&["--now", NOW, "plan", "c"]);
    let p = project("\"country == 'PT'\"");
    p.file("audiences/a.csv", &csv);
    let v = p.expect(2, &["--now", NOW, "plan", "c"]);
    assert!(v.stderr.contains("Mars/Olympus"), "{}", v.stderr);
}
