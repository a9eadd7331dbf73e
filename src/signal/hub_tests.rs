use std::collections::HashSet;

use super::*;

const T0: Duration = Duration::ZERO;

/// Drives a hub on a fake clock and keeps what it sent, per connection.
struct Harness {
    hub: Hub,
    start: Instant,
    now: Duration,
    sent: HashMap<ConnId, Vec<String>>,
    closed: HashMap<ConnId, (u16, &'static str)>,
    /// Every output in order, to check ordering across connections.
    log: Vec<Output>,
    /// What the hub told the relay, in order.
    relay: Vec<LobbyEvent>,
}

fn limits() -> Limits {
    Limits {
        max_peers: 100,
        max_lobbies: 10,
        max_lobby_members: 0,
        join_timeout: Duration::from_secs(1),
        seal_close_delay: Duration::from_secs(10),
        ..Limits::from(&crate::config::Signal::default())
    }
}

impl Harness {
    fn new() -> Self {
        Self::with(limits())
    }

    fn with(limits: Limits) -> Self {
        let start = Instant::now();
        Harness {
            hub: Hub::new(limits, start + T0, Random::seeded(0x5eed)),
            start,
            now: T0,
            sent: HashMap::new(),
            closed: HashMap::new(),
            log: Vec::new(),
            relay: Vec::new(),
        }
    }

    fn at(&self) -> Instant {
        self.start + self.now
    }

    fn record(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            match &o {
                Output::Send { to, frame } => self.sent.entry(*to).or_default().push(frame.clone()),
                Output::Close { to, reason } => {
                    assert!(
                        self.closed
                            .insert(*to, (reason.code(), reason.text()))
                            .is_none(),
                        "closed twice: {to}"
                    );
                }
                Output::Relay(event) => self.relay.push(*event),
                Output::Listed { .. } | Output::FailedJoin(_) | Output::Entered(_) => {}
                // As the shell sends them, with the user part in place of minted servers.
                Output::IceServers { to, user } => {
                    let servers = serde_json::json!({ "user": user });
                    let frame = ext::encode(&ext::ExtEvent::IceServers(&servers));
                    self.sent.entry(*to).or_default().push(frame);
                }
            }
            self.log.push(o);
        }
    }

    fn connect(&mut self, c: ConnId) {
        self.connect_as(c, false, [127, 0, 0, 1]);
    }

    fn connect_as(&mut self, c: ConnId, extension: bool, source: [u8; 4]) {
        let client = Client {
            extension,
            source: std::net::Ipv4Addr::from(source).into(),
        };
        let out = self.hub.connect(c, client, self.at());
        self.record(out);
    }

    fn send(&mut self, c: ConnId, frame: &str) {
        let out = self.hub.message(c, frame, self.at());
        self.record(out);
    }

    /// `c`'s socket drops (no close frame).
    fn leave(&mut self, c: ConnId) {
        let out = self.hub.disconnect(c, Departure::Lost, self.at());
        self.record(out);
    }

    /// `c` closes its socket on purpose (a close frame with 1000).
    fn quit(&mut self, c: ConnId) {
        let out = self.hub.disconnect(c, Departure::Left, self.at());
        self.record(out);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        let out = self.hub.tick(self.at());
        self.record(out);
    }

    /// Takes the frames `c` has been sent so far.
    fn frames(&mut self, c: ConnId) -> Vec<String> {
        self.sent.remove(&c).unwrap_or_default()
    }

    fn closed(&self, c: ConnId) -> Option<(u16, &'static str)> {
        self.closed.get(&c).copied()
    }

    /// Connects `c` and has it create a lobby; returns the lobby's name.
    fn host(&mut self, c: ConnId, mesh: bool) -> String {
        self.connect(c);
        self.send(
            c,
            &format!(
                r#"{{"type":0,"id":{},"data":""}}"#,
                if mesh { 0 } else { 1 }
            ),
        );
        let frames = self.frames(c);
        let joined: serde_json::Value = serde_json::from_str(frames.last().unwrap()).unwrap();
        joined["data"].as_str().unwrap().to_string()
    }

    /// Connects `c` into `lobby`; returns the id it was assigned.
    fn join(&mut self, c: ConnId, lobby: &str) -> u32 {
        self.connect(c);
        self.send(c, &format!(r#"{{"type":0.0,"id":0.0,"data":"{lobby}"}}"#));
        let frames = self.sent.get(&c).unwrap();
        let id: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(id["type"], 1, "{frames:?}");
        id["id"].as_u64().unwrap() as u32
    }
}

fn json(kind: u8, id: u32, data: &str) -> String {
    codec::encode(
        Dialect::Json,
        &match kind {
            codec::kind::ID => Event::Id {
                id,
                mesh: data == "true",
            },
            codec::kind::PEER_CONNECT => Event::PeerConnect(id),
            codec::kind::PEER_DISCONNECT => Event::PeerDisconnect(id),
            codec::kind::JOIN => Event::Joined(data),
            codec::kind::SEAL => Event::Sealed,
            _ => unreachable!(),
        },
    )
}

#[test]
fn creator_is_host_with_id_1_and_a_16_character_lobby_name() {
    let mut h = Harness::new();
    h.connect(1);
    h.send(1, r#"{"type":0.0,"id":0.0,"data":""}"#);
    let frames = h.frames(1);
    assert_eq!(frames[0], r#"{"type":1,"id":1,"data":"true"}"#);
    let joined: serde_json::Value = serde_json::from_str(&frames[1]).unwrap();
    assert_eq!(
        (joined["type"].as_u64(), joined["id"].as_u64()),
        (Some(0), Some(0))
    );
    let name = joined["data"].as_str().unwrap();
    assert_eq!(name.len(), 16);
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
    assert_eq!(frames.len(), 2);
}

#[test]
fn join_sequence_in_a_mesh_lobby_follows_the_reference_order() {
    let mut h = Harness::new();
    let lobby = h.host(10, true);
    let a = h.join(11, &lobby);
    h.frames(11);
    h.log.clear();
    h.connect(12);
    h.send(12, &format!(r#"{{"type":0,"id":0,"data":"{lobby}"}}"#));
    let b = match &h.log[0] {
        Output::Send { to: 12, frame } => serde_json::from_str::<serde_json::Value>(frame).unwrap()
            ["id"]
            .as_u64()
            .unwrap() as u32,
        other => panic!("{other:?}"),
    };
    let expected = vec![
        Output::Send {
            to: 12,
            frame: json(1, b, "true"),
        },
        Output::Send {
            to: 10,
            frame: json(2, b, ""),
        },
        Output::Send {
            to: 12,
            frame: json(2, 1, ""),
        },
        Output::Send {
            to: 11,
            frame: json(2, b, ""),
        },
        Output::Send {
            to: 12,
            frame: json(2, a, ""),
        },
        Output::Send {
            to: 12,
            frame: json(0, 0, &lobby),
        },
        Output::Entered(12),
    ];
    assert_eq!(h.log, expected);
}

#[test]
fn client_server_lobbies_only_introduce_host_and_clients() {
    let mut h = Harness::new();
    let lobby = h.host(10, false);
    let a = h.join(11, &lobby);
    assert_eq!(
        h.frames(11),
        [json(1, a, ""), json(2, 1, ""), json(0, 0, &lobby)]
    );
    let b = h.join(12, &lobby);
    assert_eq!(
        h.frames(12),
        [json(1, b, ""), json(2, 1, ""), json(0, 0, &lobby)]
    );
    assert_eq!(
        h.frames(11),
        Vec::<String>::new(),
        "client 11 never hears of client 12"
    );
    assert_eq!(h.frames(10), [json(2, a, ""), json(2, b, "")]);
    // A client leaving is news for the host only.
    h.leave(12);
    assert_eq!(h.frames(10), [json(3, b, "")]);
    assert!(h.frames(11).is_empty());
}

#[test]
fn the_mesh_flag_only_matters_when_the_lobby_is_created() {
    let mut h = Harness::new();
    let lobby = h.host(10, true);
    h.connect(11);
    h.send(11, &format!(r#"{{"type":0,"id":1,"data":"{lobby}"}}"#));
    assert!(h.frames(11)[0].ends_with(r#""data":"true"}"#));
}

#[test]
fn relays_rewrite_the_id_to_the_sender_and_show_the_host_as_1() {
    let mut h = Harness::new();
    let lobby = h.host(10, true);
    let a = h.join(11, &lobby);
    let b = h.join(12, &lobby);
    for c in [10, 11, 12] {
        h.frames(c);
    }
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n";
    h.send(
        11,
        &format!(
            r#"{{"type":4.0,"id":1.0,"data":{}}}"#,
            serde_json::to_string(sdp).unwrap()
        ),
    );
    assert_eq!(
        h.frames(10),
        [format!(
            r#"{{"type":4,"id":{a},"data":{}}}"#,
            serde_json::to_string(sdp).unwrap()
        )]
    );
    h.send(10, &format!(r#"{{"type":5,"id":{a},"data":"answer"}}"#));
    assert_eq!(h.frames(11), [r#"{"type":5,"id":1,"data":"answer"}"#]);
    let candidate = r#"\n0\n0\ncandidate:842163049 1 udp 1677729535 203.0.113.9 46154 typ srflx"#;
    h.send(
        12,
        &format!(r#"{{"type":6,"id":{a},"data":"{candidate}"}}"#),
    );
    assert_eq!(
        h.frames(11),
        [format!(r#"{{"type":6,"id":{b},"data":"{candidate}"}}"#)]
    );
    assert_eq!(h.hub.counts().relayed_offer, 1);
    assert_eq!(h.hub.counts().relayed_answer, 1);
    assert_eq!(h.hub.counts().relayed_candidate, 1);
}

#[test]
fn seal_is_broadcast_then_everyone_is_closed_after_the_delay() {
    let mut h = Harness::new();
    let lobby = h.host(10, true);
    h.join(11, &lobby);
    h.frames(10);
    h.frames(11);
    h.send(10, r#"{"type":7,"id":0,"data":""}"#);
    assert_eq!(h.frames(10), [json(7, 0, "")]);
    assert_eq!(h.frames(11), [json(7, 0, "")]);

    // Sealed: no more joins.
    h.connect(12);
    h.send(12, &format!(r#"{{"type":0,"id":0,"data":"{lobby}"}}"#));
    assert_eq!(h.closed(12), Some((4000, "Lobby is sealed")));

    h.advance(Duration::from_millis(9_999));
    assert_eq!(h.closed(10), None);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.closed(10), Some((1000, "Seal complete")));
    assert_eq!(h.closed(11), Some((1000, "Seal complete")));
    assert_eq!(
        (h.hub.lobby_count(), h.hub.peer_count()),
        (0, 0),
        "sealed lobbies are freed"
    );
}

/// As the reference's `Lobby.leave`, which runs whether the lobby is sealed or not: Godot's
/// client relies on `peer_disconnected`.
/// Host 10 and members 11 and 12 in a sealed lobby, nothing left to read; returns 11's id.
fn sealed_lobby_of_three(h: &mut Harness, mesh: bool) -> u32 {
    let lobby = h.host(10, mesh);
    let id11 = h.join(11, &lobby);
    h.join(12, &lobby);
    h.send(10, r#"{"type":7,"id":0,"data":""}"#);
    for c in [10, 11, 12] {
        h.frames(c);
    }
    id11
}

#[test]
fn after_the_seal_departures_are_told_as_before_it() {
    let mut h = Harness::new();
    let id11 = sealed_lobby_of_three(&mut h, true);
    h.leave(11);
    assert_eq!(h.frames(10), [json(3, id11, "")]);
    assert_eq!(h.frames(12), [json(3, id11, "")]);
    h.leave(10);
    assert_eq!(
        h.closed(12),
        Some((4000, "Room host has disconnected")),
        "the host leaving after the seal closes the others at once"
    );
    assert_eq!((h.hub.lobby_count(), h.hub.peer_count()), (0, 0));
    // The seal's timer finds nothing left to close.
    h.advance(Duration::from_secs(10));
    assert_eq!(
        h.relay
            .iter()
            .filter(|e| matches!(e, LobbyEvent::Ended { .. }))
            .count(),
        1
    );
}

#[test]
fn after_the_seal_a_client_server_lobby_tells_only_the_host() {
    let mut h = Harness::new();
    let id11 = sealed_lobby_of_three(&mut h, false);
    h.leave(11);
    assert_eq!(h.frames(10), [json(3, id11, "")]);
    assert!(h.frames(12).is_empty(), "clients only know the host");
}

#[test]
fn a_repeated_seal_keeps_the_first_deadline() {
    let mut h = Harness::new();
    let lobby = h.host(10, true);
    h.join(11, &lobby);
    h.send(10, r#"{"type":7,"id":0}"#);
    h.advance(Duration::from_secs(5));
    h.send(10, r#"{"type":7,"id":0}"#);
    h.advance(Duration::from_secs(5));
    assert_eq!(h.closed(11), Some((1000, "Seal complete")));
}

#[test]
fn the_host_leaving_closes_the_lobby() {
    let mut h = Harness::new();
    let lobby = h.host(10, true);
    h.join(11, &lobby);
    h.join(12, &lobby);
    h.leave(10);
    assert_eq!(h.closed(11), Some((4000, "Room host has disconnected")));
    assert_eq!(h.closed(12), Some((4000, "Room host has disconnected")));
    assert_eq!((h.hub.lobby_count(), h.hub.peer_count()), (0, 0));
    h.connect(13);
    h.send(13, &format!(r#"{{"type":0,"id":0,"data":"{lobby}"}}"#));
    assert_eq!(h.closed(13), Some((4000, "Lobby does not exists")));
}

#[test]
fn a_member_leaving_is_announced_to_the_others() {
    let mut h = Harness::new();
    let lobby = h.host(10, true);
    let a = h.join(11, &lobby);
    h.join(12, &lobby);
    for c in [10, 11, 12] {
        h.frames(c);
    }
    h.leave(11);
    assert_eq!(h.frames(10), [json(3, a, "")]);
    assert_eq!(h.frames(12), [json(3, a, "")]);
}

#[test]
fn only_the_host_can_seal() {
    let mut h = Harness::new();
    let lobby = h.host(10, true);
    h.join(11, &lobby);
    h.send(11, r#"{"type":7,"id":0,"data":""}"#);
    assert_eq!(h.closed(11), Some((4000, "Only host can seal the lobby")));
    assert_eq!(h.closed(10), None);
}

#[test]
fn peers_that_do_not_join_in_time_are_closed() {
    let mut h = Harness::new();
    h.connect(1);
    h.connect(2);
    h.advance(Duration::from_millis(500));
    h.host(3, true);
    assert_eq!(
        h.hub.next_deadline(),
        Some(h.start + Duration::from_secs(1))
    );
    h.advance(Duration::from_millis(499));
    assert_eq!(h.closed(1), None);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.closed(1), Some((4000, "Have not joined lobby yet")));
    assert_eq!(h.closed(2), Some((4000, "Have not joined lobby yet")));
    h.advance(Duration::from_secs(5));
    assert_eq!(h.closed(3), None, "a peer in a lobby stays");
}

#[test]
fn a_late_candidate_to_a_peer_that_just_left_is_dropped_not_fatal() {
    let mut h = Harness::new();
    let lobby = h.host(10, true);
    let a = h.join(11, &lobby);
    h.join(12, &lobby);
    h.leave(11);
    h.advance(Duration::from_secs(1));
    h.send(
        12,
        &format!(r#"{{"type":6,"id":{a},"data":"\n0\n0\ncandidate:x"}}"#),
    );
    assert_eq!(h.closed(12), None);
    assert_eq!(h.hub.counts().dropped_late, 1);
    // Long after, or to an id that never was a member: the reference's error.
    h.advance(Duration::from_secs(60));
    h.send(12, r#"{"type":6,"id":999,"data":"x"}"#);
    assert_eq!(h.closed(12), Some((4000, "Invalid destination")));
}

#[test]
fn an_id_from_another_lobby_is_an_invalid_destination() {
    let mut h = Harness::new();
    let one = h.host(10, true);
    let other = h.host(20, true);
    let a = h.join(11, &one);
    h.join(21, &other);
    h.send(21, &format!(r#"{{"type":4,"id":{a},"data":"sdp"}}"#));
    assert_eq!(h.closed(21), Some((4000, "Invalid destination")));
    assert!(h.frames(11).len() == 3, "nothing relayed across lobbies");
}

#[test]
fn joining_twice_is_refused() {
    let mut h = Harness::new();
    let one = h.host(10, true);
    let two = h.host(20, true);
    h.join(11, &one);
    h.send(11, &format!(r#"{{"type":0,"id":0,"data":"{two}"}}"#));
    assert_eq!(h.closed(11), Some((4000, "Already in a lobby")));
    h.send(10, r#"{"type":0,"id":0,"data":""}"#);
    assert_eq!(h.closed(10), Some((4000, "Already in a lobby")));
}

#[test]
fn ids_are_in_range_and_unique_across_the_server() {
    let mut h = Harness::with(Limits {
        max_peers: 2000,
        max_lobbies: 2000,
        // Every lobby here is from one address.
        max_lobbies_per_address: 0,
        ..limits()
    });
    let mut seen = HashSet::new();
    for lobby_no in 0..100u64 {
        let name = h.host(lobby_no * 100, true);
        for m in 1..=10 {
            let id = h.join(lobby_no * 100 + m, &name);
            assert!((2..=0x7fff_ffff).contains(&id), "{id}");
            assert!(seen.insert(id), "duplicate id {id}");
        }
    }
}

#[test]
fn every_close_reason_of_the_reference() {
    // Too many peers.
    let mut h = Harness::with(Limits {
        max_peers: 1,
        ..limits()
    });
    h.connect(1);
    h.connect(2);
    assert_eq!(h.closed(2), Some((4000, "Too many peers connected")));

    // Too many lobbies.
    let mut h = Harness::with(Limits {
        max_lobbies: 1,
        ..limits()
    });
    h.host(1, true);
    h.connect(2);
    h.send(2, r#"{"type":0,"id":0,"data":""}"#);
    assert_eq!(
        h.closed(2),
        Some((4000, "Too many lobbies open, disconnecting"))
    );

    let mut h = Harness::new();
    let lobby = h.host(1, true);
    let cases: &[(&str, &str)] = &[
        (
            r#"{"type":0,"id":0,"data":"NoSuchLobby"}"#,
            "Lobby does not exists",
        ),
        ("not json", "Invalid message format"),
        (r#"{"type":4,"id":-1,"data":""}"#, "Invalid message format"),
        (
            r#"{"type":4,"id":1,"data":"sdp"}"#,
            "Invalid message when not in a lobby",
        ),
        (
            r#"{"type":7,"id":0,"data":""}"#,
            "Invalid message when not in a lobby",
        ),
    ];
    for (i, (frame, expected)) in cases.iter().enumerate() {
        let c = 100 + i as ConnId;
        h.connect(c);
        h.send(c, frame);
        assert_eq!(h.closed(c), Some((4000, *expected)), "{frame}");
    }
    for (i, (frame, expected)) in [
        (r#"{"type":2,"id":1,"data":""}"#, "Invalid command"),
        (r#"{"type":9,"id":1,"data":""}"#, "Invalid command"),
        (r#"{"type":4,"id":12345,"data":""}"#, "Invalid destination"),
    ]
    .iter()
    .enumerate()
    {
        let c = 200 + i as ConnId;
        h.join(c, &lobby);
        h.send(c, frame);
        assert_eq!(h.closed(c), Some((4000, *expected)), "{frame}");
    }
    h.connect(300);
    let out = h.hub.binary(300, h.at());
    h.record(out);
    assert_eq!(
        h.closed(300),
        Some((4000, "Invalid transfer mode, must be text"))
    );
    let closes = &h.hub.counts().closes;
    assert_eq!(closes["Invalid message format"], 2);
}

#[test]
fn lobby_member_cap() {
    let mut h = Harness::with(Limits {
        max_lobby_members: 2,
        ..limits()
    });
    let lobby = h.host(1, true);
    h.join(2, &lobby);
    h.connect(3);
    h.send(3, &format!(r#"{{"type":0,"id":0,"data":"{lobby}"}}"#));
    assert_eq!(h.closed(3), Some((4000, "Lobby is full")));
}

#[test]
fn godot3_text_dialect_end_to_end() {
    let mut h = Harness::new();
    h.connect(1);
    h.send(1, "J: \n");
    let frames = h.frames(1);
    assert_eq!(frames[0], "I: 1\n");
    let lobby = frames[1]
        .strip_prefix("J: ")
        .unwrap()
        .trim_end()
        .to_string();
    assert_eq!(lobby.len(), 16);

    h.connect(2);
    h.send(2, &format!("J: {lobby}\n"));
    let frames = h.frames(2);
    let id: u32 = frames[0]
        .strip_prefix("I: ")
        .unwrap()
        .trim_end()
        .parse()
        .unwrap();
    assert_eq!(frames[1..], ["N: 1\n".to_string(), format!("J: {lobby}\n")]);
    assert_eq!(h.frames(1), [format!("N: {id}\n")]);

    h.send(2, "O: 1\nv=0\r\nsdp");
    assert_eq!(h.frames(1), [format!("O: {id}\nv=0\r\nsdp")]);
    h.send(1, &format!("A: {id}\nv=0\r\nanswer"));
    assert_eq!(h.frames(2), ["A: 1\nv=0\r\nanswer"]);
    h.send(2, "C: 1\n\n0\n0\ncandidate:1 1 udp 2 192.0.2.1 9 typ host");
    assert_eq!(
        h.frames(1),
        [format!(
            "C: {id}\n\n0\n0\ncandidate:1 1 udp 2 192.0.2.1 9 typ host"
        )]
    );

    h.send(1, "S: \n");
    assert_eq!(h.frames(1), ["S: \n"]);
    assert_eq!(h.frames(2), ["S: \n"]);
    h.advance(Duration::from_secs(10));
    assert_eq!(h.closed(2), Some((1000, "Seal complete")));
}

#[test]
fn godot3_errors_use_the_same_reasons() {
    let mut h = Harness::new();
    for (c, frame, expected) in [
        (1, "J: NoSuchLobby\n", "Lobby does not exists"),
        (2, "J: ", "Invalid message format"),
        (3, "O: 1\nsdp", "Invalid message when not in a lobby"),
        (4, "O: x\nsdp", "Invalid message format"),
    ] {
        h.connect(c);
        h.send(c, frame);
        assert_eq!(h.closed(c), Some((4000, expected)), "{frame:?}");
    }
    h.connect(10);
    h.send(10, "J: \n");
    h.send(10, "Q: 1\n");
    assert_eq!(h.closed(10), Some((4000, "Invalid command")));
}

#[test]
fn dialects_mix_in_one_lobby() {
    let mut h = Harness::new();
    let lobby = h.host(1, true);
    h.connect(2);
    h.send(2, &format!("J: {lobby}\n"));
    let id: u32 = h.frames(2)[0]
        .strip_prefix("I: ")
        .unwrap()
        .trim_end()
        .parse()
        .unwrap();
    h.frames(1);
    h.send(
        1,
        &format!(r#"{{"type":6,"id":{id},"data":"\n0\n0\ncandidate:x"}}"#),
    );
    assert_eq!(h.frames(2), ["C: 1\n\n0\n0\ncandidate:x"]);
    h.send(2, "C: 1\n\n0\n0\ncandidate:y");
    assert_eq!(
        h.frames(1),
        [format!(
            r#"{{"type":6,"id":{id},"data":"\n0\n0\ncandidate:y"}}"#
        )]
    );
}

#[test]
fn reloaded_limits_apply_to_new_events_only() {
    let mut h = Harness::new();
    let lobby = h.host(1, true);
    h.join(2, &lobby);
    let at = h.at();
    h.hub.set_limits(
        Limits {
            max_peers: 1,
            ..limits()
        },
        at,
    );
    assert_eq!(h.hub.peer_count(), 2, "existing peers stay");
    h.connect(3);
    assert_eq!(h.closed(3), Some((4000, "Too many peers connected")));
}

#[test]
fn frames_from_unknown_connections_are_ignored() {
    let mut h = Harness::new();
    h.send(42, r#"{"type":0,"id":0,"data":""}"#);
    h.leave(42);
    assert!(h.log.is_empty());
}

#[path = "hub_ext_tests.rs"]
mod extension;

/// A member signalling itself gets "Invalid destination", and announces nothing to the relay:
/// a stranger alone in its own lobby gets no relay permission from its lobby credential.
#[test]
fn a_relay_to_oneself_is_refused_and_announces_nothing() {
    let mut h = Harness::new();
    h.host(10, true);
    h.relay.clear();
    h.send(
        10,
        r#"{"type":6,"id":1,"data":"\n0\n0\ncandidate:1 1 udp 2122260223 93.184.216.34 9 typ host"}"#,
    );
    assert_eq!(h.closed(10), Some((4000, "Invalid destination")));
    assert!(
        !h.relay
            .iter()
            .any(|e| matches!(e, LobbyEvent::Announced { .. })),
        "{:?}",
        h.relay
    );
}
