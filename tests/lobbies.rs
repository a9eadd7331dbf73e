//! The lobby extension end to end (docs/protocol.md): the real server, tokio-tungstenite clients
//! that ask for `rallypoint.v1` (or `?ext=1`), plain Godot clients beside them, a real dropped
//! TCP connection and a resume.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Server, ephemeral_config, wait_for_metrics};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(10);

fn start(signal_keys: &str) -> Server {
    Server::start(&(ephemeral_config("") + &format!("[signal]\n{signal_keys}\n")))
}

struct Peer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Peer {
    /// An extension client (the subprotocol); checks that the server named it back.
    async fn ext(addr: SocketAddr) -> Peer {
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("rallypoint.v1"),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "rallypoint.v1"
        );
        Peer { ws }
    }

    async fn plain(addr: SocketAddr, query: &str) -> Peer {
        let (ws, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws{query}"))
            .await
            .unwrap();
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
    assert_eq!(godot[1].0, 0, "then JOIN with the name");
    assert_eq!(godot[2].0, 102, "then the session");
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
    assert_eq!(godot[1], (2, 1, Value::String(String::new())), "the host");
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
    let mut host = Peer::ext(server.web).await;
    host.send(100, 0, Value::Null).await;
    let code = host.until(101).await.1["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut guest = Peer::ext(server.web).await;
    guest.send(103, 0, json!({"lobby": code})).await;
    let (godot, _) = guest.until(101).await;
    let id = godot[0].1;
    let token = godot.iter().find(|m| m.0 == 102).unwrap().2["token"]
        .as_str()
        .unwrap()
        .to_string();
    host.until(101).await;

    // The guest's TCP connection dies without a close frame, as on a network change.
    let raw: &TcpStream = match guest.ws.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        _ => unreachable!(),
    };
    socket2::SockRef::from(raw)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(guest);
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
    let mut host = Peer::ext(server.web).await;
    host.send(100, 0, Value::Null).await;
    let code = host.until(101).await.1["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut guest = Peer::ext(server.web).await;
    guest.send(103, 0, json!({"lobby": code})).await;
    let id = guest.recv().await.1;
    host.until(101).await;
    let started = std::time::Instant::now();
    guest.ws.close(None).await.unwrap();
    drop(guest);
    assert_eq!(host.recv().await, (3, id, Value::String(String::new())));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "told after the grace, not before: {took:?}"
    );
}

#[tokio::test]
async fn the_host_kicks_a_member() {
    let server = start("");
    let mut host = Peer::ext(server.web).await;
    host.send(100, 0, Value::Null).await;
    let code = host.until(101).await.1["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut guest = Peer::plain(server.web, "").await;
    guest.send(0, 0, Value::String(code)).await;
    let id = guest.recv().await.1;
    host.until(101).await;
    host.send(107, id, Value::Null).await;
    assert_eq!(guest.closed().await, (4000, "Kicked by host".into()));
    assert_eq!(host.recv().await, (3, id, Value::String(String::new())));
}
