//! Which node relays for a player, sans-IO: from the nodes alive in the cluster (this one
//! included), never one that is draining.
//!
//! - No lobby named: the least loaded (fewest allocations; ties to the name, so every node
//!   picks alike).
//! - A lobby named: rendezvous hashing of the lobby and each node's name. Every node picks the
//!   same relay for a lobby without asking anyone, so its members' relay-to-relay packets stay
//!   inside one process; lobbies spread evenly; a node that joins or leaves moves only the
//!   lobbies that hash to it.

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// A node as the others see it (its record in Redis).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Member {
    pub node: String,
    /// Its STUN/TURN URLs, as its own `/api/ice` lists them.
    pub urls: Vec<String>,
    /// Its relay allocations when it last renewed its record.
    pub allocations: u64,
    /// Its hub's lobbies then.
    #[serde(default)]
    pub lobbies: u64,
    pub draining: bool,
}

/// The relay for a player of `lobby` (any lobby when `None`); `None` if every node drains.
pub fn choose<'a>(members: &'a [Member], lobby: Option<&str>) -> Option<&'a Member> {
    let open = members.iter().filter(|m| !m.draining && !m.urls.is_empty());
    match lobby {
        None => open.min_by(|a, b| (a.allocations, &a.node).cmp(&(b.allocations, &b.node))),
        Some(lobby) => open.max_by_key(|m| (weight(lobby, &m.node), &m.node)),
    }
}

/// The rendezvous weight of `node` for `lobby`.
pub(super) fn weight(lobby: &str, node: &str) -> u64 {
    let digest = Sha1::new()
        .chain_update(lobby.as_bytes())
        .chain_update([0])
        .chain_update(node.as_bytes())
        .finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node: &str, allocations: u64, draining: bool) -> Member {
        Member {
            node: node.into(),
            urls: vec![format!("turn:{node}:3478?transport=udp")],
            allocations,
            lobbies: 0,
            draining,
        }
    }

    #[test]
    fn least_loaded_open_node_without_a_lobby() {
        let nodes = [
            member("a", 5, false),
            member("b", 2, false),
            member("c", 1, true),
        ];
        assert_eq!(choose(&nodes, None).unwrap().node, "b", "c drains");
        let tie = [member("b", 2, false), member("a", 2, false)];
        assert_eq!(choose(&tie, None).unwrap().node, "a", "ties go to the name");
        assert!(choose(&[member("a", 0, true)], None).is_none());
    }

    #[test]
    fn a_lobby_sticks_to_one_node_and_moves_only_off_a_leaving_one() {
        let nodes: Vec<Member> = ["a", "b", "c"]
            .iter()
            .map(|n| member(n, 0, false))
            .collect();
        let mut per_node = std::collections::HashMap::new();
        let mut moved = 0;
        for i in 0..3000 {
            let lobby = format!("lobby{i}");
            let chosen = choose(&nodes, Some(&lobby)).unwrap().node.clone();
            // Whatever the order the nodes are listed in, and whatever their load.
            let mut reordered = nodes.clone();
            reordered.reverse();
            reordered[0].allocations = 1000;
            assert_eq!(choose(&reordered, Some(&lobby)).unwrap().node, chosen);
            // Node "c" drains: only its lobbies move.
            let mut c_drains = nodes.clone();
            c_drains[2].draining = true;
            let after = &choose(&c_drains, Some(&lobby)).unwrap().node;
            if chosen != "c" {
                assert_eq!(after, &chosen);
            } else {
                moved += 1;
            }
            *per_node.entry(chosen).or_insert(0) += 1;
        }
        for (node, count) in &per_node {
            assert!((800..1200).contains(count), "{node}: {count} of 3000");
        }
        assert_eq!(moved, per_node["c"]);
    }
}
