//! Lobbies: creating, finding (with the failed-join and per-lobby join limits), entering,
//! sealing and listing them, relaying OFFER, ANSWER and CANDIDATE between their members, and
//! announcing the addresses those name to the relay.

use super::*;

/// How long a relay to a member that just left is dropped quietly rather than refused.
pub(super) const DEPARTED_GRACE: Duration = Duration::from_secs(30);

/// Departures remembered per lobby for that purpose.
pub(super) const DEPARTED_MEMORY: usize = 64;

/// Characters and length of generated lobby names, as the reference.
pub(super) const LOBBY_NAME_CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

pub(super) const LOBBY_NAME_LEN: usize = 16;

impl Hub {
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

    pub fn lobby_count(&self) -> usize {
        self.lobbies.len()
    }

    /// Open lobbies that are listed (public).
    pub fn public_lobby_count(&self) -> usize {
        self.lobbies.values().filter(|l| l.options.public).count()
    }

    /// The lobby `name_or_code` names, if `conn` may join it with `password` (`None`: a plain
    /// client, which has none to give). Counts failed joins against the client's address.
    pub(super) fn find_lobby(
        &mut self,
        conn: ConnId,
        name_or_code: &str,
        password: Option<&str>,
    ) -> Result<u64, Refusal> {
        let source = self.peers[&conn].source;
        let now = self.now;
        // A spent address learns nothing more, right or wrong.
        if self.spent(source) {
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

    /// Whether `source` has spent its failed joins (`signal.failed_joins_per_minute`): then it
    /// may not join at all for a while, and that refusal is counted.
    pub(super) fn spent(&mut self, source: Source) -> bool {
        if self.failed_joins.allows(source, self.now) {
            return false;
        }
        *self.counts.failed_joins.entry("rate_limited").or_default() += 1;
        *self
            .counts
            .limited
            .entry("signal.failed_joins_per_minute")
            .or_default() += 1;
        true
    }

    /// In a cluster: `source` has spent its tries on other nodes ([`FailedJoins`]).
    pub fn spent_elsewhere(&mut self, source: Source, now: Instant) {
        self.failed_joins.spent_elsewhere(source, now);
    }

    /// Puts `conn` into lobby `key`: Godot's join sequence, then for extension clients the
    /// lobby's state and the resume token; other extension members see the new player count.
    pub(super) fn enter(&mut self, conn: ConnId, key: u64) {
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
        self.out.push(Output::Entered(conn));
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
    pub(super) fn announce_lobby(&mut self, key: u64) {
        self.listing_version += 1;
        let lobby = &self.lobbies[&key];
        let info = lobby.info();
        for member in lobby.members.clone() {
            if self.peers[&member].ext.is_some() {
                self.send_ext(member, &ExtEvent::Lobby(&info));
            }
        }
    }

    pub(super) fn create_lobby(
        &mut self,
        host: ConnId,
        mesh: bool,
        options: Options,
    ) -> Result<u64, Refusal> {
        if self.lobbies.len() + self.census_elsewhere.lobbies >= self.limits.max_lobbies as usize {
            return Err(Refusal::TooManyLobbies);
        }
        let creator = self.peers[&host].source;
        let per_address = self.limits.max_lobbies_per_address;
        if !self.lobbies_per_source.open(creator, per_address) {
            let limit = Refusal::TooManyLobbiesHere.limit().unwrap();
            *self.counts.limited.entry(limit).or_default() += 1;
            return Err(Refusal::TooManyLobbiesHere);
        }
        let name = loop {
            let name = lobby::random_from(&mut self.random, LOBBY_NAME_CHARS, LOBBY_NAME_LEN);
            if self.shard.owns_key(&name) && !self.lobby_names.contains_key(&name) {
                break name;
            }
        };
        let code = loop {
            let code = lobby::random_code(&mut self.random);
            if self.shard.owns_key(&code) && !self.lobby_codes.contains_key(&code) {
                break code;
            }
        };
        let key = self.next_lobby;
        self.next_lobby += 1;
        self.listing_version += 1;
        self.lobby_names.insert(name.clone(), key);
        self.lobby_codes.insert(code.clone(), key);
        self.out.push(Output::Listed {
            keys: vec![name.clone(), code.clone()],
            open: true,
        });
        let scope = u64::from_le_bytes(self.random.bytes());
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
                opened: self.now,
            },
        );
        Ok(key)
    }

    pub(super) fn forget_lobby(&mut self, lobby: &Lobby) {
        self.listing_version += 1;
        self.lobby_names.remove(&lobby.name);
        self.lobby_codes.remove(&lobby.code);
        self.lobbies_per_source.close(lobby.creator);
        self.out.push(Output::Listed {
            keys: vec![lobby.name.clone(), lobby.code.clone()],
            open: false,
        });
        self.out
            .push(Output::Relay(LobbyEvent::Ended { lobby: lobby.scope }));
    }

    pub(super) fn seal(&mut self, conn: ConnId, key: u64) {
        let lobby = &self.lobbies[&key];
        if lobby.host != conn {
            return self.close(conn, Reason::OnlyHostCanSeal);
        }
        if lobby.sealed {
            return;
        }
        let members = lobby.members.clone();
        let scope = lobby.scope;
        self.lobbies.get_mut(&key).unwrap().sealed = true;
        self.listing_version += 1;
        self.out
            .push(Output::Relay(LobbyEvent::Sealed { lobby: scope }));
        for member in members {
            self.send(member, &Event::Sealed);
        }
        self.seal_deadlines
            .push(Reverse((self.now + self.limits.seal_close_delay, key)));
    }

    pub(super) fn relay(
        &mut self,
        conn: ConnId,
        key: u64,
        what: Negotiation,
        to: u64,
        payload: &str,
    ) {
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
            return self.close(conn, Reason::InvalidDest);
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
    pub(super) fn announce(&mut self, conn: ConnId, key: u64, payload: &str) {
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
    pub(super) fn withdraw(&mut self, key: u64, announced: Vec<IpAddr>) {
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
}
