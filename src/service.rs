//! The process lifecycle around the services: bind, start, tell systemd, reload on SIGHUP, drain
//! and stop on SIGTERM/SIGINT.
//!
//! systemd protocol (sd_notify): `READY=1` only after every listener is bound; `RELOADING=1` then
//! `READY=1` around a reload, whether the new file was applied or refused; `STOPPING=1` on stop;
//! `WATCHDOG=1` at half of `WATCHDOG_USEC`; `STATUS=` lines a person reads in `systemctl status`.
//! The READY status names the bound addresses (`web=127.0.0.1:8080 turn=...`), which is also how
//! tests find ephemeral ports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::acme::{self, Acme};
use crate::admin::{self, Admin};
use crate::cluster::{self, Cluster};
use crate::config::{Config, ConfigError};
use crate::conn_cap::ConnCap;
use crate::listeners::{BindError, Listeners};
use crate::proxy_protocol::Proxies;
use crate::signal::{LobbyRelay, Signal};
use crate::tls::{CertificateError, Certificates};
use crate::{logging, metrics, turn, web};

/// Where the running configuration comes from, and so what SIGHUP re-reads, with the command
/// line's overrides (`--listen`, `--turn-listen`, `--root`) applied on top of every load.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// The file; `None` for the built-in development defaults (SIGHUP has nothing to re-read).
    pub file: Option<PathBuf>,
    /// Replaces `web.listen` when not empty.
    pub web_listen: Vec<SocketAddr>,
    /// Replaces `turn.listen` when not empty.
    pub turn_listen: Vec<SocketAddr>,
    /// `--domain`: sets `server.domain` and `tls.acme`; without a file, also the public ports.
    pub domain: Option<String>,
    /// Replaces `web.root`.
    pub web_root: Option<PathBuf>,
}

#[derive(Debug)]
pub enum StartError {
    Config(Vec<ConfigError>),
    /// The `[tls]` files are readable but unusable (not a certificate, key does not match).
    Tls(CertificateError),
    Bind(BindError),
    Io(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
            StartError::Tls(e) => e.fmt(f),
            StartError::Bind(e) => e.fmt(f),
            StartError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        StartError::Io(e)
    }
}

/// How often free memory is handed back to the system.
const TRIM_PERIOD: Duration = Duration::from_secs(10);

/// Runs every service until SIGTERM or SIGINT, then drains them for `server.shutdown_grace`.
pub async fn run(source: ConfigSource) -> Result<(), StartError> {
    // Handlers first: SIGHUP's default action would kill a process that is still starting.
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    let mut config = load(&source).map_err(StartError::Config)?;
    logging::init(config.server.log_level);
    raise_open_files_limit();
    let generated_secret = (config.turn.secrets.is_empty() && config.turn.users.is_empty()).then(|| {
        let secret = crate::random::secret();
        log::warn!(
            "no turn.secrets or turn.users configured; generated the TURN secret {secret} for this run \
             (set turn.secrets to keep credentials valid across restarts)"
        );
        secret
    });
    add_generated_secret(&mut config, generated_secret.as_deref());

    let certificates = Arc::new(Certificates::default());
    certificates.load(&config.tls).map_err(StartError::Tls)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let listeners = Listeners::bind(&config, workers).map_err(StartError::Bind)?;
    let status = listening_status(&listeners);
    let bound = |ls: &[tokio::net::TcpListener]| {
        ls.iter()
            .filter_map(|l| l.local_addr().ok())
            .collect::<Vec<_>>()
    };
    let turn_addresses = turn::TurnAddresses {
        listen: bound(&listeners.turn_tcp),
        tls_listen: bound(&listeners.turn_tls),
        web_listen: bound(&listeners.web),
        web_tls_listen: bound(&listeners.web_tls),
    };
    let warnings = turn::addresses::advertised_address_warnings(&config);
    for warning in warnings.iter().chain(&web::root_warnings(&config)) {
        log::warn!("{warning}");
    }
    for l in &listeners.web {
        log::info!("serving {}", served_at("http", l.local_addr()?));
    }
    for l in &listeners.web_tls {
        log::info!("serving {}", served_at("https", l.local_addr()?));
    }
    if let (Some(domain), false) = (&config.server.domain, listeners.web_tls.is_empty()) {
        let port = match listeners.web_tls[0].local_addr()?.port() {
            443 => String::new(),
            p => format!(":{p}"),
        };
        log::info!("the game: https://{domain}{port}/");
    }
    if let Some(page) = selftest_url(&config, &listeners) {
        log::info!("check this deployment from a browser: {page}");
    }

    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut registry = metrics::registry();
    let proxies = Proxies::new(&config_rx.borrow(), listeners.proxy_protocol.clone());
    proxies.register(&mut registry);
    let turn_sockets = turn::Sockets {
        udp: listeners.turn_udp,
        tcp: listeners.turn_tcp,
        tls: listeners.turn_tls,
    };
    let (turn_status, relay) = turn::start(
        turn_sockets,
        certificates.clone(),
        proxies.clone(),
        config_rx.clone(),
        shutdown.clone(),
        &mut registry,
    );
    tasks.spawn(relay);
    let hub_relay = Arc::new(HubRelay {
        turn: turn_status.clone(),
        config: config_rx.clone(),
        addresses: turn_addresses.clone(),
    });
    // The cluster first: the hub is built knowing it (and the cluster's tasks, below, the hub).
    let cluster = config_rx
        .borrow()
        .cluster
        .as_ref()
        .map(|settings| Cluster::new(settings, turn_status.clone()));
    let (signal, hub) = Signal::new(
        config_rx.clone(),
        shutdown.clone(),
        &mut registry,
        hub_relay,
        cluster.as_ref().map(cluster::seam),
    );
    tasks.spawn(hub);
    let acme = Arc::new(Acme::default());
    tasks.spawn(acme::run(
        acme.clone(),
        certificates.clone(),
        config_rx.clone(),
        shutdown.clone(),
    ));
    let web_settings = config_rx.borrow().web.clone();
    let compression = Arc::new(web::CompressionCache::new(
        web::compression_dir(),
        web_settings.compression_cache.0 as usize,
    ));
    let connections = ConnCap::new(
        web_settings.max_connections as usize,
        web_settings.max_connections_per_source as usize,
        ("web.max_connections", "web.max_connections_per_source"),
    );
    let ice_quota = Arc::new(web::IceQuota::default());
    let admin = Arc::new(Admin::new(crate::random::Random::os().bytes()));
    admin::register_metrics(&mut registry, admin.clone());
    tasks.spawn(admin_ticks(
        admin.clone(),
        signal.clone(),
        turn_status.clone(),
        config_rx.clone(),
        shutdown.clone(),
    ));
    metrics::process::register_build_info(&mut registry);
    web::register_metrics(
        &mut registry,
        certificates.clone(),
        connections.clone(),
        compression.clone(),
        ice_quota.clone(),
    );
    if let Some(cluster) = &cluster {
        cluster::register_metrics(&mut registry, cluster.clone(), signal.clone());
        let addresses = turn_addresses.clone();
        tasks.spawn(cluster::run(
            cluster.clone(),
            signal.clone(),
            config_rx.clone(),
            move |config: &Config| turn::turn_urls(config, &addresses),
            shutdown.clone(),
        ));
    }
    let routes = Arc::new(web::Routes {
        signal,
        metrics: registry,
        turn: turn_status.clone(),
        cluster,
        turn_addresses,
        https_port: bound(&listeners.web_tls).first().map(|a| a.port()),
        certificates: certificates.clone(),
        acme: acme.clone(),
        isolation: Default::default(),
        file_cache: Default::default(),
        compression,
        connections,
        ice_quota,
        admin,
    });
    tasks.spawn(web::serve(
        listeners.web,
        listeners.web_tls,
        config_rx.clone(),
        routes,
        turn_status.stream_entry(),
        proxies,
        shutdown.clone(),
    ));

    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    log::info!("rallypoint {} ready: {status}", env!("CARGO_PKG_VERSION"));
    let watchdog = start_watchdog();

    // Memory freed after a spike (a burst of players, an attack) goes back to the system.
    let mut trim = tokio::time::interval(TRIM_PERIOD);
    loop {
        tokio::select! {
            // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
            _ = trim.tick() => unsafe { libc::malloc_trim(0); },
            _ = hangup.recv() => reload(&source, &config_tx, &certificates, generated_secret.as_deref(), &status),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }

    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    let grace = Duration::from(config_tx.borrow().server.shutdown_grace);
    log::info!(
        "stopping; letting open connections finish for up to {}",
        humantime::format_duration(grace)
    );
    shutdown.cancel();
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        log::warn!("grace period over; closing the remaining connections");
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    Ok(())
}

pub fn load(source: &ConfigSource) -> Result<Config, Vec<ConfigError>> {
    if let Some(domain) = &source.domain {
        crate::config::check_acme_domain(domain)
            .map_err(|e| vec![ConfigError::unlocated("--domain", e)])?;
    }
    let Some(path) = &source.file else {
        let mut config = Config::default();
        source.apply(&mut config);
        return Ok(config);
    };
    // The overrides go in before the cross-field checks: `--domain` makes a file with
    // `web.tls_listen` and no certificate whole.
    match Config::load_partly(path, |c| source.apply(c)) {
        (Some(config), errors) if errors.is_empty() => Ok(config),
        (partly, mut errors) => {
            // Every mistake at once: the certificate files what is left names, too.
            let files_named = errors.iter().any(|e| e.key.starts_with("tls."));
            if let Some(c) = partly.filter(|_| !files_named) {
                let now = std::time::SystemTime::now();
                let (files, _) = crate::tls::check_files(&c.tls, c.server.domain.as_deref(), now);
                errors.extend(files.into_iter().map(|e| ConfigError::unlocated("", e)));
            }
            Err(errors)
        }
    }
}

impl ConfigSource {
    /// The command line's overrides, on top of the file or the defaults.
    fn apply(&self, config: &mut Config) {
        if let Some(domain) = &self.domain {
            for_domain(config, domain, self.file.is_none());
        }
        if !self.web_listen.is_empty() {
            config.web.listen = self.web_listen.clone();
        }
        if !self.turn_listen.is_empty() {
            config.turn.listen = crate::config::with_ipv4_twins(&self.turn_listen);
        }
        if let Some(root) = &self.web_root {
            config.web.root = root.clone();
        }
    }
}

/// `rallypoint --domain NAME`: HTTPS for `domain` with a certificate from the ACME CA
/// (`tls.acme`), and, when no file says otherwise (`public`), on the ports players reach: HTTP
/// on 80 (for HTTP-01 and the redirect), HTTPS and TURN over TLS on 443, STUN/TURN on 3478, on
/// every address (IPv6 too, where the machine has it).
fn for_domain(config: &mut Config, domain: &str, public: bool) {
    config.server.domain = Some(domain.to_string());
    config.tls.acme = true;
    if public {
        let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
        let every = |port: u16| -> Vec<SocketAddr> {
            let v6 = ipv6.then(|| SocketAddr::from(([0u16; 8], port)));
            std::iter::once(SocketAddr::from(([0, 0, 0, 0], port)))
                .chain(v6)
                .collect()
        };
        config.web.listen = every(80);
        config.web.tls_listen = every(443);
        config.turn.listen = crate::config::with_ipv4_twins(&every(3478));
    }
}

/// Where a web listener on `addr` can be opened: itself, or for every address (0.0.0.0, [::]),
/// this machine's address toward the network and loopback, which a browser can open.
fn served_at(scheme: &str, addr: SocketAddr) -> String {
    if !addr.ip().is_unspecified() {
        return format!("{scheme}://{addr}/");
    }
    let port = addr.port();
    let here = SocketAddr::new(turn::addresses::local_address_for(addr), port);
    let loopback = SocketAddr::new(
        match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        },
        port,
    );
    format!("{scheme}://{here}/ and {scheme}://{loopback}/ (listening on {addr}: every address)")
}

/// The self-test page's URL as a browser elsewhere would open it: on the first HTTPS listener
/// if there is one, by `server.domain` when set (else the address, a wildcard's as the
/// interface holding the default route); `None` with `web.selftest = false`.
fn selftest_url(config: &Config, listeners: &Listeners) -> Option<String> {
    if !config.web.selftest {
        return None;
    }
    let (scheme, default_port, listener) = match listeners.web_tls.first() {
        Some(l) => ("https", 443, l),
        None => ("http", 80, listeners.web.first()?),
    };
    let addr = listener.local_addr().ok()?;
    let host = match &config.server.domain {
        Some(domain) => domain.clone(),
        None => match turn::addresses::local_address_for(addr) {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    let port = match addr.port() {
        p if p == default_port => String::new(),
        p => format!(":{p}"),
    };
    Some(format!("{scheme}://{host}{port}/_rallypoint/"))
}

/// A config without any credential source gets the secret generated at start, so credentials
/// minted before a reload stay valid after it.
fn add_generated_secret(config: &mut Config, generated: Option<&str>) {
    if let Some(secret) = generated
        && config.turn.secrets.is_empty()
        && config.turn.users.is_empty()
    {
        config.turn.secrets.push(secret.to_string());
    }
}

fn reload(
    source: &ConfigSource,
    config_tx: &watch::Sender<Arc<Config>>,
    certificates: &Certificates,
    generated: Option<&str>,
    status: &str,
) {
    notify_reloading();
    if source.file.is_none() {
        log::info!("running on built-in defaults: no configuration file to re-read");
        notify(&[NotifyState::Ready, NotifyState::Status(status)]);
        return;
    }
    // Certificates are part of the configuration: unusable ones refuse the whole reload.
    let loaded = load(source).and_then(|new| match certificates.load(&new.tls) {
        Ok(()) => Ok(new),
        Err(e) => Err(vec![ConfigError::unlocated("tls", e.to_string())]),
    });
    match loaded {
        Ok(mut new) => {
            add_generated_secret(&mut new, generated);
            let old = config_tx.borrow().clone();
            for key in old.restart_only_changes(&new) {
                log::warn!(
                    "{key} changed; it applies at the next restart (systemctl restart rallypoint), \
                     until then the old value stays in force"
                );
            }
            if !logging::set_level(new.server.log_level)
                && old.server.log_level != new.server.log_level
            {
                log::info!("server.log_level changed, but RUST_LOG overrides it");
            }
            for warning in web::root_warnings(&new) {
                log::warn!("{warning}");
            }
            let changed = old.changed_keys(&new);
            config_tx.send_replace(Arc::new(new));
            match changed.is_empty() {
                true => log::info!("configuration reloaded: nothing changed"),
                false => log::info!("configuration reloaded: changed {}", changed.join(", ")),
            }
        }
        Err(errors) => {
            for e in &errors {
                log::error!("{e}");
            }
            log::error!(
                "reload refused: the new configuration has {} error(s); still running on the previous one",
                errors.len()
            );
        }
    }
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

fn notify_reloading() {
    let mut states = vec![NotifyState::Reloading];
    // systemd ≥ 253 matches the reload to its request by this timestamp.
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        log::warn!("cannot notify systemd: {e}");
    }
}

/// Every allocation, TCP client and WebSocket is a descriptor: lift the soft limit (often 1024)
/// to the hard one, which the administrator (or systemd's LimitNOFILE) sets.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let before = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                log::debug!(
                    "open files limit raised from {before} to {}",
                    limit.rlim_max
                );
            }
        }
    }
    if limit.rlim_cur < 4096 {
        log::warn!(
            "at most {} open files: that caps players and allocations; raise LimitNOFILE",
            limit.rlim_cur
        );
    }
}

/// Pings the systemd watchdog at half its period, when one is configured.
fn start_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let period = Duration::from_micros(usec) / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    }))
}

/// `web=ADDR ... turn=ADDR ...`: what `systemctl status` shows and tests parse.
fn listening_status(l: &Listeners) -> String {
    let mut parts = Vec::new();
    let groups = [
        ("web", &l.web),
        ("web_tls", &l.web_tls),
        ("turn", &l.turn_tcp),
        ("turn_tls", &l.turn_tls),
    ];
    for (name, sockets) in groups {
        for s in sockets {
            if let Ok(a) = s.local_addr() {
                parts.push(format!("{name}={a}"));
            }
        }
    }
    format!("listening {}", parts.join(" "))
}

/// The relay as the signalling hub reaches it: lobby events to the TURN core, and credentials
/// bound to a lobby minted with the first `turn.secrets` entry, as `/api/ice` mints open ones.
struct HubRelay {
    turn: turn::Status,
    config: watch::Receiver<Arc<Config>>,
    addresses: turn::TurnAddresses,
}

impl LobbyRelay for HubRelay {
    fn lobby_event(&self, event: crate::credentials::LobbyEvent) {
        self.turn.lobby_event(event);
    }

    fn ice_servers(&self, user: &str) -> serde_json::Value {
        let config = self.config.borrow().clone();
        let Some(secret) = config.turn.secrets.first() else {
            // Static users only: no credentials to hand out.
            return serde_json::json!({"iceServers": [], "expires": 0});
        };
        let ttl = config.turn.credential_ttl.0;
        let credential = crate::credentials::mint(secret, user, ttl, std::time::SystemTime::now());
        let mut servers = turn::ice_servers(&config, &self.addresses, &credential);
        servers["expires"] = credential.expires.into();
        servers
    }
}

/// Every [`admin::SAMPLE_PERIOD`]: a sample for the dashboard's graph, and silent publishes
/// abandoned (`admin.publish_idle_timeout`) with their files, also when no request comes.
async fn admin_ticks(
    admin: Arc<Admin>,
    signal: Arc<Signal>,
    turn: turn::Status,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    let relayed = |t: &turn::Snapshot| t.traffic.to_peer_bytes + t.traffic.to_client_bytes;
    let mut every = tokio::time::interval(admin::SAMPLE_PERIOD);
    let mut last = (relayed(&turn.snapshot()), std::time::Instant::now());
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let t = turn.snapshot();
        let now = (relayed(&t), std::time::Instant::now());
        let secs = now.1.duration_since(last.1).as_secs_f64().max(0.001);
        admin.record(admin::Sample {
            at: admin::unix_now(),
            players: signal.snapshot().peers,
            allocations: t.allocations,
            relay_bps: (now.0.saturating_sub(last.0) as f64 * 8.0 / secs) as u64,
        });
        last = now;
        let config = config.borrow().clone();
        admin.sweep(&config, now.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listener_is_served_at_addresses_a_browser_can_open() {
        let one = served_at("http", "127.0.0.1:8080".parse().unwrap());
        assert_eq!(one, "http://127.0.0.1:8080/");
        let every = served_at("https", "0.0.0.0:8443".parse().unwrap());
        assert!(!every.starts_with("https://0.0.0.0"), "{every}");
        assert!(every.contains(" and https://127.0.0.1:8443/ "), "{every}");
        assert!(
            every.ends_with("(listening on 0.0.0.0:8443: every address)"),
            "{every}"
        );
        let every6 = served_at("http", "[::]:80".parse().unwrap());
        assert!(every6.contains(" and http://[::1]:80/ "), "{every6}");
    }
}
