//! Lobby-bound relaying, sans-IO: what the signalling hub tells the relay about its lobbies, and
//! what follows for allocations made with a lobby's credentials (usernames
//! `<expiry>:lobby.<lobby>.<player>`, see [`crate::credentials::lobby_user`]).
//!
//! Such an allocation exists only while its lobby does; it may reach the addresses members of its
//! lobby announced in the candidates and SDP they sent through the hub, and relay addresses of
//! allocations of the same lobby; nothing else. A lobby that ends before its game starts takes
//! its allocations with it after [`ABORT_GRACE`]; a sealed lobby's game goes on over WebRTC after
//! the signalling sockets close: its allocations live on while refreshed, with the permissions
//! they had (nothing new is announced after the seal).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::credentials::LobbyEvent;

/// How long an aborted lobby's allocations outlive it (a player's last packets, a late Refresh).
pub const ABORT_GRACE: Duration = Duration::from_secs(10);
/// Addresses remembered per lobby at most: a bound of its own; the hub lets each member announce
/// 16 (`signal::hub`) and withdraws a member's when it leaves, so this is reached only by a
/// lobby of 256 players who all announce that many.
const MAX_ANNOUNCED: usize = 4096;

/// The lobby rule between two allocations of this relay: one bound to lobby `from` (or to none)
/// may exchange packets with one bound to `to` when it is bound to none, or to the same lobby.
/// The control plane ([`super::server::Server::reaches_relay`]) and the data plane
/// (`local_relays::LocalRelays::reachable`) both ask this.
pub fn may_reach(from: Option<u64>, to: Option<u64>) -> bool {
    from.is_none() || from == to
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Sealed,
    /// Sealed, and its signalling is over: only its allocations keep it.
    Playing,
    /// Ended before its seal: its allocations go at this time.
    Aborted(Instant),
}

struct Scope {
    state: State,
    announced: HashSet<IpAddr>,
}

#[derive(Default)]
pub struct Lobbies {
    scopes: HashMap<u64, Scope>,
}

impl Lobbies {
    /// Applies an event; `has_allocations` says whether any allocation still uses the lobby
    /// (a lobby nothing uses is forgotten when it ends).
    pub fn apply(&mut self, event: LobbyEvent, now: Instant, has_allocations: bool) {
        match event {
            LobbyEvent::Opened { lobby } => {
                self.scopes.insert(
                    lobby,
                    Scope {
                        state: State::Open,
                        announced: HashSet::new(),
                    },
                );
            }
            LobbyEvent::Announced { lobby, ip } => {
                if let Some(s) = self.scopes.get_mut(&lobby)
                    && s.state == State::Open
                    && s.announced.len() < MAX_ANNOUNCED
                {
                    s.announced.insert(ip);
                }
            }
            LobbyEvent::Withdrawn { lobby, ip } => {
                if let Some(s) = self.scopes.get_mut(&lobby)
                    && s.state == State::Open
                {
                    s.announced.remove(&ip);
                }
            }
            LobbyEvent::Sealed { lobby } => {
                if let Some(s) = self.scopes.get_mut(&lobby)
                    && s.state == State::Open
                {
                    s.state = State::Sealed;
                }
            }
            LobbyEvent::Ended { lobby } => {
                let Some(s) = self.scopes.get_mut(&lobby) else {
                    return;
                };
                s.state = match s.state {
                    State::Open => State::Aborted(now + ABORT_GRACE),
                    State::Sealed | State::Playing => State::Playing,
                    aborted @ State::Aborted(_) => aborted,
                };
                if !has_allocations {
                    self.scopes.remove(&lobby);
                }
            }
        }
    }

    /// Whether a new allocation may be made for `lobby`: it is open or sealed.
    pub fn admits(&self, lobby: u64) -> bool {
        self.scopes
            .get(&lobby)
            .is_some_and(|s| matches!(s.state, State::Open | State::Sealed))
    }

    /// Whether a member of `lobby` announced `ip`.
    pub fn announced(&self, lobby: u64, ip: IpAddr) -> bool {
        self.scopes
            .get(&lobby)
            .is_some_and(|s| s.announced.contains(&ip))
    }

    /// The last allocation of `lobby` is gone: forget a lobby whose signalling is over.
    pub fn allocations_gone(&mut self, lobby: u64) {
        if self
            .scopes
            .get(&lobby)
            .is_some_and(|s| matches!(s.state, State::Playing | State::Aborted(_)))
        {
            self.scopes.remove(&lobby);
        }
    }

    /// Aborted lobbies whose grace is over: their allocations must go now. They are forgotten.
    pub fn due_teardowns(&mut self, now: Instant) -> Vec<u64> {
        let due: Vec<u64> = self
            .scopes
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Aborted(at) if at <= now))
            .map(|(&lobby, _)| lobby)
            .collect();
        for lobby in &due {
            self.scopes.remove(lobby);
        }
        due
    }

    /// Lobbies known: open, sealed, or playing on with allocations.
    pub fn count(&self) -> usize {
        self.scopes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: u64 = 7;
    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));

    #[test]
    fn announcements_count_until_the_seal() {
        let now = Instant::now();
        let mut l = Lobbies::default();
        l.apply(LobbyEvent::Announced { lobby: L, ip: IP }, now, false);
        assert!(
            !l.admits(L) && !l.announced(L, IP),
            "unknown lobbies learn nothing"
        );
        l.apply(LobbyEvent::Opened { lobby: L }, now, false);
        l.apply(LobbyEvent::Announced { lobby: L, ip: IP }, now, false);
        assert!(l.admits(L) && l.announced(L, IP));
        assert!(!l.announced(L + 1, IP), "another lobby's address");
        // Withdrawn when its members left, announced again by a newcomer.
        l.apply(LobbyEvent::Withdrawn { lobby: L, ip: IP }, now, false);
        assert!(!l.announced(L, IP));
        l.apply(LobbyEvent::Announced { lobby: L, ip: IP }, now, false);
        l.apply(LobbyEvent::Sealed { lobby: L }, now, true);
        l.apply(LobbyEvent::Withdrawn { lobby: L, ip: IP }, now, true);
        assert!(l.announced(L, IP), "frozen at the seal");
        let later: IpAddr = "198.51.100.1".parse().unwrap();
        l.apply(
            LobbyEvent::Announced {
                lobby: L,
                ip: later,
            },
            now,
            true,
        );
        assert!(!l.announced(L, later), "frozen at the seal");
        assert!(
            l.admits(L),
            "players may still allocate while the lobby is sealed"
        );
    }

    #[test]
    fn an_aborted_lobby_is_torn_down_after_the_grace() {
        let now = Instant::now();
        let mut l = Lobbies::default();
        l.apply(LobbyEvent::Opened { lobby: L }, now, false);
        l.apply(LobbyEvent::Ended { lobby: L }, now, true);
        assert!(!l.admits(L), "no new allocations");
        assert!(
            l.due_teardowns(now + ABORT_GRACE - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(l.due_teardowns(now + ABORT_GRACE), vec![L]);
        assert_eq!(l.count(), 0);
    }

    #[test]
    fn a_sealed_lobby_plays_on_after_its_signalling_ends() {
        let now = Instant::now();
        let mut l = Lobbies::default();
        l.apply(LobbyEvent::Opened { lobby: L }, now, false);
        l.apply(LobbyEvent::Announced { lobby: L, ip: IP }, now, false);
        l.apply(LobbyEvent::Sealed { lobby: L }, now, true);
        l.apply(LobbyEvent::Ended { lobby: L }, now, true);
        assert!(l.due_teardowns(now + Duration::from_secs(3600)).is_empty());
        assert!(l.announced(L, IP), "permissions as at the seal");
        assert!(!l.admits(L), "its signalling is over: no new players");
        l.allocations_gone(L);
        assert_eq!(l.count(), 0, "forgotten with its last allocation");
        // A lobby nothing allocated for is forgotten when it ends.
        l.apply(LobbyEvent::Opened { lobby: L }, now, false);
        l.apply(LobbyEvent::Ended { lobby: L }, now, false);
        assert_eq!(l.count(), 0);
    }
}
