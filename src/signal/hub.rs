//! The lobby state machine of Godot's signalling protocol, sans-IO: connections, frames,
//! disconnections and clock ticks go in; frames to send and connections to close come out.
//!
//! It follows the demo's reference server (the join sequence, seal, host leaving, every close
//! reason) and fixes its bugs without changing the wire format:
//! - a peer already in a lobby cannot JOIN another ("Already in a lobby");
//! - client/server lobbies only introduce the host and each client to each other;
//! - peer ids are 2..2^31-1 and unique across the server; the host is always 1;
//! - a relay to a member that left a moment ago is dropped instead of closing the sender;
//! - sealed lobbies are freed, and joining one is refused ("Lobby is sealed");
//! - once sealed, departures no longer disturb the others (the game runs peer to peer by then).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::codec::{self, Command, Dialect, Event, Negotiation};

/// Identifies one WebSocket connection for as long as the process runs (never reused).
pub type ConnId = u64;

/// Close codes and reasons. Godot shows the reason to players, so these are the reference
/// server's strings, typo included.
pub mod reason {
    pub const NO_LOBBY: &str = "Have not joined lobby yet";
    pub const HOST_DISCONNECTED: &str = "Room host has disconnected";
    pub const ONLY_HOST_CAN_SEAL: &str = "Only host can seal the lobby";
    pub const SEAL_COMPLETE: &str = "Seal complete";
    pub const TOO_MANY_LOBBIES: &str = "Too many lobbies open, disconnecting";
    pub const ALREADY_IN_LOBBY: &str = "Already in a lobby";
    pub const LOBBY_DOES_NOT_EXIST: &str = "Lobby does not exists";
    pub const LOBBY_IS_SEALED: &str = "Lobby is sealed";
    pub const INVALID_FORMAT: &str = "Invalid message format";
    pub const NEED_LOBBY: &str = "Invalid message when not in a lobby";
    pub const INVALID_DEST: &str = "Invalid destination";
    pub const INVALID_CMD: &str = "Invalid command";
    pub const TOO_MANY_PEERS: &str = "Too many peers connected";
    pub const INVALID_TRANSFER_MODE: &str = "Invalid transfer mode, must be text";
    /// rallypoint's own, for `signal.max_lobby_members`.
    pub const LOBBY_FULL: &str = "Lobby is full";

    /// The protocol's error close code; only "Seal complete" closes normally (1000).
    pub const PROTOCOL_ERROR: u16 = 4000;
    pub const NORMAL: u16 = 1000;
}

/// How long a relay to a member that just left is dropped quietly rather than refused.
const DEPARTED_GRACE: Duration = Duration::from_secs(30);
/// Departures remembered per lobby for that purpose.
const DEPARTED_MEMORY: usize = 64;
/// Characters and length of generated lobby names, as the reference.
const LOBBY_NAME_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOBBY_NAME_LEN: usize = 16;
/// The id every lobby's host has.
const HOST_ID: u32 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_peers: u32,
    pub max_lobbies: u32,
    /// 0 = unlimited.
    pub max_lobby_members: u32,
    pub join_timeout: Duration,
    pub seal_close_delay: Duration,
}

impl From<&crate::config::Signal> for Limits {
    fn from(s: &crate::config::Signal) -> Self {
        Limits {
            max_peers: s.max_peers,
            max_lobbies: s.max_lobbies,
            max_lobby_members: s.max_lobby_members,
            join_timeout: s.join_timeout.0,
            seal_close_delay: s.seal_close_delay.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send {
        to: ConnId,
        frame: String,
    },
    Close {
        to: ConnId,
        code: u16,
        reason: &'static str,
    },
}

/// What the hub has done since start, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubCounts {
    pub relayed_offer: u64,
    pub relayed_answer: u64,
    pub relayed_candidate: u64,
    /// Relays to a member that had just left, dropped.
    pub dropped_late: u64,
    pub closes: HashMap<&'static str, u64>,
}

struct Peer {
    /// Server-wide unique, 2..2^31-1. Shown as 1 while this peer hosts its lobby.
    id: u32,
    dialect: Option<Dialect>,
    lobby: Option<u64>,
}

struct Lobby {
    name: String,
    host: ConnId,
    mesh: bool,
    /// In join order.
    members: Vec<ConnId>,
    sealed: bool,
    departed: VecDeque<(u32, Instant)>,
}

pub struct Hub {
    limits: Limits,
    peers: HashMap<ConnId, Peer>,
    by_id: HashMap<u32, ConnId>,
    lobbies: HashMap<u64, Lobby>,
    lobby_names: HashMap<String, u64>,
    next_lobby: u64,
    join_deadlines: BinaryHeap<Reverse<(Instant, ConnId)>>,
    seal_deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    counts: HubCounts,
    out: Vec<Output>,
    /// The time of the input being handled.
    now: Instant,
}

impl Hub {
    pub fn new(limits: Limits) -> Hub {
        Hub {
            limits,
            peers: HashMap::new(),
            by_id: HashMap::new(),
            lobbies: HashMap::new(),
            lobby_names: HashMap::new(),
            next_lobby: 0,
            join_deadlines: BinaryHeap::new(),
            seal_deadlines: BinaryHeap::new(),
            counts: HubCounts::default(),
            out: Vec::new(),
            now: Instant::now(),
        }
    }

    /// New limits apply to what happens next; existing lobbies and peers stay as they are.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn lobby_count(&self) -> usize {
        self.lobbies.len()
    }

    pub fn counts(&self) -> &HubCounts {
        &self.counts
    }

    /// A new WebSocket connection.
    pub fn connect(&mut self, conn: ConnId, now: Instant) -> Vec<Output> {
        self.now = now;
        if self.peers.len() >= self.limits.max_peers as usize {
            self.push_close(conn, reason::PROTOCOL_ERROR, reason::TOO_MANY_PEERS);
        } else {
            let id = self.fresh_id();
            self.by_id.insert(id, conn);
            self.peers.insert(
                conn,
                Peer {
                    id,
                    dialect: None,
                    lobby: None,
                },
            );
            self.join_deadlines
                .push(Reverse((now + self.limits.join_timeout, conn)));
        }
        self.take()
    }

    /// A text frame from `conn`.
    pub fn message(&mut self, conn: ConnId, frame: &str, now: Instant) -> Vec<Output> {
        self.now = now;
        if let Some(peer) = self.peers.get_mut(&conn) {
            let dialect = *peer.dialect.get_or_insert_with(|| Dialect::detect(frame));
            match codec::decode(dialect, frame) {
                Ok(command) => self.command(conn, command),
                Err(codec::Malformed) => self.close(conn, reason::INVALID_FORMAT),
            }
        }
        self.take()
    }

    /// A frame that is not text (and not UTF-8).
    pub fn binary(&mut self, conn: ConnId, now: Instant) -> Vec<Output> {
        self.now = now;
        if self.peers.contains_key(&conn) {
            self.close(conn, reason::INVALID_TRANSFER_MODE);
        }
        self.take()
    }

    /// `conn` is gone (it closed, failed, or was closed by us). Unknown ids are ignored.
    pub fn disconnect(&mut self, conn: ConnId, now: Instant) -> Vec<Output> {
        self.now = now;
        self.remove(conn);
        self.take()
    }

    /// Fires the timers due at `now`.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        self.now = now;
        while let Some(&Reverse((at, conn))) = self.join_deadlines.peek() {
            if at > now {
                break;
            }
            self.join_deadlines.pop();
            if self.peers.get(&conn).is_some_and(|p| p.lobby.is_none()) {
                self.close(conn, reason::NO_LOBBY);
            }
        }
        while let Some(&Reverse((at, key))) = self.seal_deadlines.peek() {
            if at > now {
                break;
            }
            self.seal_deadlines.pop();
            if let Some(lobby) = self.lobbies.remove(&key) {
                self.lobby_names.remove(&lobby.name);
                for member in lobby.members {
                    self.push_close(member, reason::NORMAL, reason::SEAL_COMPLETE);
                    self.forget_peer(member);
                }
            }
        }
        self.take()
    }

    /// When [`Hub::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let join = self.join_deadlines.peek().map(|Reverse((at, _))| *at);
        let seal = self.seal_deadlines.peek().map(|Reverse((at, _))| *at);
        join.into_iter().chain(seal).min()
    }

    fn command(&mut self, conn: ConnId, command: Command) {
        if let Command::Join { lobby, mesh } = command {
            return self.join(conn, lobby, mesh);
        }
        let Some(key) = self.peers[&conn].lobby else {
            return self.close(conn, reason::NEED_LOBBY);
        };
        match command {
            Command::Seal => self.seal(conn, key),
            Command::Relay { what, to, payload } => self.relay(conn, key, what, to, &payload),
            Command::Join { .. } | Command::Other => self.close(conn, reason::INVALID_CMD),
        }
    }

    fn join(&mut self, conn: ConnId, name: String, mesh: bool) {
        if self.peers[&conn].lobby.is_some() {
            return self.close(conn, reason::ALREADY_IN_LOBBY);
        }
        let key = if name.is_empty() {
            if self.lobbies.len() >= self.limits.max_lobbies as usize {
                return self.close(conn, reason::TOO_MANY_LOBBIES);
            }
            self.create_lobby(conn, mesh)
        } else {
            match self.lobby_names.get(&name) {
                Some(&key) => key,
                None => return self.close(conn, reason::LOBBY_DOES_NOT_EXIST),
            }
        };
        let lobby = &self.lobbies[&key];
        if lobby.sealed {
            return self.close(conn, reason::LOBBY_IS_SEALED);
        }
        let cap = self.limits.max_lobby_members as usize;
        if cap > 0 && lobby.members.len() >= cap {
            return self.close(conn, reason::LOBBY_FULL);
        }

        self.peers.get_mut(&conn).unwrap().lobby = Some(key);
        let lobby = &self.lobbies[&key];
        let (host, mesh, name) = (lobby.host, lobby.mesh, lobby.name.clone());
        let members = lobby.members.clone();
        let newcomer = self.visible_id(conn, host);
        self.send(conn, &Event::Id { id: newcomer, mesh });
        for member in members {
            // A client/server lobby's clients only ever talk to the host.
            if mesh || member == host {
                self.send(member, &Event::PeerConnect(newcomer));
                let id = self.visible_id(member, host);
                self.send(conn, &Event::PeerConnect(id));
            }
        }
        self.lobbies.get_mut(&key).unwrap().members.push(conn);
        self.send(conn, &Event::Joined(&name));
    }

    fn create_lobby(&mut self, host: ConnId, mesh: bool) -> u64 {
        let name = loop {
            let name = random_lobby_name();
            if !self.lobby_names.contains_key(&name) {
                break name;
            }
        };
        let key = self.next_lobby;
        self.next_lobby += 1;
        self.lobby_names.insert(name.clone(), key);
        self.lobbies.insert(
            key,
            Lobby {
                name,
                host,
                mesh,
                members: Vec::new(),
                sealed: false,
                departed: VecDeque::new(),
            },
        );
        key
    }

    fn seal(&mut self, conn: ConnId, key: u64) {
        let lobby = &self.lobbies[&key];
        if lobby.host != conn {
            return self.close(conn, reason::ONLY_HOST_CAN_SEAL);
        }
        if lobby.sealed {
            return;
        }
        let members = lobby.members.clone();
        self.lobbies.get_mut(&key).unwrap().sealed = true;
        for member in members {
            self.send(member, &Event::Sealed);
        }
        self.seal_deadlines
            .push(Reverse((self.now + self.limits.seal_close_delay, key)));
    }

    fn relay(&mut self, conn: ConnId, key: u64, what: Negotiation, to: u64, payload: &str) {
        let now = self.now;
        let lobby = &self.lobbies[&key];
        let dest = if to == u64::from(HOST_ID) {
            Some(lobby.host)
        } else {
            u32::try_from(to)
                .ok()
                .and_then(|id| self.by_id.get(&id).copied())
        };
        let dest = dest.filter(|d| self.peers.get(d).is_some_and(|p| p.lobby == Some(key)));
        let Some(dest) = dest else {
            let just_left = u32::try_from(to).is_ok_and(|to| {
                lobby
                    .departed
                    .iter()
                    .any(|&(id, at)| id == to && now.duration_since(at) < DEPARTED_GRACE)
            });
            if just_left {
                self.counts.dropped_late += 1;
                return;
            }
            return self.close(conn, reason::INVALID_DEST);
        };
        let from = self.visible_id(conn, lobby.host);
        match what {
            Negotiation::Offer => self.counts.relayed_offer += 1,
            Negotiation::Answer => self.counts.relayed_answer += 1,
            Negotiation::Candidate => self.counts.relayed_candidate += 1,
        }
        self.send(
            dest,
            &Event::Relay {
                what,
                from,
                payload,
            },
        );
    }

    /// Closes `conn` with the protocol's error code and removes it at once.
    fn close(&mut self, conn: ConnId, why: &'static str) {
        self.push_close(conn, reason::PROTOCOL_ERROR, why);
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
        if lobby.sealed {
            // The game runs peer to peer now; the seal timer closes the rest.
            if lobby.members.is_empty() {
                let name = std::mem::take(&mut lobby.name);
                self.lobbies.remove(&key);
                self.lobby_names.remove(&name);
            }
            return;
        }
        if lobby.host == conn {
            let lobby = self.lobbies.remove(&key).unwrap();
            self.lobby_names.remove(&lobby.name);
            for member in lobby.members {
                self.push_close(member, reason::PROTOCOL_ERROR, reason::HOST_DISCONNECTED);
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
    }

    /// Drops the peer's own state, leaving its lobby to the caller.
    fn forget_peer(&mut self, conn: ConnId) -> Option<Peer> {
        let peer = self.peers.remove(&conn)?;
        self.by_id.remove(&peer.id);
        Some(peer)
    }

    fn visible_id(&self, conn: ConnId, host: ConnId) -> u32 {
        if conn == host {
            HOST_ID
        } else {
            self.peers[&conn].id
        }
    }

    fn fresh_id(&self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            getrandom::fill(&mut b).expect("the OS provides randomness");
            let id = u32::from_le_bytes(b) & 0x7fff_ffff;
            if id >= 2 && !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    fn send(&mut self, to: ConnId, event: &Event) {
        let dialect = self.peers[&to].dialect.unwrap_or(Dialect::Json);
        self.out.push(Output::Send {
            to,
            frame: codec::encode(dialect, event),
        });
    }

    fn push_close(&mut self, to: ConnId, code: u16, why: &'static str) {
        *self.counts.closes.entry(why).or_default() += 1;
        self.out.push(Output::Close {
            to,
            code,
            reason: why,
        });
    }

    fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }
}

fn random_lobby_name() -> String {
    let mut name = String::with_capacity(LOBBY_NAME_LEN);
    while name.len() < LOBBY_NAME_LEN {
        let mut bytes = [0u8; LOBBY_NAME_LEN];
        getrandom::fill(&mut bytes).expect("the OS provides randomness");
        // 248 is the largest multiple of 62 up to 256: rejecting the rest keeps the choice uniform.
        let chars = bytes
            .iter()
            .filter(|&&b| b < 248)
            .map(|&b| LOBBY_NAME_CHARS[b as usize % LOBBY_NAME_CHARS.len()] as char);
        name.extend(chars.take(LOBBY_NAME_LEN - name.len()));
    }
    name
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
