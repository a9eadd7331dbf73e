//! Owner side: what this hub sends a guest, carried back to the guest's node.

use std::sync::Arc;

use super::{Envelope, Mailbox, Remote};
use crate::signal::hub::{ConnId, Departure, Reason};
use crate::signal::queue::{Inbox, Input, Outgoing, now};

/// Owner side: what this hub sends guest `conn` of node `edge` (`local` here), sent there in
/// order, until the hub lets go of it. If the other nodes cannot take a frame (Redis away, the
/// queue full), the guest leaves the hub and its node is asked to close it, as its own node
/// closes a player whose frame it cannot send here.
pub async fn forward(
    mailbox: Arc<dyn Mailbox>,
    remote: Arc<Remote>,
    hub: tokio::sync::mpsc::Sender<Input>,
    edge: String,
    (conn, local): (ConnId, ConnId),
    mut inbox: Inbox,
) {
    while let Some(out) = inbox.recv().await {
        let envelope = match out {
            Outgoing::Text(text) => Envelope::Send { conn, text },
            Outgoing::Close(reason) => Envelope::Close { conn, reason },
            Outgoing::Entered => Envelope::Entered { conn },
        };
        if !mailbox.send(&edge, envelope) {
            let close = Envelope::Close {
                conn,
                reason: Reason::LinkLost,
            };
            // Taken over the byte budget; with Redis away, the edge closes it anyway.
            mailbox.send(&edge, close);
            remote.forget_guest(&edge, conn);
            let _ = hub.send(Input::Gone(local, Departure::Lost, now())).await;
            return;
        }
    }
}
