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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::candidates;
use super::codec::{self, Command, Dialect, Event, Negotiation};
use super::ext::{self, ErrorCode, ExtCommand, ExtEvent, LobbyInfo};
use super::failed_joins::FailedJoins;
use super::lobby::{self, OptionLimits, Options};
use crate::conn_cap::Source;
use crate::credentials::{LobbyEvent, lobby_user};
use crate::rate_limit::RateLimit;

/// Identifies one WebSocket connection for as long as the process runs (never reused).
pub type ConnId = u64;

/// Close codes and reasons. Godot shows the reason to players, so these are the reference
/// server's strings, typo included.
pub mod reason {
    /// Declares each close reason once, and [`ALL`] with every one of them: a reason that
    /// crosses to another node of a cluster is found there in [`ALL`], so none can be missing.
    macro_rules! reasons {
        ($($(#[$doc:meta])* $name:ident = $text:literal;)*) => {
            $($(#[$doc])* pub const $name: &str = $text;)*
            /// Every reason the server closes a signalling connection with.
            pub const ALL: &[&str] = &[$($name),*];
        };
    }

    reasons! {
        NO_LOBBY = "Have not joined lobby yet";
        HOST_DISCONNECTED = "Room host has disconnected";
        ONLY_HOST_CAN_SEAL = "Only host can seal the lobby";
        SEAL_COMPLETE = "Seal complete";
        TOO_MANY_LOBBIES = "Too many lobbies open, disconnecting";
        ALREADY_IN_LOBBY = "Already in a lobby";
        LOBBY_DOES_NOT_EXIST = "Lobby does not exists";
        LOBBY_IS_SEALED = "Lobby is sealed";
        INVALID_FORMAT = "Invalid message format";
        NEED_LOBBY = "Invalid message when not in a lobby";
        INVALID_DEST = "Invalid destination";
        INVALID_CMD = "Invalid command";
        TOO_MANY_PEERS = "Too many peers connected";
        INVALID_TRANSFER_MODE = "Invalid transfer mode, must be text";
        /// rallypoint's own, for `signal.max_lobby_members` and a lobby's player cap.
        LOBBY_FULL = "Lobby is full";
        /// rallypoint's own: a plain client cannot give the password a lobby was created with.
        NEEDS_PASSWORD = "Lobby requires a password";
        /// rallypoint's own: an extension client gave a password that is not the lobby's.
        WRONG_PASSWORD = "Wrong password";
        /// rallypoint's own: `signal.failed_joins_per_minute` from this address.
        TOO_MANY_FAILED_JOINS = "Too many failed joins, try again later";
        /// rallypoint's own: the host removed this peer (extension KICK).
        KICKED = "Kicked by host";
        /// rallypoint's own: the peer's place was resumed on a newer connection.
        RESUMED_ELSEWHERE = "Resumed on another connection";
        /// rallypoint's own: `signal.lobby_joins_per_second` into this lobby.
        LOBBY_BUSY = "Lobby is busy, try again";
        /// rallypoint's own: `signal.max_lobbies_per_address`.
        TOO_MANY_LOBBIES_HERE = "Too many lobbies from this address";
        /// rallypoint's own: the player's queue filled (`signal.max_queued_bytes`,
        /// `signal.send_timeout`); closed with [`POLICY`].
        TOO_SLOW = "Too slow to receive";
    }

    /// The protocol's error close code; only "Seal complete" closes normally (1000).
    pub const PROTOCOL_ERROR: u16 = 4000;
    pub const NORMAL: u16 = 1000;
    /// WebSocket's policy violation (RFC 6455 §7.4.1), for [`TOO_SLOW`].
    pub const POLICY: u16 = 1008;
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
/// Lobby-list queries one connection may make at once (then `list_rate` a second).
const LIST_BURST: u32 = 5;

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_peers: u32,
    pub max_lobbies: u32,
    /// 0 = unlimited.
    pub max_lobby_members: u32,
    pub join_timeout: Duration,
    pub seal_close_delay: Duration,
    /// How long an extension client may stay outside a lobby (browsing the list).
    pub browse_timeout: Duration,
    /// How long an extension peer's place is kept after its socket drops; 0 = not at all.
    pub resume_grace: Duration,
    /// Frames queued for a peer whose socket dropped; one more gives its place up.
    pub max_resume_queue: usize,
    /// Bytes of those frames at most, likewise.
    pub max_resume_bytes: usize,
    /// Joins a second into one lobby, in bursts of as many; 0 = unlimited.
    pub lobby_joins_per_second: u32,
    /// Open lobbies one address (an IPv6 /64) has created; 0 = unlimited.
    pub max_lobbies_per_address: u32,
    /// Distinct addresses a member may announce to the relay; 0 = unlimited.
    pub max_addresses_per_member: u32,
    pub options: OptionLimits,
    /// Lobbies per LOBBIES page.
    pub list_page_size: u32,
    /// Lobby-list queries a second per connection (0 = unlimited).
    pub list_rate: u32,
    /// Failed joins (no such lobby or code, wrong password) a minute per address (an IPv6 /64).
    pub failed_joins_per_minute: u32,
}

impl From<&crate::config::Signal> for Limits {
    fn from(s: &crate::config::Signal) -> Self {
        Limits {
            max_peers: s.max_peers,
            max_lobbies: s.max_lobbies,
            max_lobby_members: s.max_lobby_members,
            join_timeout: s.join_timeout.0,
            seal_close_delay: s.seal_close_delay.0,
            browse_timeout: s.browse_timeout.0,
            resume_grace: s.resume_grace.0,
            max_resume_queue: s.max_resume_queue as usize,
            max_resume_bytes: s.max_resume_queue_bytes.0 as usize,
            lobby_joins_per_second: s.lobby_joins_per_second,
            max_lobbies_per_address: s.max_lobbies_per_address,
            max_addresses_per_member: s.max_addresses_per_member,
            options: OptionLimits {
                max_title: s.max_title as usize,
                max_data: s.max_lobby_data.0 as usize,
            },
            list_page_size: s.list_page_size,
            list_rate: s.list_rate,
            failed_joins_per_minute: s.failed_joins_per_minute,
        }
    }
}

/// How a connection ended, as far as its place in a lobby goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// The client closed on purpose (a close frame with 1000, with no code, or with an
    /// application's 3000-4999), or its session moved to another node's hub: it leaves its
    /// lobby at once.
    Left,
    /// The socket broke without a close frame, or the client said it is going away (1001, a
    /// page reloading) or failed (another 1xxx): an extension peer keeps its place for
    /// `resume_grace`.
    Lost,
}

impl Departure {
    /// What a close frame from the client means; `None` is a close frame without a code.
    pub fn of_close_code(code: Option<u16>) -> Departure {
        match code {
            None | Some(1000) | Some(3000..=4999) => Departure::Left,
            Some(_) => Departure::Lost,
        }
    }
}

/// What the hub knows of a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// It asked for rallypoint's extension.
    pub extension: bool,
    pub source: IpAddr,
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
    /// For the relay: what happened to a lobby (its scope opened, an address announced in it,
    /// sealed, ended).
    Relay(LobbyEvent),
    /// Send `to` fresh TURN credentials for the REST user part `user` (bound to its lobby and
    /// to it): the shell mints them, as ICE_SERVERS.
    IceServers {
        to: ConnId,
        user: String,
    },
    /// These keys now find a lobby or a member's place here (`open`) or no longer do: for the
    /// cluster's directory, so players on other nodes reach them. A lobby's keys are its name
    /// and code; a member's, [`resume_key`] of its resume token.
    Listed {
        keys: Vec<String>,
        open: bool,
    },
    /// A join from this address failed: for the cluster's count ([`FailedJoins`]).
    FailedJoin(Source),
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
    /// Joins that named a lobby by its code.
    pub joins_by_code: u64,
    /// Joins refused: no such lobby or code, wrong password, or over the failed-join limit.
    pub failed_joins: HashMap<&'static str, u64>,
    pub resumes: u64,
    /// Places given up because the grace ran out or the queue filled.
    pub resumes_expired: u64,
    pub kicks: u64,
    /// Requests refused by a limit that guards the server against one address, by its key.
    pub limited: HashMap<&'static str, u64>,
}

struct Peer {
    /// Server-wide unique, 2..2^31-1. Shown as 1 while this peer hosts its lobby.
    id: u32,
    dialect: Option<Dialect>,
    lobby: Option<u64>,
    source: Source,
    /// Addresses it has announced in its lobby (at most `signal.max_addresses_per_member`).
    announced: Vec<IpAddr>,
    /// Extension clients only (boxed: a plain peer stays small).
    ext: Option<Box<Extension>>,
}

struct Extension {
    /// Takes this peer's place back after a dropped socket.
    token: String,
    list_limit: RateLimit,
    /// Set while the socket is gone and the place kept.
    away: Option<Away>,
}

struct Away {
    until: Instant,
    /// What was sent to this peer meanwhile, in order.
    queue: VecDeque<Output>,
    /// The bytes of its frames.
    bytes: usize,
}

struct Lobby {
    name: String,
    code: String,
    /// The scope of its members' relay credentials: random, so that no credential of an older
    /// lobby (or of a previous run) ever names this one.
    scope: u64,
    /// Addresses announced so far, with how many of its members announced each: passed to the
    /// relay when the first does, withdrawn when the last leaves; frozen at the seal.
    announced: HashMap<IpAddr, u32>,
    host: ConnId,
    mesh: bool,
    options: Options,
    /// In join order.
    members: Vec<ConnId>,
    sealed: bool,
    departed: VecDeque<(u32, Instant)>,
    /// Where its creator connected from (its lobbies count against that address).
    creator: Source,
    /// `signal.lobby_joins_per_second`.
    joins: RateLimit,
}

impl Lobby {
    fn info(&self) -> LobbyInfo {
        self.options.info(
            &self.name,
            &self.code,
            self.mesh,
            self.members.len(),
            self.sealed,
        )
    }

    /// Members at most: the lobby's own cap and `signal.max_lobby_members`, 0 = none.
    fn full(&self, server_cap: u32) -> bool {
        let cap = match (self.options.max_players, server_cap) {
            (0, cap) | (cap, 0) => cap,
            (a, b) => a.min(b),
        };
        cap > 0 && self.members.len() >= cap as usize
    }
}

/// Why a join is refused: a close for a plain client, an ERROR for an extension one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    AlreadyInLobby,
    TooManyLobbies,
    NotFound,
    Sealed,
    Full,
    NeedsPassword,
    WrongPassword,
    RateLimited,
    /// `signal.lobby_joins_per_second`.
    Busy,
    /// `signal.max_lobbies_per_address`.
    TooManyLobbiesHere,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::AlreadyInLobby => reason::ALREADY_IN_LOBBY,
            Refusal::TooManyLobbies => reason::TOO_MANY_LOBBIES,
            Refusal::NotFound => reason::LOBBY_DOES_NOT_EXIST,
            Refusal::Sealed => reason::LOBBY_IS_SEALED,
            Refusal::Full => reason::LOBBY_FULL,
            Refusal::NeedsPassword => reason::NEEDS_PASSWORD,
            Refusal::WrongPassword => reason::WRONG_PASSWORD,
            Refusal::RateLimited => reason::TOO_MANY_FAILED_JOINS,
            Refusal::Busy => reason::LOBBY_BUSY,
            Refusal::TooManyLobbiesHere => reason::TOO_MANY_LOBBIES_HERE,
        }
    }

    fn code(self) -> ErrorCode {
        match self {
            Refusal::AlreadyInLobby => ErrorCode::AlreadyInLobby,
            Refusal::TooManyLobbies => ErrorCode::TooManyLobbies,
            Refusal::NotFound => ErrorCode::NotFound,
            Refusal::Sealed => ErrorCode::Sealed,
            Refusal::Full => ErrorCode::Full,
            Refusal::NeedsPassword | Refusal::WrongPassword => ErrorCode::WrongPassword,
            Refusal::RateLimited | Refusal::Busy => ErrorCode::RateLimited,
            Refusal::TooManyLobbiesHere => ErrorCode::TooManyLobbies,
        }
    }

    /// The limit's key, for refusals that guard the server against one address.
    fn limit(self) -> Option<&'static str> {
        match self {
            Refusal::Busy => Some("signal.lobby_joins_per_second"),
            Refusal::TooManyLobbiesHere => Some("signal.max_lobbies_per_address"),
            _ => None,
        }
    }

    /// The failed-join counter's label, for refusals that count against the address.
    fn failed_join(self) -> Option<&'static str> {
        match self {
            Refusal::NotFound => Some("not_found"),
            Refusal::NeedsPassword | Refusal::WrongPassword => Some("wrong_password"),
            _ => None,
        }
    }
}

pub struct Hub {
    limits: Limits,
    peers: HashMap<ConnId, Peer>,
    by_id: HashMap<u32, ConnId>,
    lobbies: HashMap<u64, Lobby>,
    lobby_names: HashMap<String, u64>,
    lobby_codes: HashMap<String, u64>,
    /// Open lobbies per creator's address (`signal.max_lobbies_per_address`).
    lobbies_per_source: HashMap<Source, u32>,
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
}

impl Hub {
    /// A hub with no one in it, started at `now`.
    pub fn new(limits: Limits, now: Instant) -> Hub {
        let failed_joins = FailedJoins::new(limits.failed_joins_per_minute);
        Hub {
            limits,
            peers: HashMap::new(),
            by_id: HashMap::new(),
            lobbies: HashMap::new(),
            lobby_names: HashMap::new(),
            lobby_codes: HashMap::new(),
            lobbies_per_source: HashMap::new(),
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
        }
    }

    /// The lobbies a LIST may show: public, open, not full.
    pub fn listed_lobbies(&self) -> Vec<LobbyInfo> {
        let cap = self.limits.max_lobby_members;
        let mut keys: Vec<u64> = self
            .lobbies
            .iter()
            .filter(|(_, l)| l.options.public && !l.sealed && !l.full(cap))
            .map(|(&key, _)| key)
            .collect();
        keys.sort_unstable();
        keys.iter().map(|key| self.lobbies[key].info()).collect()
    }

    /// Other nodes' listed lobbies (a cluster's): LIST shows them after this node's own, and a
    /// JOIN of one by its code reaches it through its node.
    pub fn set_lobbies_elsewhere(&mut self, mut lobbies: Vec<LobbyInfo>) {
        lobbies.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        self.elsewhere = lobbies;
    }

    /// New limits apply to what happens next; existing lobbies and peers stay as they are.
    pub fn set_limits(&mut self, limits: Limits) {
        self.failed_joins
            .set_per_minute(limits.failed_joins_per_minute);
        self.limits = limits;
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn lobby_count(&self) -> usize {
        self.lobbies.len()
    }

    /// Open lobbies that are listed (public).
    pub fn public_lobby_count(&self) -> usize {
        self.lobbies.values().filter(|l| l.options.public).count()
    }

    /// Peers whose socket dropped and whose place is kept for a resume.
    pub fn away_count(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.ext.as_ref().is_some_and(|e| e.away.is_some()))
            .count()
    }

    pub fn counts(&self) -> &HubCounts {
        &self.counts
    }

    /// A new WebSocket connection.
    pub fn connect(&mut self, conn: ConnId, client: Client, now: Instant) -> Vec<Output> {
        self.now = now;
        if self.peers.len() >= self.limits.max_peers as usize {
            self.push_close(conn, reason::PROTOCOL_ERROR, reason::TOO_MANY_PEERS);
        } else {
            let id = self.fresh_id();
            self.by_id.insert(id, conn);
            let ext = client.extension.then(|| {
                let token = random_token();
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

    /// `conn` is gone (it closed, failed, or was closed by us). Unknown ids are ignored. An
    /// extension peer in an unsealed lobby whose socket was [`Departure::Lost`] keeps its place
    /// for `resume_grace`.
    pub fn disconnect(&mut self, conn: ConnId, how: Departure, now: Instant) -> Vec<Output> {
        self.now = now;
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

    /// A frame the hub sent to `to` that its socket could not take (it had just dropped): kept
    /// in order with the rest if `to`'s place is kept for a resume, else dropped.
    pub fn undelivered(&mut self, to: ConnId, frame: String) -> Vec<Output> {
        let away = self
            .peers
            .get(&to)
            .is_some_and(|p| p.ext.as_ref().is_some_and(|e| e.away.is_some()));
        if away {
            self.push_frame(to, frame);
        }
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
                self.forget_lobby(&lobby);
                for member in lobby.members {
                    self.push_close(member, reason::NORMAL, reason::SEAL_COMPLETE);
                    self.forget_peer(member);
                }
            }
        }
        while let Some(&Reverse((at, conn))) = self.resume_deadlines.peek() {
            if at > now {
                break;
            }
            self.resume_deadlines.pop();
            let expired = self.peers.get(&conn).is_some_and(|p| {
                p.ext
                    .as_ref()
                    .and_then(|e| e.away.as_ref())
                    .is_some_and(|a| a.until <= now)
            });
            if expired {
                self.counts.resumes_expired += 1;
                self.remove(conn);
            }
        }
        self.take()
    }

    /// When [`Hub::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [&self.join_deadlines, &self.resume_deadlines]
            .into_iter()
            .filter_map(|d| d.peek().map(|Reverse((at, _))| *at))
            .chain(self.seal_deadlines.peek().map(|Reverse((at, _))| *at))
            .min()
    }

    fn command(&mut self, conn: ConnId, command: Command) {
        if let Command::Join { lobby, mesh } = command {
            if self.peers[&conn].lobby.is_some() {
                return self.close(conn, reason::ALREADY_IN_LOBBY);
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
            return self.close(conn, reason::NEED_LOBBY);
        };
        match command {
            Command::Seal => self.seal(conn, key),
            Command::Relay { what, to, payload } => self.relay(conn, key, what, to, &payload),
            Command::Join { .. } | Command::Other => self.close(conn, reason::INVALID_CMD),
        }
    }

    /// The lobby `name_or_code` names, if `conn` may join it with `password` (`None`: a plain
    /// client, which has none to give). Counts failed joins against the client's address.
    fn find_lobby(
        &mut self,
        conn: ConnId,
        name_or_code: &str,
        password: Option<&str>,
    ) -> Result<u64, Refusal> {
        let source = self.peers[&conn].source;
        let now = self.now;
        // A spent address learns nothing more, right or wrong.
        if !self.failed_joins.allows(source, now) {
            *self.counts.failed_joins.entry("rate_limited").or_default() += 1;
            *self
                .counts
                .limited
                .entry("signal.failed_joins_per_minute")
                .or_default() += 1;
            return Err(Refusal::RateLimited);
        }
        let by_code = lobby::as_code(name_or_code).and_then(|c| self.lobby_codes.get(&c).copied());
        let found = match by_code.or_else(|| self.lobby_names.get(name_or_code).copied()) {
            None => Err(Refusal::NotFound),
            Some(key) => {
                let lobby = &self.lobbies[&key];
                match (&lobby.options.password, password) {
                    _ if lobby.sealed => Err(Refusal::Sealed),
                    (Some(_), None) => Err(Refusal::NeedsPassword),
                    (Some(p), Some(attempt)) if !p.matches(attempt) => Err(Refusal::WrongPassword),
                    _ if lobby.full(self.limits.max_lobby_members) => Err(Refusal::Full),
                    _ => Ok(key),
                }
            }
        };
        // A join costs the lobby's members a frame each: bursts into one lobby are limited.
        let found = found.and_then(|key| {
            let per_second = self.limits.lobby_joins_per_second;
            let joins = &mut self.lobbies.get_mut(&key).unwrap().joins;
            match per_second == 0 || joins.try_take(now) {
                true => Ok(key),
                false => Err(Refusal::Busy),
            }
        });
        match found {
            Ok(_) if by_code.is_some() => self.counts.joins_by_code += 1,
            Err(why) => {
                if let Some(limit) = why.limit() {
                    *self.counts.limited.entry(limit).or_default() += 1;
                }
                if let Some(label) = why.failed_join() {
                    *self.counts.failed_joins.entry(label).or_default() += 1;
                    self.failed_joins.failed(source, now);
                    self.out.push(Output::FailedJoin(source));
                }
            }
            Ok(_) => {}
        }
        found
    }

    /// In a cluster: `source` has spent its tries on other nodes ([`FailedJoins`]).
    pub fn spent_elsewhere(&mut self, source: Source, now: Instant) {
        self.failed_joins.spent_elsewhere(source, now);
    }

    /// Puts `conn` into lobby `key`: Godot's join sequence, then for extension clients the
    /// lobby's state and the resume token; other extension members see the new player count.
    fn enter(&mut self, conn: ConnId, key: u64) {
        self.peers.get_mut(&conn).unwrap().lobby = Some(key);
        let lobby = &self.lobbies[&key];
        let (host, mesh, name) = (lobby.host, lobby.mesh, lobby.name.clone());
        let members = lobby.members.clone();
        let newcomer = self.visible_id(conn, host);
        self.send(conn, &Event::Id { id: newcomer, mesh });
        // Before any PEER_CONNECT: a client sets up its peer connections with these.
        if self.peers[&conn].ext.is_some() {
            self.send_ice_servers(conn, key);
        }
        for &member in &members {
            // A client/server lobby's clients only ever talk to the host.
            if mesh || member == host {
                self.send(member, &Event::PeerConnect(newcomer));
                let id = self.visible_id(member, host);
                self.send(conn, &Event::PeerConnect(id));
            }
        }
        self.lobbies.get_mut(&key).unwrap().members.push(conn);
        self.send(conn, &Event::Joined(&name));
        if let Some(token) = self.peers[&conn].ext.as_ref().map(|e| e.token.clone()) {
            let grace = self.limits.resume_grace.as_secs();
            self.send_ext(
                conn,
                &ExtEvent::Session {
                    token: &token,
                    resume_grace_secs: grace,
                },
            );
            self.out.push(Output::Listed {
                keys: vec![resume_key(&token)],
                open: true,
            });
        }
        self.announce_lobby(key);
    }

    /// Sends the lobby's state to its extension members.
    fn announce_lobby(&mut self, key: u64) {
        let lobby = &self.lobbies[&key];
        let info = lobby.info();
        for member in lobby.members.clone() {
            if self.peers[&member].ext.is_some() {
                self.send_ext(member, &ExtEvent::Lobby(&info));
            }
        }
    }

    fn create_lobby(&mut self, host: ConnId, mesh: bool, options: Options) -> Result<u64, Refusal> {
        if self.lobbies.len() >= self.limits.max_lobbies as usize {
            return Err(Refusal::TooManyLobbies);
        }
        let creator = self.peers[&host].source;
        let per_address = self.limits.max_lobbies_per_address;
        if per_address > 0
            && self.lobbies_per_source.get(&creator).copied().unwrap_or(0) >= per_address
        {
            let limit = Refusal::TooManyLobbiesHere.limit().unwrap();
            *self.counts.limited.entry(limit).or_default() += 1;
            return Err(Refusal::TooManyLobbiesHere);
        }
        *self.lobbies_per_source.entry(creator).or_default() += 1;
        let name = loop {
            let name = random_lobby_name();
            if !self.lobby_names.contains_key(&name) {
                break name;
            }
        };
        let code = loop {
            let code = lobby::random_code();
            if !self.lobby_codes.contains_key(&code) {
                break code;
            }
        };
        let key = self.next_lobby;
        self.next_lobby += 1;
        self.lobby_names.insert(name.clone(), key);
        self.lobby_codes.insert(code.clone(), key);
        self.out.push(Output::Listed {
            keys: vec![name.clone(), code.clone()],
            open: true,
        });
        let mut scope = [0u8; 8];
        getrandom::fill(&mut scope).expect("the OS provides randomness");
        let scope = u64::from_le_bytes(scope);
        self.out
            .push(Output::Relay(LobbyEvent::Opened { lobby: scope }));
        self.lobbies.insert(
            key,
            Lobby {
                name,
                code,
                scope,
                announced: HashMap::new(),
                host,
                mesh,
                options,
                members: Vec::new(),
                sealed: false,
                departed: VecDeque::new(),
                creator,
                joins: RateLimit::new(
                    f64::from(self.limits.lobby_joins_per_second),
                    self.limits.lobby_joins_per_second.max(1),
                    self.now,
                ),
            },
        );
        Ok(key)
    }

    fn forget_lobby(&mut self, lobby: &Lobby) {
        self.lobby_names.remove(&lobby.name);
        self.lobby_codes.remove(&lobby.code);
        if let Some(n) = self.lobbies_per_source.get_mut(&lobby.creator) {
            *n -= 1;
            if *n == 0 {
                self.lobbies_per_source.remove(&lobby.creator);
            }
        }
        self.out.push(Output::Listed {
            keys: vec![lobby.name.clone(), lobby.code.clone()],
            open: false,
        });
        self.out
            .push(Output::Relay(LobbyEvent::Ended { lobby: lobby.scope }));
    }

    /// Fresh relay credentials for `conn`, bound to its lobby and to it.
    fn send_ice_servers(&mut self, conn: ConnId, key: u64) {
        let user = lobby_user(self.lobbies[&key].scope, self.peers[&conn].id);
        self.push_output(conn, Output::IceServers { to: conn, user });
    }

    fn ext_command(&mut self, conn: ConnId, command: ExtCommand) {
        let lobby = self.peers[&conn].lobby;
        match command {
            ExtCommand::Create(options) => {
                let of = ext::kind::CREATE;
                if lobby.is_some() {
                    return self.refuse(conn, Some(of), Refusal::AlreadyInLobby);
                }
                let mesh = options.mesh;
                match Options::create(options, self.limits.options) {
                    Err(message) => self.error(conn, of, ErrorCode::Invalid, &message),
                    Ok(options) => match self.create_lobby(conn, mesh, options) {
                        Ok(key) => self.enter(conn, key),
                        Err(why) => self.refuse(conn, Some(of), why),
                    },
                }
            }
            ExtCommand::Join {
                lobby: name,
                password,
            } => {
                let of = ext::kind::JOIN;
                if lobby.is_some() {
                    return self.refuse(conn, Some(of), Refusal::AlreadyInLobby);
                }
                match self.find_lobby(conn, &name, Some(password.as_deref().unwrap_or(""))) {
                    Ok(key) => self.enter(conn, key),
                    Err(why) => self.refuse(conn, Some(of), why),
                }
            }
            ExtCommand::List { filter, page } => self.list(conn, &filter, page),
            ExtCommand::Update(update) => {
                let Some(key) = self.hosted_lobby(conn, ext::kind::UPDATE) else {
                    return;
                };
                let limits = self.limits.options;
                let options = &mut self.lobbies.get_mut(&key).unwrap().options;
                match options.update(update, limits) {
                    Ok(()) => self.announce_lobby(key),
                    Err(message) => {
                        self.error(conn, ext::kind::UPDATE, ErrorCode::Invalid, &message)
                    }
                }
            }
            ExtCommand::Kick(id) => {
                let of = ext::kind::KICK;
                let Some(key) = self.hosted_lobby(conn, of) else {
                    return;
                };
                let member = u32::try_from(id)
                    .ok()
                    .filter(|&id| id != HOST_ID)
                    .and_then(|id| self.by_id.get(&id).copied())
                    .filter(|m| self.peers[m].lobby == Some(key));
                match member {
                    Some(member) => {
                        self.counts.kicks += 1;
                        self.close(member, reason::KICKED);
                    }
                    None => self.error(conn, of, ErrorCode::NoSuchPeer, "no such member"),
                }
            }
            ExtCommand::Resume(token) => self.resume(conn, &token),
            ExtCommand::IceServers => match lobby {
                Some(key) => self.send_ice_servers(conn, key),
                None => self.error(
                    conn,
                    ext::kind::ICE_REQUEST,
                    ErrorCode::NotInLobby,
                    "relay credentials come with a lobby",
                ),
            },
        }
    }

    /// The lobby `conn` hosts, or an ERROR for request `of`.
    fn hosted_lobby(&mut self, conn: ConnId, of: u64) -> Option<u64> {
        match self.peers[&conn].lobby {
            None => {
                self.error(conn, of, ErrorCode::NotInLobby, "not in a lobby");
                None
            }
            Some(key) if self.lobbies[&key].host != conn => {
                self.error(conn, of, ErrorCode::NotHost, "only the host can do this");
                None
            }
            Some(key) if self.lobbies[&key].sealed => {
                self.error(conn, of, ErrorCode::Sealed, "the lobby is sealed");
                None
            }
            key => key,
        }
    }

    /// A page of the public, open, not full lobbies whose data matches `filter`, oldest first.
    fn list(&mut self, conn: ConnId, filter: &Map<String, Value>, page: u32) {
        let now = self.now;
        let ext = self.peers.get_mut(&conn).unwrap().ext.as_mut().unwrap();
        if !ext.list_limit.try_take(now) {
            return self.error(
                conn,
                ext::kind::LIST,
                ErrorCode::RateLimited,
                "too many list queries (signal.list_rate)",
            );
        }
        let cap = self.limits.max_lobby_members;
        let mut keys: Vec<u64> = self
            .lobbies
            .iter()
            .filter(|(_, l)| {
                l.options.public && !l.sealed && !l.full(cap) && l.options.matches(filter)
            })
            .map(|(&key, _)| key)
            .collect();
        keys.sort_unstable();
        // This node's lobbies in the order they opened, then other nodes' by name.
        let elsewhere = self
            .elsewhere
            .iter()
            .filter(|info| filter.iter().all(|(k, v)| info.data.get(k) == Some(v)));
        let size = self.limits.list_page_size.max(1) as usize;
        let total = keys.len() + elsewhere.clone().count();
        let pages = total.div_ceil(size) as u32;
        // Only the page's entries are built.
        let lobbies: Vec<LobbyInfo> = keys
            .iter()
            .map(Ok)
            .chain(elsewhere.map(Err))
            .skip(page as usize * size)
            .take(size)
            .map(|entry| match entry {
                Ok(key) => self.lobbies[key].info(),
                Err(info) => info.clone(),
            })
            .collect();
        self.send_ext(
            conn,
            &ExtEvent::Lobbies {
                lobbies: &lobbies,
                page,
                pages,
            },
        );
    }

    /// A new connection `conn` takes back the place of the peer holding `token`: the old
    /// socket, if the hub still thinks it open, is closed; what was queued follows.
    fn resume(&mut self, conn: ConnId, token: &str) {
        let of = ext::kind::RESUME;
        if self.peers[&conn].lobby.is_some() {
            return self.refuse(conn, Some(of), Refusal::AlreadyInLobby);
        }
        let Some(&old) = self.tokens.get(token).filter(|&&old| old != conn) else {
            return self.error(
                conn,
                of,
                ErrorCode::ResumeFailed,
                "unknown or expired token",
            );
        };
        let Some(key) = self.peers[&old].lobby else {
            return self.error(
                conn,
                of,
                ErrorCode::ResumeFailed,
                "that peer is in no lobby",
            );
        };
        // The new connection's own identity goes; the old one's comes over.
        let fresh = self.forget_peer(conn).expect("a connected peer");
        drop(fresh);
        let mut peer = self.peers.remove(&old).expect("a token's peer exists");
        let away = peer.ext.as_mut().and_then(|e| e.away.take());
        if away.is_none() {
            self.push_close(old, reason::PROTOCOL_ERROR, reason::RESUMED_ELSEWHERE);
        }
        self.by_id.insert(peer.id, conn);
        self.tokens.insert(token.to_string(), conn);
        self.peers.insert(conn, peer);
        let lobby = self.lobbies.get_mut(&key).unwrap();
        for member in lobby.members.iter_mut().filter(|m| **m == old) {
            *member = conn;
        }
        if lobby.host == old {
            lobby.host = conn;
        }
        self.counts.resumes += 1;
        let (host, name, info) = (lobby.host, lobby.name.clone(), lobby.info());
        let id = self.visible_id(conn, host);
        self.send_ext(conn, &ExtEvent::Resumed { id, lobby: &name });
        self.send_ext(conn, &ExtEvent::Lobby(&info));
        for output in away.map(|a| a.queue).unwrap_or_default() {
            // Addressed to the old connection when queued.
            self.out.push(match output {
                Output::Send { frame, .. } => Output::Send { to: conn, frame },
                Output::IceServers { user, .. } => Output::IceServers { to: conn, user },
                other => other,
            });
        }
    }

    /// Refuses a join: a plain client is closed with the reference's reason; an extension
    /// request (`of`) gets an ERROR and the connection stays.
    fn refuse(&mut self, conn: ConnId, of: Option<u64>, why: Refusal) {
        match of {
            None => self.close(conn, why.reason()),
            Some(of) => self.error(conn, of, why.code(), why.reason()),
        }
    }

    fn error(&mut self, conn: ConnId, of: u64, code: ErrorCode, message: &str) {
        self.send_ext(conn, &ExtEvent::Error { of, code, message });
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
        let scope = lobby.scope;
        self.lobbies.get_mut(&key).unwrap().sealed = true;
        self.out
            .push(Output::Relay(LobbyEvent::Sealed { lobby: scope }));
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
        // No client signals itself; one that does would announce addresses to the relay for its
        // own lobby credential without any other player (`web.ice_api = "off"` would mean
        // nothing).
        let dest =
            dest.filter(|d| *d != conn && self.peers.get(d).is_some_and(|p| p.lobby == Some(key)));
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
        self.announce(conn, key, payload);
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

    /// Passes the addresses in a relayed candidate or SDP to the relay, once each, until the
    /// seal; `signal.max_addresses_per_member` from each member (a player has a handful: a host
    /// address per interface and family, a reflexive one, a relay or two), so that one member
    /// cannot fill its lobby's table with junk and crowd out the others'.
    fn announce(&mut self, conn: ConnId, key: u64, payload: &str) {
        let lobby = self.lobbies.get_mut(&key).expect("the sender's lobby");
        let member = self.peers.get_mut(&conn).expect("the sender");
        if lobby.sealed {
            return;
        }
        let max = self.limits.max_addresses_per_member as usize;
        for ip in candidates::addresses(payload) {
            if member.announced.contains(&ip) {
                continue;
            }
            if max > 0 && member.announced.len() >= max {
                *self
                    .counts
                    .limited
                    .entry("signal.max_addresses_per_member")
                    .or_default() += 1;
                break;
            }
            member.announced.push(ip);
            let count = lobby.announced.entry(ip).or_default();
            *count += 1;
            if *count == 1 {
                let lobby = lobby.scope;
                self.out
                    .push(Output::Relay(LobbyEvent::Announced { lobby, ip }));
            }
        }
    }

    /// A member has left an open lobby: the addresses only it announced are withdrawn.
    fn withdraw(&mut self, key: u64, announced: Vec<IpAddr>) {
        let lobby = self.lobbies.get_mut(&key).expect("the member's lobby");
        if lobby.sealed {
            return;
        }
        for ip in announced {
            if let Some(count) = lobby.announced.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    lobby.announced.remove(&ip);
                    let lobby = lobby.scope;
                    self.out
                        .push(Output::Relay(LobbyEvent::Withdrawn { lobby, ip }));
                }
            }
        }
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
        // Sealed or not, as the reference's `Lobby.leave`: a sealed lobby's relay allocations
        // outlive its signalling either way (`turn::lobbies`).
        if lobby.host == conn {
            let lobby = self.lobbies.remove(&key).unwrap();
            self.forget_lobby(&lobby);
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
        self.push_frame(to, codec::encode(dialect, event));
    }

    fn send_ext(&mut self, to: ConnId, event: &ExtEvent) {
        self.push_frame(to, ext::encode(event));
    }

    /// Sends a frame, or queues it while the peer is away.
    fn push_frame(&mut self, to: ConnId, frame: String) {
        self.push_output(to, Output::Send { to, frame });
    }

    /// An output for `to` (a frame, or credentials to mint), queued while `to` is away, up to
    /// `max_resume_queue` frames and `max_resume_bytes`. A lobby's state replaces the one queued
    /// before it (only the last one matters), so a host's updates cannot fill it.
    fn push_output(&mut self, to: ConnId, output: Output) {
        let (max, max_bytes) = (self.limits.max_resume_queue, self.limits.max_resume_bytes);
        let away = self
            .peers
            .get_mut(&to)
            .and_then(|p| p.ext.as_mut())
            .and_then(|e| e.away.as_mut());
        let Some(away) = away else {
            return self.out.push(output);
        };
        let size = |o: &Output| match o {
            Output::Send { frame, .. } => frame.len(),
            Output::IceServers { user, .. } => user.len(),
            _ => 0,
        };
        if let Output::Send { frame, .. } = &output
            && ext::is_lobby_state(frame)
            && let Some(at) = away.queue.iter().rposition(
                |o| matches!(o, Output::Send { frame, .. } if ext::is_lobby_state(frame)),
            )
        {
            away.bytes -= size(&away.queue[at]);
            away.queue.remove(at);
        }
        let bytes = size(&output);
        if away.queue.len() < max && away.bytes + bytes <= max_bytes {
            away.bytes += bytes;
            away.queue.push_back(output);
        } else if !self.overflowed.contains(&to) {
            self.overflowed.push(to);
        }
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
        // Away peers that were sent more than their queue holds give up their places now, as if
        // the grace had run out (which may send more, and overflow more).
        while let Some(conn) = self.overflowed.pop() {
            self.counts.resumes_expired += 1;
            self.remove(conn);
        }
        std::mem::take(&mut self.out)
    }
}

/// 128 random bits, hex.
/// The directory key of a resume token: a hash, so the directory does not hold the secret.
pub fn resume_key(token: &str) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(format!("rallypoint resume {token}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("resume.{hex}")
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS provides randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_lobby_name() -> String {
    lobby::random_from(LOBBY_NAME_CHARS, LOBBY_NAME_LEN)
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
