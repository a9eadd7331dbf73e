//! The publish API's requests (docs/publish.md): start with a manifest, upload contents
//! (resumable by offset), see how far it is, cancel, commit.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::publish::{self, Manifest, PublishError, Session};
use super::{Admin, answer};
use crate::config::Config;
use crate::deploy::Effort;

/// A manifest's JSON at most.
const MAX_MANIFEST: usize = 4 << 20;

pub(super) async fn start(
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

pub(super) fn status(admin: &Admin, id: &str) -> Result<Response<Bytes>, PublishError> {
    with_session(admin, id, |s| Ok(answer(StatusCode::OK, describe(s))))
}

pub(super) fn cancel(admin: &Admin, id: &str) -> Result<Response<Bytes>, PublishError> {
    let mut p = admin.publishing.lock().unwrap();
    let session = p
        .session
        .take_if(|s| s.id == id)
        .ok_or(PublishError::Unknown)?;
    session.discard();
    log::info!("admin: publish {id} cancelled by the client");
    Ok(answer(StatusCode::OK, json!({"cancelled": id})))
}

pub(super) async fn upload(
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

pub(super) async fn commit(
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

/// A publish refusal as an answer.
pub(super) fn error(e: PublishError) -> Response<Bytes> {
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
