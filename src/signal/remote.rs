//! Players whose socket is on one node and whose lobby is on another (`[cluster]`).
//!
//! Each lobby lives in the hub of the node where it was created (its owner). A player who
//! connects to another node (the edge) and joins it by name or code is *attached*: its session
//! stops talking to the edge's hub and sends its frames, in order, to the owner, where they enter
//! the owner's hub as a connection like any other; what the hub sends that connection comes
//! back the same way. The hub itself knows nothing of this. How envelopes travel between nodes
//! (Redis Streams) is the cluster module's business, behind [`NodeLink`].
//!
//! Nothing is dropped silently: an envelope the link cannot take closes the player concerned
//! with [`LINK_LOST`]; a node that leaves the cluster (dead, or Redis unreachable) closes the
//! players attached to its lobbies as if their host had left, and its players leave the lobbies
//! here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::conn_cap::Source;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::codec::{self, Command, Dialect};
use super::ext::{self, ExtCommand};
use super::failed_joins::Failures;
use super::hub::{Client, ConnId, Departure, reason, resume_key};
use super::link::{Input, Outbox, Outgoing, Queued, now};
use super::lobby;

/// Close reason when the link to the lobby's node fails under a player.
pub const LINK_LOST: &str = "Lost contact with the lobby's server";
/// Close reason when a lobby's node cannot be looked up (Redis unreachable).
pub const DIRECTORY_DOWN: &str = "Lobby directory unavailable, try again";

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

/// The lobby directory could not be asked.
#[derive(Debug)]
pub struct Unreachable;

/// Where a lobby lives.
#[derive(Debug, PartialEq, Eq)]
pub enum Owner {
    Here,
    /// The node (its process's address) that has it.
    There(String),
    /// Nowhere in the directory (yet: a lobby is listed a Redis round trip after it opens).
    Nowhere,
}

/// How long to look again for a lobby the directory does not list, from the first look: a
/// player may name a lobby created on another node a moment ago.
/// About a second in all: enough for the listing's Redis round trip on a loaded node.
pub const LOOK_AGAIN: [std::time::Duration; 5] = [
    std::time::Duration::from_millis(5),
    std::time::Duration::from_millis(25),
    std::time::Duration::from_millis(100),
    std::time::Duration::from_millis(300),
    std::time::Duration::from_millis(600),
];

/// The cluster as signalling needs it. Nodes are named by the address of their running
/// process (node name and a per-process instance): a node restarted under its name is another
/// node here, so what concerned the process that died never reaches the new one.
pub trait NodeLink: Send + Sync {
    /// These keys (see `hub::Output::Listed`) now find something here, or no longer do.
    fn listed(&self, keys: Vec<String>, open: bool);
    /// Where the lobby named `key` (a name, or a code in capitals) lives, and, for a join by
    /// `guesser`, the failed joins the cluster has counted against that address (read first,
    /// in the same round trip: a spent address learns nothing from the answer).
    fn owner_of(
        &self,
        key: String,
        guesser: Option<Source>,
    ) -> BoxFuture<'static, Result<(Owner, Failures), Unreachable>>;
    /// A join from `source` failed here: counted for the whole cluster, for a minute.
    fn failed_join(&self, source: Source);
    /// Where a lobby created by a player on this node goes: another node when this one drains
    /// (`None`: here).
    fn creates_on(&self) -> Option<String>;
    /// Queues `envelope` for `node`, after everything queued for it before; `false` if it
    /// cannot be taken (Redis unreachable, or the queue full): then the player concerned must
    /// be closed.
    fn send(&self, node: &str, envelope: Envelope) -> bool;
}

/// Whether a frame joins a lobby, and which.
#[derive(Debug, PartialEq, Eq)]
pub enum Joining {
    /// Not a JOIN (or CREATE).
    No,
    /// It creates a lobby (here).
    Creates,
    /// It joins the lobby with this name, or this code in capitals.
    Names(String),
    /// It resumes the place with this `hub::resume_key`.
    Resumes(String),
}

pub fn joining(frame: &str) -> Joining {
    let named = match ext::decode(frame) {
        Some(Ok(ExtCommand::Join { lobby, .. })) => lobby,
        Some(Ok(ExtCommand::Create(_))) => return Joining::Creates,
        Some(Ok(ExtCommand::Resume(token))) => return Joining::Resumes(resume_key(&token)),
        Some(_) => return Joining::No,
        None => match codec::decode(Dialect::detect(frame), frame) {
            Ok(Command::Join { lobby, .. }) => lobby,
            _ => return Joining::No,
        },
    };
    if named.is_empty() {
        return Joining::Creates;
    }
    Joining::Names(lobby_key(&named))
}

/// The directory key of a lobby named `named`: a code in capitals, or the name as it is.
pub fn lobby_key(named: &str) -> String {
    lobby::as_code(named).unwrap_or_else(|| named.to_string())
}

/// The extension request (its type) a JOIN-like frame is: an extension client whose JOIN or
/// RESUME cannot be routed gets an ERROR for it rather than a close.
pub fn ext_request(frame: &str) -> Option<u64> {
    match ext::decode(frame)? {
        Ok(ExtCommand::Join { .. }) => Some(ext::kind::JOIN),
        Ok(ExtCommand::Resume(_)) => Some(ext::kind::RESUME),
        Ok(ExtCommand::Create(_)) => Some(ext::kind::CREATE),
        _ => None,
    }
}

/// A close reason from another node as the `'static` one the hub uses here.
fn known_reason(text: &str) -> &'static str {
    reason::ALL
        .iter()
        .find(|r| **r == text)
        .copied()
        .unwrap_or(LINK_LOST)
}

/// A guest that has just arrived from another node: (its conn there, its conn here), and the
/// queue of what this hub sends it, for [`forward`].
pub type NewGuest = ((ConnId, ConnId), super::link::Inbox);

/// Who is attached where, on both sides.
#[derive(Default)]
pub struct Remote {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Edge side: players here attached to a lobby on another node, with their queues.
    attached: HashMap<ConnId, (String, Outbox)>,
    /// Owner side: players of other nodes in a lobby here, by (their node's process, their
    /// conn there), as this hub's connection ids.
    guests: HashMap<(String, ConnId), ConnId>,
}

impl Remote {
    /// Edge side: `conn`'s frames now go to `node`; what comes back goes to `outbox`.
    pub fn attach(&self, conn: ConnId, node: &str, outbox: Outbox) {
        let mut s = self.state.lock().unwrap();
        s.attached.insert(conn, (node.to_string(), outbox));
    }

    /// Edge side: `conn`'s socket is gone.
    pub fn detach(&self, conn: ConnId) {
        self.state.lock().unwrap().attached.remove(&conn);
    }

    /// Takes an envelope from `from`; inputs for this node's hub are returned, with a new
    /// guest's outbox to forward (the caller spawns [`forward`] for it).
    pub fn receive(
        &self,
        from: &str,
        envelope: Envelope,
        new_conn: impl FnOnce() -> ConnId,
        max_queued: usize,
    ) -> Option<(Input, Option<NewGuest>)> {
        let mut s = self.state.lock().unwrap();
        match envelope {
            Envelope::Connect {
                conn,
                extension,
                source,
                age_ms,
            } => {
                let local = new_conn();
                s.guests.insert((from.to_string(), conn), local);
                let (outbox, inbox) = super::link::queue();
                let opened = now()
                    .checked_sub(Duration::from_millis(age_ms))
                    .unwrap_or_else(now);
                let client = Client { extension, source };
                Some((
                    Input::Connect(local, outbox, client, opened),
                    Some(((conn, local), inbox)),
                ))
            }
            Envelope::Text { conn, text } => {
                let local = *s.guests.get(&(from.to_string(), conn))?;
                Some((Input::Text(local, text, now()), None))
            }
            Envelope::Gone { conn, how } => {
                let local = s.guests.remove(&(from.to_string(), conn))?;
                Some((Input::Gone(local, how, now()), None))
            }
            Envelope::Send { conn, text } => {
                let (_, outbox) = s.attached.get(&conn)?;
                if let Err((Queued::Full, _)) = outbox.text(text, max_queued) {
                    outbox.close(reason::POLICY, reason::TOO_SLOW);
                }
                None
            }
            Envelope::Close { conn, code, reason } => {
                if let Some((_, outbox)) = s.attached.remove(&conn) {
                    outbox.close(code, known_reason(&reason));
                }
                None
            }
        }
    }

    /// Owner side: guest `conn` of node `edge` is no more.
    pub fn forget_guest(&self, edge: &str, conn: ConnId) {
        let mut s = self.state.lock().unwrap();
        s.guests.remove(&(edge.to_string(), conn));
    }

    /// `node` has left the cluster (or this node lost Redis): its guests leave this hub (the
    /// returned inputs), and players here attached to its lobbies are closed as if their host
    /// had left.
    pub fn node_gone(&self, node: &str) -> Vec<Input> {
        let mut s = self.state.lock().unwrap();
        s.attached.retain(|_, (owner, outbox)| {
            if owner == node {
                outbox.close(reason::PROTOCOL_ERROR, reason::HOST_DISCONNECTED);
            }
            owner != node
        });
        let mut inputs = Vec::new();
        s.guests.retain(|(edge, _), local| {
            if edge == node {
                inputs.push(Input::Gone(*local, Departure::Lost, now()));
            }
            edge != node
        });
        inputs
    }

    /// Players attached to other nodes' lobbies, and guests here from other nodes.
    pub fn figures(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.attached.len(), s.guests.len())
    }
}

/// Owner side: what this hub sends guest `conn` of node `edge` (`local` here), sent there in
/// order, until the hub lets go of it. If the link cannot take it, the guest leaves the hub.
pub async fn forward(
    clustered: super::Clustered,
    hub: tokio::sync::mpsc::Sender<Input>,
    edge: String,
    (conn, local): (ConnId, ConnId),
    mut inbox: super::link::Inbox,
) {
    let link = &clustered.link;
    while let Some(out) = inbox.recv().await {
        let envelope = match out {
            Outgoing::Text(text) => Envelope::Send { conn, text },
            Outgoing::Close(code, reason) => Envelope::Close {
                conn,
                code,
                reason: reason.into(),
            },
        };
        if !link.send(&edge, envelope) {
            clustered.remote.forget_guest(&edge, conn);
            let _ = hub.send(Input::Gone(local, Departure::Lost, now())).await;
            return;
        }
    }
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

    #[test]
    fn joins_in_every_dialect() {
        let names = |n: &str| Joining::Names(n.into());
        assert_eq!(
            joining(r#"{"type":0,"id":0,"data":"AbCdEfGhIjKlMnOp"}"#),
            names("AbCdEfGhIjKlMnOp")
        );
        assert_eq!(joining(r#"{"type":0,"id":0,"data":""}"#), Joining::Creates);
        assert_eq!(joining("J: xyz\n"), names("xyz"));
        assert_eq!(
            joining(r#"{"type":0,"id":0,"data":"k7m2pq"}"#),
            names("K7M2PQ"),
            "a code, in capitals"
        );
        // The extension's data is a string holding JSON.
        assert_eq!(
            joining(r#"{"type":103,"id":0,"data":"{\"lobby\":\"k7m2pq\",\"password\":\"x\"}"}"#),
            names("K7M2PQ")
        );
        assert_eq!(
            joining(r#"{"type":100,"id":0,"data":""}"#),
            Joining::Creates
        );
        assert_eq!(joining(r#"{"type":104,"id":0,"data":""}"#), Joining::No);
        assert_eq!(
            joining(r#"{"type":108,"id":0,"data":"{\"token\":\"abc\"}"}"#),
            Joining::Resumes(resume_key("abc")),
            "a resume is found by its token's key"
        );
        assert_ne!(resume_key("abc"), resume_key("abd"));
        assert!(
            !resume_key("abc").contains("abc"),
            "the directory never holds a token"
        );
        assert_eq!(joining(r#"{"type":7,"id":0,"data":""}"#), Joining::No);
        assert_eq!(joining("not a frame"), Joining::No);
    }
}
