//! rallypoint's lobby extension (docs/protocol.md): its commands (CREATE with options, JOIN by
//! code, LIST, UPDATE, KICK, RESUME, ICE_REQUEST; QUICK_JOIN in `quick_join.rs`) and its ERROR
//! answers.

use super::*;

/// Lobby-list queries one connection may make at once (then `list_rate` a second).
pub(super) const LIST_BURST: u32 = 5;

impl Hub {
    pub(super) fn ext_command(&mut self, conn: ConnId, command: ExtCommand) {
        let lobby = self.peers[&conn].lobby;
        match command {
            ExtCommand::Create(options) => {
                let of = ext::kind::CREATE;
                if lobby.is_some() {
                    return self.refuse(conn, Some(of), Refusal::AlreadyInLobby);
                }
                let mesh = options.mesh;
                match Options::create(options, self.limits.options, &mut self.random) {
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
                        self.close(member, Reason::Kicked);
                    }
                    None => self.error(conn, of, ErrorCode::NoSuchPeer, "no such member"),
                }
            }
            ExtCommand::Resume(token) => self.resume(conn, &token),
            ExtCommand::QuickJoin { filter, create } => self.quick_join(conn, &filter, create),
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
    pub(super) fn hosted_lobby(&mut self, conn: ConnId, of: u64) -> Option<u64> {
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
    pub(super) fn list(&mut self, conn: ConnId, filter: &Map<String, Value>, page: u32) {
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

    /// Fresh relay credentials for `conn`, bound to its lobby and to it.
    pub(super) fn send_ice_servers(&mut self, conn: ConnId, key: u64) {
        let user = lobby_user(self.lobbies[&key].scope, self.peers[&conn].id);
        self.push_output(conn, Output::IceServers { to: conn, user });
    }

    /// Refuses a join: a plain client is closed with the reference's reason; an extension
    /// request (`of`) gets an ERROR and the connection stays.
    pub(super) fn refuse(&mut self, conn: ConnId, of: Option<u64>, why: Refusal) {
        match of {
            None => self.close(conn, why.reason()),
            Some(of) => self.error(conn, of, why.code(), why.reason().text()),
        }
    }

    pub(super) fn error(&mut self, conn: ConnId, of: u64, code: ErrorCode, message: &str) {
        self.send_ext(conn, &ExtEvent::Error { of, code, message });
    }
}
