use std::collections::{BTreeMap, HashSet};

use stun::agent::TransactionId;
use stun::error_code::ErrorCodeAttribute;
use webrtc_turn::proto::data::Data;
use webrtc_turn::proto::peeraddr::PeerAddress;
use webrtc_turn::proto::reqfamily::RequestedAddressFamily;
use webrtc_turn::proto::{PROTO_TCP, Protocol};

use super::*;

const REALM: &str = "rallypoint";
const UNIX: u64 = 1_700_000_000;

/// Hands out relay ports on 127.0.0.1 / ::1 from a small range.
struct FakePorts {
    next: u16,
    last: u16,
    open: HashSet<SocketAddr>,
    ipv4: bool,
    ipv6: bool,
}

impl FakePorts {
    fn new() -> Self {
        FakePorts {
            next: 50000,
            last: 50009,
            open: HashSet::new(),
            ipv4: true,
            ipv6: true,
        }
    }
}

impl RelayPorts for FakePorts {
    fn supports(&self, ipv6: bool) -> bool {
        if ipv6 { self.ipv6 } else { self.ipv4 }
    }

    fn open(&mut self, ipv6: bool, even: bool, _df: bool) -> Option<SocketAddr> {
        if !self.supports(ipv6) {
            return None;
        }
        while self.next <= self.last {
            let port = self.next;
            self.next += 1;
            if even && port % 2 == 1 {
                continue;
            }
            let ip: IpAddr = if ipv6 {
                "::1".parse().unwrap()
            } else {
                "127.0.0.1".parse().unwrap()
            };
            let addr = SocketAddr::new(ip, port);
            self.open.insert(addr);
            return Some(addr);
        }
        None
    }

    fn close(&mut self, relay: SocketAddr) {
        assert!(
            self.open.remove(&relay),
            "closing {relay} which is not open"
        );
    }
}

fn settings() -> Settings {
    let users = BTreeMap::from([
        ("alice".to_string(), "alice-password".to_string()),
        ("bob".to_string(), "bob-password".to_string()),
    ]);
    Settings {
        credentials: Credentials::new(REALM, &users, &["rest-secret-0123456789".to_string()]),
        policy: PeerPolicy::new(&[], &[]),
        max_allocations: 100,
        max_allocations_per_user: 3,
        max_allocations_per_address: 0,
        bandwidth: BitRate { bits_per_second: 0 },
        external_ip: None,
        allocation_lifetime: ALLOCATION_DEFAULT,
        max_allocation_lifetime: ALLOCATION_MAX,
        max_unauthenticated_answers: 50_000,
    }
}

const ALLOCATION_DEFAULT: Duration = Duration::from_secs(600);
const ALLOCATION_MAX: Duration = Duration::from_secs(3600);

fn tuple(port: u16) -> FiveTuple {
    FiveTuple {
        proto: Proto::Udp,
        client: SocketAddr::new("198.51.100.7".parse().unwrap(), port),
        server: "192.0.2.1:3478".parse().unwrap(),
    }
}

/// A server, a clock, and a client that signs its requests like a browser does.
struct Harness {
    server: Server,
    ports: FakePorts,
    start: Instant,
    elapsed: Duration,
    user: String,
    password: String,
    nonce: String,
}

impl Harness {
    fn new() -> Self {
        Harness {
            server: Server::new(settings(), Random::seeded(0x5eed)),
            ports: FakePorts::new(),
            start: Instant::now(),
            elapsed: Duration::ZERO,
            user: "alice".into(),
            password: "alice-password".into(),
            nonce: String::new(),
        }
    }

    fn clock(&self) -> Clock {
        Clock {
            now: self.start + self.elapsed,
            unix: UNIX + self.elapsed.as_secs(),
        }
    }

    fn send(&mut self, raw: &[u8], t: FiveTuple) -> Vec<Effect> {
        let clock = self.clock();
        self.server.handle(raw, t, clock, &mut self.ports)
    }

    fn tick(&mut self, by: Duration) -> Vec<Effect> {
        self.elapsed += by;
        let clock = self.clock();
        self.server.tick(clock, &mut self.ports)
    }

    /// Builds a request; signs it (after learning a nonce) unless `signed` is false.
    fn request(&mut self, method: Method, attrs: Vec<Box<dyn Setter>>, signed: bool) -> Message {
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(method, CLASS_REQUEST)),
        ];
        setters.extend(attrs);
        if signed {
            if self.nonce.is_empty() {
                self.nonce = self
                    .server
                    .nonces
                    .issue(tuple(1).client.ip(), self.clock().unix);
            }
            setters.push(Box::new(TextAttribute::new(
                ATTR_USERNAME,
                self.user.clone(),
            )));
            setters.push(Box::new(TextAttribute::new(ATTR_REALM, REALM.into())));
            setters.push(Box::new(TextAttribute::new(ATTR_NONCE, self.nonce.clone())));
            setters.push(Box::new(MessageIntegrity::new_long_term_integrity(
                self.user.clone(),
                REALM.into(),
                self.password.clone(),
            )));
        }
        let mut m = Message::new();
        m.build(&setters).unwrap();
        m
    }

    /// Sends `m` and decodes the reply; returns it and the other effects.
    fn exchange(&mut self, m: &Message, t: FiveTuple) -> (Message, Vec<Effect>) {
        let mut effects = self.send(&m.raw, t);
        assert!(!effects.is_empty(), "no reply");
        let Effect::Reply(raw) = effects.remove(0) else {
            panic!("first effect is not a reply")
        };
        let mut reply = Message::new();
        reply.raw = raw;
        reply.decode().unwrap();
        assert_eq!(reply.transaction_id, m.transaction_id);
        (reply, effects)
    }

    fn allocate_on(&mut self, t: FiveTuple, extra: Vec<Box<dyn Setter>>) -> (Message, Vec<Effect>) {
        let mut attrs: Vec<Box<dyn Setter>> = vec![Box::new(RequestedTransport {
            protocol: webrtc_turn::proto::PROTO_UDP,
        })];
        attrs.extend(extra);
        let m = self.request(METHOD_ALLOCATE, attrs, true);
        self.exchange(&m, t)
    }

    /// Allocates on `t`; returns the relayed address.
    fn allocate(&mut self, t: FiveTuple) -> SocketAddr {
        let (reply, _) = self.allocate_on(t, vec![]);
        assert_eq!(code(&reply), None, "allocate failed");
        let relayed = get::<RelayedAddress>(&reply).unwrap();
        SocketAddr::new(relayed.ip, relayed.port)
    }

    fn permission(&mut self, t: FiveTuple, peers: &[&str]) -> (Message, Vec<Effect>) {
        let attrs = peers
            .iter()
            .map(|p| {
                let a: SocketAddr = p.parse().unwrap();
                Box::new(PeerAddress {
                    ip: a.ip(),
                    port: a.port(),
                }) as Box<dyn Setter>
            })
            .collect();
        let m = self.request(METHOD_CREATE_PERMISSION, attrs, true);
        self.exchange(&m, t)
    }

    fn bind(&mut self, t: FiveTuple, number: u16, peer: &str) -> Option<u16> {
        let a: SocketAddr = peer.parse().unwrap();
        let attrs: Vec<Box<dyn Setter>> = vec![
            Box::new(ChannelNumber(number)),
            Box::new(PeerAddress {
                ip: a.ip(),
                port: a.port(),
            }),
        ];
        let m = self.request(METHOD_CHANNEL_BIND, attrs, true);
        code(&self.exchange(&m, t).0)
    }

    fn refresh(&mut self, t: FiveTuple, lifetime: Option<u64>) -> Message {
        let attrs: Vec<Box<dyn Setter>> = lifetime
            .map(|s| Box::new(Lifetime(Duration::from_secs(s))) as Box<dyn Setter>)
            .into_iter()
            .collect();
        let m = self.request(METHOD_REFRESH, attrs, true);
        self.exchange(&m, t).0
    }
}

fn code(m: &Message) -> Option<u16> {
    let mut e = ErrorCodeAttribute::default();
    e.get_from(m).ok().map(|_| e.code.0)
}

fn grants(effects: &[Effect]) -> Arc<Grants> {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Grants { grants, .. } => Some(grants.clone()),
            _ => None,
        })
        .expect("a Grants effect")
}

#[test]
fn binding_needs_no_credentials() {
    let mut h = Harness::new();
    let m = h.request(METHOD_BINDING, vec![], false);
    let (reply, _) = h.exchange(&m, tuple(40000));
    assert_eq!(
        reply.typ,
        MessageType::new(METHOD_BINDING, CLASS_SUCCESS_RESPONSE)
    );
    let mapped = get::<XorMappedAddress>(&reply).unwrap();
    assert_eq!(SocketAddr::new(mapped.ip, mapped.port), tuple(40000).client);
}

#[test]
fn every_unauthenticated_answer_counts_against_one_budget_per_source() {
    let mut h = Harness::new();
    // Bindings, 401s and 420s from one address share its 200 answers a second.
    let binding = h.request(METHOD_BINDING, vec![], false);
    let unsigned = h.request(METHOD_ALLOCATE, vec![], false);
    let odd = h.request(
        METHOD_BINDING,
        vec![Box::new(RawAttribute {
            typ: AttrType(0x0031),
            length: 0,
            value: vec![0; 4],
        })],
        false,
    );
    let mut answered = 0;
    for i in 0..300 {
        let m = [&binding, &unsigned, &odd][i % 3];
        answered += h.send(&m.raw, tuple(1)).len();
    }
    assert_eq!(answered, super::super::budget::PER_SOURCE as usize);
    assert_eq!(h.server.unanswered(), 100);
    // Another port of the same address shares its budget; the next second starts afresh.
    assert_eq!(
        h.send(&binding.raw, tuple(2)).len(),
        0,
        "same address, other port"
    );
    h.tick(Duration::from_secs(1));
    assert_eq!(h.send(&binding.raw, tuple(1)).len(), 1);
}

#[test]
fn binding_with_an_unknown_required_attribute_gets_420() {
    let mut h = Harness::new();
    let odd: Vec<Box<dyn Setter>> = vec![Box::new(RawAttribute {
        typ: AttrType(0x0031),
        length: 0,
        value: vec![0; 4],
    })];
    let m = h.request(METHOD_BINDING, odd, false);
    let (reply, _) = h.exchange(&m, tuple(1));
    assert_eq!(code(&reply), Some(420));
}

#[test]
fn a_request_whose_fingerprint_does_not_match_is_not_answered() {
    let mut h = Harness::new();
    let mut m = h.request(METHOD_BINDING, vec![Box::new(FINGERPRINT)], false);
    assert_eq!(
        h.send(&m.raw, tuple(1)).len(),
        1,
        "a good fingerprint is answered"
    );
    let last = m.raw.len() - 1;
    m.raw[last] ^= 1;
    assert!(h.send(&m.raw, tuple(1)).is_empty());
}

#[test]
fn unauthenticated_allocate_gets_401_with_realm_and_nonce_and_leaves_nothing() {
    let mut h = Harness::new();
    let m = h.request(
        METHOD_ALLOCATE,
        vec![Box::new(RequestedTransport {
            protocol: webrtc_turn::proto::PROTO_UDP,
        })],
        false,
    );
    let (reply, effects) = h.exchange(&m, tuple(1));
    assert_eq!(code(&reply), Some(401));
    assert!(reply.contains(ATTR_REALM) && reply.contains(ATTR_NONCE));
    assert!(!reply.contains(ATTR_MESSAGE_INTEGRITY));
    assert!(effects.is_empty());
    assert_eq!(h.server.allocation_count(), 0);
    assert!(
        h.server.answered.is_empty(),
        "no state before authentication"
    );
}

#[test]
fn allocate_succeeds_signed_and_reports_addresses_and_lifetime() {
    let mut h = Harness::new();
    let (reply, effects) =
        h.allocate_on(tuple(1), vec![Box::new(Lifetime(Duration::from_secs(30)))]);
    assert_eq!(
        reply.typ,
        MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE)
    );
    MessageIntegrity::new_long_term_integrity(
        "alice".into(),
        REALM.into(),
        "alice-password".into(),
    )
    .check(&mut reply.clone())
    .expect("the success response is signed with the client's key");
    let relayed = get::<RelayedAddress>(&reply).unwrap();
    assert_eq!(
        SocketAddr::new(relayed.ip, relayed.port),
        "127.0.0.1:50000".parse().unwrap()
    );
    assert_eq!(
        get::<Lifetime>(&reply).unwrap().0,
        ALLOCATION_DEFAULT,
        "30 s is raised to the default"
    );
    let mapped = get::<XorMappedAddress>(&reply).unwrap();
    assert_eq!(SocketAddr::new(mapped.ip, mapped.port), tuple(1).client);
    assert!(matches!(effects[..], [Effect::Created { .. }]));
    let (reply, _) = h.allocate_on(
        tuple(2),
        vec![Box::new(Lifetime(Duration::from_secs(7200)))],
    );
    assert_eq!(get::<Lifetime>(&reply).unwrap().0, ALLOCATION_MAX);
}

#[test]
fn a_retransmitted_allocate_gets_the_same_answer_not_437() {
    let mut h = Harness::new();
    let m = h.request(
        METHOD_ALLOCATE,
        vec![Box::new(RequestedTransport {
            protocol: webrtc_turn::proto::PROTO_UDP,
        })],
        true,
    );
    let first = h.send(&m.raw, tuple(1));
    let again = h.send(&m.raw, tuple(1));
    let (Effect::Reply(a), Effect::Reply(b)) = (&first[0], &again[0]) else {
        panic!()
    };
    assert_eq!(a, b);
    assert_eq!(again.len(), 1, "no second allocation");
    assert_eq!(h.server.allocation_count(), 1);
    // A new transaction on the same 5-tuple is a mismatch.
    let (reply, _) = h.allocate_on(tuple(1), vec![]);
    assert_eq!(code(&reply), Some(437));
    // After the window the answer is forgotten.
    h.tick(Duration::from_secs(41));
    assert_eq!(code(&h.exchange(&m, tuple(1)).0), Some(437));
}

#[test]
fn credential_failures() {
    let mut h = Harness::new();
    h.password = "wrong".into();
    assert_eq!(code(&h.allocate_on(tuple(1), vec![]).0), Some(401));

    // REST credentials: valid until the expiry in the name, then 401.
    let mut h = Harness::new();
    h.user = format!("{}:carol", UNIX + 60);
    h.password = crate::credentials::rest_password("rest-secret-0123456789", &h.user);
    assert_eq!(code(&h.allocate_on(tuple(1), vec![]).0), None);
    h.user = format!("{}:carol", UNIX - 1);
    h.password = crate::credentials::rest_password("rest-secret-0123456789", &h.user);
    assert_eq!(code(&h.allocate_on(tuple(2), vec![]).0), Some(401));

    // A nonce that has aged out: 438 with a fresh one.
    let mut h = Harness::new();
    h.allocate(tuple(1));
    h.tick(Duration::from_secs(auth::NONCE_LIFETIME_SECS));
    let reply = h.refresh(tuple(1), Some(600));
    assert_eq!(code(&reply), Some(438));
    assert!(reply.contains(ATTR_NONCE));

    // Integrity without the other attributes: 400.
    let mut h = Harness::new();
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(TransactionId::new()),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
    ];
    setters.push(Box::new(MessageIntegrity::new_short_term_integrity(
        "x".into(),
    )));
    let mut m = Message::new();
    m.build(&setters).unwrap();
    assert_eq!(code(&h.exchange(&m, tuple(1)).0), Some(400));
}

#[test]
fn a_different_user_on_the_same_5_tuple_gets_441() {
    let mut h = Harness::new();
    h.allocate(tuple(1));
    h.user = "bob".into();
    h.password = "bob-password".into();
    assert_eq!(code(&h.refresh(tuple(1), Some(600))), Some(441));
    assert_eq!(
        code(&h.permission(tuple(1), &["203.0.113.9:1"]).0),
        Some(441)
    );
}

#[test]
fn transport_and_family_rules() {
    let mut h = Harness::new();
    let m = h.request(
        METHOD_ALLOCATE,
        vec![Box::new(RequestedTransport {
            protocol: PROTO_TCP,
        })],
        true,
    );
    assert_eq!(code(&h.exchange(&m, tuple(1)).0), Some(442));
    let m = h.request(METHOD_ALLOCATE, vec![], true);
    assert_eq!(
        code(&h.exchange(&m, tuple(1)).0),
        Some(400),
        "REQUESTED-TRANSPORT is required"
    );

    let (reply, _) = h.allocate_on(tuple(2), vec![Box::new(RequestedAddressFamily(0x07))]);
    assert_eq!(code(&reply), Some(440));
    let both: Vec<Box<dyn Setter>> = vec![
        Box::new(RequestedAddressFamily(FAMILY_IPV4)),
        Box::new(RawAttribute {
            typ: ATTR_ADDITIONAL_ADDRESS_FAMILY,
            length: 0,
            value: vec![FAMILY_IPV6, 0, 0, 0],
        }),
    ];
    assert_eq!(code(&h.allocate_on(tuple(3), both).0), Some(400));

    let (reply, _) = h.allocate_on(
        tuple(4),
        vec![Box::new(RequestedAddressFamily(FAMILY_IPV6))],
    );
    let relayed = get::<RelayedAddress>(&reply).unwrap();
    assert!(relayed.ip.is_ipv6(), "an IPv6 relay on request");

    h.ports.ipv6 = false;
    let (reply, _) = h.allocate_on(
        tuple(5),
        vec![Box::new(RequestedAddressFamily(FAMILY_IPV6))],
    );
    assert_eq!(code(&reply), Some(440), "no IPv6 relay address here");

    // ADDITIONAL-ADDRESS-FAMILY: an IPv4 allocation, and the IPv6 part refused in the success.
    let extra: Vec<Box<dyn Setter>> = vec![Box::new(RawAttribute {
        typ: ATTR_ADDITIONAL_ADDRESS_FAMILY,
        length: 0,
        value: vec![FAMILY_IPV6, 0, 0, 0],
    })];
    let (reply, _) = h.allocate_on(tuple(6), extra);
    assert_eq!(code(&reply), None);
    let (raw, present) = reply.attributes.get(ATTR_ADDRESS_ERROR_CODE);
    assert!(present);
    assert_eq!(raw.value[..5], [FAMILY_IPV6, 0, 0, 4, 40]);
}

/// Browsers never send REQUESTED-ADDRESS-FAMILY. RFC 6156's IPv4 default stays on a dual-stack
/// server; one with IPv6 relay addresses only relays them in IPv6 rather than answering 440.
#[test]
fn an_allocate_naming_no_family_gets_the_family_the_server_has() {
    let mut h = Harness::new();
    let (reply, _) = h.allocate_on(tuple(1), vec![]);
    let relayed = get::<RelayedAddress>(&reply).unwrap();
    assert!(relayed.ip.is_ipv4(), "dual stack: IPv4, as RFC 6156 says");

    h.ports.ipv4 = false;
    let (reply, _) = h.allocate_on(tuple(2), vec![]);
    assert_eq!(code(&reply), None);
    let relayed = get::<RelayedAddress>(&reply).unwrap();
    assert!(relayed.ip.is_ipv6(), "IPv6 only: an IPv6 relay");
    let (reply, _) = h.allocate_on(
        tuple(3),
        vec![Box::new(RequestedAddressFamily(FAMILY_IPV4))],
    );
    assert_eq!(code(&reply), Some(440), "IPv4 asked for by name");
}

/// Each cause of a refused Allocate is told to the shell once, for one log line.
#[test]
fn a_refused_allocate_is_told_once_per_code() {
    let mut h = Harness::new();
    h.ports.ipv6 = false;
    let six = || -> Vec<Box<dyn Setter>> { vec![Box::new(RequestedAddressFamily(FAMILY_IPV6))] };
    let first = |effects: &[Effect]| {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::FirstRefusal { reject } => Some(reject.code()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let (reply, effects) = h.allocate_on(tuple(1), six());
    assert_eq!(code(&reply), Some(440));
    assert_eq!(first(&effects), [440]);
    let (_, effects) = h.allocate_on(tuple(2), six());
    assert!(first(&effects).is_empty(), "told once");
    let (_, effects) = h.allocate_on(tuple(2), vec![Box::new(RequestedAddressFamily(0x07))]);
    assert!(first(&effects).is_empty(), "the same code again");
}

#[test]
fn even_port_and_reservation_token() {
    let mut h = Harness::new();
    h.ports.next = 50001;
    let even: Vec<Box<dyn Setter>> = vec![Box::new(RawAttribute {
        typ: ATTR_EVEN_PORT,
        length: 0,
        value: vec![0x00],
    })];
    let (reply, _) = h.allocate_on(tuple(1), even);
    assert_eq!(get::<RelayedAddress>(&reply).unwrap().port % 2, 0);
    let reserve: Vec<Box<dyn Setter>> = vec![Box::new(RawAttribute {
        typ: ATTR_EVEN_PORT,
        length: 0,
        value: vec![0x80],
    })];
    assert_eq!(code(&h.allocate_on(tuple(2), reserve).0), Some(508));
    let token: Vec<Box<dyn Setter>> = vec![Box::new(RawAttribute {
        typ: ATTR_RESERVATION_TOKEN,
        length: 0,
        value: vec![1; 8],
    })];
    assert_eq!(code(&h.allocate_on(tuple(3), token).0), Some(508));
}

#[test]
fn unknown_comprehension_required_attributes_get_420() {
    let mut h = Harness::new();
    let odd: Vec<Box<dyn Setter>> = vec![Box::new(RawAttribute {
        typ: AttrType(0x0031),
        length: 0,
        value: vec![0; 4],
    })];
    let (reply, _) = h.allocate_on(tuple(1), odd);
    assert_eq!(code(&reply), Some(420));
    let mut unknown = UnknownAttributes(Vec::new());
    unknown.get_from(&reply).unwrap();
    assert_eq!(unknown.0, [AttrType(0x0031)]);
    // Comprehension-optional ones (0x8000 and up) are ignored.
    let optional: Vec<Box<dyn Setter>> = vec![Box::new(RawAttribute {
        typ: AttrType(0x8031),
        length: 0,
        value: vec![0; 4],
    })];
    assert_eq!(code(&h.allocate_on(tuple(2), optional).0), None);
}

#[test]
fn refresh_extends_or_deletes_and_repeats_its_answer() {
    let mut h = Harness::new();
    let m = h.request(METHOD_REFRESH, vec![], true);
    assert_eq!(
        code(&h.exchange(&m, tuple(1)).0),
        Some(437),
        "no allocation"
    );
    h.allocate(tuple(1));
    let reply = h.refresh(tuple(1), Some(1200));
    assert_eq!(
        get::<Lifetime>(&reply).unwrap().0,
        Duration::from_secs(1200)
    );
    h.tick(Duration::from_secs(1000));
    assert_eq!(
        h.server.allocation_count(),
        1,
        "extended past the first 600 s"
    );
    h.nonce.clear(); // as a client does after 438

    let m = h.request(
        METHOD_REFRESH,
        vec![Box::new(Lifetime(Duration::ZERO))],
        true,
    );
    let (reply, effects) = h.exchange(&m, tuple(1));
    assert_eq!(get::<Lifetime>(&reply).unwrap().0, Duration::ZERO);
    assert!(matches!(
        effects[..],
        [Effect::Deleted {
            why: Ended::Released,
            ..
        }]
    ));
    assert!(h.ports.open.is_empty(), "the relay port is released");
    // The client did not hear us and sends the same Refresh again: same success, not 437.
    let (again, effects) = h.exchange(&m, tuple(1));
    assert_eq!(code(&again), None);
    assert!(effects.is_empty());
}

#[test]
fn allocations_expire() {
    let mut h = Harness::new();
    h.allocate(tuple(1));
    assert!(
        h.tick(Duration::from_secs(599))
            .iter()
            .all(|e| !matches!(e, Effect::Deleted { .. }))
    );
    let effects = h.tick(Duration::from_secs(1));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Deleted {
            why: Ended::Expired,
            ..
        }
    )));
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.ports.open.is_empty());
}

#[test]
fn permissions_for_several_peers_and_their_expiry() {
    let mut h = Harness::new();
    assert_eq!(
        code(&h.permission(tuple(1), &["203.0.113.9:1"]).0),
        Some(437)
    );
    h.allocate(tuple(1));
    let (reply, effects) = h.permission(tuple(1), &["8.8.8.8:1000", "1.1.1.1:2000"]);
    assert_eq!(code(&reply), None);
    let g = grants(&effects);
    let now = h.clock().now;
    assert!(g.permits("8.8.8.8:9".parse().unwrap(), now, |_| false));
    assert!(g.permits("1.1.1.1:9".parse().unwrap(), now, |_| false));
    assert!(!g.permits("8.8.4.4:9".parse().unwrap(), now, |_| false));
    assert!(!g.permits(
        "8.8.8.8:9".parse().unwrap(),
        now + PERMISSION_LIFETIME,
        |_| false
    ));
    let m = h.request(METHOD_CREATE_PERMISSION, vec![], true);
    assert_eq!(
        code(&h.exchange(&m, tuple(1)).0),
        Some(400),
        "at least one peer"
    );
}

#[test]
fn the_default_policy_refuses_internal_peers_with_403() {
    let mut h = Harness::new();
    h.allocate(tuple(1));
    // (127.0.0.1 is this harness's relay IP: see own_relay_addresses_are_reachable_….)
    for peer in [
        "127.0.0.2:80",
        "10.0.0.1:80",
        "169.254.169.254:80",
        "0.0.0.0:80",
    ] {
        assert_eq!(
            code(&h.permission(tuple(1), &[peer]).0),
            Some(403),
            "{peer}"
        );
        assert_eq!(h.bind(tuple(1), 0x4000, peer), Some(403), "{peer}");
    }
    // One bad peer refuses the whole request.
    let (reply, effects) = h.permission(tuple(1), &["8.8.8.8:1", "10.1.1.1:1"]);
    assert_eq!(code(&reply), Some(403));
    assert!(effects.is_empty());

    let (reply, _) = h.allocate_on(
        tuple(2),
        vec![Box::new(RequestedAddressFamily(FAMILY_IPV6))],
    );
    assert_eq!(code(&reply), None);
    // (::1 is the harness's IPv6 relay IP.)
    for peer in [
        "[::2]:80",
        "[::ffff:127.0.0.1]:80",
        "[64:ff9b::a00:1]:80",
        "[fe80::1]:80",
    ] {
        assert_eq!(
            code(&h.permission(tuple(2), &[peer]).0),
            Some(403),
            "{peer}"
        );
    }
    // Family mismatch comes first.
    assert_eq!(code(&h.permission(tuple(2), &["8.8.8.8:1"]).0), Some(443));
    assert_eq!(h.server.counts().errors[&403] as usize, 4 + 4 + 1 + 4);
}

#[test]
fn own_relay_addresses_are_reachable_but_nothing_else_on_their_ip() {
    let mut h = Harness::new();
    let first = h.allocate(tuple(1));
    assert_eq!(first.ip().to_string(), "127.0.0.1");
    h.allocate(tuple(2));
    let (reply, effects) = h.permission(tuple(2), &[&first.to_string()]);
    assert_eq!(code(&reply), None);
    let g = grants(&effects);
    let now = h.clock().now;
    let own = |a: SocketAddr| a == first;
    assert!(g.permits(first, now, own));
    assert!(!g.permits("127.0.0.1:22".parse().unwrap(), now, own));
    // CreatePermission ignores the port (RFC 8656 §9): the IP of our own relays gets a
    // permission with any port, and the data plane still only delivers to our allocations.
    for peer in ["127.0.0.1:0", "127.0.0.1:22"] {
        let (reply, effects) = h.permission(tuple(2), &[peer]);
        assert_eq!(code(&reply), None, "{peer}");
        let g = grants(&effects);
        assert!(g.permits(first, now, own), "{peer}");
        assert!(
            !g.permits("127.0.0.1:22".parse().unwrap(), now, own),
            "{peer}"
        );
    }
    // A channel names one transport address: only an allocation's own passes.
    assert_eq!(h.bind(tuple(2), 0x4001, "127.0.0.1:22"), Some(403));
    assert_eq!(h.bind(tuple(2), 0x4001, &first.to_string()), None);
    // Other denied IPs stay refused, whatever the port.
    assert_eq!(code(&h.permission(tuple(2), &["127.0.0.2:0"]).0), Some(403));
}

#[test]
fn relay_ips_are_counted_while_allocations_use_them() {
    let mut h = Harness::new();
    let first = h.allocate(tuple(1));
    h.allocate(tuple(2));
    let ip = first.ip();
    assert!(h.server.allocations.is_relay_ip(ip), "one IP for both");
    h.refresh(tuple(1), Some(0));
    assert_eq!(code(&h.permission(tuple(2), &["127.0.0.1:0"]).0), None);
    assert!(h.server.allocations.is_relay_ip(ip), "still the second's");
    h.refresh(tuple(2), Some(0));
    assert!(!h.server.allocations.is_relay_ip(ip));
    assert!(h.server.allocations.at_relay(first).is_none());
    assert_eq!(h.server.allocations.len(), 0);
}

#[test]
fn channel_bind_and_rebinding_rules() {
    let mut h = Harness::new();
    assert_eq!(h.bind(tuple(1), 0x4000, "8.8.8.8:53"), Some(437));
    h.allocate(tuple(1));
    assert_eq!(h.bind(tuple(1), 0x3FFF, "8.8.8.8:53"), Some(400));
    assert_eq!(h.bind(tuple(1), 0x8000, "8.8.8.8:53"), Some(400));
    let a: SocketAddr = "8.8.8.8:53".parse().unwrap();
    let m = h.request(
        METHOD_CHANNEL_BIND,
        vec![
            Box::new(ChannelNumber(0x4000)),
            Box::new(PeerAddress {
                ip: a.ip(),
                port: a.port(),
            }),
        ],
        true,
    );
    let (reply, effects) = h.exchange(&m, tuple(1));
    assert_eq!(code(&reply), None);
    let g = grants(&effects);
    let now = h.clock().now;
    assert_eq!(g.peer_of(0x4000, now), Some(a));
    assert!(
        g.permits(a, now, |_| false),
        "binding installs a permission"
    );
    assert_eq!(
        h.bind(tuple(1), 0x4000, "8.8.8.8:53"),
        None,
        "refreshing the same binding"
    );
    assert_eq!(
        h.bind(tuple(1), 0x4000, "8.8.4.4:53"),
        Some(400),
        "number taken by another peer"
    );
    assert_eq!(
        h.bind(tuple(1), 0x4001, "8.8.8.8:53"),
        Some(400),
        "peer bound to another number"
    );
    let m = h.request(
        METHOD_CHANNEL_BIND,
        vec![Box::new(ChannelNumber(0x4002))],
        true,
    );
    assert_eq!(
        code(&h.exchange(&m, tuple(1)).0),
        Some(400),
        "XOR-PEER-ADDRESS required"
    );
    // After expiry the number stays reserved for its peer during the cooldown.
    h.refresh(tuple(1), Some(3600));
    h.tick(CHANNEL_LIFETIME);
    h.nonce.clear();
    assert_eq!(h.bind(tuple(1), 0x4000, "8.8.4.4:53"), Some(400));
    h.tick(CHANNEL_COOLDOWN);
    h.nonce.clear();
    assert_eq!(h.bind(tuple(1), 0x4000, "8.8.4.4:53"), None);
}

#[test]
fn quotas_give_486_and_recover() {
    let mut h = Harness::new();
    for port in 1..=3 {
        h.allocate(tuple(port));
    }
    assert_eq!(code(&h.allocate_on(tuple(4), vec![]).0), Some(486));
    h.user = "bob".into();
    h.password = "bob-password".into();
    h.allocate(tuple(5));
    h.user = "alice".into();
    h.password = "alice-password".into();
    h.refresh(tuple(1), Some(0));
    h.allocate(tuple(4));

    let mut h = Harness::new();
    h.server.set_settings(Settings {
        max_allocations: 1,
        ..settings()
    });
    h.allocate(tuple(1));
    assert_eq!(code(&h.allocate_on(tuple(2), vec![]).0), Some(486));
    h.tick(ALLOCATION_DEFAULT);
    h.nonce.clear();
    h.allocate(tuple(2));
}

/// One address (an IPv6 /64) holds `max_allocations_per_address` at most, whatever credentials
/// it uses (a lobby's credentials are one per player): 486, and room again when one goes.
#[test]
fn allocations_are_limited_per_address_whatever_the_credential() {
    let mut h = Harness::new();
    h.server.set_settings(Settings {
        max_allocations_per_address: 2,
        ..settings()
    });
    h.allocate(tuple(1));
    h.user = "bob".into();
    h.password = "bob-password".into();
    h.allocate(tuple(2));
    assert_eq!(code(&h.allocate_on(tuple(3), vec![]).0), Some(486));
    let elsewhere = |last: u16| FiveTuple {
        client: SocketAddr::new(IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]), 4000),
        ..tuple(1)
    };
    // Nonces are each client address's own.
    for last in 1..=3 {
        h.nonce = h
            .server
            .nonces
            .issue(elsewhere(last).client.ip(), h.clock().unix);
        if last < 3 {
            h.allocate(elsewhere(last));
        }
    }
    assert_eq!(
        code(&h.allocate_on(elsewhere(3), vec![]).0),
        Some(486),
        "one IPv6 /64 is one address"
    );
    h.nonce.clear();
    h.refresh(tuple(2), Some(0));
    h.allocate(tuple(3));
}

#[test]
fn running_out_of_relay_ports_gives_508() {
    let mut h = Harness::new();
    h.server.set_settings(Settings {
        max_allocations_per_user: 100,
        ..settings()
    });
    for port in 1..=10 {
        h.allocate(tuple(port));
    }
    assert_eq!(code(&h.allocate_on(tuple(11), vec![]).0), Some(508));
}

#[test]
fn reloaded_credentials_apply_to_new_requests_and_keep_allocations() {
    let mut h = Harness::new();
    h.allocate(tuple(1));
    let mut s = settings();
    s.credentials = Credentials::new(
        REALM,
        &BTreeMap::from([("dave".into(), "dave-password".into())]),
        &[],
    );
    h.server.set_settings(s);
    assert_eq!(h.server.allocation_count(), 1);
    assert_eq!(
        code(&h.allocate_on(tuple(2), vec![]).0),
        Some(401),
        "alice is gone"
    );
    h.user = "dave".into();
    h.password = "dave-password".into();
    h.allocate(tuple(2));
}

#[test]
fn failure_answers_are_rate_limited_per_address() {
    let mut h = Harness::new();
    let answered = (0..300)
        .filter(|_| {
            let m = h.request(METHOD_ALLOCATE, vec![], false);
            !h.send(&m.raw, tuple(1)).is_empty()
        })
        .count();
    assert_eq!(answered, 200);
}

#[test]
fn garbage_and_indications_produce_nothing() {
    let mut h = Harness::new();
    for junk in [&b""[..], &[0u8; 19], &[0xff; 64], b"GET / HTTP/1.1\r\n\r\n"] {
        assert!(h.send(junk, tuple(1)).is_empty());
    }
    let send = {
        let mut m = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(Data(vec![1, 2, 3])),
        ];
        m.build(&setters).unwrap();
        m
    };
    assert!(h.send(&send.raw, tuple(1)).is_empty());
    let _ = Protocol(17);
}

mod rfc5769 {
    //! The test vectors of RFC 5769, section 2.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode(bytes: Vec<u8>) -> Message {
        let mut m = Message::new();
        m.raw = bytes;
        m.decode().unwrap();
        m
    }

    const SHORT_TERM_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

    fn request() -> Vec<u8> {
        hex(
            "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74\
             002400046e0001ff80290008932ff9b151263b36000600096576746a3a6836765920202000080014\
             9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf",
        )
    }

    #[test]
    fn sample_request_integrity_fingerprint_and_answer() {
        let mut m = decode(request());
        MessageIntegrity::new_short_term_integrity(SHORT_TERM_PASSWORD.into())
            .check(&mut m)
            .unwrap();
        FINGERPRINT.check(&m).unwrap();
        assert_eq!(
            TextAttribute::get_from_as(&m, ATTR_USERNAME).unwrap().text,
            "evtj:h6vY"
        );
        // It is a Binding request: the server answers it without credentials.
        let mut h = Harness::new();
        let (reply, _) = h.exchange(&m, tuple(32853));
        assert_eq!(
            reply.typ,
            MessageType::new(METHOD_BINDING, CLASS_SUCCESS_RESPONSE)
        );
        FINGERPRINT.check(&reply).unwrap();
    }

    #[test]
    fn sample_ipv4_and_ipv6_responses() {
        let v4 = hex(
            "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220\
                      002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7\
                      80280004c07d4c96",
        );
        let v6 = hex(
            "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220\
                      002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf1\
                      1784c97c8292c275bfe3ed4180280004c8fb0b4c",
        );
        for (bytes, expected) in [
            (v4, "192.0.2.1:32853"),
            (v6, "[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
        ] {
            let mut m = decode(bytes);
            MessageIntegrity::new_short_term_integrity(SHORT_TERM_PASSWORD.into())
                .check(&mut m)
                .unwrap();
            FINGERPRINT.check(&m).unwrap();
            // Both the crate's decoder and ours read the same address.
            let crate_view = get::<XorMappedAddress>(&m).unwrap();
            let ours = xor_addresses(&m, ATTR_XORMAPPED_ADDRESS).unwrap();
            let expected: SocketAddr = expected.parse().unwrap();
            assert_eq!(SocketAddr::new(crate_view.ip, crate_view.port), expected);
            assert_eq!(ours, [expected]);
        }
    }

    #[test]
    fn sample_request_with_long_term_authentication() {
        let bytes = hex(
            "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383\
                         e382afe382b9000000150 01c662f2f3439396b393534643 64f4c33346f4c394653547679\
                         36347341001400 0b6578616d706c652e6f726700000800 14f67024656dd64a3e02b8e071\
                         2e85c9a28ca89666",
        );
        let mut m = decode(bytes);
        let user = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        assert_eq!(
            TextAttribute::get_from_as(&m, ATTR_USERNAME).unwrap().text,
            user
        );
        assert_eq!(
            TextAttribute::get_from_as(&m, ATTR_NONCE).unwrap().text,
            "f//499k954d6OL34oL9FSTvy64sA"
        );
        MessageIntegrity::new_long_term_integrity(
            user.into(),
            "example.org".into(),
            "TheMatrIX".into(),
        )
        .check(&mut m)
        .unwrap();
        // Through the server's own check: the user and password are right, but the nonce is not
        // one this server issued, so the answer is 438 (and the client retries with ours).
        let users = BTreeMap::from([(user.to_string(), "TheMatrIX".to_string())]);
        let creds = Credentials::new("example.org", &users, &[]);
        let refusal = auth::authenticate(
            &mut m,
            &creds,
            &Nonces::new(&mut Random::seeded(1)),
            tuple(1).client.ip(),
            UNIX,
        )
        .err();
        assert_eq!(refusal, Some(Failure::StaleNonce));
    }
}

/// Signs as player `player` of lobby `lobby`, with a REST credential as the hub mints them.
fn as_lobby_player(h: &mut Harness, lobby: u64, player: u32) {
    h.user = format!(
        "{}:{}",
        UNIX + 3600,
        crate::credentials::lobby_user(lobby, player)
    );
    h.password = crate::credentials::rest_password("rest-secret-0123456789", &h.user);
}

fn announce(h: &mut Harness, lobby: u64, ip: &str) {
    let now = h.clock().now;
    let ip = ip.parse().unwrap();
    h.server
        .lobby_event(LobbyEvent::Announced { lobby, ip }, now);
}

#[test]
fn a_lobby_allocation_reaches_what_its_lobby_announced_and_its_lobbys_relays_only() {
    let mut h = Harness::new();
    let now = h.clock().now;
    for lobby in [1, 2] {
        h.server.lobby_event(LobbyEvent::Opened { lobby }, now);
    }
    announce(&mut h, 1, "93.184.216.34");
    announce(&mut h, 2, "151.101.1.1");
    as_lobby_player(&mut h, 2, 20);
    let other_lobby = h.allocate(tuple(3));
    as_lobby_player(&mut h, 1, 11);
    let teammate = h.allocate(tuple(2));
    as_lobby_player(&mut h, 1, 10);
    h.allocate(tuple(1));

    // Announced in its lobby: yes. Announced in another lobby, or by nobody: 403.
    assert_eq!(
        code(&h.permission(tuple(1), &["93.184.216.34:5000"]).0),
        None
    );
    for peer in ["151.101.1.1:5000", "8.8.8.8:53", "93.184.216.35:5000"] {
        assert_eq!(
            code(&h.permission(tuple(1), &[peer]).0),
            Some(403),
            "{peer}"
        );
        assert_eq!(h.bind(tuple(1), 0x4005, peer), Some(403), "{peer}");
    }
    // Relay addresses: its own lobby's, not another's (the IP is shared, so the data plane
    // checks each packet's relay address).
    let (reply, effects) = h.permission(tuple(1), &[&teammate.to_string()]);
    assert_eq!(code(&reply), None);
    let g = grants(&effects);
    let now = h.clock().now;
    let reach = |a| h.server.reaches_relay(Some(1), a);
    assert!(g.permits(teammate, now, reach));
    assert!(!g.permits(other_lobby, now, reach));
    assert_eq!(
        h.bind(tuple(1), 0x4001, &other_lobby.to_string()),
        Some(403)
    );
    assert_eq!(h.bind(tuple(1), 0x4001, &teammate.to_string()), None);
    // An allocation without a lobby (an /api/ice credential) and a lobby's never exchange
    // packets: whichever side receives drops what the other sends.
    h.user = "alice".into();
    h.password = "alice-password".into();
    let stranger = h.allocate(tuple(5));
    assert!(!h.server.reaches_relay(Some(1), stranger));
    assert!(!h.server.reaches_relay(Some(2), teammate));
    assert!(h.server.reaches_relay(Some(1), teammate));
    // A lobby the relay does not know (ended, or from before a restart): no allocation.
    as_lobby_player(&mut h, 3, 30);
    assert_eq!(code(&h.allocate_on(tuple(4), vec![]).0), Some(403));
}

#[test]
fn an_aborted_lobby_takes_its_allocations_and_a_sealed_one_plays_on() {
    let mut h = Harness::new();
    let now = h.clock().now;
    for lobby in [1, 2] {
        h.server.lobby_event(LobbyEvent::Opened { lobby }, now);
    }
    announce(&mut h, 2, "93.184.216.34");
    as_lobby_player(&mut h, 1, 10);
    h.allocate(tuple(1));
    as_lobby_player(&mut h, 2, 20);
    h.allocate(tuple(2));

    // Lobby 1 ends before its seal; lobby 2 is sealed, then its signalling ends.
    h.server.lobby_event(LobbyEvent::Ended { lobby: 1 }, now);
    h.server.lobby_event(LobbyEvent::Sealed { lobby: 2 }, now);
    announce(&mut h, 2, "151.101.1.1");
    h.server.lobby_event(LobbyEvent::Ended { lobby: 2 }, now);
    let grace = crate::turn::lobbies::ABORT_GRACE;
    assert!(h.tick(grace - Duration::from_millis(1)).is_empty());
    let effects = h.tick(Duration::from_millis(1));
    assert!(
        matches!(effects[..], [Effect::Deleted { tuple: t, .. }] if t == tuple(1)),
        "{effects:?}"
    );
    // The sealed lobby's game goes on: refreshed, it lives; its permissions are as at the seal.
    for _ in 0..4 {
        h.tick(Duration::from_secs(300));
        h.nonce.clear(); // a fresh nonce, as after a 438
        assert_eq!(code(&h.refresh(tuple(2), Some(600))), None);
    }
    assert_eq!(code(&h.permission(tuple(2), &["93.184.216.34:1"]).0), None);
    assert_eq!(
        code(&h.permission(tuple(2), &["151.101.1.1:1"]).0),
        Some(403)
    );
    // But nobody new joins it.
    as_lobby_player(&mut h, 2, 21);
    assert_eq!(code(&h.allocate_on(tuple(3), vec![]).0), Some(403));
    // Its last allocation gone, the relay forgets it.
    as_lobby_player(&mut h, 2, 20);
    h.refresh(tuple(2), Some(0));
    assert_eq!(h.server.lobby_count(), 0);
}
