//! The lobby extension end to end (docs/protocol.md): the real server, tokio-tungstenite clients
//! that ask for `rallypoint.v1` (or `?ext=1`), plain Godot clients beside them, a real dropped
//! TCP connection and a resume.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{Server, ephemeral_config, turn_client, wait_for_metrics};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webrtc_util::Conn;

const WAIT: Duration = Duration::from_secs(10);

fn start(signal_keys: &str) -> Server {
    Server::start(&(ephemeral_config("") + &format!("[signal]\n{signal_keys}\n")))
}

struct Peer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// A WebSocket to the server at `addr` from the loopback address `source`.
async fn connect_from(
    request: Request,
    addr: SocketAddr,
    source: Ipv4Addr,
) -> (WebSocketStream<MaybeTlsStream<TcpStream>>, Response) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
        .await
        .unwrap()
}

impl Peer {
    /// An extension client (the subprotocol); checks that the server named it back.
    async fn ext(addr: SocketAddr) -> Peer {
        Peer::ext_from(addr, Ipv4Addr::LOCALHOST).await
    }

    /// An extension client whose connection comes from `source` (a loopback address).
    async fn ext_from(addr: SocketAddr, source: Ipv4Addr) -> Peer {
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("rallypoint.v1"),
        );
        let (ws, response) = connect_from(request, addr, source).await;
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "rallypoint.v1"
        );
        Peer { ws }
    }

    /// An extension client that creates a lobby; returns it and the lobby's code.
    async fn create(addr: SocketAddr) -> (Peer, String) {
        let mut host = Peer::ext(addr).await;
        host.send(100, 0, Value::Null).await;
        let code = host.until(101).await.1["code"]
            .as_str()
            .unwrap()
            .to_string();
        (host, code)
    }

    async fn plain(addr: SocketAddr, query: &str) -> Peer {
        Peer::plain_from(addr, query, Ipv4Addr::LOCALHOST).await
    }

    async fn plain_from(addr: SocketAddr, query: &str, source: Ipv4Addr) -> Peer {
        let request = format!("ws://{addr}/ws{query}")
            .into_client_request()
            .unwrap();
        let (ws, response) = connect_from(request, addr, source).await;
        assert!(response.headers().get("sec-websocket-protocol").is_none());
        Peer { ws }
    }

    async fn send(&mut self, kind: u64, id: u64, data: Value) {
        // An object goes as JSON text (the extension); a string as it is (Godot's own).
        let data = match data {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        };
        // Numbers as floats, as GDScript's JSON sends them.
        let frame = format!(r#"{{"type":{kind}.0,"id":{id}.0,"data":{}}}"#, json!(data));
        self.ws.send(Message::text(frame)).await.unwrap();
    }

    /// The next message as (type, id, data parsed as JSON if it is an object).
    async fn recv(&mut self) -> (u64, u64, Value) {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("open")
                .unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            let data = v["data"].as_str().unwrap().to_string();
            let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
            return (v["type"].as_u64().unwrap(), v["id"].as_u64().unwrap(), data);
        }
    }

    /// Reads until a message of `kind`, returning those before it too.
    async fn until(&mut self, kind: u64) -> (Vec<(u64, u64, Value)>, Value) {
        let mut before = Vec::new();
        loop {
            let m = self.recv().await;
            if m.0 == kind {
                return (before, m.2);
            }
            before.push(m);
        }
    }

    /// The TCP connection dies without a close frame (a reset), as on a network change.
    fn die(self) {
        let raw: &TcpStream = match self.ws.get_ref() {
            MaybeTlsStream::Plain(s) => s,
            _ => unreachable!(),
        };
        socket2::SockRef::from(raw)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }

    async fn closed(&mut self) -> (u16, String) {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a close in time")
            {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(_)) => continue,
                other => panic!("expected a close, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn create_list_join_by_code_with_a_password() {
    let server = start("");
    let mut host = Peer::ext(server.web).await;
    host.send(
        100,
        0,
        json!({"title": "Friday duel", "public": true, "max_players": 4, "password": "pw",
               "data": {"version": "1.0", "map": "dune"}}),
    )
    .await;
    let (godot, lobby) = host.until(101).await;
    assert_eq!(godot[0].0, 1, "Godot's ID first: {godot:?}");
    assert_eq!(godot[1].0, 111, "then the relay credentials");
    assert_eq!(godot[2].0, 0, "then JOIN with the name");
    assert_eq!(godot[3].0, 102, "then the session");
    let code = lobby["code"].as_str().unwrap().to_string();

    // A browser lists it (filtered by version) and joins by code, lower case, with the password.
    let mut guest = Peer::ext(server.web).await;
    guest
        .send(104, 0, json!({"filter": {"version": "1.0"}}))
        .await;
    let (_, list) = guest.until(105).await;
    assert_eq!(list["lobbies"][0]["title"], "Friday duel");
    assert_eq!(list["lobbies"][0]["password"], true);
    guest
        .send(104, 0, json!({"filter": {"version": "2.0"}}))
        .await;
    assert_eq!(guest.until(105).await.1["lobbies"], json!([]));
    guest
        .send(
            103,
            0,
            json!({"lobby": code.to_lowercase(), "password": "nope"}),
        )
        .await;
    assert_eq!(guest.until(199).await.1["code"], "wrong_password");
    guest
        .send(
            103,
            0,
            json!({"lobby": code.to_lowercase(), "password": "pw"}),
        )
        .await;
    let (godot, info) = guest.until(101).await;
    assert_eq!(godot[0].0, 1);
    assert_eq!(godot[1].0, 111, "credentials before any PEER_CONNECT");
    assert_eq!(godot[2], (2, 1, Value::String(String::new())), "the host");
    assert_eq!(info["players"], 2);
    assert_eq!(
        host.until(101).await.1["players"],
        2,
        "the host sees the count"
    );

    // A plain Godot client with the code and no password is refused with a reason it shows.
    let mut plain = Peer::plain(server.web, "").await;
    plain.send(0, 0, Value::String(code.clone())).await;
    assert_eq!(
        plain.closed().await,
        (4000, "Lobby requires a password".into())
    );
    wait_for_metrics(
        server.web,
        &[
            "rallypoint_signal_public_lobbies 1",
            "rallypoint_signal_joins_by_code_total 1",
            "rallypoint_signal_failed_joins_total{reason=\"wrong_password\"} 2",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_plain_client_joins_a_codes_lobby_and_sees_only_godots_wire() {
    let server = start("");
    // `?ext=1` asks for the extension without a subprotocol.
    let mut host = Peer::plain(server.web, "?ext=1").await;
    host.send(100, 0, Value::Null).await;
    let (_, lobby) = host.until(101).await;
    let code = lobby["code"].as_str().unwrap().to_string();
    let mut plain = Peer::plain(server.web, "").await;
    plain.send(0, 0, Value::String(code.to_lowercase())).await;
    let mut seen = Vec::new();
    let mut plain_id = 0;
    loop {
        let m = plain.recv().await;
        seen.push((m.0, m.1));
        if m.0 == 1 {
            plain_id = m.1;
        }
        if m.0 == 0 {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![(1, plain_id), (2, 1), (0, 0)],
        "ID, PEER_CONNECT(host), JOIN"
    );
    let (before, info) = host.until(101).await;
    assert_eq!(before, vec![(2, plain_id, Value::String(String::new()))]);
    assert_eq!(info["players"], 2);
    host.send(106, 0, json!({"title": "renamed"})).await;
    assert_eq!(host.until(101).await.1["title"], "renamed");
    // The plain client's next frame is the host's offer: nothing of the extension came first.
    host.send(4, plain_id, Value::String("sdp".into())).await;
    assert_eq!(plain.recv().await, (4, 1, Value::String("sdp".into())));
}

#[tokio::test]
async fn a_dropped_socket_resumes_with_what_was_sent_meanwhile() {
    let server = start("resume_grace = \"20s\"");
    let (mut host, code) = Peer::create(server.web).await;
    let mut guest = Peer::ext(server.web).await;
    guest.send(103, 0, json!({"lobby": code})).await;
    let (godot, _) = guest.until(101).await;
    let id = godot[0].1;
    let token = godot.iter().find(|m| m.0 == 102).unwrap().2["token"]
        .as_str()
        .unwrap()
        .to_string();
    host.until(101).await;

    guest.die();
    wait_for_metrics(server.web, &["rallypoint_signal_away_peers 1"]).await;
    for n in 0..3 {
        host.send(6, id, Value::String(format!("\n0\n0\ncandidate:{n}")))
            .await;
    }

    let mut back = Peer::ext(server.web).await;
    back.send(108, 0, json!({"token": token})).await;
    let (resumed_id, resumed_data) = {
        let m = back.recv().await;
        assert_eq!(m.0, 109, "{m:?}");
        (m.2["id"].as_u64().unwrap(), m.2)
    };
    assert_eq!(resumed_id, id, "{resumed_data}");
    assert_eq!(back.recv().await.0, 101);
    for n in 0..3 {
        let m = back.recv().await;
        assert_eq!(m, (6, 1, Value::String(format!("\n0\n0\ncandidate:{n}"))));
    }
    // The host never heard of it, and the two talk on.
    back.send(5, 1, Value::String("answer".into())).await;
    assert_eq!(host.recv().await, (5, id, Value::String("answer".into())));
    wait_for_metrics(
        server.web,
        &[
            "rallypoint_signal_resumes_total 1",
            "rallypoint_signal_away_peers 0",
        ],
    )
    .await;
}

#[tokio::test]
async fn after_the_grace_the_host_sees_the_guest_leave() {
    let server = start("resume_grace = \"1s\"");
    let (mut host, code) = Peer::create(server.web).await;
    let mut guest = Peer::ext(server.web).await;
    guest.send(103, 0, json!({"lobby": code})).await;
    let id = guest.recv().await.1;
    host.until(101).await;
    let started = std::time::Instant::now();
    guest.die();
    assert_eq!(host.recv().await, (3, id, Value::String(String::new())));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "told after the grace, not before: {took:?}"
    );
}

/// A player who quits (a close frame with 1000, what Godot's `WebSocketPeer.close()` sends, or
/// with no code) leaves at once; one whose page reloads (1001) keeps its place for the grace.
#[tokio::test]
async fn a_deliberate_close_leaves_at_once_and_going_away_keeps_the_place() {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let server = start("resume_grace = \"60s\"");
    let (mut host, code) = Peer::create(server.web).await;
    for (close, leaves) in [
        (Some(CloseCode::Normal), true),
        (None, true),
        (Some(CloseCode::Away), false),
    ] {
        let mut guest = Peer::ext(server.web).await;
        guest.send(103, 0, json!({"lobby": code})).await;
        let id = guest.recv().await.1;
        host.until(101).await;
        let frame = close.map(|code| CloseFrame {
            code,
            reason: "".into(),
        });
        guest.ws.close(frame).await.unwrap();
        // The server answers the close: the hub has heard of it by then.
        while let Some(Ok(_)) = guest.ws.next().await {}
        if leaves {
            let (told, _) = host.until(101).await;
            assert_eq!(told, [(3, id, Value::String(String::new()))], "{close:?}");
        } else {
            wait_for_metrics(server.web, &["rallypoint_signal_away_peers 1"]).await;
        }
    }
    // Only the one that went away is kept; the host heard nothing of it.
    host.send(104, 0, json!({})).await;
    let m = host.recv().await;
    assert_eq!(m.0, 105, "the list's answer, and nothing before it: {m:?}");
}

#[tokio::test]
async fn the_host_kicks_a_member() {
    let server = start("");
    let (mut host, code) = Peer::create(server.web).await;
    let mut guest = Peer::plain(server.web, "").await;
    guest.send(0, 0, Value::String(code)).await;
    let id = guest.recv().await.1;
    host.until(101).await;
    host.send(107, id, Value::Null).await;
    assert_eq!(guest.closed().await, (4000, "Kicked by host".into()));
    assert_eq!(host.recv().await, (3, id, Value::String(String::new())));
}

/// Whether `peer` receives `payload` sent through `relay` within half a second.
async fn arrives(relay: &impl Conn, peer: &UdpSocket, payload: &[u8]) -> bool {
    let _ = relay.send_to(payload, peer.local_addr().unwrap()).await;
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(Duration::from_millis(500), peer.recv_from(&mut buf)).await,
        Ok(Ok((n, _))) if &buf[..n] == payload
    )
}

#[tokio::test]
async fn lobby_credentials_reach_the_lobby_and_nothing_nobody_announced() {
    // Loopback peers are allowed by policy here, so every refusal below is the lobby's doing.
    let server = Server::start(&format!(
        "{}allow_peers = [\"127.0.0.0/8\"]\n",
        ephemeral_config("")
    ));
    let mut host = Peer::ext(server.web).await;
    host.send(100, 0, Value::Null).await;
    let (before, _) = host.until(101).await;
    let host_ice = before.iter().find(|m| m.0 == 111).unwrap().2.clone();
    let name = before.iter().find(|m| m.0 == 0).unwrap().2.clone();
    let mut guest = Peer::ext(server.web).await;
    guest.send(103, 0, json!({"lobby": name})).await;
    let (before, _) = guest.until(101).await;
    let guest_ice = before.iter().find(|m| m.0 == 111).unwrap().2.clone();
    assert!(
        host_ice["iceServers"][0]["username"]
            .as_str()
            .unwrap()
            .contains(":lobby."),
        "{host_ice}"
    );

    // The two members relay to each other, relay to relay.
    let host_turn = turn_client(server.turn, &host_ice).await;
    let guest_turn = turn_client(server.turn, &guest_ice).await;
    let host_relay = host_turn.allocate().await.unwrap();
    let guest_relay = guest_turn.allocate().await.unwrap();
    let guest_addr = guest_relay.local_addr().unwrap();
    let host_addr = host_relay.local_addr().unwrap();
    // Each side's permission for the other, then a packet each way.
    let _ = guest_relay.send_to(b"hello host", host_addr).await;
    let mut buf = [0u8; 64];
    let _ = host_relay.send_to(b"hello guest", guest_addr).await;
    let (n, from) = tokio::time::timeout(WAIT, guest_relay.recv_from(&mut buf))
        .await
        .expect("the guest hears the host")
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"hello guest"[..], host_addr));

    // An echo peer nobody announced: the host's credential cannot reach it (403).
    let echo = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    assert!(!arrives(&host_relay, &echo, b"out of the lobby").await);
    common::wait_for_metrics(
        server.web,
        &["rallypoint_turn_error_responses_total{code=\"403\"} 1"],
    )
    .await;
    // An open /api/ice credential reaches it (the policy allows loopback here): the refusal
    // was the lobby's.
    let (status, body) = common::http_get(server.web, "/api/ice");
    assert_eq!(status, 200);
    let open: Value = serde_json::from_str(&body).unwrap();
    let open_turn = turn_client(server.turn, &open).await;
    let open_relay = open_turn.allocate().await.unwrap();
    assert!(arrives(&open_relay, &echo, b"open relay").await);
    // Once a member announces it in a candidate, the lobby may reach it.
    let candidate = format!(
        "\n0\n0\ncandidate:1 1 udp 2122260223 127.0.0.2 {} typ host",
        echo.local_addr().unwrap().port()
    );
    guest.send(6, 1, Value::String(candidate.clone())).await;
    assert_eq!(host.until(6).await.1, Value::String(candidate));
    let host_again = turn_client(server.turn, &host_ice).await;
    let relay_again = host_again.allocate().await.unwrap();
    assert!(arrives(&relay_again, &echo, b"announced").await);
    // The operator sees the lobby relaying, then one line and the histograms when it is done.
    let (_, status) = common::http_get(server.web, "/_rallypoint/status");
    let status: Value = serde_json::from_str(&status).unwrap();
    let running = &status["lobbies_relaying"][0];
    assert_eq!(
        (running["players"].as_u64(), running["allocations"].as_u64()),
        (Some(2), Some(3)),
        "{status}"
    );
    assert!(running["bytes"].as_u64().unwrap() >= 20, "{status}");
    // Closing a relay deletes its allocation (Refresh with lifetime 0).
    for relay in [host_relay, guest_relay, relay_again, open_relay] {
        relay.close().await.unwrap();
    }
    for c in [host_turn, guest_turn, open_turn, host_again] {
        c.close().await.unwrap();
    }
    common::wait_for_metrics(
        server.web,
        &[
            "rallypoint_turn_lobby_relayed_bytes_count 1",
            "rallypoint_turn_allocations 0",
        ],
    )
    .await;
}

/// The lobby each player is in after pressing Play (QUICK_JOIN with `data`), all at once.
async fn play_all(players: &mut [Peer], data: Value) -> Vec<Value> {
    futures_util::future::join_all(players.iter_mut().map(|p| p.send(112, 0, data.clone()))).await;
    let lobbies = players.iter_mut().map(|p| async { p.until(101).await.1 });
    futures_util::future::join_all(lobbies).await
}

#[tokio::test]
async fn twenty_players_pressing_play_at_once_fill_five_lobbies_of_four() {
    let server = start("");
    let mut players = Vec::new();
    for _ in 0..20 {
        players.push(Peer::ext(server.web).await);
    }
    let lobbies = play_all(&mut players, json!({"create": {"max_players": 4}})).await;
    let mut members = std::collections::HashMap::<String, usize>::new();
    for lobby in &lobbies {
        assert_eq!(lobby["public"], true, "{lobby}");
        *members
            .entry(lobby["name"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(members.len(), 5, "{members:?}");
    assert!(members.values().all(|&n| n == 4), "{members:?}");
    wait_for_metrics(
        server.web,
        &[
            r#"rallypoint_signal_quick_joins_total{result="created"} 5"#,
            r#"rallypoint_signal_quick_joins_total{result="joined"} 15"#,
        ],
    )
    .await;
}

#[tokio::test]
async fn play_never_picks_a_password_lobby_nor_one_of_another_filter() {
    let server = start("");
    let mut locked = Peer::ext(server.web).await;
    locked
        .send(
            100,
            0,
            json!({"public": true, "password": "pw", "data": {"mode": "ctf"}}),
        )
        .await;
    let locked = locked.until(101).await.1;
    let mut open = Peer::ext(server.web).await;
    open.send(100, 0, json!({"public": true, "data": {"mode": "dm"}}))
        .await;
    let open = open.until(101).await.1;

    let mut player = Peer::ext(server.web).await;
    player
        .send(112, 0, json!({"filter": {"mode": "ctf"}}))
        .await;
    // Godot's create sequence (ID 1: the player hosts it), then the lobby, new.
    let (sequence, lobby) = player.until(101).await;
    assert_eq!((sequence[0].0, sequence[0].1), (1, 1), "{sequence:?}");
    assert_ne!(lobby["name"], locked["name"]);
    assert_ne!(lobby["name"], open["name"]);
    assert_eq!(lobby["data"], json!({"mode": "ctf"}));
    // Refused, with the connection open: a quick-join lobby with a password could never be
    // quick-joined.
    let mut other = Peer::ext(server.web).await;
    other
        .send(112, 0, json!({"create": {"password": "pw"}}))
        .await;
    let error = other.until(199).await.1;
    assert_eq!(
        (error["of"].clone(), error["code"].clone()),
        (json!(112), json!("invalid"))
    );
    other.send(112, 0, json!({"filter": {"mode": "ctf"}})).await;
    assert_eq!(other.until(101).await.1["name"], lobby["name"]);
}

/// Lobbies over three hubs (`signal.shards`): a player's lobby opens in its address's hub, and
/// wherever a connection starts it joins by code, lists, plays, resumes and spends its failed
/// joins as on one hub.
#[tokio::test]
async fn three_shards_join_list_play_and_resume_as_one_hub() {
    let server =
        start("shards = 3\nfailed_joins_per_minute = 6\nlist_rate = 0\nresume_grace = \"20s\"");
    let source = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    let (mut hosts, mut codes) = (Vec::new(), Vec::new());
    for n in 1..=6u8 {
        let mut host = Peer::ext_from(server.web, source(n)).await;
        host.send(100, 0, json!({"public": true, "data": {"n": n}}))
            .await;
        codes.push(
            host.until(101).await.1["code"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        hosts.push(host);
    }
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 6, "{codes:?}");

    // A Godot client joins each lobby by its code and reaches its host.
    for (host, code) in hosts.iter_mut().zip(&codes) {
        let mut plain = Peer::plain_from(server.web, "", source(7)).await;
        plain.send(0, 0, Value::String(code.to_lowercase())).await;
        let (godot, _) = plain.until(0).await;
        let id = godot[0].1;
        assert_eq!((godot[1].0, godot[1].1), (2, 1), "{godot:?}");
        plain.send(4, 1, Value::String("offer".into())).await;
        let (before, offer) = host.until(4).await;
        assert!(before.contains(&(2, id, Value::String(String::new()))));
        assert_eq!(offer, Value::String("offer".into()));
    }

    // A player who mistypes a code tries again, maybe in another hub: six of them, one a lobby.
    let mut retried = Vec::new();
    for (n, code) in (12..).zip(&codes) {
        let mut player = Peer::ext_from(server.web, source(n)).await;
        player.send(103, 0, json!({"lobby": "ZZZZZZ"})).await;
        assert_eq!(player.until(199).await.1["code"], "not_found");
        player.send(103, 0, json!({"lobby": code})).await;
        assert_eq!(player.until(101).await.1["code"], code.as_str());
        retried.push(player);
    }

    // A browser sees all six, the other hubs' as they last shared them.
    let mut browser = Peer::ext_from(server.web, source(8)).await;
    let mut every = tokio::time::interval(Duration::from_millis(20));
    for tried in 0.. {
        every.tick().await;
        browser.send(104, 0, json!({})).await;
        let listed = browser.until(105).await.1["lobbies"]
            .as_array()
            .unwrap()
            .len();
        if listed == 6 {
            break;
        }
        assert!(tried < 250, "listed {listed} of 6 after 5s");
    }

    // Play with a filter finds the one lobby that matches, in whichever hub.
    let mut player = Peer::ext_from(server.web, source(9)).await;
    player.send(112, 0, json!({"filter": {"n": 4}})).await;
    assert_eq!(player.until(101).await.1["code"], codes[3].as_str());

    // A guest's place is taken back from three connections in a row: one starts in each hub.
    let mut guest = Peer::ext_from(server.web, source(10)).await;
    guest.send(103, 0, json!({"lobby": codes[4]})).await;
    let (godot, _) = guest.until(101).await;
    let token = godot.iter().find(|m| m.0 == 102).unwrap().2["token"].clone();
    for _ in 0..3 {
        guest.die();
        wait_for_metrics(server.web, &["rallypoint_signal_away_peers 1"]).await;
        guest = Peer::ext_from(server.web, source(10)).await;
        guest.send(108, 0, json!({"token": token})).await;
        assert_eq!(guest.recv().await.0, 109, "resumed");
    }

    // Six wrong guesses, in the hubs their codes belong to: the address has spent its tries in
    // all of them, so even a real code is refused.
    for guess in ["AAAAAA", "BBBBBB", "CCCCCC", "DDDDDD", "EEEEEE", "FFFFFF"] {
        let mut guesser = Peer::plain_from(server.web, "", source(11)).await;
        guesser.send(0, 0, Value::String(guess.into())).await;
        assert_eq!(
            guesser.closed().await,
            (4000, "Lobby does not exists".into())
        );
    }
    let mut guesser = Peer::plain_from(server.web, "", source(11)).await;
    guesser.send(0, 0, Value::String(codes[0].clone())).await;
    assert_eq!(
        guesser.closed().await,
        (4000, "Too many failed joins, try again later".into())
    );

    // The figures are the hubs' added up: six hosts, six who mistyped, the browser, the player
    // and the guest.
    wait_for_metrics(
        server.web,
        &[
            "rallypoint_signal_lobbies 6",
            "rallypoint_signal_peers 15",
            "rallypoint_signal_failed_joins_total{reason=\"rate_limited\"} 1",
            "rallypoint_signal_resumes_total 3",
            "rallypoint_signal_failed_joins_total{reason=\"not_found\"} 12",
        ],
    )
    .await;
}

/// `signal.max_peers` and `signal.max_lobbies` are the server's, whichever hubs hold them.
#[tokio::test]
async fn three_shards_share_the_servers_limits() {
    let server = start("shards = 3\nmax_peers = 4\nmax_lobbies = 2");
    let source = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    let mut hosts = Vec::new();
    for n in 1..=2 {
        let mut host = Peer::ext_from(server.web, source(n)).await;
        host.send(100, 0, Value::Null).await;
        host.until(101).await;
        hosts.push(host);
    }
    let mut third = Peer::ext_from(server.web, source(3)).await;
    third.send(100, 0, Value::Null).await;
    assert_eq!(third.until(199).await.1["code"], "too_many_lobbies");
    let _fourth = Peer::ext_from(server.web, source(4)).await;
    wait_for_metrics(server.web, &["rallypoint_signal_peers 4"]).await;
    // Connections start in the hubs in turn: three more reach every hub, each of them full.
    for n in 5..=7 {
        let mut over = Peer::plain_from(server.web, "", source(n)).await;
        assert_eq!(
            over.closed().await,
            (4000, "Too many peers connected".into())
        );
    }
}

/// `signal.max_lobbies_per_address` is the address's, whichever hubs hold its lobbies: a quick
/// play opens its lobby in the hub its filter picks, so one address pressing Play with eight
/// filters reaches several of four hubs, and still opens two lobbies, not two per hub.
#[tokio::test]
async fn an_address_playing_eight_filters_over_four_shards_opens_its_two_lobbies() {
    let server = start("shards = 4\nmax_lobbies_per_address = 2");
    let address = Ipv4Addr::new(127, 0, 0, 5);
    // The lobby a new player from `address` opens with filter `n`, or the ERROR's code.
    let play = |n: u32| async move {
        let mut player = Peer::ext_from(server.web, address).await;
        player.send(112, 0, json!({"filter": {"n": n}})).await;
        loop {
            match player.recv().await {
                (101, _, lobby) => return (player, Ok(lobby["data"]["n"].clone())),
                (199, _, error) => return (player, Err(error["code"].clone())),
                _ => continue,
            }
        }
    };
    let mut hosts = Vec::new();
    let mut refused = 0;
    for n in 0..8 {
        match play(n).await {
            (host, Ok(lobby)) => {
                assert_eq!(lobby, json!(n));
                hosts.push(host);
            }
            (_, Err(code)) => {
                assert_eq!(code, "too_many_lobbies");
                refused += 1;
            }
        }
    }
    assert_eq!((hosts.len(), refused), (2, 6));
    wait_for_metrics(
        server.web,
        &[
            "rallypoint_signal_lobbies 2",
            r#"rallypoint_signal_limited_total{limit="signal.max_lobbies_per_address"} 6"#,
        ],
    )
    .await;
    // A host leaves and its lobby ends, in whichever hub: the address may open one more.
    hosts.pop().unwrap().ws.close(None).await.unwrap();
    wait_for_metrics(server.web, &["rallypoint_signal_lobbies 1"]).await;
    let (_host, lobby) = play(8).await;
    assert_eq!(lobby, Ok(json!(8)));
    let (_, refused) = play(9).await;
    assert_eq!(refused, Err(json!("too_many_lobbies")));
}
