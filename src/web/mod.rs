//! The HTTP side: serves the game's HTML5 export from `web.root` (or a built-in page saying
//! rallypoint runs), the signalling WebSocket on `signal.path`, TURN credentials at `/api/ice`,
//! `/healthz` and `/metrics`. HTTP/1.1 on `web.listen`; HTTP/1.1 and HTTP/2 over TLS on
//! `web.tls_listen`, where plain HTTP then redirects.

mod compress;
mod file_cache;
mod files;
mod isolation;
mod negotiate;
mod selftest;
mod static_files;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::acme::Acme;
use crate::config::Config;
use crate::signal::{Signal, handshake};
use crate::tls::{ACME_TLS_ALPN, Certificates, HANDSHAKE_TIMEOUT};
use crate::{credentials, metrics, turn};
pub use compress::CompressionCache;
pub use file_cache::FileCache;
use files::Refused;
use isolation::Isolation;

const WELCOME: &str = include_str!("welcome.html");

/// Requests that carry a body larger than this are refused: nothing here takes uploads.
const MAX_REQUEST_BODY: u64 = 64 * 1024;
/// The ACME HTTP-01 challenge path, answered over plain HTTP without a redirect.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

pub type Body = BoxBody<Bytes, std::io::Error>;

/// What the web server hands requests to besides files.
pub struct Routes {
    pub signal: Arc<Signal>,
    pub metrics: Registry,
    pub turn: turn::Stats,
    /// The TURN listeners as bound, for the URLs `/api/ice` hands out.
    pub turn_addresses: credentials::TurnAddresses,
    /// The first HTTPS listener's port as bound: plain HTTP redirects there when set.
    pub https_port: Option<u16>,
    pub certificates: Arc<Certificates>,
    pub acme: Arc<Acme>,
    pub isolation: Isolation,
    pub files: FileCache,
    pub compression: CompressionCache,
}

/// A connection's listener kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// Serves HTTP on `plain` and HTTPS on `tls` until `shutdown` turns true, then lets open
/// requests finish.
pub async fn serve(
    plain: Vec<TcpListener>,
    tls: Vec<TcpListener>,
    config: watch::Receiver<Arc<Config>>,
    routes: Arc<Routes>,
    shutdown: CancellationToken,
) {
    let settings = config.borrow().web.clone();
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        // Also closes keep-alive connections idle for this long between requests.
        .header_read_timeout(settings.header_timeout.0);
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(128);
    let slots = Arc::new(Semaphore::new(settings.max_connections as usize));
    let acceptor = tokio_rustls::TlsAcceptor::from(routes.certificates.server_config(&[
        b"h2",
        b"http/1.1",
        ACME_TLS_ALPN,
    ]));
    let graceful = GracefulShutdown::new();
    let (conn_tx, mut conn_rx) = mpsc::channel::<(TcpStream, SocketAddr, Scheme)>(64);
    for (listener, scheme) in plain
        .into_iter()
        .map(|l| (l, Scheme::Http))
        .chain(tls.into_iter().map(|l| (l, Scheme::Https)))
    {
        tokio::spawn(accept(listener, scheme, conn_tx.clone()));
    }
    drop(conn_tx);
    loop {
        tokio::select! {
            Some((stream, remote, scheme)) = conn_rx.recv() => {
                // Over the cap, the connection is closed at once rather than queued.
                let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                let service = {
                    let (config, routes) = (config.clone(), routes.clone());
                    hyper::service::service_fn(move |req| {
                        let (config, routes) = (config.borrow().clone(), routes.clone());
                        async move { Ok::<_, Infallible>(handle(&config, &routes, remote, scheme, req).await) }
                    })
                };
                let watcher = graceful.watcher();
                let (http, acceptor) = (http.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    let result = match scheme {
                        Scheme::Http => watcher.watch(http.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned()).await,
                        // The handshake runs here, in the connection's task, under a timeout.
                        Scheme::Https => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            // A CA checking TLS-ALPN-01 only looks at the certificate.
                            Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => return,
                            Ok(Ok(tls)) => watcher.watch(http.serve_connection_with_upgrades(TokioIo::new(tls), service).into_owned()).await,
                            _ => return,
                        },
                    };
                    if let Err(e) = result {
                        log::debug!("web: connection ended: {e}");
                    }
                });
            }
            _ = shutdown.cancelled() => break,
        }
    }
    drop(conn_rx);
    graceful.shutdown().await;
}

async fn accept(
    listener: TcpListener,
    scheme: Scheme,
    conns: mpsc::Sender<(TcpStream, SocketAddr, Scheme)>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                // Headers and body go out in separate writes; Nagle would hold the second back
                // until the client's delayed ACK, some 40 ms per response.
                let _ = stream.set_nodelay(true);
                if conns.send((stream, remote, scheme)).await.is_err() {
                    return;
                }
            }
            // Out of descriptors, or a connection reset before accept: keep serving.
            Err(e) => {
                log::warn!("web: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(
    config: &Config,
    routes: &Routes,
    remote: SocketAddr,
    scheme: Scheme,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let response = route(config, routes, remote, scheme, &mut req).await;
    let status = response.status().as_u16();
    log::debug!("{} {} {status}", req.method(), req.uri().path());
    response
}

async fn route(
    config: &Config,
    routes: &Routes,
    remote: SocketAddr,
    scheme: Scheme,
    req: &mut Request<Incoming>,
) -> Response<Body> {
    if let Err(why) = well_framed(req) {
        let mut r = plain(StatusCode::BAD_REQUEST, why);
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let path = req.uri().path().to_string();
    // Served on both schemes: the CA follows redirects, but need not.
    if let Some(token) = path.strip_prefix(ACME_CHALLENGE) {
        return match routes.acme.http01(token) {
            Some(answer) => page(StatusCode::OK, "text/plain", answer.into()),
            None => plain(StatusCode::NOT_FOUND, "no such ACME challenge\n"),
        };
    }
    let redirect = routes.https_port.filter(|_| scheme == Scheme::Http);
    if let Some(port) = redirect {
        return redirect_to_https(config, port, req);
    }
    let declared_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_body.is_some_and(|n| n > MAX_REQUEST_BODY) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    if path == config.signal.path {
        return upgrade(config, &routes.signal, req);
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if let Some(response) = selftest::route(config, routes, &path) {
        return response;
    }
    match path.as_str() {
        "/api/ice" => ice(config, &routes.turn_addresses, req),
        "/healthz" => health(routes),
        "/metrics" => {
            let ip = remote.ip().to_canonical();
            if config.web.metrics_allow.iter().any(|net| net.contains(&ip)) {
                let text = metrics::render(&routes.metrics);
                page(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text.into(),
                )
            } else {
                plain(
                    StatusCode::FORBIDDEN,
                    "metrics are not served to this address (web.metrics_allow)\n",
                )
            }
        }
        _ => files(config, routes, req, &path).await,
    }
}

async fn files(
    config: &Config,
    routes: &Routes,
    req: &Request<Incoming>,
    path: &str,
) -> Response<Body> {
    if !config.web.root.is_dir() && path == "/" {
        return page(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(WELCOME.as_bytes()),
        );
    }
    match routes.files.lookup(&config.web.root, path).await {
        Ok(resolved) => {
            static_files::serve(
                req.method(),
                req.headers(),
                &resolved,
                config.web.cross_origin_isolation,
                &routes.isolation,
                &routes.compression,
            )
            .await
        }
        Err(Refused::Malformed) => plain(StatusCode::BAD_REQUEST, "bad path\n"),
        Err(Refused::NotFound) => plain(StatusCode::NOT_FOUND, "not found\n"),
        Err(Refused::Directory) => add_slash(req),
    }
}

/// 308 from a directory named without its slash to the same path with one, query kept.
fn add_slash(req: &Request<Incoming>) -> Response<Body> {
    // One leading slash only: "//host" in Location would send the browser to another site.
    let path = format!("/{}/", req.uri().path().trim_start_matches('/'));
    match req.uri().query() {
        Some(query) => redirect(&format!("{path}?{query}")),
        None => redirect(&path),
    }
}

/// A permanent redirect (308 keeps the method) to `location`.
fn redirect(location: &str) -> Response<Body> {
    let mut r = plain(StatusCode::PERMANENT_REDIRECT, "");
    match HeaderValue::from_str(location) {
        Ok(v) => drop(r.headers_mut().insert(header::LOCATION, v)),
        Err(_) => *r.status_mut() = StatusCode::BAD_REQUEST,
    }
    r
}

/// What RFC 9112 §3.2 says a server must refuse and hyper lets through: an HTTP/1.1 request
/// without exactly one Host header. (hyper itself refuses the other framing errors, and for a
/// request with both Content-Length and Transfer-Encoding lets the latter win and closes the
/// connection after the answer, as §6.3 asks, so nothing smuggled behind it is read.)
fn well_framed(req: &Request<Incoming>) -> Result<(), &'static str> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if req.version() == hyper::Version::HTTP_11 && hosts != 1 {
        return Err("an HTTP/1.1 request needs exactly one Host header\n");
    }
    Ok(())
}

/// 308 to the same path and query on the first HTTPS listener.
fn redirect_to_https(config: &Config, port: u16, req: &Request<Incoming>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
                .map_or(h, |(n, _)| n)
        })
        .map(str::to_string)
        .or_else(|| config.server.domain.clone())
        .unwrap_or_else(|| "localhost".into());
    let authority = if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    };
    redirect(&format!(
        "https://{authority}{}",
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    ))
}

/// Hands a WebSocket upgrade on `signal.path` to the signalling hub.
fn upgrade(config: &Config, signal: &Signal, req: &mut Request<Incoming>) -> Response<Body> {
    match handshake::accept(req.method(), req.headers(), config) {
        Ok(accept) => {
            signal.spawn_session(hyper::upgrade::on(req));
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::UPGRADE, "websocket")
                .header(header::CONNECTION, "Upgrade")
                .header(header::SEC_WEBSOCKET_ACCEPT, accept)
                .body(full(Bytes::new()))
                .expect("valid response")
        }
        Err(refused) => plain(refused.status, refused.message),
    }
}

/// A fresh TURN REST credential and the URLs of every TURN listener, as `RTCPeerConnection`
/// and Godot's `WebRTCPeerConnection.initialize()` take them.
fn ice(
    config: &Config,
    at: &credentials::TurnAddresses,
    req: &Request<Incoming>,
) -> Response<Body> {
    let Some(secret) = config.turn.secrets.first() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no turn.secrets configured: /api/ice mints credentials with one\n",
        );
    };
    let credential = credentials::mint(secret, "", config.turn.credential_ttl.0, SystemTime::now());
    let body = credentials::ice_servers(config, at, &credential).to_string();
    let mut response = page(StatusCode::OK, "application/json", body.into());
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|o| o.to_str().ok());
    if let Some(origin) = origin.filter(|o| handshake::origin_allowed(o, host, config)) {
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
    }
    response
}

fn health(routes: &Routes) -> Response<Body> {
    let m = routes.signal.metrics();
    let mut web = serde_json::json!({"status": "ok", "tls": routes.certificates.is_loaded()});
    if let Some(acme) = routes.acme.health() {
        web["acme"] = acme;
    }
    // Still 200: everything serves; a monitor reads "degraded" and `web.acme.error`.
    let failing = routes.acme.failing();
    if failing {
        web["status"] = "degraded".into();
    }
    let body = serde_json::json!({
        "status": if failing { "degraded" } else { "ok" },
        "web": web,
        "signal": {"status": "ok", "peers": m.peers.get(), "lobbies": m.lobbies.get()},
        "turn": {"status": "ok", "allocations": routes.turn.allocations()},
    });
    let mut r = page(StatusCode::OK, "application/json", body.to_string().into());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn page(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(full(body))
        .expect("valid response")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    page(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}
