//! What travels between two nodes about one attached player, and the close reasons it carries.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::LINK_LOST;
use crate::signal::hub::{ConnId, Departure, reason};

/// What travels between two nodes about one attached player. `conn` is the player's connection
/// id on its edge node.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Envelope {
    /// Edge → owner: a player attaches; its socket opened `age_ms` ago (its join timeout runs
    /// from then).
    Connect {
        conn: ConnId,
        extension: bool,
        source: IpAddr,
        age_ms: u64,
    },
    /// Edge → owner: a frame from the player.
    Text { conn: ConnId, text: String },
    /// Edge → owner: the player's socket is gone (how: a node of an earlier version says
    /// nothing, which keeps the place as it did).
    Gone {
        conn: ConnId,
        #[serde(default = "lost")]
        how: Departure,
    },
    /// Owner → edge: a frame for the player.
    Send { conn: ConnId, text: String },
    /// Owner → edge: close the player's socket.
    Close {
        conn: ConnId,
        code: u16,
        reason: String,
    },
}

impl Envelope {
    /// About the bytes it takes while queued.
    pub fn size(&self) -> usize {
        64 + match self {
            Envelope::Text { text, .. } | Envelope::Send { text, .. } => text.len(),
            Envelope::Close { reason, .. } => reason.len(),
            Envelope::Connect { .. } | Envelope::Gone { .. } => 0,
        }
    }
}

fn lost() -> Departure {
    Departure::Lost
}

/// A close reason from another node as the `'static` one the hub uses here.
pub(super) fn known_reason(text: &str) -> &'static str {
    reason::ALL
        .iter()
        .find(|r| **r == text)
        .copied()
        .unwrap_or(LINK_LOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_reason_crosses_nodes_as_itself() {
        for r in reason::ALL {
            assert_eq!(known_reason(r), *r);
        }
        assert_eq!(known_reason("Made up by a stranger"), LINK_LOST);
    }
}
