//! The data plane of one allocation: its relay socket, the way back to its client, and the two
//! packet paths. Neither path allocates, locks or logs: a datagram is received into a buffer
//! with headroom, checked against the allocation's [`Grants`], framed in place and sent.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::grants::{Grants, Meter};
use super::server::FiveTuple;

/// Room in front of a received datagram for the largest header put there: a Data indication
/// with an IPv6 peer (20 header + 24 XOR-PEER-ADDRESS + 4 DATA header).
pub const HEADROOM: usize = 48;
/// Largest peer datagram relayed. WebRTC keeps packets near 1200 bytes; a bigger buffer per
/// allocation would cost memory for every idle player.
pub const MAX_PEER_DATAGRAM: usize = 2048;
/// A relay task's buffer: headroom, datagram, and padding to 4 for stream transports.
pub const RELAY_BUFFER: usize = HEADROOM + MAX_PEER_DATAGRAM + 4;

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const DATA_INDICATION: [u8; 2] = [0x00, 0x17];
const ATTR_XOR_PEER_ADDRESS: [u8; 2] = [0x00, 0x12];
const ATTR_DATA: [u8; 2] = [0x00, 0x13];

/// How datagrams reach the client.
pub enum Link {
    /// Through the listener socket the client talks to.
    Udp {
        socket: Arc<UdpSocket>,
        client: SocketAddr,
    },
    /// Through the client's TCP or TLS connection, whose writer drains this queue.
    Stream(mpsc::Sender<Vec<u8>>),
}

impl Link {
    fn is_stream(&self) -> bool {
        matches!(self, Link::Stream(_))
    }

    /// Sends without waiting: a full socket or queue drops the datagram, as UDP would.
    fn send(&self, frame: &[u8]) -> bool {
        match self {
            Link::Udp { socket, client } => send_now(socket, frame, *client),
            Link::Stream(tx) => tx.try_send(frame.to_vec()).is_ok(),
        }
    }
}

/// Packets and bytes relayed, per direction.
#[derive(Default)]
pub struct Counters {
    pub to_peer_packets: AtomicU64,
    pub to_peer_bytes: AtomicU64,
    pub to_client_packets: AtomicU64,
    pub to_client_bytes: AtomicU64,
    pub dropped: AtomicU64,
}

impl Counters {
    fn count(packets: &AtomicU64, bytes: &AtomicU64, n: usize) {
        packets.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

pub struct Relay {
    pub tuple: FiveTuple,
    pub socket: UdpSocket,
    link: Link,
    grants: ArcSwap<Grants>,
    meter: Meter,
    epoch: Instant,
    alive: AtomicBool,
    pub counters: Counters,
    /// Numbers the Data indications it sends (their transaction ids need only be distinct).
    sequence: AtomicU64,
}

impl Relay {
    pub fn new(tuple: FiveTuple, socket: UdpSocket, link: Link, grants: Arc<Grants>) -> Relay {
        Relay {
            tuple,
            socket,
            link,
            grants: ArcSwap::new(grants),
            meter: Meter::new(),
            epoch: Instant::now(),
            alive: AtomicBool::new(true),
            counters: Counters::default(),
            sequence: AtomicU64::new(0),
        }
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

    fn metered(&self, grants: &Grants, bytes: usize, now: Instant) -> bool {
        let nanos = now.duration_since(self.epoch).as_nanos() as u64;
        self.meter.allow(grants.bandwidth, bytes, nanos)
    }

    /// A client's ChannelData payload for `channel`.
    pub fn channel_to_peer(
        &self,
        channel: u16,
        payload: &[u8],
        own_relay: impl Fn(SocketAddr) -> bool,
    ) {
        let now = Instant::now();
        let grants = self.grants.load();
        let sent = grants
            .peer_of(channel, now)
            .filter(|&peer| {
                grants.permits(peer, now, &own_relay) && self.metered(&grants, payload.len(), now)
            })
            .is_some_and(|peer| send_now(&self.socket, payload, peer));
        self.account_to_peer(sent, payload.len());
    }

    /// The payload of a client's Send indication for `peer`.
    pub fn send_to_peer(
        &self,
        peer: SocketAddr,
        payload: &[u8],
        own_relay: impl Fn(SocketAddr) -> bool,
    ) {
        let now = Instant::now();
        let grants = self.grants.load();
        let sent = grants.permits(peer, now, own_relay)
            && self.metered(&grants, payload.len(), now)
            && send_now(&self.socket, payload, peer);
        self.account_to_peer(sent, payload.len());
    }

    fn account_to_peer(&self, sent: bool, n: usize) {
        let c = &self.counters;
        if sent {
            Counters::count(&c.to_peer_packets, &c.to_peer_bytes, n);
        } else {
            c.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A peer's datagram, received at `buf[HEADROOM..HEADROOM + len]`, on its way to the client.
    pub fn peer_to_client(
        &self,
        buf: &mut [u8; RELAY_BUFFER],
        len: usize,
        peer: SocketAddr,
        own_relay: impl Fn(SocketAddr) -> bool,
    ) {
        let now = Instant::now();
        let grants = self.grants.load();
        if !grants.permits(peer, now, own_relay) || !self.metered(&grants, len, now) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let frame = match grants.channel_of(peer, now) {
            Some(channel) => channel_data(buf, channel, len, self.link.is_stream()),
            None => {
                let n = self.sequence.fetch_add(1, Ordering::Relaxed);
                data_indication(buf, peer, len, n)
            }
        };
        let c = &self.counters;
        if self.link.send(&buf[frame]) {
            Counters::count(&c.to_client_packets, &c.to_client_bytes, len);
        } else {
            c.dropped.fetch_add(1, Ordering::Relaxed);
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

/// Reads peer datagrams on the relay socket until the allocation is deleted (the task is
/// aborted then).
pub async fn run(relay: Arc<Relay>, own_relay: impl Fn(SocketAddr) -> bool) {
    let mut buf = [0u8; RELAY_BUFFER];
    loop {
        // One byte more than relayed: UDP truncates silently, and a datagram that fills the
        // slice was longer than that.
        let window = &mut buf[HEADROOM..HEADROOM + MAX_PEER_DATAGRAM + 1];
        let Ok((len, peer)) = relay.socket.recv_from(window).await else {
            // ICMP errors from earlier sends surface here; they concern one peer, not the socket.
            continue;
        };
        if len > MAX_PEER_DATAGRAM {
            relay.counters.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        relay.peer_to_client(&mut buf, len, peer, &own_relay);
    }
}

/// Frames `buf[HEADROOM..HEADROOM + len]` as ChannelData (RFC 8656 §12.4); on stream transports
/// the frame is padded to a multiple of 4.
pub fn channel_data(buf: &mut [u8], channel: u16, len: usize, pad: bool) -> Range<usize> {
    let start = HEADROOM - 4;
    buf[start..start + 2].copy_from_slice(&channel.to_be_bytes());
    buf[start + 2..HEADROOM].copy_from_slice(&(len as u16).to_be_bytes());
    let mut end = HEADROOM + len;
    if pad {
        let padded = HEADROOM + len.next_multiple_of(4);
        buf[end..padded].fill(0);
        end = padded;
    }
    start..end
}

/// Frames `buf[HEADROOM..HEADROOM + len]` as a Data indication from `peer` (RFC 8656 §11.4),
/// with a transaction id made from `sequence`.
pub fn data_indication(
    buf: &mut [u8],
    peer: SocketAddr,
    len: usize,
    sequence: u64,
) -> Range<usize> {
    let address_len = if peer.is_ipv4() { 8 } else { 20 };
    let start = HEADROOM - 4 - (4 + address_len) - 20;
    let mut txid = [0u8; 12];
    txid[4..].copy_from_slice(&sequence.to_be_bytes());
    let padded = len.next_multiple_of(4);
    let body = 4 + address_len + 4 + padded;

    let h = &mut buf[start..HEADROOM];
    h[0..2].copy_from_slice(&DATA_INDICATION);
    h[2..4].copy_from_slice(&(body as u16).to_be_bytes());
    h[4..8].copy_from_slice(&MAGIC_COOKIE);
    h[8..20].copy_from_slice(&txid);
    h[20..22].copy_from_slice(&ATTR_XOR_PEER_ADDRESS);
    h[22..24].copy_from_slice(&(address_len as u16).to_be_bytes());
    h[24] = 0;
    h[25] = if peer.is_ipv4() { 1 } else { 2 };
    let port = peer.port() ^ 0x2112;
    h[26..28].copy_from_slice(&port.to_be_bytes());
    match peer {
        SocketAddr::V4(v4) => {
            for (i, b) in v4.ip().octets().iter().enumerate() {
                h[28 + i] = b ^ MAGIC_COOKIE[i];
            }
        }
        SocketAddr::V6(v6) => {
            for (i, b) in v6.ip().octets().iter().enumerate() {
                let key = if i < 4 { MAGIC_COOKIE[i] } else { txid[i - 4] };
                h[28 + i] = b ^ key;
            }
        }
    }
    let d = 28 + address_len - 4;
    h[d..d + 2].copy_from_slice(&ATTR_DATA);
    h[d + 2..d + 4].copy_from_slice(&(len as u16).to_be_bytes());
    buf[HEADROOM + len..HEADROOM + padded].fill(0);
    start..HEADROOM + padded
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::message::{CLASS_INDICATION, Getter, METHOD_DATA, Message, MessageType};
    use turn::proto::data::Data;
    use turn::proto::peeraddr::PeerAddress;

    fn with_payload(payload: &[u8]) -> [u8; RELAY_BUFFER] {
        let mut buf = [0xAA; RELAY_BUFFER];
        buf[HEADROOM..HEADROOM + payload.len()].copy_from_slice(payload);
        buf
    }

    #[test]
    fn channel_data_frames_with_and_without_padding() {
        let mut buf = with_payload(b"hello");
        let f = channel_data(&mut buf, 0x4001, 5, false);
        assert_eq!(&buf[f], b"\x40\x01\x00\x05hello");
        let f = channel_data(&mut buf, 0x4001, 5, true);
        assert_eq!(&buf[f], b"\x40\x01\x00\x05hello\0\0\0");
    }

    #[test]
    fn data_indications_decode_with_the_stun_crate() {
        for peer in ["203.0.113.9:40000", "[2001:db8::9]:40000"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let mut buf = with_payload(b"payload");
            let f = data_indication(&mut buf, peer, 7, 42);
            let mut m = Message::new();
            m.raw = buf[f].to_vec();
            m.decode().unwrap();
            assert_eq!(m.typ, MessageType::new(METHOD_DATA, CLASS_INDICATION));
            let mut data = Data::default();
            data.get_from(&m).unwrap();
            assert_eq!(data.0, b"payload");
            let mut from = PeerAddress::default();
            from.get_from(&m).unwrap();
            assert_eq!(SocketAddr::new(from.ip, from.port), peer);
        }
    }
}
