//! Located problems in user files: what is wrong, where (file, line, column, row, field) and
//! what to do about it. Every loader reports through [`Problem`] so `validate` can list them
//! all and other commands can stop at the first one with the same text.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a user's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: Option<PathBuf>,
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// For audiences: the record's row number (1 = the first recipient).
    pub row: Option<u64>,
    /// The key, column or template variable concerned.
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The lines around the problem, `-->`-headed, as compilers show them.
    pub excerpt: Option<String>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Problem {
        Problem {
            file: None,
            line: None,
            column: None,
            row: None,
            field: None,
            message: message.into(),
            hint: None,
            excerpt: None,
        }
    }
    pub fn in_file(mut self, file: impl AsRef<Path>) -> Problem {
        self.file = Some(file.as_ref().to_path_buf());
        self
    }
    pub fn at(mut self, line: u64, column: u64) -> Problem {
        if line > 0 {
            self.line = Some(line);
            self.column = (column > 0).then_some(column);
        }
        self
    }
    pub fn at_line(mut self, line: u64) -> Problem {
        if line > 0 {
            self.line = Some(line);
        }
        self
    }
    pub fn row(mut self, row: u64) -> Problem {
        self.row = Some(row);
        self
    }
    pub fn field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }
    /// Attaches a location only when the problem has none yet.
    pub fn or_at(self, line: u64, column: u64) -> Problem {
        if self.line.is_some() {
            self
        } else {
            self.at(line, column)
        }
    }

    /// `file:line:col` (as much of it as is known), the form editors and terminals link.
    pub fn location(&self) -> String {
        let mut s = match &self.file {
            Some(f) => f.display().to_string(),
            None => String::new(),
        };
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
            if let Some(c) = self.column {
                s.push_str(&format!(":{c}"));
            }
        }
        s
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loc = self.location();
        if !loc.is_empty() {
            write!(f, "{loc}: ")?;
        }
        if let Some(row) = self.row {
            write!(f, "row {row}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(x) = &self.excerpt {
            write!(f, "\n{}", x.trim_end())?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// Turns a YAML parse/type error into a located problem, keeping the parser's excerpt of the
/// lines around it (with the real file name) and dropping its own location prefix, which the
/// problem's `file:line:col` already says.
pub fn yaml_problem(file: &Path, err: &serde_saphyr::Error) -> Problem {
    let (line, col) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let plain = err.without_snippet().render_with_options(
        serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off },
    );
    let message = strip_location_prefix(plain.trim())
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    let message = match message.rfind(" at line ") {
        Some(i) if message[i..].contains("column") => message[..i].to_owned(),
        _ => message,
    };
    let name = file.display().to_string();
    let rendered =
        err.render_with_options(serde_saphyr::render_options! { source_name: Some(name.as_str()) });
    let excerpt = rendered.find(" --> ").map(|i| rendered[i..].to_owned());
    let hint = if message.contains("unknown field") {
        "check the spelling of the key; the keys this section accepts are listed above"
    } else if message.contains("duplicate") {
        "each key may appear once; remove or merge the repeated one"
    } else {
        "fix the YAML at that line; quote values that contain `:` or `#`"
    };
    let mut p = Problem::new(message).in_file(file).at(line, col).hint(hint);
    p.excerpt = excerpt;
    p
}

/// `error: line 5 column 3: unknown field` → `unknown field`.
fn strip_location_prefix(s: &str) -> String {
    let s = s.strip_prefix("error: ").unwrap_or(s);
    if let Some(rest) = s.strip_prefix("line ")
        && let Some(i) = rest.find(": ")
        && rest[..i]
            .split(" column ")
            .all(|n| n.trim().chars().all(|c| c.is_ascii_digit()))
    {
        return rest[i + 2..].to_owned();
    }
    s.to_owned()
}
