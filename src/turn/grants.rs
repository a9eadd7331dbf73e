//! What one allocation may relay, as the data plane sees it: permissions, channels and the
//! bandwidth cap. The control plane ([`super::server`]) publishes a fresh [`Grants`] whenever they
//! change; the packet paths only read it, without locks or allocation.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::config::units::BitRate;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    pub expires: Instant,
    /// The IP is denied by policy; only this server's own relay addresses on it may be reached.
    pub restricted: bool,
}

#[derive(Clone, Debug)]
pub struct Grants {
    pub permissions: Vec<(IpAddr, Permission)>,
    pub channels: Vec<(u16, SocketAddr, Instant)>,
    pub bandwidth: BitRate,
}

impl Grants {
    pub fn empty(bandwidth: BitRate) -> Grants {
        Grants {
            permissions: Vec::new(),
            channels: Vec::new(),
            bandwidth,
        }
    }

    /// Whether a datagram may pass between the relay and `peer` (either direction).
    pub fn permits(
        &self,
        peer: SocketAddr,
        now: Instant,
        is_own_relay: impl Fn(SocketAddr) -> bool,
    ) -> bool {
        self.permissions
            .iter()
            .find(|(ip, _)| *ip == peer.ip())
            .is_some_and(|(_, p)| p.expires > now && (!p.restricted || is_own_relay(peer)))
    }

    /// The peer a client's ChannelData on `channel` goes to.
    pub fn peer_of(&self, channel: u16, now: Instant) -> Option<SocketAddr> {
        self.channels
            .iter()
            .find(|(n, _, expires)| *n == channel && *expires > now)
            .map(|(_, peer, _)| *peer)
    }

    /// The channel bound to `peer`, for relaying its datagrams as ChannelData.
    pub fn channel_of(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, p, expires)| *p == peer && *expires > now)
            .map(|(n, _, _)| *n)
    }
}

/// Bandwidth cap of one allocation, both directions together: the generic cell rate algorithm
/// on one atomic, so both directions' threads can charge it without a lock.
pub struct Meter {
    /// Theoretical arrival time of the next byte, in nanoseconds since `epoch`.
    tat: AtomicU64,
}

/// How far ahead of the rate a burst may run.
const BURST_NANOS: u64 = 200_000_000;

impl Meter {
    pub fn new() -> Meter {
        Meter {
            tat: AtomicU64::new(0),
        }
    }

    /// Charges `bytes` at `now_nanos`; false when over the rate (drop the datagram).
    pub fn allow(&self, rate: BitRate, bytes: usize, now_nanos: u64) -> bool {
        if rate.bits_per_second == 0 {
            return true;
        }
        let cost = (bytes as u64 * 8).saturating_mul(1_000_000_000) / rate.bits_per_second;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now_nanos);
            if start - now_nanos > BURST_NANOS {
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                start + cost,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

impl Default for Meter {
    fn default() -> Self {
        Meter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn permissions_by_ip_with_expiry_and_restriction() {
        let now = Instant::now();
        let later = now + Duration::from_secs(300);
        let g = Grants {
            permissions: vec![
                (
                    "203.0.113.5".parse().unwrap(),
                    Permission {
                        expires: later,
                        restricted: false,
                    },
                ),
                (
                    "127.0.0.1".parse().unwrap(),
                    Permission {
                        expires: later,
                        restricted: true,
                    },
                ),
            ],
            channels: vec![(0x4001, addr("203.0.113.5:5000"), later)],
            bandwidth: BitRate { bits_per_second: 0 },
        };
        let none = |_| false;
        assert!(
            g.permits(addr("203.0.113.5:1"), now, none),
            "any port of a permitted IP"
        );
        assert!(!g.permits(addr("203.0.113.6:1"), now, none));
        assert!(!g.permits(addr("203.0.113.5:1"), later, none), "expired");
        let own = |a: SocketAddr| a == addr("127.0.0.1:50000");
        assert!(
            g.permits(addr("127.0.0.1:50000"), now, own),
            "own relay address"
        );
        assert!(
            !g.permits(addr("127.0.0.1:22"), now, own),
            "but no other port on that IP"
        );
        assert_eq!(g.peer_of(0x4001, now), Some(addr("203.0.113.5:5000")));
        assert_eq!(g.channel_of(addr("203.0.113.5:5000"), now), Some(0x4001));
        assert_eq!(g.peer_of(0x4001, later), None);
        assert_eq!(g.peer_of(0x4002, now), None);
    }

    #[test]
    fn meter_holds_the_rate_after_a_burst() {
        let m = Meter::new();
        let rate = BitRate {
            bits_per_second: 8_000_000,
        }; // 1 MB/s
        let t0 = 10_000_000_000;
        // 1000-byte packets cost 1 ms each; the burst allows 200 ms ahead.
        let sent = (0..1000).filter(|_| m.allow(rate, 1000, t0)).count();
        assert_eq!(sent, 201);
        // Offered at twice the rate for a second: a second's worth passes, plus the burst.
        let start = t0 + 1_000_000_000;
        let more = (0..2000u64)
            .filter(|i| m.allow(rate, 1000, start + i * 500_000))
            .count();
        assert!((1000..=1201).contains(&more), "{more}");
        assert!(
            Meter::new().allow(BitRate { bits_per_second: 0 }, 1 << 20, 0),
            "0 = unlimited"
        );
    }
}
