//! Dashboard logins: a token typed into the login form opens a session, kept in this process
//! only, named by a random id in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "rallypoint_admin";
/// How long a login lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; a new one beyond replaces the oldest.
const MAX_SESSIONS: usize = 64;

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Instant>>);

impl Sessions {
    /// A new session's id.
    pub fn open(&self, now: Instant) -> String {
        let mut all = self.0.lock().unwrap();
        all.retain(|_, until| *until > now);
        if all.len() >= MAX_SESSIONS
            && let Some(oldest) = all
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(id, _)| id.clone())
        {
            all.remove(&oldest);
        }
        let id = crate::random::secret();
        all.insert(id.clone(), now + LIFETIME);
        id
    }

    /// Whether the request's cookie header names a live session.
    pub fn valid(&self, cookies: Option<&str>, now: Instant) -> bool {
        let Some(id) = session_id(cookies) else {
            return false;
        };
        self.0
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|until| *until > now)
    }

    /// Ends the session the cookie header names.
    pub fn close(&self, cookies: Option<&str>) {
        if let Some(id) = session_id(cookies) {
            self.0.lock().unwrap().remove(id);
        }
    }
}

fn session_id(cookies: Option<&str>) -> Option<&str> {
    cookies?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value for session `id` (`None`: one that ends it).
pub fn set_cookie(id: Option<&str>, secure: bool) -> String {
    let (value, age) = match id {
        Some(id) => (id, LIFETIME.as_secs()),
        None => ("", 0),
    };
    format!(
        "{COOKIE}={value}; Path=/_rallypoint/admin/; Max-Age={age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lasts_its_lifetime_and_ends_on_logout() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let id = sessions.open(start);
        let header = format!("theme=dark; {COOKIE}={id}");
        assert!(sessions.valid(Some(&header), start + LIFETIME / 2));
        assert!(!sessions.valid(Some(&header), start + LIFETIME));
        assert!(!sessions.valid(Some(&format!("{COOKIE}=forged")), start));
        assert!(!sessions.valid(None, start));
        sessions.close(Some(&header));
        assert!(!sessions.valid(Some(&header), start));
        let cookie = set_cookie(Some(&id), true);
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.ends_with("Secure")
        );
        assert!(!set_cookie(Some(&id), false).contains("Secure"));
    }
}
