//! QUICK_JOIN, the "Play" button: the player joins the best open game that matches, or opens
//! one and waits for others. The hub is one task, so the pick and the join are one step: two
//! players pressing Play at once end up in the same lobby, never in two.

use super::*;

impl Hub {
    pub(super) fn quick_join(
        &mut self,
        conn: ConnId,
        filter: &Map<String, Value>,
        create: ext::Create,
    ) {
        let of = ext::kind::QUICK_JOIN;
        if self.peers[&conn].lobby.is_some() {
            return self.refuse(conn, Some(of), Refusal::AlreadyInLobby);
        }
        // It reads the lobby list as LIST does, so it counts against the same limit.
        let now = self.now;
        let ext = self.peers.get_mut(&conn).unwrap().ext.as_mut().unwrap();
        if !ext.list_limit.try_take(now) {
            return self.error(
                conn,
                of,
                ErrorCode::RateLimited,
                "too many quick-joins and list queries (signal.list_rate)",
            );
        }
        // It guesses nothing, so it never fails a join; but a spent address joins nothing.
        if self.spent(self.peers[&conn].source) {
            return self.refuse(conn, Some(of), Refusal::RateLimited);
        }
        if let Some(key) = self.best_open_lobby(filter) {
            self.counts.quick_joins.joined += 1;
            return self.enter(conn, key);
        }
        let mesh = create.mesh;
        match Options::create(create, self.limits.options, &mut self.random) {
            Err(message) => self.error(conn, of, ErrorCode::Invalid, &message),
            Ok(options) => match self.create_lobby(conn, mesh, options) {
                Ok(key) => {
                    self.counts.quick_joins.created += 1;
                    self.enter(conn, key)
                }
                Err(why) => self.refuse(conn, Some(of), why),
            },
        }
    }

    /// The fullest, then oldest, of the public, open, unsealed lobbies without a password whose
    /// data matches `filter`, with room and not over `signal.lobby_joins_per_second` (whose
    /// join is taken from that limit).
    fn best_open_lobby(&mut self, filter: &Map<String, Value>) -> Option<u64> {
        let cap = self.limits.max_lobby_members;
        let mut open: Vec<(usize, u64)> = self
            .lobbies
            .iter()
            .filter(|(_, l)| {
                l.options.public
                    && l.options.password.is_none()
                    && !l.sealed
                    && !l.full(cap)
                    && l.options.matches(filter)
            })
            .map(|(&key, l)| (l.members.len(), key))
            .collect();
        // Keys grow as lobbies open: the smaller, the older.
        open.sort_unstable_by_key(|&(players, key)| (Reverse(players), key));
        let per_second = self.limits.lobby_joins_per_second;
        let now = self.now;
        open.into_iter()
            .map(|(_, key)| key)
            .find(|key| per_second == 0 || self.lobbies.get_mut(key).unwrap().joins.try_take(now))
    }
}
