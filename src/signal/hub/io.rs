//! What goes into the hub and comes out of it: its limits, who connects, how a socket ended,
//! the outputs for the shell, and the counts for metrics.

use super::*;

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
        reason: Reason,
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
    /// This connection is now in a lobby (it joined, or resumed a place), for good: where its
    /// frames go is settled.
    Entered(ConnId),
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
    pub quick_joins: QuickJoins,
    /// Lobbies the server's operator closed, and players it removed.
    pub operator_closes: u64,
    pub operator_removals: u64,
    /// Requests refused by a limit that guards the server against one address, by its key.
    pub limited: HashMap<&'static str, u64>,
}

impl HubCounts {
    /// Adds another hub's counts (`signal.shards`).
    pub fn add(&mut self, other: &HubCounts) {
        let sum = |a: &mut HashMap<&'static str, u64>, b: &HashMap<&'static str, u64>| {
            for (key, n) in b {
                *a.entry(key).or_default() += n;
            }
        };
        // Every field named, so that a new one is not forgotten here.
        let HubCounts {
            relayed_offer,
            relayed_answer,
            relayed_candidate,
            dropped_late,
            closes,
            joins_by_code,
            failed_joins,
            resumes,
            resumes_expired,
            kicks,
            quick_joins,
            operator_closes,
            operator_removals,
            limited,
        } = other;
        self.relayed_offer += relayed_offer;
        self.relayed_answer += relayed_answer;
        self.relayed_candidate += relayed_candidate;
        self.dropped_late += dropped_late;
        sum(&mut self.closes, closes);
        self.joins_by_code += joins_by_code;
        sum(&mut self.failed_joins, failed_joins);
        self.resumes += resumes;
        self.resumes_expired += resumes_expired;
        self.kicks += kicks;
        self.quick_joins.joined += quick_joins.joined;
        self.quick_joins.created += quick_joins.created;
        self.operator_closes += operator_closes;
        self.operator_removals += operator_removals;
        sum(&mut self.limited, limited);
    }
}

/// How QUICK_JOINs ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuickJoins {
    /// Into an open lobby.
    pub joined: u64,
    /// In a new lobby, none matching.
    pub created: u64,
}
