//! Where the `handlebars` crate and handlebars.js part ways, disparo sides with handlebars.js,
//! the language marketers write and test their templates in (docs/templates.md, "Differences
//! from handlebars.js"; `tests/template_differential.rs` renders every case with both).
//!
//! - Values print as JavaScript's `String(value)` does: `10.0` as `10`, `0.000001` as is, a
//!   list as `a,b,3`, an object as `[object Object]` (the crate prints `10.0`, `1e-6`,
//!   `[a, b, 3]`, `[object]`). Each printed `{{path}}` is rewritten at load into a call of
//!   the `__print` helper, which formats the value; escaping still applies as before.
//! - `#if`, `#unless` and `#with` use JavaScript's truthiness: an empty object is true.
//! - `lookup` of a missing key is "no value", so `{{default (lookup greetings locale) "Oi"}}`
//!   falls back and `#if (lookup ..)` is false; printed, it is the recipient's error, named.
//! - Objects iterate integer-like keys first, ascending, as JavaScript objects do.
//! - What the crate cannot parse or render the way handlebars.js does (mustache sections
//!   `{{#field}}`, inverse sections `{{^field}}`, `{{.}}`, dynamic and quoted partial names)
//!   is refused when the template loads, with the construct to write instead.

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{
    BlockContext, BlockParams, Context, Handlebars, Helper, HelperDef, HelperResult, Output,
    RenderContext, RenderError, RenderErrorReason, Renderable, ScopedJson, Template,
};
use serde_json::{Map, Number, Value};

/// The helper every printed `{{path}}` becomes.
const PRINT: &str = "__print";

/// Every helper a registry from [`super::registry`] knows: the crate's built-ins and
/// disparo's own. A `{{name}}` with one of these names calls the helper, as before.
const HELPERS: &[&str] = &[
    "if",
    "unless",
    "each",
    "with",
    "lookup",
    "raw",
    "log",
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "and",
    "or",
    "not",
    "len",
    PRINT,
    "upper",
    "lower",
    "default",
    "format_date",
];

fn is_helper(name: &str) -> bool {
    HELPERS.contains(&name)
}

/// The largest integer a JavaScript number holds exactly (2^53).
const JS_SAFE_INTEGER: u64 = 9_007_199_254_740_992;

/// A construct refused at load, with its 1-based line in the text and what to write instead.
#[derive(Debug)]
pub struct Unsupported {
    pub line: usize,
    pub message: String,
    pub hint: &'static str,
}

/// Why a text could not be registered.
#[derive(Debug)]
pub enum CompileError {
    Syntax(handlebars::TemplateError),
    Unsupported(Unsupported),
}

/// Registers `src` under `name` in `reg` (a template or a partial: the crate keeps both in
/// one namespace), checked and rewritten for handlebars.js's behaviour.
pub fn register(reg: &mut Handlebars<'static>, name: &str, src: &str) -> Result<(), CompileError> {
    if let Some(u) = unsupported_syntax(src) {
        return Err(CompileError::Unsupported(u));
    }
    let mut template =
        Template::compile_with_name(src, name.to_owned()).map_err(CompileError::Syntax)?;
    if let Some(u) = rewrite(&mut template) {
        return Err(CompileError::Unsupported(u));
    }
    reg.register_template(name, template);
    Ok(())
}

/// Installs the helpers that give handlebars.js's behaviour (`__print`, `if`, `unless`,
/// `with`, `lookup`), replacing the crate's own.
pub fn register_helpers(h: &mut Handlebars<'static>) {
    h.register_helper(PRINT, Box::new(Print));
    h.register_helper("if", Box::new(If { positive: true }));
    h.register_helper("unless", Box::new(If { positive: false }));
    h.register_helper("with", Box::new(With));
    h.register_helper("lookup", Box::new(Lookup));
}

/// JavaScript's `String(value)` for a value Handlebars prints; `None` for an integer beyond
/// 2^53, which handlebars.js would print rounded (a customer number must not change).
pub fn js_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(n)?,
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // Array.prototype.join prints null and undefined as nothing.
                if !item.is_null() {
                    out.push_str(&js_text(item)?);
                }
            }
            out
        }
        Value::Object(_) => "[object Object]".to_owned(),
    })
}

/// JavaScript's `Number.prototype.toString()` for a JSON number; `None` beyond 2^53.
pub fn js_number(n: &Number) -> Option<String> {
    if let Some(i) = n.as_i64() {
        return (i.unsigned_abs() <= JS_SAFE_INTEGER).then(|| i.to_string());
    }
    if let Some(u) = n.as_u64() {
        return (u <= JS_SAFE_INTEGER).then(|| u.to_string());
    }
    let f = n.as_f64()?;
    if f == f.trunc() && f.abs() <= JS_SAFE_INTEGER as f64 {
        // -0 prints as 0 in JavaScript.
        return Some(format!("{}", f as i64));
    }
    let abs = f.abs();
    if (1e-6..1e21).contains(&abs) {
        // Rust's Display is the shortest round-trip digits in plain notation, as JS here.
        Some(format!("{f}"))
    } else if abs >= 1e21 {
        None
    } else {
        // JavaScript writes an explicit sign on the exponent: 1e-7.
        Some(format!("{f:e}"))
    }
}

/// JavaScript's truthiness as Handlebars's `#if` applies it (`Utils.isEmpty`): false, null,
/// "", 0 (unless `includeZero`), NaN and empty lists are false; every object is true.
pub fn js_truthy(v: &Value, include_zero: bool) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => include_zero || n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// Reorders every object as JavaScript enumerates its keys: integer-like keys ("0", "17")
/// first in ascending order, then the others in insertion order. Leaves objects without
/// such keys as they are (the common case costs one scan).
pub fn js_key_order(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(js_key_order),
        Value::Object(m) => {
            m.values_mut().for_each(js_key_order);
            if m.keys().any(|k| array_index(k).is_some()) {
                let old = std::mem::take(m);
                let (mut ints, rest): (Vec<_>, Vec<_>) =
                    old.into_iter().partition(|(k, _)| array_index(k).is_some());
                ints.sort_by_key(|(k, _)| array_index(k));
                let mut ordered = Map::with_capacity(ints.len() + rest.len());
                ordered.extend(ints);
                ordered.extend(rest);
                *m = ordered;
            }
        }
        _ => {}
    }
}

/// A key JavaScript treats as an array index: a canonical decimal below 2^32 - 1.
fn array_index(k: &str) -> Option<u32> {
    let n: u32 = k.parse().ok()?;
    (n < u32::MAX && n.to_string() == k).then_some(n)
}

/// Constructs the crate parses differently from handlebars.js, or not at all, found in the
/// source: `{{^name}}` (an inverse section; `{{^}}` alone is `else`), `{{.}}`,
/// `{{> (expr)}}` and `{{> "name"}}`.
fn unsupported_syntax(src: &str) -> Option<Unsupported> {
    let mut rest = src;
    let mut offset = 0;
    // The line of byte `counted`, advanced as tags are found: one pass however long the text.
    let (mut line, mut counted) = (1, 0);
    while let Some(at) = rest.find("{{") {
        let open = &rest[at + 2..];
        let inner = open.trim_start_matches(['{', '~', '&']).trim_start();
        line += src[counted..offset + at].matches('\n').count();
        counted = offset + at;
        let close = open.find("}}").unwrap_or(open.len());
        let tag = open[..close].trim_matches(['~', ' ', '\t', '\r', '\n']);
        if open.starts_with('!') {
            // Comments may hold anything; `{{!-- --}}` ends at `--}}`.
            let end = if open.starts_with("!--") {
                open.find("--}}").map(|e| e + 4)
            } else {
                // An unclosed `{{!` runs to the end of the text.
                open.find("}}").map(|e| e + 2)
            };
            let skip = at + 2 + end.unwrap_or(open.len());
            offset += skip;
            rest = &rest[skip..];
            continue;
        }
        if at > 0 && rest.as_bytes()[at - 1] == b'\\' {
            // An escaped mustache is text.
            offset += at + 2;
            rest = &rest[at + 2..];
            continue;
        }
        if let Some(name) = inner.strip_prefix('^') {
            let name = name.trim_start_matches('~').trim();
            let name = name
                .split("}}")
                .next()
                .unwrap_or("")
                .trim_end_matches('~')
                .trim();
            if !name.is_empty() {
                return Some(Unsupported {
                    line,
                    message: format!("`{{{{^{name}}}}}` (an inverse section) is not supported"),
                    hint: "write {{#unless field}}…{{/unless}}: it renders when the field is missing, false, empty or an empty list, as the inverse section does",
                });
            }
        }
        if tag == "." {
            return Some(Unsupported {
                line,
                message: "`{{.}}` is not supported".into(),
                hint: "write {{this}}, which is the same value",
            });
        }
        if let Some(p) = tag.strip_prefix('>') {
            let p = p.trim_start();
            if p.starts_with('(') {
                return Some(Unsupported {
                    line,
                    message: format!(
                        "`{{{{{tag}}}}}` (a partial chosen when rendered) is not supported"
                    ),
                    hint: "name the partial: {{> footer}}; to choose by a field, write {{#if}} branches that each include one",
                });
            }
            if p.starts_with('"') || p.starts_with('\'') {
                return Some(Unsupported {
                    line,
                    message: format!("`{{{{{tag}}}}}` (a quoted partial name) is not supported"),
                    hint: "write the name without quotes: {{> footer}}",
                });
            }
        }
        offset += at + 2;
        rest = &rest[at + 2..];
    }
    None
}

/// Rewrites each printed `{{path}}` into `{{__print path}}` and refuses mustache sections
/// (`{{#field}}…{{/field}}` where `field` is no helper), recursively through blocks.
fn rewrite(t: &mut Template) -> Option<Unsupported> {
    for (i, e) in t.elements.iter_mut().enumerate() {
        let line = t.mapping.get(i).map(|m| m.0).unwrap_or(1);
        match e {
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                let printable = !ht.block && ht.params.is_empty() && ht.hash.is_empty();
                if printable
                    && let Parameter::Path(p) = &ht.name
                    && !is_helper(raw(p))
                {
                    let value = std::mem::replace(&mut ht.name, Parameter::Name(PRINT.into()));
                    ht.params.push(value);
                }
            }
            TemplateElement::HelperBlock(ht) => {
                let name = match &ht.name {
                    Parameter::Path(p) => Some(raw(p)),
                    Parameter::Name(n) => Some(n.as_str()),
                    _ => None,
                };
                if let Some(name) = name
                    && !is_helper(name)
                    && ht.params.is_empty()
                {
                    return Some(Unsupported {
                        line,
                        message: format!("`{{{{#{name}}}}}` (a mustache section) is not supported"),
                        hint: "say what the block does: {{#if field}} (render when present), {{#each list}} (once per item) or {{#with object}} (inside an object)",
                    });
                }
                for inner in ht.template.iter_mut().chain(ht.inverse.iter_mut()) {
                    if let Some(u) = rewrite(inner) {
                        return Some(u);
                    }
                }
            }
            TemplateElement::DecoratorBlock(dt) | TemplateElement::PartialBlock(dt) => {
                if let Some(inner) = dt.template.as_mut()
                    && let Some(u) = rewrite(inner)
                {
                    return Some(u);
                }
            }
            _ => {}
        }
    }
    None
}

/// A path as written (`user.name`, `this`, `@index`): the enum's variants are public, its
/// accessor is not.
fn raw(p: &handlebars::Path) -> &str {
    match p {
        handlebars::Path::Relative((_, raw)) | handlebars::Path::Local((_, _, raw)) => raw,
    }
}

/// `{{__print value}}`: the value as handlebars.js prints it. Returning the text (rather
/// than writing it) keeps the crate's escaping of `{{…}}` and not of `{{{…}}}`.
struct Print;

impl HelperDef for Print {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let p = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex(PRINT, 0))?;
        if p.is_value_missing() {
            return if r.strict_mode() {
                Err(RenderErrorReason::MissingVariable(p.relative_path().cloned()).into())
            } else {
                Ok(ScopedJson::Derived(Value::String(String::new())))
            };
        }
        match js_text(p.value()) {
            Some(text) => Ok(ScopedJson::Derived(Value::String(text))),
            None => Err(RenderErrorReason::Other(format!(
                "`{}` is {}, beyond what a JavaScript number holds exactly (2^53): handlebars.js would print it rounded; write it as a string (in quotes) in the audience file",
                p.relative_path().map(String::as_str).unwrap_or("a value"),
                p.value()
            ))
            .into()),
        }
    }
}

/// `#if` / `#unless` with JavaScript's truthiness (the crate counts `{}` as false).
struct If {
    positive: bool,
}

impl HelperDef for If {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let name = if self.positive { "if" } else { "unless" };
        let param = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex(name, 0))?;
        let include_zero = h
            .hash_get("includeZero")
            .and_then(|v| v.value().as_bool())
            .unwrap_or(false);
        let truthy = !param.is_value_missing() && js_truthy(param.value(), include_zero);
        let chosen = if truthy == self.positive {
            h.template()
        } else {
            h.inverse()
        };
        match chosen {
            Some(t) => t.render(r, ctx, rc, out),
            None => Ok(()),
        }
    }
}

/// `#with` with JavaScript's truthiness (an empty object is entered, as in handlebars.js).
struct With;

impl HelperDef for With {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let param = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("with", 0))?;
        if param.is_value_missing() || !js_truthy(param.value(), false) {
            return match h.inverse() {
                Some(t) => t.render(r, ctx, rc, out),
                None if r.strict_mode() && param.is_value_missing() => {
                    Err(RenderErrorReason::MissingVariable(param.relative_path().cloned()).into())
                }
                None => Ok(()),
            };
        }
        let mut block = BlockContext::new();
        match param.context_path() {
            Some(path) => block.base_path_mut().clone_from(path),
            None => block.set_base_value(param.value().clone()),
        }
        // @index/@key of an enclosing #each stay visible, as in handlebars.js.
        if let Some(parent) = rc.block() {
            block
                .local_variables_mut()
                .clone_from(parent.local_variables());
        }
        if let Some(name) = h.block_param() {
            let mut params = BlockParams::new();
            // The block's base is the value already: the parameter is the path to it, empty.
            match param.context_path() {
                Some(_) => params.add_path(name, Vec::new())?,
                None => params.add_value(name, param.value().clone())?,
            }
            block.set_block_params(params);
        }
        rc.push_block(block);
        let result = match h.template() {
            Some(t) => t.render(r, ctx, rc, out),
            None => Ok(()),
        };
        rc.pop_block();
        result
    }
}

/// `lookup`: a missing key is "no value" (so `default` and `#if` can handle it); printed
/// directly, it is the recipient's error, naming what was looked up.
struct Lookup;

impl Lookup {
    fn find<'rc>(h: &Helper<'rc>) -> Result<Option<Value>, RenderError> {
        let collection = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("lookup", 0))?;
        let index = h
            .param(1)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("lookup", 1))?;
        Ok(match collection.value() {
            Value::Array(v) => index
                .value()
                .as_u64()
                .or_else(|| index.value().as_str().and_then(|s| s.parse().ok()))
                .and_then(|u| v.get(u as usize))
                .cloned(),
            Value::Object(m) => match index.value() {
                Value::String(k) => m.get(k).cloned(),
                other => js_text(other).and_then(|k| m.get(&k).cloned()),
            },
            _ => None,
        })
    }
}

impl HelperDef for Lookup {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        Ok(match Self::find(h)? {
            Some(v) => ScopedJson::Derived(v),
            None => ScopedJson::Missing,
        })
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        _: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let text = match Self::find(h)? {
            Some(v) => js_text(&v).ok_or_else(|| {
                RenderErrorReason::Other(format!(
                    "lookup gave {v}, beyond what a JavaScript number holds exactly (2^53); write it as a string"
                ))
            })?,
            None if r.strict_mode() => {
                let what = h
                    .param(0)
                    .and_then(|p| p.relative_path().cloned())
                    .unwrap_or_else(|| "a value".into());
                let key = h.param(1).and_then(|p| js_text(p.value())).unwrap_or_default();
                return Err(RenderErrorReason::MissingVariable(Some(format!("{what}.{key}"))).into());
            }
            None => String::new(),
        };
        let text = if rc.is_disable_escape() {
            text
        } else {
            r.get_escape_fn()(&text)
        };
        out.write(&text)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let n = |s: &str| js_text(&serde_json::from_str(s).unwrap());
        assert_eq!(n("10.0").as_deref(), Some("10"));
        assert_eq!(n("-0.0").as_deref(), Some("0"));
        assert_eq!(n("3.14").as_deref(), Some("3.14"));
        assert_eq!(n("0.000001").as_deref(), Some("0.000001"));
        assert_eq!(n("1e-7").as_deref(), Some("1e-7"));
        assert_eq!(n("123456.789").as_deref(), Some("123456.789"));
        assert_eq!(n("9007199254740992").as_deref(), Some("9007199254740992"));
        assert_eq!(n("9007199254740993"), None);
        assert_eq!(n("1e21"), None);
        assert_eq!(n("[1, null, \"a\", [2, 3]]").as_deref(), Some("1,,a,2,3"));
        assert_eq!(n("{}").as_deref(), Some("[object Object]"));
    }

    #[test]
    fn integer_like_keys_come_first_in_ascending_order() {
        let mut v: Value =
            serde_json::from_str(r#"{"b":1,"10":2,"2":3,"a":{"1":0,"x":1,"0":2},"02":4}"#).unwrap();
        js_key_order(&mut v);
        assert_eq!(
            v.to_string(),
            r#"{"2":3,"10":2,"b":1,"a":{"0":2,"1":0,"x":1},"02":4}"#
        );
    }

    #[test]
    fn unsupported_constructs_are_found_with_their_line() {
        let u = unsupported_syntax("a\n{{^items}}none{{/items}}").unwrap();
        assert_eq!(u.line, 2);
        assert!(u.message.contains("{{^items}}"), "{}", u.message);
        assert!(unsupported_syntax("{{#if a}}x{{^}}y{{/if}}").is_none());
        assert!(unsupported_syntax("{{! {{^x}} }}\\{{^y}}").is_none());
        assert!(unsupported_syntax("{{.}}").is_some());
        assert!(unsupported_syntax("{{> (lookup . 'p')}}").is_some());
        assert!(unsupported_syntax("{{> \"footer\"}}").is_some());
        assert!(unsupported_syntax("{{> footer}} {{this}}").is_none());
        // An unclosed comment (found by tests/loaders_fuzz.rs): the rest is the comment.
        assert!(unsupported_syntax("uJpe[r first_name}{{!uppe[r fi").is_none());
        assert!(unsupported_syntax("{{!").is_none());
        assert!(unsupported_syntax("x {{!-- open").is_none());
    }
}
