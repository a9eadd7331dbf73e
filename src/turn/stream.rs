//! TURN over TCP and TLS: one task per connection, reading STUN messages and ChannelData frames
//! back to back (RFC 8656 §12.5); its allocation dies with it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::control::Shared;
use super::relay::{Link, Relay};
use super::server::{FiveTuple, Proto};
use super::wire::{self, Packet, classify};
use crate::conn_cap::ConnCap;
use crate::tls::HANDSHAKE_TIMEOUT;

/// With an allocation, the client refreshes well within its lifetime.
const IDLE_WITH_ALLOCATION: Duration = Duration::from_secs(3600);
/// Frames waiting for a slow stream client.
const QUEUE: usize = 512;

/// What every stream connection is held to: the caps (`turn.max_stream_connections` in all and
/// per source) and the time to make an allocation (`turn.stream_auth_timeout`).
#[derive(Clone)]
pub struct StreamLimits {
    pub cap: Arc<ConnCap>,
    pub auth_timeout: Duration,
}

/// Accepts TURN clients over TCP, or over TLS when given an acceptor.
pub async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    limits: StreamLimits,
) {
    let server = listener.local_addr().expect("bound listener");
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                // Over a cap, closed at once: the slot is checked before any byte is read.
                let Ok(slot) = limits.cap.admit(client.ip()) else {
                    continue;
                };
                let deadline = Instant::now() + limits.auth_timeout;
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let Some(acceptor) = tls.clone() else {
                    let tuple = FiveTuple {
                        proto: Proto::Tcp,
                        client,
                        server,
                    };
                    tokio::spawn(async move {
                        let _slot = slot;
                        serve_stream(stream, tuple, shared, deadline).await
                    });
                    continue;
                };
                // The handshake runs in the connection's own task, so a slow one blocks nobody.
                tokio::spawn(async move {
                    let _slot = slot;
                    let handshake = tokio::time::timeout_at(
                        deadline.min(Instant::now() + HANDSHAKE_TIMEOUT),
                        acceptor.accept(stream),
                    )
                    .await;
                    if let Ok(Ok(stream)) = handshake {
                        let tuple = FiveTuple {
                            proto: Proto::Tls,
                            client,
                            server,
                        };
                        serve_stream(stream, tuple, shared, deadline).await;
                    }
                });
            }
            Err(e) => {
                log::warn!("turn: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
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
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let writing = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    // Weak, as in the UDP workers: a deleted allocation's socket closes at once.
    let mut relay: Option<Weak<Relay>> = None;
    let mut buf = Vec::with_capacity(4096);
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
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(until, reader.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
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
                    r.channel_to_peer(channel, payload, |a| shared.reaches_relay(r.lobby, a));
                }
            }
            Packet::Send => {
                if let Some(r) = live {
                    r.send_indication(frame, |a| shared.reaches_relay(r.lobby, a));
                }
            }
            Packet::Control => {
                let (replies, created) = shared.control(frame, tuple, || Link::Stream(tx.clone()));
                if let Some(r) = created {
                    relay = Some(Arc::downgrade(&r));
                }
                for reply in replies {
                    if tx.send(reply).await.is_err() {
                        break 'connection;
                    }
                }
            }
            Packet::Junk => break 'connection,
        }
        buf.drain(..frame_len);
    }
    shared.connection_closed(tuple);
    writing.abort();
}
