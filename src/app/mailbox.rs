//! Reading the mail `disparo bounces import` is given, message by message: an mbox file
//! (mboxrd or mboxo), a Maildir, a folder of `.eml` files, or one message. What a path is
//! decides how it is read (its contents, not its name): a folder with `cur/` or `new/` is a
//! Maildir, another folder is read for its `*.eml` files, a file starting with `From ` is an
//! mbox, any other file is one message. Messages are handed over one at a time, so a mailbox
//! of any size is read in little memory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::diag::Problem;

use super::Error;

/// Longest message read; a bigger one is reported and passed over (bounces are small: a
/// returned message is usually cut to its headers or a few hundred kilobytes).
pub const MAX_MESSAGE: usize = 64 << 20;

/// What a path given to the import turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mbox,
    Maildir,
    /// A folder of `*.eml` files, one message each.
    EmlFolder,
    /// One message (`.eml` or any other name).
    Message,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mbox => "mbox",
            Kind::Maildir => "Maildir",
            Kind::EmlFolder => "folder of .eml files",
            Kind::Message => "message",
        }
    }
}

/// One message read from a mailbox, with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// `PATH`, `PATH: message N (line L)` in an mbox, `MAILDIR/cur/NAME` in a Maildir.
    pub location: String,
    /// Its bytes, or why they could not be read.
    pub data: Result<Vec<u8>, String>,
}

/// A path to import from, checked.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub path: PathBuf,
    pub kind: Kind,
}

const HINT: &str = "give an mbox file, a Maildir (a folder with cur/ and new/), a folder of .eml files or one message";

impl Mailbox {
    /// What `path` is; a path that is missing or unreadable is a problem naming it.
    pub fn open(path: &Path) -> Result<Mailbox, Problem> {
        let problem = |m: String| Problem::new(m).in_file(path).hint(HINT);
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => problem("no such file or folder".into()),
            _ => problem(format!("cannot read it: {e}")),
        })?;
        let kind = if meta.is_dir() {
            if path.join("cur").is_dir() || path.join("new").is_dir() {
                Kind::Maildir
            } else if eml_files(path)
                .map_err(|e| problem(format!("cannot list the folder: {e}")))?
                .is_empty()
            {
                return Err(problem(
                    "a folder that is neither a Maildir (no cur/ or new/ inside) nor holds .eml files"
                        .into(),
                ));
            } else {
                Kind::EmlFolder
            }
        } else {
            let mut head = [0u8; 5];
            let n =
                read_head(path, &mut head).map_err(|e| problem(format!("cannot read it: {e}")))?;
            if &head[..n] == b"From " || n == 0 {
                // An empty file is an mbox with nothing in it (a spool file just emptied).
                Kind::Mbox
            } else {
                Kind::Message
            }
        };
        Ok(Mailbox {
            path: path.to_path_buf(),
            kind,
        })
    }

    /// Hands each message to `each`, in order (Maildir: `new/` then `cur/`, by file name).
    /// An mbox that cannot be read on is a problem naming the line.
    pub fn read(&self, each: &mut dyn FnMut(Mail) -> Result<(), Error>) -> Result<(), Error> {
        match self.kind {
            Kind::Mbox => self.read_mbox(each),
            Kind::Message => each(read_file(&self.path, self.path.display().to_string())),
            Kind::Maildir => {
                for sub in ["new", "cur"] {
                    let dir = self.path.join(sub);
                    if !dir.is_dir() {
                        continue;
                    }
                    for file in files(&dir).map_err(|e| self.problem(&dir, e))? {
                        let location = file.display().to_string();
                        each(read_file(&file, location))?;
                    }
                }
                Ok(())
            }
            Kind::EmlFolder => {
                for file in eml_files(&self.path).map_err(|e| self.problem(&self.path, e))? {
                    let location = file.display().to_string();
                    each(read_file(&file, location))?;
                }
                Ok(())
            }
        }
    }

    fn problem(&self, dir: &Path, e: std::io::Error) -> Error {
        Problem::new(format!("cannot list the folder: {e}"))
            .in_file(dir)
            .hint(HINT)
            .into()
    }

    /// mboxrd: a message starts at a `From ` line at the top of the file or after an empty
    /// line (that empty line is the separator, not the message's); `>From `, `>>From `, ...
    /// lose one `>` (mboxo's `>From ` is read the same).
    fn read_mbox(&self, each: &mut dyn FnMut(Mail) -> Result<(), Error>) -> Result<(), Error> {
        let file = std::fs::File::open(&self.path).map_err(|e| self.read_problem(0, &e))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut current: Option<(u64, Vec<u8>, bool)> = None;
        let mut number = 0u64;
        let mut index = 0u64;
        let mut prev_blank = true;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| self.read_problem(number + 1, &e))?;
            if n == 0 {
                break;
            }
            number += 1;
            if prev_blank && line.starts_with(b"From ") {
                if let Some(m) = current.take() {
                    each(self.mbox_mail(index, m))?;
                }
                index += 1;
                current = Some((number, Vec::new(), false));
                prev_blank = false;
                continue;
            }
            prev_blank = line == b"\n" || line == b"\r\n";
            let Some((_, data, too_big)) = current.as_mut() else {
                continue;
            };
            if *too_big {
                continue;
            }
            let quoted = line.iter().take_while(|b| **b == b'>').count();
            let body = if quoted > 0 && line[quoted..].starts_with(b"From ") {
                &line[1..]
            } else {
                &line[..]
            };
            if data.len() + body.len() > MAX_MESSAGE {
                *too_big = true;
                data.clear();
                continue;
            }
            data.extend_from_slice(body);
        }
        if let Some(m) = current.take() {
            each(self.mbox_mail(index, m))?;
        }
        Ok(())
    }

    fn mbox_mail(&self, index: u64, (line, mut data, too_big): (u64, Vec<u8>, bool)) -> Mail {
        // The empty line before the next `From ` separates; it is not the message's.
        if data.ends_with(b"\r\n\r\n") {
            data.truncate(data.len() - 2);
        } else if data.ends_with(b"\n\n") {
            data.truncate(data.len() - 1);
        }
        Mail {
            location: format!("{}: message {index} (line {line})", self.path.display()),
            data: if too_big {
                Err(format!("larger than {} MiB", MAX_MESSAGE >> 20))
            } else {
                Ok(data)
            },
        }
    }

    fn read_problem(&self, line: u64, e: &std::io::Error) -> Error {
        Problem::new(format!("cannot read the mbox: {e}"))
            .in_file(&self.path)
            .at_line(line)
            .hint("check the file's permissions and the disk; bounces already imported stay imported, and importing again records nothing twice")
            .into()
    }
}

fn read_head(path: &Path, head: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn read_file(path: &Path, location: String) -> Mail {
    let data = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_MESSAGE as u64 => {
            Err(format!("larger than {} MiB", MAX_MESSAGE >> 20))
        }
        _ => std::fs::read(path).map_err(|e| format!("cannot read it: {e}")),
    };
    Mail { location, data }
}

/// The regular files of a folder not starting with `.`, by name.
fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type()?.is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn eml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(files(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("eml")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(m: &Mailbox) -> Vec<Mail> {
        let mut out = Vec::new();
        m.read(&mut |mail| {
            out.push(mail);
            Ok(())
        })
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        out
    }

    #[test]
    fn mbox_is_split_on_from_lines_after_an_empty_line_and_unquoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bounces");
        std::fs::write(
            &path,
            "From MAILER-DAEMON Mon Nov 30 12:00:06 2026\nSubject: one\n\nbody\n>From here on\n>>From quoted\nFrom inside a paragraph stays\n\nFrom MAILER-DAEMON Mon Nov 30 12:00:07 2026\r\nSubject: two\r\n\r\nx\r\n\r\n",
        )
        .unwrap();
        let m = Mailbox::open(&path).unwrap();
        assert_eq!(m.kind, Kind::Mbox);
        let mails = all(&m);
        assert_eq!(mails.len(), 2);
        assert_eq!(
            mails[0].data.as_deref().unwrap(),
            b"Subject: one\n\nbody\nFrom here on\n>From quoted\nFrom inside a paragraph stays\n"
        );
        assert_eq!(
            mails[1].data.as_deref().unwrap(),
            b"Subject: two\r\n\r\nx\r\n"
        );
        assert_eq!(
            mails[1].location,
            format!("{}: message 2 (line 9)", path.display())
        );
    }

    #[test]
    fn maildir_eml_folders_and_single_messages() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(md.join(sub)).unwrap();
        }
        std::fs::write(md.join("cur/1796040006.M1P2.host:2,S"), "Subject: a\n\n").unwrap();
        std::fs::write(md.join("new/1796040007.M3P4.host"), "Subject: b\n\n").unwrap();
        std::fs::write(md.join("tmp/partial"), "Subject: c\n").unwrap();
        std::fs::write(md.join("cur/.hidden"), "x").unwrap();
        let m = Mailbox::open(&md).unwrap();
        assert_eq!(m.kind, Kind::Maildir);
        let got: Vec<_> = all(&m).into_iter().map(|m| m.data.unwrap()).collect();
        assert_eq!(
            got,
            [b"Subject: b\n\n".to_vec(), b"Subject: a\n\n".to_vec()]
        );

        let emls = dir.path().join("emls");
        std::fs::create_dir_all(&emls).unwrap();
        std::fs::write(emls.join("b.EML"), "Subject: b\n\n").unwrap();
        std::fs::write(emls.join("README.txt"), "not mail").unwrap();
        let m = Mailbox::open(&emls).unwrap();
        assert_eq!(m.kind, Kind::EmlFolder);
        assert_eq!(all(&m).len(), 1);
        let one = emls.join("b.EML");
        assert_eq!(Mailbox::open(&one).unwrap().kind, Kind::Message);
        let empty = dir.path().join("spool");
        std::fs::write(&empty, "").unwrap();
        assert!(all(&Mailbox::open(&empty).unwrap()).is_empty());
    }

    #[test]
    fn paths_that_are_no_mailbox_say_so_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.mbox");
        let p = Mailbox::open(&missing).unwrap_err();
        assert_eq!(p.file.as_deref(), Some(missing.as_path()));
        assert!(p.message.contains("no such file"), "{p}");
        let plain = dir.path().join("plain");
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::write(plain.join("notes.txt"), "x").unwrap();
        let p = Mailbox::open(&plain).unwrap_err();
        assert!(p.message.contains("neither a Maildir"), "{p}");
    }
}
