//! Routing a session in a cluster: its first JOIN (or RESUME, or CREATE while this node drains)
//! is looked up in the directory, with the address's failed joins in the same round trip, and
//! the session stays with this node's hub or is attached to the lobby's node.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Envelope, Joining, Owner};
use crate::conn_cap::Source;
use crate::signal::Clustered;
use crate::signal::hub::{Departure, reason};
use crate::signal::queue::{self, Input, now};
use crate::signal::session::Arrival;
use crate::signal::upstream::{Closing, Route};

/// How long before its join timeout a player's JOIN stops looking for a lobby the directory
/// does not list, so that the hub answers "Lobby does not exists" rather than "Have not joined
/// lobby yet".
const ANSWER_MARGIN: Duration = Duration::from_millis(250);

impl Clustered {
    /// Routes a session by `frame`: a JOIN of a lobby another node owns attaches the player to
    /// that node (this hub forgets it; what that node sends arrives in a new `outgoing`), and so
    /// does creating a lobby while this node drains (to the node the cluster picks); any other
    /// JOIN keeps it here; other frames decide nothing yet. `None`: the lobby directory could
    /// not be asked.
    pub(in crate::signal) async fn route(
        &self,
        arrival: &Arrival,
        join_by: Instant,
        failed_joins_per_minute: u32,
        frame: &str,
        hub: &mpsc::Sender<Input>,
        outgoing: &mut queue::Inbox,
    ) -> Result<Option<Route>, Closing> {
        let (key, guesser) = match super::joining(frame) {
            Joining::No => return Ok(Some(Route::Undecided)),
            Joining::Creates => match self.nodes.creates_on() {
                Some(node) => return self.attach(arrival, node, hub, outgoing).await.map(Some),
                None => return Ok(Some(Route::Local)),
            },
            Joining::Names(key) => (key, Some(Source::of(arrival.client.source))),
            // A resume token is no guess.
            Joining::Resumes(key) => (key, None),
        };
        let mut again = super::LOOK_AGAIN.iter();
        let node = loop {
            match self.nodes.owner_of(key.clone(), guesser).await {
                // Spent on other nodes: this hub refuses the join, as it would its own.
                Ok((_, failures)) if failures.spent(failed_joins_per_minute) => {
                    let source = Source::of(arrival.client.source);
                    let _ = hub.send(Input::SpentElsewhere(source, now())).await;
                    return Ok(Some(Route::Local));
                }
                Ok((Owner::There(node), _)) => break node,
                Ok((Owner::Here, _)) => return Ok(Some(Route::Local)),
                // The local hub then says it does not exist, in time to say so.
                Ok((Owner::Nowhere, _)) => match again.next() {
                    Some(wait) if now() + *wait + ANSWER_MARGIN < join_by => {
                        tokio::time::sleep(*wait).await
                    }
                    _ => return Ok(Some(Route::Local)),
                },
                Err(super::Unreachable) => return Ok(None),
            }
        };
        self.attach(arrival, node, hub, outgoing).await.map(Some)
    }

    /// Moves the session from this hub to `node`'s.
    async fn attach(
        &self,
        &Arrival {
            conn,
            client,
            opened,
        }: &Arrival,
        node: String,
        hub: &mpsc::Sender<Input>,
        outgoing: &mut queue::Inbox,
    ) -> Result<Route, Closing> {
        // It moves on, not away: nothing of it stays in this hub.
        let _ = hub.send(Input::Gone(conn, Departure::Left, now())).await;
        let (outbox, inbox) = queue::pair();
        self.remote.attach(conn, &node, outbox);
        *outgoing = inbox;
        let connect = Envelope::Connect {
            conn,
            extension: client.extension,
            source: client.source,
            age_ms: opened.elapsed().as_millis() as u64,
        };
        if !self.nodes.send(&node, connect) {
            self.remote.detach(conn);
            return Err(Closing(reason::PROTOCOL_ERROR, super::LINK_LOST.into()));
        }
        Ok(Route::Remote(node))
    }
}
