//! Long-term credentials (RFC 8489 §9.2) for TURN requests: static users from `turn.users` and
//! TURN REST credentials minted from `turn.secrets` (see [`crate::credentials`]).
//!
//! Nonces are stateless: a timestamp and an HMAC over it and the client's address, so an
//! unauthenticated request leaves nothing behind in the server.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::integrity::MessageIntegrity;
use stun::message::Message;
use stun::textattrs::TextAttribute;

use crate::credentials;
use crate::random::Random;

/// How long a nonce is accepted; after that the client gets 438 and a fresh one.
pub const NONCE_LIFETIME_SECS: u64 = 600;

/// Where passwords come from.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub realm: String,
    users: BTreeMap<String, String>,
    secrets: Vec<String>,
}

/// A request that proved who sent it.
#[derive(Clone)]
pub struct Identity {
    pub username: String,
    /// The key that signed the request; responses are signed with it too.
    pub integrity: MessageIntegrity,
}

/// Why a request is refused; 401 and 438 answers carry a realm and a fresh nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 400: integrity present but USERNAME, REALM or NONCE missing.
    BadRequest,
    /// 401: no integrity, unknown or expired user, wrong password.
    Unauthorized,
    /// 438: the nonce is not one of ours or too old.
    StaleNonce,
}

impl Credentials {
    pub fn new(realm: &str, users: &BTreeMap<String, String>, secrets: &[String]) -> Credentials {
        Credentials {
            realm: realm.to_string(),
            users: users.clone(),
            secrets: secrets.to_vec(),
        }
    }

    /// The passwords `username` may have signed with: its static one, or one per REST secret
    /// while the expiry in the name lies ahead.
    fn passwords(&self, username: &str, unix_now: u64) -> Vec<String> {
        if let Some(p) = self.users.get(username) {
            return vec![p.clone()];
        }
        match credentials::rest_expiry(username) {
            Some(expiry) if expiry > unix_now => self
                .secrets
                .iter()
                .map(|s| credentials::rest_password(s, username))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Issues and checks nonces with a key that lives as long as the process.
pub struct Nonces {
    key: [u8; 32],
}

impl Nonces {
    /// Nonces keyed from `random`.
    pub fn new(random: &mut Random) -> Nonces {
        Nonces {
            key: random.bytes(),
        }
    }

    fn mac(&self, stamp: &str, client: IpAddr) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&self.key).expect("any key length");
        mac.update(stamp.as_bytes());
        mac.update(client.to_string().as_bytes());
        mac.finalize().into_bytes()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn issue(&self, client: IpAddr, unix_now: u64) -> String {
        let stamp = format!("{unix_now:016x}");
        let mac = self.mac(&stamp, client);
        stamp + &mac
    }

    fn valid(&self, nonce: &str, client: IpAddr, unix_now: u64) -> bool {
        let (Some(stamp), Some(mac)) = (nonce.get(..16), nonce.get(16..)) else {
            return false;
        };
        let Ok(issued) = u64::from_str_radix(stamp, 16) else {
            return false;
        };
        // Constant-time comparison is not needed: the MAC covers only public data.
        self.mac(stamp, client) == mac
            && unix_now.saturating_sub(issued) < NONCE_LIFETIME_SECS
            && issued <= unix_now + 5
    }
}

/// Checks a request's long-term credentials (RFC 8489 §9.2.4).
pub fn authenticate(
    message: &mut Message,
    credentials: &Credentials,
    nonces: &Nonces,
    client: IpAddr,
    unix_now: u64,
) -> Result<Identity, Failure> {
    if !message.contains(ATTR_MESSAGE_INTEGRITY) {
        return Err(Failure::Unauthorized);
    }
    let text = |attr| TextAttribute::get_from_as(message, attr).map(|t| t.text);
    let (Ok(username), Ok(_realm), Ok(nonce)) =
        (text(ATTR_USERNAME), text(ATTR_REALM), text(ATTR_NONCE))
    else {
        return Err(Failure::BadRequest);
    };
    if !nonces.valid(&nonce, client, unix_now) {
        return Err(Failure::StaleNonce);
    }
    for password in credentials.passwords(&username, unix_now) {
        let integrity = MessageIntegrity::new_long_term_integrity(
            username.clone(),
            credentials.realm.clone(),
            password,
        );
        if integrity.check(message).is_ok() {
            return Ok(Identity {
                username,
                integrity,
            });
        }
    }
    Err(Failure::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::message::{BINDING_REQUEST, Setter};

    const NOW: u64 = 1_700_000_000;

    fn client() -> IpAddr {
        "198.51.100.7".parse().unwrap()
    }

    fn signed(username: &str, password: &str, nonce: &str) -> Message {
        let mut m = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(stun::agent::TransactionId::new()),
            Box::new(BINDING_REQUEST),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.into())),
            Box::new(TextAttribute::new(ATTR_REALM, "rallypoint".into())),
            Box::new(TextAttribute::new(ATTR_NONCE, nonce.into())),
            Box::new(MessageIntegrity::new_long_term_integrity(
                username.into(),
                "rallypoint".into(),
                password.into(),
            )),
        ];
        m.build(&setters).unwrap();
        m
    }

    fn creds() -> Credentials {
        let users = BTreeMap::from([("alice".to_string(), "wonderland".to_string())]);
        Credentials::new(
            "rallypoint",
            &users,
            &["second-secret-0123".into(), "first-secret-01234".into()],
        )
    }

    #[test]
    fn static_and_rest_credentials_authenticate() {
        let nonces = Nonces::new(&mut Random::seeded(1));
        let nonce = nonces.issue(client(), NOW);
        let mut m = signed("alice", "wonderland", &nonce);
        let id = authenticate(&mut m, &creds(), &nonces, client(), NOW);
        assert_eq!(id.map(|i| i.username).ok().as_deref(), Some("alice"));

        // Any configured secret verifies, not only the first.
        let user = format!("{}:bob", NOW + 60);
        let password = credentials::rest_password("first-secret-01234", &user);
        let mut m = signed(&user, &password, &nonce);
        assert!(authenticate(&mut m, &creds(), &nonces, client(), NOW).is_ok());
    }

    #[test]
    fn refusals() {
        let nonces = Nonces::new(&mut Random::seeded(1));
        let nonce = nonces.issue(client(), NOW);
        let c = creds();
        let mut wrong = signed("alice", "queen-of-hearts", &nonce);
        assert_eq!(
            authenticate(&mut wrong, &c, &nonces, client(), NOW)
                .err()
                .unwrap(),
            Failure::Unauthorized
        );
        let mut unknown = signed("mallory", "x", &nonce);
        assert_eq!(
            authenticate(&mut unknown, &c, &nonces, client(), NOW)
                .err()
                .unwrap(),
            Failure::Unauthorized
        );

        let expired_user = format!("{}:bob", NOW - 1);
        let password = credentials::rest_password("first-secret-01234", &expired_user);
        let mut expired = signed(&expired_user, &password, &nonce);
        assert_eq!(
            authenticate(&mut expired, &c, &nonces, client(), NOW)
                .err()
                .unwrap(),
            Failure::Unauthorized
        );

        let mut plain = Message::new();
        plain
            .build(&[
                Box::new(stun::agent::TransactionId::new()),
                Box::new(BINDING_REQUEST),
            ])
            .unwrap();
        assert_eq!(
            authenticate(&mut plain, &c, &nonces, client(), NOW)
                .err()
                .unwrap(),
            Failure::Unauthorized
        );
    }

    #[test]
    fn nonces_are_bound_to_client_and_time() {
        let nonces = Nonces::new(&mut Random::seeded(1));
        let nonce = nonces.issue(client(), NOW);
        let c = creds();
        let mut m = signed("alice", "wonderland", &nonce);
        let later = NOW + NONCE_LIFETIME_SECS;
        assert_eq!(
            authenticate(&mut m, &c, &nonces, client(), later)
                .err()
                .unwrap(),
            Failure::StaleNonce
        );
        let other: IpAddr = "203.0.113.1".parse().unwrap();
        assert_eq!(
            authenticate(&mut m, &c, &nonces, other, NOW).err().unwrap(),
            Failure::StaleNonce
        );
        let mut forged = signed(
            "alice",
            "wonderland",
            "0000000000000000aaaaaaaaaaaaaaaaaaaaaaaa",
        );
        assert_eq!(
            authenticate(&mut forged, &c, &nonces, client(), NOW)
                .err()
                .unwrap(),
            Failure::StaleNonce
        );
        assert_ne!(
            Nonces::new(&mut Random::seeded(2)).issue(client(), NOW),
            nonce,
            "keys differ per process"
        );
    }
}
