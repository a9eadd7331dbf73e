//! TURN over TCP and TLS: one task per connection, reading STUN messages and ChannelData frames
//! back to back (RFC 8656 §12.5); its allocation dies with it. Connections come from the TURN
//! listeners ([`accept`]) or, through a [`StreamEntry`], from the web ports (`web.accept_turn`).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use bytes::{Buf, BytesMut};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::control::Shared;
use super::relay::{Link, Relay};
use super::server::{FiveTuple, Proto};
use super::stream_queue::StreamQueue;
use super::wire::{self, Packet, classify};
use crate::conn_cap::{ConnCap, Slot};
use crate::proxy_protocol::Proxies;
use crate::rewind::Rewind;
use crate::tls::HANDSHAKE_TIMEOUT;

/// With an allocation, the client refreshes well within its lifetime.
const IDLE_WITH_ALLOCATION: Duration = Duration::from_secs(3600);
/// Bytes waiting for a slow stream client (a few hundred relayed frames).
const QUEUE_BYTES: usize = 256 * 1024;
/// Room made for each read from the client; a longer frame (at most 65,539 bytes) grows it.
const READ_CHUNK: usize = 4096;

/// What every stream connection is held to: the caps (`turn.max_stream_connections` in all and
/// per source) and the time to make an allocation (`turn.stream_auth_timeout`).
#[derive(Clone)]
pub struct StreamLimits {
    pub cap: Arc<ConnCap>,
    pub auth_timeout: Duration,
}

/// The way in for TURN connections another service accepted: the web server hands over those
/// whose first bytes are STUN (see `web::demux`), under the relay's own caps and deadline.
#[derive(Clone)]
pub struct StreamEntry {
    pub(super) shared: Arc<Shared>,
    pub(super) limits: StreamLimits,
}

impl StreamEntry {
    /// Serves `stream` as a TURN client's connection from `client` to `server` (over TLS when
    /// `tls`), accepted at `accepted`: the time to make an allocation counts from then. Over a
    /// cap, the connection is closed at once.
    pub async fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(
        &self,
        stream: S,
        client: SocketAddr,
        server: SocketAddr,
        tls: bool,
        accepted: Instant,
    ) {
        let Ok(_slot) = self.limits.cap.admit(client.ip()) else {
            return;
        };
        let proto = if tls { Proto::Tls } else { Proto::Tcp };
        let tuple = FiveTuple {
            proto,
            client,
            server,
        };
        let deadline = accepted + self.limits.auth_timeout;
        serve_stream(stream, tuple, self.shared.clone(), deadline).await;
    }
}

/// Accepts TURN clients over TCP, or over TLS when given an acceptor.
pub async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    limits: StreamLimits,
    proxies: Arc<Proxies>,
) {
    let server = listener.local_addr().expect("bound listener");
    let proxied = proxies.expected_on(server);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let deadline = Instant::now() + limits.auth_timeout;
                let _ = stream.set_nodelay(true);
                let start = Start {
                    server,
                    tls: tls.clone(),
                    shared: shared.clone(),
                    deadline,
                };
                if !proxied {
                    // Over a cap, closed at once: the slot is checked before any byte is read.
                    let Ok(slot) = limits.cap.admit(peer.ip()) else {
                        continue;
                    };
                    let stream = Rewind::new(BytesMut::new(), stream);
                    tokio::spawn(start.run(stream, peer, slot));
                    continue;
                }
                // Behind a load balancer, the cap applies to the player its header names.
                let (cap, proxies) = (limits.cap.clone(), proxies.clone());
                tokio::spawn(async move {
                    let mut stream = stream;
                    let Some((client, after)) = proxies.client(&mut stream, peer).await else {
                        return;
                    };
                    let Ok(slot) = cap.admit(client.ip()) else {
                        return;
                    };
                    start.run(Rewind::new(after, stream), client, slot).await
                });
            }
            Err(e) => {
                log::warn!("turn: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A connection accepted on a TURN listener, before its TLS handshake (if any).
struct Start {
    server: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    /// By when it must have an allocation.
    deadline: Instant,
}

impl Start {
    async fn run(self, stream: Rewind<TcpStream>, client: SocketAddr, _slot: Slot) {
        let Some(acceptor) = self.tls else {
            let tuple = FiveTuple {
                proto: Proto::Tcp,
                client,
                server: self.server,
            };
            return serve_stream(stream, tuple, self.shared, self.deadline).await;
        };
        // The handshake runs in the connection's own task, so a slow one blocks nobody.
        let handshake = tokio::time::timeout_at(
            self.deadline.min(Instant::now() + HANDSHAKE_TIMEOUT),
            acceptor.accept(stream),
        )
        .await;
        if let Ok(Ok(stream)) = handshake {
            let tuple = FiveTuple {
                proto: Proto::Tls,
                client,
                server: self.server,
            };
            serve_stream(stream, tuple, self.shared, self.deadline).await;
        }
    }
}

/// One TCP (or TLS) client: STUN messages and ChannelData frames back to back. Without an
/// allocation by `auth_deadline` (however it trickles bytes), it is disconnected.
async fn serve_stream<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    tuple: FiveTuple,
    shared: Arc<Shared>,
    auth_deadline: Instant,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let queue = Arc::new(StreamQueue::new(QUEUE_BYTES));
    let writing = tokio::spawn({
        let queue = queue.clone();
        async move {
            // Grows to what the queue hands over, then is reused.
            let mut out = Vec::new();
            while queue.take(&mut out).await {
                if writer.write_all(&out).await.is_err() {
                    break;
                }
            }
        }
    });
    // Weak, as in the UDP workers: a deleted allocation's socket closes at once.
    let mut relay: Option<Weak<Relay>> = None;
    // Frames are read in place and consumed from the front; the buffer is reused throughout.
    let mut buf = BytesMut::new();
    'connection: loop {
        let frame_len = loop {
            match wire::stream_frame_len(&buf) {
                Err(wire::NotTurn) => break 'connection,
                Ok(Some(len)) if buf.len() >= len => break len,
                Ok(_) => {}
            }
            let until = if relay.is_some() {
                Instant::now() + IDLE_WITH_ALLOCATION
            } else {
                auth_deadline
            };
            buf.reserve(READ_CHUNK);
            match tokio::time::timeout_at(until, reader.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => break 'connection,
            }
        };
        let frame = &buf[..frame_len];
        let live = relay
            .as_ref()
            .and_then(Weak::upgrade)
            .filter(|r| r.is_alive());
        match classify(frame) {
            Packet::ChannelData(channel, payload) => {
                if let Some(r) = live {
                    r.channel_to_peer(channel, payload);
                }
            }
            Packet::Send => {
                if let Some(r) = live {
                    r.send_indication(frame);
                }
            }
            Packet::Control => {
                let link = || Link::Stream(queue.clone());
                let (replies, created) = shared.control(frame, tuple, link);
                if let Some(r) = created {
                    relay = Some(Arc::downgrade(&r));
                }
                for reply in replies {
                    if !queue.push_reply(&reply).await {
                        break 'connection;
                    }
                }
            }
            Packet::Junk => break 'connection,
        }
        buf.advance(frame_len);
    }
    shared.connection_closed(tuple);
    queue.close();
    writing.abort();
}
