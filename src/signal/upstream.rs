//! Where a session's frames go: this node's hub, or another node's ([`Upstream`]); and the
//! session's way there ([`Way`]), which its [`Router`] may change until the player is in a
//! lobby, then fixed.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::ext;
use super::hub::{Departure, Reason};
use super::queue::{Inbox, Input, now};
use super::remote::{self, Envelope, Mailbox, Remote};
use super::router::{Closing, Player, Routed, Router};

/// The hub a session's frames go to.
pub enum Upstream {
    /// This node's.
    Local(mpsc::Sender<Input>),
    /// The hub of `node`, which owns the lobby the player joined; frames go there as
    /// envelopes, in order, through the cluster's `mailbox`.
    Remote {
        node: String,
        mailbox: Arc<dyn Mailbox>,
        /// Who is attached where (the player is, until its socket goes).
        remote: Arc<Remote>,
    },
}

impl Upstream {
    /// The other node it leads to, if any.
    fn node(&self) -> Option<String> {
        match self {
            Upstream::Local(_) => None,
            Upstream::Remote { node, .. } => Some(node.clone()),
        }
    }

    async fn text(&self, player: &Player, text: String, at: Instant) -> Result<(), Closing> {
        let conn = player.conn;
        match self {
            Upstream::Local(hub) => local(hub, Input::Text(conn, text, at)).await,
            Upstream::Remote { node, mailbox, .. } => {
                match mailbox.send(node, Envelope::Text { conn, text }) {
                    true => Ok(()),
                    false => Err(Closing(Reason::LinkLost)),
                }
            }
        }
    }

    async fn binary(&self, player: &Player, at: Instant) -> Result<(), Closing> {
        match self {
            Upstream::Local(hub) => local(hub, Input::Binary(player.conn, at)).await,
            // The hub there would say the same.
            Upstream::Remote { .. } => Err(Closing(Reason::InvalidTransferMode)),
        }
    }

    async fn gone(&self, player: &Player, how: Departure) {
        let conn = player.conn;
        match self {
            Upstream::Local(hub) => {
                let _ = hub.send(Input::Gone(conn, how, now())).await;
            }
            Upstream::Remote {
                node,
                mailbox,
                remote,
            } => {
                remote.detach(conn);
                mailbox.send(node, Envelope::Gone { conn, how });
            }
        }
    }
}

async fn local(hub: &mpsc::Sender<Input>, input: Input) -> Result<(), Closing> {
    hub.send(input)
        .await
        .map_err(|_| Closing(Reason::ShuttingDown))
}

/// A session's way to its hub: the one it starts in, then where its router last sent it; the
/// router is asked about each frame until the player is in a lobby.
pub struct Way {
    player: Player,
    router: Arc<dyn Router>,
    upstream: Upstream,
    /// The player is in a lobby: the router is not asked again.
    settled: bool,
}

impl Way {
    pub fn new(player: Player, router: Arc<dyn Router>, hub: mpsc::Sender<Input>) -> Way {
        Way {
            player,
            router,
            upstream: Upstream::Local(hub),
            settled: false,
        }
    }

    /// A frame from the player (a text frame, or a binary one holding UTF-8). Until the player
    /// is in a lobby the router is asked first; if it moves the player, the hub it moves to
    /// sends into the same `outgoing`. `Some`: a frame the session answers itself, to send the
    /// player now.
    pub async fn text(
        &mut self,
        text: String,
        at: Instant,
        outgoing: &Inbox,
    ) -> Result<Option<String>, Closing> {
        // In a lobby for good: the queue is not looked at again.
        self.settled = self.settled || outgoing.in_lobby();
        if !self.settled {
            match self.router.route(&self.player, &text, outgoing).await? {
                Routed::Later => {}
                Routed::Moved { hub, upstream } => {
                    (self.player.hub, self.player.node) = (hub, upstream.node());
                    self.upstream = upstream;
                }
                Routed::DirectoryDown => return self.directory_down(&text).map(Some),
            }
        }
        self.upstream
            .text(&self.player, text, at)
            .await
            .map(|()| None)
    }

    /// The lobby directory could not be asked where `frame`'s lobby lives. An extension
    /// request gets an ERROR (`unavailable`) and the player may try again; a plain client is
    /// closed with the reason, as the protocol has no other answer.
    fn directory_down(&self, frame: &str) -> Result<String, Closing> {
        match remote::ext_request(frame) {
            Some(of) if self.player.client.extension => Ok(ext::encode(&ext::ExtEvent::Error {
                of,
                code: ext::ErrorCode::Unavailable,
                message: Reason::DirectoryDown.text(),
            })),
            _ => Err(Closing(Reason::DirectoryDown)),
        }
    }

    /// A binary frame that is not UTF-8.
    pub async fn binary(&self, at: Instant) -> Result<(), Closing> {
        self.upstream.binary(&self.player, at).await
    }

    /// The player's socket is gone.
    pub async fn gone(&self, how: Departure) {
        self.upstream.gone(&self.player, how).await
    }
}
