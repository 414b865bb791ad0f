//! The duplicate-id check of the plan pipeline, in memory only for audiences whose ids are
//! not in order (issue #18).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use crate::spill::Spill;

/// Hashes the `u64` keys of the duplicate-id set as themselves: they are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The recipient ids read so far, as 64-bit hashes, for the duplicate check. While ids arrive
/// in strictly increasing order (files exported sorted by id, the common case) a new id cannot
/// repeat an earlier one, so the hashes are only appended to a scratch file ([`Spill`]: no
/// memory per recipient, issue #18); the first id out of order reads them back into a hash
/// set, which takes the rest. Random inserts into a set of millions cost a cache miss each:
/// ~9% of reading a sorted 1M-row audience.
pub(super) struct SeenIds {
    last: Option<String>,
    pub(super) sorted: SortedHashes,
    set: Option<HashSet<u64, std::hash::BuildHasherDefault<IdentityHasher>>>,
}

/// The hashes of ids that came in order: on disk, or in memory when no scratch file could be
/// made (a read-only or missing temporary directory).
pub(super) enum SortedHashes {
    Disk { spill: Spill, len: usize },
    Memory(Vec<u64>),
}

impl SeenIds {
    pub(super) fn new() -> SeenIds {
        SeenIds {
            last: None,
            sorted: match Spill::new() {
                Ok(spill) => SortedHashes::Disk { spill, len: 0 },
                Err(_) => SortedHashes::Memory(Vec::new()),
            },
            set: None,
        }
    }

    /// `false` when `id` was seen before; an error when the scratch file fails.
    pub(super) fn first_time(&mut self, id: &str) -> std::io::Result<bool> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        let hash = h.finish();
        if let Some(set) = &mut self.set {
            return Ok(set.insert(hash));
        }
        if self.last.as_deref().is_none_or(|last| last < id) {
            match &mut self.sorted {
                SortedHashes::Disk { spill, len } => {
                    spill.write(&hash.to_le_bytes())?;
                    *len += 1;
                }
                SortedHashes::Memory(v) => v.push(hash),
            }
            match &mut self.last {
                Some(last) => {
                    last.clear();
                    last.push_str(id);
                }
                None => self.last = Some(id.to_owned()),
            }
            return Ok(true);
        }
        let sorted = std::mem::replace(&mut self.sorted, SortedHashes::Memory(Vec::new()));
        let mut set: HashSet<u64, _> = HashSet::default();
        match sorted {
            SortedHashes::Disk { spill, len } => {
                set.reserve(len * 2);
                let mut r = spill.read_back()?;
                while let Some(h) = r.next_u64()? {
                    set.insert(h);
                }
            }
            SortedHashes::Memory(v) => {
                set.reserve(v.len() * 2);
                set.extend(v);
            }
        }
        let first = set.insert(hash);
        self.set = Some(set);
        Ok(first)
    }
}
