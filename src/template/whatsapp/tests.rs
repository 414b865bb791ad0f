//! The front matter block loaded, rendered and checked through `TemplateSet`.

use super::*;
use crate::template::TemplateSet;
use serde_json::json;

fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<TemplateSet, Vec<Problem>>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let s = TemplateSet::load(dir.path(), "promo");
    (dir, s)
}

const FULL: &str = r#"---
whatsapp:
  name: bf
  language: en_US
  category: marketing
  header: { image: { link: "https://cdn.example.com/{{sku}}.jpg" } }
  body:
    - "{{first_name}}"
    - currency: { fallback_value: "{{price}}", code: USD, amount_1000: "{{price_1000}}" }
    - date_time: { fallback_value: "{{until}}" }
  buttons:
    - { sub_type: url, text: "{{sku}}" }
    - { index: 2, sub_type: quick_reply, payload: STOP }
    - { index: 1, sub_type: copy_code, coupon_code: "{{coupon}}" }
---
Hi {{first_name}}, {{price}} until {{until}}"#;

fn vars() -> serde_json::Value {
    json!({"sku": "p-1", "first_name": "Ana", "price": "$10.99", "price_1000": 10990,
           "until": "Sunday", "coupon": "BF26"})
}

#[test]
fn the_whole_template_renders_into_metas_shapes() {
    let (_d, s) = load(&[("promo.hbs", FULL)]);
    let s = s.unwrap();
    let wa = s.render(None, &vars()).unwrap().whatsapp.unwrap();
    assert!(wa.body.is_empty());
    assert_eq!(
        serde_json::to_value(&wa).unwrap(),
        json!({"name": "bf", "language": "en_US", "body": [], "category": "marketing",
            "header": {"type": "image", "image": {"link": "https://cdn.example.com/p-1.jpg"}},
            "body_params": [
                {"type": "text", "text": "Ana"},
                {"type": "currency", "currency": {"fallback_value": "$10.99", "code": "USD", "amount_1000": 10990}},
                {"type": "date_time", "date_time": {"fallback_value": "Sunday"}}],
            "buttons": [
                {"index": 0, "sub_type": "url", "parameter": {"type": "text", "text": "p-1"}},
                {"index": 2, "sub_type": "quick_reply", "parameter": {"type": "payload", "payload": "STOP"}},
                {"index": 1, "sub_type": "copy_code", "parameter": {"type": "coupon_code", "coupon_code": "BF26"}}]})
    );
    // The reference (Handlebars only) renders the same.
    assert_eq!(
        s.reference()
            .render(None, &vars())
            .unwrap()
            .whatsapp
            .unwrap(),
        wa
    );
    // Stored and loaded back unchanged; a row stored before these fields still loads.
    let back: crate::message::WhatsappTemplate =
        serde_json::from_value(serde_json::to_value(&wa).unwrap()).unwrap();
    assert_eq!(back, wa);
    let old: crate::message::WhatsappTemplate =
        serde_json::from_str(r#"{"name":"bf","language":"pt_BR","body":["Ana"]}"#).unwrap();
    assert_eq!(old.body, ["Ana"]);
    assert!(old.header.is_none() && old.buttons.is_empty() && old.category.is_none());
}

#[test]
fn a_limit_broken_by_a_rendered_value_is_the_recipients_error_with_its_field() {
    let (_d, s) = load(&[("promo.hbs", FULL)]);
    let s = s.unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "coupon",
            json!("TOO-LONG-COUPON-1"),
            "whatsapp.buttons[2].coupon_code",
        ),
        ("first_name", json!("Ana\nMaria"), "whatsapp.body[0]"),
        ("first_name", json!("Ana     Maria"), "whatsapp.body[0]"),
        ("first_name", json!("x".repeat(1025)), "whatsapp.body[0]"),
        ("price_1000", json!("10.99"), "whatsapp.body[1].amount_1000"),
        (
            "price_1000",
            json!(3_000_000_000_i64),
            "whatsapp.body[1].amount_1000",
        ),
        ("sku", json!("x".repeat(2001)), "whatsapp.buttons[0].text"),
    ];
    for (key, value, field) in cases {
        let mut v = vars();
        v[key] = value.clone();
        let f = s.render(None, &v).unwrap_err();
        assert_eq!(f.field.as_deref(), Some(field), "{key}={value}: {f:?}");
        let p = f.to_problem();
        assert!(p.hint.is_some() && p.file.is_some(), "{p:?}");
    }
    // At the limits exactly, accepted.
    let mut v = vars();
    v["coupon"] = json!("X".repeat(15));
    v["first_name"] = json!(format!("Ana    {}", "x".repeat(1017)));
    s.render(None, &v).unwrap();
}

#[test]
fn header_kinds_and_limits() {
    let t = |header: &str| {
        load(&[(
            "promo.hbs",
            format!("---\nwhatsapp: {{ name: t, language: en, header: {header} }}\n---\nHi").leak(),
        )])
    };
    let (_d, s) = t(r#"{ text: "{{h}}" }"#);
    let s = s.unwrap();
    let f = s.render(None, &json!({"h": "x".repeat(61)})).unwrap_err();
    assert_eq!(f.field.as_deref(), Some("whatsapp.header.text"));
    assert!(s.render(None, &json!({"h": "x".repeat(60)})).is_ok());

    let (_d, s) = t(
        r#"{ location: { latitude: "{{lat}}", longitude: -46.6333, name: Loja, address: "Rua A, 1" } }"#,
    );
    let s = s.unwrap();
    let wa = s
        .render(None, &json!({"lat": "-23.5505"}))
        .unwrap()
        .whatsapp
        .unwrap();
    assert_eq!(
        serde_json::to_value(wa.header.unwrap()).unwrap(),
        json!({"type": "location",
        "location": {"latitude": "-23.5505", "longitude": "-46.6333", "name": "Loja", "address": "Rua A, 1"}})
    );
    let f = s.render(None, &json!({"lat": "91"})).unwrap_err();
    assert_eq!(
        f.field.as_deref(),
        Some("whatsapp.header.location.latitude")
    );

    let (_d, s) = t(r#"{ document: { id: "{{doc}}", filename: "{{inv}}.pdf" } }"#);
    let wa = s
        .unwrap()
        .render(None, &json!({"doc": "123", "inv": "F-1"}))
        .unwrap()
        .whatsapp
        .unwrap();
    assert_eq!(
        serde_json::to_value(wa.header.unwrap()).unwrap(),
        json!({"type": "document", "document": {"id": "123", "filename": "F-1.pdf"}})
    );

    for (bad, field) in [
        (
            r#"{ image: { link: "https://a/x.jpg", id: "1" } }"#,
            "whatsapp.header.image",
        ),
        (
            r#"{ image: { link: "https://a/x.jpg", filename: a.pdf } }"#,
            "whatsapp.header.image.filename",
        ),
        (r#"{ text: a, image: { id: "1" } }"#, "whatsapp.header"),
    ] {
        let (_d, s) = t(bad);
        let p = &s.unwrap_err()[0];
        assert_eq!(p.field.as_deref(), Some(field), "{bad}: {p:?}");
    }
}

#[test]
fn named_parameters_and_partials_count() {
    let files = |body: &str| {
        vec![
            ("promo.hbs", format!("---\nwhatsapp: {{ name: t, language: en, body: {body} }}\n---\nHi {{{{first_name}}}} {{{{> footer}}}}").leak() as &str),
            ("partials/footer.hbs", "use {{coupon}}"),
        ]
    };
    // Positional: the placeholder inside the partial counts.
    let (_d, s) = load(&files(r#"["{{first_name}}", "{{coupon}}"]"#));
    let c = s
        .unwrap()
        .render(None, &json!({"first_name": "Ana", "coupon": "BF"}))
        .unwrap();
    assert_eq!(c.whatsapp.unwrap().body, ["Ana", "BF"]);
    let (_d, s) = load(&files(r#"["{{first_name}}"]"#));
    let p = &s.unwrap_err()[0];
    assert_eq!(p.field.as_deref(), Some("whatsapp.body"));
    assert!(
        p.message.contains("1 body parameter(s)") && p.message.contains("2 placeholder(s)"),
        "{}",
        p.message
    );
    // Named: a map, one key per distinct placeholder.
    let (_d, s) = load(&files(
        r#"{ first_name: "{{first_name}}", coupon: "{{coupon}}" }"#,
    ));
    let wa = s
        .unwrap()
        .render(None, &json!({"first_name": "Ana", "coupon": "BF"}))
        .unwrap()
        .whatsapp
        .unwrap();
    assert_eq!(
        serde_json::to_value(&wa.body_params).unwrap(),
        json!([
        {"type": "text", "parameter_name": "coupon", "text": "BF"},
        {"type": "text", "parameter_name": "first_name", "text": "Ana"}])
    );
    let (_d, s) = load(&files(
        r#"{ first_name: "{{first_name}}", code: "{{coupon}}" }"#,
    ));
    assert_eq!(s.unwrap_err()[0].field.as_deref(), Some("whatsapp.body"));
    let (_d, s) = load(&files(
        r#"{ First: "{{first_name}}", coupon: "{{coupon}}" }"#,
    ));
    assert_eq!(
        s.unwrap_err()[0].field.as_deref(),
        Some("whatsapp.body.First")
    );
}

#[test]
fn button_shapes_are_checked_at_load() {
    for (buttons, field) in [
        ("[{ sub_type: url, payload: x }]", "whatsapp.buttons[0]"),
        ("[{ sub_type: copy_code }]", "whatsapp.buttons[0]"),
        (
            "[{ sub_type: url, text: a }, { index: 0, sub_type: quick_reply, payload: b }]",
            "whatsapp.buttons[1].index",
        ),
        (
            "[{ index: 10, sub_type: url, text: a }]",
            "whatsapp.buttons[0].index",
        ),
    ] {
        let (_d, s) = load(&[(
            "promo.hbs",
            format!("---\nwhatsapp: {{ name: t, language: en, buttons: {buttons} }}\n---\nHi")
                .leak(),
        )]);
        let p = &s.unwrap_err()[0];
        assert_eq!(p.field.as_deref(), Some(field), "{buttons}: {p:?}");
    }
    let (_d, s) = load(&[(
        "promo.hbs",
        "---\nwhatsapp: { name: t, language: en, category: utility, endpoint: marketing_messages }\n---\nHi",
    )]);
    assert_eq!(
        s.unwrap_err()[0].field.as_deref(),
        Some("whatsapp.endpoint")
    );
}

#[test]
fn partials_are_expanded_before_counting() {
    let mut p = BTreeMap::new();
    p.insert(
        "footer".to_owned(),
        "Code {{coupon}} {{> inner}}".to_owned(),
    );
    p.insert("inner".to_owned(), "until {{until}}".to_owned());
    let e = expand_partials("Hi {{name}} {{> footer}}{{~> inner ~}}", &p, 0);
    assert_eq!(
        e,
        "Hi {{name}} Code {{coupon}} until {{until}}until {{until}}"
    );
    assert_eq!(placeholders(&e), ["name", "coupon", "until", "until"]);
}

#[test]
fn placeholders_skip_blocks_and_keep_helpers() {
    assert_eq!(
        placeholders("{{#if a}}{{b}}{{else}}{{{c}}}{{/if}}{{! x}}{{format_date d \"long\"}}"),
        ["b", "c", "format_date d \"long\""]
    );
}

#[test]
fn parameter_names_follow_meta() {
    assert!(valid_parameter_name("first_name2"));
    assert!(!valid_parameter_name("First"));
    assert!(!valid_parameter_name("2x"));
    assert!(!valid_parameter_name("a-b"));
}
