//! Checks that span several keys or need the filesystem; serde has already checked each value's
//! own form. Every problem is reported, not just the first.

use std::net::SocketAddr;
use std::path::Path;

use super::diagnostics::{ConfigError, Source};
use super::{Config, RelayIp};

/// Shortest TURN REST secret accepted: HMAC-SHA1 keys shorter than this are guessable offline.
pub const MIN_SECRET_LEN: usize = 16;
/// Characters of an operator token at least (`admin.tokens`).
pub const MIN_TOKEN_LEN: usize = 32;
/// `signal.shards` at most.
const MAX_SHARDS: u32 = 64;

pub(crate) fn check(c: &Config, src: &Source) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut err = |key: &str, msg: String| errors.push(src.error_at(key, msg));

    // TLS: listeners need a certificate; the files named must be readable PEM.
    let tls_users: Vec<&str> = [
        ("web.tls_listen", c.web.tls_listen.is_empty()),
        ("turn.tls_listen", c.turn.tls_listen.is_empty()),
    ]
    .into_iter()
    .filter(|(_, empty)| !empty)
    .map(|(k, _)| k)
    .collect();
    for key in &tls_users {
        if !c.tls.acme && (c.tls.certificate.is_none() || c.tls.private_key.is_none()) {
            err(
                key,
                format!(
                    "{key} needs a certificate: set tls.certificate and tls.private_key (PEM files), \
                     or tls.acme = true"
                ),
            );
        }
    }
    match (&c.tls.certificate, &c.tls.private_key) {
        (Some(_), None) => err(
            "tls.certificate",
            "tls.certificate is set but tls.private_key is not".into(),
        ),
        (None, Some(_)) => err(
            "tls.private_key",
            "tls.private_key is set but tls.certificate is not".into(),
        ),
        _ => {}
    }
    for (key, path) in [
        ("tls.certificate", &c.tls.certificate),
        ("tls.private_key", &c.tls.private_key),
    ] {
        if let Some(path) = path
            && let Err(e) = readable_pem(path)
        {
            err(key, e);
        }
    }

    if c.tls.acme {
        if c.tls.certificate.is_some() || c.tls.private_key.is_some() {
            err(
                "tls.acme",
                "tls.acme and tls.certificate/tls.private_key are exclusive: remove the files to let \
                 ACME manage the certificate, or set acme = false"
                    .into(),
            );
        }
        let domains = c.tls.acme_domains(&c.server);
        if domains.is_empty() {
            err(
                "tls.domains",
                "tls.acme needs a name to certify: set tls.domains or server.domain".into(),
            );
        }
        for (i, d) in c.tls.domains.iter().enumerate() {
            if let Err(e) = check_acme_domain(d) {
                err(&format!("tls.domains[{i}]"), e);
            }
        }
        if c.tls.domains.is_empty()
            && let Some(d) = &c.server.domain
            && let Err(e) = check_acme_domain(d)
        {
            err(
                "server.domain",
                format!("{e} (tls.acme certifies server.domain)"),
            );
        }
        if c.web.listen.is_empty() && c.web.tls_listen.is_empty() {
            err(
                "tls.acme",
                "tls.acme proves the domain on a web listener reachable from the internet: set \
                 web.listen (port 80, HTTP-01) or web.tls_listen (port 443, TLS-ALPN-01)"
                    .into(),
            );
        }
        if let Some(email) = &c.tls.acme_email {
            let valid = email.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty() && host.contains('.') && !email.contains(char::is_whitespace)
            });
            if !valid {
                err(
                    "tls.acme_email",
                    format!("{email:?} is not an e-mail address"),
                );
            }
        }
        if !c.tls.acme_directory.starts_with("https://") {
            err(
                "tls.acme_directory",
                format!(
                    "{:?} is not an https:// URL (Let's Encrypt's is {})",
                    c.tls.acme_directory,
                    super::LETS_ENCRYPT
                ),
            );
        }
        if let Some(root) = &c.tls.acme_ca_root
            && let Err(e) = readable_pem(root)
        {
            err("tls.acme_ca_root", e);
        }
    }

    // Listeners: one socket per address and protocol.
    let tcp: Vec<(String, SocketAddr)> = [
        ("web.listen", &c.web.listen),
        ("web.tls_listen", &c.web.tls_listen),
        ("turn.listen", &c.turn.listen),
        ("turn.tls_listen", &c.turn.tls_listen),
    ]
    .into_iter()
    .flat_map(|(key, addrs)| {
        addrs
            .iter()
            .enumerate()
            .map(move |(i, a)| (format!("{key}[{i}]"), *a))
    })
    .collect();
    for (i, (key, a)) in tcp.iter().enumerate() {
        if let Some((first, _)) = tcp[..i].iter().find(|(_, b)| clash(*a, *b)) {
            err(
                key,
                format!("{a} is already used by {first}; each TCP listener needs its own port"),
            );
        }
    }

    if c.web.max_connections == 0 {
        err("web.max_connections", "must be at least 1".into());
    }
    if c.web.header_timeout.0.is_zero() {
        err("web.header_timeout", "must be longer than 0s".into());
    }
    if !(8 << 10..=1 << 20).contains(&c.web.max_header_size.0) {
        err(
            "web.max_header_size",
            "must be between 8KiB and 1MiB (browsers send a few KiB)".into(),
        );
    }

    // Signalling.
    let s = &c.signal;
    if !s.path.starts_with('/') || s.path.contains(['?', '#', ' ']) {
        err(
            "signal.path",
            format!(
                "{:?} is not a URL path; it must start with \"/\", like \"/ws\"",
                s.path
            ),
        );
    }
    for (i, origin) in s.allowed_origins.iter().enumerate() {
        if let Err(e) = check_origin(origin) {
            err(&format!("signal.allowed_origins[{i}]"), e);
        }
    }
    if s.max_message_size.0 < 1024 {
        err(
            "signal.max_message_size",
            "must be at least 1KiB: an SDP offer alone is several hundred bytes".into(),
        );
    }
    if s.message_burst == 0 {
        err("signal.message_burst", "must be at least 1".into());
    }
    if s.max_queued_bytes.0 < 2 * s.max_message_size.0 {
        err(
            "signal.max_queued_bytes",
            format!(
                "must be at least twice signal.max_message_size ({}), or one large offer would \
                 disconnect the peer it is for",
                s.max_message_size
            ),
        );
    }
    if !(1..=1000).contains(&s.list_page_size) {
        err("signal.list_page_size", "must be between 1 and 1000".into());
    }
    if s.max_lobby_data.0 > s.max_message_size.0 / 2 {
        err(
            "signal.max_lobby_data",
            format!(
                "must be at most half of signal.max_message_size ({}): a lobby's state is sent \
                 in one message",
                s.max_message_size
            ),
        );
    }
    if !(1..=MAX_SHARDS).contains(&s.shards) {
        err(
            "signal.shards",
            format!("must be between 1 and {MAX_SHARDS} (about one per core past the first few)"),
        );
    } else if s.shards > 1 && c.cluster.is_some() {
        err(
            "signal.shards",
            "must be 1 with [cluster]: a cluster node runs one hub (spread the load over more \
             nodes instead)"
                .into(),
        );
    }
    for (key, d) in [
        ("signal.browse_timeout", s.browse_timeout),
        ("signal.join_timeout", s.join_timeout),
        ("signal.ping_interval", s.ping_interval),
        ("signal.send_timeout", s.send_timeout),
    ] {
        if d.0.is_zero() {
            err(key, "must be longer than 0s".into());
        }
    }

    // TURN.
    let t = &c.turn;
    if t.realm.trim().is_empty() {
        err(
            "turn.realm",
            "must not be empty: clients hash it into their key".into(),
        );
    }
    for (i, secret) in t.secrets.iter().enumerate() {
        if secret.len() < MIN_SECRET_LEN {
            err(
                &format!("turn.secrets[{i}]"),
                format!(
                    "secret is {} bytes; use at least {MIN_SECRET_LEN} (for example `openssl rand -hex 32`)",
                    secret.len()
                ),
            );
        }
    }
    for (i, token) in c.admin.tokens.iter().enumerate() {
        if token.chars().count() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
            err(
                &format!("admin.tokens[{i}]"),
                format!(
                    "a token is at least {MIN_TOKEN_LEN} characters without spaces (for example \
                     `openssl rand -hex 32`); this one is {} (the value is not shown)",
                    token.chars().count()
                ),
            );
        }
    }
    if c.admin.publish_idle_timeout.0.is_zero() {
        err(
            "admin.publish_idle_timeout",
            "must be more than 0: an upload needs time between its requests".into(),
        );
    }
    for (name, password) in &t.users {
        if password.is_empty() {
            err(
                &format!("turn.users.{name}"),
                "password must not be empty".into(),
            );
        }
        if name.is_empty() || name.contains(':') {
            err(
                &format!("turn.users.{name}"),
                "user names must be non-empty and free of ':' (that marks REST credentials)".into(),
            );
        }
    }
    if let RelayIp::Fixed(ip) = t.relay_ip
        && ip.is_unspecified()
    {
        err(
            "turn.relay_ip",
            format!(
                "{ip} is not an address peers can reach; name one interface address or \"auto\""
            ),
        );
    }
    if let Some(ip) = t.external_ip
        && (ip.is_unspecified() || ip.is_loopback())
    {
        err(
            "turn.external_ip",
            format!("{ip} cannot be reached from outside; use the public address"),
        );
    }
    if t.allocation_lifetime.0.is_zero() {
        err("turn.allocation_lifetime", "must be longer than 0s".into());
    }
    if t.max_allocation_lifetime < t.allocation_lifetime {
        err(
            "turn.max_allocation_lifetime",
            format!(
                "is shorter than turn.allocation_lifetime ({})",
                t.allocation_lifetime
            ),
        );
    }
    if t.credential_ttl.0.is_zero() {
        err("turn.credential_ttl", "must be longer than 0s".into());
    }
    if t.max_allocations_per_user > t.max_allocations {
        err(
            "turn.max_allocations_per_user",
            format!(
                "{} is more than turn.max_allocations ({})",
                t.max_allocations_per_user, t.max_allocations
            ),
        );
    }

    // PROXY protocol: on TCP listeners of this file, from someone.
    let p = &c.proxy_protocol;
    let tcp_listeners: Vec<SocketAddr> =
        [&c.web.listen, &c.web.tls_listen, &t.listen, &t.tls_listen]
            .into_iter()
            .flatten()
            .copied()
            .collect();
    for addr in &p.listeners {
        if !tcp_listeners.contains(addr) {
            err(
                "proxy_protocol.listeners",
                format!(
                    "{addr} is none of web.listen, web.tls_listen, turn.listen or turn.tls_listen \
                     (write it as it is written there)"
                ),
            );
        }
    }
    if !p.listeners.is_empty() && p.trusted.is_empty() {
        err(
            "proxy_protocol.trusted",
            "proxy_protocol.listeners needs the load balancers' addresses here (nobody else may \
             send a header)"
                .into(),
        );
    }
    if let Some(cluster) = &c.cluster {
        if let Err(e) = redis::Client::open(cluster.redis.as_str()) {
            err(
                "cluster.redis",
                format!("{e} (write redis://[:password@]host[:port][/db], or rediss:// for TLS)"),
            );
        }
        let name_ok = |ch: char| ch.is_ascii_alphanumeric() || "._-".contains(ch);
        if cluster.node.is_empty() || cluster.node.len() > 64 || !cluster.node.chars().all(name_ok)
        {
            err(
                "cluster.node",
                format!(
                    "{:?}: 1 to 64 letters, digits, '.', '_' or '-'",
                    cluster.node
                ),
            );
        }
        match (cluster.sentinels.is_empty(), &cluster.sentinel_master) {
            (true, Some(_)) => err(
                "cluster.sentinels",
                "sentinel_master is set: list the Sentinels too, like [\"10.0.0.5:26379\"]".into(),
            ),
            (false, None) => err(
                "cluster.sentinel_master",
                "sentinels are listed: name the master they watch (sentinel monitor NAME ...)"
                    .into(),
            ),
            _ => {}
        }
        for (i, sentinel) in cluster.sentinels.iter().enumerate() {
            let ok = sentinel
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                err(
                    &format!("cluster.sentinels[{i}]"),
                    format!("{sentinel:?} is not host:port, like \"10.0.0.5:26379\""),
                );
            }
        }
        if cluster.lease.0 < std::time::Duration::from_secs(1) {
            err("cluster.lease", "must be at least 1s".into());
        }
    }
    errors
}

/// Two TCP listeners that cannot both bind: same port, and same address or a wildcard of the same
/// family. Port 0 asks the kernel for a free port, so it never clashes.
fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// A name a CA can validate over HTTP: a DNS name, no wildcard, no address.
pub fn check_acme_domain(name: &str) -> Result<(), String> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "{name:?} is an IP address; ACME certificates here are for DNS names"
        ));
    }
    if name.starts_with("*.") {
        return Err(format!(
            "{name:?} is a wildcard, which needs DNS-01 validation; list the names instead"
        ));
    }
    let valid_label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.contains('.') || !name.split('.').all(valid_label) {
        return Err(format!(
            "{name:?} is not a fully qualified DNS name like \"game.example.org\""
        ));
    }
    Ok(())
}

fn readable_pem(path: &Path) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !text.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!(
            "{} is not a PEM file (no \"-----BEGIN\" line)",
            path.display()
        ));
    }
    Ok(())
}

fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| {
            format!(
                "{origin:?} is not an origin; write it like \"https://game.example.org\" or \"*\""
            )
        })?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "{origin:?} is not an origin: scheme, host and optional port only, like \"https://game.example.org:8443\""
        ));
    }
    Ok(())
}
