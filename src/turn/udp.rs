//! TURN over UDP: one worker per CPU on each `turn.listen` address, each with its own
//! `SO_REUSEPORT` socket. The kernel sends a client's datagrams to one worker, so each worker
//! keeps its own map from client to allocation and the ChannelData path takes no lock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::batch::RecvBatch;
use super::control::Shared;
use super::relay::{Link, Relay};
use super::server::{FiveTuple, Proto};
use super::wire::{Packet, classify};

/// Datagrams taken from a listener socket per wake-up, and the most bytes of one: a longer
/// one (never a STUN message or a WebRTC packet) fills the window and is dropped.
const BATCH: usize = 32;
const MAX_DATAGRAM: usize = 4096;
/// How often a worker forgets deleted allocations.
const PRUNE_PERIOD: Duration = Duration::from_secs(5);

pub async fn worker(socket: Arc<UdpSocket>, server: SocketAddr, shared: Arc<Shared>) {
    let server = socket.local_addr().unwrap_or(server);
    let mut batch = RecvBatch::new(BATCH, MAX_DATAGRAM + 1, 0, MAX_DATAGRAM + 1);
    // Weak: a deleted allocation's socket closes at once, not when this map is pruned.
    let mut mine: HashMap<SocketAddr, Weak<Relay>> = HashMap::new();
    let mut prune = tokio::time::interval(PRUNE_PERIOD);
    loop {
        tokio::select! {
            received = batch.recv(&socket) => {
                // ICMP errors from earlier sends surface here; they concern one peer only.
                let Ok(n) = received else { continue };
                for i in 0..n {
                    let (slot, len, client) = batch.slot_mut(i);
                    let packet = &slot[..len];
                    let tuple = FiveTuple { proto: Proto::Udp, client, server };
                    let relay = mine.get(&client).and_then(Weak::upgrade).filter(|r| r.is_alive());
                    if len > MAX_DATAGRAM {
                        // Counted against the client's allocation when it has one.
                        if let Some(r) = relay {
                            r.traffic.drop_one();
                        }
                        continue;
                    }
                    match classify(packet) {
                        Packet::ChannelData(channel, payload) => {
                            if let Some(r) = relay.or_else(|| remember(&mut mine, shared.find(tuple))) {
                                r.channel_to_peer(channel, payload);
                            }
                        }
                        Packet::Send => {
                            if let Some(r) = relay.or_else(|| remember(&mut mine, shared.find(tuple))) {
                                r.send_indication(packet);
                            }
                        }
                        Packet::Control => {
                            let link = || Link::Udp { socket: socket.clone(), client };
                            let (replies, created) = shared.control(packet, tuple, link);
                            if let Some(r) = created {
                                mine.insert(client, Arc::downgrade(&r));
                            }
                            for reply in replies {
                                let _ = socket.send_to(&reply, client).await;
                            }
                        }
                        Packet::Junk => {}
                    }
                }
            }
            _ = prune.tick() => mine.retain(|_, r| r.strong_count() > 0),
        }
    }
}

fn remember(
    mine: &mut HashMap<SocketAddr, Weak<Relay>>,
    relay: Option<Arc<Relay>>,
) -> Option<Arc<Relay>> {
    let relay = relay?;
    mine.insert(relay.tuple.client, Arc::downgrade(&relay));
    Some(relay)
}
