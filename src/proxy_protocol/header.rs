//! The PROXY protocol header (HAProxy's, versions 1 and 2) a load balancer puts before a TCP
//! connection's own bytes: which client it carries. Sans-IO: [`parse`] looks at the bytes read
//! so far.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 2's first 12 bytes.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1's longest line, CRLF included.
const V1_MAX: usize = 107;

/// A whole header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The client's address; `None` when the balancer speaks for itself (v2 LOCAL, such as a
    /// health check) or does not know it (v1 UNKNOWN, v2 UNSPEC): the connection's own address
    /// stands.
    pub client: Option<SocketAddr>,
    /// The header's length: the connection's own bytes start after it.
    pub len: usize,
}

/// Why the bytes are not a PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Starts like neither version: the balancer sends none.
    Missing,
    V1(&'static str),
    V2(&'static str),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Missing => f.write_str("no PROXY protocol header"),
            Malformed::V1(why) => write!(f, "bad PROXY protocol v1 header: {why}"),
            Malformed::V2(why) => write!(f, "bad PROXY protocol v2 header: {why}"),
        }
    }
}

/// The header at the start of `bytes`; `Ok(None)` while more bytes are needed to tell.
pub fn parse(bytes: &[u8]) -> Result<Option<Header>, Malformed> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    if first == b'P' {
        return v1(bytes);
    }
    if first == b'\r' {
        return v2(bytes);
    }
    Err(Malformed::Missing)
}

/// "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n", or "PROXY UNKNOWN ...\r\n".
fn v1(bytes: &[u8]) -> Result<Option<Header>, Malformed> {
    let seen = &bytes[..bytes.len().min(V1_MAX)];
    if !b"PROXY ".starts_with(&seen[..seen.len().min(6)]) {
        return Err(Malformed::Missing);
    }
    let Some(end) = seen.windows(2).position(|w| w == b"\r\n") else {
        return if seen.len() == V1_MAX {
            Err(Malformed::V1("no CRLF within 107 bytes"))
        } else {
            Ok(None)
        };
    };
    let len = end + 2;
    let line = std::str::from_utf8(&seen[..end]).map_err(|_| Malformed::V1("not ASCII"))?;
    let mut fields = line.split(' ');
    fields.next(); // "PROXY"
    let family = fields.next().ok_or(Malformed::V1("no protocol"))?;
    if family == "UNKNOWN" {
        return Ok(Some(Header { client: None, len }));
    }
    let fields: Vec<&str> = fields.collect();
    let [source, _destination, source_port, destination_port] = fields[..] else {
        return Err(Malformed::V1("not four addresses and ports"));
    };
    let ip: IpAddr = match family {
        "TCP4" => source
            .parse::<Ipv4Addr>()
            .map_err(|_| Malformed::V1("bad IPv4 address"))?
            .into(),
        "TCP6" => source
            .parse::<Ipv6Addr>()
            .map_err(|_| Malformed::V1("bad IPv6 address"))?
            .into(),
        _ => return Err(Malformed::V1("protocol not TCP4, TCP6 or UNKNOWN")),
    };
    let port = port_number(source_port).ok_or(Malformed::V1("bad port"))?;
    port_number(destination_port).ok_or(Malformed::V1("bad port"))?;
    Ok(Some(Header {
        client: Some(SocketAddr::new(ip, port)),
        len,
    }))
}

/// Decimal digits only, as the specification writes them (no sign, no leading zero).
fn port_number(text: &str) -> Option<u16> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    let canonical = text == "0" || !text.starts_with('0');
    if !digits || !canonical {
        return None;
    }
    text.parse().ok()
}

/// The signature, version and command, family and protocol, length, addresses, then TLVs
/// (skipped).
fn v2(bytes: &[u8]) -> Result<Option<Header>, Malformed> {
    let seen = &bytes[..bytes.len().min(12)];
    if V2_SIGNATURE[..seen.len()] != *seen {
        return Err(Malformed::Missing);
    }
    if bytes.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    if version != 2 {
        return Err(Malformed::V2("version is not 2"));
    }
    let length = u16::from_be_bytes([bytes[14], bytes[15]]) as usize;
    let len = 16 + length;
    if bytes.len() < len {
        return Ok(None);
    }
    let addresses = &bytes[16..len];
    let client = match command {
        // LOCAL: the balancer's own connection (a health check).
        0 => None,
        1 => match bytes[13] {
            // TCP over IPv4: source, destination, source port, destination port.
            0x11 => {
                let a = addresses
                    .get(..12)
                    .ok_or(Malformed::V2("IPv4 addresses cut short"))?;
                let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
            }
            0x21 => {
                let a = addresses
                    .get(..36)
                    .ok_or(Malformed::V2("IPv6 addresses cut short"))?;
                let octets: [u8; 16] = a[..16].try_into().expect("16 bytes");
                let ip = Ipv6Addr::from(octets);
                Some(SocketAddr::new(
                    ip.into(),
                    u16::from_be_bytes([a[32], a[33]]),
                ))
            }
            // UNSPEC: the balancer does not know.
            0x00 => None,
            _ => return Err(Malformed::V2("not TCP over IPv4 or IPv6")),
        },
        _ => return Err(Malformed::V2("command is neither LOCAL nor PROXY")),
    };
    Ok(Some(Header { client, len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_tcp4(command: u8, tlv: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x20 | command, 0x11]);
        h.extend(((12 + tlv.len()) as u16).to_be_bytes());
        h.extend([203, 0, 113, 7, 10, 0, 0, 1]);
        h.extend(51000u16.to_be_bytes());
        h.extend(443u16.to_be_bytes());
        h.extend(tlv);
        h
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n";
        let header = parse(line).unwrap().unwrap();
        assert_eq!(header.client, Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(&line[header.len..], b"GET / HTTP/1.1\r\n");
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n";
        assert_eq!(
            parse(line).unwrap().unwrap().client,
            Some("[2001:db8::7]:51000".parse().unwrap())
        );
        let line = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse(line).unwrap(),
            Some(Header {
                client: None,
                len: 15
            })
        );
    }

    #[test]
    fn v1_waits_for_its_line_and_refuses_bad_ones() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n";
        for cut in 1..line.len() {
            assert_eq!(parse(&line[..cut]), Ok(None), "{cut} bytes");
        }
        for bad in [
            &b"PROXY TCP4 203.0.113.7 10.0.0.1 51000\r\n"[..],
            b"PROXY TCP4 2001:db8::7 10.0.0.1 51000 443\r\n",
            b"PROXY TCP6 203.0.113.7 10.0.0.1 51000 443\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 65536 443\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 +5100 443\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 05100 443\r\n",
            b"PROXY UDP4 203.0.113.7 10.0.0.1 51000 443\r\n",
            b"PROXY  TCP4 203.0.113.7 10.0.0.1 51000 443\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(Malformed::V1(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let endless = [b'P', b'R', b'O', b'X', b'Y', b' ']
            .into_iter()
            .chain(std::iter::repeat_n(b'A', 200))
            .collect::<Vec<_>>();
        assert_eq!(
            parse(&endless),
            Err(Malformed::V1("no CRLF within 107 bytes"))
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(Malformed::Missing));
        assert_eq!(parse(b"PROXY\r\n"), Err(Malformed::Missing));
        assert_eq!(parse(b"PRI * HTTP/2.0"), Err(Malformed::Missing));
        assert_eq!(parse(b"\x16\x03\x01"), Err(Malformed::Missing));
    }

    #[test]
    fn v2_proxy_local_tlvs_and_ipv6() {
        let mut bytes = v2_tcp4(1, &[0x04, 0x00, 0x01, 0xaa]);
        bytes.extend(b"after");
        let header = parse(&bytes).unwrap().unwrap();
        assert_eq!(header.client, Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(&bytes[header.len..], b"after");
        for cut in 1..header.len {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "{cut} bytes");
        }
        assert_eq!(parse(&v2_tcp4(0, &[])).unwrap().unwrap().client, None);

        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x21, 0x21, 0, 36]);
        h.extend("2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        h.extend("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        h.extend(51000u16.to_be_bytes());
        h.extend(443u16.to_be_bytes());
        assert_eq!(
            parse(&h).unwrap().unwrap().client,
            Some("[2001:db8::7]:51000".parse().unwrap())
        );
    }

    #[test]
    fn v2_refuses_bad_versions_commands_families_and_short_addresses() {
        let mut bad_version = v2_tcp4(1, &[]);
        bad_version[12] = 0x11;
        let mut bad_command = v2_tcp4(1, &[]);
        bad_command[12] = 0x22;
        let mut udp = v2_tcp4(1, &[]);
        udp[13] = 0x12;
        let mut short = v2_tcp4(1, &[]);
        short[15] = 8;
        short.truncate(16 + 8);
        for bad in [bad_version, bad_command, udp, short] {
            assert!(matches!(parse(&bad), Err(Malformed::V2(_))), "{bad:?}");
        }
        assert_eq!(parse(b"\r\n\r\nX"), Err(Malformed::Missing));
    }
}
