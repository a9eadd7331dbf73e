//! This relay's allocations as one unit: the table by 5-tuple, and what is counted from it
//! (the relay addresses and their IPs, allocations per user, per client address and per
//! lobby), kept in step by [`Allocations::insert`] and [`Allocations::remove`] alone.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::grants::Permission;
use super::server::FiveTuple;
use crate::conn_cap::Source;

pub(super) struct Channel {
    pub(super) peer: SocketAddr,
    pub(super) expires: Instant,
}

pub(super) struct Allocation {
    pub(super) relay: SocketAddr,
    pub(super) advertised: SocketAddr,
    pub(super) username: String,
    /// The lobby its credential is bound to, if any (see [`super::lobbies`]).
    pub(super) lobby: Option<u64>,
    pub(super) expires: Instant,
    /// Peer IP → expiry; `restricted` when only this server's own relay addresses on that IP
    /// may be reached (the IP itself is denied by policy).
    pub(super) permissions: HashMap<IpAddr, Permission>,
    pub(super) channels: HashMap<u16, Channel>,
}

#[derive(Default)]
pub(super) struct Allocations {
    by_tuple: HashMap<FiveTuple, Allocation>,
    /// Relay addresses (bound and advertised) of live allocations.
    relays: HashMap<SocketAddr, FiveTuple>,
    /// The IPs of those addresses, with how many addresses each carries.
    relay_ips: HashMap<IpAddr, usize>,
    per_user: HashMap<String, u32>,
    /// Per client address (an IPv6 /64).
    per_source: HashMap<Source, u32>,
    per_lobby: HashMap<u64, u32>,
}

impl Allocations {
    pub(super) fn len(&self) -> usize {
        self.by_tuple.len()
    }

    pub(super) fn get(&self, tuple: &FiveTuple) -> Option<&Allocation> {
        self.by_tuple.get(tuple)
    }

    pub(super) fn get_mut(&mut self, tuple: &FiveTuple) -> Option<&mut Allocation> {
        self.by_tuple.get_mut(tuple)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&FiveTuple, &Allocation)> {
        self.by_tuple.iter()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&FiveTuple, &mut Allocation)> {
        self.by_tuple.iter_mut()
    }

    /// The allocation whose relay address (bound or advertised) is `addr`.
    pub(super) fn at_relay(&self, addr: SocketAddr) -> Option<&Allocation> {
        self.by_tuple.get(self.relays.get(&addr)?)
    }

    /// Whether `ip` carries a relay address of a live allocation.
    pub(super) fn is_relay_ip(&self, ip: IpAddr) -> bool {
        self.relay_ips.contains_key(&ip)
    }

    pub(super) fn of_user(&self, username: &str) -> u32 {
        self.per_user.get(username).copied().unwrap_or(0)
    }

    pub(super) fn from(&self, source: Source) -> u32 {
        self.per_source.get(&source).copied().unwrap_or(0)
    }

    pub(super) fn in_lobby(&self, lobby: u64) -> u32 {
        self.per_lobby.get(&lobby).copied().unwrap_or(0)
    }

    pub(super) fn insert(&mut self, tuple: FiveTuple, a: Allocation) {
        for addr in [a.relay, a.advertised] {
            if self.relays.insert(addr, tuple).is_none() {
                *self.relay_ips.entry(addr.ip()).or_default() += 1;
            }
        }
        *self.per_user.entry(a.username.clone()).or_default() += 1;
        *self
            .per_source
            .entry(Source::of(tuple.client.ip()))
            .or_default() += 1;
        if let Some(l) = a.lobby {
            *self.per_lobby.entry(l).or_default() += 1;
        }
        self.by_tuple.insert(tuple, a);
    }

    /// Takes the allocation on `tuple` out, with whether it was its lobby's last.
    pub(super) fn remove(&mut self, tuple: &FiveTuple) -> Option<(Allocation, bool)> {
        let a = self.by_tuple.remove(tuple)?;
        for addr in [a.relay, a.advertised] {
            if self.relays.remove(&addr).is_some() {
                decrement(&mut self.relay_ips, addr.ip());
            }
        }
        decrement(&mut self.per_user, a.username.clone());
        decrement(&mut self.per_source, Source::of(tuple.client.ip()));
        let last_of_lobby = a
            .lobby
            .is_some_and(|l| decrement(&mut self.per_lobby, l) == 0);
        Some((a, last_of_lobby))
    }
}

/// Counts one fewer under `key`, forgetting it at zero; returns what is left.
fn decrement<K: std::hash::Hash + Eq, N: Copy + PartialEq + std::ops::SubAssign + From<u8>>(
    counts: &mut HashMap<K, N>,
    key: K,
) -> N {
    let Some(n) = counts.get_mut(&key) else {
        return N::from(0);
    };
    *n -= N::from(1);
    let left = *n;
    if left == N::from(0) {
        counts.remove(&key);
    }
    left
}
