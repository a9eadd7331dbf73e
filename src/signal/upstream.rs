//! Where a session's frames go: this node's hub, or, in a cluster, the hub of the node whose
//! lobby the player joined (attached through [`super::remote`]). The first JOIN (or RESUME, or
//! CREATE while this node drains) decides, once ([`Clustered::route`]); every later frame
//! follows that route, and the end of the socket is told there.

use std::time::Instant;

use tokio::sync::mpsc;

use super::Clustered;
use super::ext;
use super::hub::{Client, ConnId, Departure, reason};
use super::queue::{self, Input, now};
use super::remote::{self, Envelope};
use super::session::{Arrival, close};

/// A close the upstream asks of the session: code and reason.
pub(super) struct Closing(pub u16, pub String);

/// Where a session's frames go: this node's hub, or (attached) another node's.
pub(super) struct Upstream {
    conn: ConnId,
    client: Client,
    opened: Instant,
    /// When the hub closes the player if it has not joined.
    join_by: Instant,
    /// `signal.failed_joins_per_minute`, checked against the cluster's count.
    failed_joins_per_minute: u32,
    route: Route,
    cluster: Option<Clustered>,
    hub: mpsc::Sender<Input>,
}

impl Upstream {
    /// The session of `arrival`: frames go to this node's hub until, in a cluster, its first
    /// JOIN decides which node's hub it talks to.
    pub(super) fn new(
        arrival: Arrival,
        join_by: Instant,
        failed_joins_per_minute: u32,
        cluster: Option<Clustered>,
        hub: mpsc::Sender<Input>,
    ) -> Upstream {
        Upstream {
            conn: arrival.conn,
            client: arrival.client,
            opened: arrival.opened,
            join_by,
            failed_joins_per_minute,
            route: match &cluster {
                Some(_) => Route::Undecided,
                None => Route::Local,
            },
            cluster,
            hub,
        }
    }

    /// A frame from the player (a text frame, or a binary one holding UTF-8). In a cluster the
    /// first JOIN may attach the player elsewhere, and then what comes back arrives in a new
    /// `outgoing`. `Some`: a frame the session answers itself, to send the player now.
    pub(super) async fn text(
        &mut self,
        text: String,
        at: Instant,
        outgoing: &mut queue::Inbox,
    ) -> Result<Option<String>, Closing> {
        let conn = self.conn;
        if let (Route::Undecided, Some(c)) = (&self.route, &self.cluster) {
            let hub = &self.hub;
            let arrival = Arrival {
                conn,
                client: self.client,
                opened: self.opened,
            };
            match c
                .route(
                    &arrival,
                    self.join_by,
                    self.failed_joins_per_minute,
                    &text,
                    hub,
                    outgoing,
                )
                .await?
            {
                Some(route) => self.route = route,
                None => return self.directory_down(&text).map(Some),
            }
        }
        match (&self.route, &self.cluster) {
            (Route::Remote(node), Some(c)) => {
                match c.nodes.send(node, Envelope::Text { conn, text }) {
                    true => Ok(None),
                    false => Err(Closing(reason::PROTOCOL_ERROR, remote::LINK_LOST.into())),
                }
            }
            _ => self.local(Input::Text(conn, text, at)).await.map(|()| None),
        }
    }

    /// The lobby directory could not be asked where `frame`'s lobby lives. An extension
    /// request gets an ERROR (`unavailable`) and the player may try again; a plain client is
    /// closed with the reason, as the protocol has no other answer.
    fn directory_down(&self, frame: &str) -> Result<String, Closing> {
        match remote::ext_request(frame) {
            Some(of) if self.client.extension => Ok(ext::encode(&ext::ExtEvent::Error {
                of,
                code: ext::ErrorCode::Unavailable,
                message: remote::DIRECTORY_DOWN,
            })),
            _ => Err(Closing(
                reason::PROTOCOL_ERROR,
                remote::DIRECTORY_DOWN.into(),
            )),
        }
    }

    /// A binary frame that is not UTF-8.
    pub(super) async fn binary(&mut self, at: Instant) -> Result<(), Closing> {
        match self.route {
            // The hub here would say the same.
            Route::Remote(_) => Err(Closing(
                reason::PROTOCOL_ERROR,
                reason::INVALID_TRANSFER_MODE.into(),
            )),
            _ => self.local(Input::Binary(self.conn, at)).await,
        }
    }

    async fn local(&self, input: Input) -> Result<(), Closing> {
        match self.hub.send(input).await {
            Ok(()) => Ok(()),
            Err(_) => Err(Closing(close::GOING_AWAY, "Server shutting down".into())),
        }
    }

    /// The player's socket is gone.
    pub(super) async fn gone(&self, how: Departure) {
        match (&self.route, &self.cluster) {
            (Route::Remote(node), Some(c)) => {
                c.remote.detach(self.conn);
                c.nodes.send(
                    node,
                    Envelope::Gone {
                        conn: self.conn,
                        how,
                    },
                );
            }
            _ => {
                let _ = self.hub.send(Input::Gone(self.conn, how, now())).await;
            }
        }
    }
}

/// Which hub a session's frames go to.
pub enum Route {
    /// In a cluster, before the first JOIN: this node's, for now.
    Undecided,
    /// This node's.
    Local,
    /// The hub of this node, which owns the lobby the player joined.
    Remote(String),
}
