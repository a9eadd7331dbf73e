//! The HTTP side: serves the game's HTML5 export from `web.root` (or a built-in page saying
//! rallypoint runs), the signalling WebSocket on `signal.path`, TURN credentials at `/api/ice`,
//! `/healthz` and `/metrics`. HTTP/1.1 on `web.listen`; HTTP/1.1 and HTTP/2 over TLS on
//! `web.tls_listen`, where plain HTTP then redirects.
//!
//! This file accepts connections (and TLS) and hands requests to [`router`]; files are found
//! by [`safe_path`] and [`file_cache`] and answered by [`file_response`]. With
//! `web.accept_turn`, [`demux`] first tells TURN clients apart and they go to the relay.

mod compress;
mod demux;
mod file_cache;
mod file_response;
mod forwarded;
pub mod ice;
mod ice_quota;
mod isolation;
mod metrics;
mod mime;
mod negotiate;
mod response;
mod root_check;
mod router;
mod safe_path;
mod selftest;
mod sendfile;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::conn_cap::Slot;
use crate::proxy_protocol::Proxies;
use crate::rewind::Rewind;
use crate::tls::{ACME_TLS_ALPN, HANDSHAKE_TIMEOUT, TURN_ALPN};
use crate::turn::StreamEntry;
pub use compress::{CompressionCache, compression_dir};
pub use file_cache::FileCache;
pub use ice_quota::IceQuota;
pub use metrics::register as register_metrics;
pub use response::Body;
pub use root_check::root_warnings;
pub use router::Routes;
use router::Scheme;

/// At shutdown, how long a connection may take to finish what it is sending; the service's
/// own grace period (`server.shutdown_grace`) bounds the whole.
const GRACEFUL_CLOSE_LIMIT: Duration = Duration::from_secs(3600);

/// Serves HTTP on `plain` and HTTPS on `tls` until `shutdown` is cancelled, then lets open
/// requests finish. Connections that turn out to be TURN clients (`web.accept_turn`) go to
/// `turn`.
pub async fn serve(
    plain: Vec<TcpListener>,
    tls: Vec<TcpListener>,
    config: watch::Receiver<Arc<Config>>,
    routes: Arc<Routes>,
    turn: StreamEntry,
    proxies: Arc<Proxies>,
    shutdown: CancellationToken,
) {
    let settings = config.borrow().web.clone();
    let idle = settings.header_timeout.0;
    let max_header_size = settings.max_header_size.0;
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        // Caps what one connection buffers of a request's headers (hyper's default is about
        // 400 KiB: 10,000 connections could hold 4 GiB), answering 431 beyond, and of a response
        // ahead of the client, so many players downloading one big file at once cost little.
        .max_buf_size(max_header_size as usize)
        // Also closes keep-alive connections idle for this long between requests.
        .header_read_timeout(idle);
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_header_list_size(max_header_size as u32)
        .max_concurrent_streams(128);
    let acceptor = tokio_rustls::TlsAcceptor::from(routes.certificates.server_config(&[
        b"h2",
        b"http/1.1",
        TURN_ALPN,
        ACME_TLS_ALPN,
    ]));
    let (conn_tx, mut conn_rx) = mpsc::channel::<Accepted>(64);
    for (listener, scheme) in plain
        .into_iter()
        .map(|l| (l, Scheme::Http))
        .chain(tls.into_iter().map(|l| (l, Scheme::Https)))
    {
        tokio::spawn(accept(listener, scheme, proxies.clone(), conn_tx.clone()));
    }
    drop(conn_tx);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            Some(Accepted { stream, remote, scheme }) = conn_rx.recv() => {
                // Over the cap, the connection is closed at once rather than queued.
                let Ok(slot) = routes.connections.admit(remote.ip()) else { continue };
                let accept_turn = config.borrow().web.accept_turn.on(scheme == Scheme::Https);
                let connection = Connection {
                    remote,
                    scheme,
                    slot,
                    accepted: Instant::now(),
                    turn: accept_turn.then(|| turn.clone()),
                    header_timeout: idle,
                };
                let http = Http {
                    builder: http.clone(),
                    header_timeout: idle,
                    config: config.clone(),
                    routes: routes.clone(),
                    shutdown: shutdown.clone(),
                };
                connections.spawn(connection.serve(stream, acceptor.clone(), http));
            }
            Some(_) = connections.join_next() => {}
            _ = shutdown.cancelled() => break,
        }
    }
    drop(conn_rx);
    // Open connections were told to finish (graceful shutdown); wait for them.
    while connections.join_next().await.is_some() {}
}

/// One accepted connection to a web port, before anyone has read from it.
struct Connection {
    remote: SocketAddr,
    scheme: Scheme,
    /// Its place under `web.max_connections`, held while the web server serves it.
    slot: Slot,
    accepted: Instant,
    /// Where TURN clients go, when this listener takes them.
    turn: Option<StreamEntry>,
    header_timeout: Duration,
}

/// What serving HTTP on a connection takes.
struct Http {
    builder: auto::Builder<TokioExecutor>,
    /// `web.header_timeout` as hyper was set up with it (a restart-only key).
    header_timeout: Duration,
    config: watch::Receiver<Arc<Config>>,
    routes: Arc<Routes>,
    shutdown: CancellationToken,
}

impl Connection {
    /// TLS if the listener is HTTPS (in the connection's own task, under a timeout), then HTTP,
    /// or TURN when ALPN or the first bytes say so.
    async fn serve(self, stream: Rewind<TcpStream>, acceptor: TlsAcceptor, http: Http) {
        let Ok(local) = stream.get_ref().local_addr() else {
            return;
        };
        let (mut io, alpn): (Box<dyn Io>, Option<Vec<u8>>) = match self.scheme {
            Scheme::Http => (Box::new(sendfile::SendfileStream::new(stream)), None),
            Scheme::Https => {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        (Box::new(tls), alpn)
                    }
                    _ => return,
                }
            }
        };
        let service = match (&self.turn, alpn.as_deref()) {
            // A CA checking TLS-ALPN-01 only looks at the certificate.
            (_, Some(ACME_TLS_ALPN)) => return,
            // A TURN client where this listener takes none (`web.accept_turn`).
            (None, Some(TURN_ALPN)) => return,
            (None, _) | (_, Some(b"h2")) => demux::Service::Http,
            (Some(_), Some(TURN_ALPN)) => demux::Service::Turn,
            (Some(_), _) => match demux::sniff(&mut io, self.header_timeout).await {
                Ok((service, first)) => {
                    io = Box::new(Rewind::new(first, io));
                    service
                }
                Err(_) => return,
            },
        };
        match (service, self.turn) {
            (demux::Service::Turn, Some(turn)) => {
                // From here the relay's own stream caps apply.
                drop(self.slot);
                let tls = self.scheme == Scheme::Https;
                turn.serve(io, self.remote, local, tls, self.accepted).await;
            }
            _ => http.serve(io, self.remote, self.scheme, self.slot).await,
        }
    }
}

impl Http {
    /// Serves HTTP/1.1 or HTTP/2 on `io` until the client leaves, the connection idles for
    /// `web.header_timeout`, or shutdown.
    async fn serve(self, io: Box<dyn Io>, remote: SocketAddr, scheme: Scheme, _slot: Slot) {
        let idle = self.header_timeout;
        let activity = Arc::new(Activity::new());
        let service = {
            let (config, routes, activity) = (self.config, self.routes, activity.clone());
            hyper::service::service_fn(move |req| {
                let (config, routes, activity) =
                    (config.borrow().clone(), routes.clone(), activity.clone());
                async move {
                    let busy = activity.request();
                    let response = router::handle(&config, &routes, remote, scheme, req).await;
                    Ok::<_, Infallible>(busy_while_streaming(response, busy))
                }
            })
        };
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        // A graceful close waits for the client (HTTP/2 asks it to acknowledge a ping); one
        // that does not answer is dropped this long after.
        let mut hard_stop = std::pin::pin!(tokio::time::sleep(Duration::MAX));
        let result = loop {
            tokio::select! {
                result = conn.as_mut() => break result,
                _ = hard_stop.as_mut(), if closing => break Ok(()),
                // Idle (no request under way) for web.header_timeout, HTTP/1.1 and HTTP/2
                // alike: an HTTP/2 connection that only answers pings is no exception. Ongoing
                // requests finish first.
                _ = tokio::time::sleep_until(activity.idle_deadline(idle)), if !closing => {
                    if activity.is_idle(idle) {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        hard_stop.as_mut().reset(Instant::now() + idle);
                    }
                }
                _ = self.shutdown.cancelled(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    hard_stop.as_mut().reset(Instant::now() + GRACEFUL_CLOSE_LIMIT);
                }
            }
        };
        if let Err(e) = result {
            log::debug!("web: connection ended: {e}");
        }
    }
}

/// A connection's byte stream, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// An event stream (the dashboard's) keeps its connection busy until it ends: it is not idle
/// for `web.header_timeout` between its events.
fn busy_while_streaming(
    response: hyper::Response<response::Body>,
    busy: Busy,
) -> hyper::Response<response::Body> {
    use http_body_util::BodyExt;
    let streaming = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|t| t == "text/event-stream");
    if !streaming {
        return response;
    }
    response.map(|body| {
        body.map_frame(move |frame| {
            let _held = &busy;
            frame
        })
        .boxed()
    })
}

/// Whether a connection has a request under way, and since when it has had none.
struct Activity {
    busy: AtomicUsize,
    /// Milliseconds since `start` when the last request ended (or the connection opened).
    last: AtomicU64,
    start: Instant,
}

/// Marks a request under way until dropped (a streamed response keeps it until its end).
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            busy: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            start: Instant::now(),
        }
    }

    fn request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle
    }

    fn is_idle(&self, idle: Duration) -> bool {
        self.busy.load(Ordering::Relaxed) == 0 && Instant::now() >= self.idle_deadline(idle)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let since = self.0.start.elapsed().as_millis() as u64;
        self.0.last.store(since, Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection and its client: the peer, or the player a trusted proxy's header names (with
/// the bytes read after the header put back).
struct Accepted {
    stream: Rewind<TcpStream>,
    remote: SocketAddr,
    scheme: Scheme,
}

async fn accept(
    listener: TcpListener,
    scheme: Scheme,
    proxies: Arc<Proxies>,
    conns: mpsc::Sender<Accepted>,
) {
    let proxied = listener
        .local_addr()
        .is_ok_and(|local| proxies.expected_on(local));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Headers and body go out in separate writes; Nagle would hold the second back
                // until the client's delayed ACK, some 40 ms per response.
                let _ = stream.set_nodelay(true);
                if !proxied {
                    let stream = Rewind::new(BytesMut::new(), stream);
                    let accepted = Accepted {
                        stream,
                        remote: peer,
                        scheme,
                    };
                    if conns.send(accepted).await.is_err() {
                        return;
                    }
                    continue;
                }
                // The header is read in a task of its own; the connection caps then apply to
                // the player it names.
                let (proxies, conns) = (proxies.clone(), conns.clone());
                tokio::spawn(async move {
                    let mut stream = stream;
                    if let Some((remote, after)) = proxies.client(&mut stream, peer).await {
                        let stream = Rewind::new(after, stream);
                        let _ = conns
                            .send(Accepted {
                                stream,
                                remote,
                                scheme,
                            })
                            .await;
                    }
                });
            }
            // Out of descriptors, or a connection reset before accept: keep serving.
            Err(e) => {
                log::warn!("web: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
