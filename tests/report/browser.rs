//! Headless Chromium (Debian's `chromium`, installed by scripts/test-deps.sh) run on a page
//! file: its DOM after load (`--dump-dom`), a screenshot, and what it logged. Each run gets a
//! fresh profile and every background service off, so what it logs is the page's doing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Chromium binary: `CHROMIUM` if set, else /usr/bin/chromium, installed by the project's
/// own scripts/test-deps.sh when missing. Never skipped: a machine without it fails here.
pub fn chromium() -> PathBuf {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !path.exists() {
        INSTALL.call_once(|| {
            let status = Command::new("bash")
                .arg(crate::support::manifest_dir().join("scripts/test-deps.sh"))
                .status();
            eprintln!("ran scripts/test-deps.sh: {status:?}");
        });
    }
    assert!(
        path.exists(),
        "no Chromium at {} (CI={}): run `scripts/test-deps.sh` (apt-get install chromium) or set CHROMIUM",
        path.display(),
        std::env::var("CI").unwrap_or_default()
    );
    path
}

/// What one Chromium run printed.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
}

/// Runs headless Chromium on `page` with `extra` flags (e.g. `--dump-dom`).
pub fn run(page: &Path, extra: &[&str]) -> Run {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(&url)
        .output()
        .expect("run chromium");
    let run = Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.success(),
        "chromium {extra:?} failed: {:?}\n{}",
        out.status,
        run.stderr
    );
    run
}

/// Lines of Chromium's log the page caused: console messages (a CSP violation is one),
/// refused loads and network errors. Chromium's own chatter (D-Bus, sandbox) is not.
pub fn page_problems(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Refused to")
                || l.contains("Content Security Policy")
                || l.contains("net::ERR_")
        })
        .collect()
}

/// A decoded PNG: 8-bit RGB or RGBA, as Chromium writes screenshots.
pub struct Png {
    pub width: usize,
    pub height: usize,
    /// RGB per pixel, row by row.
    pub pixels: Vec<[u8; 3]>,
}

impl Png {
    /// Decodes `bytes`; panics with what is wrong (a test helper).
    pub fn decode(bytes: &[u8]) -> Png {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let (mut width, mut height, mut colour) = (0usize, 0usize, 0u8);
        let mut idat = Vec::new();
        let mut at = 8;
        while at + 8 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let kind = &bytes[at + 4..at + 8];
            let data = &bytes[at + 8..at + 8 + len];
            match kind {
                b"IHDR" => {
                    width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                    height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                    assert_eq!(data[8], 8, "bit depth");
                    colour = data[9];
                    assert_eq!(data[12], 0, "interlaced");
                }
                b"IDAT" => idat.extend_from_slice(data),
                b"IEND" => break,
                _ => {}
            }
            at += 12 + len;
        }
        let bpp = match colour {
            2 => 3,
            6 => 4,
            other => panic!("PNG colour type {other}"),
        };
        let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&idat).expect("PNG data inflates");
        let stride = width * bpp;
        assert_eq!(raw.len(), height * (stride + 1), "PNG data size");
        let mut prev = vec![0u8; stride];
        let mut pixels = Vec::with_capacity(width * height);
        for y in 0..height {
            let filter = raw[y * (stride + 1)];
            let mut line = raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)].to_vec();
            for x in 0..stride {
                let a = if x >= bpp { line[x - bpp] } else { 0 };
                let b = prev[x];
                let c = if x >= bpp { prev[x - bpp] } else { 0 };
                let add = match filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                    4 => paeth(a, b, c),
                    f => panic!("PNG filter {f}"),
                };
                line[x] = line[x].wrapping_add(add);
            }
            pixels.extend(line.chunks(bpp).map(|p| [p[0], p[1], p[2]]));
            prev = line;
        }
        Png {
            width,
            height,
            pixels,
        }
    }

    /// How many pixels are exactly this colour.
    pub fn count(&self, rgb: [u8; 3]) -> usize {
        self.pixels.iter().filter(|p| **p == rgb).count()
    }

    /// Distinct colours.
    pub fn colours(&self) -> usize {
        let set: std::collections::HashSet<[u8; 3]> = self.pixels.iter().copied().collect();
        set.len()
    }

    /// The most common colour and the share of pixels that are not it.
    pub fn background(&self) -> ([u8; 3], f64) {
        let mut counts = std::collections::HashMap::new();
        for p in &self.pixels {
            *counts.entry(*p).or_insert(0usize) += 1;
        }
        let (bg, n) = counts.into_iter().max_by_key(|(_, n)| *n).unwrap();
        (bg, 1.0 - n as f64 / self.pixels.len() as f64)
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// Runs tests/support/dom_facts.py (Python's html.parser) on `html`: the page's figures,
/// markup and text as JSON.
pub fn dom_facts(html: &str) -> serde_json::Value {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg(crate::support::manifest_dir().join("tests/support/dom_facts.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3 tests/support/dom_facts.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(html.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dom_facts.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("dom_facts.py prints JSON")
}
