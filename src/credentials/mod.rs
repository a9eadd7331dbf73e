//! What the relay and the rest of the server agree on about credentials: TURN REST credentials
//! ([`rest`]: minted by `/api/ice`, the command line and the hub; verified by the relay), the
//! user part that binds one to a lobby and a player, and the lobby events the hub tells the
//! relay ([`lobby`]). Neither side imports the other: both import this.

mod lobby;
mod rest;

pub use lobby::{LobbyEvent, lobby_member, lobby_of, lobby_user};
pub use rest::{Credential, mint, rest_expiry, rest_password, unix_seconds};
