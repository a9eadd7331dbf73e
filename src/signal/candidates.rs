//! The addresses players announce: ICE candidate lines (RFC 8839 §5.1) in the CANDIDATE messages
//! and SDP offers and answers the hub relays. The relay lets a lobby's allocations reach only
//! these (see `turn::lobbies`).

use std::net::IpAddr;

/// The connection addresses of every candidate line in `payload`: a CANDIDATE's data
/// (`"\n" + mid + "\n" + index + "\n" + candidate`) or an SDP (`a=candidate:` lines). Host
/// candidates hidden behind mDNS names (`….local`) name no address and are skipped.
pub fn addresses(payload: &str) -> impl Iterator<Item = IpAddr> + '_ {
    payload.lines().filter_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        let fields = line.strip_prefix("candidate:")?;
        // foundation component transport priority address port "typ" type ...
        fields.split_whitespace().nth(4)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(payload: &str) -> Vec<IpAddr> {
        addresses(payload).collect()
    }

    #[test]
    fn candidates_in_both_forms() {
        let godot = "\n0\n0\ncandidate:842163049 1 udp 1677729535 203.0.113.9 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0";
        assert_eq!(all(godot), vec!["203.0.113.9".parse::<IpAddr>().unwrap()]);
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nc=IN IP4 0.0.0.0\r\n\
                   a=candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host\r\n\
                   a=candidate:2 1 udp 41885439 198.51.100.4 49152 typ relay raddr 203.0.113.9 rport 1\r\n\
                   a=candidate:3 1 udp 2122260223 2001:db8::5 50001 typ host\r\n\
                   a=candidate:4 1 udp 2122260223 5f2b-11.local 50002 typ host\r\n";
        assert_eq!(
            all(sdp),
            ["192.0.2.7", "198.51.100.4", "2001:db8::5"]
                .map(|a| a.parse::<IpAddr>().unwrap())
                .to_vec()
        );
    }

    #[test]
    fn anything_else_names_nothing() {
        for payload in [
            "",
            "\n0\n0\n",
            "candidate:",
            "candidate:1 1 udp 1",
            "a=ice-ufrag:x",
            "v=0",
        ] {
            assert!(all(payload).is_empty(), "{payload:?}");
        }
    }
}
