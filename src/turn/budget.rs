//! How many answers the relay sends to requests it has not authenticated: Binding responses and
//! the errors before authentication (400, 401, 420, 438). Every one of them can be aimed at a
//! victim by spoofing its address, so they are budgeted, sans-IO, per second:
//!
//! - per source (an IPv4 address or an IPv6 /64): at most `per_source` answers. Sources are
//!   counted in a fixed table of hashed slots (keyed with a secret seed), so a flood from many
//!   addresses costs no memory and evicts nobody: two sources share a slot only by chance.
//! - in all: at most `total` answers a second, spread over the second (a token bucket holding a
//!   tenth of a second's worth), so under a flood every request has the same chance whenever it
//!   comes, and clients retransmit (STUN's RTO doubles from 500 ms) until one is answered.

/// Generous enough for many players behind one NAT starting at once; small enough that a
/// spoofed flood reflects only a few KB/s at any one victim.
pub const PER_SOURCE: u16 = 200;
const SLOTS: usize = 1 << 16;

use std::net::IpAddr;
use std::time::Instant;

use crate::conn_cap::Source;

pub struct AnswerBudget {
    per_source: u16,
    total: u32,
    second: u64,
    slots: Box<[u16]>,
    /// The global bucket: answers available, refilled at `total` a second.
    tokens: f64,
    filled: Option<Instant>,
    seed: [u64; 2],
    /// Requests left unanswered since start, and whether that was logged.
    pub unanswered: u64,
    logged: bool,
}

impl AnswerBudget {
    /// `seed` keys the hash of sources to slots (secret, so that no one can aim at a slot).
    pub fn new(per_source: u16, total: u32, seed: [u8; 16]) -> AnswerBudget {
        AnswerBudget {
            per_source,
            total,
            second: 0,
            slots: vec![0; SLOTS].into_boxed_slice(),
            tokens: 0.0,
            filled: None,
            seed: [
                u64::from_le_bytes(seed[..8].try_into().unwrap()),
                u64::from_le_bytes(seed[8..].try_into().unwrap()),
            ],
            unanswered: 0,
            logged: false,
        }
    }

    pub fn set_total(&mut self, total: u32) {
        self.total = total;
    }

    /// Whether one more answer may go to `client` now (`unix_now` the wall-clock second).
    pub fn allow(&mut self, client: IpAddr, unix_now: u64, now: Instant) -> bool {
        if unix_now != self.second {
            self.second = unix_now;
            self.slots.fill(0);
        }
        let burst = f64::from(self.total.max(10)) / 10.0;
        let elapsed = self
            .filled
            .map_or(1.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.tokens = (self.tokens + elapsed * f64::from(self.total)).min(burst);
        self.filled = Some(now);
        let slot_index = self.slot_of(client);
        let slot = &mut self.slots[slot_index];
        if *slot >= self.per_source || self.tokens < 1.0 {
            self.unanswered += 1;
            if !self.logged {
                self.logged = true;
                log::warn!(
                    "turn: left a request from {client} unanswered: over the budget for \
                     unauthenticated answers ({} per source, turn.max_unauthenticated_answers = {} \
                     in all, per second); further ones are only counted",
                    self.per_source,
                    self.total
                );
            }
            return false;
        }
        *slot += 1;
        self.tokens -= 1.0;
        true
    }

    fn slot_of(&self, client: IpAddr) -> usize {
        use std::hash::{BuildHasher, Hasher};
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        h.write_u64(self.seed[0]);
        std::hash::Hash::hash(&Source::of(client), &mut h);
        h.write_u64(self.seed[1]);
        h.finish() as usize % SLOTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    use std::time::Duration;

    #[test]
    fn per_source_then_a_new_second() {
        let t = Instant::now();
        let mut b = AnswerBudget::new(3, 1000, [7; 16]);
        let one: IpAddr = "198.51.100.1".parse().unwrap();
        assert!((0..3).all(|_| b.allow(one, NOW, t)));
        assert!(!b.allow(one, NOW, t), "per source");
        assert!(b.allow("198.51.100.2".parse().unwrap(), NOW, t));
        assert_eq!(b.unanswered, 1);
        assert!(b.allow(one, NOW + 1, t), "a new second");
    }

    #[test]
    fn in_all_the_budget_is_spread_over_the_second() {
        let t = Instant::now();
        let mut b = AnswerBudget::new(PER_SOURCE, 1000, [7; 16]);
        let ip = |i: u32| IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
        // A tenth of a second's worth at once, then nothing until tokens come back.
        let burst = (0..1000).filter(|&i| b.allow(ip(i), NOW, t)).count();
        assert_eq!(burst, 100);
        let later = t + Duration::from_millis(50);
        let more = (1000..2000).filter(|&i| b.allow(ip(i), NOW, later)).count();
        assert_eq!(more, 50, "50 ms later: 50 more");
    }

    #[test]
    fn an_ipv6_64_is_one_source() {
        let t = Instant::now();
        let mut b = AnswerBudget::new(2, 1000, [7; 16]);
        assert!(b.allow("2001:db8::1".parse().unwrap(), NOW, t));
        assert!(b.allow("2001:db8::ffff:2".parse().unwrap(), NOW, t));
        assert!(!b.allow("2001:db8::abcd:3".parse().unwrap(), NOW, t));
        assert!(b.allow("2001:db8:0:1::1".parse().unwrap(), NOW, t));
    }

    #[test]
    fn a_flood_from_many_sources_costs_no_memory_and_evicts_nobody() {
        let t = Instant::now();
        let mut b = AnswerBudget::new(PER_SOURCE, u32::MAX, [7; 16]);
        let legit: IpAddr = "203.0.113.50".parse().unwrap();
        // 200,000 spoofed sources, one request each, and the table does not grow.
        for i in 0..200_000u32 {
            let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            b.allow(ip, NOW, t);
        }
        assert!(
            b.allow(legit, NOW, t),
            "a legitimate client still gets its answer"
        );
        assert_eq!(b.slots.len(), SLOTS);
    }
}
