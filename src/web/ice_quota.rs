//! `/api/ice` per address: `web.ice_api_per_minute` credentials a minute from one address (an
//! IPv6 /64), in bursts of as many. Refusals are counted and the first is logged.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::conn_cap::Source;
use crate::rate_limit::PerSource;

#[derive(Default)]
pub struct IceQuota {
    buckets: Mutex<PerSource>,
    refused: AtomicU64,
    logged: AtomicBool,
}

impl IceQuota {
    /// Takes one answer for `ip` at `now`; `Err(wait)` when its address is over `per_minute`.
    pub fn take(&self, ip: IpAddr, per_minute: u32, now: Instant) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let mut all = self.buckets.lock().unwrap();
        let bucket = all.bucket(Source::of(ip), per_minute, now);
        if bucket.try_take(now) {
            return Ok(());
        }
        let wait = bucket.wait(now);
        drop(all);
        self.refused.fetch_add(1, Ordering::Relaxed);
        if !self.logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "web: refused /api/ice to {ip}: over web.ice_api_per_minute ({per_minute}); \
                 further refusals are only counted, in rallypoint_web_ice_refused_total"
            );
        }
        Err(wait)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_then_back_at_the_rate() {
        let q = IceQuota::default();
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(q.take(a, 3, now).is_ok());
        }
        let wait = q.take(a, 3, now).unwrap_err();
        assert_eq!(wait.as_secs(), 20, "3 a minute: one every 20 s");
        assert!(
            q.take("192.0.2.2".parse().unwrap(), 3, now).is_ok(),
            "another address"
        );
        // One IPv6 /64 is one address.
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let c: IpAddr = "2001:db8::ffff".parse().unwrap();
        for _ in 0..3 {
            assert!(q.take(b, 3, now).is_ok());
        }
        assert!(q.take(c, 3, now).is_err());
        assert!(q.take(a, 3, now + Duration::from_secs(20)).is_ok());
        assert_eq!(q.refused(), 2);
        assert!(q.take(a, 0, now).is_ok(), "0 = no limit");
    }

    #[test]
    fn a_changed_limit_applies_to_addresses_already_seen() {
        let q = IceQuota::default();
        let now = Instant::now();
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..10 {
            assert!(q.take(a, 60, now).is_ok());
        }
        // Lowered by a reload to 5 a minute: 5 left, not the 50 of the old bucket.
        for _ in 0..5 {
            assert!(q.take(a, 5, now).is_ok());
        }
        assert!(q.take(a, 5, now).is_err());
        // Raised again: what was taken stays taken; tokens come back at the new rate.
        assert!(q.take(a, 60, now).is_err());
        assert!(q.take(a, 60, now + Duration::from_secs(1)).is_ok());
    }
}
