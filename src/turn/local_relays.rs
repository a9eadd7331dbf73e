//! This server's allocations by relay address, for the packet paths. A packet relayed to one of
//! them is handed to that allocation in memory instead of through the kernel (two browsers on
//! this relay, the usual case, exchange every packet that way), and the lobby rule — a
//! lobby-bound relay reaches relays of its own lobby only — is checked without the control lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use super::lobbies::may_reach;
use super::relay::Relay;

#[derive(Default)]
pub struct LocalRelays {
    /// Each allocation under its relay address and, when they differ, its advertised one.
    relays: RwLock<HashMap<SocketAddr, Arc<Relay>>>,
}

impl LocalRelays {
    pub fn insert(&self, relay: &Arc<Relay>) {
        let mut relays = self.relays.write().unwrap();
        for addr in relay.addresses() {
            relays.insert(addr, relay.clone());
        }
    }

    pub fn remove(&self, relay: &Relay) {
        let mut relays = self.relays.write().unwrap();
        for addr in relay.addresses() {
            relays.remove(&addr);
        }
    }

    /// The allocation at `addr`, if a relay bound to `lobby` may exchange packets with it.
    pub fn reachable(&self, lobby: Option<u64>, addr: SocketAddr) -> Option<Arc<Relay>> {
        let relay = self.relays.read().unwrap().get(&addr)?.clone();
        may_reach(lobby, relay.lobby).then_some(relay)
    }
}
