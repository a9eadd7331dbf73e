//! Binds every socket the config names before any service starts, so that a taken or privileged
//! port stops the process at once with a message naming the address and the config key.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, UdpSocket};

use crate::config::Config;
use crate::{proxy_protocol, sockopt};

/// Every listening socket, grouped by the service that will own it.
pub struct Listeners {
    pub web: Vec<TcpListener>,
    pub web_tls: Vec<TcpListener>,
    /// Per `turn.listen` address, one `SO_REUSEPORT` UDP socket per relay worker, and a TCP
    /// listener on the same port.
    pub turn_udp: Vec<(SocketAddr, Vec<UdpSocket>)>,
    pub turn_tcp: Vec<TcpListener>,
    pub turn_tls: Vec<TcpListener>,
    /// The bound addresses of the TCP listeners in `proxy_protocol.listeners`.
    pub proxy_protocol: HashSet<SocketAddr>,
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

const BACKLOG: i32 = 1024;

/// Kernel buffers of the TURN listener sockets. The default (about 208 KiB) overflows under
/// load before the relay is busy; the kernel caps this at net.core.rmem_max unless the
/// process may force it.
const TURN_SOCKET_BUFFER: usize = 4 << 20;

/// Attempts at finding a port free for both UDP and TCP when the config asks for port 0.
const EPHEMERAL_PAIR_TRIES: usize = 16;

impl Listeners {
    /// Binds everything; TURN UDP addresses get `workers` sockets each.
    pub fn bind(config: &Config, workers: usize) -> Result<Listeners, BindError> {
        let mut turn_udp = Vec::new();
        let mut turn_tcp = Vec::new();
        for (i, addr) in config.turn.listen.iter().enumerate() {
            let (udp, tcp) = bind_pair(&format!("turn.listen[{i}]"), *addr, workers)?;
            turn_udp.push((udp[0].local_addr().expect("bound socket"), udp));
            turn_tcp.push(tcp);
        }
        let web = tcp_all("web.listen", &config.web.listen, Ipv6Only::UnlessAlone)?;
        let web_tls = tcp_all(
            "web.tls_listen",
            &config.web.tls_listen,
            Ipv6Only::UnlessAlone,
        )?;
        let turn_tls = tcp_all("turn.tls_listen", &config.turn.tls_listen, Ipv6Only::Yes)?;
        let configured_and_bound = [
            (&config.web.listen, &web),
            (&config.web.tls_listen, &web_tls),
            (&config.turn.listen, &turn_tcp),
            (&config.turn.tls_listen, &turn_tls),
        ];
        let proxy_protocol = configured_and_bound
            .into_iter()
            .flat_map(|(configured, bound)| configured.iter().zip(bound))
            .filter(|(configured, _)| proxy_protocol::listed(config, **configured))
            .filter_map(|(_, listener)| listener.local_addr().ok())
            .collect();
        Ok(Listeners {
            web,
            web_tls,
            turn_udp,
            turn_tcp,
            turn_tls,
            proxy_protocol,
        })
    }
}

/// How an IPv6 wildcard TCP listener treats IPv4: web listeners on `[::]` take both families,
/// as web servers usually do, unless the same list also names an IPv4 address on that port
/// (then each takes its own, as `[::]:80` and `0.0.0.0:80` in nginx); TURN listeners are IPv6
/// only like their UDP sockets (the config adds `0.0.0.0` beside `[::]`), so a player's address
/// is always in its own family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ipv6Only {
    UnlessAlone,
    Yes,
}

impl Ipv6Only {
    /// Whether `addr`, one of `list`, is bound IPv6 only.
    fn applies(self, addr: SocketAddr, list: &[SocketAddr]) -> bool {
        match self {
            Ipv6Only::Yes => true,
            Ipv6Only::UnlessAlone => list
                .iter()
                .any(|other| other.is_ipv4() && other.port() == addr.port() && addr.port() != 0),
        }
    }
}

fn tcp_all(key: &str, addrs: &[SocketAddr], v6: Ipv6Only) -> Result<Vec<TcpListener>, BindError> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| tcp(&format!("{key}[{i}]"), *a, v6.applies(*a, addrs)))
        .collect()
}

fn tcp(key: &str, addr: SocketAddr, v6_only: bool) -> Result<TcpListener, BindError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind = || {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(v6_only)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        TcpListener::from_std(socket.into())
    };
    bind().map_err(|source| BindError {
        key: key.into(),
        proto: "TCP",
        addr,
        source,
    })
}

/// `count` UDP sockets sharing `addr` through SO_REUSEPORT. The first bind fails like any
/// other when another process holds the port.
fn udp(key: &str, addr: SocketAddr, count: usize) -> Result<Vec<UdpSocket>, BindError> {
    let error = |source| BindError {
        key: key.into(),
        proto: "UDP",
        addr,
        source,
    };
    let mut sockets: Vec<UdpSocket> = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        // Later sockets join the port the first one got (which matters for port 0).
        let at = sockets
            .first()
            .map_or(addr, |s| s.local_addr().expect("bound socket"));
        let socket = reuseport_udp(at).map_err(error)?;
        sockets.push(socket);
    }
    Ok(sockets)
}

fn reuseport_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    for force in [true, false] {
        let set = if force {
            force_buffers(&socket)
        } else {
            socket.set_recv_buffer_size(TURN_SOCKET_BUFFER)
        };
        if set.is_ok() {
            break;
        }
    }
    let _ = socket.set_send_buffer_size(TURN_SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// SO_RCVBUFFORCE: above net.core.rmem_max, allowed with CAP_NET_ADMIN (root in tests).
fn force_buffers(socket: &socket2::Socket) -> io::Result<()> {
    sockopt::set_int(
        socket,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        TURN_SOCKET_BUFFER as libc::c_int,
    )
}

/// UDP and TCP on one port, as STUN/TURN clients expect; for port 0, a port free for both.
fn bind_pair(
    key: &str,
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<UdpSocket>, TcpListener), BindError> {
    let mut tries = 0;
    loop {
        let udp = udp(key, addr, workers)?;
        let bound = udp[0].local_addr().expect("bound socket has an address");
        match tcp(key, bound, true) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(_) if addr.port() == 0 && tries < EPHEMERAL_PAIR_TRIES => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_web_wildcard_is_ipv6_only_where_the_list_also_names_ipv4_on_its_port() {
        let list: Vec<SocketAddr> = ["[::]:80", "0.0.0.0:80", "[::]:8080", "[::]:0", "0.0.0.0:0"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let only = |i: usize| Ipv6Only::UnlessAlone.applies(list[i], &list);
        assert!(
            only(0),
            "[::]:80 beside 0.0.0.0:80: each family its own socket"
        );
        assert!(!only(2), "[::]:8080 alone takes IPv4 too");
        assert!(!only(3), "port 0 is a different port each time");
        assert!(Ipv6Only::Yes.applies(list[2], &list));
    }
}
