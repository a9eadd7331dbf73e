//! What the hub keeps: its peers and lobbies.

use super::*;

pub(super) struct Peer {
    /// Server-wide unique, 2..2^31-1. Shown as 1 while this peer hosts its lobby.
    pub(super) id: u32,
    pub(super) dialect: Option<Dialect>,
    pub(super) lobby: Option<u64>,
    pub(super) source: Source,
    /// Addresses it has announced in its lobby (at most `signal.max_addresses_per_member`).
    pub(super) announced: Vec<IpAddr>,
    /// Extension clients only (boxed: a plain peer stays small).
    pub(super) ext: Option<Box<Extension>>,
}

pub(super) struct Extension {
    /// Takes this peer's place back after a dropped socket.
    pub(super) token: String,
    pub(super) list_limit: RateLimit,
    /// Set while the socket is gone and the place kept.
    pub(super) away: Option<Away>,
}

pub(super) struct Away {
    pub(super) until: Instant,
    /// What was sent to this peer meanwhile, in order.
    pub(super) queue: VecDeque<Output>,
    /// The bytes of its frames.
    pub(super) bytes: usize,
}

pub(super) struct Lobby {
    pub(super) name: String,
    pub(super) code: String,
    /// The scope of its members' relay credentials: random, so that no credential of an older
    /// lobby (or of a previous run) ever names this one.
    pub(super) scope: u64,
    /// Addresses announced so far, with how many of its members announced each: passed to the
    /// relay when the first does, withdrawn when the last leaves; frozen at the seal.
    pub(super) announced: HashMap<IpAddr, u32>,
    pub(super) host: ConnId,
    pub(super) mesh: bool,
    pub(super) options: Options,
    /// In join order.
    pub(super) members: Vec<ConnId>,
    pub(super) sealed: bool,
    pub(super) departed: VecDeque<(u32, Instant)>,
    /// Where its creator connected from (its lobbies count against that address).
    pub(super) creator: Source,
    /// `signal.lobby_joins_per_second`.
    pub(super) joins: RateLimit,
    pub(super) opened: Instant,
}

impl Lobby {
    pub(super) fn info(&self) -> LobbyInfo {
        self.options.info(
            &self.name,
            &self.code,
            self.mesh,
            self.members.len(),
            self.sealed,
        )
    }

    /// Members at most: the lobby's own cap and `signal.max_lobby_members`, 0 = none.
    pub(super) fn full(&self, server_cap: u32) -> bool {
        let cap = match (self.options.max_players, server_cap) {
            (0, cap) | (cap, 0) => cap,
            (a, b) => a.min(b),
        };
        cap > 0 && self.members.len() >= cap as usize
    }
}
