//! The process lifecycle seen from outside, as systemd sees it: the real binary, a notify socket,
//! signals, and real HTTP and STUN clients.

mod common;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{Server, ephemeral_config, http_get};

#[test]
fn ready_comes_first_and_only_once_listeners_accept() {
    let mut server = Server::start(&ephemeral_config(""));
    // READY was the first datagram (Server::start checks it); the listeners must already work.
    let (status, body) = http_get(server.web, "/");
    assert_eq!(status, 200);
    assert!(body.contains("rallypoint is running"), "{body}");
    TcpStream::connect(server.turn).expect("TURN TCP listener accepts");

    // STUN Binding over UDP on the TURN port answers with our own address.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = stun::message::Message::new();
    request
        .build(&[
            Box::new(stun::agent::TransactionId::new()),
            Box::new(stun::message::BINDING_REQUEST),
        ])
        .unwrap();
    client.send_to(&request.raw, server.turn).unwrap();
    let mut buf = [0u8; 1500];
    let n = client.recv(&mut buf).expect("a Binding response");
    let mut response = stun::message::Message::new();
    response.raw = buf[..n].to_vec();
    response.decode().unwrap();
    let mut mapped = stun::xoraddr::XorMappedAddress::default();
    stun::message::Getter::get_from(&mut mapped, &response).unwrap();
    assert_eq!(
        std::net::SocketAddr::new(mapped.ip, mapped.port),
        client.local_addr().unwrap()
    );
    assert!(server.is_running());
}

#[test]
fn sighup_with_a_valid_file_applies_the_new_log_level() {
    let mut server = Server::start(&ephemeral_config("log_level = \"info\""));
    assert_eq!(http_get(server.web, "/").0, 200);

    std::fs::write(&server.config, ephemeral_config("log_level = \"debug\"")).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_notification("RELOADING=1");
    server.wait_notification("READY=1");
    let line = server.wait_log("configuration reloaded");
    assert!(
        line.ends_with("configuration reloaded: changed server.log_level"),
        "the keys that changed, and only those: {line}"
    );
    // The request served before the reload was not logged at debug level...
    assert!(
        !server.log.iter().any(|l| l.contains("DEBUG")),
        "{:#?}",
        server.log
    );
    // ...and one served after it is.
    assert_eq!(http_get(server.web, "/").0, 200);
    server.wait_log("DEBUG rallypoint::web: GET / 200");
}

/// `--listen`, `--turn-listen` and `--root` try an export without editing a config file; they
/// replace the file's keys at start and again at every reload. The log names the self-test
/// page's URL.
#[test]
fn listen_and_root_flags_replace_the_file_keys_and_outlast_a_reload() {
    let www = common::temp_dir("flags-www");
    std::fs::write(www.join("index.html"), "the export from --root").unwrap();
    let root = www.display().to_string();
    let config =
        ephemeral_config("").replace("[web]\n", "[web]\nroot = \"/nonexistent/rallypoint-www\"\n");
    let mut server = Server::start_with_args(
        &config,
        &[
            "--listen",
            "127.0.0.2:0",
            "--turn-listen",
            "127.0.0.3:0",
            "--root",
            &root,
        ],
    );
    assert_eq!(
        server.web.ip().to_string(),
        "127.0.0.2",
        "--listen replaced web.listen"
    );
    assert_eq!(
        server.turn.ip().to_string(),
        "127.0.0.3",
        "--turn-listen replaced turn.listen"
    );
    let page = format!("http://{}/_rallypoint/", server.web);
    server.wait_log(&format!("check this deployment from a browser: {page}"));
    assert_eq!(
        http_get(server.web, "/"),
        (200, "the export from --root".to_string())
    );

    server.signal(libc::SIGHUP);
    let line = server.wait_log("configuration reloaded");
    assert!(
        line.ends_with("configuration reloaded: nothing changed"),
        "{line}"
    );
    assert_eq!(
        http_get(server.web, "/"),
        (200, "the export from --root".to_string())
    );
    // Unchanged by the reload: no listener "changed" to be named.
    assert!(
        !server.log.iter().any(|l| l.contains("web.listen changed")),
        "{:#?}",
        server.log
    );
}

/// A Godot export whose page is named after the project is pointed out at start, before the
/// first visitor meets a 404.
#[test]
fn a_root_without_index_html_is_warned_about_at_start() {
    let www = common::temp_dir("mygame-www");
    std::fs::write(www.join("MyGame.html"), "<!doctype html>").unwrap();
    let root = www.display().to_string();
    let mut server = Server::start_with_args(&ephemeral_config(""), &["--root", &root]);
    let line = server.wait_log("has no index.html");
    assert!(
        line.contains("WARN") && line.contains("(MyGame.html): rename it to index.html"),
        "{line}"
    );
}

/// A root one folder above the export, and an empty one, are pointed out at start too.
#[test]
fn a_root_above_the_export_or_empty_is_warned_about_at_start() {
    let above = common::temp_dir("above-www");
    std::fs::create_dir_all(above.join("web")).unwrap();
    std::fs::write(above.join("web/index.html"), "<!doctype html>").unwrap();
    let root = above.display().to_string();
    let mut server = Server::start_with_args(&ephemeral_config(""), &["--root", &root]);
    let line = server.wait_log("has no index.html");
    let expected = format!("one folder down (web/index.html): set web.root to {root}/web");
    assert!(line.contains("WARN") && line.contains(&expected), "{line}");
    drop(server);

    let empty = common::temp_dir("empty-www");
    let root = empty.display().to_string();
    let mut server = Server::start_with_args(&ephemeral_config(""), &["--root", &root]);
    let line = server.wait_log("holds no page");
    assert!(line.contains("rallypoint deploy"), "{line}");
}

/// Keys set up once at start are named on reload rather than silently ignored.
#[test]
fn sighup_names_the_keys_that_need_a_restart() {
    let mut server = Server::start(&ephemeral_config(""));
    let changed = ephemeral_config("")
        .replace(
            "[web]\n",
            "[web]\nmax_connections = 77\nheader_timeout = \"3s\"\n",
        )
        .replace("[turn]\n", "[turn]\nrelay_ports = \"50000-50100\"\n");
    std::fs::write(&server.config, changed).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_notification("RELOADING=1");
    server.wait_notification("READY=1");
    for key in [
        "web.max_connections",
        "web.header_timeout",
        "turn.relay_ports",
    ] {
        let line = server.wait_log(&format!("{key} changed; it applies at the next restart"));
        assert!(line.contains("WARN"), "{line}");
    }
    server.wait_log("configuration reloaded");
}

#[test]
fn sighup_with_a_broken_file_keeps_the_old_config() {
    let mut server = Server::start(&ephemeral_config("log_level = \"debug\""));
    std::fs::write(&server.config, "[server]\nlog_level = \"info\"\n[web\n").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_notification("RELOADING=1");
    server.wait_notification("READY=1");
    let error = server.wait_log("rallypoint.toml:3:");
    assert!(error.contains("ERROR"), "{error}");
    server.wait_log("reload refused");
    assert!(server.is_running());
    // Still serving, and still at the old level (debug), not the broken file's info.
    assert_eq!(http_get(server.web, "/").0, 200);
    server.wait_log("DEBUG rallypoint::web: GET / 200");
}

#[test]
fn sigterm_drains_and_exits_zero_within_the_grace_period() {
    let mut server = Server::start(&ephemeral_config(""));
    // An idle keep-alive connection must not hold the process past the grace period.
    let _idle = TcpStream::connect(server.web).unwrap();
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    server.wait_notification("STOPPING=1");
    let status = server.wait_exit(Duration::from_secs(3 + 2));
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_taken_tcp_port_fails_fast_naming_address_and_key() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = format!(
        "[web]\nlisten = [\"{addr}\"]\n[turn]\nlisten = [\"127.0.0.1:0\"]\nsecrets = [\"0123456789abcdef0123\"]\n"
    );
    let mut server = Server::spawn(&config);
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(3));
    let line = server.wait_log("cannot listen");
    assert!(
        line.contains(&addr.to_string()) && line.contains("web.listen[0]"),
        "{line}"
    );
    assert!(line.contains("already in use"), "{line}");
}

#[test]
fn a_taken_udp_port_fails_fast_naming_address_and_key() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = format!(
        "[web]\nlisten = [\"127.0.0.1:0\"]\n[turn]\nlisten = [\"{addr}\"]\nsecrets = [\"0123456789abcdef0123\"]\n"
    );
    let mut server = Server::spawn(&config);
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(3));
    let line = server.wait_log("cannot listen");
    assert!(
        line.contains(&format!("UDP {addr}")) && line.contains("turn.listen[0]"),
        "{line}"
    );
}

#[test]
fn an_invalid_config_stops_start_up_with_a_located_error() {
    let mut server = Server::spawn("[web]\nlisen = []\n[signal]\npath = \"ws\"\n");
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(1));
    let line = server.wait_log("error:");
    assert!(
        line.contains("rallypoint.toml:2:1") && line.contains("did you mean `listen`"),
        "{line}"
    );
}
