//! The operator's API under `/_rallypoint/admin/api/`, behind `admin.tokens` ([`auth`]):
//! publishing a release over HTTP ([`publish`]; docs/publish.md has the wire), which
//! `rallypoint publish` and the Godot editor plugin use.
//!
//! A publish: POST the manifest; PUT each content the server lacks (resumable from the offset
//! it says it has); POST commit, which runs `deploy`'s checks and switch. One publish at a time:
//! a second gets 409 with a reason until the first is committed, cancelled or silent for
//! `admin.publish_idle_timeout` (then its files are removed).

pub mod auth;
mod metrics;
pub mod publish;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::config::Config;
use crate::deploy::Effort;
use auth::{Auth, Denied, Transport};
pub use metrics::register as register_metrics;
use publish::{HashCache, Manifest, PublishError, Session};

/// Where the API lives.
pub const API: &str = "/_rallypoint/admin/api/";
/// A manifest's JSON at most.
const MAX_MANIFEST: usize = 4 << 20;

pub struct Admin {
    auth: Auth,
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
            publishing: Mutex::default(),
            hashes: Mutex::default(),
            received: AtomicU64::new(0),
        }
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

/// Answers a request under [`API`].
pub async fn handle(
    config: &Config,
    admin: &Admin,
    transport: Transport,
    req: Request<Incoming>,
) -> Response<Bytes> {
    let now = Instant::now();
    if let Err(denied) = admin
        .auth
        .check(&config.admin, &transport, req.headers(), now)
    {
        return refusal(denied);
    }
    admin.sweep(config, now);
    let path = req.uri().path()[API.len()..].to_string();
    let parts: Vec<&str> = path.split('/').collect();
    let method = req.method().clone();
    let result = match (method.clone(), parts.as_slice()) {
        (Method::POST, ["publish"]) => start(config, admin, req, now).await,
        (Method::GET, ["publish", id]) => status(admin, id, now),
        (Method::DELETE, ["publish", id]) => cancel(admin, id),
        (Method::PUT, ["publish", id, "blobs", sha]) => upload(admin, id, sha, req).await,
        (Method::POST, ["publish", id, "commit"]) => {
            commit(config, admin, id, req, transport.tls).await
        }
        (_, ["publish", ..]) => {
            return answer(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method not allowed"}),
            );
        }
        _ => return answer(StatusCode::NOT_FOUND, json!({"error": "no such API"})),
    };
    match result {
        Ok(response) => response,
        Err(e) => error(e),
    }
}

async fn start(
    config: &Config,
    admin: &Admin,
    req: Request<Incoming>,
    now: Instant,
) -> Result<Response<Bytes>, PublishError> {
    let body = Limited::new(req.into_body(), MAX_MANIFEST)
        .collect()
        .await
        .map_err(|e| PublishError::Invalid(format!("the manifest could not be read: {e}")))?
        .to_bytes();
    let manifest: Manifest =
        serde_json::from_slice(&body).map_err(|e| PublishError::Invalid(e.to_string()))?;
    {
        let p = admin.publishing.lock().unwrap();
        let busy = p.committing.or(p.session.as_ref().map(|s| s.started));
        if let Some(since) = busy {
            return Err(PublishError::Busy(now.duration_since(since).as_secs()));
        }
    }
    let id = crate::random::secret()[..16].to_string();
    let root = config.web.root.clone();
    let max = config.admin.max_release_size.0;
    let hashes = std::mem::take(&mut *admin.hashes.lock().unwrap());
    let (session, hashes) = blocking(move || {
        let mut hashes = hashes;
        let session = Session::start(&root, id, manifest, max, &mut hashes, now);
        (session, hashes)
    })
    .await;
    *admin.hashes.lock().unwrap() = hashes;
    let session = session?;
    let mut p = admin.publishing.lock().unwrap();
    if p.session.is_some() || p.committing.is_some() {
        // Another one started meanwhile.
        session.discard();
        return Err(PublishError::Busy(0));
    }
    let body = describe(&session);
    log::info!(
        "admin: publish {} started: {} byte(s) to receive of {}",
        session.id,
        body["bytes_missing"],
        body["bytes_total"]
    );
    p.session = Some(session);
    Ok(answer(StatusCode::CREATED, body))
}

fn describe(session: &Session) -> serde_json::Value {
    let (total, missing) = session.bytes();
    json!({
        "id": session.id,
        "missing": session.missing(),
        "bytes_total": total,
        "bytes_missing": missing,
    })
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking publish work does not panic")
}

fn status(admin: &Admin, id: &str, now: Instant) -> Result<Response<Bytes>, PublishError> {
    let mut p = admin.publishing.lock().unwrap();
    let session = p
        .session
        .as_mut()
        .filter(|s| s.id == id)
        .ok_or(PublishError::Unknown)?;
    session.touched = now;
    Ok(answer(StatusCode::OK, describe(session)))
}

fn cancel(admin: &Admin, id: &str) -> Result<Response<Bytes>, PublishError> {
    let mut p = admin.publishing.lock().unwrap();
    let session = p
        .session
        .take_if(|s| s.id == id)
        .ok_or(PublishError::Unknown)?;
    session.discard();
    log::info!("admin: publish {id} cancelled by the client");
    Ok(answer(StatusCode::OK, json!({"cancelled": id})))
}

async fn upload(
    admin: &Admin,
    id: &str,
    sha: &str,
    req: Request<Incoming>,
) -> Result<Response<Bytes>, PublishError> {
    let offset = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("offset=")))
        .map_or(Ok(0), str::parse::<u64>)
        .map_err(|_| PublishError::Invalid("offset is a number of bytes".into()))?;
    let (path, room) = with_session(admin, id, |s| s.begin_upload(sha, offset))?;
    let written = receive(admin, &path, room, req.into_body()).await;
    let added = *written.as_ref().unwrap_or_else(|(n, _)| n);
    with_session(admin, id, |s| {
        s.uploaded(sha, added);
        Ok(())
    })?;
    if let Err((_, e)) = written {
        return Err(e);
    }
    if with_session(admin, id, |s| Ok(s.complete(sha)))? {
        let file = path.clone();
        let actual = blocking(move || publish::sha256_file(&file)).await;
        with_session(admin, id, |s| s.verified(sha, actual))?;
    }
    let received = with_session(admin, id, |s| Ok(s.received(sha)))?;
    Ok(answer(
        StatusCode::OK,
        json!({"sha256": sha, "received": received}),
    ))
}

/// Appends the body to `path`, at most `room` bytes; how many it wrote, also on failure.
async fn receive(
    admin: &Admin,
    path: &PathBuf,
    room: u64,
    mut body: Incoming,
) -> Result<u64, (u64, PublishError)> {
    let mut file = match tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
    {
        Ok(f) => f,
        Err(e) => return Err((0, PublishError::Io("cannot store the upload".into(), e))),
    };
    let mut written = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            // The client went away: what arrived is kept, to resume from.
            Err(e) => {
                let _ = file.flush().await;
                let why = std::io::Error::other(e);
                return Err((written, PublishError::Io("the upload stopped".into(), why)));
            }
        };
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        if written + chunk.len() as u64 > room {
            let _ = file.flush().await;
            return Err((written, PublishError::Overflow));
        }
        if let Err(e) = file.write_all(&chunk).await {
            return Err((
                written,
                PublishError::Io("cannot store the upload".into(), e),
            ));
        }
        written += chunk.len() as u64;
        admin
            .received
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    file.flush().await.map_err(|e| {
        (
            written,
            PublishError::Io("cannot store the upload".into(), e),
        )
    })?;
    Ok(written)
}

fn with_session<T>(
    admin: &Admin,
    id: &str,
    f: impl FnOnce(&mut Session) -> Result<T, PublishError>,
) -> Result<T, PublishError> {
    let mut p = admin.publishing.lock().unwrap();
    let session = p
        .session
        .as_mut()
        .filter(|s| s.id == id)
        .ok_or(PublishError::Unknown)?;
    session.touched = Instant::now();
    f(session)
}

async fn commit(
    config: &Config,
    admin: &Admin,
    id: &str,
    req: Request<Incoming>,
    tls: bool,
) -> Result<Response<Bytes>, PublishError> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let options = Limited::new(req.into_body(), 4096)
        .collect()
        .await
        .map_err(|e| PublishError::Invalid(format!("the commit could not be read: {e}")))?
        .to_bytes();
    let options: CommitOptions = if options.is_empty() {
        CommitOptions::default()
    } else {
        serde_json::from_slice(&options).map_err(|e| PublishError::Invalid(e.to_string()))?
    };
    let effort = if options.fast {
        Effort::Fast
    } else {
        Effort::Best
    };
    let session = {
        let mut p = admin.publishing.lock().unwrap();
        let s = p
            .session
            .as_ref()
            .filter(|s| s.id == id)
            .ok_or(PublishError::Unknown)?;
        if !s.missing().is_empty() {
            return Err(PublishError::Incomplete(s.missing().len()));
        }
        p.committing = Some(Instant::now());
        p.session.take().expect("checked above")
    };
    let root = config.web.root.clone();
    let max = config.admin.max_release_size.0;
    let (session, switched) = blocking(move || {
        let switched = session.commit(&root, max, effort);
        (session, switched)
    })
    .await;
    session.discard();
    admin.publishing.lock().unwrap().committing = None;
    let switched = switched?;
    log::info!(
        "admin: publish {id} is live as release {} ({} file(s) compressed, {} reused)",
        switched.id,
        switched.compressed,
        switched.reused
    );
    let scheme = if tls { "https" } else { "http" };
    Ok(answer(
        StatusCode::OK,
        json!({
            "release": switched.id,
            "previous": switched.previous,
            "compressed": switched.compressed,
            "reused": switched.reused,
            "url": format!("{scheme}://{host}/"),
        }),
    ))
}

/// What a commit may ask.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitOptions {
    /// Precompress quickly (as `deploy --fast`) rather than as small as possible.
    #[serde(default)]
    fast: bool,
}

/// A JSON answer; the web server sends the bytes.
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

fn error(e: PublishError) -> Response<Bytes> {
    let status = match &e {
        PublishError::Invalid(_) => StatusCode::BAD_REQUEST,
        PublishError::TooLarge(_) | PublishError::Overflow => StatusCode::PAYLOAD_TOO_LARGE,
        PublishError::Busy(_) | PublishError::WrongOffset(_) | PublishError::Incomplete(_) => {
            StatusCode::CONFLICT
        }
        PublishError::Unknown | PublishError::NotMissing => StatusCode::NOT_FOUND,
        PublishError::Corrupt | PublishError::Deploy(_) => StatusCode::UNPROCESSABLE_ENTITY,
        PublishError::Io(..) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut body = json!({"error": e.to_string()});
    if let PublishError::WrongOffset(at) = e {
        body["received"] = json!(at);
    }
    answer(status, body)
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
