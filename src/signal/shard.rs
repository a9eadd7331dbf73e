//! Which hub shard owns what (`signal.shards`): a lobby name, join code or resume key belongs
//! to the shard its hash picks, a peer id to the shard its remainder picks, and a lobby
//! created by a player to the shard of the player's address. Each shard's hub draws only names,
//! codes, tokens and ids that are its own, so they stay unique across shards without asking
//! the others, and a JOIN, RESUME or operator request finds its shard from the frame alone.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::conn_cap::Source;

/// One hub's place among the process's `count` hubs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole process: one hub owns everything.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the name, code or resume key `key` is this shard's.
    pub fn owns_key(self, key: &str) -> bool {
        self.count == 1 || of_key(key, self.count) == self.index as usize
    }

    /// Whether peer id `id` is this shard's.
    pub fn owns_id(self, id: u32) -> bool {
        id % self.count == self.index
    }
}

/// The shard of a lobby name, a code in capitals, or a resume key (`hub::resume_key`).
pub fn of_key(key: &str, count: u32) -> usize {
    of(key, count)
}

/// The shard where lobbies created from `source` open (a CREATE; a quick play's lobby opens in
/// its filter's shard): one address's created lobbies in one hub.
pub fn of_source(source: Source, count: u32) -> usize {
    of(source, count)
}

/// Rendezvous for a QUICK_JOIN that finds no open lobby: players pressing Play with the same
/// filter at once meet in one hub.
pub fn of_filter(filter: &serde_json::Map<String, serde_json::Value>, count: u32) -> usize {
    of(serde_json::Value::Object(filter.clone()).to_string(), count)
}

/// Stable within the process (`DefaultHasher::new` has fixed keys), which is all shards need.
fn of(thing: impl Hash, count: u32) -> usize {
    let mut hasher = DefaultHasher::new();
    thing.hash(&mut hasher);
    (hasher.finish() % u64::from(count.max(1))) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_and_id_has_exactly_one_shard() {
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        let mut per_shard = [0; 4];
        for n in 0..4000u32 {
            let key = format!("K{n:05}");
            let owners: Vec<_> = shards.iter().filter(|s| s.owns_key(&key)).collect();
            assert_eq!(owners.len(), 1, "{key}");
            assert_eq!(owners[0].index as usize, of_key(&key, 4));
            per_shard[owners[0].index as usize] += 1;
            assert_eq!(shards.iter().filter(|s| s.owns_id(n)).count(), 1);
        }
        assert!(per_shard.iter().all(|&n| n > 800), "{per_shard:?}");
        assert!(Shard::ALL.owns_key("anything") && Shard::ALL.owns_id(7));
    }
}
