//! Random ids and secrets, hex encoded, from the operating system; and [`Random`], the source a
//! protocol core draws from: the operating system in the server, a seeded sequence in tests, so
//! that a core under test does the same thing every run.

/// A fresh random secret, for a server started without one.
pub fn secret() -> String {
    hex(24)
}

/// An id no other shares: a credential's user part (so that `turn.max_allocations_per_user`
/// counts per credential handed out, not per second of expiry), a process's instance in a
/// cluster.
pub fn id() -> String {
    hex(8)
}

fn hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a core's random bytes come from.
pub struct Random(Source);

enum Source {
    Os,
    /// splitmix64 from this state.
    Seeded(u64),
}

impl Random {
    /// The operating system's.
    pub fn os() -> Random {
        Random(Source::Os)
    }

    /// The same sequence for the same seed, every run (splitmix64: not for secrets).
    pub fn seeded(seed: u64) -> Random {
        Random(Source::Seeded(seed))
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        match &mut self.0 {
            Source::Os => getrandom::fill(buf).expect("the OS provides randomness"),
            Source::Seeded(state) => {
                for chunk in buf.chunks_mut(8) {
                    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = *state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    z ^= z >> 31;
                    chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
                }
            }
        }
    }

    /// `N` random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.fill(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_bytes_every_run() {
        let (mut a, mut b) = (Random::seeded(7), Random::seeded(7));
        assert_eq!(a.bytes::<13>(), b.bytes::<13>());
        assert_ne!(a.bytes::<8>(), Random::seeded(8).bytes::<8>());
        assert_ne!(Random::os().bytes::<16>(), [0; 16]);
    }
}
