//! The run's randomness: one stream per concern (the disk, each client, the nemesis, the
//! operator, a swarm draw), each derived from the seed alone, so that a draw added in one
//! concern does not reshuffle the others.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Derives an independent random stream for one concern of one seed, so that a draw added in
/// one concern does not shift the others.
pub fn stream(seed: u64, concern: &str) -> ChaCha8Rng {
    let mut h = Fnv::default();
    h.write_u64(seed);
    h.write(concern.as_bytes());
    ChaCha8Rng::seed_from_u64(h.0)
}

/// FNV-1a, 64 bit: small, fast and the same in every build.
#[derive(Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }
}
