//! What a TCP or TLS client is sent: frames appended by relays without waiting, written out by
//! the connection's writer. One bounded byte buffer per connection, reused for its whole life
//! (the writer swaps it with its own), instead of a fresh allocation per frame; a frame that
//! does not fit is dropped, as a full UDP socket buffer would drop a datagram.

use std::sync::Mutex;

use tokio::sync::Notify;

pub struct StreamQueue {
    pending: Mutex<Pending>,
    /// Wakes the writer when frames arrive or the queue closes.
    filled: Notify,
    /// Wakes a waiting control reply when the writer has taken the frames.
    drained: Notify,
    capacity: usize,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

impl StreamQueue {
    pub fn new(capacity: usize) -> StreamQueue {
        StreamQueue {
            // Grows with what is queued, up to `capacity`: an idle connection holds nothing.
            pending: Mutex::new(Pending::default()),
            filled: Notify::new(),
            drained: Notify::new(),
            capacity,
        }
    }

    /// Appends `frame` unless that would pass the capacity (false: dropped) or the connection
    /// is closing.
    pub fn push(&self, frame: &[u8]) -> bool {
        let mut p = self.pending.lock().unwrap();
        if p.closed || p.bytes.len() + frame.len() > self.capacity {
            return false;
        }
        p.bytes.extend_from_slice(frame);
        drop(p);
        self.filled.notify_one();
        true
    }

    /// Appends a control reply, waiting for room rather than dropping it: over TCP a client
    /// does not retransmit. False once the connection is closing.
    pub async fn push_reply(&self, frame: &[u8]) -> bool {
        loop {
            let drained = self.drained.notified();
            {
                let p = self.pending.lock().unwrap();
                if p.closed {
                    return false;
                }
            }
            if self.push(frame) {
                return true;
            }
            drained.await;
        }
    }

    /// Waits for frames and moves them all into `out` (cleared first; the two buffers trade
    /// places, so neither is reallocated). False once closed with nothing left.
    pub async fn take(&self, out: &mut Vec<u8>) -> bool {
        out.clear();
        loop {
            let filled = self.filled.notified();
            {
                let mut p = self.pending.lock().unwrap();
                if !p.bytes.is_empty() {
                    std::mem::swap(&mut p.bytes, out);
                    drop(p);
                    self.drained.notify_waiters();
                    return true;
                }
                if p.closed {
                    return false;
                }
            }
            filled.await;
        }
    }

    /// No more frames are accepted; the writer ends once it has what was queued.
    pub fn close(&self) {
        self.pending.lock().unwrap().closed = true;
        self.filled.notify_one();
        self.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_taken_in_order_and_the_buffers_reused() {
        let q = StreamQueue::new(16);
        assert!(q.push(b"abc") && q.push(b"defg"));
        let mut out = Vec::with_capacity(16);
        assert!(q.take(&mut out).await);
        assert_eq!(out, b"abcdefg");
        // The writer's buffer and the queue's trade places: two buffers, whatever the traffic.
        let mut seen = std::collections::HashSet::new();
        for i in 0..10u8 {
            assert!(q.push(&[i; 3]));
            assert!(q.take(&mut out).await);
            assert_eq!(out, [i; 3]);
            seen.insert(out.as_ptr());
        }
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test]
    async fn a_full_queue_drops_frames_but_a_reply_waits_for_room() {
        let q = std::sync::Arc::new(StreamQueue::new(8));
        assert!(q.push(b"12345678"));
        assert!(!q.push(b"9"), "over capacity: dropped");
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.push_reply(b"reply").await }
        });
        let mut out = Vec::new();
        assert!(q.take(&mut out).await);
        assert_eq!(out, b"12345678");
        assert!(
            waiting.await.unwrap(),
            "the reply got in once there was room"
        );
        assert!(q.take(&mut out).await);
        assert_eq!(out, b"reply");
    }

    #[tokio::test]
    async fn closing_ends_the_writer_after_what_was_queued() {
        let q = StreamQueue::new(8);
        assert!(q.push(b"last"));
        q.close();
        assert!(!q.push(b"late"));
        assert!(!q.push_reply(b"late").await);
        let mut out = Vec::new();
        assert!(q.take(&mut out).await);
        assert_eq!(out, b"last");
        assert!(!q.take(&mut out).await);
    }
}
