//! A template's `twilio:` front matter: a Twilio Content Template (`content_sid` and its
//! `variables`, each a Handlebars template rendered strictly per recipient) and media URLs.
//!
//! ```yaml
//! twilio:
//!   content_sid: HX0123456789abcdef0123456789abcdef
//!   variables: { "1": "{{first_name}}", "2": "{{coupon}}" }
//!   media_url: [ "https://example.com/bf26.png" ]
//! ```
//!
//! Kept apart from `mod.rs` so the WhatsApp Cloud parts there change independently; the
//! rendered form is [`crate::message::TwilioContent`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::Part;
use crate::diag::Problem;
use crate::message::TwilioContent;

/// `twilio:` as written in front matter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TwilioFront {
    #[serde(default)]
    content_sid: Option<String>,
    /// Content variables by name; each value a template.
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// Media URLs, as written (not templates: a per-recipient media URL is not a use case
    /// seen, and a fixed list is checked whole at validate).
    #[serde(default)]
    media_url: Vec<String>,
}

impl TwilioFront {
    /// The texts that are templates, for the nesting check before parsing.
    pub(super) fn texts(&self) -> impl Iterator<Item = &str> {
        self.variables.values().map(String::as_str)
    }
}

/// The compiled `twilio:` parts of one variant.
#[derive(Debug, Clone)]
pub(super) struct Compiled {
    content_sid: Option<String>,
    variables: Vec<(String, Part)>,
    media_url: Vec<String>,
}

/// `true` for `HX` followed by 32 hex digits, the shape of a Content SID.
pub(crate) fn is_content_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("HX") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks `front` and registers its variable templates with `add` (`(html, name, source,
/// line offset) -> Part`); problems name the file and the `twilio.*` field.
pub(super) fn compile(
    front: &TwilioFront,
    file: &Path,
    key: &str,
    add: &mut dyn FnMut(bool, String, &str, usize) -> Part,
    problems: &mut Vec<Problem>,
) -> Compiled {
    if let Some(sid) = &front.content_sid
        && !is_content_sid(sid)
    {
        problems.push(
            Problem::new(format!("{sid:?} is not a Twilio Content SID"))
                .in_file(file)
                .field("twilio.content_sid")
                .hint("copy the SID of the approved template from Twilio's Content Template Builder: HX followed by 32 hex digits"),
        );
    }
    if front.content_sid.is_none() && !front.variables.is_empty() {
        problems.push(
            Problem::new("`twilio.variables` without `twilio.content_sid`")
                .in_file(file)
                .field("twilio.variables")
                .hint("content variables fill a Twilio Content Template: add its `content_sid`, or remove `variables`"),
        );
    }
    for (name, _) in front.variables.iter().filter(|(k, _)| k.trim().is_empty()) {
        problems.push(
            Problem::new(format!("content variable name {name:?} is empty"))
                .in_file(file)
                .field("twilio.variables")
                .hint("name each variable as the Content Template does: \"1\", \"2\", ..."),
        );
    }
    for url in &front.media_url {
        let ok = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
        if !ok {
            problems.push(
                Problem::new(format!("{url:?} is not an http(s) URL"))
                    .in_file(file)
                    .field("twilio.media_url")
                    .hint("Twilio fetches each media URL itself: write a full public https:// URL"),
            );
        }
    }
    if front.media_url.len() > 10 {
        problems.push(
            Problem::new(format!(
                "{} media URLs; Twilio takes at most 10",
                front.media_url.len()
            ))
            .in_file(file)
            .field("twilio.media_url")
            .hint("keep 10 or fewer"),
        );
    }
    let variables = front
        .variables
        .iter()
        .map(|(name, src)| {
            (
                name.clone(),
                add(false, format!("{key}/twilio/{name}"), src, 0),
            )
        })
        .collect();
    Compiled {
        content_sid: front.content_sid.clone(),
        variables,
        media_url: front.media_url.clone(),
    }
}

impl Compiled {
    pub(super) fn parts_mut(&mut self) -> impl Iterator<Item = &mut Part> {
        self.variables.iter_mut().map(|(_, p)| p)
    }

    pub(super) fn parts(&self) -> impl Iterator<Item = &Part> {
        self.variables.iter().map(|(_, p)| p)
    }

    /// The rendered parts, each variable through `render` (strict: a missing value fails).
    pub(super) fn render<E>(
        &self,
        mut render: impl FnMut(&Part) -> Result<String, E>,
    ) -> Result<TwilioContent, E> {
        let mut variables = BTreeMap::new();
        for (name, p) in &self.variables {
            variables.insert(name.clone(), render(p)?);
        }
        Ok(TwilioContent {
            content_sid: self.content_sid.clone(),
            variables,
            media_url: self.media_url.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::TemplateSet;
    use super::*;
    use serde_json::json;

    fn load(front: &str) -> Result<TemplateSet, Vec<Problem>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.hbs"),
            format!("---\n{front}\n---\nOi {{{{first_name}}}}"),
        )
        .unwrap();
        TemplateSet::load(dir.path(), "t")
    }

    #[test]
    fn content_sid_shape() {
        assert!(is_content_sid("HX0123456789abcdef0123456789ABCDEF"));
        for bad in [
            "HX0123",
            "MG0123456789abcdef0123456789abcdef",
            "HX0123456789abcdef0123456789abcdeg",
            "HX0123456789abcdef0123456789abcdef0",
        ] {
            assert!(!is_content_sid(bad), "{bad}");
        }
    }

    #[test]
    fn variables_render_per_recipient_strictly() {
        let set = load(
            "twilio: { content_sid: HX0123456789abcdef0123456789abcdef, variables: { \"1\": \"{{first_name}}\", \"2\": \"{{upper coupon}}\" }, media_url: [\"https://example.com/a.png\"] }",
        )
        .unwrap();
        let c = set
            .render(None, &json!({"first_name": "Ana", "coupon": "bf26"}))
            .unwrap();
        let t = c.twilio.unwrap();
        assert_eq!(
            t.content_sid.as_deref(),
            Some("HX0123456789abcdef0123456789abcdef")
        );
        assert_eq!(t.variables["1"], "Ana");
        assert_eq!(t.variables["2"], "BF26");
        assert_eq!(t.media_url, ["https://example.com/a.png"]);
        let e = set.render(None, &json!({"first_name": "Ana"})).unwrap_err();
        assert_eq!(e.variable.as_deref(), Some("coupon"));
    }

    #[test]
    fn bad_front_matter_is_refused_at_load_with_the_field() {
        let p = load("twilio: { content_sid: HX12 }").unwrap_err();
        assert_eq!(p[0].field.as_deref(), Some("twilio.content_sid"));
        let p = load("twilio: { variables: { \"1\": \"{{first_name}}\" } }").unwrap_err();
        assert_eq!(p[0].field.as_deref(), Some("twilio.variables"));
        let p = load("twilio: { media_url: [\"ftp://x/y.png\"] }").unwrap_err();
        assert_eq!(p[0].field.as_deref(), Some("twilio.media_url"));
        assert!(load("twilio: { contentsid: HX12 }").is_err());
    }

    #[test]
    fn old_stored_content_loads_and_new_round_trips() {
        let old: crate::message::Content = serde_json::from_str(r#"{"body":"x"}"#).unwrap();
        assert!(old.twilio.is_none());
        assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"body":"x"}"#);
    }
}
