//! What a session and the hub task tell each other, and the clock both stamp events with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use super::hub::{Client, ConnId, Departure, Reason};
use crate::conn_cap::Source;

/// What a queued frame costs besides its text (the channel's node and the `String`), so that a
/// burst of small frames is bounded by `signal.max_queued_bytes` as its bytes would be.
const FRAME_OVERHEAD: usize = 64;

/// What a session tells the hub task, each stamped with when it happened (not when the hub task
/// got round to it), so the hub's timers run from the real events.
pub enum Input {
    Connect(ConnId, Outbox, Client, Instant),
    Text(ConnId, String, Instant),
    Binary(ConnId, Instant),
    Gone(ConnId, Departure, Instant),
    /// In a cluster: this address has spent its failed joins on other nodes.
    SpentElsewhere(Source, Instant),
    /// In a cluster: the other nodes' listed lobbies, as last read.
    Elsewhere(Vec<super::ext::LobbyInfo>),
    /// The server's operator asks (the dashboard).
    Operator(Operator),
}

/// What the server's operator asks of the hub; each answers on its channel.
pub enum Operator {
    Overview(tokio::sync::oneshot::Sender<super::hub::Overview>),
    /// Close the lobby with this code; whether there was one.
    Close(String, tokio::sync::oneshot::Sender<bool>),
    /// Remove this player of the lobby with this code; whether there was one.
    Remove(String, u32, tokio::sync::oneshot::Sender<bool>),
}

/// What the hub task tells a session.
pub enum Outgoing {
    Text(String),
    Close(Reason),
}

/// The hub's clock: tokio's, so that tests can pause and advance it.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A session's queue as the hub task sees it: bounded in bytes (each frame's text and
/// [`FRAME_OVERHEAD`]), not in frames: a player who reads keeps up with a burst of many small
/// frames (400 players joining its lobby at once) as well as with a few large ones.
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<AtomicUsize>,
}

/// Why a frame could not be queued for a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Queued {
    /// The peer has stopped reading.
    Full,
    /// The session has ended (its `Gone` is on the way to the hub).
    Gone,
}

/// The session's end of its queue.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    queued: Arc<AtomicUsize>,
}

/// A new queue: the hub task's end and the session's.
pub fn pair() -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued: queued.clone(),
        },
        Inbox { rx, queued },
    )
}

impl Outbox {
    /// Queues a frame, unless the peer already has `max_bytes` waiting (it has stopped reading)
    /// or its session has ended; then the frame comes back.
    pub fn text(&self, frame: String, max_bytes: usize) -> Result<(), (Queued, String)> {
        let cost = frame.len() + FRAME_OVERHEAD;
        if self.queued.fetch_add(cost, Ordering::Relaxed) + cost > max_bytes {
            self.queued.fetch_sub(cost, Ordering::Relaxed);
            return Err((Queued::Full, frame));
        }
        self.tx.send(Outgoing::Text(frame)).map_err(|e| {
            self.queued.fetch_sub(cost, Ordering::Relaxed);
            match e.0 {
                Outgoing::Text(f) => (Queued::Gone, f),
                Outgoing::Close(..) => unreachable!("a text frame was sent"),
            }
        })
    }

    pub fn close(&self, reason: Reason) {
        let _ = self.tx.send(Outgoing::Close(reason));
    }
}

impl Inbox {
    /// Whether the hub has let go of this queue (it dropped the peer).
    pub fn dropped_by_hub(&self) -> bool {
        self.rx.is_closed()
    }

    pub async fn recv(&mut self) -> Option<Outgoing> {
        let next = self.rx.recv().await;
        if let Some(Outgoing::Text(frame)) = &next {
            self.queued
                .fetch_sub(frame.len() + FRAME_OVERHEAD, Ordering::Relaxed);
        }
        next
    }
}

/// Peers dropped because they stopped reading, counted once per peer, with the first one logged.
#[derive(Default)]
pub struct SlowPeers(AtomicU64);

impl SlowPeers {
    pub fn dropped(&self, why: &str) {
        if self.0.fetch_add(1, Ordering::Relaxed) == 0 {
            log::warn!(
                "signal: dropped a peer that stopped reading ({why}); further ones are only \
                 counted, in rallypoint_signal_slow_peers_dropped"
            );
        }
    }

    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
