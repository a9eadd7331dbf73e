//! The STUN/TURN relay. [`server`] is the protocol's control plane as a sans-IO state machine;
//! [`relay`] is the data plane of one allocation; this module is the network shell around them:
//!
//! - UDP: one worker per CPU on each `turn.listen` address, each with its own `SO_REUSEPORT`
//!   socket. The kernel sends a client's datagrams to one worker, so each worker keeps its own
//!   map from client to allocation and the ChannelData path needs no lock.
//! - TCP and TLS: one task per connection; its allocation dies with it.
//! - Control requests (Allocate, Refresh, ...) go through one mutex around the core; a tick task
//!   expires state every second and publishes metrics.

pub mod auth;
mod framing;
pub mod grants;
pub mod policy;
mod ports;
mod relay;
pub mod server;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, RelayIp};
use crate::credentials::local_address_for;
use crate::tls::{Certificates, HANDSHAKE_TIMEOUT};
use grants::Grants;
use ports::SocketPorts;
use relay::{Link, Relay};
use server::{Clock, Effect, FiveTuple, Proto, Server, Settings};

/// Largest datagram a client may send (the IP maximum).
const MAX_DATAGRAM: usize = 65_535;
/// A TCP client without an allocation that sends nothing for this long is disconnected.
const TCP_IDLE_BEFORE_ALLOCATION: Duration = Duration::from_secs(30);
/// With an allocation, the client refreshes well within its lifetime.
const TCP_IDLE_WITH_ALLOCATION: Duration = Duration::from_secs(3600);
/// Frames waiting for a slow stream client.
const STREAM_QUEUE: usize = 512;
/// How often workers forget deleted allocations, and the core is ticked.
const PRUNE_PERIOD: Duration = Duration::from_secs(5);
const TICK_PERIOD: Duration = Duration::from_secs(1);

/// Allocation state shared by the workers and connections.
struct Shared {
    control: Mutex<Control>,
}

struct Control {
    server: Server,
    ports: SocketPorts,
    relays: HashMap<FiveTuple, (Arc<Relay>, AbortHandle)>,
    bandwidth: crate::config::units::BitRate,
    /// Counters of allocations already deleted, so totals never go down.
    retired: [u64; 5],
}

fn clock() -> Clock {
    Clock {
        now: Instant::now(),
        unix: crate::credentials::unix_seconds(SystemTime::now()),
    }
}

impl Shared {
    fn is_own_relay(self: &Arc<Self>, addr: SocketAddr) -> bool {
        self.control.lock().unwrap().server.is_own_relay(addr)
    }

    /// Runs a control request through the core. Returns the replies for the client and, when
    /// this request created an allocation, its relay.
    fn control(
        self: &Arc<Self>,
        packet: &[u8],
        tuple: FiveTuple,
        link: impl FnOnce() -> Link,
    ) -> (Vec<Vec<u8>>, Option<Arc<Relay>>) {
        let mut c = self.control.lock().unwrap();
        let c = &mut *c;
        let effects = c.server.handle(packet, tuple, clock(), &mut c.ports);
        let mut link = Some(link);
        let mut replies = Vec::new();
        let mut created = None;
        for effect in effects {
            match effect {
                Effect::Reply(bytes) => replies.push(bytes),
                Effect::Created { tuple, relay, .. } => {
                    let Some(make_link) = link.take() else {
                        continue;
                    };
                    match self.start_relay(c, tuple, relay, make_link()) {
                        Ok(r) => created = Some(r),
                        Err(e) => log::error!("turn: cannot start relay {relay}: {e}"),
                    }
                }
                other => self.apply(c, other),
            }
        }
        (replies, created)
    }

    fn start_relay(
        self: &Arc<Self>,
        c: &mut Control,
        tuple: FiveTuple,
        addr: SocketAddr,
        link: Link,
    ) -> std::io::Result<Arc<Relay>> {
        let socket = c
            .ports
            .take(addr)
            .ok_or_else(|| std::io::Error::other("relay socket missing"))?;
        let socket = UdpSocket::from_std(socket)?;
        let relay = Arc::new(Relay::new(
            tuple,
            socket,
            link,
            Arc::new(Grants::empty(c.bandwidth)),
        ));
        let shared = self.clone();
        let task = tokio::spawn(relay::run(relay.clone(), move |a| shared.is_own_relay(a)));
        c.relays.insert(tuple, (relay.clone(), task.abort_handle()));
        Ok(relay)
    }

    fn apply(&self, c: &mut Control, effect: Effect) {
        match effect {
            Effect::Grants { tuple, grants } => {
                if let Some((r, _)) = c.relays.get(&tuple) {
                    r.set_grants(grants);
                }
            }
            Effect::Deleted { tuple, .. } => {
                if let Some((r, task)) = c.relays.remove(&tuple) {
                    r.retire();
                    task.abort();
                    for (total, n) in c.retired.iter_mut().zip(counts(&r)) {
                        *total += n;
                    }
                }
            }
            Effect::Reply(_) | Effect::Created { .. } => {}
        }
    }

    /// The allocation of `tuple`, for a worker that has not seen it yet.
    fn find(&self, tuple: FiveTuple) -> Option<Arc<Relay>> {
        self.control
            .lock()
            .unwrap()
            .relays
            .get(&tuple)
            .map(|(r, _)| r.clone())
    }

    fn connection_closed(&self, tuple: FiveTuple) {
        let mut c = self.control.lock().unwrap();
        let c = &mut *c;
        for effect in c.server.connection_closed(tuple, &mut c.ports) {
            self.apply(c, effect);
        }
    }

    fn tick(&self) {
        let mut c = self.control.lock().unwrap();
        let c = &mut *c;
        for effect in c.server.tick(clock(), &mut c.ports) {
            self.apply(c, effect);
        }
    }
}

fn counts(r: &Relay) -> [u64; 5] {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &r.counters;
    [
        c.to_peer_packets.load(Relaxed),
        c.to_peer_bytes.load(Relaxed),
        c.to_client_packets.load(Relaxed),
        c.to_client_bytes.load(Relaxed),
        c.dropped.load(Relaxed),
    ]
}

/// The relay's addresses per family: `turn.relay_ip`, or for "auto" each listener's own
/// address (the default route's interface for a wildcard listener).
fn relay_addresses(config: &Config) -> (Option<IpAddr>, Option<IpAddr>) {
    let mut v4 = None;
    let mut v6 = None;
    if let RelayIp::Fixed(ip) = config.turn.relay_ip {
        if ip.is_ipv4() {
            v4 = Some(ip)
        } else {
            v6 = Some(ip)
        }
    }
    for listen in &config.turn.listen {
        let slot = if listen.is_ipv4() { &mut v4 } else { &mut v6 };
        slot.get_or_insert_with(|| local_address_for(*listen));
    }
    (v4, v6)
}

/// TURN metrics, published from the core's counters and the allocations' own.
#[derive(Default)]
struct Metrics {
    allocations: Gauge,
    allocations_total: Counter,
    packets: Family<Vec<(&'static str, &'static str)>, Counter>,
    bytes: Family<Vec<(&'static str, &'static str)>, Counter>,
    dropped: Counter,
    errors: Family<Vec<(&'static str, String)>, Counter>,
}

impl Metrics {
    fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("turn");
        r.register("allocations", "Live allocations", self.allocations.clone());
        r.register(
            "allocations_created",
            "Allocations created",
            self.allocations_total.clone(),
        );
        r.register(
            "relayed_packets",
            "Datagrams relayed, by direction",
            self.packets.clone(),
        );
        r.register(
            "relayed_bytes",
            "Payload bytes relayed, by direction",
            self.bytes.clone(),
        );
        r.register(
            "dropped_packets",
            "Datagrams dropped: no permission, over bandwidth, full buffers",
            self.dropped.clone(),
        );
        r.register(
            "error_responses",
            "Error responses sent, by code",
            self.errors.clone(),
        );
    }

    fn publish(&self, shared: &Shared, last: &mut [u64; 7], last_errors: &mut HashMap<u16, u64>) {
        let c = shared.control.lock().unwrap();
        let mut now = [0u64; 7];
        now[..5].copy_from_slice(&c.retired);
        for (r, _) in c.relays.values() {
            for (total, n) in now.iter_mut().zip(counts(r)) {
                *total += n;
            }
        }
        now[5] = c.server.stats().allocations_total;
        self.allocations.set(c.server.allocation_count() as i64);
        let delta = |i: usize| now[i].saturating_sub(last[i]);
        self.packets
            .get_or_create(&vec![("direction", "to_peer")])
            .inc_by(delta(0));
        self.bytes
            .get_or_create(&vec![("direction", "to_peer")])
            .inc_by(delta(1));
        self.packets
            .get_or_create(&vec![("direction", "to_client")])
            .inc_by(delta(2));
        self.bytes
            .get_or_create(&vec![("direction", "to_client")])
            .inc_by(delta(3));
        self.dropped.inc_by(delta(4));
        self.allocations_total.inc_by(delta(5));
        for (code, &n) in &c.server.stats().errors {
            let before = last_errors.insert(*code, n).unwrap_or(0);
            self.errors
                .get_or_create(&vec![("code", code.to_string())])
                .inc_by(n - before);
        }
        *last = now;
    }
}

/// The relay's figures the web server reports (`/healthz`, the self-test's status), as last
/// published by the metrics tick.
#[derive(Clone)]
pub struct Stats {
    allocations: Gauge,
    bytes: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl Stats {
    pub fn allocations(&self) -> i64 {
        self.allocations.get()
    }

    /// Payload bytes relayed in both directions since start.
    pub fn relayed_bytes(&self) -> u64 {
        ["to_peer", "to_client"]
            .iter()
            .map(|d| self.bytes.get_or_create(&vec![("direction", *d)]).get())
            .sum()
    }
}

/// Registers the relay's metrics; returns its [`Stats`] and the task that serves `turn.listen`
/// and `turn.tls_listen` until shutdown.
pub fn start(
    udp: Vec<(SocketAddr, Vec<UdpSocket>)>,
    tcp: Vec<TcpListener>,
    tls: Vec<TcpListener>,
    certificates: Arc<Certificates>,
    mut config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
    registry: &mut Registry,
) -> (Stats, impl Future<Output = ()> + use<>) {
    let metrics = Metrics::default();
    metrics.register(registry);
    let stats = Stats {
        allocations: metrics.allocations.clone(),
        bytes: metrics.bytes.clone(),
    };
    let current = config.borrow().clone();
    let (v4, v6) = relay_addresses(&current);
    log::info!(
        "turn: relaying on {} ports {}",
        [v4, v6]
            .iter()
            .flatten()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        current.turn.relay_ports
    );
    let shared = Arc::new(Shared {
        control: Mutex::new(Control {
            server: Server::new(Settings::from(&current.turn)),
            ports: SocketPorts::new(v4, v6, current.turn.relay_ports),
            relays: HashMap::new(),
            bandwidth: current.turn.max_bandwidth_per_allocation,
            retired: [0; 5],
        }),
    });
    let task = async move {
        let mut tasks = JoinSet::new();
        for (addr, sockets) in udp {
            for socket in sockets {
                tasks.spawn(udp_worker(Arc::new(socket), addr, shared.clone()));
            }
        }
        for listener in tcp {
            tasks.spawn(accept_tcp(listener, None, shared.clone()));
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(certificates.server_config(&[]));
        for listener in tls {
            tasks.spawn(accept_tcp(listener, Some(acceptor.clone()), shared.clone()));
        }
        let mut tick = tokio::time::interval(TICK_PERIOD);
        let mut published = [0u64; 7];
        let mut published_errors = HashMap::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    shared.tick();
                    metrics.publish(&shared, &mut published, &mut published_errors);
                }
                Ok(()) = config.changed() => {
                    let new = config.borrow_and_update().clone();
                    let mut c = shared.control.lock().unwrap();
                    c.server.set_settings(Settings::from(&new.turn));
                    c.bandwidth = new.turn.max_bandwidth_per_allocation;
                }
                _ = shutdown.cancelled() => break,
            }
        }
        tasks.abort_all();
        let mut c = shared.control.lock().unwrap();
        for (_, (relay, task)) in c.relays.drain() {
            relay.retire();
            task.abort();
        }
    };
    (stats, task)
}

async fn udp_worker(socket: Arc<UdpSocket>, server: SocketAddr, shared: Arc<Shared>) {
    let server = socket.local_addr().unwrap_or(server);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Weak: a deleted allocation's socket closes at once, not when this map is pruned.
    let mut mine: HashMap<SocketAddr, Weak<Relay>> = HashMap::new();
    let mut prune = tokio::time::interval(PRUNE_PERIOD);
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                // ICMP errors from earlier sends surface here; they concern one peer only.
                let Ok((n, client)) = received else { continue };
                let tuple = FiveTuple { proto: Proto::Udp, client, server };
                let relay = mine.get(&client).and_then(Weak::upgrade).filter(|r| r.is_alive());
                match classify(&buf[..n]) {
                    Packet::ChannelData(channel, payload) => {
                        if let Some(r) = relay.or_else(|| remember(&mut mine, shared.find(tuple))) {
                            r.channel_to_peer(channel, payload, |a| shared.is_own_relay(a));
                        }
                    }
                    Packet::Send => {
                        if let Some(r) = relay.or_else(|| remember(&mut mine, shared.find(tuple))) {
                            send_indication(&r, &buf[..n], &shared);
                        }
                    }
                    Packet::Control => {
                        let link = || Link::Udp { socket: socket.clone(), client };
                        let (replies, created) = shared.control(&buf[..n], tuple, link);
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

enum Packet<'a> {
    ChannelData(u16, &'a [u8]),
    Send,
    Control,
    Junk,
}

/// What a client sent, from its first bytes (RFC 8656 §12: the first two bits tell STUN from
/// ChannelData).
fn classify(packet: &[u8]) -> Packet<'_> {
    match packet {
        [0x40..=0x7f, _, len_hi, len_lo, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
            match rest.get(..len) {
                Some(payload) => {
                    Packet::ChannelData(u16::from_be_bytes([packet[0], packet[1]]), payload)
                }
                None => Packet::Junk,
            }
        }
        [0x00, 0x16, ..] => Packet::Send,
        [0x00..=0x3f, ..] if packet.len() >= 20 => Packet::Control,
        _ => Packet::Junk,
    }
}

/// A Send indication: XOR-PEER-ADDRESS and DATA, relayed if permitted; never answered.
fn send_indication(relay: &Relay, packet: &[u8], shared: &Arc<Shared>) {
    let mut m = stun::message::Message::new();
    m.raw = packet.to_vec();
    if m.decode().is_err() {
        return;
    }
    let peers =
        server::xor_addresses(&m, stun::attributes::ATTR_XOR_PEER_ADDRESS).unwrap_or_default();
    let (data, has_data) = m.attributes.get(stun::attributes::ATTR_DATA);
    if let ([peer], true) = (&peers[..], has_data) {
        relay.send_to_peer(*peer, &data.value, |a| shared.is_own_relay(a));
    }
}

/// Accepts TURN clients over TCP, or over TLS when given an acceptor.
async fn accept_tcp(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let server = listener.local_addr().expect("bound listener");
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let Some(acceptor) = tls.clone() else {
                    let tuple = FiveTuple {
                        proto: Proto::Tcp,
                        client,
                        server,
                    };
                    tokio::spawn(serve_stream(stream, tuple, shared));
                    continue;
                };
                // The handshake runs in the connection's own task, so a slow one blocks nobody.
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        let tuple = FiveTuple {
                            proto: Proto::Tls,
                            client,
                            server,
                        };
                        serve_stream(stream, tuple, shared).await;
                    }
                });
            }
            Err(e) => {
                log::warn!("turn: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One TCP (or TLS) client: STUN messages and ChannelData frames back to back.
async fn serve_stream<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    tuple: FiveTuple,
    shared: Arc<Shared>,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(STREAM_QUEUE);
    let writing = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    // Weak, as in the UDP workers: a deleted allocation's socket closes at once.
    let mut relay: Option<Weak<Relay>> = None;
    let mut buf = Vec::with_capacity(4096);
    'connection: loop {
        let frame_len = loop {
            match framing::frame_len(&buf) {
                Err(()) => break 'connection,
                Ok(Some(len)) if buf.len() >= len => break len,
                Ok(_) => {}
            }
            let idle = if relay.is_some() {
                TCP_IDLE_WITH_ALLOCATION
            } else {
                TCP_IDLE_BEFORE_ALLOCATION
            };
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(idle, reader.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break 'connection,
            }
        };
        let frame = &buf[..frame_len];
        let live = relay
            .as_ref()
            .and_then(Weak::upgrade)
            .filter(|r| r.is_alive());
        match classify(frame) {
            Packet::ChannelData(channel, payload) => {
                if let Some(r) = live {
                    r.channel_to_peer(channel, payload, |a| shared.is_own_relay(a));
                }
            }
            Packet::Send => {
                if let Some(r) = live {
                    send_indication(&r, frame, &shared);
                }
            }
            Packet::Control => {
                let (replies, created) = shared.control(frame, tuple, || Link::Stream(tx.clone()));
                if let Some(r) = created {
                    relay = Some(Arc::downgrade(&r));
                }
                for reply in replies {
                    if tx.send(reply).await.is_err() {
                        break 'connection;
                    }
                }
            }
            Packet::Junk => break 'connection,
        }
        buf.drain(..frame_len);
    }
    shared.connection_closed(tuple);
    writing.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_classified_by_their_first_bytes() {
        assert!(matches!(
            classify(b"\x40\x01\x00\x03abc"),
            Packet::ChannelData(0x4001, b"abc")
        ));
        assert!(
            matches!(classify(b"\x40\x01\x00\x03ab"), Packet::Junk),
            "short ChannelData"
        );
        assert!(matches!(classify(&[0x00, 0x16, 0, 0]), Packet::Send));
        assert!(matches!(
            classify(&[
                0x00, 0x03, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]),
            Packet::Control
        ));
        assert!(matches!(classify(&[0x00, 0x03]), Packet::Junk));
        assert!(matches!(classify(b"\xff\xff"), Packet::Junk));
        assert!(matches!(classify(b""), Packet::Junk));
    }
}
