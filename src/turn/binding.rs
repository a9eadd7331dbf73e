//! STUN Binding (RFC 8489 §6): tells a client the address its packets arrive from. Sans-IO: a
//! datagram and its source in, the answer out. Binding needs no authentication.

use std::net::SocketAddr;

use stun::fingerprint::FINGERPRINT;
use stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use stun::xoraddr::XorMappedAddress;

/// The answer to `packet` from `from`, if it is a well-formed Binding request.
///
/// Anything else (malformed bytes, other methods, indications, responses) gets no answer: RFC 8489
/// §6.3 lets a server drop what it cannot parse, and answering garbage would make the server a
/// reflector.
pub fn answer(packet: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let mut request = Message::new();
    request.raw = packet.to_vec();
    request.decode().ok()?;
    if request.typ != BINDING_REQUEST {
        return None;
    }
    let mut response = Message::new();
    let mapped = XorMappedAddress {
        ip: from.ip(),
        port: from.port(),
    };
    let setters: [Box<dyn Setter>; 4] = [
        Box::new(request.clone()),
        Box::new(BINDING_SUCCESS),
        Box::new(mapped),
        Box::new(FINGERPRINT),
    ];
    response.build(&setters).ok()?;
    Some(response.raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::message::Getter;

    fn binding_request() -> Message {
        let mut m = Message::new();
        m.build(&[
            Box::new(stun::agent::TransactionId::new()),
            Box::new(BINDING_REQUEST),
        ])
        .unwrap();
        m
    }

    #[test]
    fn answers_with_the_source_address_and_the_same_transaction() {
        let request = binding_request();
        let from: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let raw = answer(&request.raw, from).expect("an answer");
        let mut response = Message::new();
        response.raw = raw;
        response.decode().unwrap();
        assert_eq!(response.typ, BINDING_SUCCESS);
        assert_eq!(response.transaction_id, request.transaction_id);
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&response).unwrap();
        assert_eq!((mapped.ip, mapped.port), (from.ip(), from.port()));
        FINGERPRINT.check(&response).unwrap();
    }

    #[test]
    fn ipv6_sources_are_mapped_too() {
        let from: SocketAddr = "[2001:db8::7]:5000".parse().unwrap();
        let raw = answer(&binding_request().raw, from).unwrap();
        let mut response = Message::new();
        response.raw = raw;
        response.decode().unwrap();
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&response).unwrap();
        assert_eq!(mapped.ip, from.ip());
    }

    #[test]
    fn malformed_or_other_packets_get_no_answer() {
        let from: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let good = binding_request().raw;
        assert!(answer(&[], from).is_none());
        assert!(answer(&good[..19], from).is_none());
        let mut bad_cookie = good.clone();
        bad_cookie[4] ^= 0xff;
        assert!(answer(&bad_cookie, from).is_none());
        let mut too_long = good.clone();
        too_long[3] = 200;
        assert!(answer(&too_long, from).is_none());
        let mut response_class = good.clone();
        response_class[1] = 0x11; // Binding method, indication class (C0 bit)
        assert!(answer(&response_class, from).is_none());
        assert!(answer(&[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4], from).is_none());
    }
}
