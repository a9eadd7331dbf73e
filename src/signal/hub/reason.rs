//! Close codes and reasons. Godot shows the reason to players, so these are the reference
//! server's strings, typo included.

/// Declares each close reason once, and [`ALL`] with every one of them: a reason that
/// crosses to another node of a cluster is found there in [`ALL`], so none can be missing.
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident = $text:literal;)*) => {
        $($(#[$doc])* pub const $name: &str = $text;)*
        /// Every reason the server closes a signalling connection with.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

reasons! {
    NO_LOBBY = "Have not joined lobby yet";
    HOST_DISCONNECTED = "Room host has disconnected";
    ONLY_HOST_CAN_SEAL = "Only host can seal the lobby";
    SEAL_COMPLETE = "Seal complete";
    TOO_MANY_LOBBIES = "Too many lobbies open, disconnecting";
    ALREADY_IN_LOBBY = "Already in a lobby";
    LOBBY_DOES_NOT_EXIST = "Lobby does not exists";
    LOBBY_IS_SEALED = "Lobby is sealed";
    INVALID_FORMAT = "Invalid message format";
    NEED_LOBBY = "Invalid message when not in a lobby";
    INVALID_DEST = "Invalid destination";
    INVALID_CMD = "Invalid command";
    TOO_MANY_PEERS = "Too many peers connected";
    INVALID_TRANSFER_MODE = "Invalid transfer mode, must be text";
    /// rallypoint's own, for `signal.max_lobby_members` and a lobby's player cap.
    LOBBY_FULL = "Lobby is full";
    /// rallypoint's own: a plain client cannot give the password a lobby was created with.
    NEEDS_PASSWORD = "Lobby requires a password";
    /// rallypoint's own: an extension client gave a password that is not the lobby's.
    WRONG_PASSWORD = "Wrong password";
    /// rallypoint's own: `signal.failed_joins_per_minute` from this address.
    TOO_MANY_FAILED_JOINS = "Too many failed joins, try again later";
    /// rallypoint's own: the host removed this peer (extension KICK).
    KICKED = "Kicked by host";
    /// rallypoint's own: the peer's place was resumed on a newer connection.
    RESUMED_ELSEWHERE = "Resumed on another connection";
    /// rallypoint's own: `signal.lobby_joins_per_second` into this lobby.
    LOBBY_BUSY = "Lobby is busy, try again";
    /// rallypoint's own: `signal.max_lobbies_per_address`.
    TOO_MANY_LOBBIES_HERE = "Too many lobbies from this address";
    /// rallypoint's own: the player's queue filled (`signal.max_queued_bytes`,
    /// `signal.send_timeout`); closed with [`POLICY`].
    TOO_SLOW = "Too slow to receive";
}

/// The protocol's error close code; only "Seal complete" closes normally (1000).
pub const PROTOCOL_ERROR: u16 = 4000;
pub const NORMAL: u16 = 1000;
/// WebSocket's policy violation (RFC 6455 §7.4.1), for [`TOO_SLOW`].
pub const POLICY: u16 = 1008;
