//! A token bucket, sans-IO: the signalling session's message rate, the hub's limits on lobby-list
//! queries and failed joins, and `/api/ice` per address.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second on average, `burst` at once.
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// `rate` 0 means unlimited.
    pub fn new(rate: f64, burst: u32, now: Instant) -> RateLimit {
        let burst = f64::from(burst.max(1));
        RateLimit {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Changes the rate and burst from `now` on (a reload): what was taken stays taken, and
    /// no more is left than the new burst.
    pub fn set(&mut self, rate: f64, burst: u32, now: Instant) {
        self.refill(now);
        self.rate = rate;
        self.burst = f64::from(burst.max(1));
        self.tokens = self.tokens.min(self.burst);
    }

    /// Takes a token for one message; returns how long to wait first if none is left (the
    /// message goes ahead after that wait: the debt is paid by waiting).
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        if self.rate == 0.0 {
            return None;
        }
        self.refill(now);
        self.tokens -= 1.0;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }

    /// Takes a token if one is left; `false` (and nothing taken) otherwise.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        self.refill(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// Whether a token is left (none is taken).
    pub fn has_token(&mut self, now: Instant) -> bool {
        self.rate == 0.0 || {
            self.refill(now);
            self.tokens >= 1.0
        }
    }

    /// Seconds until a token is back (0 if one is left).
    pub fn wait(&mut self, now: Instant) -> Duration {
        if self.rate == 0.0 {
            return Duration::ZERO;
        }
        self.refill(now);
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0))
    }

    /// Empties the bucket: no token until it refills from `now`.
    pub fn drain(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = self.tokens.min(0.0);
    }

    /// Whether the bucket is full again at `now` (so forgetting it changes nothing).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.rate == 0.0 || {
            self.refill(now);
            self.tokens >= self.burst
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(10.0, 3, t0);
        assert_eq!(r.take(t0), None);
        assert_eq!(r.take(t0), None);
        assert_eq!(r.take(t0), None);
        let wait = r.take(t0).unwrap();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // After waiting, the debt is paid and the next token comes at the rate.
        let t1 = t0 + wait;
        assert!(r.take(t1).unwrap() <= Duration::from_millis(101));
        assert_eq!(RateLimit::new(0.0, 1, t0).take(t0), None, "0 = unlimited");
        let mut r = RateLimit::new(10.0, 3, t0);
        for _ in 0..3 {
            r.take(t0);
        }
        assert_eq!(
            r.take(t0 + Duration::from_secs(60)),
            None,
            "tokens refill up to the burst"
        );
    }

    #[test]
    fn try_take_refuses_without_borrowing() {
        let t0 = Instant::now();
        // 10 a minute, 2 at once.
        let mut r = RateLimit::new(10.0 / 60.0, 2, t0);
        assert!(r.try_take(t0) && r.try_take(t0));
        assert!(!r.try_take(t0) && !r.try_take(t0), "refusals cost nothing");
        assert!(r.try_take(t0 + Duration::from_secs(6)));
        assert!(!r.is_full(t0 + Duration::from_secs(6)));
        assert!(r.is_full(t0 + Duration::from_secs(18)));
    }
}

/// Addresses remembered at most by a [`PerSource`]; beyond, those whose bucket has refilled are
/// forgotten first (forgetting a full bucket changes nothing), then all.
const MAX_SOURCES: usize = 65_536;

/// One bucket per address (an IPv6 /64) of `per_minute` a minute, in bursts of as many.
#[derive(Default)]
pub struct PerSource {
    /// What the buckets were made for: a reload that changes it changes every address's
    /// bucket, the addresses seen already included.
    per_minute: u32,
    by_source: std::collections::HashMap<crate::conn_cap::Source, RateLimit>,
}

impl PerSource {
    /// The bucket of `source`, for `per_minute`.
    pub fn bucket(
        &mut self,
        source: crate::conn_cap::Source,
        per_minute: u32,
        now: Instant,
    ) -> &mut RateLimit {
        let rate = f64::from(per_minute) / 60.0;
        if self.per_minute != per_minute {
            self.per_minute = per_minute;
            for bucket in self.by_source.values_mut() {
                bucket.set(rate, per_minute, now);
            }
        }
        let buckets = &mut self.by_source;
        if buckets.len() >= MAX_SOURCES && !buckets.contains_key(&source) {
            buckets.retain(|_, b| !b.is_full(now));
            if buckets.len() >= MAX_SOURCES {
                buckets.clear();
            }
        }
        buckets
            .entry(source)
            .or_insert_with(|| RateLimit::new(rate, per_minute, now))
    }
}
