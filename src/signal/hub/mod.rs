//! The lobby state machine of Godot's signalling protocol, sans-IO: connections, frames,
//! disconnections and clock ticks go in; frames to send and connections to close come out.
//!
//! It follows the demo's reference server (the join sequence, seal, host leaving, every close
//! reason) and fixes its bugs without changing the wire format:
//! - a peer already in a lobby cannot JOIN another ("Already in a lobby");
//! - client/server lobbies only introduce the host and each client to each other;
//! - peer ids are 2..2^31-1 and unique across the server; the host is always 1;
//! - a relay to a member that left a moment ago is dropped instead of closing the sender;
//! - sealed lobbies are freed, and joining one is refused ("Lobby is sealed").
//!
//! Leaving is the reference's, sealed or not: the others get PEER_DISCONNECT, and the host
//! leaving closes everyone with "Room host has disconnected" (Godot's client relies on both).
//!
//! Clients that ask for rallypoint's extension (docs/protocol.md) also get: lobbies created with
//! options ([`lobby::Options`]), join codes (which plain clients may use as lobby names too), a
//! lobby list, host tools (update, kick), failed joins limited per address, and resuming a place
//! after a dropped socket within `resume_grace`, with what was sent meanwhile queued.

mod extension;
mod io;
mod lobbies;
mod operator;
mod quick_join;
pub mod reason;
mod refusal;
mod resume;
mod state;
mod timers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::address_lobbies::AddressLobbies;
use super::candidates;
use super::codec::{self, Command, Dialect, Event, Negotiation};
use super::ext::{self, ErrorCode, ExtCommand, ExtEvent, LobbyInfo};
use super::failed_joins::FailedJoins;
use super::lobby::{self, OptionLimits, Options};
use super::shard::Shard;
use crate::conn_cap::Source;
use crate::credentials::{LobbyEvent, lobby_user};
use crate::random::Random;
use crate::rate_limit::RateLimit;

use extension::LIST_BURST;
pub use io::{Client, Departure, HubCounts, Limits, Output};
use lobbies::DEPARTED_MEMORY;
pub use operator::{LobbyView, Overview};
pub use reason::Reason;
use refusal::Refusal;
pub use resume::resume_key;
use state::{Away, Extension, Lobby, Peer};

/// Identifies one WebSocket connection for as long as the process runs (never reused).
pub type ConnId = u64;

/// The id every lobby's host has.
const HOST_ID: u32 = 1;

pub struct Hub {
    limits: Limits,
    peers: HashMap<ConnId, Peer>,
    by_id: HashMap<u32, ConnId>,
    lobbies: HashMap<u64, Lobby>,
    lobby_names: HashMap<String, u64>,
    lobby_codes: HashMap<String, u64>,
    /// Open lobbies per creator's address (`signal.max_lobbies_per_address`), this hub's and
    /// those of the hubs it shares the count with.
    lobbies_per_source: Arc<AddressLobbies>,
    next_lobby: u64,
    /// Resume token → the peer it belongs to.
    tokens: HashMap<String, ConnId>,
    failed_joins: FailedJoins,
    join_deadlines: BinaryHeap<Reverse<(Instant, ConnId)>>,
    seal_deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    resume_deadlines: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Away peers whose queue overflowed: their places are given up once the input is handled.
    overflowed: Vec<ConnId>,
    counts: HubCounts,
    out: Vec<Output>,
    /// The time of the input being handled.
    now: Instant,
    /// Listed lobbies of other nodes of a cluster, as last heard, for LIST.
    elsewhere: Vec<LobbyInfo>,
    random: Random,
    /// Which names, codes, tokens and ids this hub may draw (`signal.shards`).
    shard: Shard,
    /// Peers and lobbies in the process's other hubs, as last told: `max_peers` and
    /// `max_lobbies` count them too.
    census_elsewhere: Census,
    /// Changes whenever a lobby opens, closes, seals or changes what the list shows of it.
    listing_version: u64,
}

/// Peers and lobbies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub peers: usize,
    pub lobbies: usize,
}

impl Hub {
    /// A hub with no one in it, started at `now`, drawing ids, names, codes and tokens from
    /// `random`.
    pub fn new(limits: Limits, now: Instant, random: Random) -> Hub {
        let failed_joins = FailedJoins::new(limits.failed_joins_per_minute);
        Hub {
            limits,
            peers: HashMap::new(),
            by_id: HashMap::new(),
            lobbies: HashMap::new(),
            lobby_names: HashMap::new(),
            lobby_codes: HashMap::new(),
            lobbies_per_source: Arc::default(),
            next_lobby: 0,
            tokens: HashMap::new(),
            failed_joins,
            join_deadlines: BinaryHeap::new(),
            seal_deadlines: BinaryHeap::new(),
            resume_deadlines: BinaryHeap::new(),
            overflowed: Vec::new(),
            counts: HubCounts::default(),
            out: Vec::new(),
            now,
            elsewhere: Vec::new(),
            random,
            shard: Shard::ALL,
            census_elsewhere: Census::default(),
            listing_version: 0,
        }
    }

    /// The hub as shard `shard` of several: it draws only names, codes, resume tokens and peer
    /// ids that are `shard`'s.
    pub fn in_shard(mut self, shard: Shard) -> Hub {
        self.shard = shard;
        self
    }

    /// The hub counts each address's open lobbies in `lobbies`, with the other hubs that do:
    /// `signal.max_lobbies_per_address` is then theirs together.
    pub fn sharing_address_lobbies(mut self, lobbies: Arc<AddressLobbies>) -> Hub {
        self.lobbies_per_source = lobbies;
        self
    }

    /// New limits apply to what happens next; existing lobbies and peers stay as they are.
    /// New limits from `now` on (a reload).
    pub fn set_limits(&mut self, limits: Limits, now: Instant) {
        self.failed_joins
            .set_per_minute(limits.failed_joins_per_minute, now);
        self.limits = limits;
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Different whenever what [`Hub::listed_lobbies`] returns may have changed.
    pub fn listing_version(&self) -> u64 {
        self.listing_version
    }

    /// This hub's peers and lobbies.
    pub fn census(&self) -> Census {
        Census {
            peers: self.peers.len(),
            lobbies: self.lobbies.len(),
        }
    }

    /// The process's other hubs hold these (`signal.shards`).
    pub fn set_census_elsewhere(&mut self, elsewhere: Census) {
        self.census_elsewhere = elsewhere;
    }

    pub fn counts(&self) -> &HubCounts {
        &self.counts
    }

    /// A new WebSocket connection.
    pub fn connect(&mut self, conn: ConnId, client: Client, now: Instant) -> Vec<Output> {
        self.now = now;
        if self.peers.len() + self.census_elsewhere.peers >= self.limits.max_peers as usize {
            self.push_close(conn, Reason::TooManyPeers);
        } else {
            let id = self.fresh_id();
            self.by_id.insert(id, conn);
            let ext = client.extension.then(|| {
                let token = self.fresh_token();
                self.tokens.insert(token.clone(), conn);
                Box::new(Extension {
                    token,
                    list_limit: RateLimit::new(f64::from(self.limits.list_rate), LIST_BURST, now),
                    away: None,
                })
            });
            let timeout = if ext.is_some() {
                self.limits.browse_timeout
            } else {
                self.limits.join_timeout
            };
            self.peers.insert(
                conn,
                Peer {
                    id,
                    // The extension is JSON only.
                    dialect: ext.is_some().then_some(Dialect::Json),
                    lobby: None,
                    source: Source::of(client.source),
                    announced: Vec::new(),
                    ext,
                },
            );
            self.join_deadlines.push(Reverse((now + timeout, conn)));
        }
        self.take()
    }

    /// A text frame from `conn`.
    pub fn message(&mut self, conn: ConnId, frame: &str, now: Instant) -> Vec<Output> {
        self.now = now;
        if let Some(peer) = self.peers.get_mut(&conn) {
            if peer.ext.is_some()
                && let Some(request) = ext::decode(frame)
            {
                match request {
                    Ok(command) => self.ext_command(conn, command),
                    Err(bad) => self.error(conn, bad.of, ErrorCode::Invalid, &bad.message),
                }
                return self.take();
            }
            let dialect = *peer.dialect.get_or_insert_with(|| Dialect::detect(frame));
            match codec::decode(dialect, frame) {
                Ok(command) => self.command(conn, command),
                Err(codec::Malformed) => self.close(conn, Reason::InvalidFormat),
            }
        }
        self.take()
    }

    /// A frame that is not text (and not UTF-8).
    pub fn binary(&mut self, conn: ConnId, now: Instant) -> Vec<Output> {
        self.now = now;
        if self.peers.contains_key(&conn) {
            self.close(conn, Reason::InvalidTransferMode);
        }
        self.take()
    }

    /// `conn` is gone (it closed, failed, or was closed by us). Unknown ids are ignored. An
    /// extension peer in an unsealed lobby whose socket was [`Departure::Lost`] keeps its place
    /// for `resume_grace`.
    pub fn disconnect(&mut self, conn: ConnId, how: Departure, now: Instant) -> Vec<Output> {
        self.now = now;
        // Told twice of one lost socket (the hub task found its queue gone, then the session said
        // it ended): the place kept the first time stays kept.
        let already_away = self
            .peers
            .get(&conn)
            .is_some_and(|p| p.ext.as_ref().is_some_and(|e| e.away.is_some()));
        if already_away && how == Departure::Lost {
            return self.take();
        }
        let grace = self.limits.resume_grace;
        let keep = how == Departure::Lost
            && !grace.is_zero()
            && self.peers.get(&conn).is_some_and(|p| {
                p.ext.as_ref().is_some_and(|e| e.away.is_none())
                    && p.lobby.is_some_and(|key| !self.lobbies[&key].sealed)
            });
        if keep {
            let ext = self.peers.get_mut(&conn).unwrap().ext.as_mut().unwrap();
            ext.away = Some(Away {
                until: now + grace,
                queue: VecDeque::new(),
                bytes: 0,
            });
            self.resume_deadlines.push(Reverse((now + grace, conn)));
        } else {
            self.remove(conn);
        }
        self.take()
    }

    fn command(&mut self, conn: ConnId, command: Command) {
        if let Command::Join { lobby, mesh } = command {
            if self.peers[&conn].lobby.is_some() {
                return self.close(conn, Reason::AlreadyInLobby);
            }
            let found = if lobby.is_empty() {
                self.create_lobby(conn, mesh, Options::default())
            } else {
                self.find_lobby(conn, &lobby, None)
            };
            return match found {
                Ok(key) => self.enter(conn, key),
                Err(why) => self.close(conn, why.reason()),
            };
        }
        let Some(key) = self.peers[&conn].lobby else {
            return self.close(conn, Reason::NeedLobby);
        };
        match command {
            Command::Seal => self.seal(conn, key),
            Command::Relay { what, to, payload } => self.relay(conn, key, what, to, &payload),
            Command::Join { .. } | Command::Other => self.close(conn, Reason::InvalidCmd),
        }
    }

    /// Closes `conn` with the protocol's error code and removes it at once.
    fn close(&mut self, conn: ConnId, why: Reason) {
        self.push_close(conn, why);
        self.remove(conn);
    }

    fn remove(&mut self, conn: ConnId) {
        let Some(peer) = self.forget_peer(conn) else {
            return;
        };
        let Some(key) = peer.lobby else { return };
        let lobby = self.lobbies.get_mut(&key).expect("a peer's lobby exists");
        let id = if lobby.host == conn { HOST_ID } else { peer.id };
        lobby.members.retain(|&m| m != conn);
        if lobby.departed.len() == DEPARTED_MEMORY {
            lobby.departed.pop_front();
        }
        lobby.departed.push_back((id, self.now));
        // Sealed or not, as the reference's `Lobby.leave`: a sealed lobby's relay allocations
        // outlive its signalling either way (`turn::lobbies`).
        if lobby.host == conn {
            let lobby = self.lobbies.remove(&key).unwrap();
            self.forget_lobby(&lobby);
            for member in lobby.members {
                self.push_close(member, Reason::HostDisconnected);
                self.forget_peer(member);
            }
            return;
        }
        let (host, mesh) = (lobby.host, lobby.mesh);
        for member in lobby.members.clone() {
            if mesh || member == host {
                self.send(member, &Event::PeerDisconnect(id));
            }
        }
        self.withdraw(key, peer.announced);
        self.announce_lobby(key);
    }

    /// Drops the peer's own state, leaving its lobby to the caller.
    fn forget_peer(&mut self, conn: ConnId) -> Option<Peer> {
        let peer = self.peers.remove(&conn)?;
        self.by_id.remove(&peer.id);
        if let Some(ext) = &peer.ext {
            self.tokens.remove(&ext.token);
            if peer.lobby.is_some() {
                self.out.push(Output::Listed {
                    keys: vec![resume_key(&ext.token)],
                    open: false,
                });
            }
        }
        Some(peer)
    }

    fn visible_id(&self, conn: ConnId, host: ConnId) -> u32 {
        if conn == host {
            HOST_ID
        } else {
            self.peers[&conn].id
        }
    }

    fn fresh_id(&mut self) -> u32 {
        loop {
            let id = u32::from_le_bytes(self.random.bytes()) & 0x7fff_ffff;
            if id >= 2 && self.shard.owns_id(id) && !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    /// 128 random bits, hex, whose `resume_key` is this shard's.
    fn fresh_token(&mut self) -> String {
        loop {
            let token: String = (self.random.bytes::<16>().iter())
                .map(|b| format!("{b:02x}"))
                .collect();
            if self.shard.count == 1 || self.shard.owns_key(&resume_key(&token)) {
                return token;
            }
        }
    }

    fn send(&mut self, to: ConnId, event: &Event) {
        let dialect = self.peers[&to].dialect.unwrap_or(Dialect::Json);
        self.push_frame(to, codec::encode(dialect, event));
    }

    fn send_ext(&mut self, to: ConnId, event: &ExtEvent) {
        self.push_frame(to, ext::encode(event));
    }

    /// Sends a frame, or queues it while the peer is away.
    fn push_frame(&mut self, to: ConnId, frame: String) {
        self.push_output(to, Output::Send { to, frame });
    }

    fn push_close(&mut self, to: ConnId, why: Reason) {
        *self.counts.closes.entry(why.text()).or_default() += 1;
        self.out.push(Output::Close { to, reason: why });
    }

    fn take(&mut self) -> Vec<Output> {
        // Away peers that were sent more than their queue holds give up their places now, as if
        // the grace had run out (which may send more, and overflow more).
        while let Some(conn) = self.overflowed.pop() {
            self.counts.resumes_expired += 1;
            self.remove(conn);
        }
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
#[path = "../hub_tests.rs"]
mod tests;
