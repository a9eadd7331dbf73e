//! The nodes' records in Redis. Each node keeps `{rallypoint}:node:<name>` (a JSON
//! [`Record`]) alive by setting it again every third of `cluster.lease`, with the lease as its
//! expiry, and lists its name in the set `{rallypoint}:nodes`; a node that stops (crashed, cut
//! off) disappears when its key expires. Each record carries the instance that wrote it, so a
//! second process started with a running node's name is refused rather than mixed with it.
//! The keys share one hash tag, so the scripts also run on a Redis Cluster.

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, RedisResult, Script};
use serde::{Deserialize, Serialize};

use super::placement::Member;

const NODES: &str = "{rallypoint}:nodes";

fn node_key(node: &str) -> String {
    format!("{{rallypoint}}:node:{node}")
}

/// What a node writes about itself.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Record {
    /// Random per process.
    pub instance: String,
    #[serde(flatten)]
    pub member: Member,
}

impl Record {
    /// The process that wrote it, as [`address`] names it.
    pub fn address(&self) -> String {
        address(&self.member.node, &self.instance)
    }
}

/// One process of a node, `node/instance`: what the lobby directory holds and what envelopes
/// are addressed to and sent from. A node restarted under its name is a new address, so nothing
/// meant for (or about) the process that died reaches the new one.
pub fn address(node: &str, instance: &str) -> String {
    format!("{node}/{instance}")
}

/// The node of an [`address`].
pub fn node_of(address: &str) -> &str {
    address.rsplit_once('/').map_or(address, |(node, _)| node)
}

/// Writes `record` for `lease_ms` unless another instance holds the name: then `false`.
pub async fn renew(
    conn: &mut MultiplexedConnection,
    record: &Record,
    lease_ms: u64,
) -> RedisResult<bool> {
    let script = Script::new(
        r"local current = redis.call('GET', KEYS[1])
          if current and cjson.decode(current)['instance'] ~= ARGV[1] then return 0 end
          redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
          redis.call('SADD', KEYS[2], ARGV[4])
          return 1",
    );
    let json = serde_json::to_string(record).expect("a record serialises");
    let written: i64 = script
        .key(node_key(&record.member.node))
        .key(NODES)
        .arg(&record.instance)
        .arg(json)
        .arg(lease_ms)
        .arg(&record.member.node)
        .invoke_async(conn)
        .await?;
    Ok(written == 1)
}

/// Removes this node's record (on a clean stop), if it is still this instance's.
pub async fn leave(conn: &mut MultiplexedConnection, record: &Record) -> RedisResult<()> {
    let script = Script::new(
        r"local current = redis.call('GET', KEYS[1])
          if current and cjson.decode(current)['instance'] == ARGV[1] then
            redis.call('DEL', KEYS[1])
            redis.call('SREM', KEYS[2], ARGV[2])
          end
          return 1",
    );
    let _: i64 = script
        .key(node_key(&record.member.node))
        .key(NODES)
        .arg(&record.instance)
        .arg(&record.member.node)
        .invoke_async(conn)
        .await?;
    Ok(())
}

/// Every live node's record; names whose record has expired are taken off the list.
pub async fn members(conn: &mut MultiplexedConnection) -> RedisResult<Vec<Record>> {
    let names: Vec<String> = conn.smembers(NODES).await?;
    if names.is_empty() {
        return Ok(vec![]);
    }
    let keys: Vec<String> = names.iter().map(|n| node_key(n)).collect();
    let values: Vec<Option<String>> = conn.mget(&keys).await?;
    let mut records = Vec::new();
    let mut expired = Vec::new();
    for (name, value) in names.into_iter().zip(values) {
        match value {
            // A record this version cannot read (another release mid-upgrade) is left alone.
            Some(v) => records.extend(serde_json::from_str::<Record>(&v).ok()),
            None => expired.push(name),
        }
    }
    if !expired.is_empty() {
        let _: i64 = conn.srem(NODES, expired).await?;
    }
    Ok(records)
}
