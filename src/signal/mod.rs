//! The signalling hub: Godot's WebRTC signalling protocol (Godot 4 JSON and Godot 3 text) on the
//! web server's `signal.path`.
//!
//! [`hub`] is the protocol as a sans-IO state machine; one task owns it and [`session`] tasks,
//! one per WebSocket, feed it frames and deliver what it sends. [`handshake`] decides whether an
//! HTTP request may upgrade. With `signal.shards` there are several hubs, each with its own task
//! and its share of the lobbies ([`shards`]).

mod address_lobbies;
mod candidates;
pub mod codec;
pub mod ext;
pub mod failed_joins;
pub mod handshake;
pub mod hub;
mod lobby;
mod metrics;
mod queue;
pub mod remote;
mod router;
mod session;
mod shard;
mod shards;
mod upstream;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::credentials::LobbyEvent;
pub use hub::Client;
use hub::{ConnId, Departure, Hub, HubCounts, Limits, Output};
use queue::{Input, Operator, Outbox, Queued, SlowPeers, now};
use remote::{ClusterRouter, Envelope, Mailbox, OtherNodes, Remote, Seam};
use router::{LocalRouter, Router};
use shard::Shard;
use shards::{SHARE_PERIOD, ShardRouter, Shared};

/// Inputs waiting for the hub task; sessions wait when it is full.
const INPUT_QUEUE: usize = 4096;
/// How often the hub task publishes its [`Snapshot`].
const SNAPSHOT_PERIOD: Duration = Duration::from_secs(1);

/// The hub's figures at one moment, published by the hub task every [`SNAPSHOT_PERIOD`]: what
/// `/metrics`, `/healthz` and the self-test page show.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub peers: usize,
    pub lobbies: usize,
    /// Listed (public) lobbies.
    pub public_lobbies: usize,
    /// Peers whose place is kept for a resume.
    pub away_peers: usize,
    pub counts: HubCounts,
    /// Peers dropped because they stopped reading (`signal.send_timeout`,
    /// `signal.max_queued_bytes`).
    pub slow_peers_dropped: u64,
    /// In a cluster: the lobbies a LIST may show, for the other nodes.
    pub listed: Arc<Vec<ext::LobbyInfo>>,
}

/// What the hub needs of the relay: it tells it about lobbies (scopes opened, addresses
/// announced, seals, ends) and has it mint credentials bound to a lobby and a player.
pub trait LobbyRelay: Send + Sync {
    fn lobby_event(&self, event: LobbyEvent);
    /// `{"iceServers": [...], "expires": unix seconds}` with a fresh credential for the REST
    /// user part `user`.
    fn ice_servers(&self, user: &str) -> serde_json::Value;
}

/// In a cluster: the other nodes, and who is attached to whose lobbies.
#[derive(Clone)]
struct Clustered {
    nodes: Arc<dyn OtherNodes>,
    mailbox: Arc<dyn Mailbox>,
    remote: Arc<Remote>,
}

/// What else a hub works with: nothing, the other nodes of a cluster, or the other hubs of
/// this process (`signal.shards`).
#[derive(Clone)]
enum Around {
    Alone,
    Cluster(Clustered),
    Shards(Shard, Arc<Shared>),
}

/// The hub as the web server sees it: hands it upgraded connections.
pub struct Signal {
    /// Each hub's inputs: one, or one per shard (`signal.shards`; a session starts in
    /// `shards::home`'s).
    hubs: Vec<mpsc::Sender<Input>>,
    /// Where sessions' frames go: this node's hub, or, in a cluster, the lobby's node's.
    router: Arc<dyn Router>,
    /// With `[cluster]`: the other nodes, and who is attached where.
    cluster: Option<Clustered>,
    next_conn: AtomicU64,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
    /// Each hub's.
    snapshots: Vec<Arc<Mutex<Snapshot>>>,
    slow: Arc<SlowPeers>,
    /// WebSocket upgrades refused for their `Origin`.
    origins_refused: AtomicU64,
}

impl Signal {
    /// Creates the hub and registers its metrics; the returned task must run for it to work.
    /// In a cluster (`seam`), lobbies it opens are listed through it, and players here may
    /// attach to other nodes' lobbies.
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        shutdown: CancellationToken,
        registry: &mut Registry,
        relay: Arc<dyn LobbyRelay>,
        seam: Option<Seam>,
    ) -> (Arc<Signal>, impl Future<Output = ()> + use<>) {
        // A cluster node runs one hub (the configuration says so).
        let count = match seam {
            Some(_) => 1,
            None => config.borrow().signal.shards.max(1),
        };
        let (hubs, receivers): (Vec<_>, Vec<_>) =
            (0..count).map(|_| mpsc::channel(INPUT_QUEUE)).unzip();
        let snapshots: Vec<Arc<Mutex<Snapshot>>> = hubs.iter().map(|_| Arc::default()).collect();
        let slow = Arc::new(SlowPeers::default());
        let cluster = seam.map(|Seam { nodes, mailbox }| Clustered {
            nodes,
            mailbox,
            remote: Arc::default(),
        });
        let shared = (count > 1).then(|| {
            let per_minute = config.borrow().signal.failed_joins_per_minute;
            Arc::new(Shared::new(count, per_minute))
        });
        let router: Arc<dyn Router> = match (&cluster, &shared) {
            (Some(c), _) => Arc::new(ClusterRouter {
                hub: hubs[0].clone(),
                nodes: c.nodes.clone(),
                mailbox: c.mailbox.clone(),
                remote: c.remote.clone(),
            }),
            (None, Some(shared)) => Arc::new(ShardRouter {
                hubs: hubs.clone(),
                shared: shared.clone(),
            }),
            (None, None) => Arc::new(LocalRouter {
                hub: hubs[0].clone(),
            }),
        };
        let tasks: Vec<_> = (receivers.into_iter().zip(&snapshots).enumerate())
            .map(|(index, (rx, snapshot))| {
                let around = match (&cluster, &shared) {
                    (Some(c), _) => Around::Cluster(c.clone()),
                    (None, Some(shared)) => {
                        let shard = Shard {
                            index: index as u32,
                            count,
                        };
                        Around::Shards(shard, shared.clone())
                    }
                    (None, None) => Around::Alone,
                };
                let (config, shutdown) = (config.clone(), shutdown.clone());
                let (slow, relay) = (slow.clone(), relay.clone());
                run_hub(rx, config, shutdown, snapshot.clone(), slow, relay, around)
            })
            .collect();
        // Each hub its own task, so that they run on as many cores.
        let task = async move {
            let running: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
            for hub in running {
                if let Err(e) = hub.await
                    && e.is_panic()
                {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        };
        let signal = Arc::new(Signal {
            hubs,
            router,
            cluster,
            next_conn: AtomicU64::new(1),
            config,
            shutdown,
            snapshots,
            slow,
            origins_refused: AtomicU64::new(0),
        });
        metrics::register(registry, signal.clone());
        (signal, task)
    }

    /// The hub of a cluster node (which has one).
    fn only_hub(&self) -> &mpsc::Sender<Input> {
        &self.hubs[0]
    }

    /// An envelope from node `from` (see [`remote`]).
    pub async fn receive(&self, from: &str, envelope: Envelope) {
        let Some(c) = &self.cluster else { return };
        let max_queued = self.config.borrow().signal.max_queued_bytes.0 as usize;
        let new_conn = || self.next_conn.fetch_add(1, Ordering::Relaxed);
        let Some((input, guest)) = c.remote.receive(from, envelope, new_conn, max_queued) else {
            return;
        };
        if let Some((conns, inbox)) = guest {
            let (hub, edge) = (self.only_hub().clone(), from.to_string());
            let (mailbox, remote) = (c.mailbox.clone(), c.remote.clone());
            tokio::spawn(remote::forward(mailbox, remote, hub, edge, conns, inbox));
        }
        let _ = self.only_hub().send(input).await;
    }

    /// Node `node` has left the cluster, or this node lost sight of it (see [`remote`]).
    pub async fn node_gone(&self, node: &str) {
        let Some(c) = &self.cluster else { return };
        for input in c.remote.node_gone(node) {
            let _ = self.only_hub().send(input).await;
        }
    }

    /// This node's players and lobbies as they are now (the dashboard), oldest lobby first;
    /// empty if the hubs have stopped.
    pub async fn overview(&self) -> hub::Overview {
        let mut all = hub::Overview::default();
        for hub in &self.hubs {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = hub.send(Input::Operator(Operator::Overview(tx))).await;
            let one = rx.await.unwrap_or_default();
            all.players += one.players;
            all.lobbies.extend(one.lobbies);
        }
        all.lobbies.sort_by_key(|l| std::cmp::Reverse(l.age));
        all
    }

    /// Closes the lobby with this code, its players told "Lobby closed by the server's
    /// operator"; whether there was one here.
    pub async fn close_lobby(&self, code: &str) -> bool {
        self.ask_each(|answer| Operator::Close(code.into(), answer))
            .await
    }

    /// Removes player `id` of the lobby with this code; whether there was one here.
    pub async fn remove_player(&self, code: &str, id: u32) -> bool {
        self.ask_each(|answer| Operator::Remove(code.into(), id, answer))
            .await
    }

    /// Asks each hub in turn until one says yes (the lobby is in one).
    async fn ask_each(
        &self,
        request: impl Fn(tokio::sync::oneshot::Sender<bool>) -> Operator,
    ) -> bool {
        for hub in &self.hubs {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = hub.send(Input::Operator(request(tx))).await;
            if rx.await.unwrap_or(false) {
                return true;
            }
        }
        false
    }

    /// Other nodes' listed lobbies, for LIST (see [`Hub::set_lobbies_elsewhere`]).
    pub async fn set_lobbies_elsewhere(&self, lobbies: Vec<ext::LobbyInfo>) {
        let _ = self.only_hub().send(Input::Elsewhere(lobbies)).await;
    }

    /// (players here attached to other nodes' lobbies, players of other nodes in lobbies here).
    pub fn remote_figures(&self) -> (usize, usize) {
        self.cluster.as_ref().map_or((0, 0), |c| c.remote.figures())
    }

    /// An upgrade from a page of `origin` was refused (not this site, not in
    /// `signal.allowed_origins`): the first is logged, naming the key; all are counted.
    pub fn origin_refused(&self, origin: &str) {
        if self.origins_refused.fetch_add(1, Ordering::Relaxed) == 0 {
            log::warn!(
                "signal: refused a WebSocket from a page of {origin:?}, which is not this site; \
                 if your game is hosted there, add it to signal.allowed_origins (further \
                 refusals are only counted, in rallypoint_signal_origins_refused_total)"
            );
        }
    }

    /// Upgrades refused for their `Origin` so far.
    pub fn origins_refused(&self) -> u64 {
        self.origins_refused.load(Ordering::Relaxed)
    }

    /// The hubs' figures as last published (at most [`SNAPSHOT_PERIOD`] old), added up.
    pub fn snapshot(&self) -> Snapshot {
        let mut all = self.snapshots[0].lock().unwrap().clone();
        for other in &self.snapshots[1..] {
            let one = other.lock().unwrap();
            all.peers += one.peers;
            all.lobbies += one.lobbies;
            all.public_lobbies += one.public_lobbies;
            all.away_peers += one.away_peers;
            all.counts.add(&one.counts);
        }
        all
    }

    /// Runs a session on the connection once hyper has finished the HTTP upgrade.
    pub fn spawn_session(&self, upgrade: OnUpgrade, client: Client) {
        // The client's socket opens when it reads our 101: its join timeout runs from here.
        let opened = now();
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let home = shards::home(conn, self.hubs.len());
        let hub = self.hubs[home].clone();
        let config = self.config.borrow().clone();
        let shutdown = self.shutdown.clone();
        let slow = self.slow.clone();
        let router = self.router.clone();
        tokio::spawn(async move {
            let upgraded = match upgrade.await {
                Ok(u) => u,
                Err(e) => return log::debug!("signal: upgrade failed: {e}"),
            };
            let ws_config = session::websocket_config(&config);
            let socket = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(ws_config),
            )
            .await;
            let arrival = session::Arrival {
                conn,
                client,
                opened,
                home,
            };
            session::run(socket, arrival, hub, router, config, shutdown, slow).await;
        });
    }
}

async fn run_hub(
    mut inputs: mpsc::Receiver<Input>,
    mut config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
    snapshot: Arc<Mutex<Snapshot>>,
    slow: Arc<SlowPeers>,
    relay: Arc<dyn LobbyRelay>,
    around: Around,
) {
    let shard = match &around {
        Around::Shards(shard, _) => *shard,
        _ => Shard::ALL,
    };
    let mut hub = Hub::new(
        Limits::from(&config.borrow().signal),
        now(),
        crate::random::Random::os(),
    )
    .in_shard(shard);
    if let Around::Shards(_, shared) = &around {
        hub = hub.sharing_address_lobbies(shared.address_lobbies.clone());
    }
    let mut max_queued = config.borrow().signal.max_queued_bytes.0 as usize;
    let mut sessions: HashMap<ConnId, Outbox> = HashMap::new();
    let mut publish = tokio::time::interval(SNAPSHOT_PERIOD);
    let mut share = tokio::time::interval(SHARE_PERIOD);
    // The listing this hub last published, and the other hubs' publications it has read.
    let mut published = None;
    let mut seen = vec![0; shard.count as usize];
    let mut stopping = false;
    // The limits already logged once.
    let mut told = std::collections::HashSet::new();
    loop {
        if stopping && sessions.is_empty() {
            return;
        }
        let deadline = hub.next_deadline().map(tokio::time::Instant::from_std);
        let outputs = tokio::select! {
            input = inputs.recv() => {
                let Some(input) = input else { return };
                if let Around::Shards(shard, shared) = &around {
                    hub.set_census_elsewhere(shared.census_except(shard.index));
                }
                match input {
                    Input::Connect(c, tx, client, at) => {
                        sessions.insert(c, tx);
                        hub.connect(c, client, at)
                    }
                    Input::Text(c, text, at) => hub.message(c, &text, at),
                    Input::Binary(c, at) => hub.binary(c, at),
                    Input::Gone(c, how, at) => {
                        sessions.remove(&c);
                        hub.disconnect(c, how, at)
                    }
                    Input::SpentElsewhere(source, at) => {
                        hub.spent_elsewhere(source, at);
                        continue;
                    }
                    Input::Elsewhere(lobbies) => {
                        hub.set_lobbies_elsewhere(lobbies);
                        continue;
                    }
                    Input::Operator(Operator::Overview(answer)) => {
                        let _ = answer.send(hub.overview(now()));
                        continue;
                    }
                    Input::Operator(Operator::Close(code, answer)) => {
                        let out = hub.close_lobby(&code, now());
                        let _ = answer.send(out.is_some());
                        out.unwrap_or_default()
                    }
                    Input::Operator(Operator::Remove(code, id, answer)) => {
                        let out = hub.remove_player(&code, id, now());
                        let _ = answer.send(out.is_some());
                        out.unwrap_or_default()
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                hub.tick(now())
            }
            Ok(()) = config.changed() => {
                let signal = &config.borrow_and_update().signal;
                hub.set_limits(Limits::from(signal), now());
                max_queued = signal.max_queued_bytes.0 as usize;
                continue;
            }
            _ = share.tick(), if matches!(around, Around::Shards(..)) => {
                if let Around::Shards(shard, shared) = &around {
                    if published != Some(hub.listing_version()) {
                        published = Some(hub.listing_version());
                        shared.publish(shard.index, hub.listed_lobbies());
                    }
                    if let Some(others) = shared.others_since(shard.index, &mut seen) {
                        hub.set_lobbies_elsewhere(others);
                    }
                }
                continue;
            }
            _ = publish.tick() => {
                for limit in hub.counts().limited.keys() {
                    if told.insert(*limit) {
                        log::warn!(
                            "signal: refused a request over {limit}; further ones are only \
                             counted, in rallypoint_signal_limited_total{{limit=\"{limit}\"}}"
                        );
                    }
                }
                *snapshot.lock().unwrap() = Snapshot {
                    peers: hub.peer_count(),
                    lobbies: hub.lobby_count(),
                    public_lobbies: hub.public_lobby_count(),
                    listed: match &around {
                        Around::Cluster(_) => Arc::new(hub.listed_lobbies()),
                        _ => Arc::default(),
                    },
                    away_peers: hub.away_count(),
                    counts: hub.counts().clone(),
                    slow_peers_dropped: slow.count(),
                };
                continue;
            }
            // Sessions close themselves on shutdown; wait for them to say they are gone.
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                continue;
            }
        };
        let sinks = Sinks {
            relay: &*relay,
            around: &around,
        };
        deliver(outputs, &mut hub, &mut sessions, max_queued, &slow, sinks);
        if let Around::Shards(shard, shared) = &around {
            shared.count(shard.index, hub.census());
        }
    }
}

/// Where hub outputs that are not frames go.
#[derive(Clone, Copy)]
struct Sinks<'a> {
    relay: &'a dyn LobbyRelay,
    around: &'a Around,
}

/// Hands the hub's outputs to the sessions. A session that has stopped reading (its queue full
/// in frames or over `max_queued` bytes) is dropped from the hub, as if it had left, which may
/// produce more outputs; its session task sees its queue end and closes it.
fn deliver(
    outputs: Vec<Output>,
    hub: &mut Hub,
    sessions: &mut HashMap<ConnId, Outbox>,
    max_queued: usize,
    slow: &SlowPeers,
    sinks: Sinks,
) {
    let mut queue = VecDeque::from(outputs);
    while let Some(output) = queue.pop_front() {
        match output {
            Output::Send { to, frame } => {
                let Some(outbox) = sessions.get(&to) else {
                    // Gone: the hub keeps it if the peer's place is kept for a resume.
                    queue.extend(hub.undelivered(to, frame));
                    continue;
                };
                if let Err((why, frame)) = outbox.text(frame, max_queued) {
                    if why == Queued::Full {
                        slow.dropped("signal.max_queued_bytes");
                    }
                    sessions.remove(&to);
                    // Its socket is closed "Too slow to receive": a place it may resume.
                    queue.extend(hub.disconnect(to, Departure::Lost, now()));
                    queue.extend(hub.undelivered(to, frame));
                }
            }
            Output::Close { to, reason } => {
                if let Some(outbox) = sessions.remove(&to) {
                    outbox.close(reason);
                }
            }
            Output::Entered(conn) => {
                if let Some(outbox) = sessions.get(&conn) {
                    outbox.entered();
                }
            }
            Output::Relay(event) => sinks.relay.lobby_event(event),
            Output::Listed { keys, open } => {
                if let Around::Cluster(cluster) = sinks.around {
                    cluster.nodes.listed(keys, open);
                }
            }
            Output::FailedJoin(source) => match sinks.around {
                Around::Cluster(cluster) => cluster.nodes.failed_join(source),
                Around::Shards(_, shared) => shared.failed_join(source),
                Around::Alone => {}
            },
            Output::IceServers { to, user } => {
                let servers = sinks.relay.ice_servers(&user);
                let frame = ext::encode(&ext::ExtEvent::IceServers(&servers));
                queue.push_front(Output::Send { to, frame });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue::Outgoing;

    /// These tests use plain clients only: nothing reaches the relay but lobby events.
    struct NoRelay;

    impl LobbyRelay for NoRelay {
        fn lobby_event(&self, _: LobbyEvent) {}

        fn ice_servers(&self, _: &str) -> serde_json::Value {
            unreachable!("plain clients get no credentials from the hub")
        }
    }

    /// Runs the hub task on a clock the test controls; returns its input and a session's queue.
    fn hub_with(config: Config) -> mpsc::Sender<Input> {
        let (config_tx, config_rx) = watch::channel(Arc::new(config));
        let (inputs, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let _keep = config_tx;
            let (snapshot, slow) = Default::default();
            let relay = Arc::new(NoRelay);
            run_hub(
                rx,
                config_rx,
                CancellationToken::new(),
                snapshot,
                slow,
                relay,
                Around::Alone,
            )
            .await
        });
        inputs
    }

    async fn connect(hub: &mpsc::Sender<Input>, conn: ConnId) -> queue::Inbox {
        let (tx, rx) = queue::pair();
        let client = Client {
            extension: false,
            source: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        hub.send(Input::Connect(conn, tx, client, now()))
            .await
            .ok()
            .unwrap();
        rx
    }

    async fn text(hub: &mpsc::Sender<Input>, conn: ConnId, frame: &str) {
        let input = Input::Text(conn, frame.into(), now());
        hub.send(input).await.ok().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn timers_run_from_the_events_not_from_the_hub_loop() {
        let mut config = Config::default();
        config.signal.join_timeout = crate::config::units::Duration(Duration::from_secs(1));
        config.signal.seal_close_delay = crate::config::units::Duration(Duration::from_secs(10));
        let hub = hub_with(config);
        // The hub idles first, as between connections on a quiet server.
        tokio::time::sleep(Duration::from_millis(900)).await;

        // Joined at 0.9 × join_timeout after the socket opened: accepted.
        let mut host = connect(&hub, 1).await;
        tokio::time::sleep(Duration::from_millis(900)).await;
        text(&hub, 1, r#"{"type":0,"id":0,"data":""}"#).await;
        let Some(Outgoing::Text(id)) = host.recv().await else {
            panic!("the late join was refused")
        };
        assert!(id.starts_with(r#"{"type":1,"id":1"#), "{id}");

        // Never joined: closed exactly join_timeout after it opened.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let opened = tokio::time::Instant::now();
        let mut idle = connect(&hub, 2).await;
        let Some(Outgoing::Close(why)) = idle.recv().await else {
            panic!("expected a close")
        };
        assert_eq!(why, hub::Reason::NoLobby);
        assert_eq!(opened.elapsed(), Duration::from_secs(1));

        // Sealed: closed exactly seal_close_delay after the SEAL arrived.
        tokio::time::sleep(Duration::from_millis(700)).await;
        host.recv().await; // the JOIN frame
        assert!(matches!(host.recv().await, Some(Outgoing::Entered)));
        let sealed = tokio::time::Instant::now();
        text(&hub, 1, r#"{"type":7,"id":0,"data":""}"#).await;
        assert!(matches!(host.recv().await, Some(Outgoing::Text(_))));
        let Some(Outgoing::Close(why)) = host.recv().await else {
            panic!("expected the seal close")
        };
        assert_eq!(why, hub::Reason::SealComplete);
        assert_eq!(sealed.elapsed(), Duration::from_secs(10));
    }
}
