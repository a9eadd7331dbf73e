//! The signalling hub: Godot's WebRTC signalling protocol (Godot 4 JSON and Godot 3 text) on the
//! web server's `signal.path`.
//!
//! [`hub`] is the protocol as a sans-IO state machine; one task owns it and [`session`] tasks,
//! one per WebSocket, feed it frames and deliver what it sends. [`handshake`] decides whether an
//! HTTP request may upgrade.

pub mod codec;
pub mod handshake;
pub mod hub;
mod session;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::config::Config;
use hub::{ConnId, Hub, Limits, Output, Stats};

/// Frames waiting for one slow client before it is dropped.
const OUTGOING_QUEUE: usize = 256;
/// Inputs waiting for the hub task; sessions wait when it is full.
const INPUT_QUEUE: usize = 4096;
/// How often the hub's counters are published as metrics.
const METRICS_PERIOD: Duration = Duration::from_secs(1);

/// What a session tells the hub task.
enum Input {
    Connect(ConnId, mpsc::Sender<Outgoing>),
    Text(ConnId, String),
    Binary(ConnId),
    Gone(ConnId),
}

/// What the hub task tells a session.
enum Outgoing {
    Text(String),
    Close(u16, &'static str),
}

type Labels = Vec<(&'static str, &'static str)>;

/// The hub's figures as Prometheus metrics.
#[derive(Clone, Default)]
pub struct Metrics {
    pub peers: Gauge,
    pub lobbies: Gauge,
    relayed: Family<Labels, Counter>,
    dropped_late: Counter,
    closes: Family<Labels, Counter>,
}

impl Metrics {
    fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("signal");
        r.register("peers", "Connected signalling peers", self.peers.clone());
        r.register("lobbies", "Open lobbies", self.lobbies.clone());
        r.register(
            "messages_relayed",
            "Offers, answers and candidates relayed, by type",
            self.relayed.clone(),
        );
        r.register(
            "relays_dropped",
            "Relays to a member that had just left, dropped",
            self.dropped_late.clone(),
        );
        r.register(
            "closes",
            "Connections closed by the hub, by reason",
            self.closes.clone(),
        );
    }

    /// Publishes what changed since `last`.
    fn publish(&self, hub: &Hub, last: &mut Stats) {
        self.peers.set(hub.peer_count() as i64);
        self.lobbies.set(hub.lobby_count() as i64);
        let now = hub.stats();
        for (kind, new, old) in [
            ("offer", now.relayed_offer, last.relayed_offer),
            ("answer", now.relayed_answer, last.relayed_answer),
            ("candidate", now.relayed_candidate, last.relayed_candidate),
        ] {
            self.relayed
                .get_or_create(&vec![("type", kind)])
                .inc_by(new - old);
        }
        self.dropped_late
            .inc_by(now.dropped_late - last.dropped_late);
        for (reason, &count) in &now.closes {
            let before = last.closes.get(reason).copied().unwrap_or(0);
            if count > before {
                self.closes
                    .get_or_create(&vec![("reason", *reason)])
                    .inc_by(count - before);
            }
        }
        *last = now.clone();
    }
}

/// The hub as the web server sees it: hands it upgraded connections.
pub struct Signal {
    inputs: mpsc::Sender<Input>,
    next_conn: AtomicU64,
    config: watch::Receiver<Arc<Config>>,
    shutdown: watch::Receiver<bool>,
    metrics: Metrics,
}

impl Signal {
    /// Creates the hub and registers its metrics; the returned task must run for it to work.
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        shutdown: watch::Receiver<bool>,
        registry: &mut Registry,
    ) -> (Arc<Signal>, impl Future<Output = ()> + use<>) {
        let (inputs, rx) = mpsc::channel(INPUT_QUEUE);
        let metrics = Metrics::default();
        metrics.register(registry);
        let task = run_hub(rx, config.clone(), shutdown.clone(), metrics.clone());
        let signal = Signal {
            inputs,
            next_conn: AtomicU64::new(1),
            config,
            shutdown,
            metrics,
        };
        (Arc::new(signal), task)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs a session on the connection once hyper has finished the HTTP upgrade.
    pub fn spawn_session(&self, upgrade: OnUpgrade) {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let hub = self.inputs.clone();
        let config = self.config.borrow().clone();
        let shutdown = self.shutdown.clone();
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
            session::run(socket, conn, hub, config, shutdown).await;
        });
    }
}

async fn run_hub(
    mut inputs: mpsc::Receiver<Input>,
    mut config: watch::Receiver<Arc<Config>>,
    mut shutdown: watch::Receiver<bool>,
    metrics: Metrics,
) {
    let mut hub = Hub::new(Limits::from(&config.borrow().signal));
    let mut sessions: HashMap<ConnId, mpsc::Sender<Outgoing>> = HashMap::new();
    let mut publish = tokio::time::interval(METRICS_PERIOD);
    let mut published = Stats::default();
    let mut stopping = false;
    loop {
        if stopping && sessions.is_empty() {
            return;
        }
        let deadline = hub.next_deadline().map(tokio::time::Instant::from_std);
        let now = Instant::now();
        let outputs = tokio::select! {
            input = inputs.recv() => match input {
                None => return,
                Some(Input::Connect(c, tx)) => {
                    sessions.insert(c, tx);
                    hub.connect(c, now)
                }
                Some(Input::Text(c, text)) => hub.message(c, &text, now),
                Some(Input::Binary(c)) => hub.binary(c, now),
                Some(Input::Gone(c)) => {
                    sessions.remove(&c);
                    hub.disconnect(c, now)
                }
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                hub.tick(Instant::now())
            }
            Ok(()) = config.changed() => {
                hub.set_limits(Limits::from(&config.borrow_and_update().signal));
                continue;
            }
            _ = publish.tick() => {
                metrics.publish(&hub, &mut published);
                continue;
            }
            // Sessions close themselves on shutdown; wait for them to say they are gone.
            _ = crate::service::stopped(&mut shutdown), if !stopping => {
                stopping = true;
                continue;
            }
        };
        deliver(outputs, &mut hub, &mut sessions);
    }
}

/// Hands the hub's outputs to the sessions. A session whose queue is full is dropped from the
/// hub (as if it had left), which may produce more outputs.
fn deliver(
    outputs: Vec<Output>,
    hub: &mut Hub,
    sessions: &mut HashMap<ConnId, mpsc::Sender<Outgoing>>,
) {
    let mut queue = VecDeque::from(outputs);
    while let Some(output) = queue.pop_front() {
        match output {
            Output::Send { to, frame } => {
                let Some(tx) = sessions.get(&to) else {
                    continue;
                };
                if tx.try_send(Outgoing::Text(frame)).is_err() {
                    sessions.remove(&to);
                    queue.extend(hub.disconnect(to, Instant::now()));
                }
            }
            Output::Close { to, code, reason } => {
                if let Some(tx) = sessions.remove(&to) {
                    let _ = tx.try_send(Outgoing::Close(code, reason));
                }
            }
        }
    }
}
