//! What a session and the hub task tell each other, and the clock both stamp events with.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use super::hub::{Client, ConnId, Departure, Reason};
use crate::conn_cap::Source;

/// What a queued frame costs besides its text (the channel's node and the `String`), so that a
/// burst of small frames is bounded by `signal.max_queued_bytes` as its bytes would be.
const FRAME_OVERHEAD: usize = 64;

/// Slots an emptied queue keeps; a larger one, left by a burst, is freed.
const KEPT_SLOTS: usize = 16;

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
    /// The player is now in a lobby, after the frames that put it there: nothing to send it, but
    /// a guest's node is told in order ([`super::remote::forward()`]).
    Entered,
}

/// The hub's clock: tokio's, so that tests can pause and advance it.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A session's queue as the hub task sees it: bounded in bytes (each frame's text and
/// [`FRAME_OVERHEAD`]), not in frames: a player who reads keeps up with a burst of many small
/// frames (400 players joining its lobby at once) as well as with a few large ones.
///
/// One per connected player, so it is small: a `VecDeque` behind a mutex and a [`Notify`], about
/// 100 bytes while empty. (tokio's unbounded channel allocates a block of 32 slots up front,
/// about 1.2 KiB per idle player.)
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The session's end of its queue.
pub struct Inbox {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the session: something was queued, or the hub let go.
    queued: Notify,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Outgoing>,
    /// The cost of the text frames in `frames`.
    bytes: usize,
    /// The hub has dropped its end (it dropped the peer).
    outbox_gone: bool,
    /// The session has ended.
    inbox_gone: bool,
    /// The hub has put the player in a lobby (`hub::Output::Entered`).
    in_lobby: bool,
}

/// Why a frame could not be queued for a session.
#[derive(Debug, PartialEq, Eq)]
pub enum Queued {
    /// The peer has stopped reading.
    Full,
    /// The session has ended (its `Gone` is on the way to the hub).
    Gone,
}

/// A new queue: the hub task's end and the session's.
pub fn pair() -> (Outbox, Inbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        queued: Notify::new(),
    });
    (
        Outbox {
            shared: shared.clone(),
        },
        Inbox { shared },
    )
}

impl Outbox {
    /// Queues a frame, unless the peer already has `max_bytes` waiting (it has stopped reading)
    /// or its session has ended; then the frame comes back.
    pub fn text(&self, frame: String, max_bytes: usize) -> Result<(), (Queued, String)> {
        let cost = frame.len() + FRAME_OVERHEAD;
        let mut state = self.shared.state.lock().unwrap();
        if state.inbox_gone {
            return Err((Queued::Gone, frame));
        }
        if state.bytes + cost > max_bytes {
            return Err((Queued::Full, frame));
        }
        state.bytes += cost;
        state.frames.push_back(Outgoing::Text(frame));
        drop(state);
        self.shared.queued.notify_one();
        Ok(())
    }

    /// The player is now in a lobby, for good: [`Inbox::in_lobby`] says so from now on, and
    /// [`Outgoing::Entered`] follows the frames queued before.
    pub fn entered(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.in_lobby = true;
        if !state.inbox_gone {
            state.frames.push_back(Outgoing::Entered);
            drop(state);
            self.shared.queued.notify_one();
        }
    }

    pub fn close(&self, reason: Reason) {
        let mut state = self.shared.state.lock().unwrap();
        if !state.inbox_gone {
            state.frames.push_back(Outgoing::Close(reason));
            drop(state);
            self.shared.queued.notify_one();
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().outbox_gone = true;
        self.shared.queued.notify_one();
    }
}

impl Inbox {
    /// Whether the hub has let go of this queue (it dropped the peer).
    pub fn dropped_by_hub(&self) -> bool {
        self.shared.state.lock().unwrap().outbox_gone
    }

    /// Whether the hub has put the player in a lobby.
    pub fn in_lobby(&self) -> bool {
        self.shared.state.lock().unwrap().in_lobby
    }

    /// Waits until the hub has let go of this queue; what it queued stays to be read.
    pub async fn released(&self) {
        loop {
            if self.shared.state.lock().unwrap().outbox_gone {
                return;
            }
            // A notification sent between the check and here is kept as a permit.
            self.shared.queued.notified().await;
        }
    }

    /// A new hub's end of this queue, once the last hub has let go of it
    /// ([`released`](Self::released)): what the new one queues follows what the last one did.
    pub fn reopen(&self) -> Outbox {
        let mut state = self.shared.state.lock().unwrap();
        debug_assert!(state.outbox_gone, "one hub at a time");
        state.outbox_gone = false;
        Outbox {
            shared: self.shared.clone(),
        }
    }

    /// The next frame; `None` once the queue is empty and the hub has let go of it. Cancel
    /// safe: a frame is only taken when it is returned.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            {
                let mut state = self.shared.state.lock().unwrap();
                if let Some(next) = state.frames.pop_front() {
                    if let Outgoing::Text(frame) = &next {
                        state.bytes -= frame.len() + FRAME_OVERHEAD;
                    }
                    if state.frames.is_empty() && state.frames.capacity() > KEPT_SLOTS {
                        // A burst read (400 players joining at once): its room goes back.
                        state.frames = VecDeque::new();
                    }
                    return Some(next);
                }
                if state.outbox_gone {
                    return None;
                }
            }
            // A notification sent between the check and here is kept as a permit.
            self.shared.queued.notified().await;
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap();
        state.inbox_gone = true;
        // What was queued will never be sent.
        state.frames = VecDeque::new();
        state.bytes = 0;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_queue_is_bounded_in_bytes_and_gives_back_what_it_cannot_take() {
        let (outbox, mut inbox) = pair();
        let max = 2 * (10 + FRAME_OVERHEAD);
        assert_eq!(outbox.text("0123456789".into(), max), Ok(()));
        assert_eq!(outbox.text("0123456789".into(), max), Ok(()));
        assert_eq!(
            outbox.text("x".into(), max),
            Err((Queued::Full, "x".to_string()))
        );
        // Reading makes room again.
        assert!(matches!(inbox.recv().await, Some(Outgoing::Text(t)) if t == "0123456789"));
        assert_eq!(outbox.text("0123456789".into(), max), Ok(()));
        drop(inbox);
        assert_eq!(
            outbox.text("y".into(), max),
            Err((Queued::Gone, "y".to_string()))
        );
    }

    #[tokio::test]
    async fn a_session_reads_what_was_queued_before_the_hub_let_go_then_the_end() {
        let (outbox, mut inbox) = pair();
        let waiting = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(out) = inbox.recv().await {
                got.push(match out {
                    Outgoing::Text(t) => t,
                    Outgoing::Close(reason) => reason.text().to_string(),
                    Outgoing::Entered => "entered".to_string(),
                });
            }
            got
        });
        tokio::task::yield_now().await;
        outbox.text("a".into(), 1 << 20).unwrap();
        outbox.entered();
        outbox.close(Reason::TooSlow);
        assert!(!waiting.is_finished());
        drop(outbox);
        let got = waiting.await.unwrap();
        assert_eq!(
            got,
            vec![
                "a".to_string(),
                "entered".to_string(),
                Reason::TooSlow.text().to_string()
            ]
        );
    }

    #[tokio::test]
    async fn a_burst_once_read_gives_its_room_back() {
        let (outbox, mut inbox) = pair();
        for _ in 0..400 {
            outbox.text("candidate".into(), 1 << 20).unwrap();
        }
        let room = || inbox_capacity(&outbox);
        assert!(room() >= 400);
        for _ in 0..400 {
            inbox.recv().await.unwrap();
        }
        assert_eq!(room(), 0);
        // A few frames at a time keep their slots.
        outbox.text("a".into(), 1 << 20).unwrap();
        inbox.recv().await.unwrap();
        assert!(room() > 0);
    }

    fn inbox_capacity(outbox: &Outbox) -> usize {
        outbox.shared.state.lock().unwrap().frames.capacity()
    }
}
