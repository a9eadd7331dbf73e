//! The HTTP side: serves the game's HTML5 export from `web.root` (or a built-in page saying
//! rallypoint runs), the signalling WebSocket on `signal.path`, TURN credentials at `/api/ice`,
//! `/healthz` and `/metrics`. HTTP/1.1 on `web.listen`; HTTP/1.1 and HTTP/2 over TLS on
//! `web.tls_listen`, where plain HTTP then redirects.
//!
//! This file accepts connections (and TLS) and hands requests to [`router`]; files are found
//! by [`safe_path`] and [`file_cache`] and answered by [`file_response`].

mod compress;
mod file_cache;
mod file_response;
pub mod ice;
mod isolation;
mod mime;
mod negotiate;
mod response;
mod router;
mod safe_path;
mod selftest;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::tls::{ACME_TLS_ALPN, HANDSHAKE_TIMEOUT};
pub use compress::CompressionCache;
pub use file_cache::FileCache;
pub use ice::{TurnAddresses, ice_servers};
pub use response::Body;
pub use router::Routes;
use router::Scheme;

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
                        async move { Ok::<_, Infallible>(router::handle(&config, &routes, remote, scheme, req).await) }
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
