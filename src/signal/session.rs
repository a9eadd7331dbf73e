//! One signalling WebSocket: moves frames between the socket and the hub task, and polices the
//! connection (size limit, message rate, liveness by ping/pong, shutdown).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::hub::ConnId;
use super::{Input, Outgoing};
use crate::config::Config;

pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Bytes read from the socket at a time. Signalling messages are small, and an idle peer should
/// cost little: tungstenite's default is 128 KiB, allocated up front.
const READ_BUFFER: usize = 2048;
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

/// A token bucket: `rate` messages per second on average, `burst` at once. Sans-IO.
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// `rate` 0 means unlimited.
    pub fn new(rate: u32, burst: u32, now: Instant) -> RateLimit {
        let burst = f64::from(burst.max(1));
        RateLimit {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes a token for one message; returns how long to wait first if none is left.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        if self.rate == 0.0 {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        self.tokens -= 1.0;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

pub async fn run(
    mut socket: Socket,
    conn: ConnId,
    hub: mpsc::Sender<Input>,
    config: Arc<Config>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, mut outgoing) = mpsc::channel(super::OUTGOING_QUEUE);
    if hub.send(Input::Connect(conn, tx)).await.is_err() {
        return;
    }
    let s = &config.signal;
    let mut limit = RateLimit::new(s.message_rate, s.message_burst, Instant::now());
    let ping_every = s.ping_interval.0;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_pong = Instant::now();

    let close: Option<(u16, String)> = loop {
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Some(wait) = limit.take(Instant::now()) {
                        // Slow the sender down: the socket is not read meanwhile, so a flood
                        // backs up into the client's own TCP buffers.
                        tokio::time::sleep(wait).await;
                    }
                    if hub.send(Input::Text(conn, text.as_str().to_owned())).await.is_err() {
                        break Some((1001, "Server shutting down".into()));
                    }
                }
                // Text frames are the contract; a binary frame holding UTF-8 is taken as text.
                Some(Ok(Message::Binary(bytes))) => {
                    let input = match String::from_utf8(bytes.to_vec()) {
                        Ok(text) => Input::Text(conn, text),
                        Err(_) => Input::Binary(conn),
                    };
                    if limit.take(Instant::now()).is_some() || hub.send(input).await.is_err() {
                        // A binary flood gets no patience.
                        break Some((1008, "Too many messages".into()));
                    }
                }
                Some(Ok(Message::Pong(_))) => last_pong = Instant::now(),
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Err(WsError::Capacity(_))) => {
                    // Close reasons must fit in 123 bytes: say the limit, not the error's text.
                    let limit = config.signal.max_message_size;
                    break Some((1009, format!("Message too big; the limit is signal.max_message_size = {limit}")));
                }
                Some(Err(_)) => break None,
            },
            out = outgoing.recv() => match out {
                Some(Outgoing::Text(frame)) => {
                    if socket.send(Message::text(frame)).await.is_err() {
                        break None;
                    }
                }
                Some(Outgoing::Close(code, reason)) => break Some((code, reason.into())),
                // The hub dropped us: our queue overflowed because we did not read fast enough.
                None => break Some((1008, "Too slow to receive".into())),
            },
            _ = ping.tick() => {
                if last_pong.elapsed() > ping_every * 2 {
                    break Some((1011, "No pong received".into()));
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
            _ = crate::service::stopped(&mut shutdown) => break Some((1001, "Server shutting down".into())),
        }
    };
    let _ = hub.send(Input::Gone(conn)).await;
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        // Send our close and give the client a moment to answer, so it reads the reason rather
        // than a reset connection.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if socket.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = socket.next().await {}
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(10, 3, t0);
        assert_eq!(r.take(t0), None);
        assert_eq!(r.take(t0), None);
        assert_eq!(r.take(t0), None);
        let wait = r.take(t0).unwrap();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // After waiting, the debt is paid and the next token comes at the rate.
        let t1 = t0 + wait;
        assert!(r.take(t1).unwrap() <= Duration::from_millis(101));
        assert_eq!(RateLimit::new(0, 1, t0).take(t0), None, "0 = unlimited");
        let mut r = RateLimit::new(10, 3, t0);
        for _ in 0..3 {
            r.take(t0);
        }
        assert_eq!(
            r.take(t0 + Duration::from_secs(60)),
            None,
            "tokens refill up to the burst"
        );
    }
}
