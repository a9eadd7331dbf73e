//! TURN REST credentials ("A REST API for access to TURN services", the draft coturn and most
//! WebRTC stacks implement): username `<unix-expiry>:<user>`, password
//! `base64(HMAC-SHA1(secret, username))`. `/api/ice`, the command line and (later) the hub mint
//! them; the relay ([`super::auth`]) recomputes the password from the username to verify.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};

/// A username and password a WebRTC client hands to the TURN server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// Seconds since the Unix epoch after which the relay refuses the credential.
    pub expires: u64,
}

/// Mints a credential for `user` (may be empty) valid for `ttl` from `now`.
pub fn mint(secret: &str, user: &str, ttl: Duration, now: SystemTime) -> Credential {
    let expires = unix_seconds(now).saturating_add(ttl.as_secs());
    let username = if user.is_empty() {
        expires.to_string()
    } else {
        format!("{expires}:{user}")
    };
    Credential {
        password: rest_password(secret, &username),
        username,
        expires,
    }
}

/// The password the TURN REST scheme derives from `username` with `secret`.
pub fn rest_password(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The expiry a REST username carries (`expiry:user` or just `expiry`), if it has that form.
pub fn rest_expiry(username: &str) -> Option<u64> {
    let stamp = username.split_once(':').map_or(username, |(t, _)| t);
    stamp.parse().ok()
}

pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A fresh random secret, hex encoded, for a server started without one.
pub fn random_secret() -> String {
    random_hex(24)
}

/// A user part no other credential shares, so that `turn.max_allocations_per_user` counts per
/// credential handed out, not per second of expiry.
pub fn random_user() -> String {
    random_hex(8)
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

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_the_rest_draft_formula() {
        // Reference value computed with: printf %s '1700000000:alice' |
        //   openssl dgst -sha1 -hmac 'sixteen-byte-key' -binary | base64
        assert_eq!(
            rest_password("sixteen-byte-key", "1700000000:alice"),
            "oWWyLK9oHEWtZ0a9mWYia+irkts="
        );
    }

    #[test]
    fn minted_username_carries_the_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = mint("sixteen-byte-key", "alice", Duration::from_secs(3600), now);
        assert_eq!(c.username, "1700003600:alice");
        assert_eq!(c.expires, 1_700_003_600);
        assert_eq!(rest_expiry(&c.username), Some(1_700_003_600));
        assert_eq!(mint("k", "", Duration::ZERO, now).username, "1700000000");
        assert_eq!(rest_expiry("alice"), None);
        assert_eq!(rest_expiry("x:1700000000"), None);
    }

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
