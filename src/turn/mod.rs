//! The STUN/TURN relay's network shell: UDP sockets and TCP connections on every `turn.listen`
//! address, feeding the sans-IO protocol code.
//!
//! This version answers STUN Binding requests (enough for ICE to learn server-reflexive
//! addresses); relaying (TURN Allocate and the rest of RFC 8656) is not built yet.

mod auth;
mod binding;
mod framing;
mod grants;
mod policy;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::config::Config;

/// Largest UDP datagram a STUN/TURN client sends (RFC 8656 §14: stay within the path MTU, but
/// accept up to the IP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// A TCP client that sends nothing for this long is disconnected.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn serve(
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    _config: watch::Receiver<Arc<Config>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for socket in udp {
        tasks.spawn(serve_udp(socket));
    }
    for listener in tcp {
        tasks.spawn(serve_tcp(listener));
    }
    crate::service::stopped(&mut shutdown).await;
    tasks.abort_all();
}

async fn serve_udp(socket: UdpSocket) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors from earlier sends surface here; they concern one peer, not the socket.
            Err(_) => continue,
        };
        if let Some(reply) = binding::answer(&buf[..n], from) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                tokio::spawn(serve_tcp_connection(stream, from));
            }
            Err(e) => {
                log::warn!("turn: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_tcp_connection(mut stream: TcpStream, from: SocketAddr) {
    let mut buf = Vec::with_capacity(1500);
    loop {
        let frame = loop {
            match framing::frame_len(&buf) {
                Err(()) => return,
                Ok(Some(len)) if buf.len() >= len => break len,
                Ok(_) => {}
            }
            let mut chunk = [0u8; 2048];
            match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        if let Some(reply) = binding::answer(&buf[..frame], from) {
            if stream.write_all(&reply).await.is_err() {
                return;
            }
        }
        buf.drain(..frame);
    }
}
