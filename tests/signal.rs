//! The signalling hub end to end: the real server, WebSocket clients from tokio-tungstenite,
//! both Godot dialects, and the protections around them.

mod common;

use std::time::{Duration, Instant};

use common::ws::Client;
use common::{Server, ephemeral_config};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const WAIT: Duration = Duration::from_secs(10);

/// ephemeral_config puts `extra` under [server]; signalling keys need their own section.
fn start(signal_keys: &str) -> Server {
    let text = ephemeral_config("") + &format!("[signal]\n{signal_keys}\n");
    Server::start(&text)
}

#[tokio::test]
async fn godot4_lobby_relay_and_seal_end_to_end() {
    let server = start("seal_close_delay = \"500ms\"");
    let (mut host, lobby) = Client::host(server.web, true).await;
    let (mut a, a_id) = Client::join(server.web, &lobby).await;
    assert_eq!(a.recv_json().await, json!({"type": 2, "id": 1, "data": ""}));
    assert_eq!(
        a.recv_json().await,
        json!({"type": 0, "id": 0, "data": lobby})
    );
    assert_eq!(
        host.recv_json().await,
        json!({"type": 2, "id": a_id, "data": ""})
    );

    // Godot 4: the higher id offers; the host (1) answers. Byte-exact relays, id rewritten.
    let sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n";
    a.send_json(4, 1, sdp).await;
    assert_eq!(
        host.recv().await,
        format!(r#"{{"type":4,"id":{a_id},"data":{}}}"#, json!(sdp))
    );
    host.send_json(5, a_id, "answer-sdp").await;
    assert_eq!(a.recv().await, r#"{"type":5,"id":1,"data":"answer-sdp"}"#);
    let candidate = "\n0\n0\ncandidate:842163049 1 udp 1677729535 127.0.0.1 46154 typ host";
    host.send_json(6, a_id, candidate).await;
    assert_eq!(
        a.recv_json().await,
        json!({"type": 6, "id": 1, "data": candidate})
    );

    host.send_json(7, 0, "").await;
    assert_eq!(
        host.recv_json().await,
        json!({"type": 7, "id": 0, "data": ""})
    );
    assert_eq!(a.recv_json().await, json!({"type": 7, "id": 0, "data": ""}));
    let started = Instant::now();
    assert_eq!(a.closed().await, (1000, "Seal complete".to_string()));
    assert_eq!(host.closed().await, (1000, "Seal complete".to_string()));
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn godot3_text_protocol_end_to_end() {
    let server = start("");
    let mut host = Client::connect(server.web).await;
    host.send("J: \n").await;
    assert_eq!(host.recv().await, "I: 1\n");
    let lobby = host
        .recv()
        .await
        .strip_prefix("J: ")
        .unwrap()
        .trim_end()
        .to_string();
    let mut peer = Client::connect(server.web).await;
    peer.send(&format!("J: {lobby}\n")).await;
    let id: u32 = peer
        .recv()
        .await
        .strip_prefix("I: ")
        .unwrap()
        .trim_end()
        .parse()
        .unwrap();
    assert_eq!(peer.recv().await, "N: 1\n");
    assert_eq!(peer.recv().await, format!("J: {lobby}\n"));
    assert_eq!(host.recv().await, format!("N: {id}\n"));
    peer.send("O: 1\nv=0\r\n").await;
    assert_eq!(host.recv().await, format!("O: {id}\nv=0\r\n"));
    host.send(&format!(
        "C: {id}\n\n0\n0\ncandidate:1 1 udp 1 127.0.0.1 9 typ host"
    ))
    .await;
    assert_eq!(
        peer.recv().await,
        "C: 1\n\n0\n0\ncandidate:1 1 udp 1 127.0.0.1 9 typ host"
    );
    // Leaving is announced as D:.
    drop(peer);
    assert_eq!(host.recv().await, format!("D: {id}\n"));
}

#[tokio::test]
async fn client_server_lobby_and_host_leaving() {
    let server = start("");
    let (mut host, lobby) = Client::host(server.web, false).await;
    let (mut a, _) = Client::join(server.web, &lobby).await;
    let (mut b, b_id) = Client::join(server.web, &lobby).await;
    assert_eq!(
        b.recv_json().await,
        json!({"type": 2, "id": 1, "data": ""}),
        "clients meet only the host"
    );
    assert_eq!(b.recv_json().await["type"], 0);
    host.recv_json().await;
    assert_eq!(
        host.recv_json().await,
        json!({"type": 2, "id": b_id, "data": ""})
    );
    host.ws.close(None).await.unwrap();
    a.recv_json().await; // PEER_CONNECT(1)
    a.recv_json().await; // JOIN
    assert_eq!(
        a.closed().await,
        (4000, "Room host has disconnected".to_string())
    );
    assert_eq!(
        b.closed().await,
        (4000, "Room host has disconnected".to_string())
    );
}

#[tokio::test]
async fn protocol_errors_close_with_the_reference_reasons() {
    let server = start("join_timeout = \"300ms\"");
    let mut idle = Client::connect(server.web).await;
    assert_eq!(
        idle.closed().await,
        (4000, "Have not joined lobby yet".to_string())
    );

    let mut c = Client::connect(server.web).await;
    c.send("{not json").await;
    assert_eq!(
        c.closed().await,
        (4000, "Invalid message format".to_string())
    );

    let mut c = Client::connect(server.web).await;
    c.send_json(0, 0, "NoSuchLobby").await;
    assert_eq!(
        c.closed().await,
        (4000, "Lobby does not exists".to_string())
    );

    let (_host, lobby) = Client::host(server.web, true).await;
    let (mut c, _) = Client::join(server.web, &lobby).await;
    c.send_json(7, 0, "").await;
    c.recv().await;
    c.recv().await;
    assert_eq!(
        c.closed().await,
        (4000, "Only host can seal the lobby".to_string())
    );
}

#[tokio::test]
async fn binary_frames_with_json_are_accepted_others_refused() {
    let server = start("");
    let mut c = Client::connect(server.web).await;
    c.ws.send(Message::binary(br#"{"type":0,"id":0,"data":""}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(c.recv_json().await["type"], 1);
    let mut c = Client::connect(server.web).await;
    c.ws.send(Message::binary(vec![0xff, 0xfe, 0x00]))
        .await
        .unwrap();
    assert_eq!(
        c.closed().await,
        (4000, "Invalid transfer mode, must be text".to_string())
    );
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_with_a_clear_reason() {
    let server = start("max_message_size = \"4KiB\"");
    let (mut host, _) = Client::host(server.web, true).await;
    host.send_json(6, 1, &"x".repeat(5000)).await;
    let (code, reason) = host.closed().await;
    assert_eq!(
        (code, reason.as_str()),
        (
            1009,
            "Message too big; the limit is signal.max_message_size = 4KiB"
        )
    );
}

#[tokio::test]
async fn a_flood_is_slowed_to_the_rate_and_nothing_is_lost() {
    let server = start("message_rate = 20\nmessage_burst = 5");
    let (mut host, lobby) = Client::host(server.web, true).await;
    let (mut a, a_id) = Client::join(server.web, &lobby).await;
    a.recv().await;
    a.recv().await;
    host.recv().await;
    let started = Instant::now();
    for i in 0..25 {
        a.send_json(6, 1, &format!("\n0\n0\ncandidate:{i}")).await;
    }
    for i in 0..25 {
        let got = host.recv_json().await;
        assert_eq!(
            got,
            json!({"type": 6, "id": a_id, "data": format!("\n0\n0\ncandidate:{i}")})
        );
    }
    // 5 at once, then 20 more at 20/s: about a second.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "not throttled: {took:?}"
    );
}

/// Opens the signalling WebSocket as a page of `origin` would.
async fn connect_from(
    web: std::net::SocketAddr,
    origin: &str,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{web}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.map(drop)
}

/// The README's itch.io advice: the list adds sites; the server's own pages (the self-test
/// among them) keep working; another site gets 403, logged once with the key, all counted.
#[tokio::test]
async fn allowed_origins_add_sites_and_a_refusal_names_the_key() {
    let mut server = start("allowed_origins = [\"https://html-classic.itch.zone\"]");
    let web = server.web;
    let open = |origin: String| async move { connect_from(web, &origin).await };
    for refused in [
        "https://evil.example",
        "https://html-classic.itch.zone.evil.example",
    ] {
        match open(refused.to_string()).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
            other => panic!("expected 403 for {refused}, got {other:?}"),
        }
    }
    assert!(open("https://html-classic.itch.zone".into()).await.is_ok());
    let own = format!("http://{}", server.web);
    assert!(open(own.clone()).await.is_ok(), "the page's own site");
    let line = server.wait_log("refused a WebSocket");
    assert!(
        line.contains("\"https://evil.example\"") && line.contains("signal.allowed_origins"),
        "{line}"
    );
    common::wait_for_metrics(server.web, &["rallypoint_signal_origins_refused_total 2"]).await;
    // The self-test page asks whether its origin would be taken, as the server sees its Host.
    let ask = |origin: &str| {
        let (status, body) = common::http_get(
            server.web,
            &format!("/_rallypoint/status?origin={}", origin.replace(':', "%3A")),
        );
        assert_eq!(status, 200);
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["origin_allowed"].clone()
    };
    assert_eq!(ask(&own), serde_json::json!(true));
    assert_eq!(ask("https://evil.example"), serde_json::json!(false));
    let logged = server.drain_log();
    assert_eq!(
        logged.matches("refused a WebSocket").count(),
        1,
        "one line, not one per refusal"
    );
}

#[tokio::test]
async fn the_same_host_origin_is_allowed_by_default() {
    let server = start("");
    let origin = format!("http://{}", server.web);
    assert!(connect_from(server.web, &origin).await.is_ok());
}

/// A client that completes the handshake and then never reads: it never answers pings.
#[tokio::test]
async fn a_peer_whose_pong_never_comes_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start("ping_interval = \"200ms\"");
    let mut tcp = TcpStream::connect(server.web).await.unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.web
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    // Join a lobby (a masked text frame) so the join timeout does not interfere.
    let payload = br#"{"type":0,"id":0,"data":""}"#;
    let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    tcp.write_all(&frame).await.unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        seen.windows(2).any(|w| w == [0x89, 0x00]),
        "pings were sent"
    );
    let close = seen
        .windows(4)
        .position(|w| w[0] == 0x88 && w[2..4] == 1011u16.to_be_bytes());
    assert!(close.is_some(), "closed with 1011: {text}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn shutdown_closes_peers_with_1001() {
    let mut server = start("");
    let (mut host, _) = Client::host(server.web, true).await;
    server.signal(libc::SIGTERM);
    let (code, _) = host.closed().await;
    assert_eq!(code, 1001);
    assert!(server.wait_exit(Duration::from_secs(5)).success());
}

#[tokio::test]
async fn a_plain_get_on_the_endpoint_explains_itself() {
    let server = start("");
    let (status, body) = common::http_get(server.web, "/ws");
    assert_eq!(status, 426);
    assert!(body.contains("WebSocket"), "{body}");
}

#[tokio::test]
async fn metrics_count_peers_lobbies_relays_and_closes() {
    let server = start("");
    let (mut host, lobby) = Client::host(server.web, true).await;
    let (mut a, _) = Client::join(server.web, &lobby).await;
    a.send_json(4, 1, "sdp").await;
    host.recv().await;
    host.recv().await;
    let mut bad = Client::connect(server.web).await;
    bad.send("nonsense").await;
    bad.closed().await;

    let expected = [
        "rallypoint_signal_peers 2",
        "rallypoint_signal_lobbies 1",
        "rallypoint_signal_messages_relayed_total{type=\"offer\"} 1",
        "rallypoint_signal_closes_total{reason=\"Invalid message format\"} 1",
    ];
    common::wait_for_metrics(server.web, &expected).await;
}

#[tokio::test]
async fn reload_changes_limits_and_origins_but_keeps_live_lobbies() {
    let mut server = start("max_peers = 3\nallowed_origins = [\"https://a.example\"]");
    let (mut host, lobby) = Client::host(server.web, true).await;
    let (mut a, a_id) = Client::join(server.web, &lobby).await;
    a.recv().await;
    a.recv().await;
    host.recv().await;

    let text = ephemeral_config("")
        + "[signal]\nmax_peers = 2\nallowed_origins = [\"https://b.example\"]\n";
    std::fs::write(&server.config, text).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_notification("RELOADING=1");
    server.wait_notification("READY=1");

    // The live lobby still relays.
    host.send_json(5, a_id, "answer").await;
    assert_eq!(a.recv().await, r#"{"type":5,"id":1,"data":"answer"}"#);
    // The new peer limit (2) applies to newcomers.
    let mut late = Client::connect(server.web).await;
    assert_eq!(
        late.closed().await,
        (4000, "Too many peers connected".to_string())
    );
    // So do the new origins.
    for (origin, allowed) in [("https://a.example", false), ("https://b.example", true)] {
        assert_eq!(
            connect_from(server.web, origin).await.is_ok(),
            allowed,
            "{origin}"
        );
    }
}

/// A hundred clients each join at 0.9 × `join_timeout` after their socket opened, and every one
/// is accepted. Each arrives after the hub has idled a while, as a player on a quiet server does:
/// the hub once stamped a new connection with the time its loop had last woken, up to a second
/// early, and closed most such players. Ten servers run ten rounds each, side by side.
#[tokio::test]
async fn a_client_that_joins_late_but_in_time_is_accepted_every_time() {
    let servers: Vec<Server> = (0..10).map(|_| start("join_timeout = \"1s\"")).collect();
    let rounds = servers.iter().enumerate().map(|(s, server)| {
        let web = server.web;
        async move {
            let mut accepted = 0;
            for round in 0..10u64 {
                // An idle stretch of 200–950 ms, different for every round and server.
                let idle = 200 + (round * 7 + s as u64 * 13) % 16 * 50;
                tokio::time::sleep(Duration::from_millis(idle)).await;
                let mut c = Client::connect(web).await;
                tokio::time::sleep(Duration::from_millis(900)).await;
                c.send_json(0, 0, "").await;
                let first = tokio::time::timeout(WAIT, c.ws.next()).await.unwrap();
                if let Some(Ok(Message::Text(t))) = first {
                    accepted += usize::from(t.starts_with(r#"{"type":1,"#));
                }
            }
            accepted
        }
    });
    let accepted: usize = futures_util::future::join_all(rounds).await.iter().sum();
    assert_eq!(accepted, 100, "joins at 0.9 × join_timeout accepted");
}

/// RFC 6455 §5.5.1: the client's close frame is answered with its code, so the client sees a
/// clean close, not 1006 — and the server then closes the TCP connection.
#[tokio::test]
async fn a_client_close_is_echoed() {
    let server = start("");
    let (mut host, _) = Client::host(server.web, true).await;
    host.ws
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    let (code, reason) = host.closed().await;
    assert_eq!((code, reason.as_str()), (1000, "bye"));
    // After the handshake the stream ends cleanly (no reset, no further frames).
    let end = tokio::time::timeout(WAIT, host.ws.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
}

/// The other direction: the hub closes (4000 with the reference's reason), the client answers,
/// and the connection ends cleanly after the client's answer.
#[tokio::test]
async fn a_server_close_completes_the_handshake() {
    let server = start("");
    let mut c = Client::connect(server.web).await;
    c.send_json(0, 0, "NoSuchLobby").await;
    let (code, reason) = c.closed().await;
    assert_eq!((code, reason.as_str()), (4000, "Lobby does not exists"));
    // tungstenite answers the close as the client; the server then ends the stream.
    let end = tokio::time::timeout(WAIT, c.ws.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
}

/// A peer that stops reading is dropped once what waits for it passes
/// `signal.max_queued_bytes` (or one frame waits `signal.send_timeout`), and the others see it
/// leave; it cannot make the server hold an unbounded backlog.
#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped() {
    let server = start(
        "message_rate = 0\nmax_message_size = \"64KiB\"\nmax_queued_bytes = \"128KiB\"\nsend_timeout = \"2s\"",
    );
    let (mut host, lobby) = Client::host(server.web, true).await;
    // The slow peer joins, then never reads again.
    let (slow, slow_id) = Client::join(server.web, &lobby).await;
    host.recv().await; // PEER_CONNECT(slow)
    // The host sends it big candidates until the server gives up on it.
    let big = format!("\n0\n0\ncandidate:{}", "x".repeat(60_000));
    let mut sent = 0;
    let left = loop {
        host.send_json(6, slow_id, &big).await;
        sent += 1;
        let frame = tokio::time::timeout(Duration::from_millis(5), host.ws.next()).await;
        if let Ok(Some(Ok(Message::Text(t)))) = frame {
            break t.to_string();
        }
        assert!(sent < 2_000, "still connected after {sent} frames of 60 KB");
    };
    assert_eq!(
        serde_json::from_str::<Value>(&left).unwrap(),
        json!({"type": 3, "id": slow_id, "data": ""}),
        "the host sees the slow peer leave"
    );
    drop(slow);
    common::wait_for_metrics(
        server.web,
        &["rallypoint_signal_slow_peers_dropped_total 1"],
    )
    .await;
}
