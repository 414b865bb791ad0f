//! disparo's templates against handlebars.js itself, run at test time: the cases of
//! `tests/fixtures/handlebars/differential.json` are rendered by handlebars.js 4.7.10 (npm,
//! tests/tools, through tests/support/hbs_reference.js) and by disparo's real loading and
//! rendering path (`TemplateSet::load` from files in a temporary project, strict, the text
//! part unescaped and the `html` part escaped, partials from `templates/partials/`).
//!
//! A case may differ only as `DIFFERENCES` says, and each of them is argued in
//! docs/templates.md under its id. The kinds:
//! - `Refused`: handlebars.js renders, disparo refuses the template or the recipient at
//!   `validate` (so nothing is sent that would read differently);
//! - `Lenient`: handlebars.js throws, disparo renders (an optional field tested by `#if`);
//! - `Output`: both render, the texts differ. The bar for this kind is high: such a template
//!   passes `validate` and reads differently than its author checked in handlebars.js.

use std::path::Path;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Refused,
    Lenient,
    Output,
}

/// (case id, kind). The why is in docs/templates.md, "Differences from handlebars.js".
const DIFFERENCES: &[(&str, Kind)] = &[
    // Refused at load (validate), with the construct to write instead.
    ("inverse-false", Kind::Refused),
    ("inverse-true", Kind::Refused),
    ("inverse-empty-array", Kind::Refused),
    ("inverse-array", Kind::Refused),
    ("section-true", Kind::Refused),
    ("section-false", Kind::Refused),
    ("section-array", Kind::Refused),
    ("section-object", Kind::Refused),
    ("section-string", Kind::Refused),
    ("section-else", Kind::Refused),
    ("section-empty-array-else", Kind::Refused),
    ("section-parent-access", Kind::Refused),
    ("each-this-dot", Kind::Refused),
    ("partial-dynamic-lookup", Kind::Refused),
    ("partial-string-name", Kind::Refused),
    // Refused for the recipient (validate/preview/plan name the recipient and the field).
    ("var-big-int", Kind::Refused),
    ("var-float-big", Kind::Refused),
    ("var-length", Kind::Refused),
    ("each-missing", Kind::Refused),
    ("each-string", Kind::Refused),
    ("each-number", Kind::Refused),
    ("lookup-missing", Kind::Refused),
    ("lookup-missing-object", Kind::Refused),
    ("helper-upper-missing", Kind::Refused),
    // handlebars.js throws, disparo renders.
    ("var-array-index-dot", Kind::Lenient),
    ("if-missing-parent", Kind::Lenient),
    ("if-two-params", Kind::Lenient),
    ("raw-block", Kind::Lenient),
];

fn js_results(cases: &[Value]) -> Vec<Value> {
    crate::support::require_npm_tools();
    let strict: Vec<Value> = cases
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c["strict"] = Value::Bool(true);
            c
        })
        .collect();
    let script = crate::support::manifest_dir().join("tests/support/hbs_reference.js");
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run node (scripts/test-deps.sh installs Node.js when it is missing)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(strict).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "hbs_reference.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("hbs_reference.js prints JSON")
}

/// The case as a project on disk: `templates/t.hbs` (the case as the body, or as the `html`
/// part when it tests escaping) and its partials.
fn disparo_render(dir: &Path, case: &Value) -> Result<String, String> {
    let templates = dir.join("templates");
    std::fs::create_dir_all(templates.join("partials")).unwrap();
    let template = case["template"].as_str().unwrap();
    let escape = case["escape"].as_bool().unwrap_or(false);
    let file = if escape {
        // A JSON string is a YAML double-quoted scalar.
        format!("---\nhtml: {}\n---\nx\n", Value::String(template.into()))
    } else {
        // A file's one trailing newline is dropped, as editors add one.
        format!("{template}\n")
    };
    std::fs::write(templates.join("t.hbs"), file).unwrap();
    if let Some(partials) = case["partials"].as_object() {
        for (name, src) in partials {
            std::fs::write(
                templates.join("partials").join(format!("{name}.hbs")),
                src.as_str().unwrap(),
            )
            .unwrap();
        }
    }
    let set = disparo::template::TemplateSet::load(&templates, "t").map_err(|problems| {
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        format!("refused: {}", text.join("; "))
    })?;
    let content = set
        .render(None, &case["context"])
        .map_err(|f| format!("refused for the recipient: {}", f.message))?;
    Ok(if escape {
        content.html.unwrap_or_default()
    } else {
        content.body
    })
}

#[test]
fn templates_render_as_handlebars_js_renders_them() {
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::support::manifest_dir().join("tests/fixtures/handlebars/differential.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let cases = data["cases"].as_array().unwrap();
    let js = js_results(cases);
    assert_eq!(js.len(), cases.len());
    let docs =
        std::fs::read_to_string(crate::support::manifest_dir().join("docs/templates.md")).unwrap();

    let mut unexpected = Vec::new();
    let mut matched = 0;
    for (case, js) in cases.iter().zip(&js) {
        let id = case["id"].as_str().unwrap();
        assert_eq!(js["id"], case["id"]);
        let dir = tempfile_dir(id);
        let ours = disparo_render(&dir, case);
        let _ = std::fs::remove_dir_all(&dir);
        let theirs = js.get("output").and_then(Value::as_str);
        let kind = match (&ours, theirs) {
            (Ok(a), Some(b)) if a == b => None,
            (Err(_), None) => None,
            (Err(_), Some(_)) => Some(Kind::Refused),
            (Ok(_), None) => Some(Kind::Lenient),
            (Ok(_), Some(_)) => Some(Kind::Output),
        };
        let listed = DIFFERENCES
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, kind)| *kind);
        if kind.is_none() {
            matched += 1;
        }
        if kind != listed {
            unexpected.push(format!(
                "{id}: {kind:?} (listed: {listed:?})\n  template:      {:?}\n  context:       {}\n  handlebars.js: {}\n  disparo:       {ours:?}",
                case["template"].as_str().unwrap(),
                case["context"],
                js
            ));
        }
        if listed.is_some() {
            assert!(
                docs.contains(&format!("`{id}`")),
                "{id} is a listed difference that docs/templates.md does not argue"
            );
        }
    }
    eprintln!(
        "{matched} of {} cases render as handlebars.js renders them",
        cases.len()
    );
    assert!(
        unexpected.is_empty(),
        "{} cases differ from handlebars.js other than as listed:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

fn tempfile_dir(id: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("disparo-hbs-{}-{id}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
