//! Feeds the signalling hub arbitrary frames from a handful of connections, plain and extension
//! clients from two addresses, with joins, leaves, resumes and clock ticks in between: it must
//! never panic, whatever the dialect, message or order. Frames starting with `#` become extension
//! messages (`{"type": 100 + n, "id": .., "data": rest}`) so that the fuzzer reaches them often.

#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rallypoint::random::Random;
use rallypoint::signal::hub::{Client, Departure, Hub, Limits};

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut hub = Hub::new(
        Limits {
            max_peers: 6,
            max_lobbies: 3,
            max_lobby_members: 4,
            join_timeout: Duration::from_secs(1),
            seal_close_delay: Duration::from_secs(2),
            resume_grace: Duration::from_secs(2),
            max_resume_queue: 3,
            list_page_size: 2,
            failed_joins_per_minute: 3,
            ..Limits::from(&rallypoint::config::Signal::default())
        },
        start,
        Random::seeded(u64::from(data.len() as u32)),
    );
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
        let client = Client {
            extension: conn % 2 == 1,
            source: std::net::Ipv4Addr::new(10, 0, 0, (conn % 4) as u8).into(),
        };
        let text = String::from_utf8_lossy(frame);
        let text = match text.strip_prefix('#') {
            Some(rest) => {
                let (kind, id) = (rest.len() % 11, rest.len() % 5);
                serde_json::json!({"type": 100 + kind, "id": id, "data": rest}).to_string()
            }
            None => text.into_owned(),
        };
        let _ = match op & 7 {
            0 => hub.connect(conn, client, now),
            // A close on purpose, or a lost socket (a place kept for a resume).
            1 => hub.disconnect(conn, departure(*op), now),
            2 => hub.binary(conn, now),
            3 => hub.tick(now),
            _ => hub.message(conn, &text, now),
        };
    }
});

fn departure(op: u8) -> Departure {
    if op & 0x80 == 0 {
        Departure::Left
    } else {
        Departure::Lost
    }
}
