//! Broken config files get messages that name the place (`file:line:col`), the key path, what was
//! expected, and for a misspelt key the key that was meant.

use rallypoint::config::Config;

/// (name, file text, key path expected in the message, other text the message must contain,
///  expected line:col)
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "syntax error",
        "[web]\nlisten = [\"127.0.0.1:8080\"\n",
        "",
        "expected `]`",
        "3:1",
    ),
    (
        "unclosed table header",
        "[web\nroot = \"x\"\n",
        "",
        "",
        "1:",
    ),
    (
        "unknown key suggests",
        "[web]\nlisen = [\"127.0.0.1:80\"]\n",
        "web.lisen",
        "did you mean `listen`?",
        "2:1",
    ),
    (
        "unknown section suggests",
        "[trun]\nrealm = \"x\"\n",
        "trun",
        "did you mean [turn]?",
        "1:",
    ),
    (
        "unknown key far from any",
        "[signal]\nbanana = 1\n",
        "signal.banana",
        "the keys are",
        "2:1",
    ),
    (
        "wrong type",
        "[signal]\nmax_peers = \"many\"\n",
        "signal.max_peers",
        "takes a whole number, without quotes: max_peers = 10",
        "2:13",
    ),
    (
        "a quoted number",
        "[signal]\nmessage_rate = \"50\"\n",
        "signal.message_rate",
        "takes a whole number, without quotes: message_rate = 50",
        "2:16",
    ),
    (
        "negative count",
        "[turn]\nmax_allocations = -1\n",
        "turn.max_allocations",
        "takes a whole number from 0 up, not -1",
        "2:19",
    ),
    (
        "a string where a list goes",
        "[turn]\nlisten = \"0.0.0.0:3478\"\n",
        "turn.listen",
        "takes a list in brackets: listen = [\"0.0.0.0:3478\"]",
        "2:10",
    ),
    (
        "an IPv6 address and port without brackets",
        "[turn]\nlisten = [\"::1:3478\"]\n",
        "turn.listen[0]",
        "an IPv6 address takes brackets before its port: \"[::1]:3478\"",
        "2:11",
    ),
    (
        "an address without a port",
        "[web]\nlisten = [\"0.0.0.0\"]\n",
        "web.listen[0]",
        "0.0.0.0 has no port: write \"0.0.0.0:80\"",
        "2:11",
    ),
    (
        "a host name for a listener",
        "[web]\nlisten = [\"localhost:80\"]\n",
        "web.listen[0]",
        "localhost:80 is a name; listeners take IP addresses: \"0.0.0.0:80\" for every IPv4 address, \"127.0.0.1:80\" for this machine only",
        "2:11",
    ),
    (
        "a text value without quotes",
        "[server]\nlog_level = info\n",
        "",
        "a text value needs quotes: log_level = \"info\"",
        "2:",
    ),
    (
        "a quoted boolean",
        "[web]\nselftest = \"yes\"\n",
        "web.selftest",
        "takes true or false, without quotes: selftest = true",
        "2:12",
    ),
    (
        "a bare number for a duration",
        "[web]\nheader_timeout = 10\n",
        "web.header_timeout",
        "takes a value in quotes, like header_timeout = \"10s\"",
        "2:18",
    ),
    (
        "bad duration",
        "[signal]\njoin_timeout = \"soon\"\n",
        "signal.join_timeout",
        "10s",
        "2:16",
    ),
    (
        "bad size",
        "[signal]\nmax_message_size = \"64 parsecs\"\n",
        "signal.max_message_size",
        "64KiB",
        "2:20",
    ),
    (
        "bad bit rate",
        "[turn]\nmax_bandwidth_per_allocation = \"fast\"\n",
        "turn.max_bandwidth_per_allocation",
        "2Mbit/s",
        "2:32",
    ),
    (
        "bad cidr",
        "[turn]\ndeny_peers = [\"10.0.0.0/33\"]\n",
        "turn.deny_peers[0]",
        "",
        "2:15",
    ),
    (
        "not an address at all",
        "[web]\nlisten = [\"not-an-address\"]\n",
        "web.listen[0]",
        "not-an-address is not an IP address and port, like \"0.0.0.0:3478\" or \"[::]:3478\"",
        "2:11",
    ),
    (
        "bad port range",
        "[turn]\nrelay_ports = \"65535-49152\"\n",
        "turn.relay_ports",
        "reversed",
        "2:15",
    ),
    (
        "port range zero",
        "[turn]\nrelay_ports = \"0-100\"\n",
        "turn.relay_ports",
        "starts at 0",
        "2:15",
    ),
    (
        "bad relay ip",
        "[turn]\nrelay_ip = \"my-box\"\n",
        "turn.relay_ip",
        "\"auto\"",
        "2:12",
    ),
    (
        "bad log level",
        "[server]\nlog_level = \"loud\"\n",
        "server.log_level",
        "debug",
        "2:13",
    ),
    (
        "short secret",
        "[turn]\nsecrets = [\"0123456789abcdef\", \"short\"]\n",
        "turn.secrets[1]",
        "at least 16",
        "2:32",
    ),
    (
        "tls without certificate",
        "[web]\ntls_listen = [\"127.0.0.1:8443\"]\n",
        "web.tls_listen",
        "tls.certificate",
        "2:14",
    ),
    (
        "turn tls without certificate",
        "[turn]\ntls_listen = [\"127.0.0.1:5349\"]\n",
        "turn.tls_listen",
        "tls.private_key",
        "2:14",
    ),
    (
        "unreadable private key",
        "[tls]\ncertificate = \"Cargo.toml\"\nprivate_key = \"/nonexistent/key.pem\"\n",
        "tls.private_key",
        "cannot read /nonexistent/key.pem",
        "3:15",
    ),
    (
        "certificate not pem",
        "[tls]\ncertificate = \"Cargo.toml\"\nprivate_key = \"Cargo.toml\"\n",
        "tls.certificate",
        "not a PEM file",
        "2:15",
    ),
    (
        "acme with certificate files",
        "[server]\ndomain = \"game.example.org\"\n[tls]\nacme = true\ncertificate = \"/etc/c.pem\"\nprivate_key = \"/etc/k.pem\"\n",
        "tls.acme",
        "exclusive",
        "4:8",
    ),
    (
        "acme without a domain",
        "[tls]\nacme = true\n",
        "tls.domains",
        "set tls.domains or server.domain",
        "",
    ),
    (
        "acme wildcard domain",
        "[tls]\nacme = true\ndomains = [\"game.example.org\", \"*.example.org\"]\n",
        "tls.domains[1]",
        "wildcard",
        "3:32",
    ),
    (
        "acme ip address",
        "[server]\ndomain = \"203.0.113.7\"\n[tls]\nacme = true\n",
        "server.domain",
        "is an IP address",
        "2:10",
    ),
    (
        "acme without a web listener",
        "[server]\ndomain = \"game.example.org\"\n[web]\nlisten = []\n[tls]\nacme = true\n",
        "tls.acme",
        "set web.listen (port 80, HTTP-01) or web.tls_listen",
        "6:8",
    ),
    (
        "acme bad email",
        "[tls]\nacme = true\ndomains = [\"game.example.org\"]\nacme_email = \"me at example\"\n",
        "tls.acme_email",
        "not an e-mail address",
        "4:14",
    ),
    (
        "acme plain http directory",
        "[tls]\nacme = true\ndomains = [\"game.example.org\"]\nacme_directory = \"http://ca.test/dir\"\n",
        "tls.acme_directory",
        "not an https:// URL",
        "4:18",
    ),
    (
        "acme unreadable ca root",
        "[tls]\nacme = true\ndomains = [\"game.example.org\"]\nacme_ca_root = \"/nonexistent/root.pem\"\n",
        "tls.acme_ca_root",
        "cannot read /nonexistent/root.pem",
        "4:16",
    ),
    (
        "duplicate listen",
        "[web]\nlisten = [\"127.0.0.1:3478\"]\n[turn]\nlisten = [\"127.0.0.1:3478\"]\n",
        "turn.listen[0]",
        "already used by web.listen[0]",
        "4:11",
    ),
    (
        "wildcard overlaps",
        "[web]\nlisten = [\"0.0.0.0:8080\", \"127.0.0.1:8080\"]\n",
        "web.listen[1]",
        "already used by web.listen[0]",
        "2:27",
    ),
    (
        "signal path without slash",
        "[signal]\npath = \"ws\"\n",
        "signal.path",
        "must start with \"/\"",
        "2:8",
    ),
    (
        "bad origin",
        "[signal]\nallowed_origins = [\"game.example.org\"]\n",
        "signal.allowed_origins[0]",
        "https://",
        "2:20",
    ),
    (
        "origin with path",
        "[signal]\nallowed_origins = [\"https://a.example/x\"]\n",
        "signal.allowed_origins[0]",
        "scheme, host",
        "2:20",
    ),
    (
        "empty realm",
        "[turn]\nrealm = \"\"\n",
        "turn.realm",
        "must not be empty",
        "2:9",
    ),
    (
        "per-user cap above total",
        "[turn]\nmax_allocations = 5\nmax_allocations_per_user = 6\n",
        "turn.max_allocations_per_user",
        "more than",
        "3:28",
    ),
    (
        "zero ping interval",
        "[signal]\nping_interval = \"0s\"\n",
        "signal.ping_interval",
        "longer than 0s",
        "2:17",
    ),
    (
        "cluster: not a Redis URL",
        "[cluster]\nredis = \"http://example.org\"\n",
        "cluster.redis",
        "write redis://[:password@]host[:port][/db], or rediss:// for TLS",
        "2:9",
    ),
    (
        "cluster: a node name with a space",
        "[cluster]\nnode = \"eu 1\"\n",
        "cluster.node",
        "1 to 64 letters, digits",
        "2:8",
    ),
    (
        "cluster: a lease under a second",
        "[cluster]\nlease = \"500ms\"\n",
        "cluster.lease",
        "at least 1s",
        "2:9",
    ),
    (
        "no hub at all",
        "[signal]\nshards = 0\n",
        "signal.shards",
        "must be between 1 and 64",
        "2:10",
    ),
    (
        "shards on a cluster node",
        "[signal]\nshards = 2\n[cluster]\nnode = \"eu1\"\n",
        "signal.shards",
        "must be 1 with [cluster]",
        "2:10",
    ),
    (
        "empty user password",
        "[turn.users]\nalice = \"\"\n",
        "turn.users.alice",
        "must not be empty",
        "2:9",
    ),
];

#[test]
fn each_broken_file_gets_a_located_message_naming_the_key() {
    let mut failures = Vec::new();
    for (name, text, key, contains, line_col) in CASES {
        let errors = match Config::from_toml(text, "bad.toml") {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(errors) => errors,
        };
        let Some(e) = errors.iter().find(|e| e.key == *key) else {
            failures.push(format!("{name}: no error for {key:?} in {errors:?}"));
            continue;
        };
        let msg = e.to_string();
        let located = msg.starts_with(&format!("bad.toml:{line_col}"));
        if !located || !msg.contains(key) || !msg.contains(contains) || e.key != *key {
            failures.push(format!("{name}: {msg}  (key {:?})", e.key));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_cross_field_problem_is_reported_at_once() {
    let text = "[web]\ntls_listen = [\"127.0.0.1:8443\"]\n[signal]\npath = \"ws\"\n[turn]\nsecrets = [\"short\"]\n";
    let errors = Config::from_toml(text, "bad.toml").unwrap_err();
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["web.tls_listen", "signal.path", "turn.secrets[0]"]);
}

#[test]
fn sentinel_settings_come_together() {
    for (text, key) in [
        ("[cluster]\nsentinel_master = \"rp\"\n", "cluster.sentinels"),
        (
            "[cluster]\nsentinels = [\"127.0.0.1:26379\"]\n",
            "cluster.sentinel_master",
        ),
        (
            "[cluster]\nsentinels = [\"no-port\"]\nsentinel_master = \"rp\"\n",
            "cluster.sentinels[0]",
        ),
    ] {
        let errors = Config::from_toml(text, "bad.toml").unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, [key], "{text}");
    }
    let ok = "[cluster]\nsentinels = [\"10.0.0.5:26379\", \"[fd00::5]:26379\"]\nsentinel_master = \"rp\"\n";
    assert!(Config::from_toml(ok, "ok.toml").is_ok());
}

#[test]
fn a_missing_file_is_named() {
    let errors = Config::load("/nonexistent/rallypoint.toml".as_ref()).unwrap_err();
    assert!(
        errors[0]
            .to_string()
            .contains("cannot read /nonexistent/rallypoint.toml")
    );
}

/// A mistyped secret or password is never repeated in the error (it would end up in the
/// journal, at every reload and every `check-config`).
#[test]
fn errors_about_secrets_do_not_show_their_values() {
    for (text, key) in [
        (
            "[turn]\nsecrets = \"hunter2-very-secret-value\"\n",
            "turn.secrets",
        ),
        ("[turn]\nsecrets = [1234567890123456]\n", "turn.secrets"),
        ("[turn.users]\nalice = 1234567890123\n", "turn.users"),
    ] {
        let errors = Config::from_toml(text, "bad.toml").unwrap_err();
        let all: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let all = all.join("\n");
        assert!(all.contains(key), "{all}");
        assert!(all.contains("(the value is not shown)"), "{all}");
        for secret in ["hunter2", "1234567890123456", "1234567890123"] {
            assert!(!all.contains(secret), "{secret} shown in: {all}");
        }
    }
}
