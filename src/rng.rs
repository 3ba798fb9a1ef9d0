//! Seeded randomness. Each (seed, strategy, entity) gets its own stream, so results do not
//! depend on processing order or thread count. The generator is xoshiro256** written out here
//! so that outputs stay byte-identical across dependency upgrades.

use sha2::{Digest, Sha256};

/// A small, fast, reproducible random number generator (xoshiro256**).
#[derive(Clone, Debug)]
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    /// A generator whose stream is determined by the given key parts.
    pub fn from_key(parts: &[&str]) -> Rng {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut state = [0u64; 4];
        for (i, word) in state.iter_mut().enumerate() {
            *word = u64::from_le_bytes(digest[i * 8..i * 8 + 8].try_into().unwrap_or([1; 8]));
        }
        if state == [0; 4] {
            state[0] = 1;
        }
        Rng { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A float in `[0, 1)`.
    pub fn float(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn flip(&mut self, p: f64) -> bool {
        self.float() < p
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_same_key_gives_the_same_stream_and_another_key_another() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::from_key(&["24", "s", "e"]);
                move |_| r.next_u64()
            })
            .collect();
        let mut b = Rng::from_key(&["24", "s", "e"]);
        let mut c = Rng::from_key(&["24", "se", ""]);
        assert_eq!(a, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(a[0], c.next_u64());
    }

    #[test]
    fn flips_follow_their_probability() {
        let mut r = Rng::from_key(&["flip"]);
        let hits = (0..10_000).filter(|_| r.flip(0.25)).count();
        assert!((2_300..2_700).contains(&hits), "{hits}");
    }

    #[test]
    fn shuffles_are_permutations() {
        let mut r = Rng::from_key(&["shuffle"]);
        let mut v: Vec<u32> = (0..50).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
