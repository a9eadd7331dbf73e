//! The data plane of one allocation: its relay socket, the way back to its client, and the two
//! packet paths. Neither path allocates or logs: a datagram is received into a buffer with
//! headroom, checked against the allocation's [`Grants`], framed in place and sent. A datagram
//! for another allocation of this server goes to it in memory ([`LocalRelays`]), through the same
//! checks on both sides as if it had crossed the kernel.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;

use super::batch::RecvBatch;
use super::grants::{Grants, Meter};
use super::local_relays::LocalRelays;
use super::server::FiveTuple;
use super::stream_queue::StreamQueue;
use super::wire::{self, HEADROOM, channel_data, data_indication};

/// Largest peer datagram relayed. WebRTC keeps packets near 1200 bytes; a bigger buffer per
/// allocation would cost memory for every idle player.
pub const MAX_PEER_DATAGRAM: usize = 2048;
/// A relay task's buffer: headroom, datagram, and padding to 4 for stream transports.
pub const RELAY_BUFFER: usize = HEADROOM + MAX_PEER_DATAGRAM + 4;

/// How datagrams reach the client.
pub enum Link {
    /// Through the listener socket the client talks to.
    Udp {
        socket: Arc<UdpSocket>,
        client: SocketAddr,
    },
    /// Through the client's TCP or TLS connection, whose writer drains this queue.
    Stream(Arc<StreamQueue>),
}

impl Link {
    fn is_stream(&self) -> bool {
        matches!(self, Link::Stream(_))
    }

    /// Sends without waiting: a full socket or queue drops the datagram, as UDP would.
    fn send(&self, frame: &[u8]) -> bool {
        match self {
            Link::Udp { socket, client } => send_now(socket, frame, *client),
            Link::Stream(queue) => queue.push(frame),
        }
    }
}

/// Packets and bytes one allocation relayed, per direction, counted as they go.
#[derive(Default)]
pub struct Traffic {
    to_peer_packets: AtomicU64,
    to_peer_bytes: AtomicU64,
    to_client_packets: AtomicU64,
    to_client_bytes: AtomicU64,
    /// Of the to-peer packets, those handed to another allocation of this server in memory.
    in_memory_packets: AtomicU64,
    dropped: AtomicU64,
    /// Of the dropped, those over `turn.max_bandwidth_per_allocation`.
    over_bandwidth: AtomicU64,
}

/// [`Traffic`] read at one moment, or summed over allocations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    pub to_peer_packets: u64,
    pub to_peer_bytes: u64,
    pub to_client_packets: u64,
    pub to_client_bytes: u64,
    pub in_memory_packets: u64,
    /// No permission, over bandwidth, or a full socket or queue.
    pub dropped: u64,
    /// Of those, over `turn.max_bandwidth_per_allocation`.
    pub over_bandwidth: u64,
}

impl Traffic {
    fn count(packets: &AtomicU64, bytes: &AtomicU64, n: usize) {
        packets.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn totals(&self) -> TrafficTotals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TrafficTotals {
            to_peer_packets: get(&self.to_peer_packets),
            to_peer_bytes: get(&self.to_peer_bytes),
            to_client_packets: get(&self.to_client_packets),
            to_client_bytes: get(&self.to_client_bytes),
            in_memory_packets: get(&self.in_memory_packets),
            dropped: get(&self.dropped),
            over_bandwidth: get(&self.over_bandwidth),
        }
    }
}

impl std::ops::AddAssign for TrafficTotals {
    fn add_assign(&mut self, other: TrafficTotals) {
        self.to_peer_packets += other.to_peer_packets;
        self.to_peer_bytes += other.to_peer_bytes;
        self.to_client_packets += other.to_client_packets;
        self.to_client_bytes += other.to_client_bytes;
        self.in_memory_packets += other.in_memory_packets;
        self.dropped += other.dropped;
        self.over_bandwidth += other.over_bandwidth;
    }
}

/// An allocation has gone over its bandwidth cap since start: that was logged.
static OVER_BANDWIDTH_TOLD: AtomicBool = AtomicBool::new(false);

/// This server's own TURN listener addresses: never a peer, or a client could make the relay
/// talk to the server itself (and allocate through it).
pub type OwnListeners = Arc<HashSet<SocketAddr>>;

pub struct Relay {
    pub tuple: FiveTuple,
    /// The relay socket's address, and the one clients are told (`turn.external_ip`'s port).
    pub addr: SocketAddr,
    pub advertised: SocketAddr,
    /// The lobby its credential is bound to: it exchanges packets with relay addresses of that
    /// lobby's allocations only.
    pub lobby: Option<u64>,
    pub socket: UdpSocket,
    link: Link,
    own_listeners: OwnListeners,
    local_relays: Arc<LocalRelays>,
    grants: ArcSwap<Grants>,
    meter: Meter,
    epoch: Instant,
    alive: AtomicBool,
    pub traffic: Traffic,
    /// Numbers the Data indications it sends (their transaction ids need only be distinct).
    sequence: AtomicU64,
}

/// Where a relay sits and what it shares with the others.
pub struct Site {
    pub addr: SocketAddr,
    pub advertised: SocketAddr,
    pub own_listeners: OwnListeners,
    pub local_relays: Arc<LocalRelays>,
}

impl Relay {
    pub fn new(
        tuple: FiveTuple,
        socket: UdpSocket,
        link: Link,
        grants: Arc<Grants>,
        placement: Site,
        lobby: Option<u64>,
    ) -> Relay {
        Relay {
            tuple,
            addr: placement.addr,
            advertised: placement.advertised,
            lobby,
            socket,
            link,
            own_listeners: placement.own_listeners,
            local_relays: placement.local_relays,
            grants: ArcSwap::new(grants),
            meter: Meter::new(),
            epoch: Instant::now(),
            alive: AtomicBool::new(true),
            traffic: Traffic::default(),
            sequence: AtomicU64::new(0),
        }
    }

    /// The addresses it is known by: the relay address, and the advertised one if it differs.
    pub fn addresses(&self) -> impl Iterator<Item = SocketAddr> {
        let other = (self.advertised != self.addr).then_some(self.advertised);
        std::iter::once(self.addr).chain(other)
    }

    pub fn set_grants(&self, grants: Arc<Grants>) {
        self.grants.store(grants);
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    pub fn retire(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }

    /// Whether `bytes` fit in the allocation's bandwidth cap; those that do not are counted
    /// (the caller drops them), and the first time since start is logged.
    fn metered(&self, grants: &Grants, bytes: usize, now: Instant) -> bool {
        let nanos = now.duration_since(self.epoch).as_nanos() as u64;
        let fits = self.meter.allow(grants.bandwidth, bytes, nanos);
        if !fits {
            self.traffic.over_bandwidth.fetch_add(1, Ordering::Relaxed);
            if !OVER_BANDWIDTH_TOLD.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "turn: an allocation went over turn.max_bandwidth_per_allocation ({} bit/s); \
                     what goes over it is dropped (further drops are only counted, in \
                     rallypoint_turn_bandwidth_dropped_packets_total)",
                    grants.bandwidth.bits_per_second
                );
            }
        }
        fits
    }

    /// A client's ChannelData payload for `channel`.
    pub fn channel_to_peer(&self, channel: u16, payload: &[u8]) {
        let now = Instant::now();
        let grants = self.grants.load();
        let sent = grants
            .peer_of(channel, now)
            .is_some_and(|peer| self.forward(&grants, now, peer, payload));
        self.account_to_peer(sent, payload.len());
    }

    /// The payload of a client's Send indication for `peer`.
    pub fn send_to_peer(&self, peer: SocketAddr, payload: &[u8]) {
        let now = Instant::now();
        let sent = self.forward(&self.grants.load(), now, peer, payload);
        self.account_to_peer(sent, payload.len());
    }

    /// Sends to `peer` if the grants permit it and the bandwidth allows: to another allocation
    /// of this server in memory, else through the relay socket.
    fn forward(&self, grants: &Grants, now: Instant, peer: SocketAddr, payload: &[u8]) -> bool {
        // Every allocation shares this one's relay and advertised IPs: only a peer on them can
        // be one of ours, so no other packet takes the local_relays's lock.
        let ours = [self.addr.ip(), self.advertised.ip()]
            .contains(&peer.ip())
            .then(|| self.local_relays.reachable(self.lobby, peer))
            .flatten();
        if !grants.permits(peer, now, |_| ours.is_some())
            || self.own_listeners.contains(&peer)
            || !self.metered(grants, payload.len(), now)
        {
            return false;
        }
        match ours {
            Some(other) => {
                // The address the other one would have seen through the kernel.
                let from = if peer == other.addr {
                    self.addr
                } else {
                    self.advertised
                };
                other.receive_from_relay(from, payload);
                self.traffic
                    .in_memory_packets
                    .fetch_add(1, Ordering::Relaxed);
                true
            }
            None => send_now(&self.socket, payload, peer),
        }
    }

    /// A client's Send indication (XOR-PEER-ADDRESS and DATA): relayed if permitted, never
    /// answered.
    pub fn send_indication(&self, packet: &[u8]) {
        if let Some((peer, data)) = wire::send_indication(packet) {
            self.send_to_peer(peer, data);
        }
    }

    /// A datagram another allocation of this server relayed to this one, as `from`: handled
    /// as if it had arrived on the relay socket.
    fn receive_from_relay(&self, from: SocketAddr, payload: &[u8]) {
        if payload.len() > MAX_PEER_DATAGRAM {
            self.traffic.drop_one();
            return;
        }
        let mut buf = [0u8; RELAY_BUFFER];
        buf[HEADROOM..HEADROOM + payload.len()].copy_from_slice(payload);
        self.peer_to_client(&mut buf, payload.len(), from);
    }

    fn account_to_peer(&self, sent: bool, n: usize) {
        let t = &self.traffic;
        if sent {
            Traffic::count(&t.to_peer_packets, &t.to_peer_bytes, n);
        } else {
            t.drop_one();
        }
    }

    /// A peer's datagram, received at `buf[HEADROOM..HEADROOM + len]`, on its way to the client.
    pub fn peer_to_client(&self, buf: &mut [u8; RELAY_BUFFER], len: usize, peer: SocketAddr) {
        let now = Instant::now();
        let grants = self.grants.load();
        let ours = |p| self.local_relays.reachable(self.lobby, p).is_some();
        if !grants.permits(peer, now, ours) || !self.metered(&grants, len, now) {
            self.traffic.drop_one();
            return;
        }
        let frame = match grants.channel_of(peer, now) {
            Some(channel) => channel_data(buf, channel, len, self.link.is_stream()),
            None => {
                let n = self.sequence.fetch_add(1, Ordering::Relaxed);
                data_indication(buf, peer, len, n)
            }
        };
        let t = &self.traffic;
        if self.link.send(&buf[frame]) {
            Traffic::count(&t.to_client_packets, &t.to_client_bytes, len);
        } else {
            t.drop_one();
        }
    }
}

/// Sends a datagram or drops it, without waiting. Straight to the kernel: tokio's `try_send_to`
/// refuses until the reactor has seen the socket writable once, which dropped the first datagram
/// of a fresh allocation when the reactor was busy.
fn send_now(socket: &UdpSocket, payload: &[u8], to: SocketAddr) -> bool {
    socket2::SockRef::from(socket)
        .send_to(payload, &to.into())
        .is_ok()
}

/// Datagrams taken from a relay socket per wake-up. A relay socket usually holds one; what
/// matters is that a short batch ends the wake-up without a call that meets EAGAIN.
const RELAY_BATCH: usize = 8;

thread_local! {
    /// The receive buffers of the relay tasks running on this thread: a task holds none while
    /// it waits, so an idle allocation costs no buffer.
    static SCRATCH: RefCell<RecvBatch> = RefCell::new(RecvBatch::new(
        RELAY_BATCH,
        RELAY_BUFFER,
        HEADROOM,
        // One byte more than relayed: UDP truncates silently, and a datagram that fills the
        // window was longer than that.
        MAX_PEER_DATAGRAM + 1,
    ));
}

/// Reads peer datagrams on the relay socket until the allocation is deleted (the task is
/// aborted then).
pub async fn run(relay: Arc<Relay>) {
    loop {
        if relay.socket.readable().await.is_err() {
            continue;
        }
        SCRATCH.with_borrow_mut(|batch| {
            // WouldBlock (nothing after all) or an ICMP error from an earlier send, which
            // concerns one peer, not the socket: wait again either way.
            let Ok(n) = batch.try_recv(&relay.socket) else {
                return;
            };
            for i in 0..n {
                let (slot, len, peer) = batch.slot_mut(i);
                if len > MAX_PEER_DATAGRAM {
                    relay.traffic.drop_one();
                    continue;
                }
                let slot: &mut [u8; RELAY_BUFFER] =
                    slot.try_into().expect("slots are RELAY_BUFFER");
                relay.peer_to_client(slot, len, peer);
            }
        });
    }
}
