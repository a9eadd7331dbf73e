//! TURN REST credentials ("A REST API for access to TURN services", the draft coturn and most
//! WebRTC stacks implement): username `<unix-expiry>:<user>`, password
//! `base64(HMAC-SHA1(secret, username))`. `/api/ice`, the command line and the hub mint them;
//! the relay (`turn::auth`) recomputes the password from the username to verify.

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
}
