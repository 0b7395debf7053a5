//! The hash both caches pick a pc's set with.

/// A pc's index among `sets` (a power of two): the top bits of `pc * φ`, a
/// multiplicative hash. The row and recipe caches both pick sets with it.
pub(super) fn pc_hash(pc: u64, sets: usize) -> usize {
    (pc.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - sets.trailing_zeros())) as usize
}
