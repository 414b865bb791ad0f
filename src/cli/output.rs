//! Printing data as an aligned table, JSON Lines or CSV, from one description of the rows.

use std::io::Write;

use clap::ValueEnum;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Rows of named fields; the table and CSV show `columns` in order, JSON carries every field.
#[derive(Debug, Default)]
pub struct Rows {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Map<String, Value>>,
}

impl Rows {
    pub fn new(columns: &[&'static str]) -> Rows {
        Rows {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }
    pub fn push(&mut self, row: Map<String, Value>) {
        self.rows.push(row);
    }
    pub fn print(&self, format: Format) -> std::io::Result<()> {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        match format {
            Format::Json => {
                for r in &self.rows {
                    serde_json::to_writer(&mut out, r)?;
                    out.write_all(b"\n")?;
                }
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                w.write_record(&self.columns)?;
                for r in &self.rows {
                    w.write_record(self.columns.iter().map(|c| cell(r.get(*c))))?;
                }
                w.flush()?;
            }
            Format::Table => {
                let cells: Vec<Vec<String>> = self
                    .rows
                    .iter()
                    .map(|r| self.columns.iter().map(|c| cell(r.get(*c))).collect())
                    .collect();
                let mut widths: Vec<usize> =
                    self.columns.iter().map(|c| c.chars().count()).collect();
                for row in &cells {
                    for (w, c) in widths.iter_mut().zip(row) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                let line = |out: &mut dyn Write, vals: &[String]| -> std::io::Result<()> {
                    let mut s = String::new();
                    for (i, (v, w)) in vals.iter().zip(&widths).enumerate() {
                        if i > 0 {
                            s.push_str("  ");
                        }
                        s.push_str(v);
                        if i + 1 < vals.len() {
                            s.extend(std::iter::repeat_n(' ', w - v.chars().count()));
                        }
                    }
                    writeln!(out, "{}", s.trim_end())
                };
                let header: Vec<String> = self.columns.iter().map(|c| c.to_uppercase()).collect();
                line(&mut out, &header)?;
                for row in &cells {
                    line(&mut out, row)?;
                }
            }
        }
        out.flush()
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
        eprintln!("{msg}");
    }
}
