//! The small part of MIME (RFC 2045–2049) and RFC 5322 that reading bounces needs: header
//! fields (folded, any case, CRLF or LF), `Content-Type` with its parameters, multipart
//! bodies split on their boundary, and the base64 and quoted-printable transfer encodings.
//!
//! Lenient by design, as mail readers must be: a line that is no header field is passed
//! over, a multipart body without its closing delimiter ends at the end of the data, bytes
//! that are not UTF-8 are read as Latin-1 or replaced. Nothing here indexes past what it
//! measured, so no input can make it panic (`tests.rs` feeds it random and truncated mail).

use base64::Engine as _;

/// How deep multiparts may nest before the rest is ignored: real reports nest three levels
/// (report → related → alternative); this is only a guard against hostile input.
pub const MAX_DEPTH: usize = 8;

/// A message's or a part's header fields in order, names as written, values unfolded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// The first field named `name` (any case), trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// Every field named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields as `Name: value` lines (what a receipt keeps as its raw form).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (n, v) in &self.fields {
            s.push_str(n);
            s.push_str(": ");
            s.push_str(v.trim());
            s.push('\n');
        }
        s
    }
}

/// Splits `data` at the first empty line: (header section, body). Without an empty line the
/// whole is headers (a `text/rfc822-headers` part).
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let mut start = 0;
    while start < data.len() {
        let end = data[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| start + i + 1);
        let line = trim_eol(&data[start..end]);
        if line.is_empty() {
            return (&data[..start], &data[end..]);
        }
        start = end;
    }
    (data, &[])
}

/// A line without its `\n` or `\r\n`.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Lines of `data` with their ends removed.
pub fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split_inclusive(|&b| b == b'\n').map(trim_eol)
}

/// Whether `line` starts a header field: a name of printable ASCII and a colon.
fn field_name(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let name = name.strip_suffix(b" ").unwrap_or(name);
    (!name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))).then_some(colon)
}

/// Reads header fields; continuation lines (starting with a space or tab) are joined to the
/// field before them. Lines that are neither are skipped.
pub fn headers(section: &[u8]) -> Headers {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut open = false;
    for line in lines(section) {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if open && let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.push_str(text(line, None).trim());
            }
            continue;
        }
        match field_name(line) {
            Some(colon) => {
                let name = text(&line[..colon], None).trim().to_owned();
                let value = text(&line[colon + 1..], None).trim().to_owned();
                fields.push((name, value));
                open = true;
            }
            None => open = false,
        }
    }
    Headers { fields }
}

/// Whether `data` begins like a message: its first line is a header field.
pub fn starts_with_header(data: &[u8]) -> bool {
    lines(data).next().is_some_and(|l| field_name(l).is_some())
}

/// A `Content-Type` value: the media type, lower-cased, and its parameters (names
/// lower-cased, values as written, quotes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    pub mime: String,
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// RFC 2045's default: `text/plain`.
    pub fn default_text() -> ContentType {
        ContentType {
            mime: "text/plain".into(),
            params: Vec::new(),
        }
    }

    pub fn parse(value: &str) -> ContentType {
        let mut parts = split_params(value).into_iter();
        let mime = parts
            .next()
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| m.contains('/'))
            .unwrap_or_else(|| "text/plain".into());
        let params = parts
            .filter_map(|p| {
                let (n, v) = p.split_once('=')?;
                Some((n.trim().to_ascii_lowercase(), unquote(v.trim())))
            })
            .collect();
        ContentType { mime, params }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_multipart(&self) -> bool {
        self.mime.starts_with("multipart/")
    }
}

/// `a; b="x;y"; c` → `a`, `b="x;y"`, `c`: semicolons inside quotes do not split.
fn split_params(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ';' && !quoted {
            out.push(String::new());
            continue;
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"') {
        Some(inner) => {
            let inner = inner.strip_suffix('"').unwrap_or(inner);
            let mut s = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if !escaped && c == '\\' {
                    escaped = true;
                    continue;
                }
                escaped = false;
                s.push(c);
            }
            s
        }
        None => v.to_owned(),
    }
}

/// One body part (or the message itself): its headers and its body, still encoded.
#[derive(Debug, Clone)]
pub struct Part<'a> {
    pub headers: Headers,
    pub body: &'a [u8],
}

impl<'a> Part<'a> {
    /// Reads a message or a body part.
    pub fn parse(data: &'a [u8]) -> Part<'a> {
        let (head, body) = split(data);
        Part {
            headers: headers(head),
            body,
        }
    }

    pub fn content_type(&self) -> ContentType {
        self.headers
            .get("Content-Type")
            .map(ContentType::parse)
            .unwrap_or_else(ContentType::default_text)
    }

    /// The body with its `Content-Transfer-Encoding` undone.
    pub fn decoded(&self) -> Vec<u8> {
        match self
            .headers
            .get("Content-Transfer-Encoding")
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("base64") => base64(self.body),
            Some("quoted-printable") => quoted_printable(self.body),
            _ => self.body.to_vec(),
        }
    }

    /// The decoded body as text, in its charset when that is Latin-1, else UTF-8 (bytes that
    /// are not are replaced).
    pub fn text(&self) -> String {
        let ct = self.content_type();
        text(&self.decoded(), ct.param("charset"))
    }

    /// The parts of a multipart body (one level); empty for anything else or a body with no
    /// delimiter line.
    pub fn children(&self) -> Vec<Part<'a>> {
        let ct = self.content_type();
        match ct.param("boundary") {
            Some(b) if ct.is_multipart() && !b.is_empty() => multipart(self.body, b)
                .into_iter()
                .map(Part::parse)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// This part and every part inside it, depth first, multiparts included (up to
    /// [`MAX_DEPTH`]); a `message/rfc822` part is one leaf (its insides are another message).
    pub fn walk(&self) -> Vec<Part<'a>> {
        let mut out = Vec::new();
        walk(self.clone(), 0, &mut out);
        out
    }
}

fn walk<'a>(p: Part<'a>, depth: usize, out: &mut Vec<Part<'a>>) {
    let children = if depth < MAX_DEPTH {
        p.children()
    } else {
        Vec::new()
    };
    out.push(p);
    for c in children {
        walk(c, depth + 1, out);
    }
}

/// The parts between `--boundary` delimiter lines; the line break before a delimiter belongs
/// to it (RFC 2046 §5.1.1).
fn multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| pos + i + 1);
        let line = trim_eol(&body[pos..end]);
        if let Some(rest) = line.strip_prefix(delimiter) {
            let closing = rest.starts_with(b"--");
            let rest = if closing { &rest[2..] } else { rest };
            if rest.iter().all(|b| *b == b' ' || *b == b'\t') {
                if let Some(s) = start {
                    out.push(strip_last_eol(&body[s..pos]));
                }
                if closing {
                    return out;
                }
                start = Some(end);
            }
        }
        pos = end;
    }
    if let Some(s) = start
        && s < body.len()
    {
        out.push(&body[s..]);
    }
    out
}

fn strip_last_eol(part: &[u8]) -> &[u8] {
    let p = part.strip_suffix(b"\n").unwrap_or(part);
    p.strip_suffix(b"\r").unwrap_or(p)
}

/// Base64 with whitespace and stray characters ignored; undecodable input yields what could
/// be read of it (a truncated last group is dropped).
pub fn base64(data: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    // A lone character after the last whole group of four carries no whole octet.
    let usable = if clean.len() % 4 == 1 {
        clean.len() - 1
    } else {
        clean.len()
    };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(&clean[..usable]).unwrap_or_default()
}

/// Quoted-printable: `=XX` octets and `=` soft line breaks; a malformed `=` stays as it is.
pub fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        let rest = &data[i + 1..];
        if rest.starts_with(b"\r\n") {
            i += 3;
        } else if rest.starts_with(b"\n") {
            i += 2;
        } else if let [h, l, ..] = rest
            && let (Some(h), Some(l)) = (hex(*h), hex(*l))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Bytes as text: Latin-1 when `charset` says so (every byte is a character), else UTF-8
/// with anything invalid replaced.
pub fn text(bytes: &[u8], charset: Option<&str>) -> String {
    let latin1 = charset.is_some_and(|c| {
        matches!(
            c.trim().to_ascii_lowercase().as_str(),
            "iso-8859-1" | "latin1" | "iso8859-1" | "windows-1252" | "cp1252"
        )
    });
    if latin1 {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// Header fields in groups separated by empty lines: the body of a `message/delivery-status`
/// part (RFC 3464 §2.1) or a `message/feedback-report` one.
pub fn field_groups(body: &[u8]) -> Vec<Headers> {
    let mut groups = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    for line in lines(body) {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            if !current.is_empty() {
                groups.push(headers(&current));
                current.clear();
            }
            continue;
        }
        current.extend_from_slice(line);
        current.push(b'\n');
    }
    if !current.is_empty() {
        groups.push(headers(&current));
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// The `<...>` message id in a header value (`In-Reply-To`, `Message-ID`), or the bare token
/// wrapped in angle brackets; the last one for `References` (`last`).
pub fn message_id(value: &str, last: bool) -> Option<String> {
    let mut ids = value
        .split('<')
        .skip(1)
        .filter_map(|s| s.split_once('>').map(|(id, _)| id.trim()))
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace));
    let id = if last { ids.last() } else { ids.next() };
    match id {
        Some(id) => Some(format!("<{id}>")),
        None => {
            let bare = value.split_whitespace().next()?;
            (bare.contains('@') && !bare.contains(['<', '>'])).then(|| format!("<{bare}>"))
        }
    }
}

/// The address in `Name <addr>` or a bare `addr` (the first of a list).
pub fn mailbox(value: &str) -> Option<&str> {
    let v = value.trim();
    if let Some((_, rest)) = v.split_once('<') {
        return rest
            .split_once('>')
            .map(|(a, _)| a.trim())
            .filter(|a| a.contains('@'));
    }
    v.split([',', ' ']).map(str::trim).find(|a| a.contains('@'))
}
