//! Hub shards (`signal.shards` > 1): the process's lobbies spread over several hubs, each its
//! own task, so that the hub's work runs on as many cores. They are the cluster's seam inside
//! one process, without the hop: what a node finds in the lobby directory, a shard finds by
//! hashing ([`shard`](super::shard)), and a session's frames go straight to its lobby's hub.
//!
//! - A session starts in its home hub (by connection id, round robin), where it may LIST and
//!   browse; [`ShardRouter`] moves it, at a JOIN, CREATE, RESUME or QUICK_JOIN, to the hub of
//!   that lobby (by the name's, code's or token's hash), of its own address (a lobby it
//!   creates), or of the best open lobby for its filter (a quick play). Until the player is in a
//!   lobby it is asked again: after a JOIN that failed (a mistyped code) the next may name a
//!   lobby in another hub.
//! - What the other hubs list reaches each hub every [`SHARE_PERIOD`] ([`Shared::lists`]), for
//!   LIST and quick play, as other nodes' lobbies do in a cluster.
//! - Failed joins are counted for all hubs together ([`Shared::failed`]): an address that has
//!   spent its tries on one hub has spent them on all.
//! - Each address's open lobbies are counted for all hubs together
//!   ([`Shared::address_lobbies`]): `signal.max_lobbies_per_address` holds for a player whose
//!   quick plays open lobbies in several hubs.
//! - `signal.max_peers` and `signal.max_lobbies` count every hub's: each hub publishes how many
//!   it holds after each input and reads the others' before the next ([`Shared::census`]). Hubs
//!   admitting at the same moment may pass a limit by one each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::address_lobbies::AddressLobbies;
use super::ext::LobbyInfo;
use super::failed_joins::FailedJoins;
use super::hub::{Census, ConnId, Departure};
use super::queue::{Inbox, Input, now};
use super::remote::{Joining, joining};
use super::router::{Closing, Player, Routed, Router};
use super::shard;
use super::upstream::Upstream;
use crate::conn_cap::Source;

/// How often each hub publishes its listed lobbies to the others (when they changed), and reads
/// theirs (when any did).
pub const SHARE_PERIOD: Duration = Duration::from_millis(100);

/// What the hubs share.
pub struct Shared {
    /// Each hub's listed lobbies as it last published them, and how many times it has.
    lists: Mutex<Vec<(u64, Arc<Vec<LobbyInfo>>)>>,
    /// Failed joins of every hub, per address.
    failed: Mutex<FailedJoins>,
    /// Each hub's peers and lobbies, as it last published them.
    census: Vec<[AtomicUsize; 2]>,
    /// Open lobbies per creator's address, in every hub.
    pub address_lobbies: Arc<AddressLobbies>,
}

impl Shared {
    pub fn new(count: u32, failed_joins_per_minute: u32) -> Shared {
        Shared {
            lists: Mutex::new(vec![(0, Arc::default()); count as usize]),
            failed: Mutex::new(FailedJoins::new(failed_joins_per_minute)),
            census: (0..count).map(|_| Default::default()).collect(),
            address_lobbies: Arc::default(),
        }
    }

    /// Hub `index` holds these now.
    pub fn count(&self, index: u32, census: Census) {
        let [peers, lobbies] = &self.census[index as usize];
        peers.store(census.peers, Ordering::Relaxed);
        lobbies.store(census.lobbies, Ordering::Relaxed);
    }

    /// What the hubs other than `index` hold.
    pub fn census_except(&self, index: u32) -> Census {
        let others = self
            .census
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != index as usize);
        others.fold(Census::default(), |sum, (_, [peers, lobbies])| Census {
            peers: sum.peers + peers.load(Ordering::Relaxed),
            lobbies: sum.lobbies + lobbies.load(Ordering::Relaxed),
        })
    }

    /// Hub `index` lists `lobbies` now.
    pub fn publish(&self, index: u32, lobbies: Vec<LobbyInfo>) {
        let mut lists = self.lists.lock().unwrap();
        let (published, list) = &mut lists[index as usize];
        *published += 1;
        *list = Arc::new(lobbies);
    }

    /// What the hubs other than `index` list, if any has published since `seen` (each hub's
    /// count of publications, which this updates).
    pub fn others_since(&self, index: u32, seen: &mut [u64]) -> Option<Vec<LobbyInfo>> {
        let lists = self.lists.lock().unwrap();
        let mut counts = lists.iter().zip(seen.iter()).enumerate();
        if !counts.any(|(i, ((published, _), seen))| i != index as usize && published != seen) {
            return None;
        }
        for (seen, (published, _)) in seen.iter_mut().zip(lists.iter()) {
            *seen = *published;
        }
        let others = lists
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != index as usize);
        Some(others.flat_map(|(_, (_, l))| l.iter().cloned()).collect())
    }

    /// A join from `source` failed in one of the hubs.
    pub fn failed_join(&self, source: Source) {
        self.failed.lock().unwrap().failed(source, now());
    }

    /// Whether `source` may still try a join (the limit as configured now).
    fn allows(&self, source: Source, per_minute: u32) -> bool {
        let mut failed = self.failed.lock().unwrap();
        failed.set_per_minute(per_minute, now());
        failed.allows(source, now())
    }

    /// The hub of the best open lobby matching `filter` (the fullest; on a tie `here`, which
    /// needs no move), or the filter's own hub when none does.
    fn plays_on(&self, filter: &Map<String, Value>, here: usize) -> usize {
        let lists = self.lists.lock().unwrap();
        let in_order = std::iter::once(here).chain((0..lists.len()).filter(|&i| i != here));
        let best = in_order
            .flat_map(|i| lists[i].1.iter().map(move |l| (i, l)))
            .filter(|(_, l)| l.playable(filter))
            .fold(None, |best: Option<(usize, &LobbyInfo)>, next| match best {
                Some(b) if b.1.players >= next.1.players => Some(b),
                _ => Some(next),
            });
        match best {
            Some((i, _)) => i,
            None => shard::of_filter(filter, lists.len() as u32),
        }
    }
}

/// Sends each session to the hub of the lobby it joins.
pub struct ShardRouter {
    pub hubs: Vec<mpsc::Sender<Input>>,
    pub shared: Arc<Shared>,
}

/// The hub session `conn` starts in, of `count`.
pub fn home(conn: ConnId, count: usize) -> usize {
    (conn % count as u64) as usize
}

impl ShardRouter {
    fn count(&self) -> u32 {
        self.hubs.len() as u32
    }

    async fn decide(
        &self,
        player: &Player,
        frame: &str,
        outgoing: &Inbox,
    ) -> Result<Routed, Closing> {
        let source = Source::of(player.client.source);
        let here = player.hub;
        let to = match joining(frame) {
            Joining::No => return Ok(Routed::Later),
            Joining::Creates => shard::of_source(source, self.count()),
            Joining::Names(key) => {
                let to = shard::of_key(&key, self.count());
                if !self.shared.allows(source, player.failed_joins_per_minute) {
                    // Spent in other hubs: this one refuses the join, as it would its own.
                    let spent = Input::SpentElsewhere(source, now());
                    let _ = self.hubs[to].send(spent).await;
                }
                to
            }
            Joining::Resumes(key) => shard::of_key(&key, self.count()),
            Joining::Plays(filter) => self.shared.plays_on(&filter, here),
        };
        if to != here {
            self.switch(player, here, to, outgoing).await?;
        }
        let upstream = Upstream::Local(self.hubs[to].clone());
        Ok(Routed::Moved { hub: to, upstream })
    }

    /// Moves the player, who is in no lobby, from hub `from` to hub `to`: what
    /// `from` queued for it before letting go (a lobby list) is still sent first, and its join
    /// timeout still runs from when its socket opened.
    async fn switch(
        &self,
        player: &Player,
        from: usize,
        to: usize,
        outgoing: &Inbox,
    ) -> Result<(), Closing> {
        let conn = player.conn;
        let _ = self.hubs[from]
            .send(Input::Gone(conn, Departure::Left, now()))
            .await;
        outgoing.released().await;
        let outbox = outgoing.reopen();
        let connect = Input::Connect(conn, outbox, player.client, player.opened);
        self.hubs[to]
            .send(connect)
            .await
            .map_err(|_| Closing(super::hub::Reason::ShuttingDown))
    }
}

impl Router for ShardRouter {
    fn route<'a>(
        &'a self,
        player: &'a Player,
        frame: &'a str,
        outgoing: &'a Inbox,
    ) -> BoxFuture<'a, Result<Routed, Closing>> {
        self.decide(player, frame, outgoing).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lobby(name: &str) -> LobbyInfo {
        LobbyInfo {
            name: name.into(),
            code: "ABC234".into(),
            title: String::new(),
            public: true,
            mesh: true,
            players: 1,
            max_players: 0,
            password: false,
            sealed: false,
            data: Map::new(),
        }
    }

    #[test]
    fn a_hub_reads_the_others_lists_only_when_one_changed() {
        let shared = Shared::new(3, 10);
        let mut seen = [vec![0; 3], vec![0; 3], vec![0; 3]];
        assert_eq!(shared.others_since(0, &mut seen[0]), None);
        shared.publish(1, vec![lobby("b")]);
        // Its own publication is nothing new to hub 1.
        assert_eq!(shared.others_since(1, &mut seen[1]), None);
        assert_eq!(shared.others_since(0, &mut seen[0]), Some(vec![lobby("b")]));
        assert_eq!(shared.others_since(0, &mut seen[0]), None, "read already");
        shared.publish(2, vec![lobby("c")]);
        let names = |l: Vec<LobbyInfo>| l.into_iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(
            shared.others_since(0, &mut seen[0]).map(names),
            Some(vec!["b".into(), "c".into()])
        );
        assert_eq!(
            shared.others_since(1, &mut seen[1]).map(names),
            Some(vec!["c".to_string()])
        );
    }
}
