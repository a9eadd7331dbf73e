//! What travels between two nodes about one attached player.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::signal::hub::{ConnId, Departure, Reason};

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
    /// Owner → edge: close the player's socket (the reason as its number).
    Close { conn: ConnId, reason: Reason },
    /// Owner → edge: the player is in a lobby there, for good (until then a JOIN it sends may
    /// take it to another node). A node of an earlier version does not read it, and keeps the
    /// player where it is.
    Entered { conn: ConnId },
}

impl Envelope {
    /// Whether it ends a player's attachment (its socket gone, or to be closed): taken even over
    /// `cluster.max_outbound_bytes`, since it is small and one per player at most, and without it
    /// the other node would keep a ghost in its lobby, or a player waiting for frames that will
    /// never come.
    pub fn ends_a_player(&self) -> bool {
        matches!(self, Envelope::Gone { .. } | Envelope::Close { .. })
    }

    /// About the bytes it takes while queued.
    pub fn size(&self) -> usize {
        64 + match self {
            Envelope::Text { text, .. } | Envelope::Send { text, .. } => text.len(),
            Envelope::Connect { .. }
            | Envelope::Gone { .. }
            | Envelope::Close { .. }
            | Envelope::Entered { .. } => 0,
        }
    }
}

fn lost() -> Departure {
    Departure::Lost
}
