//! The cluster's router: wraps this node's ([`LocalRouter`]). A session's JOIN (or RESUME, or
//! CREATE while this node drains) is looked up in the lobby directory, with the address's
//! failed joins in the same round trip; a lobby here, or nowhere, is the local router's (which
//! has the session ask again until it is in a lobby); a lobby on another node attaches the
//! player there, for good. A QUICK_JOIN goes where the
//! cluster plays its filter (`OtherNodes::plays_on`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Envelope, Joining, Mailbox, OtherNodes, Owner, Remote};
use crate::conn_cap::Source;
use crate::signal::hub::{Departure, Reason};
use crate::signal::queue::{Inbox, Input, now};
use crate::signal::router::{Closing, LocalRouter, Player, Routed, Router};
use crate::signal::upstream::Upstream;

/// How long before its join timeout a player's JOIN stops looking for a lobby the directory
/// does not list, so that the hub answers "Lobby does not exists" rather than "Have not joined
/// lobby yet".
const ANSWER_MARGIN: Duration = Duration::from_millis(250);

/// Routes sessions across the cluster's nodes.
pub struct ClusterRouter {
    pub local: LocalRouter,
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
    /// A JOIN of a lobby another node owns attaches the player to that node, and so does
    /// creating a lobby while this node drains (to the node the cluster picks); any other JOIN
    /// is the local router's; other frames decide nothing yet.
    async fn decide(
        &self,
        player: &Player,
        frame: &str,
        outgoing: &Inbox,
    ) -> Result<Routed, Closing> {
        let (key, guesser) = match super::joining(frame) {
            Joining::No => return Ok(Routed::Later),
            Joining::Creates => match self.nodes.creates_on() {
                Some(node) => return self.attach(player, node, outgoing).await,
                None => return self.local.route(player, frame, outgoing).await,
            },
            Joining::Plays(filter) => match self.nodes.plays_on(&filter) {
                Some(node) => return self.attach(player, node, outgoing).await,
                None => return self.local.route(player, frame, outgoing).await,
            },
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
                    let _ = self
                        .local
                        .hub
                        .send(Input::SpentElsewhere(source, now()))
                        .await;
                    return self.local.route(player, frame, outgoing).await;
                }
                Ok((Owner::There(node), _)) => break node,
                Ok((Owner::Here, _)) => return self.local.route(player, frame, outgoing).await,
                // The local hub then says it does not exist, in time to say so.
                Ok((Owner::Nowhere, _)) => match again.next() {
                    Some(wait) if now() + *wait + ANSWER_MARGIN < player.join_by => {
                        tokio::time::sleep(*wait).await
                    }
                    _ => return self.local.route(player, frame, outgoing).await,
                },
                Err(super::Unreachable) => return Ok(Routed::DirectoryDown),
            }
        };
        self.attach(player, node, outgoing).await
    }

    /// Moves the player from this hub to `node`'s, in the same queue: what this hub sent it
    /// before it let go (a LIST's answer) is still delivered, before what comes from there.
    async fn attach(
        &self,
        player: &Player,
        node: String,
        outgoing: &Inbox,
    ) -> Result<Routed, Closing> {
        let conn = player.conn;
        // It moves on, not away: nothing of it stays in this hub.
        let _ = (self.local.hub)
            .send(Input::Gone(conn, Departure::Left, now()))
            .await;
        outgoing.released().await;
        self.remote.attach(conn, &node, outgoing.reopen());
        let connect = Envelope::Connect {
            conn,
            extension: player.client.extension,
            source: player.client.source,
            age_ms: player.opened.elapsed().as_millis() as u64,
        };
        if !self.mailbox.send(&node, connect) {
            self.remote.detach(conn);
            return Err(Closing(Reason::LinkLost));
        }
        Ok(Routed::To(Upstream::Remote {
            node,
            mailbox: self.mailbox.clone(),
            remote: self.remote.clone(),
        }))
    }
}
