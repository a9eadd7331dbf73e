//! Players whose socket is on one node and whose lobby is on another (`[cluster]`).
//!
//! Each lobby lives in the hub of the node where it was created (its owner). A player who
//! connects to another node (the edge) and joins it by name or code is *attached*: its session
//! stops talking to the edge's hub and sends its frames, in order, to the owner, where they enter
//! the owner's hub as a connection like any other; what the hub sends that connection comes
//! back the same way. The hub itself knows nothing of this. How envelopes travel between nodes
//! (Redis Streams) is the cluster module's business, behind [`Seam`].
//!
//! Nothing is dropped silently: an envelope that cannot be sent closes the player concerned
//! with `Reason::LinkLost`; a node that leaves the cluster (dead, or Redis unreachable) closes the
//! players attached to its lobbies as if their host had left, and its players leave the lobbies
//! here.
//!
//! [`route`] is the cluster's router (it wraps this node's), [`joining`] reads which lobby a
//! frame names, [`envelope`] is what travels between nodes, [`attached`] keeps who is attached
//! where on both sides, and [`forward`] carries what a hub sends a guest back to its node.

mod attached;
mod envelope;
mod forward;
mod joining;
mod route;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::failed_joins::Failures;
use crate::conn_cap::Source;
pub use attached::{NewGuest, Remote};
pub use envelope::Envelope;
pub use forward::forward;
pub use joining::{Joining, ext_request, joining, lobby_key};
pub use route::ClusterRouter;

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

/// The cluster as signalling needs it: where lobbies are, and a way to send other nodes
/// envelopes.
#[derive(Clone)]
pub struct Seam {
    pub nodes: Arc<dyn OtherNodes>,
    pub mailbox: Arc<dyn Mailbox>,
}

/// The other nodes' lobbies, as signalling asks after them. Nodes are named by the address of their running
/// process (node name and a per-process instance): a node restarted under its name is another
/// node here, so what concerned the process that died never reaches the new one.
pub trait OtherNodes: Send + Sync {
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
    /// Where a QUICK_JOIN with `filter` goes (`None`: here): the node of the best open lobby
    /// that matches, or the filter's node when none does (see `cluster::quick_play`).
    fn plays_on(&self, filter: &serde_json::Map<String, serde_json::Value>) -> Option<String>;
}

/// Envelopes to other nodes (after LiveKit's `MessageSink`).
pub trait Mailbox: Send + Sync {
    /// Queues `envelope` for `node`, after everything queued for it before; `false` if it
    /// cannot be taken (Redis unreachable, or the queue full): then the player concerned must
    /// be closed. One that ends a player ([`Envelope::ends_a_player`]) is taken over the byte
    /// budget.
    fn send(&self, node: &str, envelope: Envelope) -> bool;
}
