//! Who is attached where: on the edge, the players here attached to a lobby on another node
//! (with their queues); on the owner, the guests of other nodes in lobbies here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::Envelope;
use crate::signal::hub::{Client, ConnId, Departure, Reason};
use crate::signal::queue::{self, Input, Outbox, Queued, now};

/// A guest that has just arrived from another node: (its conn there, its conn here), and the
/// queue of what this hub sends it, for [`super::forward()`].
pub type NewGuest = ((ConnId, ConnId), queue::Inbox);

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
    /// guest's outbox to forward (the caller spawns [`super::forward()`] for it).
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
                let (outbox, inbox) = queue::pair();
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
                    outbox.close(Reason::TooSlow);
                }
                None
            }
            Envelope::Entered { conn } => {
                if let Some((_, outbox)) = s.attached.get(&conn) {
                    outbox.entered();
                }
                None
            }
            Envelope::Close { conn, reason } => {
                if let Some((_, outbox)) = s.attached.remove(&conn) {
                    outbox.close(reason);
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
                outbox.close(Reason::HostDisconnected);
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
