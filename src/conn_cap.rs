//! Connection caps, in all and per source, for the listeners that accept TCP (TURN over TCP and
//! TLS; the web server has its own in all). One client, or one IPv6 /64 (which one machine can
//! fill with addresses), cannot take every slot; what is refused is counted, and the first
//! refusal of each kind logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where connections come from, as far as caps go: an IPv4 address, or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source(u128);

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Source(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Source((u128::from(v6) >> 64) | (1 << 127)),
        }
    }

    /// The IPv6 /48 a /64 belongs to (one site, which can use 65,536 /64s); `None` for IPv4.
    pub fn site(self) -> Option<Source> {
        (self.0 >> 127 == 1).then_some(Source(self.0 & !0xffff))
    }

    /// A stable name for keys shared with other processes (the cluster's Redis).
    pub fn key(self) -> String {
        format!("{:032x}", self.0)
    }
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapReached {
    Total,
    PerSource,
}

pub struct ConnCap {
    /// The config keys, for the log line.
    keys: (&'static str, &'static str),
    max_total: usize,
    max_per_source: usize,
    open: Mutex<Open>,
    refused_total: AtomicU64,
    refused_per_source: AtomicU64,
    logged_total: AtomicBool,
    logged_per_source: AtomicBool,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_source: HashMap<Source, usize>,
}

/// A held slot; dropping it frees it.
pub struct Slot {
    cap: Arc<ConnCap>,
    source: Source,
}

impl ConnCap {
    /// `keys` name the two config keys, for the log line; 0 means no per-source cap.
    pub fn new(
        max_total: usize,
        max_per_source: usize,
        keys: (&'static str, &'static str),
    ) -> Arc<ConnCap> {
        Arc::new(ConnCap {
            keys,
            max_total,
            max_per_source,
            open: Mutex::default(),
            refused_total: AtomicU64::new(0),
            refused_per_source: AtomicU64::new(0),
            logged_total: AtomicBool::new(false),
            logged_per_source: AtomicBool::new(false),
        })
    }

    /// A slot for a connection from `ip`, or why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, CapReached> {
        let source = Source::of(ip);
        let mut open = self.open.lock().unwrap();
        let from_source = open.by_source.get(&source).copied().unwrap_or(0);
        let refusal = if open.total >= self.max_total {
            Some(CapReached::Total)
        } else if self.max_per_source > 0 && from_source >= self.max_per_source {
            Some(CapReached::PerSource)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            drop(open);
            self.count(refusal, ip);
            return Err(refusal);
        }
        open.total += 1;
        open.by_source.insert(source, from_source + 1);
        Ok(Slot {
            cap: self.clone(),
            source,
        })
    }

    fn count(&self, refusal: CapReached, ip: IpAddr) {
        let (counter, logged, key, limit) = match refusal {
            CapReached::Total => (
                &self.refused_total,
                &self.logged_total,
                self.keys.0,
                self.max_total,
            ),
            CapReached::PerSource => (
                &self.refused_per_source,
                &self.logged_per_source,
                self.keys.1,
                self.max_per_source,
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if !logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "refused a connection from {ip}: {key} = {limit} reached; further refusals are \
                 only counted"
            );
        }
    }

    /// Open connections, and refusals since start (over the cap in all, over the cap per source).
    pub fn figures(&self) -> (usize, u64, u64) {
        (
            self.open.lock().unwrap().total,
            self.refused_total.load(Ordering::Relaxed),
            self.refused_per_source.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock().unwrap();
        open.total -= 1;
        if let Some(n) = open.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_and_per_source_and_slots_come_back() {
        let cap = ConnCap::new(3, 2, ("a", "b"));
        let one: IpAddr = "198.51.100.1".parse().unwrap();
        let two: IpAddr = "198.51.100.2".parse().unwrap();
        let a = cap.admit(one).unwrap();
        let _b = cap.admit(one).unwrap();
        assert_eq!(cap.admit(one).err(), Some(CapReached::PerSource));
        let _c = cap.admit(two).unwrap();
        assert_eq!(cap.admit(two).err(), Some(CapReached::Total));
        drop(a);
        assert!(cap.admit(one).is_ok(), "a freed slot is free again");
        assert_eq!(cap.figures().1, 1);
        assert_eq!(cap.figures().2, 1);
    }

    #[test]
    fn an_ipv6_64_is_one_source() {
        let cap = ConnCap::new(100, 2, ("a", "b"));
        let _x = cap.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _y = cap.admit("2001:db8:1:2:ffff::9".parse().unwrap()).unwrap();
        assert_eq!(
            cap.admit("2001:db8:1:2:abcd::1".parse().unwrap()).err(),
            Some(CapReached::PerSource)
        );
        assert!(cap.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
        // An IPv4-mapped address is its IPv4 address.
        let _m = cap.admit("::ffff:198.51.100.7".parse().unwrap()).unwrap();
        let _n = cap.admit("198.51.100.7".parse().unwrap()).unwrap();
        assert!(cap.admit("198.51.100.7".parse().unwrap()).is_err());
    }
}
