//! The cluster's router: sends a session to this node's hub or attaches it to another node's.
//! A session's JOIN (or RESUME, or CREATE while this node drains) is looked up in the lobby
//! directory, with the address's failed joins in the same round trip; a lobby here, or nowhere,
//! is this node's hub's; a lobby on another node attaches the player there. A QUICK_JOIN goes
//! where the cluster plays its filter (`OtherNodes::plays_on`). Until the player is in a lobby
//! each JOIN is routed anew, so a join refused on one node (a wrong password, a full lobby)
//! leaves the player free to join a lobby anywhere else.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::{Envelope, Joining, Mailbox, OtherNodes, Owner, Remote};
use crate::conn_cap::Source;
use crate::signal::hub::{Departure, Reason};
use crate::signal::queue::{Inbox, Input, Outbox, now};
use crate::signal::router::{Closing, Player, Routed, Router};
use crate::signal::upstream::Upstream;

/// How long before its join timeout a player's JOIN stops looking for a lobby the directory
/// does not list, so that the hub answers "Lobby does not exists" rather than "Have not joined
/// lobby yet".
const ANSWER_MARGIN: Duration = Duration::from_millis(250);

/// Routes sessions across the cluster's nodes.
pub struct ClusterRouter {
    /// This node's hub.
    pub hub: mpsc::Sender<Input>,
    pub nodes: Arc<dyn OtherNodes>,
    pub mailbox: Arc<dyn Mailbox>,
    pub remote: Arc<Remote>,
}

impl Router for ClusterRouter {
    fn route<'a>(
        &'a self,
        player: &'a Player,
        frame: &'a str,
        outgoing: &'a Inbox,
    ) -> BoxFuture<'a, Result<Routed, Closing>> {
        self.decide(player, frame, outgoing).boxed()
    }
}

impl ClusterRouter {
    /// Where a JOIN-like frame takes the player: the node of the lobby it names, the node that
    /// takes its CREATE while this one drains, or the node that plays its QUICK_JOIN; this
    /// node's hub for its own lobbies, for a lobby nowhere (whose hub then says so) and for an
    /// address spent on other nodes (whose hub then refuses). Other frames decide nothing.
    async fn decide(
        &self,
        player: &Player,
        frame: &str,
        outgoing: &Inbox,
    ) -> Result<Routed, Closing> {
        let (key, guesser) = match super::joining(frame) {
            Joining::No => return Ok(Routed::Later),
            Joining::Creates => return self.go(player, self.nodes.creates_on(), outgoing).await,
            Joining::Plays(filter) => {
                return self
                    .go(player, self.nodes.plays_on(&filter), outgoing)
                    .await;
            }
            Joining::Names(key) => (key, Some(Source::of(player.client.source))),
            // A resume token is no guess.
            Joining::Resumes(key) => (key, None),
        };
        let mut again = super::LOOK_AGAIN.iter();
        let node = loop {
            match self.nodes.owner_of(key.clone(), guesser).await {
                // Spent on other nodes: this hub refuses the join, as it would its own.
                Ok((_, failures)) if failures.spent(player.failed_joins_per_minute) => {
                    let source = Source::of(player.client.source);
                    let _ = self.hub.send(Input::SpentElsewhere(source, now())).await;
                    break None;
                }
                Ok((Owner::There(node), _)) => break Some(node),
                Ok((Owner::Here, _)) => break None,
                // The local hub then says it does not exist, in time to say so.
                Ok((Owner::Nowhere, _)) => match again.next() {
                    Some(wait) if now() + *wait + ANSWER_MARGIN < player.join_by => {
                        tokio::time::sleep(*wait).await
                    }
                    _ => break None,
                },
                Err(super::Unreachable) => return Ok(Routed::DirectoryDown),
            }
        };
        self.go(player, node, outgoing).await
    }

    /// Sends the player to `node`'s hub (`None`: this node's), from the hub it is in, in the
    /// same queue: what the hub it leaves sent it before letting go (a LIST's answer) is still
    /// delivered, before what comes from the next.
    async fn go(
        &self,
        player: &Player,
        node: Option<String>,
        outgoing: &Inbox,
    ) -> Result<Routed, Closing> {
        if node != player.node {
            self.leave(player).await;
            outgoing.released().await;
            self.enter(player, node.as_deref(), outgoing.reopen())
                .await?;
        }
        let upstream = match node {
            Some(node) => Upstream::Remote {
                node,
                mailbox: self.mailbox.clone(),
                remote: self.remote.clone(),
            },
            None => Upstream::Local(self.hub.clone()),
        };
        Ok(Routed::Moved { hub: 0, upstream })
    }

    /// Takes the player out of the hub it is in. It moves on, not away: nothing of it stays
    /// there.
    async fn leave(&self, player: &Player) {
        let conn = player.conn;
        match &player.node {
            Some(there) => {
                self.remote.detach(conn);
                let how = Departure::Left;
                self.mailbox.send(there, Envelope::Gone { conn, how });
            }
            None => {
                let gone = Input::Gone(conn, Departure::Left, now());
                let _ = self.hub.send(gone).await;
            }
        }
    }

    /// Connects the player to `node`'s hub (`None`: this node's), which sends into `outbox`.
    async fn enter(
        &self,
        player: &Player,
        node: Option<&str>,
        outbox: Outbox,
    ) -> Result<(), Closing> {
        let conn = player.conn;
        match node {
            Some(there) => {
                self.remote.attach(conn, there, outbox);
                let connect = Envelope::Connect {
                    conn,
                    extension: player.client.extension,
                    source: player.client.source,
                    age_ms: player.opened.elapsed().as_millis() as u64,
                };
                if !self.mailbox.send(there, connect) {
                    self.remote.detach(conn);
                    return Err(Closing(Reason::LinkLost));
                }
            }
            None => {
                let connect = Input::Connect(conn, outbox, player.client, player.opened);
                if self.hub.send(connect).await.is_err() {
                    return Err(Closing(Reason::ShuttingDown));
                }
            }
        }
        Ok(())
    }
}
