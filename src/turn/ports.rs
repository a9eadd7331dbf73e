//! Relay sockets: one UDP socket per allocation, on the relay address and a free port from
//! `turn.relay_ports`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

use super::server::RelayPorts;
use crate::config::units::PortRange;

/// Random ports tried before scanning the range for a free one.
const RANDOM_TRIES: usize = 32;
/// Kernel buffers of a relay socket: a burst of video-sized packets must not overflow them.
const RELAY_SOCKET_BUFFER: usize = 512 * 1024;

pub struct SocketPorts {
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub range: PortRange,
    /// Opened for an allocation the core is creating; taken by the data plane.
    pending: HashMap<SocketAddr, std::net::UdpSocket>,
}

impl SocketPorts {
    pub fn new(ipv4: Option<IpAddr>, ipv6: Option<IpAddr>, range: PortRange) -> SocketPorts {
        SocketPorts {
            ipv4,
            ipv6,
            range,
            pending: HashMap::new(),
        }
    }

    pub fn take(&mut self, relay: SocketAddr) -> Option<std::net::UdpSocket> {
        self.pending.remove(&relay)
    }

    fn bind(ip: IpAddr, port: u16, dont_fragment: bool) -> std::io::Result<std::net::UdpSocket> {
        let addr = SocketAddr::new(ip, port);
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if ip.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        let _ = socket.set_recv_buffer_size(RELAY_SOCKET_BUFFER);
        let _ = socket.set_send_buffer_size(RELAY_SOCKET_BUFFER);
        if dont_fragment && ip.is_ipv4() {
            set_dont_fragment(&socket)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Ok(socket.into())
    }
}

/// IP_PMTUDISC_DO: the kernel sets DF and never fragments (RFC 8656 DONT-FRAGMENT).
fn set_dont_fragment(socket: &Socket) -> std::io::Result<()> {
    crate::sockopt::set_int(
        socket,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DO,
    )
}

impl RelayPorts for SocketPorts {
    fn supports(&self, ipv6: bool) -> bool {
        if ipv6 {
            self.ipv6.is_some()
        } else {
            self.ipv4.is_some()
        }
    }

    fn open(&mut self, ipv6: bool, even: bool, dont_fragment: bool) -> Option<SocketAddr> {
        let ip = if ipv6 { self.ipv6? } else { self.ipv4? };
        let (first, last) = (self.range.first, self.range.last);
        let span = u32::from(last - first) + 1;
        let mut random = [0u8; 4 * RANDOM_TRIES];
        getrandom::fill(&mut random).ok()?;
        let randoms = random
            .chunks(4)
            .map(|c| first + (u32::from_le_bytes(c.try_into().unwrap()) % span) as u16);
        let start = first + (u32::from(random[0]) * 256 % span) as u16;
        let scan = (0..span).map(|i| first + ((u32::from(start - first) + i) % span) as u16);
        for port in randoms.chain(scan) {
            if even && port % 2 == 1 {
                continue;
            }
            if let Ok(socket) = Self::bind(ip, port, dont_fragment) {
                let addr = socket.local_addr().ok()?;
                self.pending.insert(addr, socket);
                return Some(addr);
            }
        }
        None
    }

    fn close(&mut self, relay: SocketAddr) {
        self.pending.remove(&relay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_sockets_in_the_range_and_honours_even() {
        let range = PortRange {
            first: 41000,
            last: 41999,
        };
        let mut ports = SocketPorts::new(Some("127.0.0.1".parse().unwrap()), None, range);
        let a = ports.open(false, true, true).unwrap();
        assert!(
            (41000..=41999).contains(&a.port()) && a.port().is_multiple_of(2),
            "{a}"
        );
        assert!(
            ports.open(true, false, false).is_none(),
            "no IPv6 relay address"
        );
        let socket = ports.take(a).unwrap();
        assert_eq!(socket.local_addr().unwrap(), a);
    }

    #[test]
    fn a_full_range_yields_none() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let range = PortRange {
            first: port,
            last: port,
        };
        let mut ports = SocketPorts::new(Some("127.0.0.1".parse().unwrap()), None, range);
        assert!(ports.open(false, false, false).is_none());
    }
}
