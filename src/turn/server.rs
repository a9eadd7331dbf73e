//! The TURN server's control plane (RFC 8656, RFC 6156, STUN Binding of RFC 8489), sans-IO.
//!
//! A request's bytes, the 5-tuple it arrived on and the clock go in; the answer and the changes
//! the data plane must apply come out. Relay ports come from a [`RelayPorts`] the caller
//! provides, so tests need no sockets. What this does not decide: relaying itself (see
//! [`super::grants`], which the data plane consults for every packet).

use crate::conn_cap::Source;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stun::attributes::*;
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::*;
use stun::textattrs::TextAttribute;
use stun::uattrs::UnknownAttributes;
use stun::xoraddr::XorMappedAddress;
use webrtc_turn::proto::channum::ChannelNumber;
use webrtc_turn::proto::lifetime::Lifetime;
use webrtc_turn::proto::relayaddr::RelayedAddress;
use webrtc_turn::proto::reqtrans::RequestedTransport;

use super::allocations::{Allocation, Allocations, Channel};
use super::auth::{self, Credentials, Failure, Identity, Nonces};
use super::budget::{AnswerBudget, PER_SOURCE};
use super::grants::{Grants, Permission};
use super::lobbies::{self, Lobbies};
use super::policy::PeerPolicy;
use super::wire::{
    self, ATTR_ADDITIONAL_ADDRESS_FAMILY, ATTR_ADDRESS_ERROR_CODE, FAMILY_IPV4, FAMILY_IPV6,
    PROTO_UDP, Reject, family, xor_addresses,
};
use crate::config::units::BitRate;
use crate::credentials::{self, LobbyEvent};
use crate::random::Random;

pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// After a channel expires, neither its number nor its peer may be rebound differently for this
/// long (RFC 8656 §12).
const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);
/// A retransmitted request within this time gets the first answer again (RFC 8489 §6.3.1).
const RETRANSMISSION_WINDOW: Duration = Duration::from_secs(40);
const RETRANSMISSION_CACHE_MAX: usize = 65_536;
/// Per allocation, to bound what one client can make the server remember.
const MAX_PERMISSIONS: usize = 256;
const MAX_CHANNELS: usize = 256;

/// Channel numbers accepted by ChannelBind. RFC 8656 narrowed RFC 5766's 0x4000-0x7FFF to
/// 0x4FFF so that clients can tell ChannelData from DTLS on one socket; a server sees no DTLS,
/// and RFC 5766 clients (coturn's own tools among them) still pick numbers up to 0x7FFF.
pub const CHANNEL_NUMBERS: std::ops::RangeInclusive<u16> = 0x4000..=0x7FFF;

/// Comprehension-required attributes this server understands; others get 420.
const KNOWN: &[AttrType] = &[
    ATTR_USERNAME,
    ATTR_MESSAGE_INTEGRITY,
    ATTR_REALM,
    ATTR_NONCE,
    ATTR_CHANNEL_NUMBER,
    ATTR_LIFETIME,
    ATTR_XOR_PEER_ADDRESS,
    ATTR_DATA,
    ATTR_EVEN_PORT,
    ATTR_REQUESTED_TRANSPORT,
    ATTR_DONT_FRAGMENT,
    ATTR_RESERVATION_TOKEN,
    ATTR_REQUESTED_ADDRESS_FAMILY,
    // ICE connectivity-check attributes (RFC 8445) in a Binding: nothing for a server to do,
    // so known and ignored (RFC 5769's sample request carries them).
    ATTR_PRIORITY,
    ATTR_USE_CANDIDATE,
    // Accepted and ignored: the SHA-1 integrity above is what WebRTC clients use.
    ATTR_MESSAGE_INTEGRITY_SHA256,
    ATTR_PASSWORD_ALGORITHM,
    ATTR_USER_HASH,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
}

/// Client address, server address and transport: what identifies an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub proto: Proto,
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// Monotonic time for lifetimes, wall time for credentials and nonces.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub now: Instant,
    pub unix: u64,
}

/// Opens and closes relay sockets for the core.
pub trait RelayPorts {
    /// Whether relay addresses of this family exist at all (else 440, not 508).
    fn supports(&self, ipv6: bool) -> bool;
    /// Binds a UDP relay socket of the given family (on an even port when asked, with the
    /// don't-fragment bit when asked) and returns its address.
    fn open(&mut self, ipv6: bool, even: bool, dont_fragment: bool) -> Option<SocketAddr>;
    fn close(&mut self, relay: SocketAddr);
}

/// What the data plane must do after a request or a tick.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Send these bytes back to the client on the request's 5-tuple.
    Reply(Vec<u8>),
    /// A new allocation: its relay socket (as opened through [`RelayPorts`]) now serves the client.
    Created {
        tuple: FiveTuple,
        relay: SocketAddr,
        /// What clients are told: `turn.external_ip` with the relay's port, else the relay.
        advertised: SocketAddr,
    },
    /// The allocation's permissions or channels changed.
    Grants {
        tuple: FiveTuple,
        grants: Arc<Grants>,
    },
    /// The allocation is gone; its relay socket is closed.
    Deleted { tuple: FiveTuple, why: Ended },
    /// An Allocate was refused with this code for the first time since start: the shell says
    /// so once (later ones are only counted).
    FirstRefusal { reject: Reject },
}

/// Why an allocation ended, for the shell's debug log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The client refreshed it with a lifetime of zero.
    Released,
    /// Its lifetime ran out without a refresh.
    Expired,
    /// The client's TCP or TLS connection closed.
    Disconnected,
    /// Its lobby ended and the grace after it is over.
    LobbyEnded,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ended::Released => "released by its client",
            Ended::Expired => "expired",
            Ended::Disconnected => "ended with its client's connection",
            Ended::LobbyEnded => "ended with its lobby",
        })
    }
}

/// The settings the core works with, taken from `[turn]`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub credentials: Credentials,
    pub policy: PeerPolicy,
    pub max_allocations: u32,
    pub max_allocations_per_user: u32,
    pub max_allocations_per_address: u32,
    pub bandwidth: BitRate,
    /// Advertised instead of the relay socket's own address (1:1 NAT).
    pub external_ip: Option<IpAddr>,
    /// Lifetime when the client asks for less or none (RFC 8656: 600 s), and the most it gets.
    pub allocation_lifetime: Duration,
    pub max_allocation_lifetime: Duration,
    /// Answers a second to requests not authenticated (Binding, 400, 401, 420, 438), in all.
    pub max_unauthenticated_answers: u32,
}

impl From<&crate::config::Turn> for Settings {
    fn from(t: &crate::config::Turn) -> Self {
        Settings {
            credentials: Credentials::new(&t.realm, &t.users, &t.secrets),
            policy: PeerPolicy::new(&t.allow_peers, &t.deny_peers),
            max_allocations: t.max_allocations,
            max_allocations_per_user: t.max_allocations_per_user,
            max_allocations_per_address: t.max_allocations_per_address,
            bandwidth: t.max_bandwidth_per_allocation,
            external_ip: t.external_ip,
            allocation_lifetime: t.allocation_lifetime.0,
            max_allocation_lifetime: t.max_allocation_lifetime.0,
            max_unauthenticated_answers: t.max_unauthenticated_answers,
        }
    }
}

/// What the core has done since start, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlCounts {
    pub allocations_created: u64,
    /// Error answers by code.
    pub errors: HashMap<u16, u64>,
}

pub struct Server {
    settings: Settings,
    nonces: Nonces,
    /// Answers to requests not (yet) authenticated.
    budget: AnswerBudget,
    allocations: Allocations,
    lobbies: Lobbies,
    answered: HashMap<(FiveTuple, [u8; 12]), (Vec<u8>, Instant)>,
    answered_order: VecDeque<((FiveTuple, [u8; 12]), Instant)>,
    counts: ControlCounts,
    /// Error codes Allocates have been refused with (a handful at most), each told once.
    refusals_told: Vec<Reject>,
}

/// What of a peer address must be one of our relay addresses when policy denies its IP.
#[derive(Clone, Copy)]
enum Match {
    /// Its IP: CreatePermission ignores the port.
    Ip,
    /// IP and port: ChannelBind names one transport address.
    Address,
}

/// A request's answer: an error code, or attributes for the success response.
type Outcome = Result<Vec<Box<dyn Setter>>, Reject>;

impl Server {
    /// A relay core with no allocation, its secrets (nonce key, budget seed) from `random`.
    pub fn new(settings: Settings, mut random: Random) -> Server {
        let seed = random.bytes();
        Server {
            budget: AnswerBudget::new(PER_SOURCE, settings.max_unauthenticated_answers, seed),
            settings,
            nonces: Nonces::new(&mut random),
            allocations: Allocations::default(),
            lobbies: Lobbies::default(),
            answered: HashMap::new(),
            answered_order: VecDeque::new(),
            counts: ControlCounts::default(),
            refusals_told: Vec::new(),
        }
    }

    /// New credentials, policy and quotas apply to new requests; allocations stay.
    pub fn set_settings(&mut self, settings: Settings) {
        self.budget.set_total(settings.max_unauthenticated_answers);
        self.settings = settings;
    }

    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    pub fn counts(&self) -> &ControlCounts {
        &self.counts
    }

    /// Requests left unanswered over the budget for unauthenticated answers, since start.
    pub fn unanswered(&self) -> u64 {
        self.budget.unanswered
    }

    /// A nonce for `client`, as a 401 would carry (for clients built into tests and fuzzing).
    pub fn nonce_for(&self, client: IpAddr, unix: u64) -> String {
        self.nonces.issue(client, unix)
    }

    /// Whether `addr` is a relay address of this server's live allocations.
    pub fn is_own_relay(&self, addr: SocketAddr) -> bool {
        self.allocations.at_relay(addr).is_some()
    }

    /// Whether an allocation bound to `lobby` (or to none) may exchange packets with relay
    /// address `addr`: one of this server's, and for a lobby's allocation, of the same lobby.
    pub fn reaches_relay(&self, lobby: Option<u64>, addr: SocketAddr) -> bool {
        self.allocations
            .at_relay(addr)
            .is_some_and(|a| lobbies::may_reach(lobby, a.lobby))
    }

    /// The lobby the allocation on `tuple` is bound to.
    pub fn lobby_of(&self, tuple: FiveTuple) -> Option<u64> {
        self.allocations.get(&tuple).and_then(|a| a.lobby)
    }

    /// The lobby and player the allocation on `tuple` is bound to.
    pub fn lobby_member(&self, tuple: FiveTuple) -> Option<(u64, u32)> {
        let a = self.allocations.get(&tuple)?;
        credentials::lobby_member(&a.username)
    }

    /// Lobbies the relay knows of (open, sealed, or playing on with allocations).
    pub fn lobby_count(&self) -> usize {
        self.lobbies.count()
    }

    /// What the signalling hub saw of a lobby. An aborted lobby's allocations go after a grace
    /// (in [`Server::tick`]).
    pub fn lobby_event(&mut self, event: LobbyEvent, now: Instant) {
        let lobby = match event {
            LobbyEvent::Opened { lobby }
            | LobbyEvent::Announced { lobby, .. }
            | LobbyEvent::Withdrawn { lobby, .. }
            | LobbyEvent::Sealed { lobby }
            | LobbyEvent::Ended { lobby } => lobby,
        };
        let used = self.allocations.in_lobby(lobby) > 0;
        self.lobbies.apply(event, now, used);
    }

    /// Handles one STUN message from the client of `tuple`. Indications and malformed packets
    /// produce nothing here (the data plane handles Send indications).
    pub fn handle(
        &mut self,
        packet: &[u8],
        tuple: FiveTuple,
        clock: Clock,
        ports: &mut dyn RelayPorts,
    ) -> Vec<Effect> {
        let mut request = Message::new();
        request.raw = packet.to_vec();
        if request.decode().is_err() || request.typ.class != CLASS_REQUEST {
            return Vec::new();
        }
        let fingerprint = request.contains(ATTR_FINGERPRINT);
        // RFC 8489 §7.3: a FINGERPRINT that does not match means this is not a STUN message.
        if fingerprint && FINGERPRINT.check(&request).is_err() {
            return Vec::new();
        }
        // RFC 8489 §6.3.1: unknown comprehension-required attributes get 420, Binding included.
        let unknown: Vec<AttrType> = request
            .attributes
            .0
            .iter()
            .map(|a| a.typ)
            .filter(|t| t.required() && !KNOWN.contains(t))
            .collect();
        let unanswered = |s: &mut Self| !s.budget.allow(tuple.client.ip(), clock.unix, clock.now);
        if !unknown.is_empty() {
            if unanswered(self) {
                return Vec::new();
            }
            let attrs: Vec<Box<dyn Setter>> = vec![Box::new(UnknownAttributes(unknown))];
            return self.error(&request, Reject::UnknownAttribute, attrs, None, fingerprint);
        }
        if request.typ.method == METHOD_BINDING {
            if unanswered(self) {
                return Vec::new();
            }
            let mapped = XorMappedAddress {
                ip: tuple.client.ip(),
                port: tuple.client.port(),
            };
            return vec![Effect::Reply(wire::response(
                &request,
                CLASS_SUCCESS_RESPONSE,
                vec![Box::new(mapped)],
                None,
                fingerprint,
            ))];
        }
        let key = (tuple, request.transaction_id.0);
        if let Some((answer, _)) = self.answered.get(&key) {
            return vec![Effect::Reply(answer.clone())];
        }
        let identity = match auth::authenticate(
            &mut request,
            &self.settings.credentials,
            &self.nonces,
            tuple.client.ip(),
            clock.unix,
        ) {
            Ok(identity) => identity,
            Err(refusal) => return self.refuse(&request, refusal, tuple, clock, fingerprint),
        };
        let mut effects = Vec::new();
        let outcome = match request.typ.method {
            METHOD_ALLOCATE => {
                self.allocate(&request, tuple, &identity, clock, ports, &mut effects)
            }
            METHOD_REFRESH => self.refresh(&request, tuple, &identity, clock, ports, &mut effects),
            METHOD_CREATE_PERMISSION => {
                self.create_permission(&request, tuple, &identity, clock, &mut effects)
            }
            METHOD_CHANNEL_BIND => {
                self.channel_bind(&request, tuple, &identity, clock, &mut effects)
            }
            _ => Err(Reject::BadRequest),
        };
        let answer = match outcome {
            Ok(attrs) => wire::response(
                &request,
                CLASS_SUCCESS_RESPONSE,
                attrs,
                Some(&identity.integrity),
                fingerprint,
            ),
            Err(reject) => {
                let count = self.counts.errors.entry(reject.code()).or_default();
                *count += 1;
                if request.typ.method == METHOD_ALLOCATE && !self.refusals_told.contains(&reject) {
                    self.refusals_told.push(reject);
                    effects.push(Effect::FirstRefusal { reject });
                }
                let attrs = vec![wire::error_code(reject)];
                wire::response(
                    &request,
                    CLASS_ERROR_RESPONSE,
                    attrs,
                    Some(&identity.integrity),
                    fingerprint,
                )
            }
        };
        self.remember(key, &answer, clock.now);
        effects.insert(0, Effect::Reply(answer));
        effects
    }

    /// The client's TCP or TLS connection closed: its allocation goes with it (RFC 8656 §3.1).
    pub fn connection_closed(
        &mut self,
        tuple: FiveTuple,
        ports: &mut dyn RelayPorts,
    ) -> Vec<Effect> {
        if self.allocations.get(&tuple).is_some() {
            vec![self.delete(tuple, Ended::Disconnected, ports)]
        } else {
            Vec::new()
        }
    }

    /// Expires allocations, permissions and channels, and forgets old answers.
    pub fn tick(&mut self, clock: Clock, ports: &mut dyn RelayPorts) -> Vec<Effect> {
        let now = clock.now;
        let mut effects = Vec::new();
        let expired = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(t, _)| (*t, Ended::Expired));
        // An aborted lobby's allocations go with it once its grace is over.
        let aborted = self.lobbies.due_teardowns(now);
        let torn_down = self
            .allocations
            .iter()
            .filter(|(_, a)| a.lobby.is_some_and(|l| aborted.contains(&l)))
            .map(|(t, _)| (*t, Ended::LobbyEnded));
        let ending: Vec<(FiveTuple, Ended)> = expired.chain(torn_down).collect();
        for (tuple, why) in ending {
            if self.allocations.get(&tuple).is_some() {
                effects.push(self.delete(tuple, why, ports));
            }
        }
        for (tuple, a) in self.allocations.iter_mut() {
            // The data plane checks expiry itself; this only keeps the tables small.
            let before = (a.permissions.len(), a.channels.len());
            a.permissions.retain(|_, p| p.expires > now);
            a.channels.retain(|_, c| c.expires + CHANNEL_COOLDOWN > now);
            if before != (a.permissions.len(), a.channels.len()) {
                effects.push(Effect::Grants {
                    tuple: *tuple,
                    grants: grants_of(a, self.settings.bandwidth),
                });
            }
        }
        while let Some((key, at)) = self.answered_order.front() {
            if now.duration_since(*at) < RETRANSMISSION_WINDOW {
                break;
            }
            self.answered.remove(key);
            self.answered_order.pop_front();
        }
        effects
    }

    fn refuse(
        &mut self,
        request: &Message,
        refusal: Failure,
        tuple: FiveTuple,
        clock: Clock,
        fingerprint: bool,
    ) -> Vec<Effect> {
        let reject = match refusal {
            Failure::BadRequest => Reject::BadRequest,
            Failure::Unauthorized => Reject::Unauthorized,
            Failure::StaleNonce => Reject::StaleNonce,
        };
        if !self.budget.allow(tuple.client.ip(), clock.unix, clock.now) {
            return Vec::new();
        }
        let mut attrs: Vec<Box<dyn Setter>> = Vec::new();
        if reject != Reject::BadRequest {
            let nonce = self.nonces.issue(tuple.client.ip(), clock.unix);
            attrs.push(Box::new(TextAttribute::new(
                ATTR_REALM,
                self.settings.credentials.realm.clone(),
            )));
            attrs.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce)));
        }
        self.error(request, reject, attrs, None, fingerprint)
    }

    fn error(
        &mut self,
        request: &Message,
        reject: Reject,
        mut attrs: Vec<Box<dyn Setter>>,
        integrity: Option<&MessageIntegrity>,
        fingerprint: bool,
    ) -> Vec<Effect> {
        *self.counts.errors.entry(reject.code()).or_default() += 1;
        attrs.insert(0, wire::error_code(reject));
        vec![Effect::Reply(wire::response(
            request,
            CLASS_ERROR_RESPONSE,
            attrs,
            integrity,
            fingerprint,
        ))]
    }

    fn remember(&mut self, key: (FiveTuple, [u8; 12]), answer: &[u8], now: Instant) {
        if self.answered_order.len() >= RETRANSMISSION_CACHE_MAX
            && let Some((old, _)) = self.answered_order.pop_front()
        {
            self.answered.remove(&old);
        }
        self.answered.insert(key, (answer.to_vec(), now));
        self.answered_order.push_back((key, now));
    }

    fn allocate(
        &mut self,
        request: &Message,
        tuple: FiveTuple,
        identity: &Identity,
        clock: Clock,
        ports: &mut dyn RelayPorts,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        if self.allocations.get(&tuple).is_some() {
            return Err(Reject::AllocationMismatch);
        }
        let transport = get::<RequestedTransport>(request).ok_or(Reject::BadRequest)?;
        if transport.protocol.0 != PROTO_UDP {
            return Err(Reject::UnsupportedTransport);
        }
        // EVEN-PORT: Some(reserve the next port too?)
        let even = request.attributes.get(ATTR_EVEN_PORT).1.then(|| {
            request
                .attributes
                .get(ATTR_EVEN_PORT)
                .0
                .value
                .first()
                .is_some_and(|b| b & 0x80 != 0)
        });
        let requested_family = family(request, ATTR_REQUESTED_ADDRESS_FAMILY)?;
        let additional_family = family(request, ATTR_ADDITIONAL_ADDRESS_FAMILY)?;
        let has_token = request.contains(ATTR_RESERVATION_TOKEN);
        if has_token && (even.is_some() || requested_family.is_some()) {
            return Err(Reject::BadRequest);
        }
        if requested_family.is_some() && additional_family.is_some() {
            return Err(Reject::BadRequest);
        }
        if additional_family == Some(FAMILY_IPV4) {
            return Err(Reject::BadRequest);
        }
        // This server never hands out reservation tokens, and does not reserve a second port.
        if has_token || even == Some(true) {
            return Err(Reject::InsufficientCapacity);
        }
        // A lobby's credential works while its lobby is open or sealed.
        let lobby = credentials::lobby_of(&identity.username);
        if lobby.is_some_and(|l| !self.lobbies.admits(l)) {
            return Err(Reject::Forbidden);
        }
        let user_count = self.allocations.of_user(&identity.username);
        let per_address = self.settings.max_allocations_per_address;
        let source_count = self.allocations.from(Source::of(tuple.client.ip()));
        if user_count >= self.settings.max_allocations_per_user
            || (per_address > 0 && source_count >= per_address)
            || self.allocations.len() >= self.settings.max_allocations as usize
        {
            return Err(Reject::AllocationQuotaReached);
        }
        // RFC 6156's default is IPv4, and on a dual-stack server it stays: a player who reaches
        // the relay only over IPv6 then meets one who reaches it only over IPv4 (both relays
        // IPv4, relayed in memory). Browsers never name a family, so a server with IPv6 relay
        // addresses only answers them in the family it has rather than 440.
        let ipv6 = match requested_family {
            Some(f) => f == FAMILY_IPV6,
            None => !ports.supports(false) && ports.supports(true),
        };
        if !ports.supports(ipv6) {
            return Err(Reject::AddressFamilyNotSupported);
        }
        let dont_fragment = request.contains(ATTR_DONT_FRAGMENT);
        let relay = ports
            .open(ipv6, even.is_some(), dont_fragment)
            .ok_or(Reject::InsufficientCapacity)?;
        let lifetime = requested_lifetime(request, &self.settings);
        let advertised = SocketAddr::new(
            self.settings.external_ip.unwrap_or(relay.ip()),
            relay.port(),
        );
        self.allocations.insert(
            tuple,
            Allocation {
                relay,
                advertised,
                username: identity.username.clone(),
                lobby,
                expires: clock.now + lifetime,
                permissions: HashMap::new(),
                channels: HashMap::new(),
            },
        );
        self.counts.allocations_created += 1;
        effects.push(Effect::Created {
            tuple,
            relay,
            advertised,
        });

        let mut attrs: Vec<Box<dyn Setter>> = vec![
            Box::new(RelayedAddress {
                ip: advertised.ip(),
                port: advertised.port(),
            }),
            Box::new(Lifetime(lifetime)),
            Box::new(XorMappedAddress {
                ip: tuple.client.ip(),
                port: tuple.client.port(),
            }),
        ];
        if additional_family == Some(FAMILY_IPV6) {
            // One relay address per allocation here: say the IPv6 one could not be had.
            attrs.push(Box::new(RawAttribute {
                typ: ATTR_ADDRESS_ERROR_CODE,
                length: 0,
                value: vec![FAMILY_IPV6, 0, 0, 4, 40],
            }));
        }
        Ok(attrs)
    }

    fn refresh(
        &mut self,
        request: &Message,
        tuple: FiveTuple,
        identity: &Identity,
        clock: Clock,
        ports: &mut dyn RelayPorts,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        let allocation = self.owned(tuple, identity)?;
        if let Some(f) = family(request, ATTR_REQUESTED_ADDRESS_FAMILY)?
            && (f == FAMILY_IPV6) != allocation.relay.is_ipv6()
        {
            return Err(Reject::PeerAddressFamilyMismatch);
        }
        let asked = get::<Lifetime>(request).map(|l| l.0);
        if asked == Some(Duration::ZERO) {
            effects.push(self.delete(tuple, Ended::Released, ports));
            return Ok(vec![Box::new(Lifetime(Duration::ZERO))]);
        }
        let lifetime = requested_lifetime(request, &self.settings);
        self.allocations
            .get_mut(&tuple)
            .expect("checked above")
            .expires = clock.now + lifetime;
        Ok(vec![Box::new(Lifetime(lifetime))])
    }

    fn create_permission(
        &mut self,
        request: &Message,
        tuple: FiveTuple,
        identity: &Identity,
        clock: Clock,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        let a = self.owned(tuple, identity)?;
        let (relay_v6, lobby) = (a.relay.is_ipv6(), a.lobby);
        let peers = xor_addresses(request, ATTR_XOR_PEER_ADDRESS)?;
        if peers.is_empty() {
            return Err(Reject::BadRequest);
        }
        // RFC 8656 §9: a permission is for an IP, whatever port the attribute carries.
        let vetted: Vec<(IpAddr, bool)> = peers
            .iter()
            .map(|&peer| {
                self.vet(relay_v6, lobby, peer, Match::Ip)
                    .map(|restricted| (peer.ip(), restricted))
            })
            .collect::<Result<_, _>>()?;
        let bandwidth = self.settings.bandwidth;
        let a = self.allocations.get_mut(&tuple).expect("checked above");
        // All or nothing: room for every new peer first.
        let new = vetted
            .iter()
            .filter(|(ip, _)| !a.permissions.contains_key(ip))
            .count();
        if a.permissions.len() + new > MAX_PERMISSIONS {
            return Err(Reject::InsufficientCapacity);
        }
        for (ip, restricted) in vetted {
            permit(a, ip, restricted, clock.now)?;
        }
        effects.push(Effect::Grants {
            tuple,
            grants: grants_of(a, bandwidth),
        });
        Ok(Vec::new())
    }

    fn channel_bind(
        &mut self,
        request: &Message,
        tuple: FiveTuple,
        identity: &Identity,
        clock: Clock,
        effects: &mut Vec<Effect>,
    ) -> Outcome {
        let a = self.owned(tuple, identity)?;
        let (relay_v6, lobby) = (a.relay.is_ipv6(), a.lobby);
        let number = get::<ChannelNumber>(request).ok_or(Reject::BadRequest)?.0;
        if !CHANNEL_NUMBERS.contains(&number) {
            return Err(Reject::BadRequest);
        }
        let peers = xor_addresses(request, ATTR_XOR_PEER_ADDRESS)?;
        let [peer] = peers[..] else {
            return Err(Reject::BadRequest);
        };
        // A channel is bound to one transport address, so here the port counts.
        let restricted = self.vet(relay_v6, lobby, peer, Match::Address)?;
        let bandwidth = self.settings.bandwidth;
        let a = self.allocations.get_mut(&tuple).expect("checked above");
        // Rebinding rules (RFC 8656 §12): a number keeps its peer, a peer keeps its number.
        if a.channels.get(&number).is_some_and(|c| c.peer != peer)
            || a.channels
                .iter()
                .any(|(&n, c)| c.peer == peer && n != number)
        {
            return Err(Reject::BadRequest);
        }
        if a.channels.len() >= MAX_CHANNELS && !a.channels.contains_key(&number) {
            return Err(Reject::InsufficientCapacity);
        }
        a.channels.insert(
            number,
            Channel {
                peer,
                expires: clock.now + CHANNEL_LIFETIME,
            },
        );
        permit(a, peer.ip(), restricted, clock.now)?;
        effects.push(Effect::Grants {
            tuple,
            grants: grants_of(a, bandwidth),
        });
        Ok(Vec::new())
    }

    /// The allocation on `tuple`, if `identity` made it (437 without one, 441 for another user).
    fn owned(&self, tuple: FiveTuple, identity: &Identity) -> Result<&Allocation, Reject> {
        let a = self
            .allocations
            .get(&tuple)
            .ok_or(Reject::AllocationMismatch)?;
        if a.username != identity.username {
            return Err(Reject::WrongCredentials);
        }
        Ok(a)
    }

    /// Whether `peer` may be reached from a relay of the given family: 443 across families, 403
    /// by policy; `Ok(true)` when allowed only as one of this server's own relay addresses (the
    /// data plane then checks every packet's destination against them). An allocation bound to
    /// a lobby may reach only what members of its lobby announced (policy still applies) and,
    /// always restricted, relay addresses of its own lobby's allocations.
    fn vet(
        &self,
        relay_v6: bool,
        lobby: Option<u64>,
        peer: SocketAddr,
        by: Match,
    ) -> Result<bool, Reject> {
        let own = match (by, lobby) {
            (Match::Ip, _) => self.allocations.is_relay_ip(peer.ip()),
            (Match::Address, None) => self.is_own_relay(peer),
            (Match::Address, Some(_)) => self.reaches_relay(lobby, peer),
        };
        if peer.is_ipv6() != relay_v6 {
            return Err(Reject::PeerAddressFamilyMismatch);
        }
        match lobby {
            Some(_) if own => Ok(true),
            Some(l)
                if self.lobbies.announced(l, peer.ip())
                    && self.settings.policy.allows(peer.ip()) =>
            {
                Ok(false)
            }
            Some(_) => Err(Reject::Forbidden),
            None if self.settings.policy.allows(peer.ip()) => Ok(false),
            None if own => Ok(true),
            None => Err(Reject::Forbidden),
        }
    }

    fn delete(&mut self, tuple: FiveTuple, why: Ended, ports: &mut dyn RelayPorts) -> Effect {
        let (a, lobby_unused) = self
            .allocations
            .remove(&tuple)
            .expect("deleting a live allocation");
        if let Some(l) = a.lobby
            && lobby_unused
        {
            self.lobbies.allocations_gone(l);
        }
        ports.close(a.relay);
        Effect::Deleted { tuple, why }
    }
}

/// Installs or refreshes the permission for `ip`, within the per-allocation cap (508 beyond).
fn permit(a: &mut Allocation, ip: IpAddr, restricted: bool, now: Instant) -> Result<(), Reject> {
    if a.permissions.len() >= MAX_PERMISSIONS && !a.permissions.contains_key(&ip) {
        return Err(Reject::InsufficientCapacity);
    }
    let expires = now + PERMISSION_LIFETIME;
    a.permissions.insert(
        ip,
        Permission {
            expires,
            restricted,
        },
    );
    Ok(())
}

fn grants_of(a: &Allocation, bandwidth: BitRate) -> Arc<Grants> {
    Arc::new(Grants {
        permissions: a.permissions.iter().map(|(ip, p)| (*ip, *p)).collect(),
        channels: a
            .channels
            .iter()
            .map(|(n, c)| (*n, c.peer, c.expires))
            .collect(),
        bandwidth,
    })
}

/// Lifetime asked for, within [default, max] (RFC 8656 §7.2, §7.3).
fn requested_lifetime(request: &Message, settings: &Settings) -> Duration {
    let (default, max) = (
        settings.allocation_lifetime,
        settings.max_allocation_lifetime,
    );
    get::<Lifetime>(request)
        .map_or(default, |l| l.0)
        .clamp(default, max.max(default))
}

fn get<T: Getter + Default>(m: &Message) -> Option<T> {
    let mut value = T::default();
    value.get_from(m).ok().map(|_| value)
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
