//! Several rallypoint nodes as one service, sharing what they must through Redis (`[cluster]`).
//!
//! What is shared today: which nodes are alive, their TURN URLs, their load and whether they
//! drain ([`registry`]), so that `/api/ice` on any node hands out the relay of the node chosen
//! by [`placement`]: credentials are stateless (every node has the same `turn.secrets`), so any
//! node's credential works on any other. Without `[cluster]` none of this runs and nothing
//! talks to Redis.
//!
//! When Redis cannot be reached, the node carries on alone: it hands out its own relay,
//! `/healthz` says "degraded", one log line says so, and it rejoins by itself when Redis is back
//! (one more line). A node stopped cleanly takes its record out at once; one that dies is
//! forgotten when its lease runs out.

mod metrics;
pub mod placement;
mod registry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::turn;
pub use metrics::register as register_metrics;
use placement::Member;
use registry::Record;

/// What a node knows of the cluster, shared by its web server and its cluster task.
pub struct Cluster {
    node: String,
    instance: String,
    turn: turn::Status,
    state: Mutex<State>,
    to_self: AtomicU64,
    to_others: AtomicU64,
    renew_failures: AtomicU64,
}

struct State {
    /// Its own record as last written.
    own: Member,
    /// The other live nodes, as last read.
    others: Vec<Member>,
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
        Arc::new(Cluster {
            node: settings.node.clone(),
            instance: crate::turn::rest::random_user(),
            turn,
            state: Mutex::new(State {
                own: Member {
                    node: settings.node.clone(),
                    urls: vec![],
                    allocations: 0,
                    draining: settings.draining,
                },
                others: vec![],
                redis: Redis::Connecting,
            }),
            to_self: AtomicU64::new(0),
            to_others: AtomicU64::new(0),
            renew_failures: AtomicU64::new(0),
        })
    }

    /// The TURN URLs to hand a player of `lobby` (or of no lobby in particular); `None` when
    /// it is this node's own relay.
    pub fn relay_for(&self, lobby: Option<&str>) -> Option<Vec<String>> {
        let mut s = self.state.lock().unwrap();
        s.own.allocations = self.turn.snapshot().allocations as u64;
        let mut members = s.others.clone();
        members.push(s.own.clone());
        let chosen = placement::choose(&members, lobby).map(|m| m.node.clone());
        match chosen {
            Some(node) if node != self.node => {
                self.to_others.fetch_add(1, Ordering::Relaxed);
                // Counted until its next record, so a burst does not all go to one node.
                let other = s.others.iter_mut().find(|m| m.node == node)?;
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
        let mut members: Vec<&Member> = s.others.iter().chain([&s.own]).collect();
        members.sort_unstable_by(|a, b| a.node.cmp(&b.node));
        let nodes: Vec<serde_json::Value> = members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "node": m.node, "allocations": m.allocations, "draining": m.draining,
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

    /// Takes the outcome of one renewal, logging a change of state once.
    fn renewed(&self, outcome: Result<(bool, Vec<Record>), redis::RedisError>) {
        let mut s = self.state.lock().unwrap();
        let (redis, others) = match outcome {
            Ok((true, records)) => (
                Redis::Up,
                records
                    .into_iter()
                    .filter(|r| r.member.node != self.node)
                    .map(|r| r.member)
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
                    "cluster: Redis unreachable ({e}); this node hands out its own relay until \
                     it is back"
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
        s.others = others;
    }
}

/// Keeps this node's record alive and the view of the others fresh until `shutdown`, then takes
/// the record out. `own_urls` gives this node's STUN/TURN URLs under a configuration (what its
/// own `/api/ice` would list).
pub async fn run(
    cluster: Arc<Cluster>,
    mut config: watch::Receiver<Arc<Config>>,
    own_urls: impl Fn(&Config) -> Vec<String>,
    shutdown: CancellationToken,
) {
    let settings = config.borrow().cluster.clone().expect("[cluster] is set");
    let client = match redis::Client::open(settings.redis.as_str()) {
        Ok(c) => c,
        Err(e) => return log::error!("cluster: {e}"),
    };
    let period = settings.lease.0 / 3;
    let lease_ms = settings.lease.0.as_millis() as u64;
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(period))
        .set_response_timeout(Some(period))
        .set_number_of_retries(1)
        .set_max_delay(period);
    let mut conn: Option<ConnectionManager> = None;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut record = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Ok(()) = config.changed() => {}
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
                draining,
            },
        };
        cluster.state.lock().unwrap().own = own.member.clone();
        let outcome = tokio::time::timeout(period.max(Duration::from_millis(500)), async {
            if conn.is_none() {
                conn = Some(
                    ConnectionManager::new_with_config(client.clone(), manager.clone()).await?,
                );
            }
            let c = conn.as_mut().expect("connected");
            let ours = registry::renew(c, &own, lease_ms).await?;
            let records = registry::members(c).await?;
            Ok((ours, records))
        })
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        });
        if matches!(outcome, Ok((true, _))) {
            record = Some(own);
        }
        cluster.renewed(outcome);
    }
    if let (Some(c), Some(record)) = (conn.as_mut(), record) {
        let _ = tokio::time::timeout(period, registry::leave(c, &record)).await;
    }
}
