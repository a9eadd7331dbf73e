//! Envelopes between nodes (`signal::remote`), over Redis Streams: each node reads its own
//! stream `{rallypoint}:inbox:<node>`, and others append to it. Envelopes go from and to a
//! process (`registry::address`), not a node name: a node restarted under its name reads the
//! same stream but takes only what is addressed to it, never what was meant for the players of
//! the process that died (whose connection ids the new one hands out again).
//!
//! Why Streams and not pub/sub: a stream keeps what is appended until it is trimmed, so a
//! reader whose connection drops for a moment resumes after the last entry it read, with
//! nothing missed (pub/sub delivers only to whoever listens at that instant, and says nothing
//! of what was lost); appending is acknowledged, so a sender knows when an envelope did not make
//! it and closes the players concerned instead of losing an OFFER or CANDIDATE silently. One
//! writer appends everything a node sends, in order, so what one player sends arrives in order.
//! Entries are kept for [`keep`] (at least 30 s, and three leases): a node that does not read
//! for that long has not renewed its record either, so the others have already closed its
//! players and forgotten it; no live reader loses an entry to trimming.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{
    StreamAddOptions, StreamReadOptions, StreamReadReply, StreamTrimStrategy, StreamTrimmingMode,
};
use redis::{AsyncCommands, RedisResult};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::redis_source::RedisSource;
use super::registry::node_of;
use crate::signal::Signal;
use crate::signal::remote::{Envelope, Mailbox};

/// How long entries are kept, for a cluster whose lease is `lease`.
pub fn keep(lease: Duration) -> Duration {
    (lease * 3).max(Duration::from_secs(30))
}
/// Envelopes appended in one round trip at most.
const BATCH: usize = 256;
/// How long one read waits for entries.
pub const READ_BLOCK: Duration = Duration::from_secs(1);

pub fn inbox(node: &str) -> String {
    format!("{{rallypoint}}:inbox:{node}")
}

/// Appends a batch of envelopes (`(to address, envelope)`) from the address `from`, in order,
/// trimming entries older than `keep` (by this machine's clock; entry ids are Redis's
/// milliseconds).
pub async fn append(
    conn: &mut MultiplexedConnection,
    from: &str,
    batch: &[(String, Envelope)],
    keep: Duration,
) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    let now = unix_micros();
    let at = now.to_string();
    let oldest = (now / 1000).saturating_sub(keep.as_millis() as u64);
    let trim = StreamAddOptions::default().trim(StreamTrimStrategy::minid(
        StreamTrimmingMode::Approx,
        format!("{oldest}-0"),
    ));
    for (to, envelope) in batch {
        let json = serde_json::to_string(envelope).expect("an envelope serialises");
        pipe.xadd_options(
            inbox(node_of(to)),
            "*",
            &[
                ("from", from),
                ("to", to.as_str()),
                ("at", at.as_str()),
                ("e", json.as_str()),
            ],
            &trim,
        )
        .ignore();
    }
    pipe.query_async(conn).await
}

/// The writer: takes queued envelopes and appends them, a batch at a time; each batch is
/// handed to `done` with whether it was appended.
pub async fn write(
    mut conn: impl FnMut() -> Option<MultiplexedConnection>,
    from: String,
    keep: Duration,
    mut queue: mpsc::Receiver<(String, Envelope)>,
    mut done: impl FnMut(&[(String, Envelope)], bool),
) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let sent = match conn() {
            Some(mut c) => append(&mut c, &from, &batch, keep).await.is_ok(),
            None => false,
        };
        done(&batch, sent);
        batch.clear();
    }
}

/// Microseconds since the Unix epoch, by this machine's clock.
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Reads the stream of the process at `address` after `last` (an entry id) once, handing each
/// envelope addressed to it to the hub in order; returns the id to read after next time and
/// how many envelopes came for it. Each one's time from its sender's append to here goes to
/// `latency` (in seconds; the nodes' clocks must agree, as NTP keeps them).
pub async fn read_once(
    conn: &mut MultiplexedConnection,
    address: &str,
    last: String,
    signal: &Signal,
    latency: &Histogram,
) -> RedisResult<(String, u64)> {
    let options = StreamReadOptions::default()
        .block(READ_BLOCK.as_millis() as usize)
        .count(1024);
    let reply: Option<StreamReadReply> = conn
        .xread_options(&[inbox(node_of(address))], &[last.as_str()], &options)
        .await?;
    let (mut last, mut count) = (last, 0);
    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
        let to: Option<String> = entry.get("to");
        if to.as_deref() != Some(address) {
            // For a previous process of this node.
            last = entry.id;
            continue;
        }
        count += 1;
        if let Some(at) = entry.get::<u64>("at") {
            latency.observe(unix_micros().saturating_sub(at) as f64 / 1e6);
        }
        let from: Option<String> = entry.get("from");
        let envelope: Option<String> = entry.get("e");
        if let (Some(from), Some(json)) = (from, envelope)
            && let Ok(envelope) = serde_json::from_str::<Envelope>(&json)
        {
            signal.receive(&from, envelope).await;
        }
        last = entry.id;
    }
    Ok((last, count))
}

/// The id to start reading this node's stream after: Redis's clock now, so nothing a previous
/// process under this name was sent is taken for this one's.
pub async fn start_id(conn: &mut MultiplexedConnection) -> RedisResult<String> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(format!("{}-0", secs * 1000 + micros / 1000))
}

/// Envelopes to other nodes, queued for the writer ([`write`]).
impl Mailbox for Cluster {
    fn send(&self, node: &str, envelope: Envelope) -> bool {
        // Not only to nodes seen alive: one that has just sent a player here may not be seen
        // yet.
        if !self.redis_up() {
            return false;
        }
        let size = envelope.size();
        let queued = self.outbound_bytes.fetch_add(size, Ordering::Relaxed);
        let over_budget = queued + size > self.max_outbound_bytes && !envelope.ends_a_player();
        if over_budget
            || self
                .outbound
                .try_send((node.to_string(), envelope))
                .is_err()
        {
            self.outbound_bytes.fetch_sub(size, Ordering::Relaxed);
            if self.envelopes_refused.fetch_add(1, Ordering::Relaxed) == 0 {
                log::warn!(
                    "cluster: signalling for other nodes is backing up (cluster.max_outbound_bytes \
                     or {OUTBOUND} envelopes queued); players whose messages do not fit are \
                     closed (further ones are only counted, in \
                     rallypoint_cluster_envelopes_total{{what=\"refused\"}})",
                    OUTBOUND = super::OUTBOUND_QUEUE
                );
            }
            return false;
        }
        self.envelopes_sent.fetch_add(1, Ordering::Relaxed);
        true
    }
}

impl Cluster {
    /// A batch of envelopes (each for a process's address) has been appended (`sent`) or could
    /// not be: then the players concerned are closed.
    pub(super) fn batch_done(
        &self,
        signal: &Arc<Signal>,
        batch: &[(String, Envelope)],
        sent: bool,
    ) {
        let bytes: usize = batch.iter().map(|(_, e)| e.size()).sum();
        self.outbound_bytes.fetch_sub(bytes, Ordering::Relaxed);
        if sent {
            return;
        }
        self.envelopes_failed.fetch_add(1, Ordering::Relaxed);
        // Not used again: the renewal task's next round connects anew.
        *self.conn.lock().unwrap() = None;
        let mut nodes: Vec<String> = batch.iter().map(|(n, _)| n.clone()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let signal = signal.clone();
        tokio::spawn(async move {
            for node in nodes {
                signal.node_gone(&node).await;
            }
        });
    }
}

/// Reads the envelopes for this process until `shutdown`, on a connection of its own (a blocking read
/// would hold up everything else on a shared one), resuming after the last one read when Redis
/// comes back.
pub async fn read(
    cluster: Arc<Cluster>,
    signal: Arc<Signal>,
    source: Arc<RedisSource>,
    connection: AsyncConnectionConfig,
    retry: Duration,
    shutdown: CancellationToken,
) {
    let mut conn = None;
    let mut last = None;
    loop {
        let round = async {
            let c = match &mut conn {
                Some(c) => c,
                None => conn.insert(
                    source
                        .client()
                        .await?
                        .get_multiplexed_async_connection_with_config(&connection)
                        .await?,
                ),
            };
            let after = match &last {
                Some(id) => String::clone(id),
                None => start_id(c).await?,
            };
            let (next, count) = read_once(
                c,
                &cluster.address(),
                after,
                &signal,
                &cluster.forward_latency,
            )
            .await?;
            cluster
                .envelopes_received
                .fetch_add(count, Ordering::Relaxed);
            Ok::<_, redis::RedisError>(next)
        };
        tokio::select! {
            result = round => match result {
                Ok(next) => last = Some(next),
                Err(_) => {
                    // The next connection is a new one (through Sentinel, to the master now).
                    conn = None;
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            },
            _ = shutdown.cancelled() => return,
        }
    }
}
