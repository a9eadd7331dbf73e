//! Which handler answers a request: the operator's API, the ACME challenge, the HTTPS redirect,
//! the signalling upgrade, the self-test page, `/api/ice`, `/healthz`, `/metrics`, and files
//! from `web.root`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::file_cache::{FileCache, Resolved};
use super::ice_quota::IceQuota;
use super::isolation::Isolation;
use super::response::{Body, full, page, plain, redirect, redirect_now, streamed};
use super::safe_path::{self, NoFile};
use super::{CompressionCache, file_response, forwarded, ice, selftest};
use crate::turn::TurnAddresses;
use prometheus_client::registry::Registry;

use crate::acme::Acme;
use crate::admin::{self, Admin};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::conn_cap::ConnCap;
use crate::deploy::layout;
use crate::deploy::pages::Pages;
use crate::signal::handshake::{self, ExtensionAsk};
use crate::signal::{Client, Signal};
use crate::tls::Certificates;
use crate::{metrics, turn};

/// What the web server hands requests to besides files.
pub struct Routes {
    pub signal: Arc<Signal>,
    pub metrics: Registry,
    pub turn: turn::Status,
    /// This node's view of the cluster (`[cluster]`).
    pub cluster: Option<Arc<Cluster>>,
    /// The TURN listeners as bound, for the URLs `/api/ice` hands out.
    pub turn_addresses: TurnAddresses,
    /// The first HTTPS listener's port as bound: plain HTTP redirects there when set.
    pub https_port: Option<u16>,
    pub certificates: Arc<Certificates>,
    pub acme: Arc<Acme>,
    pub isolation: Isolation,
    pub file_cache: FileCache,
    /// `web.max_connections`.
    pub connections: Arc<ConnCap>,
    pub compression: Arc<CompressionCache>,
    pub ice_quota: Arc<IceQuota>,
    /// The operator's API (`admin.tokens`).
    pub admin: Arc<Admin>,
}

/// A connection's listener kind.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

const WELCOME: &str = include_str!("welcome.html");
/// Requests that carry a body larger than this are refused: nothing here takes uploads.
const MAX_REQUEST_BODY: u64 = 64 * 1024;
/// The ACME HTTP-01 challenge path, answered over plain HTTP without a redirect.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

pub async fn handle(
    config: &Arc<Config>,
    routes: &Arc<Routes>,
    remote: SocketAddr,
    scheme: Scheme,
    mut req: Request<Incoming>,
) -> Response<Body> {
    // The operator's side takes the whole request (uploads are large), and says itself what it
    // takes over plain HTTP.
    let path = req.uri().path();
    let operator = path == admin::PREFIX || path.starts_with("/_rallypoint/admin/");
    if operator && well_framed(&req).is_ok() {
        let origin = forwarded::origin(config, remote, req.headers());
        let transport = admin::auth::Transport {
            client: origin.client.ip(),
            tls: scheme == Scheme::Https,
            direct: origin.via == forwarded::Via::Direct,
        };
        let (method, path) = (req.method().clone(), path.to_string());
        let view: Arc<dyn admin::Operated> = routes.clone();
        let answer =
            admin::handle(config.clone(), routes.admin.clone(), view, transport, req).await;
        let response = match answer {
            admin::Answer::Full(r) => r.map(full),
            admin::Answer::Events(r, events) => r.map(|()| streamed(events)),
        };
        log::debug!(target: "rallypoint::web", "{method} {path} {}", response.status().as_u16());
        return response;
    }
    let response = route(config, routes, remote, scheme, &mut req).await;
    let status = response.status().as_u16();
    log::debug!(target: "rallypoint::web", "{} {} {status}", req.method(), req.uri().path());
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
    let origin = forwarded::origin(config, remote, req.headers());
    let remote = origin.client;
    // Served on both schemes: the CA follows redirects, but need not.
    if let Some(token) = path.strip_prefix(ACME_CHALLENGE) {
        return match routes.acme.http01(token) {
            Some(answer) => page(StatusCode::OK, "text/plain", answer.into()),
            None => plain(StatusCode::NOT_FOUND, "no such ACME challenge\n"),
        };
    }
    // A monitor need not follow redirects: health and metrics are answered on both schemes
    // (they carry no secret; `/metrics` keeps its `web.metrics_allow`).
    let monitored = matches!(path.as_str(), "/healthz" | "/metrics");
    let redirect = routes
        .https_port
        .filter(|_| scheme == Scheme::Http && !monitored);
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
        return upgrade(config, &routes.signal, remote, req);
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if let Some(response) = selftest::route(config, routes, req) {
        return response;
    }
    match path.as_str() {
        "/api/ice" => ice::answer(config, routes, remote.ip(), req).await,
        "/healthz" => health(routes),
        "/metrics" => {
            if origin.may_read_metrics(config) {
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
        _ => serve_file(config, routes, req, &path).await,
    }
}

async fn serve_file(
    config: &Config,
    routes: &Routes,
    req: &Request<Incoming>,
    path: &str,
) -> Response<Body> {
    if let Some(rest) = path.strip_prefix(layout::URL_PREFIX) {
        return serve_release(config, routes, req, rest).await;
    }
    if !config.web.root.is_dir() && path == "/" {
        return page(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(WELCOME.as_bytes()),
        );
    }
    match routes.file_cache.lookup(&config.web.root, path).await {
        Ok(resolved) => {
            // A page of a deployed export: the browser goes to its release, where every file
            // the page loads comes from that same export, whatever is deployed meanwhile.
            if is_page(&resolved)
                && let Some(live) = layout::current(&config.web.root)
            {
                return to_release(&live, path, req.uri().query());
            }
            respond(config, routes, req, &resolved).await
        }
        Err(NoFile::Malformed) => plain(StatusCode::BAD_REQUEST, "bad path\n"),
        // Not in hidden folders, whose contents are nobody's business.
        Err(NoFile::NotFound) if path.ends_with('/') && !path.contains("/.") => {
            folder_without_index(&config.web.root, path).await
        }
        Err(NoFile::NotFound) => plain(StatusCode::NOT_FOUND, "not found\n"),
        Err(NoFile::Directory) => add_slash(req),
        Err(NoFile::Slashed) => drop_slash(req),
    }
}

/// `/_release/<id>/<path>`: a file of one deployed release, the same bytes for as long as the
/// release is kept, so browsers may cache it for good; not a file changed after the deploy
/// stamped the release (copied into `web.root` by hand), which browsers revalidate. A removed
/// release's pages go to the live one.
async fn serve_release(
    config: &Config,
    routes: &Routes,
    req: &Request<Incoming>,
    rest: &str,
) -> Response<Body> {
    let Some((id, inside)) = rest.split_once('/') else {
        return add_slash(req);
    };
    let inside = format!("/{inside}");
    let Some(dir) = layout::release(&config.web.root, id) else {
        let page = inside.ends_with('/') || inside.ends_with(".html");
        return match layout::current(&config.web.root) {
            Some(live) if page => to_release(&live, &inside, req.uri().query()),
            _ => plain(StatusCode::NOT_FOUND, "this release is no longer served\n"),
        };
    };
    match routes.file_cache.lookup(&dir, &inside).await {
        Ok(resolved) => {
            let mut r = respond(config, routes, req, &resolved).await;
            let deployed = layout::released_at(&dir).is_none_or(|at| resolved.modified <= at);
            if r.status().is_success() || r.status() == StatusCode::NOT_MODIFIED {
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(match deployed {
                        true => "public, max-age=31536000, immutable",
                        false => "no-cache",
                    }),
                );
            }
            r
        }
        Err(NoFile::Malformed) => plain(StatusCode::BAD_REQUEST, "bad path\n"),
        Err(NoFile::NotFound) => plain(StatusCode::NOT_FOUND, "not found\n"),
        Err(NoFile::Directory) => add_slash(req),
        Err(NoFile::Slashed) => drop_slash(req),
    }
}

/// The file's response, as `req` asks for it.
async fn respond(
    config: &Config,
    routes: &Routes,
    req: &Request<Incoming>,
    resolved: &Resolved,
) -> Response<Body> {
    file_response::serve(
        req.method(),
        req.headers(),
        resolved,
        config.web.cross_origin_isolation,
        &routes.isolation,
        &routes.compression,
    )
    .await
}

/// Whether a file is an HTML page (what a player opens, not what a page loads).
fn is_page(resolved: &Resolved) -> bool {
    resolved
        .file
        .path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
}

/// 302 from `path` to the same path in release `id`, query kept.
fn to_release(id: &str, path: &str, query: Option<&str>) -> Response<Body> {
    let prefix = layout::URL_PREFIX.trim_end_matches('/');
    match query {
        Some(query) => redirect_now(&format!("{prefix}/{id}{path}?{query}")),
        None => redirect_now(&format!("{prefix}/{id}{path}")),
    }
}

/// A folder without `index.html`: still 404, but when it holds a Godot page under another name
/// (Godot names it after the project), or an export one folder down, the answer says so.
async fn folder_without_index(root: &Path, path: &str) -> Response<Body> {
    let (root, path_owned) = (root.to_path_buf(), path.to_string());
    let pages = tokio::task::spawn_blocking(move || {
        safe_path::folder(&root, &path_owned).and_then(|dir| Pages::of(&dir).ok())
    })
    .await;
    let hint = match pages {
        Ok(Some(pages)) if !pages.others.is_empty() => {
            let links: Vec<String> = pages.others.iter().map(|p| format!("{path}{p}")).collect();
            format!(
                "Godot names the exported page after the project: rename {} to index.html, or \
                 open {}",
                pages.others[0],
                links.join(" or ")
            )
        }
        Ok(Some(pages)) if !pages.below.is_empty() => {
            let links: Vec<String> = pages.below.iter().map(|f| format!("{path}{f}/")).collect();
            format!("the game is one folder down: open {}", links.join(" or "))
        }
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    page(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        format!("not found: this folder has no index.html. {hint}\n").into(),
    )
}

/// 308 from a directory named without its slash to the same path with one, query kept.
fn add_slash(req: &Request<Incoming>) -> Response<Body> {
    // One leading slash only: "//host" in Location would send the browser to another site.
    let path = format!("/{}/", req.uri().path().trim_start_matches('/'));
    redirect_keeping_query(req, &path)
}

/// 308 from a file named with a trailing slash to its name without, query kept.
fn drop_slash(req: &Request<Incoming>) -> Response<Body> {
    let path = format!("/{}", req.uri().path().trim_matches('/'));
    redirect_keeping_query(req, &path)
}

/// 308 to `path`, with the request's query.
fn redirect_keeping_query(req: &Request<Incoming>, path: &str) -> Response<Body> {
    match req.uri().query() {
        Some(query) => redirect(&format!("{path}?{query}")),
        None => redirect(path),
    }
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
fn upgrade(
    config: &Config,
    signal: &Signal,
    remote: SocketAddr,
    req: &mut Request<Incoming>,
) -> Response<Body> {
    match handshake::accept(req.method(), req.headers(), config) {
        Ok(accept) => {
            let asked = handshake::extension_asked(req.headers(), req.uri().query());
            let client = Client {
                extension: asked != ExtensionAsk::No,
                source: remote.ip(),
            };
            signal.spawn_session(hyper::upgrade::on(req), client);
            let mut response = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::UPGRADE, "websocket")
                .header(header::CONNECTION, "Upgrade")
                .header(header::SEC_WEBSOCKET_ACCEPT, accept);
            if asked == ExtensionAsk::Subprotocol {
                response = response.header(header::SEC_WEBSOCKET_PROTOCOL, handshake::SUBPROTOCOL);
            }
            response.body(full(Bytes::new())).expect("valid response")
        }
        Err(refused) => {
            if let Some(origin) = &refused.origin {
                signal.origin_refused(origin);
            }
            plain(refused.status, refused.message)
        }
    }
}

impl admin::Operated for Routes {
    fn health(&self) -> serde_json::Value {
        health_report(self)
    }

    fn signal(&self) -> &Signal {
        &self.signal
    }

    fn turn(&self) -> turn::Snapshot {
        self.turn.snapshot()
    }

    fn certificate_expiry(&self) -> Option<std::time::SystemTime> {
        self.certificates.not_after()
    }
}

fn health(routes: &Routes) -> Response<Body> {
    let mut r = page(
        StatusCode::OK,
        "application/json",
        health_report(routes).to_string().into(),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `/healthz`'s report: each part's status, and "degraded" while ACME or the cluster fails.
fn health_report(routes: &Routes) -> serde_json::Value {
    let signal = routes.signal.snapshot();
    let turn = routes.turn.snapshot();
    let mut web = serde_json::json!({"status": "ok", "tls": routes.certificates.is_loaded()});
    if let Some(acme) = routes.acme.health() {
        web["acme"] = acme;
    }
    // Still 200: everything serves; a monitor reads "degraded" and `web.acme.error` or
    // `cluster.error`.
    let acme_failing = routes.acme.failing();
    if acme_failing {
        web["status"] = "degraded".into();
    }
    let mut body = serde_json::json!({
        "status": "ok",
        "web": web,
        "signal": {"status": "ok", "peers": signal.peers, "lobbies": signal.lobbies},
        "turn": {"status": "ok", "allocations": turn.allocations},
    });
    let mut degraded = acme_failing;
    if let Some(cluster) = &routes.cluster {
        let (part, cluster_degraded) = cluster.health();
        body["cluster"] = part;
        degraded |= cluster_degraded;
    }
    if degraded {
        body["status"] = "degraded".into();
    }
    body
}
