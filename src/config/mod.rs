//! The one TOML file that configures every part of rallypoint.
//!
//! The schema below is a contract: `config/rallypoint.toml` documents every key with its default,
//! tests parse that file and compare it with [`Config::default`], and keys are only ever added.
//! Loading reports errors with `file:line:col`, the key path and, for a misspelt key, the key that
//! was probably meant (see [`diagnostics`]); [`validate`] adds the checks that span several keys.

mod diagnostics;
pub mod units;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use diagnostics::ConfigError;
use units::{BitRate, ByteSize, Duration, PortRange};
pub use validate::check_acme_domain;

/// Where the packaged service keeps its configuration.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/rallypoint/rallypoint.toml";

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub web: Web,
    pub tls: Tls,
    pub signal: Signal,
    pub turn: Turn,
    pub proxy_protocol: ProxyProtocol,
    pub admin: Admin,
    /// Absent: this node alone, and no Redis anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
}

/// Publishing the game (`rallypoint deploy`, `rallypoint publish`) and the operator's API.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Operator tokens (each at least 32 characters): `Authorization: Bearer TOKEN` opens the
    /// publish API. Empty: no one can publish over the network.
    pub tokens: Vec<String>,
    /// The largest release a deploy or publish takes: the sum of its files' sizes, a sparse
    /// file counted in full; 0 = no limit.
    pub max_release_size: ByteSize,
    /// Wrong tokens one address (an IPv6 /64) may send a minute, in bursts of as many; over
    /// it, every request of the address gets 429 until its bucket refills.
    pub failed_tokens_per_minute: u32,
    /// A publish that has not been heard from for this long is abandoned and its uploaded
    /// files removed; until then an interrupted upload can resume.
    pub publish_idle_timeout: Duration,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            tokens: vec![],
            max_release_size: ByteSize(2 << 30),
            failed_tokens_per_minute: 10,
            publish_idle_timeout: secs(300),
        }
    }
}

/// Several nodes as one service, sharing state through Redis (the `cluster` module).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// `redis://[:password@]host[:port][/db]`, or `rediss://` for TLS (Redis or Valkey).
    pub redis: String,
    /// This node's name, unique in the cluster: the machine's host name unless set.
    pub node: String,
    /// A node that has not renewed its record for this long counts as gone; records are renewed
    /// every third of it.
    pub lease: Duration,
    /// Hands this node out for no new relaying; what it already serves goes on. Reloadable.
    pub draining: bool,
    /// Signalling bytes waiting to be sent to other nodes at most; a player whose frame would
    /// go over, from it or for it, is closed on its node (Redis too slow or unreachable).
    pub max_outbound_bytes: ByteSize,
    /// Redis Sentinels (`host:port`) that name the master; with them and `sentinel_master`,
    /// `redis` is not used: the nodes find the master through them and follow a failover.
    pub sentinels: Vec<String>,
    /// The master's name in the Sentinels' configuration (`sentinel monitor NAME ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_master: Option<String>,
    /// The Sentinels' own password (`requirepass` in their configuration), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_password: Option<String>,
    /// The master's (and replicas') password, if any, when found through Sentinel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_password: Option<String>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            redis: "redis://127.0.0.1:6379".into(),
            node: host_name(),
            lease: secs(10),
            draining: false,
            max_outbound_bytes: ByteSize(64 << 20),
            sentinels: vec![],
            sentinel_master: None,
            sentinel_password: None,
            master_password: None,
        }
    }
}

impl Cluster {
    /// The keys only a restart applies (all but `draining`).
    pub fn restart_part(&self) -> (&str, &str, Duration, ByteSize) {
        (&self.redis, &self.node, self.lease, self.max_outbound_bytes)
    }
}

/// The machine's host name ("rallypoint" if it has none).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rallypoint".into())
}

/// PROXY protocol headers from layer-4 load balancers (the `proxy_protocol` module).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyProtocol {
    /// TCP listeners, as written in web.listen, web.tls_listen, turn.listen or turn.tls_listen,
    /// whose connections from `trusted` start with a header.
    pub listeners: Vec<SocketAddr>,
    /// The load balancers' addresses.
    pub trusted: Vec<IpNet>,
    /// Time a trusted connection gets to send its header.
    pub header_timeout: Duration,
}

impl Default for ProxyProtocol {
    fn default() -> Self {
        ProxyProtocol {
            listeners: vec![],
            trusted: vec![],
            header_timeout: secs(5),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Public DNS name; used in TURN URLs and as the allowed WebSocket origin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub log_level: LogLevel,
    /// How long a stopping server lets open sessions finish.
    pub shutdown_grace: Duration,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            domain: None,
            log_level: LogLevel::Info,
            shutdown_grace: secs(10),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Web {
    /// Plain HTTP listeners.
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners; need `[tls]`.
    pub tls_listen: Vec<SocketAddr>,
    /// Which web listeners also take TURN connections (told apart by their first bytes).
    pub accept_turn: AcceptTurn,
    /// The folder holding the game's HTML5 export.
    pub root: PathBuf,
    pub cross_origin_isolation: CrossOriginIsolation,
    /// Open connections at most; more are closed at once.
    pub max_connections: u32,
    /// Connections at once from one address (an IPv6 /64); 0 = no cap per address.
    pub max_connections_per_source: u32,
    /// Time a client gets to send its request headers (and a keep-alive connection may idle).
    pub header_timeout: Duration,
    /// Request line and headers at most (HTTP/1.1), header list at most (HTTP/2); more is
    /// answered 431. Also what an HTTP/1.1 connection buffers of a response ahead of the client.
    pub max_header_size: ByteSize,
    /// Space for files compressed on the fly: unnamed files in systemd's `CacheDirectory` (else
    /// the temporary directory), copies up to 256 KiB in memory.
    pub compression_cache: ByteSize,
    /// `/api/ice`: "open" hands a relay credential to anyone who asks (within
    /// `ice_api_per_minute`), "off" answers 403 (players get lobby-bound credentials through the
    /// signalling extension instead).
    pub ice_api: IceApi,
    /// `/api/ice` answers a minute per address (an IPv6 /64), in bursts of as many; 0 = no limit.
    pub ice_api_per_minute: u32,
    /// Addresses allowed to read /metrics.
    pub metrics_allow: Vec<IpNet>,
    /// Serve the self-test page at `/_rallypoint/`.
    pub selftest: bool,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            listen: vec![addr("127.0.0.1:8080")],
            tls_listen: vec![],
            accept_turn: AcceptTurn::Tls,
            root: PathBuf::from("www"),
            cross_origin_isolation: CrossOriginIsolation::Auto,
            max_connections: 10_000,
            max_connections_per_source: 512,
            header_timeout: secs(10),
            max_header_size: ByteSize(16 << 10),
            compression_cache: ByteSize(256 << 20),
            ice_api: IceApi::Open,
            ice_api_per_minute: 30,
            metrics_allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            selftest: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IceApi {
    Open,
    Off,
}

/// TURN on the web ports (`web.accept_turn`): a connection whose first bytes are a STUN message
/// is the relay's, any other the web server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AcceptTurn {
    Off,
    /// On `web.tls_listen` (turns: on port 443, where restrictive networks let players out).
    Tls,
    /// On `web.tls_listen` and `web.listen`.
    All,
}

impl AcceptTurn {
    /// Whether web listeners of this kind (TLS or plain) take TURN connections.
    pub fn on(self, tls: bool) -> bool {
        match self {
            AcceptTurn::Off => false,
            AcceptTurn::Tls => tls,
            AcceptTurn::All => true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CrossOriginIsolation {
    /// Isolate a Godot export whose HTML says `GODOT_THREADS_ENABLED = true`.
    Auto,
    Always,
    Never,
}

/// Let's Encrypt's production directory, the default `tls.acme_directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain, used by `web.tls_listen` and `turn.tls_listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// PEM private key for `certificate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PathBuf>,
    /// Obtain and renew the certificate from an ACME CA (HTTP-01 on `web.listen`, or TLS-ALPN-01
    /// on `web.tls_listen` without one), instead of `certificate` and `private_key`.
    pub acme: bool,
    /// Names the ACME certificate covers; empty = `[server.domain]`.
    pub domains: Vec<String>,
    /// Contact the CA writes to about expiring certificates and problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_email: Option<String>,
    pub acme_directory: String,
    /// PEM root that the ACME directory's HTTPS certificate is checked against instead of the
    /// system's roots (for test CAs such as pebble).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_ca_root: Option<PathBuf>,
    /// Where the ACME account and certificates are kept; unset = `$STATE_DIRECTORY` (systemd's
    /// StateDirectory) or `./state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_state: Option<PathBuf>,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            certificate: None,
            private_key: None,
            acme: false,
            domains: vec![],
            acme_email: None,
            acme_directory: LETS_ENCRYPT.into(),
            acme_ca_root: None,
            acme_state: None,
        }
    }
}

impl Tls {
    /// The names an ACME certificate is ordered for, lower-cased as CAs issue them (so a stored
    /// certificate is recognised whatever the case in the file).
    pub fn acme_domains(&self, server: &Server) -> Vec<String> {
        let names = if self.domains.is_empty() {
            server.domain.as_slice()
        } else {
            &self.domains
        };
        names.iter().map(|d| d.to_ascii_lowercase()).collect()
    }

    pub fn acme_state_dir(&self) -> PathBuf {
        self.acme_state.clone().unwrap_or_else(|| {
            std::env::var_os("STATE_DIRECTORY")
                // systemd may list several directories, colon-separated.
                .and_then(|v| v.to_str()?.split(':').next().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("state"))
        })
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Signal {
    /// WebSocket endpoint on the web listeners.
    pub path: String,
    /// Origins allowed to open the WebSocket besides the page's own site (its host and
    /// `server.domain`, always allowed); "*" = any.
    pub allowed_origins: Vec<String>,
    pub max_peers: u32,
    pub max_lobbies: u32,
    /// 0 = unlimited.
    pub max_lobby_members: u32,
    pub max_message_size: ByteSize,
    pub join_timeout: Duration,
    pub seal_close_delay: Duration,
    pub ping_interval: Duration,
    /// Messages per second one connection may send on average (0 = unlimited), and at once.
    pub message_rate: u32,
    pub message_burst: u32,
    /// A peer whose socket takes longer than this to accept one frame is disconnected.
    pub send_timeout: Duration,
    /// Bytes waiting for one peer at most; a peer that lets more pile up is disconnected.
    pub max_queued_bytes: ByteSize,
    /// Extension clients: time allowed outside a lobby (browsing the list) before being closed.
    pub browse_timeout: Duration,
    /// Extension clients: how long a dropped peer's place is kept for a resume; 0 = not kept.
    pub resume_grace: Duration,
    /// Frames kept for a dropped peer meanwhile; one more gives its place up.
    pub max_resume_queue: u32,
    /// Bytes of those frames at most, likewise.
    pub max_resume_queue_bytes: ByteSize,
    /// Joins a second into one lobby (bursts of as many); more are refused "Lobby is busy,
    /// try again". 0 = unlimited.
    pub lobby_joins_per_second: u32,
    /// Open lobbies created from one address (an IPv6 /64) at once, by CREATE or quick play, in
    /// all hubs together (in a cluster, on each node); 0 = unlimited.
    pub max_lobbies_per_address: u32,
    /// Distinct addresses each lobby member may announce to the relay (in its candidates and
    /// SDP); more are not announced. 0 = unlimited.
    pub max_addresses_per_member: u32,
    /// Characters of a lobby title at most.
    pub max_title: u32,
    /// Bytes of a lobby's data (as JSON) at most.
    pub max_lobby_data: ByteSize,
    /// Lobbies per page of the lobby list.
    pub list_page_size: u32,
    /// Lobby-list queries per second per connection (bursts of 5); 0 = unlimited.
    pub list_rate: u32,
    /// Failed joins (unknown lobby or code, wrong password) per minute per address (an IPv6
    /// /64; 16 times as many per /48), in bursts of as many, on all nodes of a cluster
    /// together; 0 = unlimited.
    pub failed_joins_per_minute: u32,
    /// Hubs the lobbies are spread over, each its own task (a lobby lives in one); more than
    /// one lets signalling use more than one core's worth of hub work. Not with `[cluster]`.
    pub shards: u32,
}

impl Default for Signal {
    fn default() -> Self {
        Signal {
            path: "/ws".into(),
            allowed_origins: vec![],
            max_peers: 4096,
            max_lobbies: 1024,
            max_lobby_members: 0,
            max_message_size: ByteSize(64 * 1024),
            join_timeout: secs(1),
            seal_close_delay: secs(10),
            ping_interval: secs(10),
            message_rate: 50,
            message_burst: 200,
            send_timeout: secs(10),
            max_queued_bytes: ByteSize(1024 * 1024),
            browse_timeout: secs(300),
            resume_grace: secs(20),
            max_resume_queue: 256,
            max_resume_queue_bytes: ByteSize(256 * 1024),
            lobby_joins_per_second: 20,
            max_lobbies_per_address: 16,
            max_addresses_per_member: 16,
            max_title: 64,
            max_lobby_data: ByteSize(1024),
            list_page_size: 50,
            list_rate: 2,
            failed_joins_per_minute: 10,
            shards: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Turn {
    /// UDP and TCP listeners.
    pub listen: Vec<SocketAddr>,
    /// TURN over TLS listeners; need `[tls]`.
    pub tls_listen: Vec<SocketAddr>,
    pub realm: String,
    /// Address relay sockets bind to and advertise.
    pub relay_ip: RelayIp,
    /// Advertised instead of `relay_ip` behind a 1:1 NAT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ip: Option<IpAddr>,
    pub relay_ports: PortRange,
    /// TURN REST shared secrets: all verify, the first mints.
    pub secrets: Vec<String>,
    pub credential_ttl: Duration,
    /// Allocation lifetime when the client asks for less (RFC 8656's default: 600 s), and the
    /// most a client gets.
    pub allocation_lifetime: Duration,
    pub max_allocation_lifetime: Duration,
    pub allow_peers: Vec<IpNet>,
    pub deny_peers: Vec<IpNet>,
    pub max_allocations: u32,
    pub max_allocations_per_user: u32,
    /// Allocations from one client address (an IPv6 /64) at once, whatever its credentials;
    /// 0 = unlimited.
    pub max_allocations_per_address: u32,
    /// Relayed bits a second per allocation, both ways together (bursts of 200 ms beyond);
    /// 0 = unlimited.
    pub max_bandwidth_per_allocation: BitRate,
    /// Answers a second, in all, to requests not authenticated (each source also gets at most
    /// 200 a second).
    pub max_unauthenticated_answers: u32,
    /// TURN over TCP and TLS connections at once, in all and from one address (an IPv6 /64).
    pub max_stream_connections: u32,
    pub max_stream_connections_per_source: u32,
    /// A TCP or TLS client that has no allocation this long after connecting is disconnected.
    pub stream_auth_timeout: Duration,
    /// Static long-term credentials, name = password.
    pub users: BTreeMap<String, String>,
}

impl Default for Turn {
    fn default() -> Self {
        Turn {
            listen: vec![addr("127.0.0.1:3478")],
            tls_listen: vec![],
            realm: "rallypoint".into(),
            relay_ip: RelayIp::Auto,
            external_ip: None,
            relay_ports: PortRange {
                first: 49152,
                last: 65535,
            },
            secrets: vec![],
            credential_ttl: secs(24 * 3600),
            allocation_lifetime: secs(600),
            max_allocation_lifetime: secs(3600),
            users: BTreeMap::new(),
            allow_peers: vec![],
            deny_peers: vec![],
            max_allocations: 10_000,
            max_allocations_per_user: 10,
            max_allocations_per_address: 128,
            max_bandwidth_per_allocation: BitRate {
                bits_per_second: 10_000_000,
            },
            max_unauthenticated_answers: 50_000,
            max_stream_connections: 4096,
            max_stream_connections_per_source: 64,
            stream_auth_timeout: secs(10),
        }
    }
}

/// `"auto"` or a fixed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum RelayIp {
    /// The TURN listen address when it is a specific one, else the address of the interface
    /// that holds the default route.
    Auto,
    Fixed(IpAddr),
}

impl TryFrom<String> for RelayIp {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "auto" {
            return Ok(RelayIp::Auto);
        }
        s.parse().map(RelayIp::Fixed).map_err(|_| {
            format!(
                "invalid relay address {s:?}; write \"auto\" or an IP address like \"203.0.113.7\""
            )
        })
    }
}

impl From<RelayIp> for String {
    fn from(r: RelayIp) -> String {
        r.to_string()
    }
}

impl fmt::Display for RelayIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayIp::Auto => f.write_str("auto"),
            RelayIp::Fixed(ip) => ip.fmt(f),
        }
    }
}

fn secs(n: u64) -> Duration {
    Duration(std::time::Duration::from_secs(n))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("built-in address")
}

const MASK: &str = "<hidden>";

/// `[::]:P` means every address, IPv4 included, as it does for most servers; TURN sockets are
/// IPv6 only (a player must see addresses of its own family), so `0.0.0.0:P` is added before
/// it unless the list has it already.
pub fn with_ipv4_twins(listen: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::with_capacity(listen.len() + 1);
    for addr in listen {
        let twin = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        if addr.is_ipv6() && addr.ip().is_unspecified() && !listen.contains(&twin) {
            out.push(twin);
        }
        out.push(*addr);
    }
    out
}

impl Config {
    /// Parses and validates `text`; `file` names it in error messages.
    pub fn from_toml(text: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
        match Config::from_toml_partly(text, file, |_| {}) {
            (Some(config), errors) if errors.is_empty() => Ok(config),
            (_, errors) => Err(errors),
        }
    }

    /// Every problem of the file at once (syntax stops the reading; each wrong type, unknown
    /// key and cross-field problem is reported), with the configuration the rest of the file
    /// gives (defaults where keys were wrong), for checks of the files it names. `adjust`
    /// changes it before the cross-field checks (the command line's overrides).
    pub fn from_toml_partly(
        text: &str,
        file: &str,
        adjust: impl FnOnce(&mut Config),
    ) -> (Option<Config>, Vec<ConfigError>) {
        let source = diagnostics::Source::new(text, file);
        let (config, mut errors) = source.deserialize_all::<Config>();
        let Some(mut config) = config else {
            return (None, errors);
        };
        adjust(&mut config);
        errors.extend(validate::check(&config, &source));
        config.turn.listen = with_ipv4_twins(&config.turn.listen);
        config.turn.tls_listen = with_ipv4_twins(&config.turn.tls_listen);
        (Some(config), errors)
    }

    /// The keys that differ in `new` but only take effect at a restart: listeners are bound,
    /// and the connection caps, header limits, compression cache and relay sockets are set up,
    /// once at start. Everything else applies on reload.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let (a, b) = (self, new);
        [
            ("web.listen", a.web.listen != b.web.listen),
            ("web.tls_listen", a.web.tls_listen != b.web.tls_listen),
            (
                "web.max_connections",
                a.web.max_connections != b.web.max_connections,
            ),
            (
                "web.max_connections_per_source",
                a.web.max_connections_per_source != b.web.max_connections_per_source,
            ),
            (
                "web.max_header_size",
                a.web.max_header_size != b.web.max_header_size,
            ),
            (
                "web.header_timeout",
                a.web.header_timeout != b.web.header_timeout,
            ),
            (
                "web.compression_cache",
                a.web.compression_cache != b.web.compression_cache,
            ),
            ("turn.listen", a.turn.listen != b.turn.listen),
            ("turn.tls_listen", a.turn.tls_listen != b.turn.tls_listen),
            ("turn.relay_ports", a.turn.relay_ports != b.turn.relay_ports),
            ("turn.relay_ip", a.turn.relay_ip != b.turn.relay_ip),
            (
                "turn.max_stream_connections",
                a.turn.max_stream_connections != b.turn.max_stream_connections,
            ),
            (
                "turn.max_stream_connections_per_source",
                a.turn.max_stream_connections_per_source
                    != b.turn.max_stream_connections_per_source,
            ),
            (
                "turn.stream_auth_timeout",
                a.turn.stream_auth_timeout != b.turn.stream_auth_timeout,
            ),
            ("proxy_protocol", a.proxy_protocol != b.proxy_protocol),
            ("signal.shards", a.signal.shards != b.signal.shards),
            (
                "cluster",
                a.cluster.as_ref().map(Cluster::restart_part)
                    != b.cluster.as_ref().map(Cluster::restart_part),
            ),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        match Config::load_partly(path, |_| {}) {
            (Some(config), errors) if errors.is_empty() => Ok(config),
            (_, errors) => Err(errors),
        }
    }

    /// As [`Config::from_toml_partly`], for the file at `path`.
    pub fn load_partly(
        path: &Path,
        adjust: impl FnOnce(&mut Config),
    ) -> (Option<Config>, Vec<ConfigError>) {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_toml_partly(&text, &path.display().to_string(), adjust),
            Err(e) => (
                None,
                vec![ConfigError::unlocated(
                    "",
                    format!("cannot read {}: {e}", path.display()),
                )],
            ),
        }
    }

    /// The keys whose values differ in `new` (dotted, sorted; a list or a map of users is one
    /// key): what a reload changed. Only names, never values: a secret may be among them.
    pub fn changed_keys(&self, new: &Config) -> Vec<String> {
        let as_value = |c: &Config| toml::Value::try_from(c).expect("config serialises");
        let mut changed = Vec::new();
        differences("", &as_value(self), &as_value(new), &mut changed);
        changed.sort();
        changed
    }

    /// The effective configuration as TOML, with every secret and password replaced.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        for s in &mut masked.turn.secrets {
            *s = MASK.into();
        }
        for p in masked.turn.users.values_mut() {
            *p = MASK.into();
        }
        for t in &mut masked.admin.tokens {
            *t = MASK.into();
        }
        if let Some(cluster) = &mut masked.cluster {
            for p in [&mut cluster.sentinel_password, &mut cluster.master_password]
                .into_iter()
                .flatten()
            {
                *p = MASK.into();
            }
        }
        if let Some(cluster) = &mut masked.cluster
            && let Ok(mut url) = url::Url::parse(&cluster.redis)
        {
            // A placeholder URLs take as it is, then the mask (which they would escape).
            if url.password().is_some() && url.set_password(Some("MASK")).is_ok() {
                cluster.redis = String::from(url).replacen(":MASK@", &format!(":{MASK}@"), 1);
            }
        }
        toml::to_string(&masked).expect("config serialises")
    }
}

/// Adds to `out` the dotted keys under `prefix` where `a` and `b` differ.
fn differences(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    let key = |k: &str| match prefix {
        "" => k.to_string(),
        p => format!("{p}.{k}"),
    };
    match (a, b) {
        // Sections (not `turn.users`, whose names are its values).
        (toml::Value::Table(x), toml::Value::Table(y)) if prefix != "turn.users" => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => differences(&key(k), va, vb, out),
                    None => out.push(key(k)),
                }
            }
            out.extend(y.keys().filter(|k| !x.contains_key(*k)).map(|k| key(k)));
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotated_default_file_equals_built_in_defaults() {
        let text = include_str!("../../config/rallypoint.toml");
        let parsed = Config::from_toml(text, "config/rallypoint.toml").unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn masked_output_parses_back_and_hides_secrets() {
        let mut c = Config::default();
        c.turn.secrets = vec!["a-very-secret-secret".into()];
        c.turn
            .users
            .insert("alice".into(), "hunter2-password".into());
        c.server.domain = Some("game.example.org".into());
        c.turn.max_bandwidth_per_allocation = "2Mbit/s".parse().unwrap();
        c.cluster = Some(Cluster {
            redis: "rediss://:hunter2-redis@redis.internal:6380/2".into(),
            ..Cluster::default()
        });
        let text = c.to_masked_toml();
        assert!(
            !text.contains("a-very-secret-secret") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(
            text.contains("redis = \"rediss://:<hidden>@redis.internal:6380/2\""),
            "{text}"
        );
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.turn.users["alice"], MASK);
        assert_eq!(back.server.domain, c.server.domain);
        assert_eq!(
            back.turn.max_bandwidth_per_allocation,
            c.turn.max_bandwidth_per_allocation
        );
    }

    #[test]
    fn an_empty_file_means_the_defaults() {
        assert_eq!(
            Config::from_toml("", "empty.toml").unwrap(),
            Config::default()
        );
    }
}
