//! The relay's control side as the network shell runs it: the sans-IO [`Server`] behind one
//! mutex, the relay tasks its effects start and stop, and the figures read from both.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use super::grants::Grants;
use super::lobby_traffic::{LobbyTraffic, Running as LobbyRunning};
use super::local_relays::LocalRelays;
use super::ports::SocketPorts;
use super::relay::{self, Link, OwnListeners, Relay, Site, TrafficTotals};
use super::server::{Clock, Effect, FiveTuple, Server, Settings};
use super::wire::Reject;
use crate::config::units::{BitRate, PortRange};
use crate::credentials::unix_seconds;
use prometheus_client::metrics::histogram::Histogram;

/// Allocation state shared by the workers and connections.
pub struct Shared {
    pub control: Mutex<Control>,
}

pub struct Control {
    pub server: Server,
    ports: SocketPorts,
    pub relays: HashMap<FiveTuple, (Arc<Relay>, AbortHandle)>,
    pub bandwidth: BitRate,
    own_listeners: OwnListeners,
    local_relays: Arc<LocalRelays>,
    /// Traffic of allocations already deleted, so totals never go down.
    retired: TrafficTotals,
    lobby_traffic: LobbyTraffic,
}

fn clock() -> Clock {
    Clock {
        now: Instant::now(),
        unix: unix_seconds(SystemTime::now()),
    }
}

/// What an Allocate refusal means to an operator, for its one log line.
fn refusal_cause(reject: Reject) -> &'static str {
    match reject {
        Reject::AddressFamilyNotSupported => {
            "the client asked for a relay address family this server has none of: see \
             turn.relay_ip"
        }
        Reject::AllocationQuotaReached => {
            "turn.max_allocations_per_user, turn.max_allocations_per_address or \
             turn.max_allocations"
        }
        Reject::InsufficientCapacity => "no free relay port: see turn.relay_ports",
        Reject::Forbidden => "a lobby credential whose lobby is gone",
        Reject::AllocationMismatch => "the client already has an allocation on this 5-tuple",
        Reject::UnsupportedTransport => "the client asked for a relay transport other than UDP",
        _ => "a malformed request",
    }
}

impl Shared {
    /// Runs a control request through the core. Returns the replies for the client and, when
    /// this request created an allocation, its relay.
    pub fn control(
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
                Effect::Created {
                    tuple,
                    relay,
                    advertised,
                } => {
                    let Some(make_link) = link.take() else {
                        continue;
                    };
                    match Self::start_relay(c, tuple, (relay, advertised), make_link()) {
                        Ok(r) => {
                            log::debug!("turn: allocation {relay} for {}", tuple.client);
                            created = Some(r)
                        }
                        Err(e) => log::error!("turn: cannot start relay {relay}: {e}"),
                    }
                }
                other => self.apply(c, other),
            }
        }
        (replies, created)
    }

    fn start_relay(
        c: &mut Control,
        tuple: FiveTuple,
        (addr, advertised): (SocketAddr, SocketAddr),
        link: Link,
    ) -> std::io::Result<Arc<Relay>> {
        let socket = c
            .ports
            .take(addr)
            .ok_or_else(|| std::io::Error::other("relay socket missing"))?;
        let socket = UdpSocket::from_std(socket)?;
        let placement = Site {
            addr,
            advertised,
            own_listeners: c.own_listeners.clone(),
            local_relays: c.local_relays.clone(),
        };
        let relay = Arc::new(Relay::new(
            tuple,
            socket,
            link,
            Arc::new(Grants::empty(c.bandwidth)),
            placement,
            c.server.lobby_of(tuple),
        ));
        if let Some((lobby, player)) = c.server.lobby_member(tuple) {
            c.lobby_traffic.allocated(lobby, player, Instant::now());
        }
        let task = tokio::spawn(relay::run(relay.clone()));
        c.local_relays.insert(&relay);
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
            Effect::Deleted { tuple, why } => {
                if let Some((r, task)) = c.relays.remove(&tuple) {
                    log::debug!("turn: allocation {} of {} {why}", r.addr, tuple.client);
                    c.local_relays.remove(&r);
                    r.retire();
                    task.abort();
                    let totals = r.traffic.totals();
                    c.retired += totals;
                    if let Some(lobby) = r.lobby {
                        c.lobby_traffic.deleted(lobby, totals, Instant::now());
                    }
                }
            }
            Effect::FirstRefusal { reject } => log::warn!(
                "turn: refused an Allocate with {} ({}); further ones are only counted, in \
                 rallypoint_turn_error_responses_total{{code}}",
                reject.code(),
                refusal_cause(reject)
            ),
            Effect::Reply(_) | Effect::Created { .. } => {}
        }
    }

    /// The allocation of `tuple`, for a worker that has not seen it yet.
    pub fn find(&self, tuple: FiveTuple) -> Option<Arc<Relay>> {
        self.control
            .lock()
            .unwrap()
            .relays
            .get(&tuple)
            .map(|(r, _)| r.clone())
    }

    pub fn connection_closed(&self, tuple: FiveTuple) {
        let mut c = self.control.lock().unwrap();
        let c = &mut *c;
        for effect in c.server.connection_closed(tuple, &mut c.ports) {
            self.apply(c, effect);
        }
    }

    pub fn tick(&self) {
        let mut c = self.control.lock().unwrap();
        let c = &mut *c;
        for effect in c.server.tick(clock(), &mut c.ports) {
            self.apply(c, effect);
        }
    }
}

impl Control {
    pub fn new(
        settings: Settings,
        v4: Option<IpAddr>,
        v6: Option<IpAddr>,
        ports: PortRange,
        bandwidth: BitRate,
        own_listeners: OwnListeners,
    ) -> Control {
        Control {
            own_listeners,
            local_relays: Arc::default(),
            server: Server::new(settings, crate::random::Random::os()),
            ports: SocketPorts::new(v4, v6, ports),
            relays: HashMap::new(),
            bandwidth,
            retired: TrafficTotals::default(),
            lobby_traffic: LobbyTraffic::new(),
        }
    }

    /// Stops every relay (at shutdown).
    pub fn retire_all(&mut self) {
        for (_, (relay, task)) in self.relays.drain() {
            self.local_relays.remove(&relay);
            relay.retire();
            task.abort();
        }
    }
}

/// The relay's figures at one moment: what `/metrics`, `/healthz` and the self-test page show.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub allocations: usize,
    pub allocations_created: u64,
    pub traffic: TrafficTotals,
    /// Error answers by code.
    pub errors: BTreeMap<u16, u64>,
    /// TCP and TLS connections open, and refused over `turn.max_stream_connections` and over
    /// `turn.max_stream_connections_per_source`.
    pub stream_connections: usize,
    pub streams_refused_total: u64,
    pub streams_refused_per_source: u64,
    /// Requests left unanswered over the budget for unauthenticated answers.
    pub unanswered: u64,
    /// The busiest lobbies relaying now.
    pub lobbies_running: Vec<LobbyRunning>,
    /// Over finished lobbies: bytes relayed, and duration.
    pub lobby_bytes: Option<Histogram>,
    pub lobby_seconds: Option<Histogram>,
}

impl Shared {
    pub fn snapshot(&self) -> Snapshot {
        let c = self.control.lock().unwrap();
        let mut traffic = c.retired;
        let mut per_lobby: HashMap<u64, TrafficTotals> = HashMap::new();
        for (r, _) in c.relays.values() {
            let totals = r.traffic.totals();
            traffic += totals;
            if let Some(lobby) = r.lobby {
                *per_lobby.entry(lobby).or_default() += totals;
            }
        }
        let counts = c.server.counts();
        Snapshot {
            allocations: c.server.allocation_count(),
            allocations_created: counts.allocations_created,
            traffic,
            errors: counts.errors.iter().map(|(&k, &v)| (k, v)).collect(),
            unanswered: c.server.unanswered(),
            lobbies_running: c.lobby_traffic.running(Instant::now(), &per_lobby),
            lobby_bytes: Some(c.lobby_traffic.bytes.clone()),
            lobby_seconds: Some(c.lobby_traffic.seconds.clone()),
            ..Snapshot::default()
        }
    }
}
