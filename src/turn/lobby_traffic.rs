//! What each lobby relays, for operators: bytes and packets per lobby while it runs (the
//! self-test page's status JSON), one log line when its last allocation goes (players,
//! duration, bytes), and histograms over finished lobbies — no per-lobby metric labels, whose
//! number would grow without bound.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::relay::TrafficTotals;

/// Lobbies listed in the status JSON at most (the busiest).
pub const LISTED: usize = 50;

struct Account {
    started: Instant,
    /// Allocations alive now.
    live: u32,
    players: HashSet<u32>,
    /// Traffic of its allocations already gone.
    retired: TrafficTotals,
}

/// A lobby relaying now, as the status JSON shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Running {
    pub lobby: String,
    pub players: usize,
    pub allocations: u32,
    pub seconds: u64,
    pub bytes: u64,
}

pub struct LobbyTraffic {
    accounts: HashMap<u64, Account>,
    /// Over finished lobbies: bytes relayed, and seconds from first allocation to last.
    pub bytes: Histogram,
    pub seconds: Histogram,
}

impl LobbyTraffic {
    pub fn new() -> LobbyTraffic {
        LobbyTraffic {
            accounts: HashMap::new(),
            // 64 KiB .. 64 GiB; 10 s .. about 28 h.
            bytes: Histogram::new(exponential_buckets(65_536.0, 4.0, 11)),
            seconds: Histogram::new(exponential_buckets(10.0, 3.0, 10)),
        }
    }

    /// Player `player` of `lobby` made an allocation.
    pub fn allocated(&mut self, lobby: u64, player: u32, now: Instant) {
        let a = self.accounts.entry(lobby).or_insert_with(|| Account {
            started: now,
            live: 0,
            players: HashSet::new(),
            retired: TrafficTotals::default(),
        });
        a.live += 1;
        a.players.insert(player);
    }

    /// An allocation of `lobby` is gone with `totals`; when it was the lobby's last, the lobby's
    /// figures are logged and go into the histograms.
    pub fn deleted(&mut self, lobby: u64, totals: TrafficTotals, now: Instant) {
        let Some(a) = self.accounts.get_mut(&lobby) else {
            return;
        };
        a.retired += totals;
        a.live -= 1;
        if a.live > 0 {
            return;
        }
        let a = self.accounts.remove(&lobby).expect("just seen");
        let t = a.retired;
        let bytes = t.to_peer_bytes + t.to_client_bytes;
        let packets = t.to_peer_packets + t.to_client_packets;
        let took = now.saturating_duration_since(a.started);
        log::info!(
            "turn: lobby {lobby:016x} relayed {bytes} bytes in {packets} packets for {} \
             player(s) over {}",
            a.players.len(),
            humantime::format_duration(Duration::from_secs(took.as_secs()))
        );
        self.bytes.observe(bytes as f64);
        self.seconds.observe(took.as_secs_f64());
    }

    /// The busiest [`LISTED`] lobbies relaying now; `live` gives the traffic so far of each
    /// live allocation of a lobby.
    pub fn running(&self, now: Instant, live: &HashMap<u64, TrafficTotals>) -> Vec<Running> {
        let mut running: Vec<Running> = self
            .accounts
            .iter()
            .map(|(&lobby, a)| {
                let mut t = a.retired;
                if let Some(l) = live.get(&lobby) {
                    t += *l;
                }
                Running {
                    lobby: format!("{lobby:016x}"),
                    players: a.players.len(),
                    allocations: a.live,
                    seconds: now.saturating_duration_since(a.started).as_secs(),
                    bytes: t.to_peer_bytes + t.to_client_bytes,
                }
            })
            .collect();
        running.sort_unstable_by_key(|r| std::cmp::Reverse(r.bytes));
        running.truncate(LISTED);
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(bytes: u64) -> TrafficTotals {
        TrafficTotals {
            to_peer_packets: 1,
            to_peer_bytes: bytes,
            ..TrafficTotals::default()
        }
    }

    #[test]
    fn a_lobby_is_accounted_until_its_last_allocation_goes() {
        let t0 = Instant::now();
        let mut l = LobbyTraffic::new();
        l.allocated(1, 10, t0);
        l.allocated(1, 10, t0);
        l.allocated(1, 11, t0);
        l.allocated(2, 20, t0);
        let live = HashMap::from([(1, traffic(500))]);
        let running = l.running(t0 + Duration::from_secs(5), &live);
        assert_eq!(running[0].lobby, "0000000000000001", "the busiest first");
        assert_eq!((running[0].players, running[0].allocations), (2, 3));
        assert_eq!((running[0].seconds, running[0].bytes), (5, 500));
        l.deleted(1, traffic(100), t0);
        l.deleted(1, traffic(100), t0);
        assert_eq!(l.running(t0, &HashMap::new())[0].bytes, 200);
        l.deleted(1, traffic(100), t0 + Duration::from_secs(30));
        assert_eq!(l.running(t0, &HashMap::new()).len(), 1, "lobby 1 is done");
    }
}
