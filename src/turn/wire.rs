//! TURN on the wire, in one place (RFC 8489, RFC 8656, RFC 6156): telling STUN from ChannelData,
//! framing a byte stream, framing relayed data in place (ChannelData and Data indications),
//! reading Send indications without copying, XOR-encoded addresses, error codes and responses.
//! Message parsing and attribute types come from the `stun` and `webrtc-turn` crates; what is
//! here is what they do not do, or do with an allocation per packet.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use stun::attributes::{ATTR_SOFTWARE, AttrType};
use stun::error_code::{ErrorCode, ErrorCodeAttribute};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{Message, MessageClass, MessageType, Setter};
use stun::textattrs::TextAttribute;

pub const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const SEND_INDICATION: [u8; 2] = [0x00, 0x16];
const DATA_INDICATION: [u8; 2] = [0x00, 0x17];
const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
const ATTR_DATA: u16 = 0x0013;
pub const ATTR_ADDITIONAL_ADDRESS_FAMILY: AttrType = AttrType(0x8000);
pub const ATTR_ADDRESS_ERROR_CODE: AttrType = AttrType(0x8001);
pub const FAMILY_IPV4: u8 = 0x01;
pub const FAMILY_IPV6: u8 = 0x02;
/// REQUESTED-TRANSPORT's value for UDP.
pub const PROTO_UDP: u8 = 17;

/// The error codes this server answers with (RFC 8489 §14.8, RFC 8656 §19, RFC 6156).
/// Why a request is refused: each one error code of RFC 8489 §14.8 or RFC 8656 §18.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    BadRequest,
    Unauthorized,
    Forbidden,
    UnknownAttribute,
    AllocationMismatch,
    StaleNonce,
    AddressFamilyNotSupported,
    WrongCredentials,
    UnsupportedTransport,
    PeerAddressFamilyMismatch,
    AllocationQuotaReached,
    InsufficientCapacity,
}

impl Reject {
    /// Its ERROR-CODE number.
    pub fn code(self) -> u16 {
        match self {
            Reject::BadRequest => 400,
            Reject::Unauthorized => 401,
            Reject::Forbidden => 403,
            Reject::UnknownAttribute => 420,
            Reject::AllocationMismatch => 437,
            Reject::StaleNonce => 438,
            Reject::AddressFamilyNotSupported => 440,
            Reject::WrongCredentials => 441,
            Reject::UnsupportedTransport => 442,
            Reject::PeerAddressFamilyMismatch => 443,
            Reject::AllocationQuotaReached => 486,
            Reject::InsufficientCapacity => 508,
        }
    }

    /// The RFC's reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::BadRequest => "Bad Request",
            Reject::Unauthorized => "Unauthorized",
            Reject::Forbidden => "Forbidden",
            Reject::UnknownAttribute => "Unknown Attribute",
            Reject::AllocationMismatch => "Allocation Mismatch",
            Reject::StaleNonce => "Stale Nonce",
            Reject::AddressFamilyNotSupported => "Address Family not Supported",
            Reject::WrongCredentials => "Wrong Credentials",
            Reject::UnsupportedTransport => "Unsupported Transport Protocol",
            Reject::PeerAddressFamilyMismatch => "Peer Address Family Mismatch",
            Reject::AllocationQuotaReached => "Allocation Quota Reached",
            Reject::InsufficientCapacity => "Insufficient Capacity",
        }
    }
}

/// Room in front of a received datagram for the largest header put there: a Data indication
/// with an IPv6 peer (20 header + 24 XOR-PEER-ADDRESS + 4 DATA header).
pub const HEADROOM: usize = 48;

/// What a client sent, told from its first bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    ChannelData(u16, &'a [u8]),
    Send,
    Control,
    Junk,
}

/// RFC 8656 §12: the first two bits tell STUN (00) from ChannelData (01).
pub fn classify(packet: &[u8]) -> Packet<'_> {
    match packet {
        [0x40..=0x7f, _, len_hi, len_lo, rest @ ..] => {
            let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
            match rest.get(..len) {
                Some(payload) => {
                    Packet::ChannelData(u16::from_be_bytes([packet[0], packet[1]]), payload)
                }
                None => Packet::Junk,
            }
        }
        [a, b, ..] if [*a, *b] == SEND_INDICATION => Packet::Send,
        [0x00..=0x3f, ..] if packet.len() >= 20 => Packet::Control,
        _ => Packet::Junk,
    }
}

/// The whole length of the frame starting at `buf[0]` of a TURN byte stream (TCP or TLS), where
/// STUN messages and ChannelData frames follow each other with no other framing (RFC 8656
/// §12.5), once enough of its header has arrived.
///
/// `Ok(None)`: need more bytes. `Err(NotTurn)`: close the stream.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, NotTurn> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    match buf[0] {
        // STUN: 20-byte header, attributes padded to 4 already counted in the length.
        0x00..=0x3f if length.is_multiple_of(4) => Ok(Some(20 + length)),
        // ChannelData: 4-byte header; over streams the data is padded to 4 (§12.5).
        0x40..=0x7f => Ok(Some(4 + length.next_multiple_of(4))),
        _ => Err(NotTurn),
    }
}

/// A byte stream that is neither STUN nor ChannelData.
#[derive(Debug, PartialEq, Eq)]
pub struct NotTurn;

/// The peer and the data of a Send indication (RFC 8656 §11.3), read in place; `None` unless it
/// has exactly one XOR-PEER-ADDRESS and a DATA attribute.
pub fn send_indication(packet: &[u8]) -> Option<(SocketAddr, &[u8])> {
    let length = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    if packet.get(4..8)? != MAGIC_COOKIE || packet.len() < 20 + length {
        return None;
    }
    let txid: &[u8; 12] = packet[8..20].try_into().ok()?;
    let mut attrs = &packet[20..20 + length];
    let (mut peer, mut data) = (None, None);
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let n = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + n)?;
        match kind {
            ATTR_XOR_PEER_ADDRESS if peer.is_some() => return None,
            ATTR_XOR_PEER_ADDRESS => peer = Some(xor_address(value, txid)?),
            ATTR_DATA => data = data.or(Some(value)),
            _ => {}
        }
        attrs = attrs.get((4 + n).next_multiple_of(4)..).unwrap_or_default();
    }
    Some((peer?, data?))
}

/// Decodes an XOR-MAPPED/PEER/RELAYED-ADDRESS value (RFC 8489 §14.2).
pub fn xor_address(v: &[u8], txid: &[u8; 12]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*v.get(2)? ^ MAGIC_COOKIE[0], v[3] ^ MAGIC_COOKIE[1]]);
    let ip = match (v[1], v.len()) {
        (FAMILY_IPV4, 8) => IpAddr::from(std::array::from_fn::<u8, 4, _>(|i| {
            v[4 + i] ^ MAGIC_COOKIE[i]
        })),
        (FAMILY_IPV6, 20) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE);
            key[4..].copy_from_slice(txid);
            IpAddr::from(std::array::from_fn::<u8, 16, _>(|i| v[4 + i] ^ key[i]))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Every XOR-encoded address of type `attr` in a request (CreatePermission may carry several);
/// 400 for one that does not decode.
pub fn xor_addresses(m: &Message, attr: AttrType) -> Result<Vec<SocketAddr>, Reject> {
    m.attributes
        .0
        .iter()
        .filter(|a| a.typ == attr)
        .map(|raw| xor_address(&raw.value, &m.transaction_id.0).ok_or(Reject::BadRequest))
        .collect()
}

/// The family byte of a (REQUESTED|ADDITIONAL)-ADDRESS-FAMILY attribute; 440 for an unknown one.
pub fn family(m: &Message, attr: AttrType) -> Result<Option<u8>, Reject> {
    match m.attributes.get(attr) {
        (raw, true) => match raw.value.first() {
            Some(&f) if f == FAMILY_IPV4 || f == FAMILY_IPV6 => Ok(Some(f)),
            Some(_) => Err(Reject::AddressFamilyNotSupported),
            None => Err(Reject::BadRequest),
        },
        _ => Ok(None),
    }
}

/// Frames `buf[HEADROOM..HEADROOM + len]` as ChannelData (RFC 8656 §12.4); on stream transports
/// the frame is padded to a multiple of 4.
pub fn channel_data(buf: &mut [u8], channel: u16, len: usize, pad: bool) -> Range<usize> {
    let start = HEADROOM - 4;
    buf[start..start + 2].copy_from_slice(&channel.to_be_bytes());
    buf[start + 2..HEADROOM].copy_from_slice(&(len as u16).to_be_bytes());
    let mut end = HEADROOM + len;
    if pad {
        let padded = HEADROOM + len.next_multiple_of(4);
        buf[end..padded].fill(0);
        end = padded;
    }
    start..end
}

/// Frames `buf[HEADROOM..HEADROOM + len]` as a Data indication from `peer` (RFC 8656 §11.4),
/// with a transaction id made from `sequence`.
pub fn data_indication(
    buf: &mut [u8],
    peer: SocketAddr,
    len: usize,
    sequence: u64,
) -> Range<usize> {
    let address_len = if peer.is_ipv4() { 8 } else { 20 };
    let start = HEADROOM - 4 - (4 + address_len) - 20;
    let mut txid = [0u8; 12];
    txid[4..].copy_from_slice(&sequence.to_be_bytes());
    let padded = len.next_multiple_of(4);
    let body = 4 + address_len + 4 + padded;

    let h = &mut buf[start..HEADROOM];
    h[0..2].copy_from_slice(&DATA_INDICATION);
    h[2..4].copy_from_slice(&(body as u16).to_be_bytes());
    h[4..8].copy_from_slice(&MAGIC_COOKIE);
    h[8..20].copy_from_slice(&txid);
    h[20..22].copy_from_slice(&ATTR_XOR_PEER_ADDRESS.to_be_bytes());
    h[22..24].copy_from_slice(&(address_len as u16).to_be_bytes());
    h[24] = 0;
    h[25] = if peer.is_ipv4() {
        FAMILY_IPV4
    } else {
        FAMILY_IPV6
    };
    let port = peer.port() ^ u16::from_be_bytes([MAGIC_COOKIE[0], MAGIC_COOKIE[1]]);
    h[26..28].copy_from_slice(&port.to_be_bytes());
    match peer {
        SocketAddr::V4(v4) => {
            for (i, b) in v4.ip().octets().iter().enumerate() {
                h[28 + i] = b ^ MAGIC_COOKIE[i];
            }
        }
        SocketAddr::V6(v6) => {
            for (i, b) in v6.ip().octets().iter().enumerate() {
                let key = if i < 4 { MAGIC_COOKIE[i] } else { txid[i - 4] };
                h[28 + i] = b ^ key;
            }
        }
    }
    let d = 28 + address_len - 4;
    h[d..d + 2].copy_from_slice(&ATTR_DATA.to_be_bytes());
    h[d + 2..d + 4].copy_from_slice(&(len as u16).to_be_bytes());
    buf[HEADROOM + len..HEADROOM + padded].fill(0);
    start..HEADROOM + padded
}

/// The ERROR-CODE attribute of `reject`, with the RFC's reason phrase.
pub fn error_code(reject: Reject) -> Box<dyn Setter> {
    Box::new(ErrorCodeAttribute {
        code: ErrorCode(reject.code()),
        reason: reject.reason().as_bytes().to_vec(),
    })
}

/// A response to `request` of `class`, signed when `integrity` is given, with a FINGERPRINT when
/// the request had one.
pub fn response(
    request: &Message,
    class: MessageClass,
    attrs: Vec<Box<dyn Setter>>,
    integrity: Option<&MessageIntegrity>,
    fingerprint: bool,
) -> Vec<u8> {
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(request.clone()),
        Box::new(MessageType::new(request.typ.method, class)),
    ];
    setters.extend(attrs);
    setters.push(Box::new(TextAttribute::new(
        ATTR_SOFTWARE,
        "rallypoint".into(),
    )));
    if let Some(i) = integrity {
        setters.push(Box::new(i.clone()));
    }
    if fingerprint {
        setters.push(Box::new(FINGERPRINT));
    }
    let mut m = Message::new();
    m.build(&setters).expect("well-formed attributes");
    m.raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::agent::TransactionId;
    use stun::message::{CLASS_INDICATION, Getter, METHOD_DATA, METHOD_SEND};
    use webrtc_turn::proto::data::Data;
    use webrtc_turn::proto::peeraddr::PeerAddress;

    #[test]
    fn packets_are_classified_by_their_first_bytes() {
        assert_eq!(
            classify(b"\x40\x01\x00\x03abc"),
            Packet::ChannelData(0x4001, b"abc")
        );
        assert_eq!(
            classify(b"\x40\x01\x00\x03ab"),
            Packet::Junk,
            "short ChannelData"
        );
        assert_eq!(classify(&[0x00, 0x16, 0, 0]), Packet::Send);
        let binding = [
            0x00, 0x03, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(classify(&binding), Packet::Control);
        assert_eq!(classify(&[0x00, 0x03]), Packet::Junk);
        assert_eq!(classify(b"\xff\xff"), Packet::Junk);
        assert_eq!(classify(b""), Packet::Junk);
    }

    #[test]
    fn stream_frame_lengths_of_stun_and_channel_data() {
        assert_eq!(stream_frame_len(&[0x00, 0x01]), Ok(None));
        assert_eq!(stream_frame_len(&[0x00, 0x01, 0x00, 0x08]), Ok(Some(28)));
        assert_eq!(stream_frame_len(&[0x40, 0x00, 0x00, 0x05]), Ok(Some(12)));
        assert_eq!(stream_frame_len(&[0x4f, 0xff, 0x00, 0x00]), Ok(Some(4)));
        assert_eq!(
            stream_frame_len(&[0x7f, 0xff, 0, 4]),
            Ok(Some(8)),
            "RFC 5766's range"
        );
        // Text passes as a ChannelData header ("GET " is channel 0x4745) only to be dropped for
        // an unbound channel; bytes from 0x80 up are neither STUN nor ChannelData.
        assert_eq!(stream_frame_len(b"\x80\x00\x00\x04"), Err(NotTurn));
        assert_eq!(stream_frame_len(&[0x00, 0x01, 0x00, 0x07]), Err(NotTurn));
        assert_eq!(stream_frame_len(&[0xc0, 0, 0, 0]), Err(NotTurn));
    }

    fn with_payload(payload: &[u8]) -> [u8; 128] {
        let mut buf = [0xAA; 128];
        buf[HEADROOM..HEADROOM + payload.len()].copy_from_slice(payload);
        buf
    }

    #[test]
    fn channel_data_frames_with_and_without_padding() {
        let mut buf = with_payload(b"hello");
        let f = channel_data(&mut buf, 0x4001, 5, false);
        assert_eq!(&buf[f], b"\x40\x01\x00\x05hello");
        let f = channel_data(&mut buf, 0x4001, 5, true);
        assert_eq!(&buf[f], b"\x40\x01\x00\x05hello\0\0\0");
    }

    #[test]
    fn data_indications_decode_with_the_stun_crate() {
        for peer in ["203.0.113.9:40000", "[2001:db8::9]:40000"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let mut buf = with_payload(b"payload");
            let f = data_indication(&mut buf, peer, 7, 42);
            let mut m = Message::new();
            m.raw = buf[f].to_vec();
            m.decode().unwrap();
            assert_eq!(m.typ, MessageType::new(METHOD_DATA, CLASS_INDICATION));
            let mut data = Data::default();
            data.get_from(&m).unwrap();
            assert_eq!(data.0, b"payload");
            let mut from = PeerAddress::default();
            from.get_from(&m).unwrap();
            assert_eq!(SocketAddr::new(from.ip, from.port), peer);
        }
    }

    fn send(attrs: Vec<Box<dyn Setter>>) -> Vec<u8> {
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
        ];
        setters.extend(attrs);
        let mut m = Message::new();
        m.build(&setters).unwrap();
        m.raw
    }

    #[test]
    fn send_indications_built_by_the_stun_crate_are_read_in_place() {
        for peer in ["203.0.113.9:40000", "[2001:db8::9]:40000"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let address = || {
                Box::new(PeerAddress {
                    ip: peer.ip(),
                    port: peer.port(),
                }) as Box<dyn Setter>
            };
            let packet = send(vec![address(), Box::new(Data(b"odd".to_vec()))]);
            assert_eq!(send_indication(&packet), Some((peer, &b"odd"[..])));
            assert_eq!(send_indication(&send(vec![address()])), None, "no DATA");
            let two = send(vec![address(), address(), Box::new(Data(b"x".to_vec()))]);
            assert_eq!(send_indication(&two), None, "two peers");
            assert_eq!(
                send_indication(&packet[..packet.len() - 4]),
                None,
                "cut short"
            );
        }
    }
}
