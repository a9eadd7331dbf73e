//! The STUN/TURN relay. The protocol's control plane is [`server`], a sans-IO state machine
//! (with [`auth`], [`policy`] and [`grants`]); [`wire`] is the protocol's bytes; the rest is the
//! network shell around them, one file per job:
//!
//! - [`udp`]: the UDP workers, where ChannelData from clients arrives;
//! - [`stream`]: TCP and TLS connections;
//! - [`relay`]: the data plane of one allocation (its relay socket and both packet paths);
//! - [`control`]: the core behind one mutex, the relay tasks its effects start and stop;
//! - [`metrics`]: the Prometheus view of a [`Snapshot`];
//! - [`ports`]: relay sockets; [`addresses`]: which addresses the relay uses and advertises,
//!   and the warnings when players could not reach them; `ice_servers`: the `iceServers` list
//!   players are handed.
//!
//! A tick task expires state every second and applies reloaded settings.

pub mod addresses;
mod allocations;
pub mod auth;
mod batch;
mod budget;
mod control;
pub mod grants;
mod ice_servers;
pub mod lobbies;
mod lobby_traffic;
mod local_relays;
mod metrics;
pub mod policy;
mod ports;
mod relay;
pub mod server;
mod stream;
mod stream_queue;
mod udp;
pub mod wire;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::conn_cap::ConnCap;
use crate::proxy_protocol::Proxies;
use crate::tls::Certificates;
pub use control::Snapshot;
use control::{Control, Shared};
pub use ice_servers::{TurnAddresses, ice_servers, ice_servers_at, turn_urls};
pub use lobby_traffic::Running as LobbyRunning;
use server::Settings;
pub use stream::StreamEntry;
/// STUN's magic cookie: how the web listener tells TURN over TLS on its port from HTTPS.
pub use wire::MAGIC_COOKIE;

/// How often the core is ticked (expiries).
const TICK_PERIOD: Duration = Duration::from_secs(1);

/// What the other services see of the relay: its figures on demand (web server, metrics), and
/// the lobby events it takes from the signalling hub.
#[derive(Clone)]
pub struct Status {
    shared: Arc<Shared>,
    streams: stream::StreamLimits,
}

impl Status {
    /// What the signalling hub saw of a lobby (see [`lobbies`]).
    pub fn lobby_event(&self, event: crate::credentials::LobbyEvent) {
        let mut c = self.shared.control.lock().unwrap();
        c.server.lobby_event(event, std::time::Instant::now());
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.shared.snapshot();
        (
            snapshot.stream_connections,
            snapshot.streams_refused_total,
            snapshot.streams_refused_per_source,
        ) = self.streams.cap.figures();
        snapshot
    }

    /// Where the web server hands TURN connections that came to its ports.
    pub fn stream_entry(&self) -> StreamEntry {
        StreamEntry {
            shared: self.shared.clone(),
            limits: self.streams.clone(),
        }
    }
}

/// The relay's bound sockets (see `crate::listeners`).
pub struct Sockets {
    /// Per `turn.listen` address, its `SO_REUSEPORT` UDP sockets.
    pub udp: Vec<(SocketAddr, Vec<UdpSocket>)>,
    pub tcp: Vec<TcpListener>,
    pub tls: Vec<TcpListener>,
}

/// Registers the relay's metrics; returns its [`Status`] and the task that serves
/// `turn.listen` and `turn.tls_listen` until shutdown.
pub fn start(
    sockets: Sockets,
    certificates: Arc<Certificates>,
    proxies: Arc<Proxies>,
    mut config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
    registry: &mut Registry,
) -> (Status, impl Future<Output = ()> + use<>) {
    let Sockets { udp, tcp, tls } = sockets;
    let current = config.borrow().clone();
    let (v4, v6) = addresses::relay_addresses(&current);
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
        control: Mutex::new(Control::new(
            Settings::from(&current.turn),
            v4,
            v6,
            current.turn.relay_ports,
            current.turn.max_bandwidth_per_allocation,
            own_listeners(&current, &udp, &tcp, &tls, [v4, v6]),
        )),
    });
    let limits = stream::StreamLimits {
        cap: ConnCap::new(
            current.turn.max_stream_connections as usize,
            current.turn.max_stream_connections_per_source as usize,
            (
                "turn.max_stream_connections",
                "turn.max_stream_connections_per_source",
            ),
        ),
        auth_timeout: current.turn.stream_auth_timeout.0,
    };
    let status = Status {
        shared: shared.clone(),
        streams: limits.clone(),
    };
    metrics::register(registry, status.clone());
    let task = async move {
        let mut tasks = JoinSet::new();
        for (addr, sockets) in udp {
            for socket in sockets {
                tasks.spawn(udp::worker(Arc::new(socket), addr, shared.clone()));
            }
        }
        for listener in tcp {
            tasks.spawn(stream::accept(
                listener,
                None,
                shared.clone(),
                limits.clone(),
                proxies.clone(),
            ));
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(certificates.server_config(&[]));
        for listener in tls {
            let tls = Some(acceptor.clone());
            tasks.spawn(stream::accept(
                listener,
                tls,
                shared.clone(),
                limits.clone(),
                proxies.clone(),
            ));
        }
        let mut tick = tokio::time::interval(TICK_PERIOD);
        loop {
            tokio::select! {
                _ = tick.tick() => shared.tick(),
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
        shared.control.lock().unwrap().retire_all();
    };
    (status, task)
}

/// Every address this server's TURN listeners answer on: each bound listener, and for a
/// wildcard one its port on each address of ours (relay addresses, `turn.external_ip`).
fn own_listeners(
    config: &Config,
    udp: &[(SocketAddr, Vec<UdpSocket>)],
    tcp: &[TcpListener],
    tls: &[TcpListener],
    relay_ips: [Option<IpAddr>; 2],
) -> relay::OwnListeners {
    let ours: Vec<IpAddr> = relay_ips
        .into_iter()
        .flatten()
        .chain(config.turn.external_ip)
        .collect();
    let bound = udp
        .iter()
        .map(|(addr, _)| *addr)
        .chain(tcp.iter().chain(tls).filter_map(|l| l.local_addr().ok()));
    let mut set = HashSet::new();
    for addr in bound {
        set.insert(addr);
        if addr.ip().is_unspecified() {
            set.extend(ours.iter().map(|ip| SocketAddr::new(*ip, addr.port())));
        }
    }
    Arc::new(set)
}
