//! TURN over TCP and TLS: one task per connection, reading STUN messages and ChannelData frames
//! back to back (RFC 8656 §12.5); its allocation dies with it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::control::Shared;
use super::relay::{Link, Relay};
use super::server::{FiveTuple, Proto};
use super::wire::{self, Packet, classify};
use crate::tls::HANDSHAKE_TIMEOUT;

/// A TCP client without an allocation that sends nothing for this long is disconnected.
const IDLE_BEFORE_ALLOCATION: Duration = Duration::from_secs(30);
/// With an allocation, the client refreshes well within its lifetime.
const IDLE_WITH_ALLOCATION: Duration = Duration::from_secs(3600);
/// Frames waiting for a slow stream client.
const QUEUE: usize = 512;

/// Accepts TURN clients over TCP, or over TLS when given an acceptor.
pub async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let server = listener.local_addr().expect("bound listener");
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let Some(acceptor) = tls.clone() else {
                    let tuple = FiveTuple {
                        proto: Proto::Tcp,
                        client,
                        server,
                    };
                    tokio::spawn(serve_stream(stream, tuple, shared));
                    continue;
                };
                // The handshake runs in the connection's own task, so a slow one blocks nobody.
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        let tuple = FiveTuple {
                            proto: Proto::Tls,
                            client,
                            server,
                        };
                        serve_stream(stream, tuple, shared).await;
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

/// One TCP (or TLS) client: STUN messages and ChannelData frames back to back.
async fn serve_stream<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    tuple: FiveTuple,
    shared: Arc<Shared>,
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
            let idle = if relay.is_some() {
                IDLE_WITH_ALLOCATION
            } else {
                IDLE_BEFORE_ALLOCATION
            };
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(idle, reader.read(&mut chunk)).await {
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
                    r.channel_to_peer(channel, payload, |a| shared.is_own_relay(a));
                }
            }
            Packet::Send => {
                if let Some(r) = live {
                    r.send_indication(frame, |a| shared.is_own_relay(a));
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
