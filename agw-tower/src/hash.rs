//! A small, randomly seeded hasher for maps whose keys a client does not choose.
//!
//! The limiter's keys are counters and scopes that agw builds from key names, team names
//! and JWT subjects: names an administrator or an identity provider chose. The key store's are
//! prefixes of the SHA-256 hashes in its file. SipHash (the std default) costs several hundred
//! instructions per short name; this costs a few multiplications. Each map gets its own random
//! seed, and the mixing is a folded 128-bit multiply (as in `foldhash`), so which keys collide
//! differs from one map to the next. It is not meant for keys a client picks freely (model
//! names, paths): keep std's `RandomState` there.

use std::hash::{BuildHasher, Hasher, RandomState};

/// Builds [`FastHasher`]s with one random seed per map.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastState {
    seed: u64,
}

impl Default for FastState {
    fn default() -> Self {
        // std's per-process random keys, advanced per `RandomState`: a fresh seed per map.
        Self {
            seed: RandomState::new().hash_one(0x243f_6a88_85a3_08d3_u64) | 1,
        }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher {
            acc: self.seed,
            seed: self.seed,
        }
    }
}

/// See the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastHasher {
    acc: u64,
    seed: u64,
}

/// Odd constants from the digits of pi (as in `foldhash`).
const K0: u64 = 0x1319_8a2e_0370_7344;
const K1: u64 = 0xa409_3822_299f_31d0;

fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

impl FastHasher {
    fn mix(&mut self, word: u64) {
        self.acc = fold(self.acc ^ word, self.seed ^ K0);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.mix(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        fold(self.acc, self.seed ^ K1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_near_keys_apart() {
        let s = FastState::default();
        let names = [
            "",
            "a",
            "a\0",
            "ab",
            "agw:k:alice:rpm:29931154",
            "agw:k:alice:rpm:29931155",
            "agw:k:alicf:rpm:29931154",
            "agw:g:usd:d:20261128",
            "agw:g:usd:m:202611",
            "agw:g:tok:d:20261128",
        ];
        let hashes: Vec<u64> = names.iter().map(|n| s.hash_one(n)).collect();
        for (i, a) in hashes.iter().enumerate() {
            assert_eq!(*a, s.hash_one(names[i]));
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn every_map_has_its_own_seed() {
        let (a, b) = (FastState::default(), FastState::default());
        assert_ne!(a.hash_one("agw:g:rpm:1"), b.hash_one("agw:g:rpm:1"));
    }
}
