//! A stable hash for names and fingerprints: the same on every host and in every release,
//! which `std`'s hashers do not promise.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a, 64 bits: a stable, dependency-free hash for names and schema fingerprints.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fold(OFFSET_BASIS, bytes)
}

fn fold(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// FNV-1a as a map's hasher, for the graph's maps of task and family names: the names come
/// from the pipeline's own code, not from outside, and a short name hashes several times
/// faster than with `std`'s SipHash (a graph of 100,000 tasks looks up 400,000 names).
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(OFFSET_BASIS)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = fold(self.0, bytes);
    }
}

/// A map keyed by names, hashed with [`Fnv`].
pub type NameMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;
