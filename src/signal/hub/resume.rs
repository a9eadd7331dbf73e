//! Resuming: an extension member whose socket drops keeps its place for `resume_grace`, with
//! what the hub sends it meanwhile queued (bounded in frames and bytes), until a RESUME with its
//! token on a new connection takes the place back.

use super::*;

impl Hub {
    /// Peers whose socket dropped and whose place is kept for a resume.
    pub fn away_count(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.ext.as_ref().is_some_and(|e| e.away.is_some()))
            .count()
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

    /// A new connection `conn` takes back the place of the peer holding `token`: the old
    /// socket, if the hub still thinks it open, is closed; what was queued follows.
    pub(super) fn resume(&mut self, conn: ConnId, token: &str) {
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
            self.push_close(old, Reason::ResumedElsewhere);
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
        self.out.push(Output::Entered(conn));
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

    /// An output for `to` (a frame, or credentials to mint), queued while `to` is away, up to
    /// `max_resume_queue` frames and `max_resume_bytes`. A lobby's state replaces the one queued
    /// before it (only the last one matters), so a host's updates cannot fill it.
    pub(super) fn push_output(&mut self, to: ConnId, output: Output) {
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
}

/// The directory key of a resume token: a hash, so the directory does not hold the secret.
pub fn resume_key(token: &str) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(format!("rallypoint resume {token}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("resume.{hex}")
}
