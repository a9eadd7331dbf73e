//! Why the server closes a signalling connection: one [`Reason`] each, with the text players
//! are shown and the WebSocket close code. Godot shows the text to players, so the reference
//! server's reasons keep its strings, typo included.
//!
//! A reason travels between the nodes of a cluster as its [`Reason::number`]: one declaration
//! below gives the enum, its text, its number and the way back from the number, so no reason
//! can be missing on the other side.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares each reason once: variant, number (never reused), text.
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident = $number:literal, $text:literal;)*) => {
        /// Why a signalling connection is closed.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Reason {
            $($(#[$doc])* $name = $number,)*
        }

        impl Reason {
            /// Every reason, in declaration order.
            pub const ALL: &[Reason] = &[$(Reason::$name),*];

            /// What the player is shown (the close frame's reason).
            pub fn text(self) -> &'static str {
                match self {
                    $(Reason::$name => $text,)*
                }
            }

            /// The reason numbered `number` by [`Reason::number`].
            pub fn from_number(number: u16) -> Option<Reason> {
                match number {
                    $($number => Some(Reason::$name),)*
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    NoLobby = 1, "Have not joined lobby yet";
    HostDisconnected = 2, "Room host has disconnected";
    OnlyHostCanSeal = 3, "Only host can seal the lobby";
    SealComplete = 4, "Seal complete";
    TooManyLobbies = 5, "Too many lobbies open, disconnecting";
    AlreadyInLobby = 6, "Already in a lobby";
    LobbyDoesNotExist = 7, "Lobby does not exists";
    LobbyIsSealed = 8, "Lobby is sealed";
    InvalidFormat = 9, "Invalid message format";
    NeedLobby = 10, "Invalid message when not in a lobby";
    InvalidDest = 11, "Invalid destination";
    InvalidCmd = 12, "Invalid command";
    TooManyPeers = 13, "Too many peers connected";
    InvalidTransferMode = 14, "Invalid transfer mode, must be text";
    /// rallypoint's own, for `signal.max_lobby_members` and a lobby's player cap.
    LobbyFull = 15, "Lobby is full";
    /// rallypoint's own: a plain client cannot give the password a lobby was created with.
    NeedsPassword = 16, "Lobby requires a password";
    /// rallypoint's own: an extension client gave a password that is not the lobby's.
    WrongPassword = 17, "Wrong password";
    /// rallypoint's own: `signal.failed_joins_per_minute` from this address.
    TooManyFailedJoins = 18, "Too many failed joins, try again later";
    /// rallypoint's own: the host removed this peer (extension KICK).
    Kicked = 19, "Kicked by host";
    /// rallypoint's own: the peer's place was resumed on a newer connection.
    ResumedElsewhere = 20, "Resumed on another connection";
    /// rallypoint's own: `signal.lobby_joins_per_second` into this lobby.
    LobbyBusy = 21, "Lobby is busy, try again";
    /// rallypoint's own: `signal.max_lobbies_per_address`.
    TooManyLobbiesHere = 22, "Too many lobbies from this address";
    /// rallypoint's own: the player's queue filled (`signal.max_queued_bytes`,
    /// `signal.send_timeout`).
    TooSlow = 23, "Too slow to receive";
    /// rallypoint's own, in a cluster: the lobby's node cannot be reached under the player.
    LinkLost = 24, "Lost contact with the lobby's server";
    /// rallypoint's own, in a cluster: the lobby directory (Redis) cannot be asked.
    DirectoryDown = 25, "Lobby directory unavailable, try again";
    /// The server is stopping.
    ShuttingDown = 26, "Server shutting down";
    /// rallypoint's own: the server's operator closed the lobby (the dashboard).
    ClosedByOperator = 27, "Lobby closed by the server's operator";
    /// rallypoint's own: the server's operator removed this player (the dashboard).
    RemovedByOperator = 28, "Removed by the server's operator";
}

/// The protocol's error close code: every reason but the few below.
pub const PROTOCOL_ERROR: u16 = 4000;

impl Reason {
    /// The WebSocket close code: 1000 for "Seal complete" (the reference's only normal
    /// close), 1001 (going away) for a shutdown, 1008 (policy, RFC 6455 §7.4.1) for a player
    /// too slow to receive, and the protocol's 4000 for everything else.
    pub fn code(self) -> u16 {
        match self {
            Reason::SealComplete => 1000,
            Reason::ShuttingDown => 1001,
            Reason::TooSlow => 1008,
            _ => PROTOCOL_ERROR,
        }
    }

    /// Its number between nodes.
    pub fn number(self) -> u16 {
        self as u16
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.number())
    }
}

/// From its number; a number this version does not know (a newer node's reason) becomes
/// [`Reason::LinkLost`], so the player is still closed with a reason. The text a node of an
/// earlier version sent is taken too.
impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Number(u16),
            Text(String),
        }
        Ok(match Wire::deserialize(d)? {
            Wire::Number(n) => Reason::from_number(n),
            Wire::Text(t) => Reason::ALL.iter().copied().find(|r| r.text() == t),
        }
        .unwrap_or(Reason::LinkLost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_crosses_nodes_as_itself() {
        let mut numbers = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(numbers.insert(r.number()), "{r:?} shares its number");
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), *r);
            // As an earlier version sent it.
            let text = serde_json::to_string(r.text()).unwrap();
            assert_eq!(serde_json::from_str::<Reason>(&text).unwrap(), *r);
            // A close reason must fit in a close frame.
            assert!(r.text().len() <= 123);
        }
        assert_eq!(
            serde_json::from_str::<Reason>("999").unwrap(),
            Reason::LinkLost
        );
        assert_eq!(
            serde_json::from_str::<Reason>(r#""Made up by a stranger""#).unwrap(),
            Reason::LinkLost
        );
    }
}
