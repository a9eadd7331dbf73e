//! Which node a QUICK_JOIN ("Play") goes to, sans-IO, from what the cluster last read of its
//! nodes and of the lobbies each lists:
//!
//! - the node of the best open lobby that matches anywhere (the fullest; on a tie this node's,
//!   which needs no hop), where that node's hub picks and joins atomically, as on one node;
//! - none listed: the filter's own node, by rendezvous hashing of the filter and the node names,
//!   so that players pressing Play at once on different nodes meet in one hub, whose first
//!   player opens the lobby the others join.
//!
//! Draining nodes get no one. Listings are at most a renewal old: a lobby that filled since is
//! skipped by its hub, which then picks another of its own or opens one.

use serde_json::{Map, Value};

use super::placement::{Member, weight};
use super::registry::Record;
use crate::signal::ext::LobbyInfo;

/// Where a QUICK_JOIN with `filter` goes: another node's address, or `None` for this one.
pub fn node_for(
    filter: &Map<String, Value>,
    own: &Member,
    own_listed: &[LobbyInfo],
    others: &[Record],
    listed: &[(String, Vec<LobbyInfo>)],
) -> Option<String> {
    let here = (!own.draining).then_some(own_listed).into_iter().flatten();
    let there = listed.iter().flat_map(|(node, lobbies)| {
        let record = others
            .iter()
            .find(|r| r.member.node == *node && !r.member.draining);
        lobbies.iter().filter_map(move |l| Some((Some(record?), l)))
    });
    let best = here
        .map(|l| (None, l))
        .chain(there)
        .filter(|(_, l)| l.playable(filter))
        // The first of the fullest: this node's lobbies come first.
        .fold(
            None,
            |best: Option<(Option<&Record>, &LobbyInfo)>, next| match best {
                Some(b) if b.1.players >= next.1.players => Some(b),
                _ => Some(next),
            },
        );
    if let Some((record, _)) = best {
        return record.map(Record::address);
    }
    let key = format!("play:{}", Value::Object(filter.clone()));
    let own = (!own.draining).then_some((own.node.as_str(), None));
    let others = others
        .iter()
        .filter(|r| !r.member.draining)
        .map(|r| (r.member.node.as_str(), Some(r)));
    own.into_iter()
        .chain(others)
        .max_by_key(|(node, _)| (weight(&key, node), *node))
        .and_then(|(_, record)| record.map(Record::address))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn member(node: &str, draining: bool) -> Member {
        Member {
            node: node.into(),
            urls: vec![],
            allocations: 0,
            lobbies: 0,
            draining,
        }
    }

    fn record(node: &str, draining: bool) -> Record {
        Record {
            instance: "i".into(),
            member: member(node, draining),
        }
    }

    fn lobby(name: &str, players: usize, max_players: u32, data: Value) -> LobbyInfo {
        LobbyInfo {
            name: name.into(),
            code: "ABC234".into(),
            title: String::new(),
            public: true,
            mesh: true,
            players,
            max_players,
            password: false,
            sealed: false,
            data: data.as_object().unwrap().clone(),
        }
    }

    fn filter(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_fullest_matching_lobby_anywhere_and_this_nodes_on_a_tie() {
        let own = member("a", false);
        let others = [record("b", false), record("c", false)];
        let ctf = json!({"mode": "ctf"});
        let listed = vec![
            ("b".to_string(), vec![lobby("b1", 2, 4, ctf.clone())]),
            (
                "c".to_string(),
                vec![lobby("c1", 3, 4, json!({"mode": "dm"}))],
            ),
        ];
        let mine = [lobby("a1", 1, 4, ctf.clone())];
        let play = filter(ctf.clone());
        assert_eq!(
            node_for(&play, &own, &mine, &others, &listed),
            Some("b/i".into())
        );
        let mine = [lobby("a1", 2, 4, ctf.clone())];
        assert_eq!(node_for(&play, &own, &mine, &others, &listed), None);
        // Full, sealed, private or with a password: not playable.
        let mut closed = vec![lobby("x", 4, 4, ctf.clone()); 4];
        closed[1].players = 3;
        closed[1].sealed = true;
        closed[2].players = 3;
        closed[2].public = false;
        closed[3].players = 3;
        closed[3].password = true;
        let listed = vec![("b".to_string(), closed)];
        let mine = [lobby("a1", 1, 4, ctf.clone())];
        assert_eq!(node_for(&play, &own, &mine, &others, &listed), None);
        // A draining node's lobbies get no one, this node's included.
        let listed = vec![("b".to_string(), vec![lobby("b1", 2, 4, ctf.clone())])];
        let others = [record("b", true), record("c", false)];
        assert_eq!(node_for(&play, &own, &mine, &others, &listed), None);
        let own = member("a", true);
        assert_eq!(
            node_for(&play, &own, &mine, &others, &listed),
            Some("c/i".into())
        );
    }

    #[test]
    fn with_nothing_listed_every_node_sends_a_filter_to_the_same_node() {
        let nodes = ["a", "b", "c"];
        let mut homes = std::collections::HashSet::new();
        for mode in 0..20 {
            let play = filter(json!({"mode": mode}));
            let picked: Vec<String> = nodes
                .iter()
                .map(|own| {
                    let others: Vec<Record> = nodes
                        .iter()
                        .filter(|n| *n != own)
                        .map(|n| record(n, false))
                        .collect();
                    let at = node_for(&play, &member(own, false), &[], &others, &[]);
                    at.map_or(own.to_string(), |a| a.trim_end_matches("/i").to_string())
                })
                .collect();
            assert!(picked.iter().all(|p| *p == picked[0]), "{mode}: {picked:?}");
            homes.insert(picked[0].clone());
        }
        assert_eq!(homes.len(), 3, "filters spread over the nodes");
        // All others draining: here.
        let others = [record("b", true)];
        assert_eq!(
            node_for(&Map::new(), &member("a", false), &[], &others, &[]),
            None
        );
    }
}
