//! The PROXY protocol, opt-in per TCP listener (`proxy_protocol.listeners`): behind a layer-4
//! load balancer, a connection from one of `proxy_protocol.trusted` starts with a header (v1 or
//! v2, [`header`]) naming the player, and the web server and the relay see the player's
//! address: connection caps and rate limits per address, XOR-MAPPED-ADDRESS, logs. Connections
//! to such a listener from anywhere else are direct and no header is read from them, so nobody
//! else can claim an address; a header they send anyway is just bad HTTP or TURN.
//!
//! UDP carries no header: balancers that forward UDP keep the player's source address.

mod header;

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use ipnet::IpNet;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::Config;
use crate::metrics::Scrape;
pub use header::{Header, Malformed, parse};

/// Which listeners expect headers, from whom, and what was refused.
#[derive(Debug)]
pub struct Proxies {
    /// Bound addresses of the listeners that expect headers.
    listeners: HashSet<SocketAddr>,
    trusted: Vec<IpNet>,
    timeout: Duration,
    accepted: AtomicU64,
    missing: AtomicU64,
    malformed: AtomicU64,
    incomplete: AtomicU64,
    logged: AtomicBool,
}

/// Whether `configured` (an address of web.listen, web.tls_listen, turn.listen or
/// turn.tls_listen) is one of `proxy_protocol.listeners`; the `0.0.0.0` twin a `[::]` TURN
/// listener gets counts as listed with it.
pub fn listed(config: &Config, configured: SocketAddr) -> bool {
    let listed = &config.proxy_protocol.listeners;
    listed.contains(&configured)
        || (configured.ip().is_unspecified()
            && configured.is_ipv4()
            && listed.contains(&SocketAddr::from(([0u16; 8], configured.port()))))
}

impl Proxies {
    /// `listeners`: the bound addresses of the listeners [`listed`] in the configuration.
    pub fn new(config: &Config, listeners: HashSet<SocketAddr>) -> Arc<Proxies> {
        Arc::new(Proxies {
            listeners,
            trusted: config.proxy_protocol.trusted.clone(),
            timeout: config.proxy_protocol.header_timeout.0,
            accepted: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            incomplete: AtomicU64::new(0),
            logged: AtomicBool::new(false),
        })
    }

    /// Whether connections to the listener bound at `local` may start with a header.
    pub fn expected_on(&self, local: SocketAddr) -> bool {
        self.listeners.contains(&local)
    }

    /// The client of a connection from `peer` to a listener that expects headers, and the
    /// bytes read after its header (the connection's own; see [`crate::rewind::Rewind`]). From
    /// an untrusted `peer`, nothing is read: it is the client. `None` when the connection must
    /// be closed: a trusted peer sent no header, a bad one, or none in time (counted; the first
    /// is logged).
    pub async fn client<S: AsyncRead + Unpin>(
        &self,
        stream: &mut S,
        peer: SocketAddr,
    ) -> Option<(SocketAddr, BytesMut)> {
        if !self.trusted.iter().any(|net| net.contains(&peer.ip())) {
            return Some((peer, BytesMut::new()));
        }
        match tokio::time::timeout(self.timeout, read_header(stream)).await {
            Ok(Ok((header, mut bytes))) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                let after = bytes.split_off(header.len);
                Some((header.client.unwrap_or(peer), after))
            }
            Ok(Err(ReadError::Malformed(why))) => {
                let counter = match why {
                    Malformed::Missing => &self.missing,
                    _ => &self.malformed,
                };
                self.refuse(counter, peer, &why.to_string())
            }
            Ok(Err(ReadError::Io(e))) => self.refuse(&self.incomplete, peer, &e.to_string()),
            Err(_) => self.refuse(
                &self.incomplete,
                peer,
                "no PROXY protocol header within proxy_protocol.header_timeout",
            ),
        }
    }

    fn refuse(
        &self,
        counter: &AtomicU64,
        peer: SocketAddr,
        why: &str,
    ) -> Option<(SocketAddr, BytesMut)> {
        counter.fetch_add(1, Ordering::Relaxed);
        if !self.logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "closed a connection from the trusted proxy {peer}: {why}; further ones are only \
                 counted (rallypoint_proxy_protocol_refused_total)"
            );
        }
        None
    }

    /// Registers `rallypoint_proxy_protocol_*`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry
            .sub_registry_with_prefix("proxy_protocol")
            .register_collector(Box::new(ProxiesCollector(self.clone())));
    }
}

enum ReadError {
    Malformed(Malformed),
    Io(io::Error),
}

/// Reads until the header is whole (at most 16 + 65,535 bytes for v2, 107 for v1).
async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Header, BytesMut), ReadError> {
    let mut bytes = BytesMut::with_capacity(256);
    loop {
        match parse(&bytes) {
            Ok(Some(header)) => return Ok((header, bytes)),
            Ok(None) => {}
            Err(why) => return Err(ReadError::Malformed(why)),
        }
        match stream.read_buf(&mut bytes).await {
            Ok(0) => {
                let closed =
                    io::Error::new(io::ErrorKind::UnexpectedEof, "closed before its header");
                return Err(ReadError::Io(closed));
            }
            Ok(_) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

#[derive(Debug)]
struct ProxiesCollector(Arc<Proxies>);

impl Collector for ProxiesCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        let p = &self.0;
        let mut s = Scrape(encoder);
        s.counter(
            "headers",
            "PROXY protocol headers accepted from proxy_protocol.trusted",
            p.accepted.load(Ordering::Relaxed),
        )?;
        s.counters(
            "refused",
            "Connections from proxy_protocol.trusted closed for their PROXY protocol header",
            "reason",
            [
                ("missing", p.missing.load(Ordering::Relaxed)),
                ("malformed", p.malformed.load(Ordering::Relaxed)),
                ("incomplete", p.incomplete.load(Ordering::Relaxed)),
            ],
        )
    }
}
