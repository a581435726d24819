//! A stable hash for names and fingerprints: the same on every host and in every release,
//! which `std`'s hashers do not promise.

/// FNV-1a, 64 bits: a stable, dependency-free hash for names and schema fingerprints.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
