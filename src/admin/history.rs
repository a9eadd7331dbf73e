//! The dashboard's graph: players, relay allocations and relay bandwidth over the last hour, a
//! sample every [`PERIOD`], in a ring of [`SAMPLES`].

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

pub const PERIOD: Duration = Duration::from_secs(10);
pub const SAMPLES: usize = 360;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Unix seconds.
    pub at: u64,
    pub players: usize,
    pub allocations: usize,
    /// Relayed bits a second since the sample before.
    pub relay_bps: u64,
}

#[derive(Default)]
pub struct History(Mutex<VecDeque<Sample>>);

impl History {
    pub fn record(&self, sample: Sample) {
        let mut ring = self.0.lock().unwrap();
        if ring.len() == SAMPLES {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// Oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.0.lock().unwrap().iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_hour() {
        let h = History::default();
        for at in 0..(SAMPLES as u64 + 5) {
            h.record(Sample {
                at,
                players: 0,
                allocations: 0,
                relay_bps: 0,
            });
        }
        let s = h.samples();
        assert_eq!(
            (s.len(), s[0].at, s.last().unwrap().at),
            (SAMPLES, 5, SAMPLES as u64 + 4)
        );
    }
}
