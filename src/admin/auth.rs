//! Who may use the operator's API: a request over HTTPS (or plain HTTP from this machine's
//! loopback, seen directly) that carries `Authorization: Bearer TOKEN` with one of
//! `admin.tokens` (or a dashboard session a token opened), compared in constant time. Wrong tokens are limited per address
//! (`admin.failed_tokens_per_minute`): a spent address gets 429 for everything, right or wrong,
//! until its bucket refills. Refusals are counted; the first wrong token is logged.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;

use crate::config::Admin as Settings;
use crate::conn_cap::Source;
use crate::rate_limit::PerSource;

/// Why a request is not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// `admin.tokens` is empty: nothing is open over the network.
    NoTokens,
    /// Plain HTTP from another machine: a token must not cross the network in clear.
    PlainHttp,
    /// No `Authorization: Bearer` header.
    NoToken,
    WrongToken,
    /// Over `admin.failed_tokens_per_minute`: try again after this long.
    TooMany(Duration),
}

impl Denied {
    /// The label of `rallypoint_admin_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Denied::NoTokens => "no_tokens",
            Denied::PlainHttp => "plain_http",
            Denied::NoToken => "no_token",
            Denied::WrongToken => "wrong_token",
            Denied::TooMany(_) => "rate_limited",
        }
    }
}

/// What a request shows to be let in.
#[derive(Clone, Copy, Debug)]
pub enum Given<'a> {
    /// A token (typed into the login form, or `Authorization: Bearer`), if any.
    Token(Option<&'a str>),
    /// A live dashboard session (its cookie).
    Session,
}

/// The `Authorization: Bearer` token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// How a request reached the server, as far as trust goes.
pub struct Transport {
    pub client: IpAddr,
    pub tls: bool,
    /// Straight from the client, not through a proxy.
    pub direct: bool,
}

pub struct Auth {
    /// Tokens are compared as HMACs under this process's random key: equal time whatever
    /// matches.
    key: ring::hmac::Key,
    failed: Mutex<PerSource>,
    refused: Mutex<Vec<(&'static str, u64)>>,
    logged: AtomicBool,
}

impl Auth {
    pub fn new(random: [u8; 32]) -> Auth {
        Auth {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &random),
            failed: Mutex::default(),
            refused: Mutex::default(),
            logged: AtomicBool::new(false),
        }
    }

    /// Lets the request in, or says why not (and counts it).
    pub fn check(
        &self,
        settings: &Settings,
        transport: &Transport,
        given: Given<'_>,
        now: Instant,
    ) -> Result<(), Denied> {
        let outcome = self.decide(settings, transport, given, now);
        if let Err(denied) = outcome {
            let mut refused = self.refused.lock().unwrap();
            match refused.iter_mut().find(|(l, _)| *l == denied.label()) {
                Some((_, n)) => *n += 1,
                None => refused.push((denied.label(), 1)),
            }
        }
        outcome
    }

    fn decide(
        &self,
        settings: &Settings,
        transport: &Transport,
        given: Given<'_>,
        now: Instant,
    ) -> Result<(), Denied> {
        if settings.tokens.is_empty() {
            return Err(Denied::NoTokens);
        }
        let local = transport.direct && transport.client.is_loopback();
        if !(transport.tls || local) {
            return Err(Denied::PlainHttp);
        }
        let per_minute = settings.failed_tokens_per_minute;
        let source = Source::of(transport.client);
        if per_minute > 0 {
            let mut failed = self.failed.lock().unwrap();
            let bucket = failed.bucket(source, per_minute, now);
            if !bucket.has_token(now) {
                return Err(Denied::TooMany(bucket.wait(now)));
            }
        }
        let given = match given {
            Given::Session => return Ok(()),
            Given::Token(token) => token.map(str::trim).filter(|t| !t.is_empty()),
        }
        .ok_or(Denied::NoToken)?;
        let tag = ring::hmac::sign(&self.key, given.as_bytes());
        let known = settings.tokens.iter().fold(false, |found, token| {
            ring::hmac::verify(&self.key, token.as_bytes(), tag.as_ref()).is_ok() | found
        });
        if known {
            return Ok(());
        }
        if per_minute > 0 {
            self.failed
                .lock()
                .unwrap()
                .bucket(source, per_minute, now)
                .try_take(now);
        }
        if !self.logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "admin: a wrong token from {}; each address may send {per_minute} a minute \
                 (admin.failed_tokens_per_minute), then gets 429; further ones are only \
                 counted, in rallypoint_admin_refused_total{{reason=\"wrong_token\"}}",
                transport.client
            );
        }
        Err(Denied::WrongToken)
    }

    /// Requests refused, by reason.
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        self.refused.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "an-operator-token-of-32-characters-or-more";

    fn settings() -> Settings {
        Settings {
            tokens: vec![TOKEN.into()],
            failed_tokens_per_minute: 3,
            ..Settings::default()
        }
    }

    fn with(token: &str) -> Given<'_> {
        Given::Token(Some(token))
    }

    fn from(ip: &str, tls: bool) -> Transport {
        Transport {
            client: ip.parse().unwrap(),
            tls,
            direct: true,
        }
    }

    #[test]
    fn a_token_over_https_or_local_plain_http_lets_in() {
        let auth = Auth::new([7; 32]);
        let now = Instant::now();
        let s = settings();
        assert_eq!(
            auth.check(&s, &from("203.0.113.9", true), with(TOKEN), now),
            Ok(())
        );
        assert_eq!(
            auth.check(&s, &from("127.0.0.1", false), with(TOKEN), now),
            Ok(())
        );
        assert_eq!(
            auth.check(&s, &from("203.0.113.9", false), with(TOKEN), now),
            Err(Denied::PlainHttp)
        );
        let proxied = Transport {
            direct: false,
            ..from("127.0.0.1", false)
        };
        assert_eq!(
            auth.check(&s, &proxied, with(TOKEN), now),
            Err(Denied::PlainHttp)
        );
        assert_eq!(
            auth.check(&s, &from("203.0.113.9", true), Given::Token(None), now),
            Err(Denied::NoToken)
        );
        let none = Settings::default();
        assert_eq!(
            auth.check(&none, &from("127.0.0.1", true), with(TOKEN), now),
            Err(Denied::NoTokens)
        );
    }

    #[test]
    fn wrong_tokens_spend_the_address_for_right_ones_too_until_it_refills() {
        let auth = Auth::new([7; 32]);
        let start = Instant::now();
        let s = settings();
        let there = from("203.0.113.9", true);
        for _ in 0..3 {
            assert_eq!(
                auth.check(&s, &there, with("nope"), start),
                Err(Denied::WrongToken)
            );
        }
        let Err(Denied::TooMany(wait)) = auth.check(&s, &there, with(TOKEN), start) else {
            panic!("a spent address is let in");
        };
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another address is not concerned; the spent one is let in once a token refilled.
        assert_eq!(
            auth.check(&s, &from("198.51.100.1", true), with(TOKEN), start),
            Ok(())
        );
        assert_eq!(auth.check(&s, &there, with(TOKEN), start + wait), Ok(()));
        assert_eq!(auth.refused(), [("wrong_token", 3), ("rate_limited", 1)],);
    }
}
