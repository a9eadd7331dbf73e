//! Where the cluster's Redis is: `cluster.redis` (a URL), or the master that Sentinels name
//! (`cluster.sentinels`, `cluster.sentinel_master`), asked again for each new connection so a
//! failover is followed without a restart.

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, RedisResult};
use tokio::sync::Mutex;

use crate::config;

pub enum RedisSource {
    Url(Client),
    Sentinel(Mutex<SentinelClient>),
}

impl RedisSource {
    pub fn new(settings: &config::Cluster) -> RedisResult<RedisSource> {
        let Some(master) = &settings.sentinel_master else {
            return Client::open(settings.redis.as_str()).map(RedisSource::Url);
        };
        let sentinels = settings.sentinels.iter().filter_map(|s| {
            let (host, port) = s.rsplit_once(':')?;
            let host = host.trim_matches(|c| c == '[' || c == ']');
            Some(ConnectionAddr::Tcp(host.to_string(), port.parse().ok()?))
        });
        let mut builder =
            SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)?;
        if let Some(p) = &settings.master_password {
            builder = builder.set_client_to_redis_password(p);
        }
        if let Some(p) = &settings.sentinel_password {
            builder = builder.set_client_to_sentinel_password(p);
        }
        Ok(RedisSource::Sentinel(Mutex::new(builder.build()?)))
    }

    /// A client for the master now (for Sentinel: the one they name at this moment).
    pub async fn client(&self) -> RedisResult<Client> {
        match self {
            RedisSource::Url(client) => Ok(client.clone()),
            RedisSource::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
        }
    }
}

/// The address a client connects to, to tell when the master moved.
pub fn address_of(client: &Client) -> String {
    client.get_connection_info().addr().to_string()
}
