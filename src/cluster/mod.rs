//! Several rallypoint nodes as one service, sharing what they must through Redis (`[cluster]`).
//!
//! What is shared:
//! - which nodes are alive, their TURN URLs, their load and whether they drain ([`registry`]),
//!   so that `/api/ice` on any node hands out the relay of the node chosen by [`placement`]:
//!   credentials are stateless (every node has the same `turn.secrets`), so any node's
//!   credential works on any other;
//! - where each lobby lives ([`directory`]), so that a player on any node can join it by name or
//!   code: its frames then travel to the lobby's node and back ([`transport`], for
//!   `signal::remote`).
//!
//! Without `[cluster]` none of this runs and nothing talks to Redis.
//!
//! When Redis cannot be reached, the node carries on alone: its own lobbies and relay go on,
//! players attached across nodes are closed as if their host had left, joins of other nodes'
//! lobbies are refused with a reason saying so, `/healthz` says "degraded", one log line says
//! so, and it rejoins by itself when Redis is back (one more line). A node stopped cleanly takes
//! its record and lobbies out at once; one that dies is forgotten when its lease runs out, and
//! the players of its lobbies on other nodes are closed then.

mod directory;
mod failures;
mod metrics;
pub mod placement;
mod quick_play;
mod redis_source;
mod registry;
mod signalling;
mod transport;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::conn_cap::Source;
use crate::signal::Signal;
use crate::signal::ext::LobbyInfo;
use crate::signal::remote::{Envelope, OtherNodes, Owner};
use crate::turn;
pub use metrics::register as register_metrics;
use placement::Member;
use registry::Record;
pub use signalling::seam;

/// Envelopes waiting for the writer; a player whose envelope finds it full is closed.
const OUTBOUND_QUEUE: usize = 65_536;
/// Lobby listings waiting for the renewal task (beyond, the next renewal claims them anyway).
const LISTING_QUEUE: usize = 4096;

/// What a node knows of the cluster, shared by its web server and its cluster task.
pub struct Cluster {
    node: String,
    instance: String,
    turn: turn::Status,
    state: Mutex<State>,
    /// Names and codes of the lobbies this node's hub has.
    owned: Mutex<HashSet<String>>,
    listings: mpsc::Sender<(Vec<String>, bool)>,
    outbound: mpsc::Sender<(String, Envelope)>,
    /// What the tasks take when they start.
    receivers: Mutex<Option<Receivers>>,
    /// The connection the renewal task made, shared with the writer and lookups. It never
    /// reconnects by itself: one that fails is dropped, and the renewal task's next round makes
    /// a new one (through Sentinel, to wherever the master is then).
    conn: Mutex<Option<MultiplexedConnection>>,
    to_self: AtomicU64,
    to_others: AtomicU64,
    renew_failures: AtomicU64,
    envelopes_sent: AtomicU64,
    envelopes_received: AtomicU64,
    envelopes_failed: AtomicU64,
    directory_conflicts: AtomicU64,
    /// Bytes of envelopes queued for the writer, and the most allowed
    /// (`cluster.max_outbound_bytes`).
    outbound_bytes: AtomicUsize,
    max_outbound_bytes: usize,
    envelopes_refused: AtomicU64,
    /// Seconds from a sender's append to this node's read, per envelope.
    forward_latency: Histogram,
}

struct Receivers {
    listings: mpsc::Receiver<(Vec<String>, bool)>,
    outbound: mpsc::Receiver<(String, Envelope)>,
}

struct State {
    /// Its own record as last written.
    own: Member,
    /// The other live nodes' records, as last read.
    others: Vec<Record>,
    /// The lobbies a LIST shows of this node, and of each other node (by name), as last
    /// published: where a QUICK_JOIN goes.
    own_listed: Arc<Vec<LobbyInfo>>,
    listed: Vec<(String, Vec<LobbyInfo>)>,
    redis: Redis,
}

#[derive(Clone, Debug, PartialEq)]
enum Redis {
    /// Not reached yet since start.
    Connecting,
    Up,
    /// Unreachable or failing: the error.
    Down(String),
    /// Another running node has this node's name.
    NameTaken,
}

impl Cluster {
    pub fn new(settings: &config::Cluster, turn: turn::Status) -> Arc<Cluster> {
        let (listings, listings_rx) = mpsc::channel(LISTING_QUEUE);
        let (outbound, outbound_rx) = mpsc::channel(OUTBOUND_QUEUE);
        Arc::new(Cluster {
            node: settings.node.clone(),
            instance: crate::random::id(),
            turn,
            owned: Mutex::default(),
            listings,
            outbound,
            receivers: Mutex::new(Some(Receivers {
                listings: listings_rx,
                outbound: outbound_rx,
            })),
            conn: Mutex::default(),
            envelopes_sent: AtomicU64::new(0),
            envelopes_received: AtomicU64::new(0),
            envelopes_failed: AtomicU64::new(0),
            directory_conflicts: AtomicU64::new(0),
            outbound_bytes: AtomicUsize::new(0),
            max_outbound_bytes: settings.max_outbound_bytes.0 as usize,
            envelopes_refused: AtomicU64::new(0),
            // 100 µs to about 1.6 s.
            forward_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            state: Mutex::new(State {
                own: Member {
                    node: settings.node.clone(),
                    urls: vec![],
                    allocations: 0,
                    lobbies: 0,
                    draining: settings.draining,
                },
                others: vec![],
                own_listed: Arc::default(),
                listed: vec![],
                redis: Redis::Connecting,
            }),
            to_self: AtomicU64::new(0),
            to_others: AtomicU64::new(0),
            renew_failures: AtomicU64::new(0),
        })
    }

    /// The TURN URLs to hand a player of `lobby` (a name or code; or of no lobby in
    /// particular); `None` when it is this node's own relay. A lobby that exists is relayed by
    /// its own node, whichever node is asked and whether it drains or not: one lobby, one relay,
    /// the one its extension members get with ICE_SERVERS. A lobby the directory does not list
    /// (not yet, or Redis unreachable) gets the node placement picks for its name.
    pub async fn relay_for(
        &self,
        lobby: Option<&str>,
        asker: Source,
        failed_joins_per_minute: u32,
    ) -> Option<Vec<String>> {
        if let Some(lobby) = lobby {
            // A lookup tells whether a lobby exists: an address that has spent its failed
            // joins learns nothing from it. A miss is no failure: a lobby may be named before
            // it is created, and then gets the relay placement picks for its name.
            let key = crate::signal::remote::lobby_key(lobby);
            match self.owner_of(key, Some(asker)).await {
                Ok((_, failures)) if failures.spent(failed_joins_per_minute) => {}
                Ok((Owner::Here, _)) => {
                    self.to_self.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                Ok((Owner::There(address), _)) => {
                    let s = self.state.lock().unwrap();
                    if let Some(owner) = s.others.iter().find(|r| r.address() == address) {
                        self.to_others.fetch_add(1, Ordering::Relaxed);
                        return Some(owner.member.urls.clone());
                    }
                }
                Ok((Owner::Nowhere, _)) | Err(_) => {}
            }
        }
        self.placed(lobby)
    }

    /// The relay placement chooses for `lobby` (or any player).
    fn placed(&self, lobby: Option<&str>) -> Option<Vec<String>> {
        let mut s = self.state.lock().unwrap();
        s.own.allocations = self.turn.snapshot().allocations as u64;
        let mut members: Vec<Member> = s.others.iter().map(|r| r.member.clone()).collect();
        members.push(s.own.clone());
        let chosen = placement::choose(&members, lobby).map(|m| m.node.clone());
        match chosen {
            Some(node) if node != self.node => {
                self.to_others.fetch_add(1, Ordering::Relaxed);
                // Counted until its next record, so a burst does not all go to one node.
                let other = &mut s.others.iter_mut().find(|r| r.member.node == node)?.member;
                other.allocations += 1;
                Some(other.urls.clone())
            }
            // This node, or every node drains (then this one still serves).
            _ => {
                self.to_self.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// `/healthz`'s `cluster` part, and whether the node is degraded.
    pub fn health(&self) -> (serde_json::Value, bool) {
        let mut s = self.state.lock().unwrap();
        s.own.allocations = self.turn.snapshot().allocations as u64;
        let mut members: Vec<&Member> =
            s.others.iter().map(|r| &r.member).chain([&s.own]).collect();
        members.sort_unstable_by(|a, b| a.node.cmp(&b.node));
        let nodes: Vec<serde_json::Value> = members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "node": m.node, "allocations": m.allocations, "lobbies": m.lobbies,
                    "draining": m.draining,
                })
            })
            .collect();
        let (status, redis, error) = match &s.redis {
            Redis::Up => ("ok", "up", None),
            Redis::Connecting => ("degraded", "connecting", None),
            Redis::Down(e) => ("degraded", "down", Some(e.clone())),
            Redis::NameTaken => (
                "degraded",
                "up",
                Some(format!(
                    "cluster.node {:?} is held by another running node",
                    self.node
                )),
            ),
        };
        let mut v = serde_json::json!({
            "status": status,
            "node": self.node,
            "redis": redis,
            "nodes": nodes,
        });
        if let Some(e) = error {
            v["error"] = e.into();
        }
        (v, status != "ok")
    }

    /// (live nodes this one counts, itself included; Redis reachable).
    fn figures(&self) -> (usize, bool) {
        let s = self.state.lock().unwrap();
        (s.others.len() + 1, s.redis == Redis::Up)
    }

    /// Each live node's lobbies as last heard (this one's now).
    fn lobbies_per_node(&self) -> Vec<(String, i64)> {
        let s = self.state.lock().unwrap();
        let own = (self.node.clone(), s.own.lobbies as i64);
        s.others
            .iter()
            .map(|r| (r.member.node.clone(), r.member.lobbies as i64))
            .chain([own])
            .collect()
    }

    /// Takes the outcome of one renewal, logging a change of state once; returns the processes
    /// (their addresses) no longer seen alive: a node restarted under its name counts as gone,
    /// even if no renewal here saw it missing.
    fn renewed(&self, outcome: Result<(bool, Vec<Record>), redis::RedisError>) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        let (redis, others) = match outcome {
            Ok((true, records)) => (
                Redis::Up,
                records
                    .into_iter()
                    .filter(|r| r.member.node != self.node)
                    .collect(),
            ),
            Ok((false, _)) => (Redis::NameTaken, vec![]),
            Err(e) => {
                self.renew_failures.fetch_add(1, Ordering::Relaxed);
                (Redis::Down(e.to_string()), vec![])
            }
        };
        let changed = std::mem::discriminant(&redis) != std::mem::discriminant(&s.redis);
        if changed {
            match &redis {
                Redis::Up => log::info!(
                    "cluster: node {:?} joined through Redis; {} other node(s) alive",
                    self.node,
                    others.len()
                ),
                Redis::Down(e) => log::warn!(
                    "cluster: Redis unreachable ({e}); this node carries on alone (its own \
                     lobbies and own relay; players attached across nodes are closed) until it is \
                     back"
                ),
                Redis::NameTaken => log::error!(
                    "cluster: another running node is named {:?} (cluster.node); this node stays \
                     out of the cluster until that one's lease ends",
                    self.node
                ),
                Redis::Connecting => {}
            }
        }
        s.redis = redis;
        let gone = s
            .others
            .iter()
            .filter(|old| !others.iter().any(|r: &Record| r.address() == old.address()))
            .map(Record::address)
            .collect();
        s.others = others;
        gone
    }

    /// This process's address: what its directory keys hold, what it sends envelopes from
    /// and what it reads.
    fn address(&self) -> String {
        registry::address(&self.node, &self.instance)
    }

    fn redis_up(&self) -> bool {
        self.state.lock().unwrap().redis == Redis::Up
    }
}

/// Keeps this node's record and lobbies alive and the view of the others fresh until
/// `shutdown`, then takes them out; runs the envelope writer and reader meanwhile. `own_urls`
/// gives this node's STUN/TURN URLs under a configuration (what its own `/api/ice` lists).
pub async fn run(
    cluster: Arc<Cluster>,
    signal: Arc<Signal>,
    mut config: watch::Receiver<Arc<Config>>,
    own_urls: impl Fn(&Config) -> Vec<String>,
    shutdown: CancellationToken,
) {
    let settings = config.borrow().cluster.clone().expect("[cluster] is set");
    let source = match redis_source::RedisSource::new(&settings) {
        Ok(s) => Arc::new(s),
        Err(e) => return log::error!("cluster: {e}"),
    };
    // For Sentinel: where the master was, to tell a failover.
    let mut master: Option<String> = None;
    let Some(Receivers {
        mut listings,
        outbound,
    }) = cluster.receivers.lock().unwrap().take()
    else {
        return;
    };
    let period = settings.lease.0 / 3;
    let lease_ms = settings.lease.0.as_millis() as u64;
    let connection = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.lease.0 / 2))
        .set_response_timeout(Some(settings.lease.0 / 2));
    let writer = {
        let (c1, c2, s) = (cluster.clone(), cluster.clone(), signal.clone());
        tokio::spawn(transport::write(
            move || c1.conn.lock().unwrap().clone(),
            cluster.address(),
            transport::keep(settings.lease.0),
            outbound,
            move |batch, sent| c2.batch_done(&s, batch, sent),
        ))
    };
    let reader = tokio::spawn(transport::read(
        cluster.clone(),
        signal.clone(),
        source.clone(),
        connection
            .clone()
            .set_response_timeout(Some(transport::READ_BLOCK + period)),
        period,
        shutdown.clone(),
    ));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut record = None;
    loop {
        let mut released = Vec::new();
        tokio::select! {
            _ = tick.tick() => {}
            Ok(()) = config.changed() => {}
            Some(first) = listings.recv() => {
                // Claims at once (a player may join from another node any moment); renews
                // nothing else.
                let mut opened = Vec::new();
                for (keys, open) in std::iter::once(first).chain(std::iter::from_fn(|| listings.try_recv().ok())) {
                    if open { opened.extend(keys) } else { released.extend(keys) }
                }
                let conn = cluster.conn.lock().unwrap().clone();
                if let Some(mut c) = conn {
                    let owner = cluster.address();
                    let _ = directory::release(&mut c, &owner, &released).await;
                    if let Ok(lost) = directory::claim(&mut c, &owner, &opened, lease_ms).await {
                        cluster.conflicts(lost);
                    }
                }
                continue;
            }
            _ = shutdown.cancelled() => break,
        }
        let current = config.borrow_and_update().clone();
        let draining = current.cluster.as_ref().is_some_and(|c| c.draining);
        let own = Record {
            instance: cluster.instance.clone(),
            member: Member {
                node: cluster.node.clone(),
                urls: own_urls(&current),
                allocations: cluster.turn.snapshot().allocations as u64,
                lobbies: signal.snapshot().lobbies as u64,
                draining,
            },
        };
        cluster.state.lock().unwrap().own = own.member.clone();
        let owned: Vec<String> = cluster.owned.lock().unwrap().iter().cloned().collect();
        // A renewal slower than half the lease (a loaded machine) is late, not an outage.
        let outcome = tokio::time::timeout(
            (settings.lease.0 / 2).max(Duration::from_millis(500)),
            async {
                let shared = cluster.conn.lock().unwrap().clone();
                let mut c = match shared {
                    Some(c) => c,
                    None => {
                        let client = source.client().await?;
                        let at = redis_source::address_of(&client);
                        let moved = master.replace(at.clone()).filter(|was| *was != at);
                        if let Some(was) = moved {
                            // What the old master acknowledged may be missing on the new one:
                            // this round counts as an outage, which closes the players attached
                            // across nodes with a reason rather than leaving them waiting.
                            log::warn!(
                                "cluster: the Redis master moved from {was} to {at} (a failover); \
                                 players attached across nodes are closed, as envelopes in flight \
                                 may be lost"
                            );
                            return Err(redis::RedisError::from((
                                redis::ErrorKind::Io,
                                "the Redis master moved (a failover)",
                            )));
                        }
                        client
                            .get_multiplexed_async_connection_with_config(&connection)
                            .await?
                    }
                };
                *cluster.conn.lock().unwrap() = Some(c.clone());
                let ours = registry::renew(&mut c, &own, lease_ms).await?;
                if ours {
                    let lost =
                        directory::claim(&mut c, &cluster.address(), &owned, lease_ms).await?;
                    cluster.conflicts(lost);
                }
                let records = registry::members(&mut c).await?;
                if ours {
                    let listed = signal.snapshot().listed;
                    directory::publish_listed(&mut c, &cluster.node, &listed, lease_ms).await?;
                    let others: Vec<String> = records
                        .iter()
                        .map(|r| r.member.node.clone())
                        .filter(|n| *n != cluster.node)
                        .collect();
                    let elsewhere = directory::listed_elsewhere(&mut c, &others).await?;
                    let all = elsewhere.iter().flat_map(|(_, l)| l.iter().cloned());
                    signal.set_lobbies_elsewhere(all.collect()).await;
                    let mut state = cluster.state.lock().unwrap();
                    (state.own_listed, state.listed) = (listed, elsewhere);
                }
                Ok((ours, records))
            },
        )
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        });
        // A connection that failed is dropped: the next round makes a new one (through
        // Sentinel, asking where the master is now). Never the same address again by itself:
        // a master killed and restarted comes back empty, as a master, until the Sentinels make
        // it a replica, and what a node wrote to it meanwhile would be lost.
        if outcome.is_err() {
            *cluster.conn.lock().unwrap() = None;
        }
        let joined = matches!(outcome, Ok((true, _)));
        if joined {
            record = Some(own);
        } else {
            // Nothing of the others is known now.
            signal.set_lobbies_elsewhere(vec![]).await;
            let mut state = cluster.state.lock().unwrap();
            (state.own_listed, state.listed) = Default::default();
        }
        for node in cluster.renewed(outcome) {
            signal.node_gone(&node).await;
        }
    }
    writer.abort();
    let _ = reader.await;
    let conn = cluster.conn.lock().unwrap().clone();
    if let (Some(mut c), Some(record)) = (conn, record) {
        let owned: Vec<String> = cluster.owned.lock().unwrap().iter().cloned().collect();
        let _ = tokio::time::timeout(period, async {
            let _ = directory::release(&mut c, &cluster.address(), &owned).await;
            registry::leave(&mut c, &record).await
        })
        .await;
    }
}
