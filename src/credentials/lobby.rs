//! Credentials bound to a lobby and a player: the user part `lobby.<lobby>.<player>`, which the
//! relay reads back from the username (the HMAC covers it, so it cannot be changed without the
//! secret), and what the hub tells the relay about its lobbies.

use std::net::IpAddr;

/// What the hub tells the relay. `lobby` is the lobby's credential scope, random per lobby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LobbyEvent {
    Opened {
        lobby: u64,
    },
    /// A member sent this address in a candidate or an SDP through the hub.
    Announced {
        lobby: u64,
        ip: IpAddr,
    },
    /// The members who announced this address have all left (before the seal).
    Withdrawn {
        lobby: u64,
        ip: IpAddr,
    },
    Sealed {
        lobby: u64,
    },
    /// The lobby is gone from the hub (aborted before its seal, or closed after it).
    Ended {
        lobby: u64,
    },
}

/// The user part of a credential bound to a lobby and a player: the relay reads the lobby from
/// it (the HMAC covers it, so it cannot be changed without the secret).
pub fn lobby_user(lobby: u64, player: u32) -> String {
    format!("lobby.{lobby:016x}.{player}")
}

/// The lobby a REST username (`<expiry>:lobby.<lobby>.<player>`) is bound to, if any.
pub fn lobby_of(username: &str) -> Option<u64> {
    lobby_member(username).map(|(lobby, _)| lobby)
}

/// The lobby and the player a REST username is bound to, if any.
pub fn lobby_member(username: &str) -> Option<(u64, u32)> {
    let (_, user) = username.split_once(':')?;
    let mut parts = user.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("lobby"), Some(lobby), Some(player), None) if lobby.len() == 16 => {
            Some((u64::from_str_radix(lobby, 16).ok()?, player.parse().ok()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::credentials::{mint, rest_expiry};

    #[test]
    fn lobby_credentials_name_their_lobby() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let user = lobby_user(0xfeed, 12345);
        let c = mint("k", &user, Duration::from_secs(60), now);
        assert_eq!(c.username, "1700000060:lobby.000000000000feed.12345");
        assert_eq!(lobby_of(&c.username), Some(0xfeed));
        assert_eq!(rest_expiry(&c.username), Some(1_700_000_060));
        for not_bound in [
            "1700000060:0123456789abcdef",
            "1700000060",
            "1700000060:lobby.feed.1",
            "1700000060:lobby.000000000000feed",
            "1700000060:lobby.000000000000feed.1.2",
            "1700000060:lobby.000000000000feed.x",
            "alice",
        ] {
            assert_eq!(lobby_of(not_bound), None, "{not_bound}");
        }
    }
}
