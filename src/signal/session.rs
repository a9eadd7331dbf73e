//! One signalling WebSocket: moves frames between the socket and the hub task, and polices the
//! connection (size limit, message rate, liveness by ping/pong, shutdown).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::hub::{Client, ConnId, Departure, Reason};
use super::queue::{self, Input, Outgoing, SlowPeers, now};
use super::router::{Closing, Player, Router};
use super::upstream::Way;
use crate::config::Config;
use crate::rate_limit::RateLimit;

pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Bytes read from the socket at a time, and what an idle peer's read buffer holds. Signalling
/// messages are small and an idle peer should cost little (tungstenite's default is 128 KiB,
/// allocated up front): a candidate fits in one read; a frame's header reserves room for the
/// whole frame, so an offer of a few KiB takes two.
const READ_BUFFER: usize = 512;
/// How long a closing connection waits for the client's close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn websocket_config(config: &Config) -> WebSocketConfig {
    let max = config.signal.max_message_size.0 as usize;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // Write each message through at once; nothing is gained by batching here.
        .write_buffer_size(0)
        .max_write_buffer_size(max.max(READ_BUFFER) * 4)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// A new session: its connection id, what the hub knows of the client, and when the client's
/// socket opened (its join timeout runs from there).
pub struct Arrival {
    pub conn: ConnId,
    pub client: Client,
    pub opened: Instant,
    /// Which of the process's hubs it starts in (`signal.shards`).
    pub home: usize,
}

pub async fn run(
    mut socket: Socket,
    Arrival {
        conn,
        client,
        opened,
        home,
    }: Arrival,
    hub: mpsc::Sender<Input>,
    router: Arc<dyn Router>,
    config: Arc<Config>,
    shutdown: CancellationToken,
    slow: Arc<SlowPeers>,
) {
    let (outbox, mut outgoing) = queue::pair();
    if hub
        .send(Input::Connect(conn, outbox, client, opened))
        .await
        .is_err()
    {
        return;
    }
    let s = &config.signal;
    let join_timeout = match client.extension {
        true => s.browse_timeout.0,
        false => s.join_timeout.0,
    };
    let player = Player {
        conn,
        client,
        opened,
        join_by: opened + join_timeout,
        failed_joins_per_minute: s.failed_joins_per_minute,
        hub: home,
        node: None,
    };
    let mut way = Way::new(player, router, hub);
    let send_timeout = s.send_timeout.0;
    let mut limit = RateLimit::new(f64::from(s.message_rate), s.message_burst, Instant::now());
    let ping_every = s.ping_interval.0;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_pong = Instant::now();

    let end = loop {
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let at = now();
                    if let Some(wait) = limit.take(at) {
                        // Slow the sender down: the socket is not read meanwhile, so a flood
                        // backs up into the client's own TCP buffers.
                        tokio::time::sleep(wait).await;
                    }
                    let sent = way.text(text.as_str().to_owned(), at, &outgoing).await;
                    if let Err(end) = answer(&mut socket, sent, send_timeout).await {
                        break end;
                    }
                }
                // Text frames are the contract; a binary frame holding UTF-8 is taken as text.
                Some(Ok(Message::Binary(bytes))) => {
                    let at = now();
                    if limit.take(at).is_some() {
                        // A binary flood gets no patience.
                        break End::Close(close::POLICY, "Too many messages".into());
                    }
                    let sent = match String::from_utf8(bytes.to_vec()) {
                        Ok(text) => way.text(text, at, &outgoing).await,
                        Err(_) => way.binary(at).await.map(|()| None),
                    };
                    if let Err(end) = answer(&mut socket, sent, send_timeout).await {
                        break end;
                    }
                }
                Some(Ok(Message::Pong(_))) => last_pong = Instant::now(),
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => break End::ClosedByPeer(frame.map(|f| u16::from(f.code))),
                None => break End::Gone,
                Some(Err(WsError::Capacity(_))) => {
                    // Close reasons must fit in 123 bytes: say the limit, not the error's text.
                    let limit = config.signal.max_message_size;
                    break End::Close(close::TOO_BIG, format!("Message too big; the limit is signal.max_message_size = {limit}"));
                }
                Some(Err(WsError::Utf8(_))) => break End::Close(close::INVALID_DATA, "Text frame is not UTF-8".into()),
                Some(Err(WsError::Protocol(e))) => break End::Close(close::PROTOCOL, protocol_reason(&e).into()),
                Some(Err(_)) => break End::Gone,
            },
            out = outgoing.recv() => match out {
                Some(Outgoing::Text(frame)) => {
                    match tokio::time::timeout(send_timeout, socket.send(Message::text(frame))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break End::Gone,
                        Err(_) => {
                            // Unless the hub has dropped (and counted) this peer already.
                            if !outgoing.dropped_by_hub() {
                                slow.dropped("signal.send_timeout");
                            }
                            break End::Gone;
                        }
                    }
                }
                Some(Outgoing::Close(reason)) => break reason.into(),
                // Already known: the router asks the queue's `in_lobby`.
                Some(Outgoing::Entered) => {}
                // The hub dropped us: our queue overflowed because we did not read fast enough.
                None => break Reason::TooSlow.into(),
            },
            _ = ping.tick() => {
                if last_pong.elapsed() > ping_every * 2 {
                    break End::Close(close::INTERNAL, "No pong received".into());
                }
                let ping = socket.send(Message::Ping(Default::default()));
                if !matches!(tokio::time::timeout(send_timeout, ping).await, Ok(Ok(()))) {
                    break End::Gone;
                }
            }
            _ = shutdown.cancelled() => break Reason::ShuttingDown.into(),
        }
    };
    way.gone(end.departure()).await;
    // The closing handshake (RFC 6455 §5.5.1, §7.1.2), so the client reads a clean close with
    // its code and reason rather than 1006: answer the client's close frame, or send ours and
    // wait a moment for its answer. Either way the server then closes the TCP connection.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        match end {
            // tungstenite queued the echo of the client's close; reading on sends it.
            End::ClosedByPeer(_) => while let Some(Ok(_)) = socket.next().await {},
            End::Close(code, reason) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                if socket.send(Message::Close(Some(frame))).await.is_ok() {
                    while let Some(Ok(_)) = socket.next().await {}
                }
            }
            End::Gone => {}
        }
    })
    .await;
}

/// Sends the player what the session answered itself, if anything.
async fn answer(
    socket: &mut Socket,
    sent: Result<Option<String>, Closing>,
    send_timeout: Duration,
) -> Result<(), End> {
    if let Some(frame) = sent? {
        let send = socket.send(Message::text(frame));
        if !matches!(tokio::time::timeout(send_timeout, send).await, Ok(Ok(()))) {
            return Err(End::Gone);
        }
    }
    Ok(())
}

/// How a session ends.
enum End {
    /// The client sent a close frame (with this code, if any): answer it.
    ClosedByPeer(Option<u16>),
    /// We close with this code and reason.
    Close(u16, String),
    /// The connection is already broken: nothing to say.
    Gone,
}

impl From<Reason> for End {
    fn from(reason: Reason) -> End {
        End::Close(reason.code(), reason.text().into())
    }
}

impl From<Closing> for End {
    fn from(Closing(reason): Closing) -> End {
        reason.into()
    }
}

impl End {
    /// What the end means for the player's place in its lobby: only the client's own close
    /// says it left on purpose; whatever the server closed for (shutdown, no pong, too slow) is
    /// a place it may come back to.
    fn departure(&self) -> Departure {
        match self {
            End::ClosedByPeer(code) => Departure::of_close_code(*code),
            End::Close(..) | End::Gone => Departure::Lost,
        }
    }
}

/// WebSocket close codes (RFC 6455 §7.4.1) the session itself sends for what breaks the
/// socket; the hub's reasons carry their own ([`Reason::code`]).
pub mod close {
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
}

/// A close reason (at most 123 bytes) for a frame that broke RFC 6455.
fn protocol_reason(e: &tokio_tungstenite::tungstenite::error::ProtocolError) -> &'static str {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    match e {
        P::UnmaskedFrameFromClient => "Client frames must be masked",
        P::FragmentedControlFrame | P::ControlFrameTooBig => "Invalid control frame",
        P::NonZeroReservedBits => "Reserved bits set without an extension",
        P::UnexpectedContinueFrame | P::ExpectedFragment(_) => "Invalid fragmentation",
        P::InvalidOpcode(_) | P::UnknownControlFrameType(_) | P::UnknownDataFrameType(_) => {
            "Unknown opcode"
        }
        P::InvalidCloseSequence => "Invalid close frame",
        _ => "Protocol error",
    }
}
