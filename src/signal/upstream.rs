//! Where a session's frames go: this node's hub, or another node's ([`Upstream`]); and the
//! session's way there ([`Way`]), undecided until its [`Router`] decides, then fixed.

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

/// A session's way to its hub: this node's while undecided, then where its router sent it.
pub struct Way {
    player: Player,
    router: Arc<dyn Router>,
    upstream: Upstream,
    asking: Asking,
}

/// When the router is asked about a frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asking {
    /// Each frame, until it decides.
    Undecided,
    /// Each frame while the player is in no lobby (it was moved between this process's hubs).
    UntilInLobby,
    /// No more.
    Decided,
}

impl Way {
    pub fn new(player: Player, router: Arc<dyn Router>, hub: mpsc::Sender<Input>) -> Way {
        Way {
            player,
            router,
            upstream: Upstream::Local(hub),
            asking: Asking::Undecided,
        }
    }

    /// A frame from the player (a text frame, or a binary one holding UTF-8). While undecided
    /// the router is asked first; if it moves the player, the hub it moves to sends into the same
    /// `outgoing`. `Some`: a frame the session answers itself, to send the player now.
    pub async fn text(
        &mut self,
        text: String,
        at: Instant,
        outgoing: &Inbox,
    ) -> Result<Option<String>, Closing> {
        let asks = match self.asking {
            Asking::Undecided => true,
            // In a lobby for good: settled, and the queue is not looked at again.
            Asking::UntilInLobby if outgoing.in_lobby() => {
                self.asking = Asking::Decided;
                false
            }
            Asking::UntilInLobby => true,
            Asking::Decided => false,
        };
        if asks {
            match self.router.route(&self.player, &text, outgoing).await? {
                Routed::Later => {}
                Routed::To(upstream) => (self.upstream, self.asking) = (upstream, Asking::Decided),
                Routed::Moved { hub, upstream } => {
                    (self.upstream, self.asking) = (upstream, Asking::UntilInLobby);
                    self.player.hub = hub;
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
