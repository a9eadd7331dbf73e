//! Whether a frame joins (or creates, or resumes) a lobby, and which: what decides a session's
//! node in a cluster.

use crate::signal::codec::{self, Command, Dialect};
use crate::signal::ext::{self, ExtCommand};
use crate::signal::hub::resume_key;
use crate::signal::lobby;

/// Whether a frame joins a lobby, and which.
#[derive(Debug, PartialEq, Eq)]
pub enum Joining {
    /// Not a JOIN (or CREATE).
    No,
    /// It creates a lobby (here).
    Creates,
    /// It joins the lobby with this name, or this code in capitals.
    Names(String),
    /// It resumes the place with this `hub::resume_key`.
    Resumes(String),
    /// A QUICK_JOIN with this filter: it joins or creates, wherever the cluster plays it.
    Plays(serde_json::Map<String, serde_json::Value>),
}

pub fn joining(frame: &str) -> Joining {
    let named = match ext::decode(frame) {
        Some(Ok(ExtCommand::Join { lobby, .. })) => lobby,
        Some(Ok(ExtCommand::Create(_))) => return Joining::Creates,
        Some(Ok(ExtCommand::Resume(token))) => return Joining::Resumes(resume_key(&token)),
        Some(Ok(ExtCommand::QuickJoin { filter, .. })) => return Joining::Plays(filter),
        Some(_) => return Joining::No,
        None => match codec::decode(Dialect::detect(frame), frame) {
            Ok(Command::Join { lobby, .. }) => lobby,
            _ => return Joining::No,
        },
    };
    if named.is_empty() {
        return Joining::Creates;
    }
    Joining::Names(lobby_key(&named))
}

/// The directory key of a lobby named `named`: a code in capitals, or the name as it is.
pub fn lobby_key(named: &str) -> String {
    lobby::as_code(named).unwrap_or_else(|| named.to_string())
}

/// The extension request (its type) a JOIN-like frame is: an extension client whose JOIN or
/// RESUME cannot be routed gets an ERROR for it rather than a close.
pub fn ext_request(frame: &str) -> Option<u64> {
    match ext::decode(frame)? {
        Ok(ExtCommand::Join { .. }) => Some(ext::kind::JOIN),
        Ok(ExtCommand::Resume(_)) => Some(ext::kind::RESUME),
        Ok(ExtCommand::Create(_)) => Some(ext::kind::CREATE),
        Ok(ExtCommand::QuickJoin { .. }) => Some(ext::kind::QUICK_JOIN),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_in_every_dialect() {
        let names = |n: &str| Joining::Names(n.into());
        assert_eq!(
            joining(r#"{"type":0,"id":0,"data":"AbCdEfGhIjKlMnOp"}"#),
            names("AbCdEfGhIjKlMnOp")
        );
        assert_eq!(joining(r#"{"type":0,"id":0,"data":""}"#), Joining::Creates);
        assert_eq!(joining("J: xyz\n"), names("xyz"));
        assert_eq!(
            joining(r#"{"type":0,"id":0,"data":"k7m2pq"}"#),
            names("K7M2PQ"),
            "a code, in capitals"
        );
        // The extension's data is a string holding JSON.
        assert_eq!(
            joining(r#"{"type":103,"id":0,"data":"{\"lobby\":\"k7m2pq\",\"password\":\"x\"}"}"#),
            names("K7M2PQ")
        );
        assert_eq!(
            joining(r#"{"type":100,"id":0,"data":""}"#),
            Joining::Creates
        );
        assert_eq!(joining(r#"{"type":104,"id":0,"data":""}"#), Joining::No);
        assert_eq!(
            joining(r#"{"type":112,"id":0,"data":"{\"filter\":{\"mode\":\"ctf\"}}"}"#),
            Joining::Plays(
                serde_json::json!({"mode": "ctf"})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
        assert_eq!(
            joining(r#"{"type":108,"id":0,"data":"{\"token\":\"abc\"}"}"#),
            Joining::Resumes(resume_key("abc")),
            "a resume is found by its token's key"
        );
        assert_ne!(resume_key("abc"), resume_key("abd"));
        assert!(
            !resume_key("abc").contains("abc"),
            "the directory never holds a token"
        );
        assert_eq!(joining(r#"{"type":7,"id":0,"data":""}"#), Joining::No);
        assert_eq!(joining("not a frame"), Joining::No);
    }
}
