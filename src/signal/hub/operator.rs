//! What the server's operator sees of this hub's lobbies and does to them (the dashboard,
//! `/_rallypoint/admin/`): the lobbies as they are now, closing one with a reason its players
//! are shown, removing one player.

use super::*;

/// A lobby as the operator sees it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LobbyView {
    pub code: String,
    pub name: String,
    pub title: String,
    pub public: bool,
    pub sealed: bool,
    pub players: usize,
    pub max_players: u32,
    /// Seconds since it opened.
    pub age: u64,
    /// The members' ids, the host (1) first.
    pub members: Vec<u32>,
    /// The scope of its relay credentials: the relay counts its traffic by it.
    #[serde(skip)]
    pub scope: u64,
}

/// This hub now, as the operator sees it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Overview {
    /// Connected peers, in a lobby or not (places kept for a resume included).
    pub players: usize,
    pub lobbies: Vec<LobbyView>,
}

impl Hub {
    pub fn overview(&self, now: Instant) -> Overview {
        Overview {
            players: self.peer_count(),
            lobbies: self.lobby_views(now),
        }
    }

    /// Every open lobby, oldest first.
    fn lobby_views(&self, now: Instant) -> Vec<LobbyView> {
        let mut keys: Vec<&u64> = self.lobbies.keys().collect();
        keys.sort_unstable();
        keys.into_iter()
            .map(|key| {
                let l = &self.lobbies[key];
                LobbyView {
                    code: l.code.clone(),
                    name: l.name.clone(),
                    title: l.options.title.clone(),
                    public: l.options.public,
                    sealed: l.sealed,
                    players: l.members.len(),
                    max_players: l.options.max_players,
                    age: now.saturating_duration_since(l.opened).as_secs(),
                    members: l
                        .members
                        .iter()
                        .map(|&m| self.visible_id(m, l.host))
                        .collect(),
                    scope: l.scope,
                }
            })
            .collect()
    }

    /// Closes the lobby with code `code` (any case): every player is closed with "Lobby closed
    /// by the server's operator". `None` if there is no such lobby.
    pub fn close_lobby(&mut self, code: &str, now: Instant) -> Option<Vec<Output>> {
        self.now = now;
        let key = self.by_code(code)?;
        let lobby = &self.lobbies[&key];
        // The host last: its leaving would tell the others something else.
        let host = lobby.host;
        let guests: Vec<ConnId> = lobby
            .members
            .iter()
            .copied()
            .filter(|&m| m != host)
            .collect();
        for member in guests.into_iter().chain([host]) {
            self.close(member, Reason::ClosedByOperator);
        }
        self.counts.operator_closes += 1;
        Some(self.take())
    }

    /// Removes player `id` of lobby `code`, closed with "Removed by the server's operator"; as a
    /// host's leaving, removing the host ends the lobby. `None` if there is no such player.
    pub fn remove_player(&mut self, code: &str, id: u32, now: Instant) -> Option<Vec<Output>> {
        self.now = now;
        let key = self.by_code(code)?;
        let lobby = &self.lobbies[&key];
        let member = lobby
            .members
            .iter()
            .copied()
            .find(|&m| self.visible_id(m, lobby.host) == id)?;
        self.close(member, Reason::RemovedByOperator);
        self.counts.operator_removals += 1;
        Some(self.take())
    }

    fn by_code(&self, code: &str) -> Option<u64> {
        let code = lobby::as_code(code)?;
        self.lobby_codes.get(&code).copied()
    }
}
