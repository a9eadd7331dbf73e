//! The operator's side under `/_rallypoint/admin/`, behind `admin.tokens` ([`auth`]): the
//! dashboard ([`dashboard`]: the page, its state live, closing lobbies, removing players,
//! rolling back), and publishing a release over HTTP ([`publish`], [`publish_api`];
//! docs/publish.md has the wire), which `rallypoint publish` and the Godot editor plugin use.
//!
//! A publish: POST the manifest; PUT each content the server lacks (resumable from the offset
//! it says it has); POST commit, which runs `deploy`'s checks and switch. One publish at a time:
//! a second gets 409 with a reason until the first is committed, cancelled or silent for
//! `admin.publish_idle_timeout` (then its files are removed).

pub mod auth;
mod dashboard;
mod history;
mod metrics;
pub mod publish;
mod publish_api;
mod sessions;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::stream::BoxStream;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::config::Config;
use crate::signal::Signal;
use auth::{Auth, Denied, Given, Transport};
pub use dashboard::unix_now;
pub use history::{PERIOD as SAMPLE_PERIOD, Sample};
pub use metrics::register as register_metrics;
use publish::{HashCache, Session};
use sessions::Sessions;

/// The dashboard's page and everything under it.
pub const PREFIX: &str = "/_rallypoint/admin";
/// Where the API lives.
pub const API: &str = "/_rallypoint/admin/api/";

/// What the dashboard shows and acts on, as the web server has it.
pub trait Operated: Send + Sync + 'static {
    /// `/healthz`'s report.
    fn health(&self) -> serde_json::Value;
    fn signal(&self) -> &Signal;
    fn turn(&self) -> crate::turn::Snapshot;
    /// When the certificate served now expires, if one is.
    fn certificate_expiry(&self) -> Option<std::time::SystemTime>;
}

/// An answer: JSON or the page, or the dashboard's event stream.
pub enum Answer {
    Full(Response<Bytes>),
    Events(Response<()>, BoxStream<'static, Bytes>),
}

pub struct Admin {
    auth: Auth,
    sessions: Sessions,
    history: history::History,
    publishing: Mutex<Publishing>,
    hashes: Mutex<HashCache>,
    received: AtomicU64,
}

#[derive(Default)]
struct Publishing {
    session: Option<Session>,
    /// A commit is running (since then): no new publish until it is done.
    committing: Option<Instant>,
}

impl Admin {
    pub fn new(random: [u8; 32]) -> Admin {
        Admin {
            auth: Auth::new(random),
            sessions: Sessions::default(),
            history: history::History::default(),
            publishing: Mutex::default(),
            hashes: Mutex::default(),
            received: AtomicU64::new(0),
        }
    }

    /// Adds a sample to the dashboard's graph.
    pub fn record(&self, sample: Sample) {
        self.history.record(sample);
    }

    /// Abandons a publish silent for longer than `admin.publish_idle_timeout`, and removes what
    /// publishes left behind that none owns (a crash, a restart).
    pub fn sweep(&self, config: &Config, now: Instant) {
        let mut p = self.publishing.lock().unwrap();
        let idle = config.admin.publish_idle_timeout.0;
        if p.committing.is_none()
            && let Some(session) = p.session.take_if(|s| now.duration_since(s.touched) > idle)
        {
            log::info!(
                "admin: publish {} abandoned after {} s of silence; its uploads are removed",
                session.id,
                idle.as_secs()
            );
            session.discard();
        }
        if p.committing.is_none() {
            publish::sweep_strays(&config.web.root, p.session.as_ref());
        }
    }
}

/// Answers a request under [`PREFIX`].
pub async fn handle(
    config: Arc<Config>,
    admin: Arc<Admin>,
    view: Arc<dyn Operated>,
    transport: Transport,
    req: Request<Incoming>,
) -> Answer {
    let now = Instant::now();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, PREFIX) => {
            let mut r = answer(StatusCode::PERMANENT_REDIRECT, json!({}));
            let to = HeaderValue::from_static("/_rallypoint/admin/");
            r.headers_mut().insert(header::LOCATION, to);
            return Answer::Full(r);
        }
        // The page holds no data: it asks the API, which asks for a login.
        (&Method::GET | &Method::HEAD, "/_rallypoint/admin/") => {
            let mut r = Response::new(Bytes::from_static(dashboard::PAGE.as_bytes()));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                ),
            );
            return Answer::Full(r);
        }
        (&Method::POST, "/_rallypoint/admin/login") => {
            return Answer::Full(login(&config, &admin, &transport, req, now).await);
        }
        (&Method::POST, "/_rallypoint/admin/logout") => {
            admin.sessions.close(cookies(&req));
            let mut r = answer(StatusCode::OK, json!({"logged_out": true}));
            let end = sessions::set_cookie(None, transport.tls);
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&end).expect("ascii"),
            );
            return Answer::Full(r);
        }
        _ if !path.starts_with(API) => {
            return Answer::Full(answer(
                StatusCode::NOT_FOUND,
                json!({"error": "no such page"}),
            ));
        }
        _ => {}
    }
    let by_session = admin.sessions.valid(cookies(&req), now);
    let given = if by_session {
        Given::Session
    } else {
        Given::Token(auth::bearer(req.headers()))
    };
    if let Err(denied) = admin.auth.check(&config.admin, &transport, given, now) {
        return Answer::Full(refusal(denied));
    }
    // A cookie goes with any request the browser makes: an action must come from the page.
    if by_session && method != Method::GET && !from_the_page(&req) {
        return Answer::Full(answer(
            StatusCode::FORBIDDEN,
            json!({"error": "an action needs the dashboard's own request (x-rallypoint-admin, same origin)"}),
        ));
    }
    admin.sweep(&config, now);
    let rest = path[API.len()..].to_string();
    let parts: Vec<&str> = rest.split('/').collect();
    let result = match (method, parts.as_slice()) {
        (Method::GET, ["state"]) => {
            let bps = admin.history.samples().last().map_or(0, |s| s.relay_bps);
            let state = dashboard::state(&config, &admin, &*view, bps).await;
            Ok(answer(StatusCode::OK, state))
        }
        (Method::GET, ["events"]) => {
            let mut r = Response::new(());
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Answer::Events(r, dashboard::events(config, admin, view));
        }
        (Method::POST, ["lobbies", code, "close"]) => {
            let closed = view.signal().close_lobby(code).await;
            if closed {
                log::info!("admin: lobby {code} closed by the operator");
            }
            Ok(dashboard::done(
                closed,
                json!({"closed": code}),
                "no such lobby on this node",
            ))
        }
        (Method::POST, ["lobbies", code, "players", id, "remove"]) => {
            let removed = match id.parse::<u32>() {
                Ok(id) => view.signal().remove_player(code, id).await,
                Err(_) => false,
            };
            Ok(dashboard::done(
                removed,
                json!({"removed": id, "lobby": code}),
                "no such player in that lobby",
            ))
        }
        (Method::POST, ["releases", id, "rollback"]) => {
            let (root, id) = (config.web.root.clone(), id.to_string());
            let switched =
                tokio::task::spawn_blocking(move || crate::deploy::rollback(&root, Some(&id)))
                    .await
                    .expect("a rollback does not panic");
            match switched {
                Ok(s) => {
                    log::info!("admin: rolled back to release {} by the operator", s.id);
                    Ok(answer(
                        StatusCode::OK,
                        json!({"live": s.id, "previous": s.previous}),
                    ))
                }
                Err(e) => Ok(answer(
                    StatusCode::CONFLICT,
                    json!({"error": e.to_string()}),
                )),
            }
        }
        (Method::POST, ["publish"]) => publish_api::start(&config, &admin, req, now).await,
        (Method::GET, ["publish", id]) => publish_api::status(&admin, id),
        (Method::DELETE, ["publish", id]) => publish_api::cancel(&admin, id),
        (Method::PUT, ["publish", id, "blobs", sha]) => {
            publish_api::upload(&admin, id, sha, req).await
        }
        (Method::POST, ["publish", id, "commit"]) => {
            publish_api::commit(&config, &admin, id, req, transport.tls).await
        }
        _ => Ok(answer(
            StatusCode::NOT_FOUND,
            json!({"error": "no such API"}),
        )),
    };
    Answer::Full(result.unwrap_or_else(publish_api::error))
}

fn cookies(req: &Request<Incoming>) -> Option<&str> {
    req.headers().get(header::COOKIE)?.to_str().ok()
}

/// Whether a request carries the page's own header and, when the browser names its origin,
/// comes from this site: a page elsewhere can send neither without this server's consent.
fn from_the_page(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    let marked = h.get("x-rallypoint-admin").is_some_and(|v| v == "1");
    let origin = h.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    let same = match (origin, host) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, h)| h == host),
        (Some(_), None) => false,
    };
    marked && same
}

/// The login form: a token opens a session (its cookie), as a Bearer token would let in.
async fn login(
    config: &Config,
    admin: &Admin,
    transport: &Transport,
    req: Request<Incoming>,
    now: Instant,
) -> Response<Bytes> {
    if !from_the_page(&req) {
        return answer(
            StatusCode::FORBIDDEN,
            json!({"error": "log in from the dashboard's page"}),
        );
    }
    let body = match Limited::new(req.into_body(), 4096).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "a login form is small"}),
            );
        }
    };
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    if let Err(denied) = admin.auth.check(
        &config.admin,
        transport,
        Given::Token(token.as_deref()),
        now,
    ) {
        return refusal(denied);
    }
    let id = admin.sessions.open(now);
    let mut r = answer(StatusCode::OK, json!({"logged_in": true}));
    let cookie = sessions::set_cookie(Some(&id), transport.tls);
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("ascii"),
    );
    r
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn refusal(denied: Denied) -> Response<Bytes> {
    let (status, why) = match denied {
        Denied::NoTokens => (
            StatusCode::FORBIDDEN,
            "this server takes no operator requests: set admin.tokens".to_string(),
        ),
        Denied::PlainHttp => (
            StatusCode::FORBIDDEN,
            "over HTTPS only (or plain HTTP from this machine's loopback): a token must not \
             cross the network in clear"
                .to_string(),
        ),
        Denied::NoToken => (
            StatusCode::UNAUTHORIZED,
            "no token: send Authorization: Bearer TOKEN (one of admin.tokens)".to_string(),
        ),
        Denied::WrongToken => (
            StatusCode::UNAUTHORIZED,
            "wrong token (not one of admin.tokens)".to_string(),
        ),
        Denied::TooMany(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many wrong tokens from this address (admin.failed_tokens_per_minute); try \
                 again in {} s",
                wait.as_secs().max(1)
            ),
        ),
    };
    let mut r = answer(status, json!({"error": why}));
    if let Denied::TooMany(wait) = denied {
        let secs = wait.as_secs().max(1).to_string();
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&secs).expect("digits"),
        );
    }
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A publish silent for `admin.publish_idle_timeout` is abandoned and its files removed, and
    /// not a moment before; files no publish owns (left by a crash) go at the first sweep.
    #[test]
    fn a_silent_publish_is_abandoned_after_the_idle_timeout() {
        let base = std::env::temp_dir().join(format!("rallypoint-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let mut config = Config::default();
        config.web.root = base.join("www");
        let releases = base.join("www.releases");
        std::fs::create_dir_all(releases.join(".publish-left-by-a-crash")).unwrap();
        let start = Instant::now();
        let manifest: publish::Manifest = serde_json::from_value(json!({"files": [
            {"path": "index.html", "size": 3, "sha256": "a".repeat(64)}
        ]}))
        .unwrap();
        let session = Session::start(
            &config.web.root,
            "abc".into(),
            manifest,
            0,
            &mut HashCache::default(),
            start,
        )
        .unwrap();
        let admin = Admin::new([1; 32]);
        admin.publishing.lock().unwrap().session = Some(session);
        let idle = config.admin.publish_idle_timeout.0;
        let staging = || {
            let mut names: Vec<String> = std::fs::read_dir(&releases)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        admin.sweep(&config, start + idle);
        assert!(admin.publishing.lock().unwrap().session.is_some());
        assert_eq!(
            staging(),
            [".publish-abc"],
            "the stray is gone, the live one kept"
        );
        admin.sweep(&config, start + idle + std::time::Duration::from_millis(1));
        assert!(admin.publishing.lock().unwrap().session.is_none());
        assert!(staging().is_empty());
        let _ = std::fs::remove_dir_all(&base);
    }
}
