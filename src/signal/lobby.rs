//! What a lobby is beyond its members: its join code, the options an extension host gave it
//! (title, visibility, player cap, password, data), and the lobby list's filter.

use serde_json::{Map, Value};

use super::ext::{Create, LobbyInfo, Update};
use crate::random::Random;

/// Join codes: no look-alikes (0/O, 1/I/L), read case-insensitively.
const CODE_CHARS: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
pub const CODE_LEN: usize = 6;

/// A fresh code (31^6, about 887 million; the caller keeps codes unique among open lobbies).
pub fn random_code(random: &mut Random) -> String {
    random_from(random, CODE_CHARS, CODE_LEN)
}

/// `len` characters drawn uniformly from `chars` (at most 256 of them).
pub fn random_from(random: &mut Random, chars: &[u8], len: usize) -> String {
    // Bytes at or over the largest multiple of the alphabet's size are rejected, so that every
    // character is equally likely.
    let limit = 256 - 256 % chars.len();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let bytes = random.bytes::<16>();
        let picked = bytes
            .iter()
            .filter(|&&b| usize::from(b) < limit)
            .map(|&b| chars[usize::from(b) % chars.len()] as char);
        out.extend(picked.take(len - out.len()));
    }
    out
}

/// `text` as a code to look up (upper case), if it could be one.
pub fn as_code(text: &str) -> Option<String> {
    let code = text.trim().to_ascii_uppercase();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_CHARS.contains(&b))).then_some(code)
}

/// A lobby password, kept only as a keyed hash under a random salt.
pub struct Password {
    key: ring::hmac::Key,
    tag: ring::hmac::Tag,
}

impl Password {
    pub fn new(password: &str, random: &mut Random) -> Password {
        let salt = random.bytes::<16>();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &salt);
        let tag = ring::hmac::sign(&key, password.as_bytes());
        Password { key, tag }
    }

    /// In constant time.
    pub fn matches(&self, attempt: &str) -> bool {
        ring::hmac::verify(&self.key, attempt.as_bytes(), self.tag.as_ref()).is_ok()
    }
}

/// The size limits on what a host sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionLimits {
    /// Characters of a title at most.
    pub max_title: usize,
    /// Bytes of `data` as JSON at most.
    pub max_data: usize,
}

/// Characters of a password at most.
const MAX_PASSWORD: usize = 128;

/// A lobby's options. A lobby made by a plain Godot client has the defaults: private, no title,
/// no cap of its own, no password.
#[derive(Default)]
pub struct Options {
    pub title: String,
    pub public: bool,
    /// 0 = none of its own.
    pub max_players: u32,
    pub password: Option<Password>,
    pub data: Map<String, Value>,
}

impl Options {
    /// Options from a CREATE, or why they are refused.
    pub fn create(c: Create, limits: OptionLimits, random: &mut Random) -> Result<Options, String> {
        let mut options = Options::default();
        if let Some(p) = c.password.filter(|p| !p.is_empty()) {
            if p.chars().count() > MAX_PASSWORD {
                return Err(format!("password: at most {MAX_PASSWORD} characters"));
            }
            options.password = Some(Password::new(&p, random));
        }
        options.update(
            Update {
                title: Some(c.title),
                public: Some(c.public),
                max_players: Some(c.max_players),
                data: Some(c.data),
            },
            limits,
        )?;
        Ok(options)
    }

    /// Applies an UPDATE whole, or nothing of it.
    pub fn update(&mut self, u: Update, limits: OptionLimits) -> Result<(), String> {
        if let Some(title) = &u.title
            && (title.chars().count() > limits.max_title || title.chars().any(char::is_control))
        {
            return Err(format!(
                "title: at most {} characters, no control characters (signal.max_title)",
                limits.max_title
            ));
        }
        if let Some(data) = &u.data {
            let size = Value::Object(data.clone()).to_string().len();
            if size > limits.max_data {
                return Err(format!(
                    "data: {size} bytes as JSON, at most {} (signal.max_lobby_data)",
                    limits.max_data
                ));
            }
        }
        if u.max_players == Some(1) {
            return Err("max_players: at least 2 (0 = no cap)".into());
        }
        if let Some(title) = u.title {
            self.title = title;
        }
        if let Some(public) = u.public {
            self.public = public;
        }
        if let Some(max) = u.max_players {
            self.max_players = max;
        }
        if let Some(data) = u.data {
            self.data = data;
        }
        Ok(())
    }

    /// Whether every field of `filter` equals the lobby's data field of that name.
    pub fn matches(&self, filter: &Map<String, Value>) -> bool {
        filter.iter().all(|(k, v)| self.data.get(k) == Some(v))
    }

    /// The lobby as the extension shows it.
    pub fn info(
        &self,
        name: &str,
        code: &str,
        mesh: bool,
        players: usize,
        sealed: bool,
    ) -> LobbyInfo {
        LobbyInfo {
            name: name.to_string(),
            code: code.to_string(),
            title: self.title.clone(),
            public: self.public,
            mesh,
            players,
            max_players: self.max_players,
            password: self.password.is_some(),
            sealed,
            data: self.data.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: OptionLimits = OptionLimits {
        max_title: 10,
        max_data: 30,
    };

    #[test]
    fn codes_have_no_look_alikes_and_read_in_any_case() {
        let mut random = Random::seeded(1);
        for _ in 0..200 {
            let code = random_code(&mut random);
            assert_eq!(code.len(), CODE_LEN);
            assert!(!code.contains(['0', 'O', '1', 'I', 'L']), "{code}");
            assert_eq!(as_code(&code.to_lowercase()), Some(code.clone()));
        }
        assert_eq!(as_code(" abc234 "), Some("ABC234".into()));
        assert_eq!(as_code("ABC10O"), None, "look-alikes are never in a code");
        assert_eq!(
            as_code("ABCDEFGHJKMNPQRS"),
            None,
            "a lobby name is not a code"
        );
    }

    #[test]
    fn passwords_are_salted_and_checked() {
        let mut random = Random::seeded(1);
        let a = Password::new("hunter2", &mut random);
        let b = Password::new("hunter2", &mut random);
        assert!(a.matches("hunter2") && !a.matches("hunter3") && !a.matches(""));
        assert_ne!(a.tag.as_ref(), b.tag.as_ref(), "a salt of its own");
    }

    #[test]
    fn options_are_checked_whole() {
        let c = Create {
            title: "Duel".into(),
            max_players: 4,
            data: serde_json::from_str(r#"{"v":"1.2"}"#).unwrap(),
            ..Create::default()
        };
        let mut o = Options::create(c, LIMITS, &mut Random::seeded(1)).unwrap();
        assert!(o.matches(&serde_json::from_str(r#"{"v":"1.2"}"#).unwrap()));
        assert!(!o.matches(&serde_json::from_str(r#"{"v":"1.3"}"#).unwrap()));
        assert!(!o.matches(&serde_json::from_str(r#"{"mode":"ctf"}"#).unwrap()));
        let too_long = Update {
            title: Some("a very long title".into()),
            max_players: Some(8),
            ..Update::default()
        };
        assert!(o.update(too_long, LIMITS).is_err());
        assert_eq!(
            (o.title.as_str(), o.max_players),
            ("Duel", 4),
            "nothing applied"
        );
        let big = Update {
            data: Some(serde_json::from_str(r#"{"map":"a-map-name-that-is-long"}"#).unwrap()),
            ..Update::default()
        };
        assert!(
            o.update(big, LIMITS)
                .unwrap_err()
                .contains("max_lobby_data")
        );
        let one = Update {
            max_players: Some(1),
            ..Update::default()
        };
        assert!(o.update(one, LIMITS).is_err());
    }
}
