//! Feeds the signalling hub arbitrary frames from a handful of connections, with joins, leaves
//! and clock ticks in between: it must never panic, whatever the dialect or order.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rallypoint::signal::hub::{Hub, Limits};

fuzz_target!(|data: &[u8]| {
    let mut hub = Hub::new(Limits {
        max_peers: 6,
        max_lobbies: 3,
        max_lobby_members: 4,
        join_timeout: Duration::from_secs(1),
        seal_close_delay: Duration::from_secs(2),
    });
    let start = Instant::now();
    let mut rest = data;
    let mut t = Duration::ZERO;
    // Each event: [op, conn, len, frame...].
    while let [op, conn, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        let conn = u64::from(conn % 8);
        t += Duration::from_millis(u64::from(op >> 3) * 100);
        let now = start + t;
        let _ = match op & 7 {
            0 => hub.connect(conn, now),
            1 => hub.disconnect(conn, now),
            2 => hub.binary(conn, now),
            3 => hub.tick(now),
            _ => hub.message(conn, &String::from_utf8_lossy(frame), now),
        };
    }
});
