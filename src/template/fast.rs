//! A pre-split form of templates that are plain variable substitution (`Hi {{first_name}}!`),
//! rendered without Handlebars' per-call machinery: literal text and simple variable paths
//! only. Anything else (helpers, blocks, partials, comments, whitespace control, `this`,
//! `../`, brackets, backslashes) is not compiled and Handlebars renders it.
//!
//! The output must be byte-identical to Handlebars for what this handles. To stay so,
//! [`Fast::render_into`] renders only values whose Handlebars rendering is unambiguous
//! (strings, numbers, booleans) and says "fall back" for everything else, including a missing
//! variable, so strict-mode errors always come from Handlebars itself. A compiled template is
//! also checked against Handlebars once at load time (see `TemplateSet`).

use serde_json::Value;

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Box<str>),
    /// A variable path (`a` or `a.b`); `escape` for `{{x}}` in an HTML-escaping registry.
    Var {
        path: Box<[Box<str>]>,
        escape: bool,
    },
}

/// A template compiled to literal text and variable lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fast {
    segs: Vec<Seg>,
    /// Total literal bytes: a capacity hint for the output.
    lit_len: usize,
    vars: usize,
}

/// Names Handlebars would not treat as a plain context lookup.
const RESERVED: &[&str] = &["this", "true", "false", "null", "undefined", "else"];

fn is_simple_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|seg| {
            let mut chars = seg.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !RESERVED.contains(&seg)
        })
}

impl Fast {
    /// Compiles `src` when it is only literal text and `{{path}}` / `{{{path}}}` expressions.
    /// `escape_html`: the registry escapes `{{x}}` (the email HTML part).
    pub(crate) fn compile(src: &str, escape_html: bool) -> Option<Fast> {
        if src.contains('\\') {
            return None;
        }
        let mut segs = Vec::new();
        let mut lit_len = 0;
        let mut vars = 0;
        let mut rest = src;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                let lit = &rest[..open];
                if lit.contains("}}") {
                    return None;
                }
                lit_len += lit.len();
                segs.push(Seg::Lit(lit.into()));
            }
            let after = &rest[open + 2..];
            let (inner, escape, tail) = if let Some(t) = after.strip_prefix('{') {
                if t.starts_with('{') {
                    return None;
                }
                let close = t.find("}}}")?;
                (&t[..close], false, &t[close + 3..])
            } else {
                let close = after.find("}}")?;
                (&after[..close], escape_html, &after[close + 2..])
            };
            let path = inner.trim();
            if !is_simple_path(path) {
                return None;
            }
            segs.push(Seg::Var {
                path: path.split('.').map(Into::into).collect(),
                escape,
            });
            vars += 1;
            rest = tail;
        }
        if !rest.is_empty() {
            if rest.contains("}}") {
                return None;
            }
            lit_len += rest.len();
            segs.push(Seg::Lit(rest.into()));
        }
        Some(Fast {
            segs,
            lit_len,
            vars,
        })
    }

    /// The variable paths the template uses, in order (`a.b` joined with dots).
    pub(crate) fn paths(&self) -> impl Iterator<Item = String> + '_ {
        self.segs.iter().filter_map(|s| match s {
            Seg::Var { path, .. } => Some(path.join(".")),
            Seg::Lit(_) => None,
        })
    }

    /// A capacity that fits most renderings without reallocating or wasting much.
    pub(crate) fn capacity_hint(&self) -> usize {
        self.lit_len + 16 * self.vars
    }

    /// Appends the rendering to `out`. `false` means "not handled here" (a missing variable,
    /// a null, an array or an object): `out` may hold a partial rendering and the caller must
    /// discard it and ask Handlebars.
    pub(crate) fn render_into(&self, ctx: &dyn super::Lookup, out: &mut String) -> bool {
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Var { path, escape } => {
                    let Some(mut v) = ctx.lookup(&path[0]) else {
                        return false;
                    };
                    for key in path[1..].iter() {
                        match v {
                            Value::Object(m) => match m.get(&**key) {
                                Some(x) => v = x,
                                None => return false,
                            },
                            _ => return false,
                        }
                    }
                    match v {
                        Value::String(s) if *escape => escape_html_into(s, out),
                        Value::String(s) => out.push_str(s),
                        // As handlebars.js prints numbers; beyond 2^53, Handlebars says why.
                        Value::Number(n) => match super::compat::js_number(n) {
                            Some(text) => out.push_str(&text),
                            None => return false,
                        },
                        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                        Value::Null | Value::Array(_) | Value::Object(_) => return false,
                    }
                }
            }
        }
        true
    }
}

/// The escaping of Handlebars' default escape fn (`handlebars::html_escape`), appended.
fn escape_html_into(s: &str, out: &mut String) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'&' => "&amp;",
            b'\'' => "&#x27;",
            b'`' => "&#x60;",
            b'=' => "&#x3D;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_only_plain_substitution() {
        for ok in [
            "",
            "plain",
            "Hi {{a}}!",
            "{{ a }}{{{b}}}{{c.d}}",
            "a } b { c",
            "{{_x1}}",
        ] {
            assert!(Fast::compile(ok, false).is_some(), "{ok:?}");
        }
        for no in [
            "{{#if a}}x{{/if}}",
            "{{> p}}",
            "{{! c}}",
            "{{~a}}",
            "{{a~}}",
            "{{upper a}}",
            "{{this}}",
            "{{../a}}",
            "{{@index}}",
            "{{[a b]}}",
            "\\{{a}}",
            "{{a",
            "{{{{raw}}}}",
            "{{&a}}",
            "{{1}}",
            "{{a.1}}",
            "{{else}}",
            "{{a-b}}",
            "x }} y",
            "{{a.}}",
        ] {
            assert!(Fast::compile(no, false).is_none(), "{no:?}");
        }
    }

    #[test]
    fn escape_matches_handlebars() {
        let s = "Tom & Jerry <b>\"q\" 'a' `t` a=b é 😀";
        let mut out = String::new();
        escape_html_into(s, &mut out);
        assert_eq!(out, handlebars::html_escape(s));
    }
}
