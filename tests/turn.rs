//! The relay end to end: the real server and the `turn` crate's client, over UDP and TCP, with a
//! plain UDP socket as the peer.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Server;
use common::turn_client_over as client;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use webrtc_turn::client::Client;
use webrtc_util::Conn;

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "turn-test-secret-0123456789";

/// A server whose policy lets peers on loopback be reached (the default refuses them).
fn server(extra: &str) -> Server {
    Server::start(&format!(
        "[web]\nlisten = [\"127.0.0.1:0\"]\n[turn]\nlisten = [\"127.0.0.1:0\"]\nsecrets = [\"{SECRET}\"]\n\
         allow_peers = [\"127.0.0.0/8\"]\n{extra}\n[turn.users]\nalice = \"alice-password\"\n"
    ))
}

async fn udp_client(server: SocketAddr, user: &str, password: &str) -> Client {
    let conn = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    client(server, conn, user, password).await
}

/// TURN over a stream, TCP or TLS (RFC 8656 §12.5): messages back to back, ChannelData padded
/// to 4 bytes.
struct StreamConn<S> {
    read: Mutex<(ReadHalf<S>, Vec<u8>)>,
    write: Mutex<WriteHalf<S>>,
    server: SocketAddr,
    local: SocketAddr,
}

impl<S: AsyncRead + AsyncWrite> StreamConn<S> {
    fn new(stream: S, server: SocketAddr, local: SocketAddr) -> Arc<Self> {
        let (r, w) = tokio::io::split(stream);
        Arc::new(StreamConn {
            read: Mutex::new((r, Vec::new())),
            write: Mutex::new(w),
            server,
            local,
        })
    }
}

async fn tcp_conn(server: SocketAddr) -> Arc<StreamConn<TcpStream>> {
    let stream = TcpStream::connect(server).await.unwrap();
    let local = stream.local_addr().unwrap();
    StreamConn::new(stream, server, local)
}

#[async_trait::async_trait]
impl<S: AsyncRead + AsyncWrite + Send + Sync + 'static> Conn for StreamConn<S> {
    async fn connect(&self, _: SocketAddr) -> webrtc_util::Result<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut guard = self.read.lock().await;
        let (reader, pending) = &mut *guard;
        loop {
            if pending.len() >= 4 {
                let length = u16::from_be_bytes([pending[2], pending[3]]) as usize;
                let (whole, used) = if pending[0] & 0xc0 == 0x40 {
                    (4 + length.next_multiple_of(4), 4 + length)
                } else {
                    (20 + length, 20 + length)
                };
                if pending.len() >= whole {
                    buf[..used].copy_from_slice(&pending[..used]);
                    pending.drain(..whole);
                    return Ok((used, self.server));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                return Err(webrtc_util::Error::Other("closed".into()));
            }
            pending.extend_from_slice(&chunk[..n]);
        }
    }
    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.send_to(buf, self.server).await
    }
    async fn send_to(&self, buf: &[u8], _: SocketAddr) -> webrtc_util::Result<usize> {
        let mut frame = buf.to_vec();
        if frame[0] & 0xc0 == 0x40 {
            frame.resize(frame.len().next_multiple_of(4), 0);
        }
        self.write.lock().await.write_all(&frame).await?;
        Ok(buf.len())
    }
    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.server)
    }
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Allocates, then relays `count` messages each way between the relay and a UDP peer, spaced
/// so that the client moves from Send indications to a bound channel on the way.
async fn relay_both_ways(c: &Client, count: usize) {
    let relay = c.allocate().await.expect("allocation");
    let relayed = relay.local_addr().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut buf = [0u8; 1500];
    // Paced, so that the client's channel binding completes part way through.
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    for i in 0..count {
        pace.tick().await;
        let msg = format!("to peer {i}");
        relay.send_to(msg.as_bytes(), peer_addr).await.unwrap();
        let (n, from) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
            .await
            .expect("peer receives")
            .unwrap();
        assert_eq!(&buf[..n], msg.as_bytes());
        assert_eq!(
            from.port(),
            relayed.port(),
            "comes from the relayed address"
        );
        let reply = format!("to client {i}");
        peer.send_to(reply.as_bytes(), from).await.unwrap();
        let (n, from) = tokio::time::timeout(WAIT, relay.recv_from(&mut buf))
            .await
            .expect("client receives")
            .unwrap();
        assert_eq!(&buf[..n], reply.as_bytes());
        assert_eq!(from, peer_addr);
    }
    relay.close().await.unwrap();
}

async fn metric(server: &Server, line: &str) {
    common::wait_for_metrics(server.web, &[line]).await;
}

#[tokio::test]
async fn udp_allocation_relays_both_ways_and_is_deleted() {
    let server = server("");
    let c = udp_client(server.turn, "alice", "alice-password").await;
    let mapped = c.send_binding_request().await.unwrap();
    assert_eq!(mapped.ip().to_string(), "127.0.0.1");
    relay_both_ways(&c, 30).await;
    // close() sent Refresh with lifetime 0: the allocation is gone.
    metric(&server, "rallypoint_turn_allocations 0").await;
    metric(
        &server,
        "rallypoint_turn_relayed_packets_total{direction=\"to_peer\"} 30",
    )
    .await;
    metric(
        &server,
        "rallypoint_turn_relayed_packets_total{direction=\"to_client\"} 30",
    )
    .await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn tcp_allocation_relays_both_ways() {
    let server = server("");
    let conn = tcp_conn(server.turn).await;
    let c = client(server.turn, conn, "alice", "alice-password").await;
    relay_both_ways(&c, 30).await;
    metric(
        &server,
        "rallypoint_turn_relayed_packets_total{direction=\"to_client\"} 30",
    )
    .await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn tls_allocation_relays_both_ways() {
    let dir = common::temp_dir("turn-tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let server = server(&format!(
        "tls_listen = [\"127.0.0.1:0\"]\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    ));
    let addr = server.turn_tls.expect("a TLS listener");

    let c = tls_client(addr, &cert, &[]).await;
    relay_both_ways(&c, 20).await;
    metric(
        &server,
        "rallypoint_turn_relayed_packets_total{direction=\"to_client\"} 20",
    )
    .await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn rest_credentials_from_the_cli_work_and_wrong_ones_do_not() {
    let server = server("");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let user = format!("{}:player", now + 600);
    let password = rallypoint::credentials::rest_password(SECRET, &user);
    let c = udp_client(server.turn, &user, &password).await;
    assert!(c.allocate().await.is_ok());
    c.close().await.unwrap();

    let wrong = udp_client(server.turn, "alice", "not-her-password").await;
    assert!(wrong.allocate().await.is_err());
    let expired_user = format!("{}:player", now - 1);
    let expired_password = rallypoint::credentials::rest_password(SECRET, &expired_user);
    let expired = udp_client(server.turn, &expired_user, &expired_password).await;
    assert!(expired.allocate().await.is_err());
    // Each client's first Allocate carries no credentials (3 × 401), then wrong and expired.
    metric(
        &server,
        "rallypoint_turn_error_responses_total{code=\"401\"} 5",
    )
    .await;
}

#[tokio::test]
async fn the_default_policy_keeps_loopback_peers_out() {
    let server = Server::start(&format!(
        "[web]\nlisten = [\"127.0.0.1:0\"]\n[turn]\nlisten = [\"127.0.0.1:0\"]\nsecrets = [\"{SECRET}\"]\n\
         [turn.users]\nalice = \"alice-password\"\n"
    ));
    let c = udp_client(server.turn, "alice", "alice-password").await;
    let relay = c.allocate().await.unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The client's CreatePermission is refused (403), so nothing reaches the peer.
    let _ = relay
        .send_to(b"let me in", peer.local_addr().unwrap())
        .await;
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), peer.recv_from(&mut buf))
            .await
            .is_err()
    );
    metric(
        &server,
        "rallypoint_turn_error_responses_total{code=\"403\"} 1",
    )
    .await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn the_quota_gives_486_then_recovers() {
    let server = server("max_allocations_per_user = 1");
    let first = udp_client(server.turn, "alice", "alice-password").await;
    let relay = first.allocate().await.unwrap();
    let second = udp_client(server.turn, "alice", "alice-password").await;
    assert!(second.allocate().await.is_err());
    metric(
        &server,
        "rallypoint_turn_error_responses_total{code=\"486\"} 1",
    )
    .await;
    relay.close().await.unwrap();
    metric(&server, "rallypoint_turn_allocations 0").await;
    assert!(second.allocate().await.is_ok());
}

/// One million unauthenticated Allocate requests from one address: answered with at most a few
/// 401s a second, and nothing kept.
#[tokio::test]
async fn a_million_unauthenticated_allocates_cost_no_memory() {
    let server = server("");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // A warm-up so the server's buffers and maps have their working size.
    let mut request = unauthenticated_allocate();
    for _ in 0..10_000 {
        let _ = socket.send_to(&request, server.turn);
    }
    let before = server.rss_kib();
    let started = Instant::now();
    for i in 0..1_000_000u32 {
        request[8..12].copy_from_slice(&i.to_be_bytes()); // a new transaction each time
        let _ = socket.send_to(&request, server.turn);
    }
    // Let the server drain its socket before measuring.
    let drained = UdpSocket::from_std({
        socket.set_nonblocking(true).unwrap();
        socket
    })
    .unwrap();
    let c = udp_client(server.turn, "alice", "alice-password").await;
    assert!(c.send_binding_request().await.is_ok(), "still answering");
    drop(drained);
    let after = server.rss_kib();
    let grown = after.saturating_sub(before);
    println!(
        "RSS {before} KiB -> {after} KiB (+{grown} KiB) over 1,000,000 requests in {:?}",
        started.elapsed()
    );
    assert!(grown < 5 * 1024, "RSS grew by {grown} KiB");
}

fn unauthenticated_allocate() -> Vec<u8> {
    // Allocate request, REQUESTED-TRANSPORT UDP, no credentials.
    let mut m = vec![0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]);
    m
}

/// An allocation made with the crates' codecs and then abandoned: nobody refreshes it.
fn abandoned_allocation(server: SocketAddr) -> SocketAddr {
    use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
    use stun::integrity::MessageIntegrity;
    use stun::message::{Getter, Message, Setter};
    use stun::textattrs::TextAttribute;
    use webrtc_turn::proto::relayaddr::RelayedAddress;
    use webrtc_turn::proto::reqtrans::RequestedTransport;

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let exchange = |extra: Vec<Box<dyn Setter>>| {
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(stun::agent::TransactionId::new()),
            Box::new(webrtc_turn::proto::allocate_request()),
            Box::new(RequestedTransport {
                protocol: webrtc_turn::proto::PROTO_UDP,
            }),
        ];
        setters.extend(extra);
        let mut m = Message::new();
        m.build(&setters).unwrap();
        socket.send_to(&m.raw, server).unwrap();
        let mut buf = [0u8; 1500];
        let n = socket.recv(&mut buf).unwrap();
        let mut reply = Message::new();
        reply.raw = buf[..n].to_vec();
        reply.decode().unwrap();
        reply
    };
    let challenge = exchange(vec![]);
    let realm = TextAttribute::get_from_as(&challenge, ATTR_REALM)
        .unwrap()
        .text;
    let nonce = TextAttribute::get_from_as(&challenge, ATTR_NONCE)
        .unwrap()
        .text;
    let reply = exchange(vec![
        Box::new(TextAttribute::new(ATTR_USERNAME, "alice".into())),
        Box::new(TextAttribute::new(ATTR_REALM, realm.clone())),
        Box::new(TextAttribute::new(ATTR_NONCE, nonce)),
        Box::new(MessageIntegrity::new_long_term_integrity(
            "alice".into(),
            realm,
            "alice-password".into(),
        )),
    ]);
    let mut relayed = RelayedAddress::default();
    relayed.get_from(&reply).expect("a relayed address");
    SocketAddr::new(relayed.ip, relayed.port)
}

#[tokio::test]
async fn refreshed_allocations_live_on_and_abandoned_ones_expire() {
    let server = server("allocation_lifetime = \"2s\"\nmax_allocation_lifetime = \"2s\"");
    // The turn client refreshes at half the lifetime: after three lifetimes it still relays.
    let c = udp_client(server.turn, "alice", "alice-password").await;
    let relay = c.allocate().await.unwrap();
    let mut waited = tokio::time::interval(Duration::from_secs(6));
    waited.tick().await;
    waited.tick().await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    relay
        .send_to(b"still here", peer.local_addr().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("relayed after 3 lifetimes")
        .unwrap();
    assert_eq!(&buf[..n], b"still here");

    // An allocation nobody refreshes is gone after its lifetime, its port closed.
    let abandoned = tokio::task::spawn_blocking(move || abandoned_allocation(server.turn))
        .await
        .unwrap();
    common::wait_for_metrics(server.web, &["rallypoint_turn_allocations 2"]).await;
    common::wait_for_metrics(server.web, &["rallypoint_turn_allocations 1"]).await;
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.connect(abandoned).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    // A send to a closed UDP port comes back as ICMP port unreachable: ECONNREFUSED.
    let _ = probe.send(b"anyone?");
    let err = probe
        .recv(&mut buf)
        .expect_err("nothing answers on an expired relay");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    relay.close().await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test]
async fn oversized_peer_datagrams_are_dropped_not_truncated() {
    let server = server("");
    let c = udp_client(server.turn, "alice", "alice-password").await;
    let relay = c.allocate().await.unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    relay
        .send_to(b"open", peer.local_addr().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let (_, relayed) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    peer.send_to(&[7u8; 3000], relayed).await.unwrap();
    peer.send_to(b"small", relayed).await.unwrap();
    let (n, _) = tokio::time::timeout(WAIT, relay.recv_from(&mut buf))
        .await
        .expect("the small one")
        .unwrap();
    assert_eq!(
        &buf[..n],
        b"small",
        "the 3000-byte datagram must not arrive, cut or whole"
    );
    metric(&server, "rallypoint_turn_dropped_packets_total 1").await;
    // The other way: a client datagram over 4 KiB is dropped and counted, the next one relayed.
    relay
        .send_to(&[8u8; 5000], peer.local_addr().unwrap())
        .await
        .unwrap();
    relay
        .send_to(b"after", peer.local_addr().unwrap())
        .await
        .unwrap();
    let (n, _) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("the small one")
        .unwrap();
    assert_eq!(&buf[..n], b"after", "the 5000-byte one must not arrive");
    metric(&server, "rallypoint_turn_dropped_packets_total 2").await;
    relay.close().await.unwrap();
    c.close().await.unwrap();
}

/// TURN over TCP: a client that never makes an allocation is gone `stream_auth_timeout` after it
/// connected, however it trickles bytes; connections are capped per source (and in all).
#[test]
fn stream_connections_are_capped_and_must_authenticate_in_time() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let mut server = server(
        "max_stream_connections = 100\nmax_stream_connections_per_source = 3\nstream_auth_timeout = \"1s\"",
    );
    // One byte every 300 ms: a per-read timeout would never fire.
    let mut trickle = TcpStream::connect(server.turn).unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = std::time::Instant::now();
    let closed = loop {
        if trickle.write_all(&[0]).is_err() {
            break started.elapsed();
        }
        let mut b = [0u8; 1];
        match trickle.read(&mut b) {
            Ok(0) => break started.elapsed(),
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => break started.elapsed(),
            _ => {}
        }
        assert!(started.elapsed() < WAIT, "still open after {WAIT:?}");
    };
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(3),
        "closed after {closed:?}"
    );

    // Three from one address are held; the fourth is closed at once; another address gets in.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.turn).unwrap())
        .collect();
    let mut fourth = TcpStream::connect(server.turn).unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        fourth.read(&mut b).ok(),
        Some(0),
        "the fourth is closed at once"
    );
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = "127.0.0.2:0".parse().unwrap();
    other.bind(&from.into()).unwrap();
    other.connect(&server.turn.into()).unwrap();
    let mut other: TcpStream = other.into();
    other
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        other.read(&mut b).is_err(),
        "a connection under the cap stays open (until its deadline)"
    );
    drop(held);
    server.wait_log("turn.max_stream_connections_per_source = 3 reached");
}

/// Even where policy lets the relay reach this machine (here loopback), a client cannot relay
/// into this server's own TURN port (and allocate through itself): such datagrams are dropped.
#[tokio::test]
async fn the_relay_never_sends_to_its_own_listeners() {
    let server = server("");
    let c = udp_client(server.turn, "alice", "alice-password").await;
    let relay = c.allocate().await.expect("allocation");
    // A STUN Binding request, addressed to the server's own TURN listener through the relay.
    let binding = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    relay.send_to(&binding, server.turn).await.unwrap();
    let mut buf = [0u8; 1500];
    let answer = tokio::time::timeout(Duration::from_secs(2), relay.recv_from(&mut buf)).await;
    assert!(answer.is_err(), "the server answered itself: {answer:?}");
    metric(&server, "rallypoint_turn_dropped_packets_total 1").await;
    // Other peers on the same address are reached as before.
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    relay
        .send_to(b"hello", peer.local_addr().unwrap())
        .await
        .unwrap();
    let (n, _) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .expect("the peer receives")
        .unwrap();
    assert_eq!(&buf[..n], b"hello");
}

/// Waits for `count` datagrams on `relay` from `from`, each one of `expected`.
async fn receive_all(
    relay: &impl Conn,
    from: SocketAddr,
    count: usize,
    expected: &[u8],
) -> Result<(), String> {
    let mut buf = [0u8; 1500];
    for i in 0..count {
        let (n, sender) = tokio::time::timeout(Duration::from_secs(2), relay.recv_from(&mut buf))
            .await
            .map_err(|_| format!("only {i} of {count} arrived"))?
            .unwrap();
        assert_eq!((&buf[..n], sender), (expected, from));
    }
    Ok(())
}

/// Two clients of this server talking to each other, as two browsers on this relay do: every
/// packet goes from one allocation to the other in memory, through the checks of both sides
/// (the sender's permission and bandwidth, the receiver's permission and bandwidth).
#[tokio::test]
async fn relay_to_relay_packets_are_handed_over_in_memory_with_both_sides_checks() {
    // The default policy: loopback peers only as this server's own relay addresses.
    let server = Server::start(&format!(
        "[web]\nlisten = [\"127.0.0.1:0\"]\n[turn]\nlisten = [\"127.0.0.1:0\"]\n\
         secrets = [\"{SECRET}\"]\n[turn.users]\nalice = \"alice-password\"\n"
    ));
    let a = udp_client(server.turn, "alice", "alice-password").await;
    let b = udp_client(server.turn, "alice", "alice-password").await;
    let relay_a = a.allocate().await.expect("allocation a");
    let relay_b = b.allocate().await.expect("allocation b");
    let (addr_a, addr_b) = (relay_a.local_addr().unwrap(), relay_b.local_addr().unwrap());

    // B has no permission for A yet: A's packet is handed over, then dropped on B's side.
    relay_a.send_to(b"too early", addr_b).await.unwrap();
    metric(&server, "rallypoint_turn_dropped_packets_total 1").await;
    // B's packet creates B's permission; A has one since its own send.
    relay_b.send_to(b"from b", addr_a).await.unwrap();
    receive_all(&relay_a, addr_b, 1, b"from b").await.unwrap();
    for _ in 0..20 {
        relay_a.send_to(b"from a", addr_b).await.unwrap();
        relay_b.send_to(b"from b", addr_a).await.unwrap();
    }
    receive_all(&relay_b, addr_a, 20, b"from a").await.unwrap();
    receive_all(&relay_a, addr_b, 20, b"from b").await.unwrap();
    // 42 handed over (1 dropped by B), 41 delivered to clients.
    metric(
        &server,
        "rallypoint_turn_relayed_in_memory_packets_total 42",
    )
    .await;
    metric(
        &server,
        "rallypoint_turn_relayed_packets_total{direction=\"to_peer\"} 42",
    )
    .await;
    metric(
        &server,
        "rallypoint_turn_relayed_packets_total{direction=\"to_client\"} 41",
    )
    .await;

    // A port on the relay's IP that is no allocation: dropped, not sent through the kernel.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut stranger_addr = stranger.local_addr().unwrap();
    stranger_addr.set_ip(addr_b.ip());
    relay_a.send_to(b"to no one", stranger_addr).await.unwrap();
    metric(&server, "rallypoint_turn_dropped_packets_total 2").await;
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_millis(300), stranger.recv_from(&mut buf)).await;
    assert!(
        got.is_err(),
        "a relay-IP port that is no allocation got {got:?}"
    );
}

/// The receiving allocation's bandwidth cap applies to packets handed over in memory as it does
/// to packets from the network: two senders each within their own cap together exceed B's.
#[tokio::test]
async fn relay_to_relay_packets_are_held_to_the_receivers_bandwidth_cap() {
    // 400 kbit/s with a 200 ms burst: 10 KB pass at once. Each sender's 8 KB pass its own cap;
    // B takes 16 KB, of which about 10 fit.
    let server = server("max_bandwidth_per_allocation = \"400kbit/s\"");
    let mut relays = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = udp_client(server.turn, "alice", "alice-password").await;
        relays.push(c.allocate().await.expect("allocation"));
        clients.push(c);
    }
    let addr: Vec<SocketAddr> = relays.iter().map(|r| r.local_addr().unwrap()).collect();
    let (b, senders) = (0, [1, 2]);
    // Each side's first send creates its permission; the senders' first are dropped by B.
    for s in senders {
        relays[s].send_to(b"open", addr[b]).await.unwrap();
    }
    metric(&server, "rallypoint_turn_dropped_packets_total 2").await;
    for s in senders {
        relays[b].send_to(b"permit", addr[s]).await.unwrap();
        receive_all(&relays[s], addr[b], 1, b"permit")
            .await
            .unwrap();
    }
    let payload = [7u8; 1000];
    for s in senders {
        for _ in 0..8 {
            relays[s].send_to(&payload, addr[b]).await.unwrap();
        }
    }
    // Every packet left its sender: 2 + 2 + 16 handed over.
    metric(
        &server,
        "rallypoint_turn_relayed_in_memory_packets_total 20",
    )
    .await;
    let mut arrived = 0;
    let mut buf = [0u8; 1500];
    while let Ok(got) =
        tokio::time::timeout(Duration::from_millis(500), relays[b].recv_from(&mut buf)).await
    {
        assert_eq!(&buf[..got.unwrap().0], &payload);
        arrived += 1;
    }
    assert!(
        (8..=12).contains(&arrived),
        "{arrived} of 16 KB-sized packets passed B's 10 KB burst"
    );
    metric(
        &server,
        &format!("rallypoint_turn_dropped_packets_total {}", 2 + 16 - arrived),
    )
    .await;
}

fn tls_connector(
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr` offering `alpn`, and its local address.
async fn tls_to(
    addr: SocketAddr,
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
    alpn: &[&[u8]],
) -> (tokio_rustls::client::TlsStream<TcpStream>, SocketAddr) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tls_connector(cert, alpn).connect(name, tcp).await.unwrap();
    (tls, local)
}

/// A TURN client (alice) over TLS to `addr` offering `alpn`, which the server must choose.
async fn tls_client(
    addr: SocketAddr,
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
    alpn: &[&[u8]],
) -> Client {
    let (tls, local) = tls_to(addr, cert, alpn).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), alpn.first().copied());
    client(
        addr,
        StreamConn::new(tls, addr, local),
        "alice",
        "alice-password",
    )
    .await
}

/// An HTTP/1.1 request on `stream`; the whole response.
async fn http1<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// A STUN Binding request's 20 bytes.
const BINDING: [u8; 20] = [
    0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
];

/// A server with HTTPS on `web.tls_listen` and `web.accept_turn` as given; its certificate.
fn web_tls_server(
    accept_turn: &str,
    turn_extra: &str,
) -> (Server, rcgen::CertifiedKey<rcgen::KeyPair>) {
    let dir = common::temp_dir("turn-web-port");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start(&format!(
        "[web]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\naccept_turn = \"{accept_turn}\"\nheader_timeout = \"1s\"\n\
         [turn]\nlisten = [\"127.0.0.1:0\"]\nsecrets = [\"{SECRET}\"]\nallow_peers = [\"127.0.0.0/8\"]\n{turn_extra}\n\
         [turn.users]\nalice = \"alice-password\"\n\
         [tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    ));
    (server, cert)
}

/// TURN over TLS on the port and certificate that serve the pages: a client without ALPN (as
/// browsers connect for `turns:`) and one offering "stun.turn" relay; HTTP/2 and HTTP/1.1 get
/// pages on the same port; `/api/ice` hands the port out last.
#[tokio::test]
async fn turn_shares_the_https_port_with_the_pages() {
    let (server, cert) = web_tls_server("tls", "");
    let https = server.web_tls.expect("an HTTPS listener");

    let c = tls_client(https, &cert, &[]).await;
    relay_both_ways(&c, 20).await;
    c.close().await.unwrap();

    let c = tls_client(https, &cert, &[b"stun.turn"]).await;
    relay_both_ways(&c, 3).await;
    c.close().await.unwrap();

    let (tls, _) = tls_to(https, &cert, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let page = h2
        .send_request(
            hyper::Request::get(format!("https://localhost:{}/", https.port()))
                .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.status(), 200);

    let (tls, _) = tls_to(https, &cert, &[b"http/1.1"]).await;
    let ice = http1(tls, "/api/ice").await;
    assert!(ice.starts_with("HTTP/1.1 200"), "{ice}");
    let urls = ice
        .split("\"urls\":[")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    let web_port = format!("\"turns:127.0.0.1:{}?transport=tcp\"", https.port());
    assert!(urls.ends_with(&web_port), "the web port comes last: {urls}");
    assert!(
        urls.starts_with(&format!("\"stun:127.0.0.1:{}\"", server.turn.port())),
        "{urls}"
    );

    // Twenty relayed to the client over the web port without ALPN, three with it.
    let (tls, _) = tls_to(https, &cert, &[]).await;
    let metrics = http1(tls, "/metrics").await;
    assert!(
        metrics.contains("rallypoint_turn_relayed_packets_total{direction=\"to_client\"} 23"),
        "{metrics}"
    );

    // The plain port does not take TURN with "tls": a STUN message there is a bad request.
    let mut plain = TcpStream::connect(server.web).await.unwrap();
    plain.write_all(&BINDING).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// "all" takes TURN over TCP on the plain port too; "off" on neither, and hands neither out.
/// TURN clients that come through the web ports are held to the relay's stream caps.
#[tokio::test]
async fn accept_turn_all_and_off() {
    let (server, _cert) = web_tls_server("all", "max_stream_connections_per_source = 1");
    let stream = TcpStream::connect(server.web).await.unwrap();
    let local = stream.local_addr().unwrap();
    let c = client(
        server.web,
        StreamConn::new(stream, server.web, local),
        "alice",
        "alice-password",
    )
    .await;
    relay_both_ways(&c, 3).await;
    // The one stream this source may have is in use: another TURN client is closed at once,
    // while HTTP on the same port is the web server's and goes on.
    let mut second = TcpStream::connect(server.web).await.unwrap();
    second.write_all(&BINDING).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, second.read_to_end(&mut answer)).await;
    assert!(answer.is_empty(), "closed without an answer: {answer:?}");
    let redirect = http1(TcpStream::connect(server.web).await.unwrap(), "/").await;
    assert!(redirect.starts_with("HTTP/1.1 308"), "{redirect}");
    c.close().await.unwrap();
    // One that sends nothing is closed at the web's header timeout, as if it were HTTP.
    let mut silent = TcpStream::connect(server.web).await.unwrap();
    let opened = Instant::now();
    let mut b = [0u8; 1];
    let read = tokio::time::timeout(WAIT, silent.read(&mut b)).await;
    let closed = opened.elapsed();
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed, not timed out: {read:?}"
    );
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(3),
        "closed after {closed:?}"
    );
    drop(server);

    let (server, cert) = web_tls_server("off", "");
    let https = server.web_tls.unwrap();
    let (mut tls, _) = tls_to(https, &cert, &[]).await;
    tls.write_all(&BINDING).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let (tls, _) = tls_to(https, &cert, &[b"http/1.1"]).await;
    let ice = http1(tls, "/api/ice").await;
    assert!(!ice.contains(&format!(":{}?", https.port())), "{ice}");
    // A client asking for TURN by ALPN where it is off is closed, not answered as HTTP.
    let (mut tls, _) = tls_to(https, &cert, &[b"stun.turn"]).await;
    tls.write_all(&BINDING).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await;
    assert!(answer.is_empty(), "closed without an answer: {answer:?}");
}
