//! PROXY protocol on the web and TURN TCP listeners: a trusted balancer's header (v1 or v2)
//! names the client the server then sees; an untrusted peer's header is not believed; a trusted
//! peer without a good header in time is closed, counted and logged once.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Server;

const WAIT: Duration = Duration::from_secs(10);

/// Web and TURN listen on 127.0.0.1, both in proxy_protocol.listeners; the balancer is
/// 127.0.0.2.
fn server() -> Server {
    Server::start(
        "[web]\nlisten = [\"127.0.0.1:0\"]\n[turn]\nlisten = [\"127.0.0.1:0\"]\n\
         secrets = [\"0123456789abcdef0123\"]\nstream_auth_timeout = \"1s\"\n\
         [proxy_protocol]\nlisteners = [\"127.0.0.1:0\"]\ntrusted = [\"127.0.0.2/32\"]\n\
         header_timeout = \"1s\"\n",
    )
}

/// A TCP connection to `to` from `from_ip`.
fn connect_from(from_ip: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{from_ip}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
}

fn v1(client: &str) -> Vec<u8> {
    let (ip, port) = client.rsplit_once(':').unwrap();
    format!("PROXY TCP4 {ip} 127.0.0.1 {port} 443\r\n").into_bytes()
}

fn v2(client: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(client) = client else {
        panic!("IPv4 here")
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend([0x21, 0x11, 0, 12 + 7]);
    h.extend(client.ip().octets());
    h.extend([127, 0, 0, 1]);
    h.extend(client.port().to_be_bytes());
    h.extend(443u16.to_be_bytes());
    // A TLV the server skips (PP2_TYPE_AUTHORITY "a.test").
    h.extend([0x02, 0x00, 0x04]);
    h.extend(b"a.te");
    h
}

/// The status line's code of an HTTP/1.1 GET of `path` on `stream`, after `prefix`.
fn get(mut stream: TcpStream, prefix: &[u8], path: &str) -> Option<u16> {
    let mut request = prefix.to_vec();
    request
        .extend(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    stream.write_all(&request).ok()?;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    std::str::from_utf8(response.get(9..12)?).ok()?.parse().ok()
}

/// The XOR-MAPPED-ADDRESS of a Binding over TURN's TCP stream after `prefix`.
fn mapped(mut stream: TcpStream, prefix: &[u8]) -> Option<SocketAddr> {
    let mut request = prefix.to_vec();
    request.extend([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42]);
    request.extend([7u8; 12]);
    stream.write_all(&request).ok()?;
    let mut header = [0u8; 20];
    stream.read_exact(&mut header).ok()?;
    let mut body = vec![0u8; u16::from_be_bytes([header[2], header[3]]) as usize];
    stream.read_exact(&mut body).ok()?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let v = &body[at + 4..at + 4 + len];
        if kind == 0x0020 && v[1] == 0x01 {
            let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
            let ip = Ipv4Addr::new(v[4] ^ 0x21, v[5] ^ 0x12, v[6] ^ 0xA4, v[7] ^ 0x42);
            return Some(SocketAddr::new(IpAddr::V4(ip), port));
        }
        at += 4 + len.next_multiple_of(4);
    }
    None
}

#[tokio::test]
async fn a_trusted_balancer_names_the_client_and_nobody_else_can() {
    let mut server = server();
    let (web, turn) = (server.web, server.turn);

    // TURN sees the client the header names, v1 and v2, as its mapped address.
    let named = "198.51.100.9:4444".parse().unwrap();
    assert_eq!(
        mapped(connect_from("127.0.0.2", turn), &v2(named)),
        Some(named)
    );
    let named = "203.0.113.7:5555";
    assert_eq!(
        mapped(connect_from("127.0.0.2", turn), &v1(named)),
        Some(named.parse().unwrap())
    );
    // A direct (untrusted) peer is itself; its header would be a claim, and is not read.
    let direct = connect_from("127.0.0.1", turn);
    let local = direct.local_addr().unwrap();
    assert_eq!(mapped(direct, &[]), Some(local));
    assert_eq!(mapped(connect_from("127.0.0.1", turn), &v1(named)), None);

    // The web server applies its limits to the named client: /metrics is for 127.0.0.0/8.
    assert_eq!(
        get(
            connect_from("127.0.0.2", web),
            &v1("127.0.0.9:1000"),
            "/metrics"
        ),
        Some(200)
    );
    assert_eq!(
        get(
            connect_from("127.0.0.2", web),
            &v1("203.0.113.7:1000"),
            "/metrics"
        ),
        Some(403)
    );
    let outside = "203.0.113.7:1000".parse().unwrap();
    assert_eq!(
        get(connect_from("127.0.0.2", web), &v2(outside), "/metrics"),
        Some(403)
    );
    // Not believed from elsewhere: a header from 127.0.0.1 is a bad request, not an address.
    assert_eq!(
        get(
            connect_from("127.0.0.1", web),
            &v1("127.0.0.9:1000"),
            "/metrics"
        ),
        Some(400)
    );
    assert_eq!(
        get(connect_from("127.0.0.1", web), &[], "/metrics"),
        Some(200)
    );

    // From the balancer, no header, a bad one, or none in time: closed without an answer.
    assert_eq!(get(connect_from("127.0.0.2", web), &[], "/healthz"), None);
    let bad = b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 443\r\n";
    assert_eq!(get(connect_from("127.0.0.2", web), bad, "/healthz"), None);
    let mut silent = connect_from("127.0.0.2", web);
    let opened = Instant::now();
    let mut b = [0u8; 1];
    assert!(matches!(silent.read(&mut b), Ok(0) | Err(_)));
    let closed = opened.elapsed();
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(3),
        "closed after {closed:?} (proxy_protocol.header_timeout is 1s)"
    );
    server.wait_log("closed a connection from the trusted proxy 127.0.0.2");
    common::wait_for_metrics(
        web,
        &[
            "rallypoint_proxy_protocol_headers_total 5",
            "rallypoint_proxy_protocol_refused_total{reason=\"missing\"} 1",
            "rallypoint_proxy_protocol_refused_total{reason=\"malformed\"} 1",
            "rallypoint_proxy_protocol_refused_total{reason=\"incomplete\"} 1",
        ],
    )
    .await;
    let logged = server
        .log
        .iter()
        .filter(|l| l.contains("closed a connection from the trusted proxy"))
        .count();
    assert_eq!(logged, 1, "one log line, then only counted");
}

#[test]
fn listeners_must_be_ones_of_this_file_and_need_someone_trusted() {
    let config = rallypoint::config::Config::from_toml(
        "[web]\nlisten = [\"127.0.0.1:8080\"]\n[proxy_protocol]\nlisteners = [\"127.0.0.1:9999\", \"127.0.0.1:8080\"]\n",
        "test.toml",
    );
    let errors: Vec<String> = config
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let text = errors.join("\n");
    assert!(
        text.contains("127.0.0.1:9999 is none of web.listen"),
        "{text}"
    );
    assert!(text.contains("proxy_protocol.trusted"), "{text}");
    assert_eq!(errors.len(), 2, "{text}");
}
