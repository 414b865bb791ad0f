//! The fast hasher of the run's per-message maps.

/// A multiply-rotate hasher (FxHash) for the run's per-message maps, keyed by message ids,
/// campaign, channel and zone names from the run's own database: nothing an outsider picks to
/// collide, so no need for SipHash's resistance to that.
pub(super) type FastHash = std::hash::BuildHasherDefault<FxHasher>;

#[derive(Default)]
pub(super) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
