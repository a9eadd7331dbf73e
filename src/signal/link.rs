//! What a session and the hub task tell each other, and the clock both stamp events with.

use std::time::Instant;

use tokio::sync::mpsc;

use super::hub::ConnId;

/// Frames waiting for one slow client before it is dropped.
pub const OUTGOING_QUEUE: usize = 256;

/// What a session tells the hub task, each stamped with when it happened (not when the hub task
/// got round to it), so the hub's timers run from the real events.
pub enum Input {
    Connect(ConnId, mpsc::Sender<Outgoing>, Instant),
    Text(ConnId, String, Instant),
    Binary(ConnId, Instant),
    Gone(ConnId, Instant),
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
