//! Which hub a session's frames go to, decided by a [`Router`] (after LiveKit's
//! `routing.Router`): the [`LocalRouter`] sends every session to this node's one hub; in a
//! cluster, `remote::ClusterRouter` sends a session whose JOIN names another node's lobby to
//! that node ([`Upstream::Remote`]); with several hubs in the process, `shards::ShardRouter`
//! sends it to the hub of its lobby. A session asks with each frame until it is in a lobby
//! ([`Routed::Later`]: the frame decides nothing; [`Routed::Moved`]: from it on, there), so a
//! JOIN refused in one hub leaves it free to join a lobby in any other.

use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::hub::{Client, ConnId, Reason};
use super::queue::{Inbox, Input};
use super::upstream::Upstream;

/// A session as a router sees it.
pub struct Player {
    pub conn: ConnId,
    pub client: Client,
    /// When its socket opened (its join timeout runs from there).
    pub opened: Instant,
    /// When the hub closes it if it has not joined.
    pub join_by: Instant,
    /// Which of this process's hubs it is in (`signal.shards`; 0 with one).
    pub hub: usize,
    /// In a cluster: the node (its process's address) whose hub it is attached to, if not this
    /// one's.
    pub node: Option<String>,
    /// `signal.failed_joins_per_minute`, checked against a cluster's count.
    pub failed_joins_per_minute: u32,
}

/// A close the session must make, instead of going on.
#[derive(Debug, PartialEq, Eq)]
pub struct Closing(pub Reason);

/// A router's answer for one frame.
pub enum Routed {
    /// Not decided by this frame: it goes where the last one went.
    Later,
    /// From this frame on, the session's frames go to `upstream` (this process's hub number
    /// `hub`, or another node's), and what comes back arrives in the session's queue as before;
    /// asked again with each frame until the player is in a lobby (a JOIN that fails leaves it
    /// free to try another lobby, in another hub or on another node).
    Moved { hub: usize, upstream: Upstream },
    /// Where the frame's lobby lives could not be asked (the lobby directory is unreachable).
    DirectoryDown,
}

/// Decides where a session's frames go.
pub trait Router: Send + Sync {
    /// Routes `player` by `frame`. A router that moves it to another hub waits until the hub
    /// it leaves has let go of its queue, `outgoing`, and gives the new hub that queue
    /// ([`Inbox::reopen`]): what the old hub sent it before is still delivered, first.
    fn route<'a>(
        &'a self,
        player: &'a Player,
        frame: &'a str,
        outgoing: &'a Inbox,
    ) -> BoxFuture<'a, Result<Routed, Closing>>;
}

/// Every session to this node's one hub (no cluster, one shard).
#[derive(Clone)]
pub struct LocalRouter {
    pub hub: mpsc::Sender<Input>,
}

impl Router for LocalRouter {
    fn route<'a>(
        &'a self,
        _: &'a Player,
        _: &'a str,
        _: &'a Inbox,
    ) -> BoxFuture<'a, Result<Routed, Closing>> {
        let upstream = Upstream::Local(self.hub.clone());
        futures_util::future::ready(Ok(Routed::Moved { hub: 0, upstream })).boxed()
    }
}
