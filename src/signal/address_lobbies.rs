//! Open lobbies per creator's address (`signal.max_lobbies_per_address`), counted once for the
//! whole process. A lobby opens in its creator's address's hub, but a quick play opens its
//! lobby in the hub its filter picks (`shard::of_filter`), so that players pressing Play at once
//! meet: with `signal.shards` > 1, one address's lobbies may sit in several hubs, and a count
//! per hub would let it open that many times the limit.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::conn_cap::Source;

/// How many lobbies each address has open, in every hub that shares this.
#[derive(Debug, Default)]
pub struct AddressLobbies {
    open: Mutex<HashMap<Source, u32>>,
}

impl AddressLobbies {
    /// Counts a lobby that `source` opens, unless it has `limit` open already (0: no limit).
    /// Checking and counting are one step, so hubs opening lobbies at the same moment cannot
    /// pass the limit between them.
    pub fn open(&self, source: Source, limit: u32) -> bool {
        let mut open = self.open.lock().unwrap();
        let count = open.entry(source).or_default();
        if limit > 0 && *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    /// A lobby that `source` opened has ended.
    pub fn close(&self, source: Source) {
        let mut open = self.open.lock().unwrap();
        if let Some(count) = open.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                open.remove(&source);
            }
        }
    }

    /// How many addresses have a lobby open.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: u8) -> Source {
        Source::of(std::net::Ipv4Addr::new(10, 0, 0, n).into())
    }

    #[test]
    fn an_address_opens_up_to_the_limit_and_again_after_a_close() {
        let lobbies = AddressLobbies::default();
        assert!(lobbies.open(source(1), 2));
        assert!(lobbies.open(source(1), 2));
        assert!(!lobbies.open(source(1), 2), "a third");
        assert!(lobbies.open(source(2), 2), "another address");
        lobbies.close(source(1));
        assert!(lobbies.open(source(1), 2), "one closed, one more");
        assert!(!lobbies.open(source(1), 2));
    }

    #[test]
    fn no_limit_still_counts_and_nothing_is_kept_for_an_address_with_none_open() {
        let lobbies = AddressLobbies::default();
        for _ in 0..100 {
            assert!(lobbies.open(source(1), 0));
        }
        // A limit set by a reload applies to what is open.
        assert!(!lobbies.open(source(1), 100));
        for _ in 0..100 {
            lobbies.close(source(1));
        }
        assert_eq!(lobbies.addresses(), 0);
        // A close of nothing open changes nothing.
        lobbies.close(source(3));
        assert_eq!(lobbies.addresses(), 0);
    }
}
