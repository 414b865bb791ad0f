//! Printing data as an aligned table, JSON Lines or CSV, from one description of the rows,
//! and the few colours the human formats use.
//!
//! Data goes to stdout, chatter to stderr. Colours go through `anstream`, which strips them
//! when the stream is not a terminal, when `NO_COLOR` is set (to anything) or `TERM=dumb`;
//! `CLICOLOR_FORCE=1` forces them.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use clap::ValueEnum;
use serde_json::{Map, Value};

use super::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON Lines: one object per line, every field.
    Json,
    /// CSV with a header row.
    Csv,
}

/// The styles the human formats use; stripped when colours are off.
pub mod paint {
    use super::{AnsiColor, Style};

    pub const HEADER: Style = Style::new().bold();
    pub const DIM: Style = Style::new().dimmed();
    pub const OK: Style = AnsiColor::Green.on_default();
    pub const WARN: Style = AnsiColor::Yellow.on_default();
    pub const ERR: Style = AnsiColor::Red.on_default().bold();
    pub const ACCENT: Style = AnsiColor::Cyan.on_default();

    /// `s` wrapped in `style` (the escapes are removed later if colours are off).
    pub fn p(style: Style, s: impl std::fmt::Display) -> String {
        format!("{style}{s}{style:#}")
    }
}

/// The colour a table cell gets from its column and text: states and non-zero failures.
pub fn cell_style(column: &str, text: &str) -> Style {
    match (column, text) {
        ("state" | "status" | "last_outcome" | "outcome", t) => match t {
            "sent" | "active" => paint::OK,
            "failed" | "refused" => paint::ERR,
            "expired" | "paused" | "retry" | "sending" => paint::WARN,
            "skipped" | "cancelled" => paint::DIM,
            _ => Style::new(),
        },
        ("failed", t) if t != "0" && !t.is_empty() => paint::ERR,
        ("expired", t) if t != "0" && !t.is_empty() => paint::WARN,
        ("last_error" | "error", t) if !t.is_empty() => paint::ERR,
        _ => Style::new(),
    }
}

/// Rows of named fields; the table and CSV show `columns` in order, JSON carries every field.
#[derive(Debug, Default)]
pub struct Rows {
    pub columns: Vec<&'static str>,
    /// Narrower columns for the table, when the full set is too wide to read.
    pub table_columns: Option<Vec<&'static str>>,
    pub rows: Vec<Map<String, Value>>,
}

impl Rows {
    pub fn new(columns: &[&'static str]) -> Rows {
        Rows {
            columns: columns.to_vec(),
            table_columns: None,
            rows: Vec::new(),
        }
    }
    /// Shows only `columns` in the table format (CSV and JSON keep everything).
    pub fn table_columns(mut self, columns: &[&'static str]) -> Rows {
        self.table_columns = Some(columns.to_vec());
        self
    }
    pub fn push(&mut self, row: Map<String, Value>) {
        self.rows.push(row);
    }

    /// Prints to stdout.
    pub fn print(&self, format: Format) -> std::io::Result<()> {
        let stdout = anstream::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        self.write(&mut out, format)?;
        out.flush()
    }

    /// Prints to stdout; a closed pipe (`| head`) is not an error.
    pub fn show(&self, format: Format) -> Result<(), CliError> {
        ok_unless_broken(self.print(format))
    }

    pub fn write(&self, out: &mut dyn Write, format: Format) -> std::io::Result<()> {
        match format {
            Format::Json => {
                for r in &self.rows {
                    write_json_line(out, r)?;
                }
                Ok(())
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&self.columns)?;
                for r in &self.rows {
                    w.write_record(self.columns.iter().map(|c| csv_cell(cell(r.get(*c)))))?;
                }
                w.flush()?;
                Ok(())
            }
            Format::Table => self.write_table(out),
        }
    }

    fn write_table(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let columns = self.table_columns.as_ref().unwrap_or(&self.columns);
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                columns
                    .iter()
                    .map(|c| inert(&to_seconds(cell(r.get(*c)))).into_owned())
                    .collect()
            })
            .collect();
        // Numbers line up on the right, like `ls -l` sizes.
        let numeric: Vec<bool> = columns
            .iter()
            .map(|c| {
                self.rows
                    .iter()
                    .any(|r| r.get(*c).is_some_and(Value::is_number))
                    && self
                        .rows
                        .iter()
                        .all(|r| matches!(r.get(*c), None | Some(Value::Null | Value::Number(_))))
            })
            .collect();
        let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |out: &mut dyn Write, vals: &[String], header: bool| -> std::io::Result<()> {
            let mut s = String::new();
            let last = vals.len().saturating_sub(1);
            for (i, ((v, w), col)) in vals.iter().zip(&widths).zip(columns).enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                let pad = w - v.chars().count();
                let style = if header {
                    paint::HEADER
                } else {
                    cell_style(col, v)
                };
                let styled = paint::p(style, v);
                if numeric[i] {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(&styled);
                } else {
                    s.push_str(&styled);
                    if i < last {
                        s.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            writeln!(out, "{}", s.trim_end())
        };
        let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
        line(out, &header, true)?;
        for row in &cells {
            line(out, row, false)?;
        }
        Ok(())
    }
}

/// One JSON object and a newline.
pub fn write_json_line(out: &mut dyn Write, v: &Map<String, Value>) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")
}

/// A row printer that streams JSON Lines and CSV (millions of rows never sit in memory) and
/// collects only for the table, whose widths need every row.
pub struct RowStream<'a> {
    format: Format,
    columns: Vec<&'static str>,
    out: Box<dyn Write + 'a>,
    csv_started: bool,
    table: Rows,
}

impl<'a> RowStream<'a> {
    pub fn new(
        format: Format,
        columns: &[&'static str],
        table_columns: &[&'static str],
        out: Box<dyn Write + 'a>,
    ) -> RowStream<'a> {
        RowStream {
            format,
            columns: columns.to_vec(),
            out,
            csv_started: false,
            table: Rows::new(columns).table_columns(table_columns),
        }
    }

    pub fn push(&mut self, row: Map<String, Value>) -> std::io::Result<()> {
        match self.format {
            Format::Json => write_json_line(&mut self.out, &row),
            Format::Csv => {
                let mut w = csv::WriterBuilder::new().from_writer(&mut self.out);
                if !self.csv_started {
                    w.write_record(&self.columns)?;
                    self.csv_started = true;
                }
                w.write_record(self.columns.iter().map(|c| csv_cell(cell(row.get(*c)))))?;
                w.flush()?;
                Ok(())
            }
            Format::Table => {
                self.table.push(row);
                Ok(())
            }
        }
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        match self.format {
            Format::Table => self.table.write(&mut self.out, Format::Table)?,
            Format::Csv if !self.csv_started => {
                let mut w = csv::Writer::from_writer(&mut self.out);
                w.write_record(&self.columns)?;
                w.flush()?;
            }
            _ => {}
        }
        self.out.flush()
    }
}

/// Maps an output error to the exit status: a closed pipe is fine, anything else internal.
pub fn ok_unless_broken(r: std::io::Result<()>) -> Result<(), CliError> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Internal(format!("cannot write the output: {e}"))),
    }
}

/// An instant with fractional seconds shown to the second, for people (`…T16:30:00Z`);
/// anything else unchanged. JSON and CSV keep the milliseconds.
fn to_seconds(s: String) -> String {
    if s.len() > 21
        && s.ends_with('Z')
        && s.as_bytes().get(19) == Some(&b'.')
        && s.parse::<jiff::Timestamp>().is_ok()
    {
        format!("{}Z", &s[..19])
    } else {
        s
    }
}

/// A JSON value as a table/CSV cell: strings bare, null empty, arrays joined by commas.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| cell(Some(x)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

pub use disparo::inert::{inert, inert_text};

/// A CSV cell a spreadsheet would not run. A cell starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return is a formula to Excel, LibreOffice and Google Sheets (OWASP "CSV
/// injection"): it gets a leading `'`, which they show as text. A cell that is only a number
/// (`-42`, `+5511999990000`, `-0.5`) cannot hold a formula and stays exact, so E.164 phones
/// and negative amounts read back as written (docs/output.md).
pub fn csv_cell(s: String) -> String {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') if !plain_number(&s) => format!("'{s}"),
        _ => s,
    }
}

/// `[+-]digits[.digits][e[+-]digits]` (or `.5`): a number and nothing else.
fn plain_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut n = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Builds a row map from `(key, value)` pairs in order.
#[macro_export]
macro_rules! row {
    ($($k:expr => $v:expr),* $(,)?) => {{
        let mut m = serde_json::Map::new();
        $( m.insert($k.to_string(), serde_json::json!($v)); )*
        m
    }};
}

/// Writes a line of human chatter to stderr unless `--quiet`.
pub fn say(quiet: bool, msg: impl std::fmt::Display) {
    if !quiet {
        anstream::eprintln!("{msg}");
    }
}

/// A duration for people: `350 ms`, `12 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    if secs < 1.0 {
        return format!("{:.0} ms", secs * 1000.0);
    }
    if secs < 60.0 {
        return if secs < 10.0 {
            format!("{secs:.1} s")
        } else {
            format!("{secs:.0} s")
        };
    }
    let s = secs.round() as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h) {
        (0, 0) if s == 0 => format!("{m} min"),
        (0, 0) => format!("{m} min {s} s"),
        (0, _) if m == 0 => format!("{h} h"),
        (0, _) => format!("{h} h {m} min"),
        (_, 0) => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

/// A horizontal bar `width` cells long at most, in eighths of a cell.
pub fn bar(n: u64, max: u64, width: usize) -> String {
    if max == 0 || n == 0 {
        return String::new();
    }
    let eighths = ((n as f64 / max as f64) * (width * 8) as f64)
        .round()
        .max(1.0) as usize;
    let mut s = "█".repeat(eighths / 8);
    const PART: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    s.push_str(PART[eighths % 8]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(human_duration(0.25), "250 ms");
        assert_eq!(human_duration(2.0), "2.0 s");
        assert_eq!(human_duration(75.0), "1 min 15 s");
        assert_eq!(human_duration(7200.0), "2 h");
        assert_eq!(human_duration(90_000.0), "1 d 1 h");
    }

    #[test]
    fn csv_cells_that_are_formulas_are_quoted_and_numbers_kept() {
        let c = |s: &str| csv_cell(s.to_owned());
        assert_eq!(c("=1+1"), "'=1+1");
        assert_eq!(c("+cmd|' /C calc'!A0"), "'+cmd|' /C calc'!A0");
        assert_eq!(c("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(c("-2+3"), "'-2+3");
        assert_eq!(c("\tx"), "'\tx");
        assert_eq!(c("\rx"), "'\rx");
        assert_eq!(c("-"), "'-");
        assert_eq!(c("+55 11 99999-0000"), "'+55 11 99999-0000");
        for n in [
            "-42",
            "+5511999990000",
            "-0.5",
            "-.5",
            "+1e5",
            "42",
            "",
            "Ana",
            "a=b",
        ] {
            assert_eq!(c(n), n);
        }
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(5, 10, 4), "██");
        assert_eq!(bar(1, 1000, 4), "▏");
        assert_eq!(bar(0, 10, 4), "");
    }
}
