//! Feeds the TURN control plane sequences of packets from one fuzz input: raw bytes (decoding
//! must never panic) and, because a fuzzer cannot forge HMACs, requests of any method with
//! fuzzed attributes that the harness signs correctly, so the handlers behind authentication
//! are reached too. State carries across the packets of one input.

#![no_main]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rallypoint::config::units::BitRate;
use rallypoint::random::Random;
use rallypoint::turn::auth::Credentials;
use rallypoint::turn::policy::PeerPolicy;
use rallypoint::turn::server::{Clock, FiveTuple, Proto, RelayPorts, Server, Settings};
use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME, AttrType, RawAttribute};
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_REQUEST, METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CONNECT,
    METHOD_CREATE_PERMISSION, METHOD_REFRESH, METHOD_SEND, Message, MessageType, Setter,
};
use stun::textattrs::TextAttribute;

struct Ports(u16);

impl RelayPorts for Ports {
    fn supports(&self, _: bool) -> bool {
        true
    }
    fn open(&mut self, ipv6: bool, _: bool, _: bool) -> Option<SocketAddr> {
        self.0 = self.0.checked_add(1)?;
        let ip = if ipv6 { "::1" } else { "127.0.0.1" };
        Some(SocketAddr::new(ip.parse().unwrap(), self.0))
    }
    fn close(&mut self, _: SocketAddr) {}
}

const UNIX: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let users = BTreeMap::from([("u".to_string(), "p".to_string())]);
    let mut server = Server::new(
        Settings {
            credentials: Credentials::new("r", &users, &[]),
            policy: PeerPolicy::new(&[], &[]),
            max_allocations: 4,
            max_allocations_per_user: 2,
            max_allocations_per_address: 8,
            bandwidth: BitRate { bits_per_second: 0 },
            external_ip: None,
            allocation_lifetime: Duration::from_secs(600),
            max_allocation_lifetime: Duration::from_secs(3600),
            max_unauthenticated_answers: u32::MAX,
        },
        Random::seeded(1),
    );
    let mut ports = Ports(40000);
    let start = Instant::now();
    let mut rest = data;
    let mut step = 0u64;
    // Each packet: [kind, tuple, len_hi, len_lo, body...].
    while let [kind, tuple, hi, lo, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        step += 1;
        let tuple = FiveTuple {
            proto: if tuple & 1 == 0 {
                Proto::Udp
            } else {
                Proto::Tcp
            },
            client: SocketAddr::new("198.51.100.1".parse().unwrap(), 1000 + u16::from(tuple & 3)),
            server: "192.0.2.1:3478".parse().unwrap(),
        };
        let clock = Clock {
            now: start + Duration::from_secs(step * 30),
            unix: UNIX + step * 30,
        };
        let packet = if kind & 1 == 0 {
            body.to_vec()
        } else {
            signed(kind >> 1, body, tuple, clock.unix, &server)
        };
        let _ = server.handle(&packet, tuple, clock, &mut ports);
        if kind & 0x80 != 0 {
            let _ = server.tick(clock, &mut ports);
        }
    }
});

/// A request of a method chosen by `method`, with attributes read from `body` as
/// [type_hi, type_lo, len, value...] records, signed as user "u".
fn signed(method: u8, body: &[u8], tuple: FiveTuple, unix: u64, server: &Server) -> Vec<u8> {
    let methods = [
        METHOD_BINDING,
        METHOD_ALLOCATE,
        METHOD_REFRESH,
        METHOD_CREATE_PERMISSION,
        METHOD_CHANNEL_BIND,
        METHOD_SEND,
        METHOD_CONNECT,
    ];
    let method = methods[usize::from(method) % methods.len()];
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(stun::agent::TransactionId::new()),
        Box::new(MessageType::new(method, CLASS_REQUEST)),
    ];
    let mut rest = body;
    while let [hi, lo, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (value, next) = tail.split_at(len);
        rest = next;
        let typ = AttrType(u16::from(*hi) << 8 | u16::from(*lo));
        setters.push(Box::new(RawAttribute {
            typ,
            length: 0,
            value: value.to_vec(),
        }));
    }
    setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, "u".into())));
    setters.push(Box::new(TextAttribute::new(ATTR_REALM, "r".into())));
    setters.push(Box::new(TextAttribute::new(
        ATTR_NONCE,
        server.nonce_for(tuple.client.ip(), unix),
    )));
    setters.push(Box::new(MessageIntegrity::new_long_term_integrity(
        "u".into(),
        "r".into(),
        "p".into(),
    )));
    let mut m = Message::new();
    match m.build(&setters) {
        Ok(()) => m.raw,
        Err(_) => Vec::new(),
    }
}
