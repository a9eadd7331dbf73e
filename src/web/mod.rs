//! The HTTP side: serves the game's HTML5 export from `web.root`, or a built-in page saying
//! rallypoint runs when that folder does not exist.

mod files;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, UPGRADE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics;
use crate::signal::{Signal, handshake};
use files::Refused;

const WELCOME: &str = include_str!("welcome.html");

/// A client that has not sent its request headers by then is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

type Body = Full<Bytes>;

/// What the web server hands requests to besides files.
pub struct Routes {
    pub signal: Arc<Signal>,
    pub metrics: prometheus_client::registry::Registry,
}

/// Serves HTTP on `listeners` until `shutdown` turns true, then lets open requests finish.
pub async fn serve(
    listeners: Vec<TcpListener>,
    config: watch::Receiver<Arc<Config>>,
    routes: Arc<Routes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(64);
    for listener in listeners {
        let conn_tx = conn_tx.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(accepted) => {
                        if conn_tx.send(accepted).await.is_err() {
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
        });
    }
    drop(conn_tx);
    loop {
        tokio::select! {
            Some((stream, remote)) = conn_rx.recv() => {
                let config = config.clone();
                let routes = routes.clone();
                let service = hyper::service::service_fn(move |req| {
                    let config = config.borrow().clone();
                    let routes = routes.clone();
                    async move { Ok::<_, Infallible>(handle(&config, &routes, remote, req).await) }
                });
                let conn = http.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        log::debug!("web: connection ended: {e}");
                    }
                });
            }
            _ = crate::service::stopped(&mut shutdown) => break,
        }
    }
    // Dropping the receiver ends the accept loops, which closes the listening sockets.
    drop(conn_rx);
    graceful.shutdown().await;
}

async fn handle(
    config: &Config,
    routes: &Routes,
    remote: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path();
    let response = if path == config.signal.path {
        upgrade(config, &routes.signal, &mut req)
    } else if path == "/metrics" {
        if remote.ip().to_canonical().is_loopback() {
            let text = metrics::render(&routes.metrics);
            page(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text.into(),
            )
        } else {
            plain(
                StatusCode::FORBIDDEN,
                "metrics are only served to this machine\n",
            )
        }
    } else {
        respond(config, &req).await
    };
    let status = response.status().as_u16();
    log::debug!("{} {} {status}", req.method(), req.uri().path());
    response
}

/// Hands a WebSocket upgrade on `signal.path` to the signalling hub.
fn upgrade(config: &Config, signal: &Signal, req: &mut Request<Incoming>) -> Response<Body> {
    match handshake::accept(req.method(), req.headers(), config) {
        Ok(accept) => {
            signal.spawn_session(hyper::upgrade::on(req));
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(UPGRADE, "websocket")
                .header(CONNECTION, "Upgrade")
                .header(SEC_WEBSOCKET_ACCEPT, accept)
                .body(Body::default())
                .expect("valid response")
        }
        Err(refused) => plain(refused.status, refused.message),
    }
}

async fn respond(config: &Config, req: &Request<Incoming>) -> Response<Body> {
    // hyper sends HEAD responses without their body but with its Content-Length.
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(ALLOW, "GET, HEAD".parse().unwrap());
        return r;
    }
    let path = req.uri().path();
    if !config.web.root.is_dir() && path == "/" {
        page(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(WELCOME.as_bytes()),
        )
    } else {
        match files::resolve(&config.web.root, path) {
            Ok(file) => match tokio::fs::read(&file).await {
                Ok(bytes) => page(StatusCode::OK, files::content_type(&file), bytes.into()),
                Err(e) => {
                    log::warn!("web: cannot read {}: {e}", file.display());
                    plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n")
                }
            },
            Err(Refused::Malformed) => plain(StatusCode::BAD_REQUEST, "bad path\n"),
            Err(Refused::NotFound) => plain(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn page(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        // Godot export file names carry no content hash: always revalidate.
        .header(CACHE_CONTROL, "no-cache")
        .body(Full::new(body))
        .expect("valid response")
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    page(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}
