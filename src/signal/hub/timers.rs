//! The hub's timers: joins due, seals to complete, kept places to give up.

use super::*;

impl Hub {
    /// Fires the timers due at `now`.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        self.now = now;
        while let Some(&Reverse((at, conn))) = self.join_deadlines.peek() {
            if at > now {
                break;
            }
            self.join_deadlines.pop();
            if self.peers.get(&conn).is_some_and(|p| p.lobby.is_none()) {
                self.close(conn, Reason::NoLobby);
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
                    self.push_close(member, Reason::SealComplete);
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
}
