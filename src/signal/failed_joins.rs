//! The failed-join limit, `signal.failed_joins_per_minute`: joins that name no lobby or give a
//! wrong password are counted per address (an IPv4 address or an IPv6 /64) and, at
//! [`SITE_FACTOR`] times the rate, per IPv6 /48 (one site, which can use 65,536 /64s). An
//! address over either has used its tries and learns nothing more, right or wrong, until they
//! come back.
//!
//! Each hub keeps a [`FailedJoins`]; in a cluster every failure is also counted in Redis
//! ([`Failures`], a one-minute window per address and per site), and a node checks that count
//! before it looks a lobby up in the directory, so tries spent on one node are spent on all.

use std::collections::HashMap;
use std::time::Instant;

use crate::conn_cap::Source;
use crate::rate_limit::RateLimit;

/// An IPv6 /48 may fail this many times as often as one address.
pub const SITE_FACTOR: u32 = 16;
/// Addresses (and sites) remembered at most. Beyond, those whose tries have all come back are
/// forgotten (that changes nothing); if that is not enough, the new ones share one bucket of
/// [`SITE_FACTOR`] times the rate rather than anyone spent getting its tries back.
const TRACKED: usize = 65_536;

pub struct FailedJoins {
    per_minute: u32,
    addresses: Table,
    sites: Table,
}

impl FailedJoins {
    /// `per_minute` 0: no limit.
    pub fn new(per_minute: u32) -> FailedJoins {
        FailedJoins {
            per_minute,
            addresses: Table::new(per_minute, TRACKED),
            sites: Table::new(per_minute.saturating_mul(SITE_FACTOR), TRACKED),
        }
    }

    /// A reload that changes the limit changes every address's bucket from `now`: tries spent
    /// stay spent, and none has more left than the new limit. Switched off or on, the count
    /// starts afresh.
    pub fn set_per_minute(&mut self, per_minute: u32, now: Instant) {
        if per_minute == self.per_minute {
            return;
        }
        if per_minute == 0 || self.per_minute == 0 {
            *self = FailedJoins::new(per_minute);
            return;
        }
        self.per_minute = per_minute;
        self.addresses.set(per_minute, now);
        self.sites.set(per_minute.saturating_mul(SITE_FACTOR), now);
    }

    /// Whether `source` may try a join now (nothing is counted).
    pub fn allows(&mut self, source: Source, now: Instant) -> bool {
        self.per_minute == 0
            || (self.addresses.allows(source, now)
                && source
                    .site()
                    .is_none_or(|site| self.sites.allows(site, now)))
    }

    /// A join from `source` failed.
    pub fn failed(&mut self, source: Source, now: Instant) {
        if self.per_minute == 0 {
            return;
        }
        self.addresses.bucket(source, now).try_take(now);
        if let Some(site) = source.site() {
            self.sites.bucket(site, now).try_take(now);
        }
    }

    /// `source` has spent its tries on other nodes of the cluster ([`Failures::spent`]).
    pub fn spent_elsewhere(&mut self, source: Source, now: Instant) {
        if self.per_minute > 0 {
            self.addresses.bucket(source, now).drain(now);
        }
    }
}

/// Buckets by address or by site, bounded.
struct Table {
    per_minute: u32,
    capacity: usize,
    buckets: HashMap<Source, RateLimit>,
    /// Shared by whoever finds the table full (made the first time it is).
    overflow: Option<RateLimit>,
}

impl Table {
    fn new(per_minute: u32, capacity: usize) -> Table {
        Table {
            per_minute,
            capacity,
            buckets: HashMap::new(),
            overflow: None,
        }
    }

    fn set(&mut self, per_minute: u32, now: Instant) {
        self.per_minute = per_minute;
        let rate = |per_minute: u32| f64::from(per_minute) / 60.0;
        for bucket in self.buckets.values_mut() {
            bucket.set(rate(per_minute), per_minute, now);
        }
        if let Some(overflow) = &mut self.overflow {
            let shared = per_minute.saturating_mul(SITE_FACTOR);
            overflow.set(rate(shared), shared, now);
        }
    }

    fn overflow(&mut self, now: Instant) -> &mut RateLimit {
        let per_minute = self.per_minute.saturating_mul(SITE_FACTOR);
        self.overflow
            .get_or_insert_with(|| Table::fresh(per_minute, now))
    }

    fn fresh(per_minute: u32, now: Instant) -> RateLimit {
        RateLimit::new(f64::from(per_minute) / 60.0, per_minute, now)
    }

    fn allows(&mut self, key: Source, now: Instant) -> bool {
        let full = self.buckets.len() >= self.capacity;
        match self.buckets.get_mut(&key) {
            Some(bucket) => bucket.has_token(now),
            None if full => self.overflow(now).has_token(now),
            None => true,
        }
    }

    fn bucket(&mut self, key: Source, now: Instant) -> &mut RateLimit {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            self.buckets.retain(|_, b| !b.is_full(now));
            if self.buckets.len() >= self.capacity {
                return self.overflow(now);
            }
        }
        let per_minute = self.per_minute;
        self.buckets
            .entry(key)
            .or_insert_with(|| Table::fresh(per_minute, now))
    }
}

/// What the cluster has counted against an address in the last minute, on every node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    pub address: u32,
    /// Its IPv6 /48's (0 for IPv4).
    pub site: u32,
}

impl Failures {
    /// Whether the address has used its tries (`per_minute` 0: no limit).
    pub fn spent(&self, per_minute: u32) -> bool {
        per_minute > 0
            && (self.address >= per_minute || self.site >= per_minute.saturating_mul(SITE_FACTOR))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use super::*;

    fn source(ip: &str) -> Source {
        Source::of(ip.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn an_address_has_its_tries_a_minute() {
        let t0 = Instant::now();
        let mut f = FailedJoins::new(10);
        let attacker = source("192.0.2.1");
        for _ in 0..10 {
            assert!(f.allows(attacker, t0));
            f.failed(attacker, t0);
        }
        assert!(!f.allows(attacker, t0));
        assert!(
            f.allows(source("192.0.2.2"), t0),
            "another address is not affected"
        );
        assert!(
            f.allows(attacker, t0 + Duration::from_secs(6)),
            "one try back each 6 s"
        );
    }

    #[test]
    fn a_reloaded_limit_applies_to_addresses_already_seen() {
        let t0 = Instant::now();
        let mut f = FailedJoins::new(10);
        let (spent, tried) = (source("192.0.2.1"), source("192.0.2.2"));
        for _ in 0..10 {
            f.failed(spent, t0);
        }
        f.failed(tried, t0);
        // Raised: what was spent stays spent; tries come back at the new rate (60 a minute).
        f.set_per_minute(60, t0);
        assert!(!f.allows(spent, t0), "a reload gives no tries back");
        assert!(f.allows(spent, t0 + Duration::from_secs(1)));
        // Lowered to 3: the address that had 9 left has 3.
        f.set_per_minute(3, t0);
        for _ in 0..3 {
            assert!(f.allows(tried, t0));
            f.failed(tried, t0);
        }
        assert!(!f.allows(tried, t0));
    }

    #[test]
    fn an_ipv6_site_cannot_multiply_its_tries_by_its_addresses() {
        let t0 = Instant::now();
        let mut f = FailedJoins::new(10);
        // 160 failures from 16 /64s of one /48 spend the site.
        for n in 0..16 {
            let a = source(&format!("2001:db8:1:{n:x}::1"));
            for _ in 0..10 {
                f.failed(a, t0);
            }
        }
        assert!(
            !f.allows(source("2001:db8:1:ffff::1"), t0),
            "a fresh /64 of that /48"
        );
        assert!(f.allows(source("2001:db8:2::1"), t0), "another /48");
    }

    #[test]
    fn a_full_table_gives_no_spent_address_its_tries_back() {
        let t0 = Instant::now();
        let mut f = FailedJoins::new(1);
        let spent = source("10.0.0.1");
        f.failed(spent, t0);
        for n in 1..TRACKED as u32 + 100 {
            f.failed(
                Source::of(IpAddr::from(((10u32 << 24) + 1 + n).to_be_bytes())),
                t0,
            );
        }
        assert!(!f.allows(spent, t0));
        // The newcomers beyond the table share one bucket, spent by now.
        assert!(!f.allows(source("192.0.2.9"), t0));
        // A minute later every try is back, and the table makes room again.
        let later = t0 + Duration::from_secs(61);
        assert!(f.allows(spent, later));
        f.failed(source("192.0.2.9"), later);
        assert!(f.allows(source("192.0.2.10"), later));
    }

    #[test]
    fn tries_spent_on_other_nodes_count_here() {
        let t0 = Instant::now();
        let mut f = FailedJoins::new(10);
        let a = source("192.0.2.1");
        assert!(
            Failures {
                address: 10,
                site: 0
            }
            .spent(10)
        );
        assert!(
            Failures {
                address: 0,
                site: 160
            }
            .spent(10)
        );
        assert!(
            !Failures {
                address: 9,
                site: 159
            }
            .spent(10)
        );
        assert!(
            !Failures {
                address: 99,
                site: 0
            }
            .spent(0)
        );
        f.spent_elsewhere(a, t0);
        assert!(!f.allows(a, t0));
    }
}
