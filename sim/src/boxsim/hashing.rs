//! Stateless, seedable hashing for values that must not depend on request order
//! (event ids, roster truncation), unlike the fault dice which follow request order.

/// SplitMix64's finaliser: a bijection on `u64`, so distinct inputs never collide.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a hash to `[0, 1)` using its top 53 bits (the precision of an `f64`).
pub(crate) fn unit_interval(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}
