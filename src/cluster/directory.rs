//! Where each lobby, and each lobby member's place, lives: `{rallypoint}:where:<key>` holds
//! `<node>/<instance>` of the node whose hub has it, for keys that are a lobby's name, its code,
//! or the hash of a member's resume token (`signal::hub::resume_key`), expiring with
//! `cluster.lease` and renewed with the node's record. The instance part is the fencing token:
//! only the process that claimed a key renews or removes it, so a node restarted under the same
//! name, or one cut off long enough for its keys to expire and be claimed again, cannot act on
//! another's lobby.
//!
//! Each node also publishes the lobbies a LIST may show (`{rallypoint}:listed:<node>`, JSON,
//! with the same lease), so that a LIST on any node shows every node's.

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, RedisResult, Script};

use crate::signal::ext::LobbyInfo;

/// Keys claimed or released by one script call. A script blocks Redis while it runs: claiming a
/// big node's 10,000 keys in one call held every other node's signalling (their stream reads and
/// appends) for some 20 ms each renewal; in calls of this many, the others' commands go between.
const KEYS_PER_CALL: usize = 256;

fn key(listed_as: &str) -> String {
    format!("{{rallypoint}}:where:{listed_as}")
}

/// Claims `keys` for `owner` unless another holds them; returns those another holds. Each key
/// is claimed on its own terms, so the keys go in calls of [`KEYS_PER_CALL`].
pub async fn claim(
    conn: &mut MultiplexedConnection,
    owner: &str,
    keys: &[String],
    lease_ms: u64,
) -> RedisResult<Vec<String>> {
    let mut lost = Vec::new();
    for chunk in keys.chunks(KEYS_PER_CALL) {
        lost.extend(claim_some(conn, owner, chunk, lease_ms).await?);
    }
    Ok(lost)
}

async fn claim_some(
    conn: &mut MultiplexedConnection,
    owner: &str,
    keys: &[String],
    lease_ms: u64,
) -> RedisResult<Vec<String>> {
    // Renews what `owner` holds, takes what nobody holds (after Redis lost its data, say).
    let script = Script::new(
        r"local lost = {}
          for i, k in ipairs(KEYS) do
            local v = redis.call('GET', k)
            if v == false or v == ARGV[1] then
              redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
            else
              table.insert(lost, k)
            end
          end
          return lost",
    );
    let mut invocation = script.prepare_invoke();
    for k in keys {
        invocation.key(key(k));
    }
    let lost: Vec<String> = invocation
        .arg(owner)
        .arg(lease_ms)
        .invoke_async(conn)
        .await?;
    let prefix = key("");
    Ok(lost
        .into_iter()
        .map(|k| k.strip_prefix(&prefix).unwrap_or(&k).to_string())
        .collect())
}

/// Removes `keys` if `owner` holds them (in calls of [`KEYS_PER_CALL`]).
pub async fn release(
    conn: &mut MultiplexedConnection,
    owner: &str,
    keys: &[String],
) -> RedisResult<()> {
    for chunk in keys.chunks(KEYS_PER_CALL) {
        release_some(conn, owner, chunk).await?;
    }
    Ok(())
}

async fn release_some(
    conn: &mut MultiplexedConnection,
    owner: &str,
    keys: &[String],
) -> RedisResult<()> {
    let script = Script::new(
        r"for i, k in ipairs(KEYS) do
            if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
          end
          return 1",
    );
    let mut invocation = script.prepare_invoke();
    for k in keys {
        invocation.key(key(k));
    }
    let _: i64 = invocation.arg(owner).invoke_async(conn).await?;
    Ok(())
}

/// The process (its `registry::address`) holding what is listed as `listed_as` (a lobby name
/// or code, a resume key), if any; with `also`'s values (read first, in the same MGET).
pub async fn owner<const N: usize>(
    conn: &mut MultiplexedConnection,
    listed_as: &str,
    also: [String; N],
) -> RedisResult<(Option<String>, [Option<u32>; N])> {
    let mut keys = also.to_vec();
    keys.push(key(listed_as));
    let mut values: Vec<Option<String>> = conn.mget(&keys).await?;
    let owner = values.pop().flatten();
    let also = std::array::from_fn(|i| values[i].as_deref().and_then(|v| v.parse().ok()));
    Ok((owner, also))
}

fn listed_key(node: &str) -> String {
    format!("{{rallypoint}}:listed:{node}")
}

/// Publishes the lobbies a LIST on another node may show of this one, for `lease_ms`.
pub async fn publish_listed(
    conn: &mut MultiplexedConnection,
    node: &str,
    lobbies: &[LobbyInfo],
    lease_ms: u64,
) -> RedisResult<()> {
    let json = serde_json::to_string(lobbies).expect("lobby infos serialise");
    conn.pset_ex(listed_key(node), json, lease_ms).await
}

/// The lobbies each of `nodes` publishes for LIST, by node.
pub async fn listed_elsewhere(
    conn: &mut MultiplexedConnection,
    nodes: &[String],
) -> RedisResult<Vec<(String, Vec<LobbyInfo>)>> {
    if nodes.is_empty() {
        return Ok(vec![]);
    }
    let keys: Vec<String> = nodes.iter().map(|n| listed_key(n)).collect();
    let values: Vec<Option<String>> = conn.mget(&keys).await?;
    Ok(nodes
        .iter()
        .zip(values)
        .filter_map(|(node, v)| {
            let lobbies = serde_json::from_str::<Vec<LobbyInfo>>(&v?).ok()?;
            Some((node.clone(), lobbies))
        })
        .collect())
}
