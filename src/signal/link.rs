//! What a session and the hub task tell each other, and the clock both stamp events with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use super::hub::{Client, ConnId, Departure};

/// Frames waiting for one slow client before it is dropped.
const OUTGOING_QUEUE: usize = 256;

/// What a session tells the hub task, each stamped with when it happened (not when the hub task
/// got round to it), so the hub's timers run from the real events.
pub enum Input {
    Connect(ConnId, Outbox, Client, Instant),
    Text(ConnId, String, Instant),
    Binary(ConnId, Instant),
    Gone(ConnId, Departure, Instant),
    /// In a cluster: the other nodes' listed lobbies, as last read.
    Elsewhere(Vec<super::ext::LobbyInfo>),
}

/// What the hub task tells a session.
pub enum Outgoing {
    Text(String),
    Close(u16, &'static str),
}

/// The hub's clock: tokio's, so that tests can pause and advance it.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A session's queue as the hub task sees it: bounded in frames and in bytes.
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
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
    rx: mpsc::Receiver<Outgoing>,
    queued: Arc<AtomicUsize>,
}

pub fn queue() -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
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
    /// Queues a frame, unless the peer already has `max_bytes` or a full queue of frames waiting
    /// (it has stopped reading) or its session has ended; then the frame comes back.
    pub fn text(&self, frame: String, max_bytes: usize) -> Result<(), (Queued, String)> {
        let len = frame.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > max_bytes {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return Err((Queued::Full, frame));
        }
        match self.tx.try_send(Outgoing::Text(frame)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(Outgoing::Text(f)) => Err((Queued::Full, f)),
                    mpsc::error::TrySendError::Closed(Outgoing::Text(f)) => Err((Queued::Gone, f)),
                    _ => unreachable!("a text frame was sent"),
                }
            }
        }
    }

    pub fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.try_send(Outgoing::Close(code, reason));
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
            self.queued.fetch_sub(frame.len(), Ordering::Relaxed);
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
