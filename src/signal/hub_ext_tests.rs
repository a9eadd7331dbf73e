//! The lobby extension as a state machine: every message and error, the limits, resume within and
//! after the grace, and that plain clients never see any of it.

use serde_json::{Value, json};

use super::*;
use crate::signal::ext::kind;

/// An extension frame from a client.
fn ext(kind: u64, id: u64, data: Value) -> String {
    let data = if data.is_null() {
        String::new()
    } else {
        data.to_string()
    };
    json!({"type": kind, "id": id, "data": data}).to_string()
}

/// (type, id, data parsed as JSON where it is an object) of every frame.
fn parsed(frames: &[String]) -> Vec<(u64, u64, Value)> {
    frames
        .iter()
        .map(|f| {
            let v: Value = serde_json::from_str(f).unwrap();
            let data = v["data"].as_str().unwrap_or("");
            let data = serde_json::from_str(data).unwrap_or(Value::String(data.into()));
            (v["type"].as_u64().unwrap(), v["id"].as_u64().unwrap(), data)
        })
        .collect()
}

fn of_type(frames: &[(u64, u64, Value)], kind: u64) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f.0 == kind)
        .map(|f| f.2.clone())
        .collect()
}

fn error_code(h: &mut Harness, c: ConnId) -> String {
    let frames = parsed(&h.frames(c));
    let errors = of_type(&frames, kind::ERROR);
    assert_eq!(errors.len(), 1, "{frames:?}");
    errors[0]["code"].as_str().unwrap().to_string()
}

impl Harness {
    /// Connects extension client `c` and creates a lobby with `options`; returns (name, code,
    /// resume token).
    fn create(&mut self, c: ConnId, options: Value) -> (String, String, String) {
        self.connect_as(c, true, [10, 0, 0, c as u8]);
        self.send(c, &ext(kind::CREATE, 0, options));
        let frames = parsed(&self.frames(c));
        let lobby = &of_type(&frames, kind::LOBBY)[0];
        let token = of_type(&frames, kind::SESSION)[0]["token"]
            .as_str()
            .unwrap()
            .to_string();
        (
            lobby["name"].as_str().unwrap().into(),
            lobby["code"].as_str().unwrap().into(),
            token,
        )
    }

    /// Extension client `c` joins `lobby`; returns its frames.
    fn ext_join(
        &mut self,
        c: ConnId,
        lobby: &str,
        password: Option<&str>,
    ) -> Vec<(u64, u64, Value)> {
        self.connect_as(c, true, [10, 0, 1, c as u8]);
        self.send(
            c,
            &ext(kind::JOIN, 0, json!({"lobby": lobby, "password": password})),
        );
        parsed(&self.frames(c))
    }
}

fn ext_limits() -> Limits {
    Limits {
        resume_grace: Duration::from_secs(20),
        browse_timeout: Duration::from_secs(300),
        list_page_size: 2,
        list_rate: 1,
        failed_joins_per_minute: 10,
        max_resume_queue: 4,
        ..limits()
    }
}

#[test]
fn create_with_options_then_godots_sequence_then_lobby_and_session() {
    let mut h = Harness::with(ext_limits());
    h.connect_as(1, true, [10, 0, 0, 1]);
    h.send(
        1,
        &ext(
            100,
            0,
            json!({"title": "Duel", "public": true, "max_players": 2, "password": "hunter2",
                            "mesh": false, "data": {"mode": "ctf", "version": "1.2"}}),
        ),
    );
    let raw = h.frames(1);
    assert!(
        raw.iter().all(|f| !f.contains("hunter2")),
        "the password is never sent back"
    );
    let frames = parsed(&raw);
    let kinds: Vec<u64> = frames.iter().map(|f| f.0).collect();
    // Godot's own (ID, JOIN), so the demo's client code runs unchanged, with the relay
    // credentials right after ID (before any PEER_CONNECT); then the extension's.
    assert_eq!(kinds, vec![1, 111, 0, 102, 101]);
    let user = frames[1].2["user"].as_str().unwrap();
    let peer_id = h.hub.peers[&1].id;
    assert!(
        user.starts_with("lobby.") && user.ends_with(&format!(".{peer_id}")),
        "{user}"
    );
    assert_eq!(
        raw[0], r#"{"type":1,"id":1,"data":""}"#,
        "client/server: data is not \"true\""
    );
    let lobby = &frames[4].2;
    assert_eq!(lobby["title"], "Duel");
    assert_eq!(
        (lobby["public"].as_bool(), lobby["mesh"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(
        (lobby["players"].as_u64(), lobby["max_players"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(lobby["password"], true);
    assert_eq!(lobby["data"]["mode"], "ctf");
    assert_eq!(lobby["name"], frames[2].2);
    let code = lobby["code"].as_str().unwrap();
    assert_eq!(code.len(), 6);
    assert_eq!(frames[3].2["resume_grace"], 20);
    assert_eq!(frames[3].2["token"].as_str().unwrap().len(), 32);
}

#[test]
fn bad_requests_get_an_error_and_the_connection_stays() {
    let mut h = Harness::with(ext_limits());
    h.connect_as(1, true, [10, 0, 0, 1]);
    for bad in [
        ext(100, 0, json!({"title": "x".repeat(65)})),
        ext(100, 0, json!({"data": {"blob": "x".repeat(2000)}})),
        ext(100, 0, json!({"max_players": 1})),
        ext(100, 0, json!({"colour": "red"})),
        r#"{"type":103,"id":0,"data":"not json"}"#.to_string(),
        ext(150, 0, Value::Null),
    ] {
        h.send(1, &bad);
        assert_eq!(error_code(&mut h, 1), "invalid", "{bad}");
    }
    assert_eq!(h.closed(1), None);
    // Requests that need a lobby, outside one.
    h.send(1, &ext(106, 0, json!({"title": "x"})));
    assert_eq!(error_code(&mut h, 1), "not_in_lobby");
    h.send(1, &ext(107, 5, Value::Null));
    assert_eq!(error_code(&mut h, 1), "not_in_lobby");
    // And still able to create.
    h.send(1, &ext(100, 0, Value::Null));
    assert_eq!(parsed(&h.frames(1))[0].0, 1);
    h.send(1, &ext(100, 0, Value::Null));
    assert_eq!(error_code(&mut h, 1), "already_in_lobby");
}

#[test]
fn codes_join_in_any_case_for_extension_and_plain_clients() {
    let mut h = Harness::with(ext_limits());
    let (name, code, _) = h.create(1, json!({}));
    let frames = h.ext_join(2, &code.to_lowercase(), None);
    assert_eq!(frames[0].0, 1, "{frames:?}");
    assert_eq!(of_type(&frames, 0)[0], Value::String(name.clone()));
    // A plain Godot client types the code where a lobby name goes.
    h.connect(3);
    h.send(
        3,
        &format!(r#"{{"type":0,"id":0,"data":"{}"}}"#, code.to_lowercase()),
    );
    let plain = h.frames(3);
    assert_eq!(plain.len(), 4, "ID, two PEER_CONNECTs, JOIN: {plain:?}");
    assert!(plain.last().unwrap().contains(&name));
    assert!(
        parsed(&plain).iter().all(|f| f.0 < 100),
        "nothing of the extension: {plain:?}"
    );
    assert_eq!(h.hub.counts().joins_by_code, 2);
    // By name still works.
    assert_eq!(h.ext_join(4, &name, None)[0].0, 1);
}

#[test]
fn codes_and_names_are_unique_among_open_lobbies() {
    let mut h = Harness::with(Limits {
        max_peers: 3000,
        max_lobbies: 3000,
        ..ext_limits()
    });
    let mut codes = HashSet::new();
    for c in 0..2000 {
        h.connect_as(c, true, [10, 1, (c >> 8) as u8, c as u8]);
        h.send(c, &ext(100, 0, Value::Null));
        let frames = parsed(&h.frames(c));
        assert!(
            codes.insert(
                of_type(&frames, 101)[0]["code"]
                    .as_str()
                    .unwrap()
                    .to_string()
            )
        );
    }
    assert_eq!(h.hub.lobby_codes.len(), 2000);
    assert_eq!(h.hub.lobby_names.len(), 2000);
}

#[test]
fn passwords_caps_and_seals() {
    let mut h = Harness::with(ext_limits());
    let (_, code, _) = h.create(1, json!({"password": "pw", "max_players": 3}));
    h.ext_join(2, &code, Some("wrong"));
    assert_eq!(
        of_type(&parsed(&h.sent.remove(&2).unwrap_or_default()), 199).len(),
        0
    );
    let frames = h.ext_join(3, &code, Some("wrong"));
    assert_eq!(of_type(&frames, 199)[0]["code"], "wrong_password");
    assert_eq!(of_type(&frames, 199)[0]["message"], "Wrong password");
    assert_eq!(h.closed(3), None, "an extension client may try again");
    h.send(3, &ext(103, 0, json!({"lobby": code, "password": "pw"})));
    assert_eq!(parsed(&h.frames(3))[0].0, 1);
    // A plain client cannot give a password.
    h.connect(4);
    h.send(4, &format!(r#"{{"type":0,"id":0,"data":"{code}"}}"#));
    assert_eq!(h.closed(4), Some((4000, "Lobby requires a password")));
    // Three players: full.
    let frames = h.ext_join(5, &code, Some("pw"));
    assert_eq!(parsed(&h.sent.remove(&2).unwrap_or_default()).len(), 0);
    let _ = frames;
    let frames = h.ext_join(6, &code, Some("pw"));
    assert_eq!(of_type(&frames, 199)[0]["code"], "full", "{frames:?}");
    // Sealed.
    h.send(1, r#"{"type":7,"id":0,"data":""}"#);
    let frames = h.ext_join(7, &code, Some("pw"));
    assert_eq!(of_type(&frames, 199)[0]["code"], "sealed");
    h.send(1, &ext(106, 0, json!({"title": "late"})));
    assert_eq!(error_code(&mut h, 1), "sealed");
}

#[test]
fn failed_joins_are_limited_per_address() {
    let mut h = Harness::with(ext_limits());
    let (_, code, _) = h.create(1, json!({"password": "pw"}));
    h.connect_as(2, true, [10, 9, 9, 9]);
    for i in 0..10 {
        h.send(
            2,
            &ext(103, 0, json!({"lobby": format!("ZZZZZ{}", i % 8 + 2)})),
        );
        assert_eq!(error_code(&mut h, 2), "not_found");
    }
    // Spent: even the right code and password are refused without a look.
    h.send(2, &ext(103, 0, json!({"lobby": code, "password": "pw"})));
    assert_eq!(error_code(&mut h, 2), "rate_limited");
    // From the same address on a new connection, and as a plain client: the same.
    h.connect_as(3, false, [10, 9, 9, 9]);
    h.send(3, &format!(r#"{{"type":0,"id":0,"data":"{code}"}}"#));
    assert_eq!(
        h.closed(3),
        Some((4000, "Too many failed joins, try again later"))
    );
    // Another address is not affected.
    assert_eq!(h.ext_join(4, &code, Some("pw"))[0].0, 1);
    // One more try every 6 s (10 a minute).
    h.advance(Duration::from_secs(6));
    h.send(2, &ext(103, 0, json!({"lobby": code, "password": "wrong"})));
    assert_eq!(error_code(&mut h, 2), "wrong_password");
    h.send(2, &ext(103, 0, json!({"lobby": code, "password": "pw"})));
    assert_eq!(error_code(&mut h, 2), "rate_limited");
    let counts = &h.hub.counts().failed_joins;
    assert_eq!(
        (
            counts["not_found"],
            counts["wrong_password"],
            counts["rate_limited"]
        ),
        (10, 1, 3)
    );
}

#[test]
fn the_list_shows_public_open_lobbies_filtered_and_paged() {
    let mut h = Harness::with(Limits {
        list_rate: 0,
        ..ext_limits()
    });
    h.create(
        1,
        json!({"title": "a", "public": true, "data": {"version": "1"}}),
    );
    h.create(
        2,
        json!({"title": "b", "public": true, "data": {"version": "2"}}),
    );
    h.create(3, json!({"title": "private", "data": {"version": "1"}}));
    h.create(
        4,
        json!({"title": "c", "public": true, "data": {"version": "1"}}),
    );
    let (_, full_code, _) = h.create(
        5,
        json!({"title": "full", "public": true, "max_players": 2}),
    );
    h.ext_join(6, &full_code, None);
    h.create(7, json!({"title": "sealed", "public": true}));
    h.send(7, r#"{"type":7,"id":0,"data":""}"#);
    h.connect_as(9, true, [10, 0, 2, 9]);
    let page = |h: &mut Harness, q: Value| {
        h.send(9, &ext(104, 0, q));
        let frames = parsed(&h.frames(9));
        frames[0].2.clone()
    };
    let all = page(&mut h, Value::Null);
    let titles: Vec<&str> = all["lobbies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["a", "b"], "oldest first, two a page");
    assert_eq!(
        (all["page"].as_u64(), all["pages"].as_u64()),
        (Some(0), Some(2))
    );
    let second = page(&mut h, json!({"page": 1}));
    assert_eq!(second["lobbies"][0]["title"], "c");
    assert_eq!(second["lobbies"][0]["players"], 1);
    assert!(second["lobbies"][0]["code"].is_string());
    let v1 = page(&mut h, json!({"filter": {"version": "1"}}));
    let titles: Vec<&str> = v1["lobbies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["a", "c"]);
    assert_eq!(page(&mut h, json!({"page": 9}))["lobbies"], json!([]));
}

#[test]
fn list_queries_are_rate_limited_per_connection() {
    let mut h = Harness::with(ext_limits());
    h.connect_as(9, true, [10, 0, 2, 9]);
    for _ in 0..5 {
        h.send(9, &ext(104, 0, Value::Null));
        assert_eq!(parsed(&h.frames(9))[0].0, 105);
    }
    h.send(9, &ext(104, 0, Value::Null));
    assert_eq!(error_code(&mut h, 9), "rate_limited");
    h.advance(Duration::from_secs(1));
    h.send(9, &ext(104, 0, Value::Null));
    assert_eq!(parsed(&h.frames(9))[0].0, 105);
}

#[test]
fn the_host_updates_and_kicks() {
    let mut h = Harness::with(ext_limits());
    let (name, code, _) = h.create(1, json!({"title": "before"}));
    h.ext_join(2, &code, None);
    let plain = h.join(3, &name);
    h.frames(1);
    h.frames(2);
    h.frames(3);
    h.send(
        1,
        &ext(
            106,
            0,
            json!({"title": "after", "public": true, "data": {"map": "dune"}}),
        ),
    );
    for c in [1, 2] {
        let lobby = &of_type(&parsed(&h.frames(c)), 101)[0];
        assert_eq!(
            (lobby["title"].as_str(), lobby["data"]["map"].as_str()),
            (Some("after"), Some("dune"))
        );
    }
    assert!(h.frames(3).is_empty(), "a plain member sees nothing of it");
    h.send(2, &ext(106, 0, json!({"title": "mine"})));
    assert_eq!(error_code(&mut h, 2), "not_host");
    h.send(2, &ext(107, u64::from(plain), Value::Null));
    assert_eq!(error_code(&mut h, 2), "not_host");
    h.send(1, &ext(107, 1, Value::Null));
    assert_eq!(
        error_code(&mut h, 1),
        "no_such_peer",
        "the host cannot kick itself"
    );
    h.send(1, &ext(107, 999, Value::Null));
    assert_eq!(error_code(&mut h, 1), "no_such_peer");
    h.send(1, &ext(107, u64::from(plain), Value::Null));
    assert_eq!(h.closed(3), Some((4000, "Kicked by host")));
    assert_eq!(
        h.frames(2)[0],
        json(3, plain, ""),
        "the others see it leave"
    );
    assert_eq!(h.hub.counts().kicks, 1);
}

/// Host 1 and extension member 2 in a mesh lobby; returns member 2's id and resume token.
fn lobby_of_two(h: &mut Harness) -> (u32, String) {
    let (_, code, _) = h.create(1, json!({}));
    let frames = h.ext_join(2, &code, None);
    h.frames(1);
    let id = frames[0].1 as u32;
    let token = of_type(&frames, 102)[0]["token"]
        .as_str()
        .unwrap()
        .to_string();
    (id, token)
}

#[test]
fn a_dropped_member_resumes_within_the_grace_and_gets_what_was_sent_in_order() {
    let mut h = Harness::with(ext_limits());
    let (id, token) = lobby_of_two(&mut h);
    h.leave(2);
    h.advance(Duration::from_secs(19));
    assert!(h.frames(1).is_empty(), "the others are told nothing");
    for n in 0..3 {
        h.send(
            1,
            &format!(r#"{{"type":6,"id":{id},"data":"\n0\n0\ncandidate:{n}"}}"#),
        );
    }
    assert_eq!(h.hub.away_count(), 1);
    h.connect_as(20, true, [10, 0, 1, 2]);
    h.send(20, &ext(108, 0, json!({"token": token})));
    let frames = parsed(&h.frames(20));
    assert_eq!(frames[0].0, 109);
    assert_eq!(frames[0].2["id"], id);
    assert_eq!(frames[1].0, 101);
    let queued: Vec<String> = frames[2..]
        .iter()
        .map(|f| f.2.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        queued,
        vec![
            "\n0\n0\ncandidate:0",
            "\n0\n0\ncandidate:1",
            "\n0\n0\ncandidate:2"
        ]
    );
    // Business as usual on the new connection, and its timers are gone.
    h.send(20, r#"{"type":4,"id":1,"data":"offer"}"#);
    assert_eq!(parsed(&h.frames(1))[0].1, u64::from(id));
    h.advance(Duration::from_secs(5));
    assert_eq!(h.closed(20), None);
    assert!(h.frames(1).is_empty());
    assert_eq!(h.hub.counts().resumes, 1);
    assert_eq!(h.hub.away_count(), 0);
}

#[test]
fn a_member_that_closes_on_purpose_leaves_at_once_and_cannot_resume() {
    let mut h = Harness::with(ext_limits());
    let (id, token) = lobby_of_two(&mut h);
    h.quit(2);
    assert_eq!(
        h.frames(1)[0],
        json(3, id, ""),
        "PEER_DISCONNECT at once, not after the grace"
    );
    assert_eq!((h.hub.away_count(), h.hub.peer_count()), (0, 1));
    h.connect_as(20, true, [10, 0, 1, 2]);
    h.send(20, &ext(108, 0, json!({"token": token})));
    assert_eq!(error_code(&mut h, 20), "resume_failed");
    // A host that quits ends its lobby at once.
    let (_, code, _) = h.create(30, json!({}));
    h.ext_join(31, &code, None);
    h.quit(30);
    assert_eq!(h.closed(31), Some((4000, "Room host has disconnected")));
}

#[test]
fn close_codes_tell_a_leave_from_a_lost_socket() {
    for code in [None, Some(1000), Some(3000), Some(4999)] {
        assert_eq!(Departure::of_close_code(code), Departure::Left, "{code:?}");
    }
    // Going away (a page reloading), or a failure the client reports.
    for code in [Some(1001), Some(1002), Some(1011)] {
        assert_eq!(Departure::of_close_code(code), Departure::Lost, "{code:?}");
    }
}

#[test]
fn after_the_grace_the_others_see_what_they_see_today() {
    let mut h = Harness::with(ext_limits());
    let (id, token) = lobby_of_two(&mut h);
    h.leave(2);
    h.advance(Duration::from_millis(19_999));
    assert!(h.frames(1).is_empty());
    h.advance(Duration::from_millis(1));
    let frames = h.frames(1);
    assert_eq!(
        frames[0],
        json(3, id, ""),
        "PEER_DISCONNECT exactly at the grace"
    );
    h.connect_as(20, true, [10, 0, 1, 2]);
    h.send(20, &ext(108, 0, json!({"token": token})));
    assert_eq!(error_code(&mut h, 20), "resume_failed");
    assert_eq!(h.hub.counts().resumes_expired, 1);
}

#[test]
fn a_resumed_host_keeps_the_lobby_and_a_lost_one_ends_it() {
    let mut h = Harness::with(ext_limits());
    let (_, code, host_token) = h.create(1, json!({}));
    h.ext_join(2, &code, None);
    h.leave(1);
    h.send(2, r#"{"type":4,"id":1,"data":"offer for the host"}"#);
    h.advance(Duration::from_secs(10));
    assert_eq!(h.closed(2), None, "the lobby lives on");
    h.connect_as(10, true, [10, 0, 0, 1]);
    h.send(10, &ext(108, 0, json!({"token": host_token})));
    let frames = parsed(&h.frames(10));
    assert_eq!((frames[0].0, frames[0].2["id"].as_u64()), (109, Some(1)));
    assert_eq!(frames[2].2, Value::String("offer for the host".into()));
    // The resumed host is the host: it can seal.
    h.send(10, r#"{"type":7,"id":0,"data":""}"#);
    assert_eq!(h.frames(2).last().unwrap(), &json(7, 0, ""));

    let mut h = Harness::with(ext_limits());
    let (_, code, _) = h.create(1, json!({}));
    h.ext_join(2, &code, None);
    h.leave(1);
    h.advance(Duration::from_secs(20));
    assert_eq!(h.closed(2), Some((4000, "Room host has disconnected")));
}

#[test]
fn resuming_a_place_whose_old_socket_looks_alive_takes_it_over() {
    let mut h = Harness::with(ext_limits());
    let (id, token) = lobby_of_two(&mut h);
    h.connect_as(20, true, [10, 0, 1, 2]);
    h.send(20, &ext(108, 0, json!({"token": token})));
    assert_eq!(h.closed(2), Some((4000, "Resumed on another connection")));
    assert_eq!(parsed(&h.frames(20))[0].0, 109);
    // The old socket's end arrives later and changes nothing.
    h.leave(2);
    h.send(1, &format!(r#"{{"type":4,"id":{id},"data":"still here"}}"#));
    assert_eq!(
        parsed(&h.frames(20))[0].2,
        Value::String("still here".into())
    );
}

#[test]
fn a_full_queue_gives_the_place_up() {
    let mut h = Harness::with(ext_limits());
    let (id, _) = lobby_of_two(&mut h);
    h.leave(2);
    for n in 0..5 {
        h.send(1, &format!(r#"{{"type":6,"id":{id},"data":"{n}"}}"#));
    }
    let frames = h.frames(1);
    assert_eq!(
        frames[0],
        json(3, id, ""),
        "the fifth frame overflowed a queue of 4"
    );
    assert_eq!(of_type(&parsed(&frames), kind::LOBBY)[0]["players"], 1);
    assert_eq!(h.hub.away_count(), 0);
}

/// A burst of joins into one lobby costs its members a frame each: at most
/// `lobby_joins_per_second` are let in at once, the rest refused with a reason to try again, and
/// the lobby takes more as its bucket refills.
#[test]
fn joins_into_one_lobby_are_limited_per_second() {
    let mut h = Harness::with(Limits {
        lobby_joins_per_second: 2,
        ..ext_limits()
    });
    let (name, code, _) = h.create(1, json!({}));
    assert_eq!(h.ext_join(2, &code, None)[0].0, 1, "joined");
    h.join(3, &name);
    let frames = h.ext_join(4, &code, None);
    let error = &of_type(&frames, kind::ERROR)[0];
    assert_eq!(
        (error["code"].as_str(), error["message"].as_str()),
        (Some("rate_limited"), Some("Lobby is busy, try again"))
    );
    h.connect(5);
    h.send(5, &format!(r#"{{"type":0,"id":0,"data":"{name}"}}"#));
    assert_eq!(h.closed(5), Some((4000, "Lobby is busy, try again")));
    assert_eq!(h.hub.counts().limited["signal.lobby_joins_per_second"], 2);
    assert!(
        h.hub.counts().failed_joins.is_empty(),
        "a busy lobby is no failed guess"
    );
    // Half a second later, one more.
    h.advance(Duration::from_millis(500));
    h.send(4, &ext(kind::JOIN, 0, json!({"lobby": code})));
    assert_eq!(parsed(&h.frames(4))[0].0, 1, "joined on a refilled bucket");
}

/// One address (an IPv6 /64) holds `max_lobbies_per_address` open lobbies at most; one that
/// ends gives its place back.
#[test]
fn lobbies_are_limited_per_address() {
    let mut h = Harness::with(Limits {
        max_lobbies_per_address: 2,
        ..ext_limits()
    });
    let create = |h: &mut Harness, c: ConnId, source: IpAddr| {
        let out = h.hub.connect(
            c,
            Client {
                extension: true,
                source,
            },
            h.at(),
        );
        h.record(out);
        h.send(c, &ext(kind::CREATE, 0, Value::Null));
        parsed(&h.frames(c))
    };
    let six = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 7, 0, 0, 0, last]);
    assert_eq!(create(&mut h, 1, six(1))[0].0, 1);
    assert_eq!(create(&mut h, 2, six(2))[0].0, 1, "the same /64");
    let refused = create(&mut h, 3, six(3));
    let error = &of_type(&refused, kind::ERROR)[0];
    assert_eq!(
        (error["code"].as_str(), error["message"].as_str()),
        (
            Some("too_many_lobbies"),
            Some("Too many lobbies from this address")
        )
    );
    let other = IpAddr::from([0x2001, 0xdb8, 0, 8, 0, 0, 0, 1]);
    assert_eq!(create(&mut h, 4, other)[0].0, 1, "another /64");
    h.quit(1);
    assert_eq!(
        create(&mut h, 5, six(5))[0].0,
        1,
        "a lobby ended: room again"
    );
    assert_eq!(h.hub.counts().limited["signal.max_lobbies_per_address"], 1);
    // A plain client is closed with the reason.
    h.connect_as(6, false, [127, 0, 0, 1]);
    h.connect_as(7, false, [127, 0, 0, 1]);
    h.connect_as(8, false, [127, 0, 0, 1]);
    for c in [6, 7, 8] {
        h.send(c, r#"{"type":0,"id":0,"data":""}"#);
    }
    assert_eq!(
        h.closed(8),
        Some((4000, "Too many lobbies from this address"))
    );
}

/// An away member's queue is bounded in bytes too, and the lobby's state is kept once: a host's
/// updates replace what was queued rather than pile up.
#[test]
fn the_resume_queue_counts_bytes_and_keeps_one_lobby_state() {
    let mut h = Harness::with(Limits {
        max_resume_queue: 256,
        max_resume_bytes: 4096,
        ..ext_limits()
    });
    let (id, token) = lobby_of_two(&mut h);
    h.leave(2);
    for n in 0..200 {
        h.send(
            1,
            &ext(kind::UPDATE, 0, json!({"title": format!("title {n}")})),
        );
    }
    h.frames(1);
    assert_eq!(
        h.hub.away_count(),
        1,
        "200 updates fit: only the last is kept"
    );
    h.connect_as(20, true, [10, 0, 1, 2]);
    h.send(20, &ext(kind::RESUME, 0, json!({"token": token})));
    let frames = parsed(&h.frames(20));
    let states = of_type(&frames, kind::LOBBY);
    assert_eq!(
        states.len(),
        2,
        "RESUMED's own LOBBY and the one queued: {frames:?}"
    );
    assert_eq!(states[1]["title"], "title 199");
    // 3 KiB candidates: the second overflows 4 KiB and the place is given up.
    h.leave(20);
    let big = "x".repeat(3000);
    for _ in 0..2 {
        h.send(1, &format!(r#"{{"type":6,"id":{id},"data":"{big}"}}"#));
    }
    assert_eq!(
        h.frames(1)[0],
        json(3, id, ""),
        "given up by bytes, not frames"
    );
    assert_eq!(h.hub.away_count(), 0);
}

#[test]
fn plain_clients_and_timeouts_are_as_before() {
    let mut h = Harness::with(ext_limits());
    // A plain client's drop is a leave at once, as today.
    let (name, _, _) = h.create(1, json!({}));
    let plain = h.join(2, &name);
    h.frames(1);
    h.leave(2);
    assert_eq!(h.frames(1)[0], json(3, plain, ""));
    // Extension types from a plain client are unknown, as in the reference.
    h.connect(3);
    h.send(3, &ext(104, 0, Value::Null));
    assert_eq!(
        h.closed(3),
        Some((4000, "Invalid message when not in a lobby"))
    );
    // An extension client may browse for browse_timeout, not join_timeout.
    h.connect_as(4, true, [10, 0, 0, 4]);
    h.connect(5);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.closed(5), Some((4000, "Have not joined lobby yet")));
    assert_eq!(h.closed(4), None);
    h.advance(Duration::from_secs(299));
    assert_eq!(h.closed(4), Some((4000, "Have not joined lobby yet")));
    // Resuming can be turned off.
    let mut h = Harness::with(Limits {
        resume_grace: Duration::ZERO,
        ..ext_limits()
    });
    let (id, _) = lobby_of_two(&mut h);
    h.leave(2);
    assert_eq!(h.frames(1)[0], json(3, id, ""));
}

#[test]
fn frames_the_dropped_socket_could_not_take_are_kept_in_order() {
    let mut h = Harness::with(ext_limits());
    let (id, token) = lobby_of_two(&mut h);
    // The shell found member 2's socket gone while delivering two frames: it reports the drop,
    // then hands both back.
    h.leave(2);
    for n in 0..2 {
        let out = h.hub.undelivered(2, format!("lost {n}"));
        h.record(out);
    }
    h.send(1, &format!(r#"{{"type":4,"id":{id},"data":"later"}}"#));
    h.connect_as(20, true, [10, 0, 1, 2]);
    h.send(20, &ext(108, 0, json!({"token": token})));
    let frames = h.frames(20);
    assert_eq!(&frames[2..4], ["lost 0", "lost 1"]);
    assert!(frames[4].contains("later"));
    // For a plain peer (nothing kept), such frames are dropped.
    let (name, _, _) = h.create(3, json!({}));
    h.join(4, &name);
    h.leave(4);
    assert!(h.hub.undelivered(4, "x".into()).is_empty());
}

#[test]
fn the_relay_hears_of_each_lobby_and_the_addresses_announced_in_it() {
    let mut h = Harness::with(ext_limits());
    let (_, code, _) = h.create(1, json!({}));
    let scope = match h.relay[..] {
        [LobbyEvent::Opened { lobby }] => lobby,
        ref other => panic!("{other:?}"),
    };
    let frames = h.ext_join(2, &code, None);
    let id = frames[0].1;
    // Each member's credentials name the lobby's scope and the member.
    let user = of_type(&frames, kind::ICE_SERVERS)[0]["user"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        crate::credentials::lobby_of(&format!("1:{user}")),
        Some(scope)
    );
    let candidate = |ip: &str| format!("\n0\n0\ncandidate:1 1 udp 2122260223 {ip} 50000 typ srflx");
    h.send(
        1,
        &json!({"type": 6, "id": id, "data": candidate("203.0.113.9")}).to_string(),
    );
    h.send(
        2,
        &json!({"type": 6, "id": 1, "data": candidate("203.0.113.9")}).to_string(),
    );
    h.send(
        2,
        &json!({"type": 6, "id": 1, "data": candidate("5f2b-11.local")}).to_string(),
    );
    let sdp = "v=0\r\na=candidate:2 1 udp 1 198.51.100.4 49152 typ relay raddr 0.0.0.0 rport 0\r\n";
    h.send(2, &json!({"type": 5, "id": 1, "data": sdp}).to_string());
    let ip = |s: &str| s.parse().unwrap();
    assert_eq!(
        h.relay[1..],
        [
            LobbyEvent::Announced {
                lobby: scope,
                ip: ip("203.0.113.9")
            },
            LobbyEvent::Announced {
                lobby: scope,
                ip: ip("198.51.100.4")
            },
        ],
        "once each, names skipped"
    );
    // A fresh credential on request; none outside a lobby.
    h.frames(2);
    h.send(2, &ext(kind::ICE_REQUEST, 0, Value::Null));
    assert_eq!(
        of_type(&parsed(&h.frames(2)), kind::ICE_SERVERS)[0]["user"],
        user.as_str()
    );
    h.connect_as(9, true, [10, 0, 0, 9]);
    h.send(9, &ext(kind::ICE_REQUEST, 0, Value::Null));
    assert_eq!(error_code(&mut h, 9), "not_in_lobby");
    // Sealed: nothing more is announced; the end follows the seal's close.
    h.send(1, r#"{"type":7,"id":0,"data":""}"#);
    h.send(
        2,
        &json!({"type": 6, "id": 1, "data": candidate("192.0.2.99")}).to_string(),
    );
    assert_eq!(h.relay[3..], [LobbyEvent::Sealed { lobby: scope }]);
    h.advance(Duration::from_secs(10));
    assert_eq!(h.relay[4..], [LobbyEvent::Ended { lobby: scope }]);
    // A lobby whose host leaves before the seal (resume grace over) ends.
    h.relay.clear();
    h.create(3, json!({}));
    let Some(&LobbyEvent::Opened { lobby }) = h.relay.first() else {
        panic!("{:?}", h.relay)
    };
    h.leave(3);
    h.advance(Duration::from_secs(20));
    assert_eq!(h.relay.last(), Some(&LobbyEvent::Ended { lobby }));
}

#[test]
fn one_member_cannot_fill_its_lobbys_addresses_with_junk() {
    let mut h = Harness::with(ext_limits());
    let (_, code, _) = h.create(1, json!({}));
    let scope = match h.relay[..] {
        [LobbyEvent::Opened { lobby }] => lobby,
        ref other => panic!("{other:?}"),
    };
    h.ext_join(2, &code, None);
    h.ext_join(3, &code, None);
    let candidate =
        |ip: String| format!("\n0\n0\ncandidate:1 1 udp 2122260223 {ip} 50000 typ host");
    // 300 addresses from one member (and one it shares with the honest player): 16 reach the
    // relay.
    h.send(
        2,
        &json!({"type": 6, "id": 1, "data": candidate("198.51.100.7".into())}).to_string(),
    );
    for n in 0..300u32 {
        let ip = std::net::Ipv4Addr::from(0xC000_0200 + n).to_string();
        h.send(
            2,
            &json!({"type": 6, "id": 1, "data": candidate(ip)}).to_string(),
        );
    }
    let announced = |h: &Harness| {
        h.relay
            .iter()
            .filter(|e| matches!(e, LobbyEvent::Announced { .. }))
            .count()
    };
    assert_eq!(announced(&h), 16);
    assert_eq!(
        h.hub
            .counts()
            .limited
            .get("signal.max_addresses_per_member"),
        Some(&285),
        "each address beyond counted"
    );
    // The honest player's addresses still reach it.
    for ip in ["203.0.113.9", "198.51.100.7"] {
        h.send(
            3,
            &json!({"type": 6, "id": 1, "data": candidate(ip.into())}).to_string(),
        );
    }
    let ip = |s: &str| s.parse().unwrap();
    assert!(h.relay.contains(&LobbyEvent::Announced {
        lobby: scope,
        ip: ip("203.0.113.9")
    }));
    // The junk goes with its member; an address another member announced too stays.
    h.relay.clear();
    h.quit(2);
    let withdrawn: Vec<_> = h
        .relay
        .iter()
        .filter_map(|e| match e {
            LobbyEvent::Withdrawn { lobby, ip } if *lobby == scope => Some(*ip),
            _ => None,
        })
        .collect();
    assert_eq!(withdrawn.len(), 15, "{withdrawn:?}");
    assert!(!withdrawn.contains(&ip("198.51.100.7")));
}

#[test]
fn a_lost_socket_told_twice_keeps_its_place() {
    // The hub task finds a dropped session's queue gone and keeps its place; then the session
    // itself says its socket ended. Before: the second word gave the place up.
    let mut h = Harness::with(ext_limits());
    let (_, token) = lobby_of_two(&mut h);
    h.leave(2);
    h.leave(2);
    assert_eq!(h.hub.away_count(), 1);
    h.connect_as(20, true, [10, 0, 1, 2]);
    h.send(20, &ext(108, 0, json!({"token": token})));
    assert_eq!(parsed(&h.frames(20))[0].0, 109, "resumed");
}

impl Harness {
    /// Extension client `c` (from its own address) presses Play; returns its frames.
    fn quick_join(&mut self, c: ConnId, data: Value) -> Vec<(u64, u64, Value)> {
        self.connect_as(c, true, [10, 0, 2, c as u8]);
        self.send(c, &ext(kind::QUICK_JOIN, 0, data));
        parsed(&self.frames(c))
    }
}

/// The lobby a client's frames put it in (its last LOBBY).
fn lobby_of(frames: &[(u64, u64, Value)]) -> Value {
    of_type(frames, kind::LOBBY).pop().expect("a LOBBY")
}

#[test]
fn twenty_players_pressing_play_fill_five_lobbies_of_four() {
    let mut h = Harness::with(ext_limits());
    let mut players_by_lobby: HashMap<String, u32> = HashMap::new();
    for c in 1..=20 {
        let frames = h.quick_join(c, json!({"create": {"max_players": 4}}));
        // The usual sequences: a creator gets ID 1, a joiner ID and its PEER_CONNECTs.
        let kinds: Vec<u64> = frames.iter().map(|f| f.0).collect();
        assert_eq!(kinds.first(), Some(&1), "{frames:?}");
        assert!(kinds.ends_with(&[0, 102, 101]), "{kinds:?}");
        *players_by_lobby
            .entry(lobby_of(&frames)["name"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(players_by_lobby.len(), 5, "{players_by_lobby:?}");
    assert!(players_by_lobby.values().all(|&n| n == 4));
    assert_eq!(h.hub.counts().quick_joins.created, 5);
    assert_eq!(h.hub.counts().quick_joins.joined, 15);
}

#[test]
fn play_picks_the_fullest_then_the_oldest_matching_open_lobby() {
    let mut h = Harness::with(ext_limits());
    let open = json!({"public": true, "max_players": 8, "data": {"mode": "ctf"}});
    let (older, _, _) = h.create(1, open.clone());
    let (fuller, _, _) = h.create(2, open.clone());
    h.ext_join(3, &fuller, None);
    // Never picked: private, with a password, sealed, full, another mode.
    h.create(4, json!({"public": false, "data": {"mode": "ctf"}}));
    h.create(
        5,
        json!({"public": true, "password": "pw", "data": {"mode": "ctf"}}),
    );
    let (sealed, _, _) = h.create(6, open.clone());
    h.ext_join(7, &sealed, None);
    h.ext_join(8, &sealed, None);
    h.send(6, r#"{"type":7,"id":0,"data":""}"#);
    let (full, _, _) = h.create(
        9,
        json!({"public": true, "max_players": 2, "data": {"mode": "ctf"}}),
    );
    h.ext_join(10, &full, None);
    h.create(11, json!({"public": true, "data": {"mode": "dm"}}));
    h.sent.clear();

    let play = json!({"filter": {"mode": "ctf"}});
    assert_eq!(
        lobby_of(&h.quick_join(20, play.clone()))["name"],
        fuller.as_str()
    );
    // Three players each: the older one first.
    h.ext_join(12, &older, None);
    h.ext_join(13, &older, None);
    h.sent.clear();
    assert_eq!(
        lobby_of(&h.quick_join(21, play.clone()))["name"],
        older.as_str()
    );
    assert_eq!(
        lobby_of(&h.quick_join(22, play.clone()))["name"],
        older.as_str()
    );
    // A filter nothing matches opens a public lobby carrying it, which the next one joins.
    let frames = h.quick_join(
        23,
        json!({"filter": {"mode": "koth"}, "create": {"title": "KotH"}}),
    );
    let created = lobby_of(&frames);
    assert_eq!(created["players"], 1);
    assert_eq!(
        (created["public"].clone(), created["title"].clone()),
        (json!(true), json!("KotH"))
    );
    assert_eq!(created["data"], json!({"mode": "koth"}));
    let frames = h.quick_join(24, json!({"filter": {"mode": "koth"}}));
    assert_eq!(lobby_of(&frames)["name"], created["name"]);
    assert_eq!(lobby_of(&frames)["players"], 2);
    assert_eq!(h.hub.counts().quick_joins.created, 1);
}

#[test]
fn play_is_refused_in_a_lobby_over_the_list_rate_and_when_the_address_is_spent() {
    let mut h = Harness::with(ext_limits());
    h.create(1, json!({}));
    h.send(1, &ext(kind::QUICK_JOIN, 0, Value::Null));
    assert_eq!(error_code(&mut h, 1), "already_in_lobby");
    // LIST and QUICK_JOIN share signal.list_rate (bursts of LIST_BURST).
    h.connect_as(2, true, [10, 0, 3, 2]);
    for _ in 0..LIST_BURST {
        h.send(2, &ext(kind::LIST, 0, Value::Null));
    }
    h.frames(2);
    h.send(2, &ext(kind::QUICK_JOIN, 0, Value::Null));
    assert_eq!(error_code(&mut h, 2), "rate_limited");
    // An address that spent its failed joins joins nothing, quick or not.
    h.connect_as(3, true, [10, 0, 3, 3]);
    for _ in 0..10 {
        h.send(3, &ext(kind::JOIN, 0, json!({"lobby": "NOSUCH"})));
    }
    h.frames(3);
    h.connect_as(4, true, [10, 0, 3, 3]);
    h.send(4, &ext(kind::QUICK_JOIN, 0, Value::Null));
    assert_eq!(error_code(&mut h, 4), "rate_limited");
    assert_eq!(h.hub.counts().quick_joins, Default::default());
}

#[test]
fn a_shard_draws_only_its_own_names_codes_tokens_and_ids() {
    let shard = crate::signal::shard::Shard { index: 1, count: 3 };
    let mut h = Harness::with(ext_limits());
    h.hub = Hub::new(ext_limits(), h.at(), Random::seeded(7)).in_shard(shard);
    for c in 1..=10 {
        h.connect_as(c, true, [10, 0, 0, c as u8]);
        h.send(c, &ext(kind::CREATE, 0, Value::Null));
        let frames = parsed(&h.frames(c));
        let lobby = &of_type(&frames, kind::LOBBY)[0];
        let token = of_type(&frames, kind::SESSION)[0]["token"].clone();
        for key in [&lobby["name"], &lobby["code"]] {
            assert!(shard.owns_key(key.as_str().unwrap()), "{key}");
        }
        assert!(shard.owns_key(&resume_key(token.as_str().unwrap())));
        // A host is 1 to its lobby; its own id is the one other lobbies would see.
        let id = h.hub.peers[&c].id;
        assert!(shard.owns_id(id), "{id}");
    }
}
