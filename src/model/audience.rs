//! Audiences: CSV (header row), JSON array, JSON Lines or YAML list, read as a stream.
//!
//! Recipients are handed one at a time to a callback, so a file of millions of rows is never
//! held in memory (YAML lists, meant for small hand-written audiences, are the exception).
//! Row-level problems go to the callback too, so `validate` can report all of them.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use crate::diag::Problem;

/// Largest accepted field: a cell bigger than this is a broken file, not a name.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Columns (CSV) or fields (JSON, YAML) a recipient may have: a spreadsheet's own maximum
/// (Excel: 16,384). Far beyond any audience, and it bounds the work a header costs.
pub const MAX_COLUMNS: usize = 16_384;

/// Headers wider than this look names up in a hash index instead of a linear scan.
const INDEXED_FROM: usize = 32;

/// One recipient: its `id` and every field, available to templates by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// 1-based position among the recipients of the file.
    pub row: u64,
    /// Line in the file where the record starts (0 when unknown).
    pub line: u64,
    pub id: String,
    pub fields: Fields,
}

impl Recipient {
    /// A field as text; empty strings count as absent (an empty CSV cell).
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.fields.get(key)? {
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.trim()),
            _ => None,
        }
    }
    /// A field as text, numbers included (phones written as numbers in JSON/YAML).
    pub fn text_or_number(&self, key: &str) -> Option<String> {
        match self.fields.get(key)? {
            Value::Number(n) => Some(n.to_string()),
            _ => self.text(key).map(str::to_owned),
        }
    }
}

/// Field names, in file order, shared by every record read with them: a CSV header is one
/// `Header` for the whole file, so a row costs its values and nothing per name.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    names: Vec<String>,
    /// Positions by name, for a wide header only.
    index: Option<std::collections::HashMap<String, usize>>,
}

impl Header {
    pub fn new(names: Vec<String>) -> Header {
        let index = (names.len() > INDEXED_FROM).then(|| {
            let mut index = std::collections::HashMap::with_capacity(names.len());
            for (i, n) in names.iter().enumerate() {
                index.entry(n.clone()).or_insert(i);
            }
            index
        });
        Header { names, index }
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// The position of `key`: a linear scan on the usual few dozen columns (comparing short
    /// names beats hashing them), the index on a wider header (a lookup per variable per
    /// recipient must not cost the header's width).
    pub fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.names.iter().position(|n| n == key),
        }
    }
}

/// A recipient's fields: values in the order of a shared [`Header`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    header: std::sync::Arc<Header>,
    values: Vec<Value>,
}

/// No fields (what is left in a recipient whose fields were moved out): shares one empty
/// header, so it allocates nothing.
impl Default for Fields {
    fn default() -> Fields {
        static EMPTY: std::sync::LazyLock<std::sync::Arc<Header>> =
            std::sync::LazyLock::new(|| std::sync::Arc::new(Header::new(Vec::new())));
        Fields {
            header: EMPTY.clone(),
            values: Vec::new(),
        }
    }
}

impl Fields {
    /// `values[i]` is the value of `header.names()[i]`.
    pub fn new(header: std::sync::Arc<Header>, values: Vec<Value>) -> Fields {
        debug_assert_eq!(header.names.len(), values.len());
        Fields { header, values }
    }
    /// The fields of a JSON/YAML object, in its order (a header of its own).
    pub fn from_map(map: Map<String, Value>) -> Fields {
        let (names, values) = map.into_iter().unzip();
        Fields {
            header: std::sync::Arc::new(Header::new(names)),
            values,
        }
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.header.position(key).map(|i| &self.values[i])
    }
    /// The header's column names (for a CSV audience, every row's).
    pub fn names(&self) -> &[String] {
        self.header.names()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.header
            .names
            .iter()
            .map(String::as_str)
            .zip(&self.values)
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// The values, taken back (to reuse their buffers).
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// As a JSON object, in field order.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }
}

/// The formats an audience can be written in, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceFormat {
    Csv,
    Json,
    JsonLines,
    Yaml,
}

impl AudienceFormat {
    pub fn from_path(path: &Path) -> Option<AudienceFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => AudienceFormat::Csv,
            "json" => AudienceFormat::Json,
            "jsonl" | "ndjson" => AudienceFormat::JsonLines,
            "yaml" | "yml" => AudienceFormat::Yaml,
            _ => return None,
        })
    }
}

/// What the callback gets for each record.
pub type Row = Result<Recipient, Problem>;

/// The values of recipients already planned, handed back to be refilled: a CSV record then
/// costs no allocation per cell, the cells' strings keep their capacity. On 1M recipients the
/// allocations and frees of a `String` per cell were a fifth of `preview`'s time.
#[derive(Debug, Default)]
pub struct Spares(std::cell::RefCell<Vec<Vec<Value>>>);

impl Spares {
    /// Gives `values` back for a later record (a few are kept; more are dropped).
    pub fn give(&self, values: Vec<Value>) {
        let mut spares = self.0.borrow_mut();
        if spares.len() < 4 {
            spares.push(values);
        }
    }

    fn take(&self) -> Option<Vec<Value>> {
        self.0.borrow_mut().pop()
    }
}

/// Sets `values[i]` to the string `cell`, reusing the string already there.
fn set_cell(values: &mut Vec<Value>, i: usize, cell: &str) {
    match values.get_mut(i) {
        Some(Value::String(s)) => {
            s.clear();
            s.push_str(cell);
        }
        Some(other) => *other = Value::String(cell.to_owned()),
        None => values.push(Value::String(cell.to_owned())),
    }
}

/// Streams the recipients of `path` to `each`. Returns the number of records seen.
/// A problem with the file as a whole (unreadable, not CSV/JSON at all) is the `Err`.
pub fn read(path: &Path, each: &mut dyn FnMut(Row) -> ControlFlow<()>) -> Result<u64, Problem> {
    read_counting(path, None, None, each)
}

/// A reader that adds the bytes it reads to a shared counter (progress bars).
struct Counting<'a, R> {
    inner: R,
    counter: Option<&'a AtomicU64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(c) = self.counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// [`read`], adding the bytes read from the file to `counter` as it goes, and filling CSV
/// records into the value vectors given back to `spares`.
pub fn read_counting(
    path: &Path,
    counter: Option<&AtomicU64>,
    spares: Option<&Spares>,
    each: &mut dyn FnMut(Row) -> ControlFlow<()>,
) -> Result<u64, Problem> {
    read_with(path, None, counter, spares, each).map(|(n, _)| n)
}

/// [`read_counting`] with the campaign's `audience.delimiter` (`None`: read from the header
/// line); also returns how a CSV file was read, for `validate` and `preview` to say.
pub fn read_with(
    path: &Path,
    delimiter: Option<u8>,
    counter: Option<&AtomicU64>,
    spares: Option<&Spares>,
    each: &mut dyn FnMut(Row) -> ControlFlow<()>,
) -> Result<(u64, Option<CsvDialect>), Problem> {
    let format = AudienceFormat::from_path(path).ok_or_else(|| {
        Problem::new("unknown audience format")
            .in_file(path)
            .hint("name the file .csv, .json, .jsonl or .yaml")
    })?;
    let file = File::open(path).map_err(|e| {
        Problem::new(format!("cannot read audience: {e}"))
            .in_file(path)
            .hint("check the campaign's `audience` path; it is relative to the project root")
    })?;
    let reader = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: file,
            counter,
        },
    );
    match format {
        AudienceFormat::Csv => {
            read_csv(path, reader, delimiter, spares, each).map(|(n, d)| (n, Some(d)))
        }
        AudienceFormat::JsonLines => read_jsonl(path, reader, each).map(|n| (n, None)),
        AudienceFormat::Json => read_json(path, reader, each).map(|n| (n, None)),
        AudienceFormat::Yaml => read_yaml(path, reader, each).map(|n| (n, None)),
    }
}

fn object_to_recipient(path: &Path, row: u64, line: u64, obj: Value) -> Row {
    let here = |p: Problem| {
        let p = p.in_file(path).row(row);
        if line > 0 { p.at_line(line) } else { p }
    };
    let Value::Object(fields) = obj else {
        return Err(here(
            Problem::new("a recipient must be an object with fields")
                .hint("write each recipient as {\"id\": \"...\", \"phone\": \"...\", ...}"),
        ));
    };
    if fields.len() > MAX_COLUMNS {
        return Err(here(
            Problem::new(format!(
                "the recipient has {} fields; at most {MAX_COLUMNS} are read",
                fields.len()
            ))
            .hint("keep only the fields the campaign uses (id, address, timezone, locale and the template's variables)"),
        ));
    }
    if let Some((k, _)) = fields
        .iter()
        .find(|(_, v)| v.as_str().is_some_and(|s| s.len() > MAX_FIELD_BYTES))
    {
        return Err(here(
            Problem::new(format!(
                "field is larger than {} KiB",
                MAX_FIELD_BYTES / 1024
            ))
            .field(k.clone())
            .hint("check the file for a missing quote or a broken record"),
        ));
    }
    let id = match fields.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(here(
                Problem::new("the recipient has no `id`")
                    .field("id")
                    .hint("give every recipient a unique, non-empty `id`"),
            ));
        }
    };
    Ok(Recipient {
        row,
        line,
        id,
        fields: Fields::from_map(fields),
    })
}

/// What the header line of a CSV file says about the rest: the column separator and whether
/// lines end in CRLF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvDialect {
    pub delimiter: u8,
    pub crlf: bool,
}

impl CsvDialect {
    /// The separator as people name it (for the note on stderr).
    pub fn delimiter_name(&self) -> String {
        match self.delimiter {
            b';' => "`;` (semicolon)".into(),
            b'\t' => "tab".into(),
            b',' => "`,` (comma)".into(),
            d => format!("`{}`", char::from(d)),
        }
    }

    /// Reads the header line (as far as `head` holds it): the separator is whichever of `,`,
    /// `;` and tab occurs most often outside double quotes (a comma on a tie or when none
    /// does), and the line's end says CRLF or LF.
    pub fn detect(head: &[u8]) -> CsvDialect {
        let mut counts = [0usize; 3];
        let mut quoted = false;
        let mut crlf = false;
        for (i, &b) in head.iter().enumerate() {
            match b {
                b'"' => quoted = !quoted,
                b'\n' if !quoted => {
                    crlf = i > 0 && head[i - 1] == b'\r';
                    break;
                }
                b',' if !quoted => counts[0] += 1,
                b';' if !quoted => counts[1] += 1,
                b'\t' if !quoted => counts[2] += 1,
                _ => {}
            }
        }
        let mut delimiter = b',';
        let mut best = counts[0];
        for (d, n) in [(b';', counts[1]), (b'\t', counts[2])] {
            if n > best {
                delimiter = d;
                best = n;
            }
        }
        CsvDialect { delimiter, crlf }
    }
}

fn read_csv(
    path: &Path,
    mut reader: impl BufRead,
    delimiter: Option<u8>,
    spares: Option<&Spares>,
    each: &mut dyn FnMut(Row) -> ControlFlow<()>,
) -> Result<(u64, CsvDialect), Problem> {
    let head = reader
        .fill_buf()
        .map_err(|e| Problem::new(format!("cannot read audience: {e}")).in_file(path))?;
    let mut dialect = CsvDialect::detect(head);
    if let Some(d) = delimiter {
        dialect.delimiter = d;
    }
    // The csv crate counts line feeds as it consumes them; a CRLF record ends at its `\r`, so
    // the `\n` is counted only when the next record is read: one line short at every start.
    let crlf_lag = u64::from(dialect.crlf);
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .delimiter(dialect.delimiter)
        .from_reader(reader);
    let headers = rdr
        .byte_headers()
        .map_err(|e| csv_problem(path, &e))?
        .clone();
    if headers.len() > MAX_COLUMNS {
        return Err(Problem::new(format!(
            "the header has {} columns; at most {MAX_COLUMNS} are read",
            headers.len()
        ))
        .in_file(path)
        .at_line(1)
        .hint("keep only the columns the campaign uses (id, address, timezone, locale and the template's variables), e.g. export fewer columns from the spreadsheet"));
    }
    let mut names = Vec::with_capacity(headers.len());
    let mut seen = std::collections::HashSet::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let h = std::str::from_utf8(h).map_err(|_| {
            Problem::new(format!("column {} of the header is not UTF-8", i + 1))
                .in_file(path)
                .at_line(1)
                .hint("save the file as UTF-8")
        })?;
        let h = h.trim_start_matches('\u{feff}').trim().to_owned();
        if h.is_empty() {
            return Err(
                Problem::new(format!("column {} of the header has no name", i + 1))
                    .in_file(path)
                    .at_line(1)
                    .hint("name every column in the first row"),
            );
        }
        if !seen.insert(h.clone()) {
            return Err(Problem::new(format!("the header names column {h:?} twice"))
                .in_file(path)
                .at_line(1)
                .field(h)
                .hint("rename or remove the repeated column"));
        }
        names.push(h);
    }
    let Some(id_at) = names.iter().position(|n| n == "id") else {
        return Err(Problem::new("the header has no `id` column")
            .in_file(path)
            .at_line(1)
            .field("id")
            .hint("add an `id` column with a unique value per recipient"));
    };
    let header = std::sync::Arc::new(Header::new(names));
    let names = header.names();
    let mut record = csv::ByteRecord::new();
    let mut row = 0u64;
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                row += 1;
                if each(Err(csv_problem(path, &e).row(row))).is_break() {
                    return Ok((row, dialect));
                }
                continue;
            }
        }
        row += 1;
        // Line feeds inside quoted values are counted by the csv crate already.
        let line = record.position().map(|p| p.line() + crlf_lag).unwrap_or(0);
        let here = |p: Problem| p.in_file(path).at_line(line).row(row);
        let result = if record.len() != names.len() {
            Err(here(
                Problem::new(format!(
                    "the row has {} fields but the header has {}",
                    record.len(),
                    names.len()
                ))
                .hint("check for a missing or extra comma, or an unquoted comma inside a value"),
            ))
        } else {
            let mut values = spares
                .and_then(Spares::take)
                .unwrap_or_else(|| Vec::with_capacity(names.len()));
            let mut err = None;
            // One UTF-8 check for the whole record; a cell of valid text is valid text when
            // it starts and ends on character boundaries (`str::get`). A record with invalid
            // bytes is checked cell by cell to name the cell.
            let text = std::str::from_utf8(record.as_slice()).ok();
            for (i, (name, cell)) in names.iter().zip(record.iter()).enumerate() {
                if cell.len() > MAX_FIELD_BYTES {
                    err = Some(here(
                        Problem::new(format!(
                            "field is larger than {} KiB",
                            MAX_FIELD_BYTES / 1024
                        ))
                        .field(name.clone())
                        .hint("check the file for a missing closing quote"),
                    ));
                    break;
                }
                let valid = match (text, record.range(i)) {
                    (Some(t), Some(r)) => t.get(r),
                    _ => std::str::from_utf8(cell).ok(),
                };
                match valid.ok_or(()) {
                    Ok(s) => set_cell(&mut values, i, s),
                    Err(_) => {
                        err = Some(here(
                            Problem::new("the value is not valid UTF-8")
                                .field(name.clone())
                                .hint(
                                    "save the file as UTF-8 (e.g. from a spreadsheet: CSV UTF-8)",
                                ),
                        ));
                        break;
                    }
                }
            }
            values.truncate(names.len());
            match err {
                Some(p) => Err(p),
                None => match values[id_at].as_str().map(str::trim) {
                    Some(id) if !id.is_empty() => Ok(Recipient {
                        row,
                        line,
                        id: id.to_owned(),
                        fields: Fields::new(header.clone(), values),
                    }),
                    _ => Err(here(
                        Problem::new("the recipient has no `id`")
                            .field("id")
                            .hint("give every recipient a unique, non-empty `id`"),
                    )),
                },
            }
        };
        if each(result).is_break() {
            break;
        }
    }
    Ok((row, dialect))
}

fn csv_problem(path: &Path, e: &csv::Error) -> Problem {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    Problem::new(format!("malformed CSV: {e}"))
        .in_file(path)
        .at_line(line)
        .hint("check quoting: a value with a comma, quote or line break must be in double quotes")
}

fn read_jsonl(
    path: &Path,
    mut reader: impl BufRead,
    each: &mut dyn FnMut(Row) -> ControlFlow<()>,
) -> Result<u64, Problem> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut row = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Problem::new(format!("cannot read audience: {e}")).in_file(path))?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        row += 1;
        let result = match serde_json::from_slice::<Value>(text) {
            Ok(v) => object_to_recipient(path, row, line, v),
            Err(e) => Err(Problem::new(format!("invalid JSON: {e}"))
                .in_file(path)
                .at(line, e.column() as u64)
                .row(row)
                .hint("each line must be one JSON object")),
        };
        if each(result).is_break() {
            break;
        }
    }
    Ok(row)
}

fn read_json(
    path: &Path,
    reader: impl Read,
    each: &mut dyn FnMut(Row) -> ControlFlow<()>,
) -> Result<u64, Problem> {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    struct Each<'a, 'p> {
        path: &'p Path,
        row: u64,
        each: &'a mut dyn FnMut(Row) -> ControlFlow<()>,
    }
    impl<'de> Visitor<'de> for &mut Each<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of recipient objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(v) = seq.next_element::<Value>()? {
                self.row += 1;
                if (self.each)(object_to_recipient(self.path, self.row, 0, v)).is_break() {
                    // Drain the rest without keeping it, so the parser state stays valid.
                    while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                    break;
                }
            }
            Ok(())
        }
    }
    let mut state = Each { path, row: 0, each };
    let mut de = serde_json::Deserializer::from_reader(reader);
    de.deserialize_seq(&mut state).map_err(|e| {
        Problem::new(format!("invalid JSON audience: {e}"))
            .in_file(path)
            .at(e.line() as u64, e.column() as u64)
            .hint("a .json audience is one array of objects; use .jsonl for one object per line")
    })?;
    de.end().map_err(|e| {
        Problem::new(format!("unexpected content after the JSON array: {e}"))
            .in_file(path)
            .at(e.line() as u64, e.column() as u64)
    })?;
    Ok(state.row)
}

fn read_yaml(
    path: &Path,
    reader: impl Read,
    each: &mut dyn FnMut(Row) -> ControlFlow<()>,
) -> Result<u64, Problem> {
    let list: Vec<Value> =
        serde_saphyr::from_reader(reader).map_err(|e| crate::diag::yaml_problem(path, &e))?;
    let mut row = 0;
    for v in list {
        row += 1;
        if each(object_to_recipient(path, row, 0, v)).is_break() {
            break;
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(name: &str, content: &[u8]) -> (Result<u64, Problem>, Vec<Row>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let mut rows = Vec::new();
        let r = read(&path, &mut |row| {
            rows.push(row);
            ControlFlow::Continue(())
        });
        (r, rows)
    }

    #[test]
    fn csv_with_bom_crlf_and_quoted_newline() {
        let (r, rows) = collect("a.csv", b"\xef\xbb\xbfid,first_name,phone\r\n1,\"Ana\nMaria\",+5511999990000\r\n2,Jo\xc3\xa3o,+5511999990001\r\n");
        assert_eq!(r.unwrap(), 2);
        let a = rows[0].as_ref().unwrap();
        assert_eq!(a.text("first_name"), Some("Ana\nMaria"));
        assert_eq!(rows[1].as_ref().unwrap().text("first_name"), Some("João"));
        assert_eq!(rows[1].as_ref().unwrap().line, 4);
    }

    #[test]
    fn csv_records_filled_into_given_back_values_read_the_same() {
        let csv =
            "id,name,city\nc1,Maria Aparecida,São Paulo\nc2,Ana,\nc3,,Lisboa\nc4,Zé,\"Rio, RJ\"\n";
        let (_, plain) = collect("a.csv", csv.as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, csv).unwrap();
        let spares = Spares::default();
        // A spare longer than the header, holding a non-string value, is cut and overwritten.
        spares.give(vec![Value::Null; 5]);
        let mut reused = Vec::new();
        read_counting(&path, None, Some(&spares), &mut |row| {
            let r = row.unwrap();
            reused.push((r.id.clone(), r.fields.to_map()));
            spares.give(r.fields.into_values());
            ControlFlow::Continue(())
        })
        .unwrap();
        let plain: Vec<_> = plain
            .into_iter()
            .map(|r| r.unwrap())
            .map(|r| (r.id, r.fields.to_map()))
            .collect();
        assert_eq!(reused, plain);
        assert_eq!(reused[1].1["name"], "Ana");
        assert_eq!(reused[2].1["name"], "", "an empty cell after a longer one");
    }

    #[test]
    fn csv_wrong_column_count_names_line_and_row() {
        let (_, rows) = collect("a.csv", b"id,phone\n1,+1\n2,+2,extra\n");
        let p = rows[1].as_ref().unwrap_err();
        assert_eq!((p.line, p.row), (Some(3), Some(2)));
        assert!(p.message.contains("3 fields"), "{p}");
    }

    #[test]
    fn csv_non_utf8_names_field() {
        let (_, rows) = collect("a.csv", b"id,first_name\n1,Jo\xe3o\n");
        let p = rows[0].as_ref().unwrap_err();
        assert_eq!(p.field.as_deref(), Some("first_name"));
    }

    #[test]
    fn csv_character_split_between_cells_is_not_utf8() {
        // The record's bytes run together are valid ("x\u{e3}y"), each cell alone is not.
        let (_, rows) = collect("a.csv", b"id,f,g\n1,x\xc3,\xa3y\n2,\xc3\xa3,ok\n");
        let p = rows[0].as_ref().unwrap_err();
        assert_eq!(p.field.as_deref(), Some("f"), "{p}");
        assert_eq!(rows[1].as_ref().unwrap().text("f"), Some("\u{e3}"));
    }

    #[test]
    fn json_jsonl_and_yaml() {
        let (r, rows) = collect("a.json", br#"[{"id": 1, "phone": "+1"}, {"id": "b"}]"#);
        assert_eq!(r.unwrap(), 2);
        assert_eq!(rows[0].as_ref().unwrap().id, "1");
        let (_, rows) = collect("a.jsonl", b"{\"id\":\"x\"}\n\nnot json\n");
        assert_eq!(rows[1].as_ref().unwrap_err().line, Some(3));
        let (r, rows) = collect("a.yaml", b"- id: a\n  phone: '+1'\n- id: b\n");
        assert_eq!(r.unwrap(), 2);
        assert_eq!(rows[1].as_ref().unwrap().id, "b");
    }

    #[test]
    fn csv_dialect_is_read_from_the_header_line() {
        let d = |s: &[u8]| CsvDialect::detect(s);
        assert_eq!(
            d(b"id;\"a,b\";c\r\n1,2,3,4\n"),
            CsvDialect {
                delimiter: b';',
                crlf: true
            }
        );
        assert_eq!(
            d(b"id\tphone\n"),
            CsvDialect {
                delimiter: b'\t',
                crlf: false
            }
        );
        assert_eq!(
            d(b"id\n"),
            CsvDialect {
                delimiter: b',',
                crlf: false
            }
        );
        assert_eq!(d(b"id,a;b\n").delimiter, b',', "a tie is a comma");
    }

    #[test]
    fn missing_id_is_a_row_problem() {
        let (_, rows) = collect("a.jsonl", b"{\"phone\":\"+1\"}\n");
        assert_eq!(rows[0].as_ref().unwrap_err().field.as_deref(), Some("id"));
    }
}
