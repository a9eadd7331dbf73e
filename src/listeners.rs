//! Binds every socket the config names before any service starts, so that a taken or privileged
//! port stops the process at once with a message naming the address and the config key.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, UdpSocket};

use crate::config::Config;

/// Every listening socket, grouped by the service that will own it.
pub struct Listeners {
    pub web: Vec<TcpListener>,
    /// One UDP and one TCP socket per `turn.listen` address, on the same port.
    pub turn_udp: Vec<UdpSocket>,
    pub turn_tcp: Vec<TcpListener>,
}

#[derive(Debug)]
pub struct BindError {
    pub key: String,
    pub proto: &'static str,
    pub addr: SocketAddr,
    pub source: io::Error,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match self.source.kind() {
            io::ErrorKind::AddrInUse => format!(
                "address already in use; another process holds it (`ss -lnp 'sport = :{}'` names it)",
                self.addr.port()
            ),
            io::ErrorKind::PermissionDenied => {
                "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE".to_string()
            }
            io::ErrorKind::AddrNotAvailable => {
                "no interface of this machine has that address".to_string()
            }
            _ => self.source.to_string(),
        };
        write!(
            f,
            "cannot listen on {} {} ({}): {hint}",
            self.proto, self.addr, self.key
        )
    }
}

impl std::error::Error for BindError {}

const BACKLOG: u32 = 1024;

/// Attempts at finding a port free for both UDP and TCP when the config asks for port 0.
const EPHEMERAL_PAIR_TRIES: usize = 16;

impl Listeners {
    pub fn bind(config: &Config) -> Result<Listeners, BindError> {
        let mut turn_udp = Vec::new();
        let mut turn_tcp = Vec::new();
        for (i, addr) in config.turn.listen.iter().enumerate() {
            let (udp, tcp) = bind_pair(&format!("turn.listen[{i}]"), *addr)?;
            turn_udp.push(udp);
            turn_tcp.push(tcp);
        }
        Ok(Listeners {
            web: tcp_all("web.listen", &config.web.listen)?,
            turn_udp,
            turn_tcp,
        })
    }
}

fn tcp_all(key: &str, addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, BindError> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| tcp(&format!("{key}[{i}]"), *a))
        .collect()
}

fn tcp(key: &str, addr: SocketAddr) -> Result<TcpListener, BindError> {
    let bind = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    bind().map_err(|source| BindError {
        key: key.into(),
        proto: "TCP",
        addr,
        source,
    })
}

fn udp(key: &str, addr: SocketAddr) -> Result<UdpSocket, BindError> {
    std::net::UdpSocket::bind(addr)
        .and_then(|s| {
            s.set_nonblocking(true)?;
            UdpSocket::from_std(s)
        })
        .map_err(|source| BindError {
            key: key.into(),
            proto: "UDP",
            addr,
            source,
        })
}

/// UDP and TCP on one port, as STUN/TURN clients expect; for port 0, a port free for both.
fn bind_pair(key: &str, addr: SocketAddr) -> Result<(UdpSocket, TcpListener), BindError> {
    let mut tries = 0;
    loop {
        let udp = udp(key, addr)?;
        let bound = udp.local_addr().expect("bound socket has an address");
        match tcp(key, bound) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if addr.port() == 0 && tries < EPHEMERAL_PAIR_TRIES => tries += 1,
            Err(e) => return Err(e),
        }
    }
}
