//! How deep a template nests, read from its text before the Handlebars parser sees it.
//!
//! Handlebars (the parser and the renderer) recurses once per nested block and per included
//! partial and has no limit of its own: 10,000 nested `{{#if}}` or two partials that include
//! each other overflow the stack, which aborts the process. So every template and partial is
//! scanned here first: blocks may nest [`MAX_DEPTH`] deep, counting the levels a partial adds
//! where it is included, and partials may not include each other (or themselves), directly or
//! through a partial chosen when rendered (`{{> (expr)}}`), which could be any of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diag::Problem;

/// Levels of blocks and partial inclusions a message may nest. Templates people write nest a
/// handful; a debug build renders a few hundred levels in the planning thread's stack.
pub const MAX_DEPTH: usize = 64;

/// A `{{> name}}` (or `{{#> name}}`) in a template's text.
#[derive(Debug, Clone)]
pub struct Include {
    pub line: u64,
    pub column: u64,
    /// The blocks open around it.
    pub depth: usize,
    /// `None`: chosen when rendered (`{{> (lookup . "x")}}`).
    pub name: Option<String>,
    /// A partial block (`{{#> name}}fallback{{/name}}`), which renders its fallback when the
    /// partial does not exist.
    pub block: bool,
}

/// What [`scan`] found in one template text.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The deepest block nesting and where the block that reached it opens.
    pub depth: usize,
    pub deepest_at: (u64, u64),
    /// The first block opening deeper than [`MAX_DEPTH`], if any.
    pub too_deep: Option<(u64, u64)>,
    pub includes: Vec<Include>,
    /// Names of the inline partials it defines (`{{#*inline "name"}}`), which its own
    /// `{{> name}}` may use.
    pub inline: Vec<String>,
}

/// Reads the block structure of a Handlebars text in one pass: `{{#..}}`, `{{^..}}` (not the
/// bare `{{^}}`) and `{{#> ..}}` open a level, `{{/..}}` closes one; comments, raw blocks and
/// escaped `\{{` are skipped. Malformed text is left to the parser to report.
pub fn scan(src: &str) -> Scan {
    let b = src.as_bytes();
    let mut out = Scan::default();
    // Line and column (in characters) of the byte `counted`, advanced as tags are found: one
    // pass over the text however long its lines.
    let (mut line, mut column, mut counted) = (1u64, 1u64, 0usize);
    let mut depth = 0usize;
    let mut i = 0usize;
    while let Some(at) = find(b, i, b"{{") {
        for c in src[counted..at].chars() {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        counted = at;
        let pos = (line, column);
        if at > 0 && b[at - 1] == b'\\' {
            i = at + 2;
            continue;
        }
        if b[at..].starts_with(b"{{{{") {
            // A raw block: its content is text up to the closing `{{{{/name}}}}`.
            i = find(b, at + 4, b"{{{{/").map_or(b.len(), |e| e + 5);
            continue;
        }
        let mut j = at + 2;
        if b.get(j) == Some(&b'~') {
            j += 1;
        }
        let end =
            |from: usize, close: &[u8]| find(b, from, close).map_or(b.len(), |e| e + close.len());
        match b.get(j) {
            Some(b'!') if b[j..].starts_with(b"!--") => {
                i = end(j, b"--}}");
                continue;
            }
            Some(b'!') => {
                i = end(j, b"}}");
                continue;
            }
            Some(b'#') | Some(b'^') => {
                let bare_else = b[j] == b'^'
                    && (b[j + 1..].starts_with(b"}}") || b[j + 1..].starts_with(b"~}}"));
                if !bare_else {
                    depth += 1;
                    if depth > out.depth {
                        out.depth = depth;
                        out.deepest_at = pos;
                    }
                    if depth > MAX_DEPTH && out.too_deep.is_none() {
                        out.too_deep = Some(pos);
                    }
                    if b[j] == b'#' && b.get(j + 1) == Some(&b'>') {
                        out.includes.push(include(src, j + 2, pos, depth - 1, true));
                    }
                    if b[j..].starts_with(b"#*inline") {
                        let rest = src[j + 8..].trim_start();
                        if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
                            let name: String = rest[1..].chars().take_while(|c| *c != q).collect();
                            out.inline.push(name);
                        }
                    }
                }
            }
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'>') => out.includes.push(include(src, j + 1, pos, depth, false)),
            _ => {}
        }
        i = end(j, b"}}");
    }
    out
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn include(
    src: &str,
    from: usize,
    (line, column): (u64, u64),
    depth: usize,
    block: bool,
) -> Include {
    let rest = src[from..].trim_start();
    let name = if rest.starts_with('(') {
        None
    } else {
        let n: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '}' && *c != '~')
            .collect();
        Some(n.trim_matches(|c| c == '"' || c == '\'').to_owned())
    };
    Include {
        line,
        column,
        depth,
        name,
        block,
    }
}

/// A scanned partial: its name, file and what it includes.
pub struct Partial {
    pub name: String,
    pub file: PathBuf,
    pub scan: Scan,
}

/// The levels each partial adds where it is included (itself and what it includes), or the
/// problems: partials that include each other, a partial choosing one when rendered, a
/// partial nesting deeper than [`MAX_DEPTH`] with what it includes.
pub fn partial_depths(partials: &[Partial]) -> Result<HashMap<String, usize>, Vec<Problem>> {
    let index: HashMap<&str, usize> = partials
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let mut problems = Vec::new();
    for p in partials {
        if let Some(inc) = p.scan.includes.iter().find(|i| i.name.is_none()) {
            problems.push(
                Problem::new(format!(
                    "partial {:?} includes a partial chosen when rendered ({{{{> (...)}}}}), which could be any partial, {:?} itself included: partials that include each other never end",
                    p.name, p.name
                ))
                .in_file(&p.file)
                .at(inc.line, inc.column)
                .hint("name the partial it includes (`{{> name}}`); a template (not a partial) may choose one when rendered"),
            );
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Depth-first, with the path on a stack: a partial met again on its own path closes a loop.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done(usize),
    }
    let mut marks = vec![Mark::New; partials.len()];
    fn visit(
        at: usize,
        partials: &[Partial],
        index: &HashMap<&str, usize>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        problems: &mut Vec<Problem>,
    ) -> usize {
        match marks[at] {
            Mark::Done(d) => return d,
            Mark::OnPath => return 0,
            Mark::New => {}
        }
        marks[at] = Mark::OnPath;
        path.push(at);
        let p = &partials[at];
        let mut depth = p.scan.depth;
        for inc in &p.scan.includes {
            let Some(&next) = inc.name.as_deref().and_then(|n| index.get(n)) else {
                continue;
            };
            if marks[next] == Mark::OnPath {
                let from = path.iter().position(|&x| x == next).unwrap_or(0);
                let mut names: Vec<&str> = path[from..]
                    .iter()
                    .map(|&x| partials[x].name.as_str())
                    .collect();
                names.push(partials[next].name.as_str());
                problems.push(
                    Problem::new(format!(
                        "partials include each other ({}): rendering would never end",
                        names.join(" → ")
                    ))
                    .in_file(&p.file)
                    .at(inc.line, inc.column)
                    .hint("remove the inclusion that closes the loop; a partial may include others, never one that leads back to it"),
                );
                continue;
            }
            let below = visit(next, partials, index, marks, path, problems);
            depth = depth.max(inc.depth + 1 + below);
        }
        path.pop();
        marks[at] = Mark::Done(depth);
        depth
    }
    let mut depths = HashMap::new();
    for at in 0..partials.len() {
        let d = visit(
            at,
            partials,
            &index,
            &mut marks,
            &mut Vec::new(),
            &mut problems,
        );
        depths.insert(partials[at].name.clone(), d);
    }
    if problems.is_empty() {
        Ok(depths)
    } else {
        Err(problems)
    }
}

/// How deep a template nests with the partials it includes (`depths` from
/// [`partial_depths`]); a partial chosen when rendered counts as the deepest of them.
pub fn total_depth(scan: &Scan, depths: &HashMap<String, usize>) -> usize {
    let deepest = depths.values().copied().max().unwrap_or(0);
    scan.includes
        .iter()
        .map(|inc| {
            let below = match &inc.name {
                Some(n) => depths.get(n).copied().unwrap_or(0),
                None => deepest,
            };
            inc.depth + 1 + below
        })
        .fold(scan.depth, usize::max)
}

/// The problem of a text whose own blocks nest deeper than [`MAX_DEPTH`].
pub fn too_deep(file: &Path, scan: &Scan, line_offset: u64) -> Option<Problem> {
    let (line, column) = scan.too_deep?;
    Some(
        Problem::new(format!(
            "blocks nested deeper than {MAX_DEPTH} (this block opens level {}; the text nests {} deep)",
            MAX_DEPTH + 1,
            scan.depth
        ))
        .in_file(file)
        .at(line + line_offset, column)
        .hint("nest fewer blocks (`{{#if}}`, `{{#each}}`, ...): combine conditions, or move parts into partials; each level costs stack when rendered"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_blocks_and_finds_includes() {
        let s = scan(
            "a {{#if x}}\n {{^y}}{{> p}}{{^}}{{/y}}{{/if}} {{!-- {{#no}} --}} \\{{#no}} {{#> q}}f{{/q}} {{> (lookup . \"z\")}}",
        );
        assert_eq!(s.depth, 2);
        assert_eq!(s.deepest_at, (2, 2));
        let inc: Vec<(Option<&str>, usize, bool)> = s
            .includes
            .iter()
            .map(|i| (i.name.as_deref(), i.depth, i.block))
            .collect();
        assert_eq!(
            inc,
            vec![
                (Some("p"), 2, false),
                (Some("q"), 0, true),
                (None, 0, false)
            ]
        );
        let deep = scan(&"{{#if a}}".repeat(MAX_DEPTH + 1));
        assert_eq!(deep.too_deep, Some((1, 1 + 9 * MAX_DEPTH as u64)));
    }

    #[test]
    fn loops_between_partials_are_found() {
        let part = |name: &str, text: &str| Partial {
            name: name.into(),
            file: format!("partials/{name}.hbs").into(),
            scan: scan(text),
        };
        let err = partial_depths(&[part("a", "{{> b}}"), part("b", "{{#if x}}{{> a}}{{/if}}")])
            .unwrap_err();
        assert!(err[0].message.contains("a → b → a"), "{err:?}");
        let ok = partial_depths(&[
            part("a", "{{#if x}}{{> b}}{{/if}}"),
            part("b", "{{#if y}}z{{/if}}"),
        ])
        .unwrap();
        assert_eq!(ok["a"], 3);
        assert_eq!(total_depth(&scan("{{#each l}}{{> a}}{{/each}}"), &ok), 5);
    }
}
