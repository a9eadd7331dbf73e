//! The cluster as signalling sees it (`signal::remote::OtherNodes`): lobbies listed in the
//! directory, owners looked up. Envelopes go through [`super::transport`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::registry::Record;
use super::{Cluster, directory, failures, placement};
use crate::conn_cap::Source;
use crate::signal::failed_joins::Failures;
use crate::signal::remote::{OtherNodes, Owner, Seam, Unreachable};

impl OtherNodes for Cluster {
    fn listed(&self, keys: Vec<String>, open: bool) {
        {
            let mut owned = self.owned.lock().unwrap();
            for k in &keys {
                if open {
                    owned.insert(k.clone());
                } else {
                    owned.remove(k);
                }
            }
        }
        // Full: the next renewal claims what is owned; a release missed expires with its lease.
        let _ = self.listings.try_send((keys, open));
    }

    fn owner_of(
        &self,
        key: String,
        guesser: Option<Source>,
    ) -> BoxFuture<'static, Result<(Owner, Failures), Unreachable>> {
        let conn = self.conn.lock().unwrap().clone();
        let conn = conn.filter(|_| self.redis_up());
        if self.owned.lock().unwrap().contains(&key) && (guesser.is_none() || conn.is_none()) {
            // Redis down: this hub's own count still holds.
            return futures_util::future::ready(Ok((Owner::Here, Failures::default()))).boxed();
        }
        let Some(mut conn) = conn else {
            return futures_util::future::ready(Err(Unreachable)).boxed();
        };
        let owned = self.owned.lock().unwrap().contains(&key);
        let alive = self
            .state
            .lock()
            .unwrap()
            .others
            .iter()
            .map(Record::address)
            .collect::<Vec<_>>();
        async move {
            let (owner, failed) = match guesser {
                Some(source) => {
                    let (owner, values) =
                        directory::owner(&mut conn, &key, failures::keys(source)).await?;
                    (owner, failures::failures(source, values))
                }
                None => (
                    directory::owner(&mut conn, &key, []).await?.0,
                    Failures::default(),
                ),
            };
            let owner = match owner {
                _ if owned => Owner::Here,
                // Another live node's process: attach there. A dead one's, or a previous
                // process of this node, is nobody's.
                Some(owner) if alive.contains(&owner) => Owner::There(owner),
                _ => Owner::Nowhere,
            };
            Ok::<_, redis::RedisError>((owner, failed))
        }
        .map(|r| r.map_err(|_| Unreachable))
        .boxed()
    }

    fn failed_join(&self, source: Source) {
        let conn = self.conn.lock().unwrap().clone();
        let Some(mut conn) = conn.filter(|_| self.redis_up()) else {
            return;
        };
        // A task per failure: the hub limits failures per address before they get here.
        tokio::spawn(async move {
            let _ = failures::count(&mut conn, source).await;
        });
    }

    fn plays_on(&self, filter: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
        let s = self.state.lock().unwrap();
        if s.redis != super::Redis::Up {
            return None;
        }
        super::quick_play::node_for(filter, &s.own, &s.own_listed, &s.others, &s.listed)
    }

    fn creates_on(&self) -> Option<String> {
        let s = self.state.lock().unwrap();
        if !s.own.draining || s.redis != super::Redis::Up {
            return None;
        }
        let members: Vec<placement::Member> = s.others.iter().map(|r| r.member.clone()).collect();
        let chosen = placement::choose(&members, None)?;
        s.others
            .iter()
            .find(|r| r.member.node == chosen.node)
            .map(Record::address)
    }
}

impl Cluster {
    /// Directory keys another node holds (a code drawn on two nodes at once): the lobby is
    /// found by it only on its own node. Counted, the first one logged.
    pub(super) fn conflicts(&self, lost: Vec<String>) {
        if lost.is_empty() {
            return;
        }
        if self
            .directory_conflicts
            .fetch_add(lost.len() as u64, Ordering::Relaxed)
            == 0
        {
            log::warn!(
                "cluster: lobby {:?} is held by another node in the directory; players on other \
                 nodes cannot join it by that name or code (further ones are only counted, in \
                 rallypoint_cluster_directory_conflicts_total)",
                lost[0]
            );
        }
    }
}

/// The cluster as `Signal::new` takes it.
pub fn seam(cluster: &Arc<Cluster>) -> Seam {
    Seam {
        nodes: cluster.clone(),
        mailbox: cluster.clone(),
    }
}
