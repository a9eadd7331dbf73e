//! A signalling client: tokio-tungstenite speaking Godot 4's JSON dialect.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(10);

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// A client of rallypoint's lobby extension (subprotocol `rallypoint.v1`).
    pub async fn connect_extension(addr: SocketAddr) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "rallypoint.v1".parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Client { ws }
    }

    /// An extension client on `addr` that created a lobby (default options), and its code.
    pub async fn open_lobby(addr: SocketAddr) -> (Client, String) {
        let mut host = Client::connect_extension(addr).await;
        // CREATE, answered at last by LOBBY.
        host.send_extension(100, json!({})).await;
        let code = host.next_extension(101).await["code"]
            .as_str()
            .unwrap()
            .to_string();
        (host, code)
    }

    /// Sends an extension request: Godot's envelope, `data` the JSON of `data`.
    pub async fn send_extension(&mut self, kind: u64, data: Value) {
        let frame = json!({"type": kind, "id": 0, "data": data.to_string()}).to_string();
        self.send(&frame).await;
    }

    /// The `data` of the next message of type `kind` (as JSON), skipping others.
    pub async fn next_extension(&mut self, kind: u64) -> Value {
        let mut skipped = Vec::new();
        let wait = tokio::time::timeout(WAIT, async {
            loop {
                let v = self.recv_json().await;
                if v["type"].as_u64() == Some(kind) {
                    return serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
                }
                skipped.push(v);
            }
        });
        match wait.await {
            Ok(data) => data,
            Err(_) => panic!("no message of type {kind} in time; skipped {skipped:?}"),
        }
    }

    pub async fn connect(addr: SocketAddr) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        Client { ws }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_json(&mut self, kind: u8, id: u32, data: &str) {
        // Numbers as floats, as GDScript's JSON sends them.
        let frame = format!(r#"{{"type":{kind}.0,"id":{id}.0,"data":{}}}"#, json!(data));
        self.send(&frame).await;
    }

    /// The next text frame.
    pub async fn recv(&mut self) -> String {
        // The server's pings do not extend the wait.
        let by = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(by, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("the connection is open")
                .unwrap();
            match msg {
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected text, got {other:?}"),
            }
        }
    }

    pub async fn recv_json(&mut self) -> Value {
        let text = self.recv().await;
        serde_json::from_str(&text).unwrap()
    }

    /// Waits for the server's close frame and returns its code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        // The server's pings do not extend the wait.
        let by = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(by, self.ws.next())
                .await
                .expect("a close in time")
            {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (frame.code.into(), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => return (CloseCode::Status.into(), String::new()),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Creates a lobby; returns its name.
    pub async fn host(addr: SocketAddr, mesh: bool) -> (Client, String) {
        let mut c = Client::connect(addr).await;
        c.send_json(0, if mesh { 0 } else { 1 }, "").await;
        assert_eq!(
            c.recv_json().await,
            json!({"type": 1, "id": 1, "data": if mesh { "true" } else { "" }})
        );
        let joined = c.recv_json().await;
        assert_eq!(
            (joined["type"].as_u64(), joined["id"].as_u64()),
            (Some(0), Some(0))
        );
        (c, joined["data"].as_str().unwrap().to_string())
    }

    /// Joins `lobby`; returns the client and its id.
    pub async fn join(addr: SocketAddr, lobby: &str) -> (Client, u32) {
        let mut c = Client::connect(addr).await;
        c.send_json(0, 0, lobby).await;
        let id = c.recv_json().await;
        assert_eq!(id["type"], 1);
        (c, id["id"].as_u64().unwrap() as u32)
    }
}
