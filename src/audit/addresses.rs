//! The same address under two recipient ids, found exactly in bounded memory.
//!
//! The first [`IN_MEMORY`] addresses are checked in a hash map as they arrive. Past that, each
//! address goes to one of [`PARTS`] scratch files ([`Spill`]) chosen by its hash, with its row,
//! id and address, and the files are checked one at a time when the audience ends: a plan of
//! 10M recipients keeps one part in memory (~1/64 of the addresses) instead of all of them,
//! which in a hash map cost ~27 bytes each (issue #18). Records reach a part in row order, so
//! the first record of a hash in a part is its first row in the audience.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::spill::Spill;

/// Addresses checked in memory before the check moves to scratch files.
const IN_MEMORY: usize = 1 << 16;
/// Scratch files past [`IN_MEMORY`].
const PARTS: usize = 64;

/// One repeat: (row, id, the first row with the address, address).
pub type Repeat = (u64, String, u64, String);

#[derive(Debug, Default)]
pub struct Addresses {
    /// Hash of each address checked in memory → the first row that had it.
    first_rows: HashMap<u64, u64>,
    /// Scratch files once past [`IN_MEMORY`]; empty before (or when none could be made: the
    /// check then stays in memory).
    parts: Vec<Spill>,
    /// The first repeats found, in row order, at most `keep`.
    repeats: Vec<Repeat>,
    count: u64,
    /// Moves to scratch files that failed: the next is tried once the map holds
    /// `IN_MEMORY << failed_moves` addresses, not at every address after a failure (each try
    /// makes [`PARTS`] files and writes the whole map).
    failed_moves: u32,
    /// The last row checked in memory before the first move to scratch files: every repeat
    /// up to it is known as it comes, later ones only once the parts are read back.
    moved_after: Option<u64>,
    /// Set when a scratch file failed (written or read back): repeats after this row may be
    /// missing, as what was on disk is lost.
    missing_after: Option<u64>,
}

impl Addresses {
    /// Records that data row `row` (recipient `id`) has `address`.
    pub fn add(&mut self, row: u64, id: &str, address: &str, keep: usize) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        address.hash(&mut h);
        let hash = h.finish();
        if !self.parts.is_empty() {
            let part = &mut self.parts[(hash >> 58) as usize % PARTS];
            if write_record(part, hash, row, id, address).is_ok() {
                return;
            }
            // A failed write (a full disk) leaves a part unreadable: drop the scratch files
            // and check the rest in memory, which is what every address would cost without
            // them. Repeats among what was on disk are then not seen.
            self.parts.clear();
            self.failed_moves += 1;
            self.lost_what_was_on_disk();
        }
        match self.first_rows.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(row);
            }
            std::collections::hash_map::Entry::Occupied(e) => {
                let first = *e.get();
                self.repeat((row, id.to_owned(), first, address.to_owned()), keep);
            }
        }
        if self.parts.is_empty()
            && self.first_rows.len() >= IN_MEMORY.saturating_mul(1 << self.failed_moves.min(16))
        {
            if self.spill_from_memory() {
                self.moved_after.get_or_insert(row);
            } else {
                self.failed_moves += 1;
            }
        }
    }

    fn lost_what_was_on_disk(&mut self) {
        if let Some(row) = self.moved_after {
            self.missing_after.get_or_insert(row);
        }
    }

    /// Moves the in-memory map to the scratch files (each entry is a first row, so it goes
    /// without id or address: it is never reported as a repeat); `false`, the map kept, when
    /// they could not be made or written.
    fn spill_from_memory(&mut self) -> bool {
        let parts: std::io::Result<Vec<Spill>> = (0..PARTS).map(|_| Spill::new()).collect();
        let Ok(mut parts) = parts else { return false };
        for (&hash, &row) in &self.first_rows {
            let part = &mut parts[(hash >> 58) as usize % PARTS];
            if write_record(part, hash, row, "", "").is_err() {
                return false;
            }
        }
        self.parts = parts;
        self.first_rows = HashMap::new();
        true
    }

    fn repeat(&mut self, r: Repeat, keep: usize) {
        self.count += 1;
        // Kept sorted by row: the parts are read one after another, not in row order.
        if self.repeats.len() < keep || self.repeats.last().is_some_and(|last| r.0 < last.0) {
            let at = self.repeats.partition_point(|x| x.0 < r.0);
            self.repeats.insert(at, r);
            self.repeats.truncate(keep);
        }
    }

    /// Reads the scratch files back (once, when the audience has ended) and returns the first
    /// `keep` repeats in row order, how many there were in all, and, when a scratch file
    /// failed, the row after which some may be missing.
    pub fn finish(&mut self, keep: usize) -> (Vec<Repeat>, u64, Option<u64>) {
        for part in std::mem::take(&mut self.parts) {
            if self.check_part(part, keep).is_err() {
                // A part that cannot be read back is a repeat check not done, not a problem
                // with the audience: the repeats found so far stand, and the warning says so.
                self.lost_what_was_on_disk();
            }
        }
        self.first_rows = HashMap::new();
        (
            std::mem::take(&mut self.repeats),
            self.count,
            self.missing_after.take(),
        )
    }

    fn check_part(&mut self, part: Spill, keep: usize) -> std::io::Result<()> {
        let mut r = part.read_back()?;
        let mut first_rows: HashMap<u64, u64> = HashMap::new();
        while let Some(hash) = r.next_u64()? {
            let row = r.next_u64()?.unwrap_or_default();
            let id_len = r.next_u64()?.unwrap_or_default() as usize;
            let id = r.text(id_len)?;
            let address_len = r.next_u64()?.unwrap_or_default() as usize;
            let address = r.text(address_len)?;
            match first_rows.entry(hash) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(row);
                }
                std::collections::hash_map::Entry::Occupied(e) => {
                    let first = *e.get();
                    self.repeat((row, id, first, address), keep);
                }
            }
        }
        Ok(())
    }
}

fn write_record(
    part: &mut Spill,
    hash: u64,
    row: u64,
    id: &str,
    address: &str,
) -> std::io::Result<()> {
    part.write(&hash.to_le_bytes())?;
    part.write(&row.to_le_bytes())?;
    part.write(&(id.len() as u64).to_le_bytes())?;
    part.write(id.as_bytes())?;
    part.write(&(address.len() as u64).to_le_bytes())?;
    part.write(address.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same repeats, in the same order, whether the check stays in memory or spills.
    #[test]
    fn repeats_are_found_exactly_past_the_in_memory_part() {
        let n = IN_MEMORY as u64 * 3;
        let mut a = Addresses::default();
        let mut expected = Vec::new();
        for row in 1..=n {
            // Every 1000th row repeats the address of the row before it, some before the
            // spill and some after; the rest are distinct.
            let (address, first) = if row % 1000 == 0 {
                (format!("+55{:09}", row - 1), Some(row - 1))
            } else {
                (format!("+55{row:09}"), None)
            };
            if let Some(first) = first {
                expected.push((row, format!("C{row}"), first, address.clone()));
            }
            a.add(row, &format!("C{row}"), &address, 5);
        }
        assert!(expected.len() > 100);
        let (repeats, count, _) = a.finish(5);
        assert_eq!(count, expected.len() as u64);
        assert_eq!(repeats, expected[..5].to_vec());
    }

    /// Scratch files that fail (a full disk) drop the check back to memory: repeats among
    /// the addresses met after that are still found, none is invented.
    #[test]
    fn a_failing_scratch_file_falls_back_to_memory() {
        let mut a = Addresses::default();
        for row in 1..=(IN_MEMORY as u64 + 10) {
            a.add(row, &format!("C{row}"), &format!("a{row}@example.com"), 5);
        }
        a.parts = (0..PARTS).map(|_| Spill::failing()).collect();
        // Until a part's buffer is flushed and fails: then the parts are dropped.
        let mut row = 1_000_000u64;
        while !a.parts.is_empty() {
            row += 1;
            assert!(row < 1_500_000, "a failing part is noticed");
            a.add(row, &format!("C{row}"), &format!("b{row}@example.com"), 5);
        }
        let failed_at = row;
        a.add(row + 1, "again", &format!("b{failed_at}@example.com"), 5);
        let (repeats, count, missing_after) = a.finish(5);
        assert_eq!(
            missing_after,
            Some(IN_MEMORY as u64),
            "what was on disk is lost: repeats after the last row checked in memory may be missing"
        );
        assert_eq!(count, 1);
        assert_eq!(
            repeats,
            vec![(
                failed_at + 1,
                "again".into(),
                failed_at,
                format!("b{failed_at}@example.com")
            )]
        );
    }

    /// Scratch files that cannot be written when the check would move to them (a full or
    /// quota-bound TMPDIR, too many open files) keep the check in memory, and it is not
    /// tried again at every address: each try makes 64 files and writes the whole map
    /// (65,536 records) before a write fails, so retrying per address made a 200k-row
    /// `validate` run for minutes instead of seconds.
    #[test]
    fn a_failed_move_to_scratch_files_is_not_retried_at_every_address() {
        crate::spill::test_hooks::fail_on_this_thread();
        let mut a = Addresses::default();
        let n = IN_MEMORY as u64 + 2_000;
        for row in 1..=n {
            a.add(row, &format!("C{row}"), &format!("a{row}@example.com"), 5);
        }
        a.add(n + 1, "again", "a3@example.com", 5);
        a.add(n + 2, "twice", &format!("a{n}@example.com"), 5);
        let made = crate::spill::test_hooks::failing_made();
        assert!(
            made <= 2 * PARTS as u64,
            "{made} scratch files made for 2,000 addresses past the move"
        );
        let (repeats, count, _) = a.finish(5);
        assert_eq!(count, 2);
        assert_eq!(
            repeats,
            vec![
                (n + 1, "again".into(), 3, "a3@example.com".into()),
                (n + 2, "twice".into(), n, format!("a{n}@example.com")),
            ]
        );
    }

    #[test]
    fn repeats_after_the_spill_name_their_row_id_and_first_row() {
        let mut a = Addresses::default();
        for row in 1..=(IN_MEMORY as u64 + 10) {
            a.add(row, &format!("C{row}"), &format!("a{row}@example.com"), 5);
        }
        assert!(!a.parts.is_empty(), "the check moved to scratch files");
        a.add(900_000, "late", "a7@example.com", 5);
        a.add(900_001, "later", "a900000@example.com", 5);
        a.add(900_002, "last", "a900000@example.com", 5);
        let (repeats, count, _) = a.finish(5);
        assert_eq!(count, 2);
        assert_eq!(
            repeats,
            vec![
                (900_000, "late".into(), 7, "a7@example.com".into()),
                (
                    900_002,
                    "last".into(),
                    900_001,
                    "a900000@example.com".into()
                ),
            ]
        );
    }
}
