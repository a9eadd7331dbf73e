//! Failed joins counted for the whole cluster (`signal::failed_joins`): each failure on any
//! node increments `{rallypoint}:failed:<address>` and, for IPv6, `{rallypoint}:failed48:<site>`,
//! counters that live one minute from their first failure. A node reads them before it looks a
//! lobby up for a player, in the same round trip as the lookup.

use redis::RedisResult;
use redis::aio::MultiplexedConnection;

use crate::conn_cap::Source;
use crate::signal::failed_joins::Failures;

/// How long a window of failures lasts, from its first.
const WINDOW_MS: u64 = 60_000;

fn address_key(source: Source) -> String {
    format!("{{rallypoint}}:failed:{}", source.key())
}

fn site_key(site: Source) -> String {
    format!("{{rallypoint}}:failed48:{}", site.key())
}

/// The counters to read for `source`: its own, and its site's (IPv4: its own again).
pub fn keys(source: Source) -> [String; 2] {
    [
        address_key(source),
        source.site().map_or_else(|| address_key(source), site_key),
    ]
}

/// What `keys(source)` read.
pub fn failures(source: Source, values: [Option<u32>; 2]) -> Failures {
    Failures {
        address: values[0].unwrap_or(0),
        site: match source.site() {
            Some(_) => values[1].unwrap_or(0),
            None => 0,
        },
    }
}

/// Counts one failed join from `source`.
pub async fn count(conn: &mut MultiplexedConnection, source: Source) -> RedisResult<()> {
    let mut pipe = redis::pipe();
    // Atomic: the counter never outlives its window without an expiry.
    pipe.atomic();
    let mut keys = vec![address_key(source)];
    keys.extend(source.site().map(site_key));
    for key in &keys {
        pipe.cmd("SET")
            .arg(key)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(WINDOW_MS)
            .ignore()
            .incr(key, 1)
            .ignore();
    }
    pipe.query_async(conn).await
}
