//! Why a CREATE or JOIN is refused, and how each refusal is told (a close reason for plain
//! clients, an ERROR code for extension clients, a limit's name, a failed-join label).

use super::*;

/// Why a join is refused: a close for a plain client, an ERROR for an extension one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    AlreadyInLobby,
    TooManyLobbies,
    NotFound,
    Sealed,
    Full,
    NeedsPassword,
    WrongPassword,
    RateLimited,
    /// `signal.lobby_joins_per_second`.
    Busy,
    /// `signal.max_lobbies_per_address`.
    TooManyLobbiesHere,
}

impl Refusal {
    pub(super) fn reason(self) -> Reason {
        match self {
            Refusal::AlreadyInLobby => Reason::AlreadyInLobby,
            Refusal::TooManyLobbies => Reason::TooManyLobbies,
            Refusal::NotFound => Reason::LobbyDoesNotExist,
            Refusal::Sealed => Reason::LobbyIsSealed,
            Refusal::Full => Reason::LobbyFull,
            Refusal::NeedsPassword => Reason::NeedsPassword,
            Refusal::WrongPassword => Reason::WrongPassword,
            Refusal::RateLimited => Reason::TooManyFailedJoins,
            Refusal::Busy => Reason::LobbyBusy,
            Refusal::TooManyLobbiesHere => Reason::TooManyLobbiesHere,
        }
    }

    pub(super) fn code(self) -> ErrorCode {
        match self {
            Refusal::AlreadyInLobby => ErrorCode::AlreadyInLobby,
            Refusal::TooManyLobbies => ErrorCode::TooManyLobbies,
            Refusal::NotFound => ErrorCode::NotFound,
            Refusal::Sealed => ErrorCode::Sealed,
            Refusal::Full => ErrorCode::Full,
            Refusal::NeedsPassword | Refusal::WrongPassword => ErrorCode::WrongPassword,
            Refusal::RateLimited | Refusal::Busy => ErrorCode::RateLimited,
            Refusal::TooManyLobbiesHere => ErrorCode::TooManyLobbies,
        }
    }

    /// The limit's key, for refusals that guard the server against one address.
    pub(super) fn limit(self) -> Option<&'static str> {
        match self {
            Refusal::Busy => Some("signal.lobby_joins_per_second"),
            Refusal::TooManyLobbiesHere => Some("signal.max_lobbies_per_address"),
            _ => None,
        }
    }

    /// The failed-join counter's label, for refusals that count against the address.
    pub(super) fn failed_join(self) -> Option<&'static str> {
        match self {
            Refusal::NotFound => Some("not_found"),
            Refusal::NeedsPassword | Refusal::WrongPassword => Some("wrong_password"),
            _ => None,
        }
    }
}
