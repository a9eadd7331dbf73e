//! `rallypoint publish DIR --server URL --token TOKEN`: puts a Godot web export live on a
//! running rallypoint over its operator API (docs/publish.md), sending only the contents the
//! server does not already have, resuming an upload that broke off, and printing progress
//! (bytes, rate, time left) and the live URL at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::admin::publish::{Entry, MAX_FILES, sha256_file};

/// Tries of one content's upload before giving up (each resumes where the last stopped).
const TRIES: usize = 5;
const CHUNK: usize = 256 * 1024;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;
type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Why a publish failed; `Display` is what the command prints.
#[derive(Debug)]
pub enum PublishFailed {
    /// The folder cannot be read or listed.
    Local(String),
    /// The server could not be reached, or stopped answering.
    Network(String),
    /// The server refused, with its reason.
    Refused(StatusCode, String),
}

impl std::fmt::Display for PublishFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishFailed::Local(why) => f.write_str(why),
            PublishFailed::Network(why) => write!(f, "cannot reach the server: {why}"),
            PublishFailed::Refused(status, why) => {
                write!(f, "the server refused ({}): {why}", status.as_u16())
            }
        }
    }
}

/// How far a publish is.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// Bytes sent so far, of those to send.
    Sent(u64, u64),
    /// All sent: the server checks, precompresses and switches.
    Committing,
}

/// What a publish did.
pub struct Published {
    pub url: String,
    pub release: String,
    /// Bytes sent, of the export's.
    pub sent: u64,
    pub total: u64,
}

#[derive(Deserialize)]
struct Started {
    id: String,
    missing: Vec<Missing>,
    bytes_total: u64,
}

#[derive(Deserialize)]
struct Missing {
    sha256: String,
    size: u64,
    received: u64,
}

/// Publishes `dir` to `server` (its base URL) with `token`; `progress` is told (bytes sent so
/// far, bytes to send) as it goes.
pub async fn publish(
    dir: &Path,
    server: &str,
    token: &str,
    fast: bool,
    progress: Arc<dyn Fn(Progress) + Send + Sync>,
) -> Result<Published, PublishFailed> {
    let base = base_url(server)?;
    let api = format!("{base}_rallypoint/admin/api/publish");
    let dir = dir.to_path_buf();
    let files = tokio::task::spawn_blocking(move || manifest(&dir))
        .await
        .expect("hashing does not panic")?;
    let client = client()?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        PublishFailed::Local("the token has characters a header cannot carry".into())
    })?;
    let call = |method: Method, uri: String, body: Body| {
        let mut req = Request::builder().method(method).uri(uri);
        req.headers_mut()
            .expect("valid request")
            .insert(AUTHORIZATION, auth.clone());
        req.body(body).expect("valid request")
    };
    let entries: Vec<&Entry> = files.iter().map(|(e, _)| e).collect();
    let manifest = json!({ "files": entries }).to_string();
    let started: Started = send(&client, call(Method::POST, api.clone(), full(manifest))).await?;
    let to_send: u64 = started.missing.iter().map(|m| m.size).sum();
    let mut sent = 0u64;
    progress(Progress::Sent(0, to_send));
    for missing in &started.missing {
        let (_, path) = files
            .iter()
            .find(|(e, _)| e.sha256 == missing.sha256)
            .ok_or_else(|| {
                PublishFailed::Local("the server asked for a content not sent".into())
            })?;
        let blob = format!("{api}/{}/blobs/{}", started.id, missing.sha256);
        let mut offset = missing.received;
        let before = sent;
        for attempt in 1..=TRIES {
            let told = progress.clone();
            let from = before + offset;
            let body = file_body(path, offset, missing.size, move |n| {
                told(Progress::Sent(from + n, to_send))
            })
            .await?;
            let uri = format!("{blob}?offset={offset}");
            match send::<Value>(&client, call(Method::PUT, uri, body)).await {
                Ok(_) => break,
                Err(e @ PublishFailed::Refused(..)) => return Err(e),
                Err(e) if attempt == TRIES => return Err(e),
                // Broken off: ask the server how far it got, and go on from there.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(500 * attempt as u64)).await;
                    let status: Value = send(
                        &client,
                        call(Method::GET, format!("{api}/{}", started.id), empty()),
                    )
                    .await?;
                    offset = status["missing"]
                        .as_array()
                        .and_then(|m| m.iter().find(|m| m["sha256"] == missing.sha256.as_str()))
                        .map_or(missing.size, |m| m["received"].as_u64().unwrap_or(0));
                }
            }
        }
        sent = before + missing.size;
        progress(Progress::Sent(sent, to_send));
    }
    progress(Progress::Committing);
    let options = json!({ "fast": fast }).to_string();
    let done: Value = send(
        &client,
        call(
            Method::POST,
            format!("{api}/{}/commit", started.id),
            full(options),
        ),
    )
    .await?;
    Ok(Published {
        url: done["url"].as_str().unwrap_or(&base).to_string(),
        release: done["release"].as_str().unwrap_or("").to_string(),
        sent: sent - started.missing.iter().map(|m| m.received).sum::<u64>(),
        total: started.bytes_total,
    })
}

/// `server` as a base URL ending in `/`, refused when it would carry the token in clear to
/// another machine.
fn base_url(server: &str) -> Result<String, PublishFailed> {
    let uri: Uri = server
        .parse()
        .map_err(|_| PublishFailed::Local(format!("--server {server:?} is not a URL")))?;
    let host = uri.host().unwrap_or("");
    let local = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if local => {}
        Some("http") => {
            return Err(PublishFailed::Local(format!(
                "refusing to send the token in clear to {host}: use https:// (plain http:// \
                 only to this machine)"
            )));
        }
        _ => {
            return Err(PublishFailed::Local(format!(
                "--server {server:?}: an http:// or https:// URL, like https://game.example.org"
            )));
        }
    }
    Ok(format!("{}/", server.trim_end_matches('/')))
}

/// The export's files (not hidden ones) with their SHA-256, and where each is.
fn manifest(dir: &Path) -> Result<Vec<(Entry, PathBuf)>, PublishFailed> {
    let local = |e: std::io::Error| PublishFailed::Local(format!("{}: {e}", dir.display()));
    let mut out = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(local)? {
            let entry = entry.map_err(local)?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type().map_err(local)?;
            if kind.is_dir() {
                folders.push(path);
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(local)?;
            let relative = path.strip_prefix(dir).expect("under dir");
            let name = relative
                .to_str()
                .ok_or_else(|| PublishFailed::Local(format!("{}: not UTF-8", path.display())))?;
            out.push((
                Entry {
                    path: name.to_string(),
                    size: meta.len(),
                    sha256: sha256_file(&path).map_err(local)?,
                },
                path,
            ));
        }
        if out.len() > MAX_FILES {
            return Err(PublishFailed::Local(format!(
                "{}: more than {MAX_FILES} files",
                dir.display()
            )));
        }
    }
    if out.is_empty() {
        return Err(PublishFailed::Local(format!("{}: no files", dir.display())));
    }
    out.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    Ok(out)
}

fn client() -> Result<Client<Https, Body>, PublishFailed> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| PublishFailed::Local(format!("no TLS root certificates: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    full(String::new())
}

/// `path` from `offset` to its end (`size`), streamed; `sent` is told how many bytes of it
/// have gone so far.
async fn file_body(
    path: &Path,
    offset: u64,
    size: u64,
    sent: impl Fn(u64) + Send + Sync + 'static,
) -> Result<Body, PublishFailed> {
    let local = |e: std::io::Error| PublishFailed::Local(format!("{}: {e}", path.display()));
    let mut file = tokio::fs::File::open(path).await.map_err(local)?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(local)?;
    let left = size - offset;
    let sent = std::sync::Arc::new(sent);
    let stream = futures_util::stream::unfold((file, 0u64), move |(mut file, read)| {
        let sent = sent.clone();
        async move {
            if read >= left {
                return None;
            }
            let mut buf = vec![0u8; CHUNK.min((left - read) as usize)];
            match file.read_exact(&mut buf).await {
                Ok(_) => {
                    let read = read + buf.len() as u64;
                    sent(read);
                    Some((Ok(Frame::data(Bytes::from(buf))), (file, read)))
                }
                Err(e) => Some((Err(e), (file, left))),
            }
        }
    });
    Ok(StreamBody::new(stream.boxed()).boxed_unsync())
}

/// Sends `req` and reads a JSON answer, or the server's reason.
async fn send<T: for<'de> Deserialize<'de>>(
    client: &Client<Https, Body>,
    req: Request<Body>,
) -> Result<T, PublishFailed> {
    let mut req = req;
    req.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let response = client
        .request(req)
        .await
        .map_err(|e| PublishFailed::Network(error_chain(&e)))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| PublishFailed::Network(e.to_string()))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !status.is_success() {
        let why = value["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        return Err(PublishFailed::Refused(status, why));
    }
    serde_json::from_value(value)
        .map_err(|e| PublishFailed::Network(format!("an answer this client cannot read: {e}")))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A progress line: bytes, rate, time left.
pub fn progress_line(sent: u64, total: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = sent as f64 / secs;
    let left = if rate > 0.0 && sent < total {
        format!(", {:.0} s left", (total - sent) as f64 / rate)
    } else {
        String::new()
    };
    format!(
        "publish: {:.1} of {:.1} MB sent, {:.1} MB/s{left}",
        sent as f64 / 1e6,
        total as f64 / 1e6,
        rate / 1e6
    )
}
