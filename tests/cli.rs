//! The command line: check-config, print-config and credentials, run as the real binary.

mod common;

use std::process::{Command, Output};

use base64::Engine;
use hmac::{Hmac, Mac};

use common::{BIN, temp_dir};

fn rallypoint(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SECRET: &str = "an-example-secret-0123456789";

fn config_file(text: &str) -> String {
    let path = temp_dir("cli").join("rallypoint.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn the_shipped_config_checks_clean() {
    let out = rallypoint(&["check-config", "config/rallypoint.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("config/rallypoint.toml: ok"));
}

/// The TURN warnings check-config prints for a `[turn]` section (it still says ok).
fn turn_warnings(turn: &str) -> Vec<String> {
    let path = config_file(&format!("[turn]\n{turn}\nsecrets = [\"{SECRET}\"]\n"));
    let out = rallypoint(&["check-config", &path]);
    assert!(
        out.status.success(),
        "a warning, not an error: {}",
        stderr(&out)
    );
    stderr(&out)
        .lines()
        .map(|l| l.strip_prefix("warning: ").expect(l).to_string())
        .filter(|w| w.starts_with("turn"))
        .collect()
}

#[test]
fn check_config_warns_when_players_would_be_handed_an_address_they_cannot_reach() {
    // A wildcard listener relaying on loopback (a machine without a default route).
    let w = turn_warnings("listen = [\"0.0.0.0:3478\"]\nrelay_ip = \"127.0.0.1\"");
    assert_eq!(
        w,
        [
            "turn: the relay address and the TURN URLs of 0.0.0.0:3478 would be 127.0.0.1, a \
          loopback address, which players on other machines cannot reach; set server.domain or \
          turn.external_ip to the address players use"
        ]
    );
    // A private address: a cloud VPS behind 1:1 NAT needs turn.external_ip.
    let w = turn_warnings("listen = [\"0.0.0.0:3478\"]\nrelay_ip = \"10.0.0.5\"");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(
            "turn: the relay address and the TURN URLs of 0.0.0.0:3478 would be 10.0.0.5, a \
             private address: players outside this network cannot reach it."
        ) && w[0].contains("set turn.external_ip to the public address"),
        "{w:?}"
    );
    // With a domain the URLs name it, but the relay address is still handed out.
    let path = config_file(&format!(
        "[server]\ndomain = \"game.example.org\"\n[turn]\nlisten = [\"0.0.0.0:3478\"]\n\
         relay_ip = \"172.16.3.4\"\nsecrets = [\"{SECRET}\"]\n"
    ));
    let err = stderr(&rallypoint(&["check-config", &path]));
    assert!(
        err.contains("warning: turn: the relay address would be 172.16.3.4, a private address"),
        "{err}"
    );
    assert_eq!(
        turn_warnings("listen = [\"0.0.0.0:3478\"]\nrelay_ip = \"169.254.7.7\""),
        [
            "turn: the relay address and the TURN URLs of 0.0.0.0:3478 would be 169.254.7.7, a \
          link-local address, which players on other machines cannot reach; set server.domain \
          or turn.external_ip to the address players use"
        ]
    );
    // turn.external_ip fixes it; a private external_ip is itself warned about.
    let w = turn_warnings(
        "listen = [\"0.0.0.0:3478\"]\nrelay_ip = \"10.0.0.5\"\nexternal_ip = \"93.184.216.34\"",
    );
    assert!(w.is_empty(), "{w:?}");
    // The shipped config's own example, or any address of the documentation ranges, is a
    // placeholder left in, not an address: the self-test would blame the firewall.
    for placeholder in ["203.0.113.7", "192.0.2.10", "198.51.100.4", "2001:db8::7"] {
        let w = turn_warnings(&format!(
            "listen = [\"0.0.0.0:3478\"]\nrelay_ip = \"10.0.0.5\"\nexternal_ip = \"{placeholder}\""
        ));
        assert_eq!(
            w,
            [format!(
                "turn: turn.external_ip would be {placeholder}, a documentation address (an \
                 example, which no one can reach); set turn.external_ip to this machine's \
                 public address"
            )]
        );
    }
    let w = turn_warnings("listen = [\"0.0.0.0:3478\"]\nexternal_ip = \"192.168.1.20\"");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("turn: turn.external_ip would be 192.168.1.20, a private address"));
    // IPv6 only, when most players are on IPv4.
    assert_eq!(
        turn_warnings("listen = [\"[2a01:4f8::1]:3478\"]"),
        [
            "turn.listen: TURN listens on IPv6 only, and most players reach the internet over \
          IPv4; add an IPv4 listener such as \"0.0.0.0:3478\""
        ]
    );
    // Loopback listeners are a development setup on purpose.
    assert!(turn_warnings("listen = [\"127.0.0.1:3478\", \"[::1]:3478\"]").is_empty());
}

/// check-config says which family the relays players get are in: browsers name none.
#[test]
fn check_config_says_which_family_the_turn_urls_relay_in() {
    let family = |turn: &str| {
        let path = config_file(&format!("[turn]\n{turn}\nsecrets = [\"{SECRET}\"]\n"));
        let out = rallypoint(&["check-config", &path]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).lines().nth(1).unwrap_or_default().to_string()
    };
    assert_eq!(
        family("listen = [\"[2001:db8::1]:3478\"]"),
        "every TURN URL relays in IPv6 (2001:db8::1): players whose network has no IPv6 cannot \
         be relayed"
    );
    assert_eq!(
        family("listen = [\"127.0.0.1:3478\", \"[::1]:3478\"]"),
        "every TURN URL relays in IPv4 (127.0.0.1) for browsers, which ask for no family; in \
         IPv6 (::1) for clients that ask for it"
    );
    assert_eq!(
        family("listen = [\"127.0.0.1:3478\"]"),
        "every TURN URL relays in IPv4 (127.0.0.1)"
    );
}

/// Firefox uses no `turns:` URL naming an IP address, which is what players get without a
/// domain.
#[test]
fn check_config_warns_that_firefox_needs_a_domain_for_turns() {
    let dir = temp_dir("cli-turns");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let generated = rcgen::generate_simple_self_signed(vec!["game.example.org".into()]).unwrap();
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let tls = format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let turn = format!(
        "[turn]\nlisten = [\"0.0.0.0:3478\"]\ntls_listen = [\"0.0.0.0:5349\"]\n\
         external_ip = \"198.18.0.7\"\nsecrets = [\"{SECRET}\"]\n"
    );
    let warned = |text: &str| {
        let err = stderr(&rallypoint(&["check-config", &config_file(text)]));
        err.contains("Firefox uses no turns: URL")
    };
    assert!(warned(&format!("{tls}{turn}")));
    assert!(!warned(&format!(
        "[server]\ndomain = \"game.example.org\"\n{tls}{turn}"
    )));
}

#[test]
fn an_ipv6_wildcard_turn_listener_listens_on_ipv4_too() {
    let path = config_file(&format!(
        "[turn]\nlisten = [\"[::]:3478\"]\nsecrets = [\"{SECRET}\"]\n"
    ));
    let printed = stdout(&rallypoint(&["--config", &path, "print-config"]));
    assert!(
        printed.contains("listen = [\"0.0.0.0:3478\", \"[::]:3478\"]"),
        "{printed}"
    );
    // Listed already: not twice.
    let path = config_file(&format!(
        "[turn]\nlisten = [\"[::]:3478\", \"0.0.0.0:3478\"]\nsecrets = [\"{SECRET}\"]\n"
    ));
    let printed = stdout(&rallypoint(&["--config", &path, "print-config"]));
    assert!(
        printed.contains("listen = [\"[::]:3478\", \"0.0.0.0:3478\"]"),
        "{printed}"
    );
}

#[test]
fn credentials_name_the_listener_address() {
    // The credentials command then names the listener's address it answers on, for a
    // specific listener, not the relay address.
    let path = config_file(&format!(
        "[turn]\nlisten = [\"127.0.0.1:13878\"]\nrelay_ip = \"127.0.0.2\"\nsecrets = [\"{SECRET}\"]\n"
    ));
    let out = rallypoint(&["--config", &path, "credentials"]);
    assert!(
        stdout(&out).contains("turn:127.0.0.1:13878?transport=udp"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("127.0.0.2"), "{}", stdout(&out));
}

#[test]
fn check_config_prints_every_error_and_exits_one() {
    let path =
        config_file("[signal]\npath = \"ws\"\n[turn]\nsecrets = [\"short\", \"also-short\"]\n");
    let out = rallypoint(&["check-config", &path]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains(&format!("{path}:2:8: signal.path")),
        "{err}"
    );
    assert!(
        lines[1].contains("turn.secrets[0]") && lines[2].contains("turn.secrets[1]"),
        "{err}"
    );
}

/// `check-config FILE` checks FILE, so `run FILE` runs with it and `print-config FILE` prints
/// it: an operator who checked a file by name starts the server the same way. Naming a file
/// twice, as the argument and with --config, is a usage error rather than one silently winning.
#[test]
fn the_commands_about_one_file_take_it_as_their_argument() {
    let path = config_file("[signal]\npath = \"ws\"\n");
    for command in ["run", "check-config", "print-config"] {
        let out = rallypoint(&[command, &path]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{path}:2:8: signal.path")),
            "{command}: {err}"
        );
        for twice in [
            [command, "--config", "config/rallypoint.toml", &path],
            ["--config", "config/rallypoint.toml", command, &path],
        ] {
            let out = rallypoint(&twice);
            assert_eq!(out.status.code(), Some(2), "{twice:?}");
            assert!(stderr(&out).contains("named twice"), "{twice:?}");
        }
    }
    let good = config_file("[signal]\nmax_lobbies = 77\n");
    let out = rallypoint(&["print-config", &good]);
    assert!(
        stdout(&out).contains("max_lobbies = 77"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn print_config_fills_defaults_and_never_prints_a_secret() {
    let path = config_file(&format!(
        "[server]\ndomain = \"game.example.org\"\n[turn]\nsecrets = [\"{SECRET}\"]\n[turn.users]\nalice = \"correct-horse-battery\"\n\
         [admin]\ntokens = [\"an-operator-token-that-nobody-may-read\"]\n\
         [cluster]\nsentinels = [\"127.0.0.1:26379\"]\nsentinel_master = \"rp\"\n\
         sentinel_password = \"sentinel-secret-word\"\nmaster_password = \"master-secret-word\"\n"
    ));
    let out = rallypoint(&["print-config", "--config", &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains(SECRET)
            && !text.contains("correct-horse")
            && !text.contains("nobody-may-read")
            && !text.contains("secret-word"),
        "{text}"
    );
    assert!(text.contains("tokens = [\"<hidden>\"]"), "{text}");
    assert!(text.contains("domain = \"game.example.org\""), "{text}");
    assert!(
        text.contains("max_lobbies = 1024"),
        "defaults filled in: {text}"
    );
    assert!(text.contains("alice = \"<hidden>\""), "{text}");
    // The printed form is itself a valid config file.
    let printed = config_file(&text.replace("<hidden>", "some-password-long-enough-for-any-key"));
    assert!(rallypoint(&["check-config", &printed]).status.success());
}

#[test]
fn credentials_verify_against_the_secret() {
    let path = config_file(&format!(
        "[server]\ndomain = \"game.example.org\"\n[turn]\nsecrets = [\"{SECRET}\"]\n"
    ));
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = rallypoint(&[
        "credentials",
        "--config",
        &path,
        "--user",
        "bob",
        "--ttl",
        "1h",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .to_string()
    };
    let username = field("username:");
    let password = field("password:");
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "bob");
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (before + 3600..=before + 3602).contains(&expiry),
        "{expiry} vs {before}"
    );

    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(password, expected);

    let json_line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("iceServers JSON");
    let json: serde_json::Value = serde_json::from_str(json_line).unwrap();
    let server = &json["iceServers"][0];
    assert_eq!(server["username"], username.as_str());
    assert_eq!(server["credential"], password.as_str());
    assert!(
        server["urls"]
            .as_array()
            .unwrap()
            .contains(&"turn:game.example.org:3478?transport=udp".into())
    );
}

#[test]
fn credentials_without_a_secret_explain_why() {
    let path = config_file("[turn.users]\nalice = \"correct-horse-battery\"\n");
    let out = rallypoint(&["credentials", "--config", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("turn.secrets is empty")
            && stderr(&out).contains("--config /etc/rallypoint/rallypoint.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = rallypoint(&["credentials", "--ttl", "forever"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid duration"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&rallypoint(&["--version"])).contains(env!("CARGO_PKG_VERSION")));
}

/// A self-signed certificate for `names` (PEM) and its key, valid until `not_after` (y, m, d).
fn certificate(names: &[&str], not_after: (i32, u8, u8)) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

#[test]
fn check_config_reads_the_certificate_files_and_the_web_root() {
    let dir = temp_dir("cli-tls");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("MyGame.html"), "<html>").unwrap();
    let (good, good_key) = certificate(&["game.example.org"], (2099, 1, 1));
    let (_, other_key) = certificate(&["game.example.org"], (2099, 1, 1));
    let (expired, expired_key) = certificate(&["game.example.org"], (2021, 1, 1));
    let (elsewhere, elsewhere_key) = certificate(&["other.example.org"], (2099, 1, 1));
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let check = |cert: &str, key: &str| {
        let path = config_file(&format!(
            "[server]\ndomain = \"game.example.org\"\n[web]\nroot = \"{}\"\n[tls]\n\
             certificate = \"{cert}\"\nprivate_key = \"{key}\"\n[turn]\nsecrets = [\"{SECRET}\"]\n",
            www.display()
        ));
        rallypoint(&["check-config", &path])
    };
    let (cert, key) = (write("cert.pem", &good), write("key.pem", &good_key));

    // What stops the server is an error.
    let out = check(&key, &cert);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("look swapped"), "{}", stderr(&out));
    let out = check(&cert, &write("other-key.pem", &other_key));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the key does not belong to the certificate"),
        "{}",
        stderr(&out)
    );
    // What browsers would refuse is a warning.
    let out = check(
        &write("expired.pem", &expired),
        &write("expired-key.pem", &expired_key),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("expired on 2021-01-01"),
        "{}",
        stderr(&out)
    );
    let out = check(
        &write("elsewhere.pem", &elsewhere),
        &write("elsewhere-key.pem", &elsewhere_key),
    );
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("is for other.example.org but server.domain is game.example.org"),
        "{}",
        stderr(&out)
    );
    // A good certificate: only the web root's page name is worth a word.
    let out = check(&cert, &key);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("has no index.html") && err.contains("MyGame.html"),
        "{err}"
    );
    assert!(!err.contains("tls."), "{err}");
    std::fs::rename(www.join("MyGame.html"), www.join("index.html")).unwrap();
    assert_eq!(stderr(&check(&cert, &key)), "");
    std::fs::remove_dir_all(&www).unwrap();
    assert!(stderr(&check(&cert, &key)).contains("is not a readable folder"));
}

/// check-config's stderr for the file at `path`, and its error lines.
fn check_config_errors(path: &str) -> (String, Vec<String>) {
    let err = stderr(&rallypoint(&["check-config", path]));
    let errors = err
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect();
    (err, errors)
}

/// The first hour's three mistakes in one file (a wrong type, a misspelt key, a certificate that
/// is not there) and a wrong section, in one run of check-config, each located; the wrong
/// section is skipped whole, not read as keys of the section before it.
#[test]
fn check_config_reports_every_mistake_of_a_file_at_once() {
    let path = config_file(&format!(
        "[web]\ntls_listen = [\"127.0.0.1:8443\"]\n\n[turn]\nlisten = \"0.0.0.0:3478\"\n\
         relay_port = 50000\nsecrets = [\"{SECRET}\"]\n\n[tls]\ncertificate = \"/nonexistent/cert.pem\"\n\
         private_key = \"/nonexistent/key.pem\"\n\n[singal]\npath = \"/ws\"\nmax_peers = \"many\"\n"
    ));
    assert_eq!(rallypoint(&["check-config", &path]).status.code(), Some(1));
    let (err, errors) = check_config_errors(&path);
    let expect = [
        ":5:10: turn.listen: takes a list in brackets",
        ":6:1: turn.relay_port: unknown key `relay_port` in [turn], did you mean `relay_ports`?",
        ":13:2: singal: unknown section [singal], did you mean [signal]?",
        ":10:15: tls.certificate: cannot read /nonexistent/cert.pem",
        ":11:15: tls.private_key: cannot read /nonexistent/key.pem",
    ];
    for e in expect {
        assert!(
            errors.iter().any(|l| l.contains(e)),
            "no error with {e:?} in:\n{err}"
        );
    }
    assert!(
        !err.contains("max_peers"),
        "a wrong section is skipped whole:\n{err}"
    );
    assert_eq!(errors.len(), 5, "each once: {err}");

    // Certificate files that are there but hold no certificate: found beside a wrong type.
    let dir = temp_dir("cli-files");
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let path = config_file(&format!(
        "[signal]\nmax_peers = \"many\"\n[tls]\ncertificate = \"{0}\"\nprivate_key = \"{0}\"\n",
        junk.display()
    ));
    let (err, errors) = check_config_errors(&path);
    assert_eq!(errors.len(), 3, "{err}");
    assert!(
        errors[0].contains(":2:13: signal.max_peers: takes a whole number"),
        "{err}"
    );
    assert!(errors[1].contains(":4:15: tls.certificate: ") && errors[1].contains("not a PEM file"));
    assert!(errors[2].contains(":5:15: tls.private_key: ") && errors[2].contains("not a PEM file"));

    // Good PEM files of two different certificates: only reading them together finds it.
    let a = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b.example".into()]).unwrap();
    std::fs::write(dir.join("a.pem"), a.cert.pem()).unwrap();
    std::fs::write(dir.join("b.key"), b.signing_key.serialize_pem()).unwrap();
    let path = config_file(&format!(
        "[signal]\nmax_peers = \"many\"\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        dir.join("a.pem").display(),
        dir.join("b.key").display()
    ));
    let (err, errors) = check_config_errors(&path);
    assert_eq!(errors.len(), 2, "{err}");
    assert!(
        errors[1].contains("the key does not belong to the certificate"),
        "{err}"
    );
}

/// `--help` is a request, not a mistake: the release script prints its usage and exits 0.
#[test]
fn the_release_script_answers_help() {
    let out = Command::new("packaging/release")
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("packaging/release [--arch amd64|arm64]... [--out DIR]"));
    let out = Command::new("packaging/release")
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `rallypoint --domain NAME` with no file: HTTPS for the name with a certificate from the CA,
/// on the ports players reach (80 for HTTP-01 and the redirect, 443 for HTTPS and TURN over
/// TLS, 3478 for STUN/TURN), every address. With a file, its ports stay (the interop suite's
/// acme.sh gets a certificate from pebble that way). A name a CA cannot validate is refused.
#[test]
fn a_domain_on_the_command_line_is_a_whole_https_setup() {
    assert!(
        !std::path::Path::new("/etc/rallypoint/rallypoint.toml").exists(),
        "this test needs a machine without /etc/rallypoint/rallypoint.toml (it would be read)"
    );
    let out = rallypoint(&["--domain", "game.example.org", "print-config"]);
    let printed: toml::Value = toml::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        printed["server"]["domain"].as_str(),
        Some("game.example.org")
    );
    assert_eq!(printed["tls"]["acme"].as_bool(), Some(true));
    let listen = |section: &str, key: &str| -> Vec<String> {
        printed[section][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listen("web", "listen")[0], "0.0.0.0:80");
    assert_eq!(listen("web", "tls_listen")[0], "0.0.0.0:443");
    assert!(listen("turn", "listen").contains(&"0.0.0.0:3478".to_string()));
    assert_eq!(
        printed["web"]["accept_turn"].as_str(),
        Some("tls"),
        "TURN on 443 too"
    );

    let path = config_file("[web]\nlisten = [\"127.0.0.1:8080\"]\n");
    let out = rallypoint(&[
        "--config",
        &path,
        "--domain",
        "game.example.org",
        "print-config",
    ]);
    let printed: toml::Value = toml::from_str(&stdout(&out)).unwrap();
    assert_eq!(printed["web"]["listen"][0].as_str(), Some("127.0.0.1:8080"));
    assert_eq!(printed["tls"]["acme"].as_bool(), Some(true));

    let out = rallypoint(&["--domain", "203.0.113.7", "print-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--domain: "), "{}", stderr(&out));
}

/// Each command's help lists what it takes: deploy names the folder it deploys into, not the
/// listeners, which only running uses (given before any command).
#[test]
fn deploy_help_lists_only_what_deploy_takes() {
    let help = stdout(&rallypoint(&["deploy", "--help"]));
    for taken in ["--root", "--rollback", "--list", "--keep", "--fast"] {
        assert!(help.contains(taken), "{taken} missing: {help}");
    }
    for not in ["--listen", "--turn-listen", "--domain"] {
        assert!(!help.contains(not), "{not} in deploy's help: {help}");
    }
    assert!(stdout(&rallypoint(&["--help"])).contains("--turn-listen"));
}
