//! The two wire dialects of Godot's signalling protocol, decoded into one set of commands and
//! encoded from one set of events.
//!
//! Godot 4 (JSON): each text frame is `{"type": int, "id": int, "data": string}`; GDScript sends
//! every number as a float, so `1.0` means 1 (and, as in the reference server, fractions are
//! floored). Godot 3 (text): `"<C>: <arg>\n<payload>"`. A connection's first frame fixes its
//! dialect: `{` starts JSON, anything else is read as text.

use std::fmt::Write;

/// Message type numbers of the Godot 4 protocol.
pub mod kind {
    pub const JOIN: u8 = 0;
    pub const ID: u8 = 1;
    pub const PEER_CONNECT: u8 = 2;
    pub const PEER_DISCONNECT: u8 = 3;
    pub const OFFER: u8 = 4;
    pub const ANSWER: u8 = 5;
    pub const CANDIDATE: u8 = 6;
    pub const SEAL: u8 = 7;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Json,
    Text,
}

impl Dialect {
    /// The dialect a connection speaks, judged from its first frame.
    pub fn detect(first_frame: &str) -> Dialect {
        if first_frame.starts_with('{') {
            Dialect::Json
        } else {
            Dialect::Text
        }
    }
}

/// The WebRTC negotiation messages the hub passes between members: offers, answers, candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiation {
    Offer,
    Answer,
    Candidate,
}

impl Negotiation {
    fn kind(self) -> u8 {
        match self {
            Negotiation::Offer => kind::OFFER,
            Negotiation::Answer => kind::ANSWER,
            Negotiation::Candidate => kind::CANDIDATE,
        }
    }

    fn letter(self) -> char {
        match self {
            Negotiation::Offer => 'O',
            Negotiation::Answer => 'A',
            Negotiation::Candidate => 'C',
        }
    }
}

/// A client's request, in either dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `lobby` empty = create one; `mesh` matters only then.
    Join {
        lobby: String,
        mesh: bool,
    },
    Seal,
    /// `to` as the sender wrote it (1 = the host); `payload` passes through byte for byte.
    Relay {
        what: Negotiation,
        to: u64,
        payload: String,
    },
    /// Well-formed, but a type clients do not send (the reference answers "Invalid command").
    Other,
}

/// A frame that is not a message of its dialect.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// What the server tells a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The id this peer has in its lobby, and whether the lobby is a mesh.
    Id {
        id: u32,
        mesh: bool,
    },
    PeerConnect(u32),
    PeerDisconnect(u32),
    Joined(&'a str),
    Sealed,
    Relay {
        what: Negotiation,
        from: u32,
        payload: &'a str,
    },
}

pub fn decode(dialect: Dialect, frame: &str) -> Result<Command, Malformed> {
    match dialect {
        Dialect::Json => decode_json(frame),
        Dialect::Text => decode_text(frame),
    }
}

fn decode_json(frame: &str) -> Result<Command, Malformed> {
    let value: serde_json::Value = serde_json::from_str(frame).map_err(|_| Malformed)?;
    // As the reference: a number field is floored, anything else counts as missing (-1), and a
    // missing or negative type or id is malformed; non-string data counts as "".
    let number = |key: &str| value.get(key).and_then(|v| v.as_f64()).map(f64::floor);
    let (Some(kind), Some(id)) = (number("type"), number("id")) else {
        return Err(Malformed);
    };
    if !(kind >= 0.0 && id >= 0.0) {
        return Err(Malformed);
    }
    let data = value.get("data").and_then(|d| d.as_str()).unwrap_or("");
    // Saturating: an absurd id is simply no member's id.
    let id = id as u64;
    let relay = |what| Command::Relay {
        what,
        to: id,
        payload: data.to_string(),
    };
    Ok(match kind {
        k if k == f64::from(kind::JOIN) => Command::Join {
            lobby: data.to_string(),
            mesh: id == 0,
        },
        k if k == f64::from(kind::SEAL) => Command::Seal,
        k if k == f64::from(kind::OFFER) => relay(Negotiation::Offer),
        k if k == f64::from(kind::ANSWER) => relay(Negotiation::Answer),
        k if k == f64::from(kind::CANDIDATE) => relay(Negotiation::Candidate),
        _ => Command::Other,
    })
}

fn decode_text(frame: &str) -> Result<Command, Malformed> {
    let (head, payload) = frame.split_once('\n').ok_or(Malformed)?;
    if head.len() < 3 {
        return Err(Malformed);
    }
    let arg = head.get(3..).unwrap_or("");
    let relay = |what| {
        let to = arg.trim().parse().map_err(|_| Malformed)?;
        Ok(Command::Relay {
            what,
            to,
            payload: payload.to_string(),
        })
    };
    match head.get(..3) {
        // Godot 3 lobbies have no client/server mode: every lobby is a mesh.
        Some("J: ") => Ok(Command::Join {
            lobby: arg.to_string(),
            mesh: true,
        }),
        Some("S: ") => Ok(Command::Seal),
        Some("O: ") => relay(Negotiation::Offer),
        Some("A: ") => relay(Negotiation::Answer),
        Some("C: ") => relay(Negotiation::Candidate),
        _ => Ok(Command::Other),
    }
}

pub fn encode(dialect: Dialect, event: &Event) -> String {
    match dialect {
        Dialect::Json => {
            let (kind, id, data) = match *event {
                Event::Id { id, mesh } => (kind::ID, id, if mesh { "true" } else { "" }),
                Event::PeerConnect(id) => (kind::PEER_CONNECT, id, ""),
                Event::PeerDisconnect(id) => (kind::PEER_DISCONNECT, id, ""),
                Event::Joined(lobby) => (kind::JOIN, 0, lobby),
                Event::Sealed => (kind::SEAL, 0, ""),
                Event::Relay {
                    what,
                    from,
                    payload,
                } => (what.kind(), from, payload),
            };
            // The reference's exact field order and spacing: {"type":..,"id":..,"data":..}.
            let data = serde_json::to_string(data).expect("strings serialise");
            format!("{{\"type\":{kind},\"id\":{id},\"data\":{data}}}")
        }
        Dialect::Text => {
            let mut s = String::new();
            let _ = match *event {
                Event::Id { id, .. } => writeln!(s, "I: {id}"),
                Event::PeerConnect(id) => writeln!(s, "N: {id}"),
                Event::PeerDisconnect(id) => writeln!(s, "D: {id}"),
                Event::Joined(lobby) => writeln!(s, "J: {lobby}"),
                Event::Sealed => writeln!(s, "S: "),
                Event::Relay {
                    what,
                    from,
                    payload,
                } => write!(s, "{}: {from}\n{payload}", what.letter()),
            };
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(frame: &str) -> Result<Command, Malformed> {
        decode(Dialect::Json, frame)
    }

    #[test]
    fn json_numbers_may_be_floats() {
        assert_eq!(
            json(r#"{"type":0.0,"id":1.0,"data":""}"#),
            Ok(Command::Join {
                lobby: String::new(),
                mesh: false
            })
        );
        assert_eq!(
            json(r#"{"type":0,"id":0,"data":"ABC"}"#),
            Ok(Command::Join {
                lobby: "ABC".into(),
                mesh: true
            })
        );
        assert_eq!(
            json(
                r#"{"type":6.0,"id":1.0,"data":"\n0\n0\ncandidate:1 1 udp 1 1.2.3.4 5 typ host"}"#
            ),
            Ok(Command::Relay {
                what: Negotiation::Candidate,
                to: 1,
                payload: "\n0\n0\ncandidate:1 1 udp 1 1.2.3.4 5 typ host".into()
            })
        );
        assert_eq!(
            json(r#"{"type":7.9,"id":0.2}"#),
            Ok(Command::Seal),
            "floored like the reference"
        );
    }

    #[test]
    fn malformed_json_frames() {
        for frame in [
            "",
            "{",
            "null",
            "[]",
            "\"text\"",
            r#"{"type":"0","id":0}"#,
            r#"{"type":0}"#,
            r#"{"id":0}"#,
            r#"{"type":-1,"id":0}"#,
            r#"{"type":4,"id":-1,"data":""}"#,
            r#"{"type":4,"id":null,"data":""}"#,
        ] {
            assert_eq!(json(frame), Err(Malformed), "{frame}");
        }
        assert_eq!(json(r#"{"type":2,"id":0}"#), Ok(Command::Other));
        assert_eq!(json(r#"{"type":100,"id":0}"#), Ok(Command::Other));
        assert_eq!(
            json(r#"{"type":4,"id":1e300,"data":7}"#),
            Ok(Command::Relay {
                what: Negotiation::Offer,
                to: u64::MAX,
                payload: String::new()
            }),
            "huge ids saturate; non-string data is empty"
        );
    }

    #[test]
    fn json_events_use_the_reference_field_order_and_integers() {
        let e = |ev: Event| encode(Dialect::Json, &ev);
        assert_eq!(
            e(Event::Id { id: 1, mesh: true }),
            r#"{"type":1,"id":1,"data":"true"}"#
        );
        assert_eq!(
            e(Event::Id {
                id: 77,
                mesh: false
            }),
            r#"{"type":1,"id":77,"data":""}"#
        );
        assert_eq!(e(Event::PeerConnect(5)), r#"{"type":2,"id":5,"data":""}"#);
        assert_eq!(
            e(Event::PeerDisconnect(5)),
            r#"{"type":3,"id":5,"data":""}"#
        );
        assert_eq!(
            e(Event::Joined("AbC123")),
            r#"{"type":0,"id":0,"data":"AbC123"}"#
        );
        assert_eq!(e(Event::Sealed), r#"{"type":7,"id":0,"data":""}"#);
        assert_eq!(
            e(Event::Relay {
                what: Negotiation::Candidate,
                from: 1,
                payload: "\n0\n0\ncandidate:\"x\"\u{1}é"
            }),
            r#"{"type":6,"id":1,"data":"\n0\n0\ncandidate:\"x\"\u0001é"}"#,
            "escaped as JSON.stringify does"
        );
    }

    #[test]
    fn text_dialect_round_trip() {
        let t = |frame: &str| decode(Dialect::Text, frame);
        assert_eq!(
            t("J: \n"),
            Ok(Command::Join {
                lobby: String::new(),
                mesh: true
            })
        );
        assert_eq!(
            t("J: lobby\n"),
            Ok(Command::Join {
                lobby: "lobby".into(),
                mesh: true
            })
        );
        assert_eq!(t("S: \n"), Ok(Command::Seal));
        assert_eq!(
            t("C: 1\n\n0\n0\ncandidate:x"),
            Ok(Command::Relay {
                what: Negotiation::Candidate,
                to: 1,
                payload: "\n0\n0\ncandidate:x".into()
            })
        );
        assert_eq!(t("X: 1\n"), Ok(Command::Other));
        for bad in ["J: lobby", "J:\n", "", "O: two\nsdp", "O: -1\nsdp"] {
            assert_eq!(t(bad), Err(Malformed), "{bad:?}");
        }
        let e = |ev: Event| encode(Dialect::Text, &ev);
        assert_eq!(e(Event::Id { id: 1, mesh: true }), "I: 1\n");
        assert_eq!(e(Event::PeerConnect(9)), "N: 9\n");
        assert_eq!(e(Event::PeerDisconnect(9)), "D: 9\n");
        assert_eq!(e(Event::Joined("abc")), "J: abc\n");
        assert_eq!(e(Event::Sealed), "S: \n");
        assert_eq!(
            e(Event::Relay {
                what: Negotiation::Offer,
                from: 4,
                payload: "v=0\r\n"
            }),
            "O: 4\nv=0\r\n"
        );
    }

    #[test]
    fn dialect_is_judged_by_the_first_character() {
        assert_eq!(Dialect::detect("{\"type\":0}"), Dialect::Json);
        assert_eq!(Dialect::detect("J: \n"), Dialect::Text);
    }
}
