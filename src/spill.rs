//! Scratch files for what grows with the audience (an entry per recipient) and is read back
//! once: kept on disk instead of in memory, so that planning 10M recipients fits a bounded RSS
//! (issue #18). The operating system's page cache holds them while they are small, so a plan
//! that spills writes nothing it reads back slowly.
//!
//! A file is unlinked as soon as it is opened (on Unix), so nothing is left in the temporary
//! directory, even by a crash; elsewhere it is removed when dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Buffer of each spill file: writes reach the file in blocks this large.
const BUFFER: usize = 16 * 1024;

/// An append-only scratch file, read back from its start.
#[derive(Debug)]
pub struct Spill {
    writer: BufWriter<File>,
    /// Where the file is, when it could not be unlinked while open (non-Unix).
    path: Option<PathBuf>,
}

impl Spill {
    /// A new empty file in the system's temporary directory (`TMPDIR`).
    pub fn new() -> io::Result<Spill> {
        #[cfg(test)]
        if let Some(made) = test_hooks::made() {
            return Ok(made);
        }
        Spill::new_in(&std::env::temp_dir())
    }

    /// A new empty file in `dir`.
    fn new_in(dir: &std::path::Path) -> io::Result<Spill> {
        let path = scratch_path(dir);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let path = if cfg!(unix) {
            std::fs::remove_file(&path)?;
            None
        } else {
            Some(path)
        };
        Ok(Spill {
            writer: BufWriter::with_capacity(BUFFER, file),
            path,
        })
    }

    /// A spill whose writes fail once its buffer is flushed, as on a full disk.
    #[cfg(test)]
    pub(crate) fn failing() -> Spill {
        let path = scratch_path(&std::env::temp_dir());
        std::fs::write(&path, b"").expect("a file in the temporary directory");
        let file = File::open(&path).expect("opened read-only");
        std::fs::remove_file(&path).expect("unlinked");
        Spill {
            writer: BufWriter::with_capacity(BUFFER, file),
            path: None,
        }
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Everything written, from the start.
    pub fn read_back(mut self) -> io::Result<SpillReader> {
        self.writer.flush()?;
        let mut file = self.writer.get_ref().try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(SpillReader {
            reader: BufReader::with_capacity(BUFFER, file),
            _spill: self,
        })
    }
}

/// A name in `dir` no other spill of any process has: the process id, a counter and a random
/// part (files are created with `create_new`, so a clash is an error, never a shared file).
fn scratch_path(dir: &std::path::Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        ".disparo-spill-{}-{n}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ))
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Test hooks: on this thread, make every [`Spill::new`] a [`Spill::failing`] one (a full
/// disk) and count how many were made.
#[cfg(test)]
pub(crate) mod test_hooks {
    use std::cell::Cell;

    thread_local! {
        static FAILING: Cell<bool> = const { Cell::new(false) };
        static MADE: Cell<u64> = const { Cell::new(0) };
    }

    /// From now on, on this thread, scratch files fail once their buffer is flushed.
    pub(crate) fn fail_on_this_thread() {
        FAILING.with(|f| f.set(true));
    }

    /// How many failing scratch files were made on this thread.
    pub(crate) fn failing_made() -> u64 {
        MADE.with(Cell::get)
    }

    pub(super) fn made() -> Option<super::Spill> {
        FAILING.with(Cell::get).then(|| {
            MADE.with(|m| m.set(m.get() + 1));
            super::Spill::failing()
        })
    }
}

/// A [`Spill`] being read; the file goes when this is dropped.
#[derive(Debug)]
pub struct SpillReader {
    reader: BufReader<File>,
    _spill: Spill,
}

impl SpillReader {
    /// The next 8 bytes as a little-endian `u64`; `None` at the end of the file.
    pub fn next_u64(&mut self) -> io::Result<Option<u64>> {
        let mut buf = [0u8; 8];
        match self.reader.read_exact(&mut buf) {
            Ok(()) => Ok(Some(u64::from_le_bytes(buf))),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `len` bytes as text (written by [`Spill::write`] from a `&str`).
    pub fn text(&mut self, len: usize) -> io::Result<String> {
        let mut buf = vec![0u8; len];
        self.reader.read_exact(&mut buf)?;
        String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_read_back_and_no_file_is_left() {
        // A directory of its own: other tests make scratch files in TMPDIR at the same time.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spill::new_in(dir.path()).unwrap();
        if cfg!(unix) {
            assert_eq!(leftovers(dir.path()), 0, "unlinked as soon as opened");
        }
        for n in 0..10_000u64 {
            s.write(&n.to_le_bytes()).unwrap();
        }
        s.write(&("São".len() as u64).to_le_bytes()).unwrap();
        s.write("São".as_bytes()).unwrap();
        let mut r = s.read_back().unwrap();
        for n in 0..10_000u64 {
            assert_eq!(r.next_u64().unwrap(), Some(n));
        }
        let len = r.next_u64().unwrap().unwrap() as usize;
        assert_eq!(r.text(len).unwrap(), "São");
        assert_eq!(r.next_u64().unwrap(), None);
        drop(r);
        assert_eq!(leftovers(dir.path()), 0);
    }

    fn leftovers(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }
}
