//! Three nodes as one cluster through a real `redis-server` on loopback (Debian's package):
//! ignored by a plain `cargo test`, which needs only the Rust toolchain, and said so in its
//! output; `cargo test --test cluster -- --ignored` runs them (`.ci/run` installs redis-server
//! and does). They find each other, hand out the same relay for a lobby and the least loaded
//! one otherwise, skip a draining node, forget a node killed with SIGKILL within its lease and a
//! node stopped cleanly at once, and carry on alone through a Redis outage, rejoining after it;
//! and players on three nodes meet in one lobby, exchange what WebRTC needs with nothing lost
//! or reordered, and are told when the lobby's node dies; a node restarted under its name gets
//! nothing meant for the process that died; players pressing Play on two nodes fill the same
//! lobbies; and through Sentinel the nodes follow a failover of the master.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ws::Client as Player;
use common::{Server, http_get, http_get_with};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use webrtc_turn::client::Client;

const LEASE: Duration = Duration::from_secs(3);
const SECRET: &str = "cluster-test-secret-0123456789";
const ADMIN_TOKEN: &str = "cluster-test-admin-token-0123456789-0123456789";

/// Godot's message types (GODOT.md).
const PEER_CONNECT: u64 = 2;
const PEER_DISCONNECT: u64 = 3;
const OFFER: u64 = 4;
const ANSWER: u64 = 5;
const CANDIDATE: u64 = 6;
/// The lobby extension's (docs/protocol.md).
const CREATE: u64 = 100;
const LOBBY: u64 = 101;
const SESSION: u64 = 102;
const JOIN_BY_CODE: u64 = 103;
const LIST: u64 = 104;
const LOBBIES: u64 = 105;
const RESUME: u64 = 108;
const RESUMED: u64 = 109;
const QUICK_JOIN: u64 = 112;
const ERROR: u64 = 199;

/// A `redis-server` of our own on a loopback port, without persistence.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16, dir: &std::path::Path) -> Redis {
        Redis::start_with(port, dir, &[])
    }

    /// [`Redis::start`] with more arguments (`--replicaof HOST PORT`, say).
    fn start_with(port: u16, dir: &std::path::Path, more: &[&str]) -> Redis {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                // A replica syncs at once, not after the default 5 s wait for more replicas.
                "--repl-diskless-sync-delay",
                "0",
            ])
            .arg("--dir")
            .arg(dir)
            .args(more);
        Redis::spawn(command, port)
    }

    /// A Sentinel on `port` watching master `rp` at `master` (quorum 2, down after 1 s), its
    /// configuration (which it rewrites) in `dir`.
    fn sentinel(port: u16, dir: &std::path::Path, master: u16) -> Redis {
        let conf = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor rp 127.0.0.1 {master} 2\n\
                 sentinel down-after-milliseconds rp 1000\nsentinel failover-timeout rp 4000\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut command = Command::new("redis-server");
        command.arg(&conf).arg("--sentinel");
        Redis::spawn(command, port)
    }

    fn spawn(mut command: Command, port: u16) -> Redis {
        let mut child = command
            .stderr(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-server (Debian's redis-server package; .ci/run installs it)");
        // It says when it listens; the rest of what it says is read and dropped.
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                // A server says the first, a Sentinel the second.
                if line.contains("Ready to accept connections") || line.contains("+monitor master")
                {
                    let _ = ready_tx.send(());
                }
            }
        });
        // Owned from here: a failure below kills it.
        let redis = Redis { child, port };
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("redis-server never said it was ready");
        assert!(Redis::pong(port), "redis-server does not answer PING");
        redis
    }

    fn pong(port: u16) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let mut buf = [0; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// One command's reply line, as RESP says it (`:1`, `+OK`, `$-1`, ...), or a bulk string's
    /// content.
    fn command(&self, words: &[&str]) -> String {
        use std::io::{BufRead, BufReader, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut request = format!("*{}\r\n", words.len());
        for w in words {
            request += &format!("${}\r\n{w}\r\n", w.len());
        }
        s.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        // A bulk string: its content, on the next line.
        if line.starts_with('$') && !line.starts_with("$-1") {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        line.trim_end().to_string()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node named `name` on the Redis at `redis`, whose queue for other nodes holds 16 KiB (one
/// large message goes over it; a burst of players better not: [`two_nodes`] keeps the default).
fn config(name: &str, redis: &str, draining: bool) -> String {
    let lines = format!("redis = \"{redis}\"\nmax_outbound_bytes = \"16KiB\"");
    config_with(name, &lines, draining)
}

/// [`config`] with `redis` the `[cluster]` lines that say where Redis is.
fn config_with(name: &str, redis: &str, draining: bool) -> String {
    config_with_signal(name, redis, draining, "")
}

/// [`config_with`] with `signal` more lines of its `[signal]` section.
fn config_with_signal(name: &str, redis: &str, draining: bool, signal: &str) -> String {
    format!(
        "[server]\nshutdown_grace = \"3s\"\n[web]\nlisten = [\"127.0.0.1:0\"]\nice_api_per_minute = 1000\n\
         [turn]\nlisten = [\"127.0.0.1:0\"]\nsecrets = [\"{SECRET}\"]\n\
         [signal]\nmessage_rate = 5000\nmessage_burst = 5000\nlist_rate = 0\n{signal}\
         [cluster]\n{redis}\nnode = \"{name}\"\nlease = \"{}s\"\ndraining = {draining}\n\
         [admin]\ntokens = [\"{ADMIN_TOKEN}\"]\n",
        LEASE.as_secs()
    )
}

fn health(server: &Server) -> Value {
    let (status, body) = http_get(server.web, "/healthz");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The node names `server` counts alive, with their allocations as it last heard.
fn view(server: &Server) -> Vec<(String, u64, bool)> {
    health(server)["cluster"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_string(),
                n["allocations"].as_u64().unwrap(),
                n["draining"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn names(server: &Server) -> Vec<String> {
    view(server).into_iter().map(|(n, _, _)| n).collect()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// Which node's relay `/api/ice` (with `query`) on `server` hands out.
fn relay_of(server: &Server, query: &str, nodes: &[(&str, &Server)]) -> String {
    let (status, body) = http_get(server.web, &format!("/api/ice{query}"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let first = v["iceServers"][0]["urls"][0].as_str().unwrap().to_string();
    nodes
        .iter()
        .find(|(_, s)| first == format!("stun:{}", s.turn))
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| panic!("{first} is no node's"))
}

/// An allocation on `server`'s relay with a credential it minted, kept while the client lives.
async fn allocate(server: &Server) -> (Client, impl Sized + use<>) {
    let (_, body) = http_get(server.web, "/api/ice");
    let client = common::turn_client(server.turn, &serde_json::from_str(&body).unwrap()).await;
    let relay = client.allocate().await.unwrap();
    (client, relay)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian's redis-server: apt install redis-server, then cargo test --test cluster -- --ignored (.ci/run does)"]
async fn three_nodes_share_relays_and_survive_a_dead_node_and_a_redis_outage() {
    let dir = common::temp_dir("redis");
    let mut redis = Redis::start(free_port(), &dir);
    let mut a = Server::start(&config("a", &redis.url(), false));
    let b = Server::start(&config("b", &redis.url(), false));
    let mut c = Server::start(&config("c", &redis.url(), false));
    let all = [("a", &a), ("b", &b), ("c", &c)];
    for (_, s) in &all {
        wait_until("every node sees all three", LEASE, || {
            names(s) == ["a", "b", "c"] && health(s)["status"] == "ok"
        });
    }

    // A second process named like a running node stays out, says why, and takes nothing with
    // it when it stops.
    let impostor = Server::start(&config("a", &redis.url(), false));
    wait_until("the impostor is refused", LEASE, || {
        let h = health(&impostor);
        h["status"] == "degraded"
            && h["cluster"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("held by another running node"))
    });
    let mut impostor = impostor;
    impostor.signal(libc::SIGTERM);
    assert!(impostor.wait_exit(Duration::from_secs(10)).success());
    assert_eq!(redis.command(&["EXISTS", "{rallypoint}:node:a"]), ":1");
    assert_eq!(names(&b), ["a", "b", "c"]);
    assert_eq!(
        relay_of(&b, "?lobby=L0", &all),
        relay_of(&a, "?lobby=L0", &all)
    );

    // A lobby's players get one relay whichever node they ask; lobbies spread over the nodes.
    let mut used = std::collections::BTreeSet::new();
    for i in 0..12 {
        let query = format!("?lobby=L{i}");
        let picks: Vec<String> = all.iter().map(|(_, s)| relay_of(s, &query, &all)).collect();
        assert!(
            picks.iter().all(|p| *p == picks[0]),
            "lobby L{i}: {picks:?}"
        );
        used.insert(picks[0].clone());
    }
    assert!(used.len() >= 2, "12 lobbies all on {used:?}");

    // Without a lobby: the least loaded. Two allocations on a, one on b: c, as every node sees
    // once the records are renewed.
    let _load = (allocate(&a).await, allocate(&a).await, allocate(&b).await);
    for (_, s) in &all {
        wait_until("the loads are published", LEASE, || {
            view(s)[..2] == [("a".into(), 2, false), ("b".into(), 1, false)]
        });
    }
    for (_, s) in &all {
        assert_eq!(relay_of(s, "", &all), "c");
    }

    // c drains (a reload): handed out no more, for a lobby or without one.
    std::fs::write(&c.config, config("c", &redis.url(), true)).unwrap();
    c.signal(libc::SIGHUP);
    wait_until("a sees c draining", LEASE, || view(&a)[2].2);
    for i in 0..12 {
        assert_ne!(relay_of(&a, &format!("?lobby=L{i}"), &all), "c");
    }
    assert_eq!(
        health(&c)["cluster"]["status"],
        "ok",
        "draining is not degraded"
    );
    // A lobby created by a player on c lives on another node.
    let (mut host, lobby) = Player::host(c.web, true).await;
    wait_listed(&redis, &lobby);
    let owner = redis.command(&["GET", &format!("{{rallypoint}}:where:{lobby}")]);
    assert!(
        owner.starts_with("a/") || owner.starts_with("b/"),
        "{owner}"
    );
    let (mut guest, id) = Player::join(b.web, &lobby).await;
    assert_eq!(host.recv_json().await["type"], PEER_CONNECT);
    host.send_json(OFFER as u8, id, "created elsewhere").await;
    assert_eq!(
        relayed(&mut guest).await,
        (OFFER, 1, "created elsewhere".into())
    );

    // b killed: forgotten within its lease (from the kill), then never handed out.
    let killed = Instant::now();
    b.signal(libc::SIGKILL);
    wait_until(
        "a forgets b",
        LEASE + LEASE / 3 + Duration::from_secs(1),
        || names(&a) == ["a", "c"],
    );
    // Its last renewal was at most a third of the lease before the kill.
    assert!(
        killed.elapsed() >= LEASE - LEASE / 3 - Duration::from_millis(100),
        "forgotten before its lease ran out"
    );
    for i in 0..12 {
        assert_eq!(
            relay_of(&a, &format!("?lobby=L{i}"), &all),
            "a",
            "b dead, c draining"
        );
    }

    // Redis down: a carries on alone (its own relay), says so, and rejoins when it is back.
    let port = redis.port;
    redis.stop();
    wait_until("a degraded", LEASE, || {
        let h = health(&a);
        h["status"] == "degraded" && h["cluster"]["redis"] == "down"
    });
    assert_eq!(names(&a), ["a"]);
    assert_eq!(relay_of(&a, "?lobby=L0", &all), "a");
    assert_eq!(relay_of(&a, "", &all), "a");
    let log = a.wait_log("Redis unreachable");
    assert!(log.contains("own relay"), "{log}");
    let mut redis = Redis::start(port, &dir);
    wait_until("a and c rejoin", 2 * LEASE, || {
        names(&a) == ["a", "c"] && names(&c) == ["a", "c"] && health(&a)["status"] == "ok"
    });
    a.wait_log("joined through Redis");
    let outage_lines = a.log.iter().filter(|l| l.contains("Redis unreachable"));
    assert_eq!(
        outage_lines.count(),
        1,
        "one line for the outage, not one per renewal"
    );

    // c stopped cleanly: its record goes with it, before its lease would have run out.
    c.signal(libc::SIGTERM);
    let stopped = Instant::now();
    assert!(c.wait_exit(Duration::from_secs(10)).success());
    wait_until("a forgets c at once", LEASE, || names(&a) == ["a"]);
    // Expiry would take at least two thirds of the lease from the stop.
    assert!(
        stopped.elapsed() < LEASE - LEASE / 3,
        "taken out, not expired"
    );
    common::wait_for_metrics(
        a.web,
        &[
            "rallypoint_cluster_nodes 1",
            "rallypoint_cluster_redis_up 1",
        ],
    )
    .await;
    redis.stop();
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until the directory in Redis lists `lobby` (its node claims it a round trip after
/// creating it).
fn wait_listed(redis: &Redis, lobby: &str) {
    let key = format!("{{rallypoint}}:where:{lobby}");
    wait_until("the lobby is in the directory", LEASE, || {
        redis.command(&["EXISTS", &key]) == ":1"
    });
}

/// The next relayed message (type, from, data): an offer, answer or candidate, skipping
/// everything else (join sequences, the extension's lobby states).
async fn relayed(player: &mut Player) -> (u64, u64, String) {
    loop {
        let v = player.recv_json().await;
        let kind = v["type"].as_u64().unwrap();
        if [OFFER, ANSWER, CANDIDATE].contains(&kind) {
            return (
                kind,
                v["id"].as_u64().unwrap(),
                v["data"].as_str().unwrap().to_string(),
            );
        }
    }
}

/// `player` is closed for a message `refused_by` could not queue for another node, counted
/// there (the first such refusal).
async fn lost_contact(player: &mut Player, refused_by: &Server) {
    assert_eq!(
        player.closed().await,
        (4000, "Lost contact with the lobby's server".to_string())
    );
    common::wait_for_metrics(
        refused_by.web,
        &[r#"rallypoint_cluster_envelopes_total{what="refused"} 1"#],
    )
    .await;
}

/// Reads `player`'s frames until `n` candidates have come or its socket is closed: how many
/// came, and the close's code and reason.
async fn candidates_until_closed(player: &mut Player, n: usize) -> (usize, Option<(u16, String)>) {
    let by = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while got < n {
        let frame = tokio::time::timeout_at(by, player.ws.next()).await;
        match frame.expect("a frame or a close in time") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                got += usize::from(v["type"] == CANDIDATE);
            }
            Some(Ok(Message::Close(Some(c)))) => {
                return (got, Some((c.code.into(), c.reason.to_string())));
            }
            Some(Ok(_)) => {}
            other => panic!("expected a frame or a close, got {other:?}"),
        }
    }
    (got, None)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian's redis-server: apt install redis-server, then cargo test --test cluster -- --ignored (.ci/run does)"]
async fn players_on_three_nodes_meet_in_one_lobby_and_are_told_when_its_node_dies() {
    let dir = common::temp_dir("redis-lobbies");
    let mut redis = Redis::start(free_port(), &dir);
    let a = Server::start(&config("a", &redis.url(), false));
    let b = Server::start(&config("b", &redis.url(), false));
    let mut c = Server::start(&config("c", &redis.url(), false));
    for s in [&a, &b, &c] {
        wait_until("every node sees all three", LEASE, || {
            names(s) == ["a", "b", "c"]
        });
    }

    // The host creates a mesh lobby on a; players on b and c join it by name.
    let (mut host, lobby) = Player::host(a.web, true).await;
    wait_listed(&redis, &lobby);
    let (mut on_b, id_b) = Player::join(b.web, &lobby).await;
    let (mut on_c, id_c) = Player::join(c.web, &lobby).await;
    assert!(id_b > 1 && id_c > 1 && id_b != id_c);

    // Offers, answers and candidates every way, interleaved: each receiver gets each sender's
    // in order, none missing.
    const N: usize = 60;
    for i in 0..N {
        let kind = [OFFER as u8, CANDIDATE as u8][i % 2];
        host.send_json(kind, id_b, &format!("h>b {i}")).await;
        host.send_json(kind, id_c, &format!("h>c {i}")).await;
        on_b.send_json(ANSWER as u8, 1, &format!("b>h {i}")).await;
        on_b.send_json(CANDIDATE as u8, id_c, &format!("b>c {i}"))
            .await;
        on_c.send_json(ANSWER as u8, 1, &format!("c>h {i}")).await;
    }
    let mut got = std::collections::BTreeMap::<(&str, u64), Vec<String>>::new();
    for (who, player, expected) in [
        ("host", &mut host, 2 * N),
        ("b", &mut on_b, N),
        ("c", &mut on_c, 2 * N),
    ] {
        for _ in 0..expected {
            let (_, from, data) = relayed(player).await;
            got.entry((who, from)).or_default().push(data);
        }
    }
    let sent = |tag: &str| (0..N).map(|i| format!("{tag} {i}")).collect::<Vec<_>>();
    assert_eq!(got[&("host", u64::from(id_b))], sent("b>h"));
    assert_eq!(got[&("host", u64::from(id_c))], sent("c>h"));
    assert_eq!(got[&("b", 1)], sent("h>b"));
    assert_eq!(got[&("c", 1)], sent("h>c"));
    assert_eq!(got[&("c", u64::from(id_b))], sent("b>c"));
    common::wait_for_metrics(b.web, &["rallypoint_cluster_attached_players 1"]).await;
    // b hears how many lobbies a has; a timed what b sent it.
    common::wait_for_metrics(b.web, &[r#"rallypoint_cluster_node_lobbies{node="a"} 1"#]).await;
    let (_, text) = http_get(a.web, "/metrics");
    let timed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("rallypoint_cluster_forward_latency_seconds_count "))
        .expect("the forward latency histogram")
        .parse()
        .unwrap();
    assert!(timed >= 2 * N as u64, "{timed} envelopes timed on a");

    // The lobby list is the cluster's: a public lobby created on b is listed on c (after its
    // next renewal) with c's own, and c's player joins it by the code it read there.
    let mut lister_host = Player::connect_extension(b.web).await;
    lister_host
        .send_extension(CREATE, json!({"public": true, "title": "on b"}))
        .await;
    let code = lister_host.next_extension(LOBBY).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut local_host = Player::connect_extension(c.web).await;
    local_host
        .send_extension(CREATE, json!({"public": true, "title": "on c"}))
        .await;
    local_host.next_extension(LOBBY).await;
    let mut browser = Player::connect_extension(c.web).await;
    let deadline = Instant::now() + LEASE;
    let titles = loop {
        browser.send_extension(LIST, json!({})).await;
        let page = browser.next_extension(LOBBIES).await;
        let titles: Vec<String> = page["lobbies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["title"].as_str().unwrap().to_string())
            .collect();
        if titles.contains(&"on b".to_string()) {
            break titles;
        }
        assert!(
            Instant::now() < deadline,
            "c never listed b's lobby: {titles:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        titles,
        ["on c", "on b"],
        "this node's first, then the others'"
    );
    browser
        .send_extension(JOIN_BY_CODE, json!({"lobby": code.to_lowercase()}))
        .await;
    let lobby_state = browser.next_extension(LOBBY).await;
    assert_eq!(lobby_state["title"], "on b");
    common::wait_for_metrics(a.web, &["rallypoint_cluster_guest_players 2"]).await;

    // A JOIN in a binary frame holding JSON (taken as text) is routed like any other.
    let mut binary = Player::connect(c.web).await;
    let join = json!({"type": 0, "id": 0, "data": lobby}).to_string();
    binary
        .ws
        .send(Message::binary(join.into_bytes()))
        .await
        .unwrap();
    assert_eq!(binary.recv_json().await["type"], 1, "ID from a's hub");
    common::wait_for_metrics(a.web, &["rallypoint_cluster_guest_players 3"]).await;

    // A message that would take what is queued for other nodes over cluster.max_outbound_bytes
    // (16 KiB here) closes its sender with a reason; counted, and logged once.
    let (mut big, _) = Player::join(c.web, &lobby).await;
    big.send_json(CANDIDATE as u8, 1, &"x".repeat(20_000)).await;
    lost_contact(&mut big, &c).await;
    c.wait_log("backing up");
    // So does a message for a player on another node that its lobby's node cannot send there:
    // the player is told on its own node, not left waiting.
    let (mut far, id_far) = Player::join(c.web, &lobby).await;
    host.send_json(CANDIDATE as u8, id_far, &"x".repeat(20_000))
        .await;
    lost_contact(&mut far, &a).await;
    // Even with the queue full (Redis pausing writes a moment while a host's frames for the
    // player pile up): the close goes over the budget, after the frames queued before it. (In a
    // lobby of its own: while the queue is full, whoever a frame is for is closed.)
    let (mut far_host, far_lobby) = Player::host(a.web, true).await;
    wait_listed(&redis, &far_lobby);
    let (mut far, id_far) = Player::join(c.web, &far_lobby).await;
    let mut tries = 0;
    let got = loop {
        tries += 1;
        assert_eq!(redis.command(&["CLIENT", "PAUSE", "500", "WRITE"]), "+OK");
        for i in 0..20 {
            far_host
                .send_json(CANDIDATE as u8, id_far, &format!("{i:01000}"))
                .await;
        }
        match candidates_until_closed(&mut far, 20).await {
            // All through: the machine stalled past the pause; again.
            (got, None) if tries < 5 => assert_eq!(got, 20),
            (got, close) => {
                let close = close.expect("closed once its queue was full");
                assert_eq!(close, (4000, "Lost contact with the lobby's server".into()));
                break got;
            }
        }
    };
    assert!(got < 20, "{got} of 20 frames before the close");

    // The lobby's node dies: its players elsewhere are told as if the host had left, once its
    // lease has run out.
    let killed = Instant::now();
    a.signal(libc::SIGKILL);
    for player in [&mut on_b, &mut on_c] {
        assert_eq!(
            player.closed().await,
            (4000, "Room host has disconnected".to_string())
        );
    }
    let waited = killed.elapsed();
    assert!(
        waited >= LEASE - LEASE / 3 - Duration::from_millis(100)
            && waited < LEASE + LEASE / 3 + Duration::from_secs(1),
        "told after {waited:?}"
    );

    // Redis down: a lobby on b goes on for players on b; a player on c asking for it is told
    // why it cannot join; after Redis is back, it can.
    let (mut host_b, lobby_b) = Player::host(b.web, true).await;
    wait_listed(&redis, &lobby_b);
    let port = redis.port;
    redis.stop();
    for s in [&b, &c] {
        wait_until("degraded", LEASE, || {
            health(s)["cluster"]["redis"] == "down"
        });
    }
    let (mut local, id_local) = Player::join(b.web, &lobby_b).await;
    host_b.send_json(OFFER as u8, id_local, "still here").await;
    assert_eq!(relayed(&mut local).await, (OFFER, 1, "still here".into()));
    let mut refused = Player::connect(c.web).await;
    refused.send_json(0, 0, &lobby_b).await;
    assert_eq!(
        refused.closed().await,
        (4000, "Lobby directory unavailable, try again".to_string())
    );
    let mut redis = Redis::start(port, &dir);
    wait_until("b and c back together", 2 * LEASE, || {
        names(&c) == ["b", "c"] && health(&c)["status"] == "ok"
    });
    wait_listed(&redis, &lobby_b);
    let (mut late, id_late) = Player::join(c.web, &lobby_b).await;
    late.send_json(ANSWER as u8, 1, "from c again").await;
    let (kind, from, data) = relayed(&mut host_b).await;
    assert_eq!(
        (kind, from, data.as_str()),
        (ANSWER, u64::from(id_late), "from c again")
    );

    // A player whose socket was on a node that dies resumes its place through another node.
    let d = Server::start(&config("d", &redis.url(), false));
    wait_until("d sees b", LEASE, || names(&d).contains(&"b".to_string()));
    let (mut ext_host, code) = Player::open_lobby(b.web).await;
    let mut traveller = Player::connect_extension(c.web).await;
    traveller
        .send_extension(JOIN_BY_CODE, json!({"lobby": code}))
        .await;
    let traveller_id = loop {
        let v = traveller.recv_json().await;
        if v["type"] == 1 {
            break v["id"].as_u64().unwrap() as u32;
        }
    };
    let token = traveller.next_extension(SESSION).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let id = ext_host.next_extension(LOBBY).await; // two players now
    assert_eq!(id["players"], 2);
    c.signal(libc::SIGKILL);
    let mut back = Player::connect_extension(d.web).await;
    back.send_extension(RESUME, json!({ "token": token })).await;
    back.next_extension(RESUMED).await;
    ext_host
        .send_json(OFFER as u8, traveller_id, "welcome back")
        .await;
    assert_eq!(relayed(&mut back).await, (OFFER, 1, "welcome back".into()));
    redis.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The instance of the process holding `node`'s record now ("" if none does).
fn instance_of(redis: &Redis, node: &str) -> String {
    let record = redis.command(&["GET", &format!("{{rallypoint}}:node:{node}")]);
    serde_json::from_str::<Value>(&record).map_or(String::new(), |r| {
        r["instance"].as_str().unwrap_or_default().to_string()
    })
}

/// A node restarted under its own name is a new process to the others: the players of the one
/// that died leave their lobbies (whether or not a renewal saw the node missing in between),
/// and nothing addressed to them reaches the new process's players, whose connection ids start
/// again from 1.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian's redis-server: apt install redis-server, then cargo test --test cluster -- --ignored (.ci/run does)"]
async fn a_node_restarted_under_its_name_gets_nothing_meant_for_its_previous_process() {
    let dir = common::temp_dir("redis-restart");
    let redis = Redis::start(free_port(), &dir);
    let a = Server::start(&config("a", &redis.url(), false));
    let e = Server::start(&config("e", &redis.url(), false));
    wait_until("a sees e", LEASE, || names(&a) == ["a", "e"]);
    let (mut host, lobby) = Player::host(a.web, true).await;
    wait_listed(&redis, &lobby);
    let (_first, first_id) = Player::join(e.web, &lobby).await;
    assert_eq!(peer_connected(&mut host).await, first_id);

    let before = instance_of(&redis, "e");
    e.signal(libc::SIGKILL);
    drop(e);
    // The new process takes the name once the dead one's record expires.
    let e = Server::start(&config("e", &redis.url(), false));
    wait_until("e's new process holds its name", 2 * LEASE, || {
        let now = instance_of(&redis, "e");
        !now.is_empty() && now != before
    });
    // The dead process's player leaves the lobby at a's next renewal.
    let left = tokio::time::timeout(LEASE, async {
        loop {
            let v = host.recv_json().await;
            if v["type"] == PEER_DISCONNECT && v["id"] == first_id {
                break;
            }
        }
    })
    .await;
    assert!(
        left.is_ok(),
        "the dead process's player is still in the lobby"
    );

    // The new process's players get connection ids 1, 2, ... again. Envelopes for the dead
    // process's connections 1 to 3 (as a would send them to its players) reach none of them.
    let (mut second, second_id) = Player::join(e.web, &lobby).await;
    let owner = redis.command(&["GET", &format!("{{rallypoint}}:where:{lobby}")]);
    for conn in 1..=3 {
        let frame = json!({"type": OFFER, "id": 1, "data": "for the dead process's player"});
        let envelope = json!({"t": "send", "conn": conn, "text": frame.to_string()});
        redis.command(&[
            "XADD",
            "{rallypoint}:inbox:e",
            "*",
            "from",
            &owner,
            "to",
            &format!("e/{before}"),
            "at",
            "0",
            "e",
            &envelope.to_string(),
        ]);
    }
    host.send_json(OFFER as u8, second_id, "for the new one")
        .await;
    assert_eq!(
        relayed(&mut second).await,
        (OFFER, 1, "for the new one".into())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The id of the next peer the host is told of.
async fn peer_connected(host: &mut Player) -> u32 {
    loop {
        let v = host.recv_json().await;
        if v["type"] == PEER_CONNECT {
            return v["id"].as_u64().unwrap() as u32;
        }
    }
}

/// What a client written from the docs expects of a cluster: a JOIN of a lobby that exists
/// nowhere is answered as on one node; a lobby's players get its node's relay whichever node
/// they ask and however they ask; an extension JOIN while Redis is away gets an ERROR and keeps
/// its socket; an undrained node is handed out again within a renewal.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian's redis-server: apt install redis-server, then cargo test --test cluster -- --ignored (.ci/run does)"]
async fn every_join_is_answered_and_a_lobby_has_one_relay() {
    let dir = common::temp_dir("redis-answers");
    let mut redis = Redis::start(free_port(), &dir);
    let a = Server::start(&config("a", &redis.url(), false));
    let b = Server::start(&config("b", &redis.url(), false));
    let both = [("a", &a), ("b", &b)];
    for (_, s) in &both {
        wait_until("both nodes see each other", LEASE, || {
            names(s) == ["a", "b"]
        });
    }

    // No such lobby anywhere, by name or code: refused at once, with the reference's reason,
    // not left to the join timeout.
    for name in ["NoSuchLobbyAnywhere", "K7M2PQ"] {
        let mut player = Player::connect(b.web).await;
        player.send_json(0, 0, name).await;
        assert_eq!(
            player.closed().await,
            (4000, "Lobby does not exists".into()),
            "{name}"
        );
    }

    // Lobbies created on a, plain and extension: every way of asking for their relay gives a.
    let mut hosts = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..6 {
        let (host, lobby) = Player::host(a.web, true).await;
        wait_listed(&redis, &lobby);
        keys.push(lobby);
        hosts.push(host);
    }
    let mut ext_host = Player::connect_extension(a.web).await;
    ext_host.send_extension(CREATE, json!({})).await;
    let info = ext_host.next_extension(LOBBY).await;
    let code = info["code"].as_str().unwrap().to_string();
    wait_listed(&redis, &code);
    keys.push(code.to_lowercase());
    keys.push(info["name"].as_str().unwrap().to_string());
    for key in &keys {
        for (node, s) in &both {
            assert_eq!(
                relay_of(s, &format!("?lobby={key}"), &both),
                "a",
                "lobby {key} asked on {node}"
            );
        }
    }
    // And one created on b is b's.
    let (_host_b, on_b) = Player::host(b.web, true).await;
    wait_listed(&redis, &on_b);
    assert_eq!(relay_of(&a, &format!("?lobby={on_b}"), &both), "b");

    // b drains, then is undrained: handed out again for new lobby names within a renewal of
    // a's (a third of the lease), counted from the reload.
    std::fs::write(&b.config, config("b", &redis.url(), true)).unwrap();
    b.signal(libc::SIGHUP);
    wait_until("a sees b draining", LEASE, || view(&a)[1].2);
    let fresh: Vec<String> = (0..16).map(|i| format!("fresh{i}")).collect();
    assert!(
        fresh
            .iter()
            .all(|l| relay_of(&a, &format!("?lobby={l}"), &both) == "a")
    );
    std::fs::write(&b.config, config("b", &redis.url(), false)).unwrap();
    b.signal(libc::SIGHUP);
    let took = wait_until("a hands b out again", LEASE, || {
        fresh
            .iter()
            .any(|l| relay_of(&a, &format!("?lobby={l}"), &both) == "b")
    });
    eprintln!("undrained b handed out again by a after {took:?}");

    // Redis away: an extension JOIN of another node's lobby gets an ERROR and its socket stays
    // (it may try again); a plain client is closed with the reason.
    redis.stop();
    wait_until("b degraded", LEASE, || {
        health(&b)["cluster"]["redis"] == "down"
    });
    let mut ext_player = Player::connect_extension(b.web).await;
    ext_player
        .send_extension(JOIN_BY_CODE, json!({"lobby": code}))
        .await;
    let error = ext_player.next_extension(ERROR).await;
    assert_eq!(error["code"], "unavailable", "{error}");
    assert_eq!(error["of"], JOIN_BY_CODE, "{error}");
    ext_player.send_extension(LIST, json!({})).await;
    ext_player.next_extension(LOBBIES).await;
    let mut plain = Player::connect(b.web).await;
    plain.send_json(0, 0, &keys[0]).await;
    assert_eq!(
        plain.closed().await,
        (4000, "Lobby directory unavailable, try again".into())
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// One address guessing lobby codes has `signal.failed_joins_per_minute` tries in the whole
/// cluster, not on each node: its tries spent on b (codes that exist nowhere), the code of a
/// private lobby on a is refused, asked on b (which would otherwise attach it to a, whose own
/// count of it is fresh) and on a. The count lives in Redis, for one minute.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian's redis-server: apt install redis-server, then cargo test --test cluster -- --ignored (.ci/run does)"]
async fn failed_joins_are_counted_once_for_the_whole_cluster() {
    let dir = common::temp_dir("redis-failed-joins");
    let redis = Redis::start(free_port(), &dir);
    let (a, b) = two_nodes(&redis);
    let (_host, code) = Player::open_lobby(a.web).await;
    wait_listed(&redis, &code);

    // Ten wrong codes on b, each on a socket of its own, all at once.
    let guesses = (0..10).map(|i| {
        let web = b.web;
        async move {
            let mut guesser = Player::connect_extension(web).await;
            guesser
                .send_extension(JOIN_BY_CODE, json!({"lobby": format!("ZZZZ{i:02}")}))
                .await;
            guesser.next_extension(ERROR).await["code"].clone()
        }
    });
    for answer in futures_util::future::join_all(guesses).await {
        assert_eq!(answer, "not_found");
    }
    let counter = "{rallypoint}:failed:0000000000000000000000007f000001";
    wait_until("the failures are counted in Redis", LEASE, || {
        redis.command(&["GET", counter]) == "10"
    });
    let ttl: i64 = redis.command(&["PTTL", counter])[1..].parse().unwrap();
    assert!(0 < ttl && ttl <= 60_000, "{ttl}");

    // The right code now, asked on either node: refused like any join from a spent address.
    for (node, web) in [("b", b.web), ("a", a.web)] {
        let mut guesser = Player::connect_extension(web).await;
        guesser
            .send_extension(JOIN_BY_CODE, json!({"lobby": code}))
            .await;
        let error = guesser.next_extension(ERROR).await;
        assert_eq!(error["code"], "rate_limited", "asked on {node}: {error}");
    }
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node's renewal claims its directory keys a few hundred to a Redis script call (one call
/// for all of a big node's held Redis from every other node's signalling): with 300 lobbies
/// (some 900 names, codes and resume keys) every one stays in the directory lease after lease.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian's redis-server: apt install redis-server, then cargo test --test cluster -- --ignored (.ci/run does)"]
async fn a_node_with_many_lobbies_renews_every_one() {
    let dir = common::temp_dir("redis-many-lobbies");
    let redis = Redis::start(free_port(), &dir);
    let a = Server::start(&config_with_signal(
        "a",
        &format!("redis = \"{}\"", redis.url()),
        false,
        "max_lobbies_per_address = 0\n",
    ));
    let mut hosts = Vec::new();
    for _ in 0..300 {
        hosts.push(Player::open_lobby(a.web).await);
    }
    let keys: Vec<String> = hosts
        .iter()
        .map(|(_, code)| format!("{{rallypoint}}:where:{code}"))
        .collect();
    let mut exists = vec!["EXISTS"];
    exists.extend(keys.iter().map(String::as_str));
    // Every key held at every look, until two leases have passed since the last was claimed:
    // one not renewed would have expired.
    let claimed = Instant::now();
    wait_until("two leases pass", LEASE * 3, || {
        assert_eq!(
            redis.command(&exists),
            ":300",
            "a lobby fell out of the directory"
        );
        claimed.elapsed() > LEASE * 2
    });
    drop(hosts);
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Nodes a and b on `redis`, once each sees the other.
fn two_nodes(redis: &Redis) -> (Server, Server) {
    two_nodes_with(&format!("redis = \"{}\"", redis.url()))
}

/// [`two_nodes`] with `lines` the `[cluster]` lines that say where Redis is.
fn two_nodes_with(lines: &str) -> (Server, Server) {
    let a = Server::start(&config_with("a", lines, false));
    let b = Server::start(&config_with("b", lines, false));
    for s in [&a, &b] {
        wait_until("both nodes see each other", LEASE, || {
            names(s) == ["a", "b"]
        });
    }
    (a, b)
}

/// Waits until a LIST on `server` shows a lobby named `name` (other nodes' lobbies come with
/// the renewal that reads them).
async fn wait_in_list(server: &Server, name: &str) {
    let mut browser = Player::connect_extension(server.web).await;
    let deadline = Instant::now() + LEASE * 2;
    loop {
        browser.send_extension(LIST, json!({})).await;
        let page = browser.next_extension(LOBBIES).await;
        let lobbies = page["lobbies"].as_array().unwrap();
        if lobbies.iter().any(|l| l["name"] == name) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never listed: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian's redis-server: apt install redis-server, then cargo test --test cluster -- --ignored (.ci/run does)"]
async fn players_pressing_play_on_two_nodes_at_once_fill_the_same_lobbies() {
    let dir = common::temp_dir("redis-play");
    let redis = Redis::start(free_port(), &dir);
    let (a, b) = two_nodes(&redis);

    // Twenty players, ten on each node, press Play at once: five full lobbies, not ten.
    let mut players = Vec::new();
    for i in 0..20 {
        players.push(Player::connect_extension(if i % 2 == 0 { a.web } else { b.web }).await);
    }
    let play = json!({"create": {"max_players": 4}});
    futures_util::future::join_all(
        players
            .iter_mut()
            .map(|p| p.send_extension(QUICK_JOIN, play.clone())),
    )
    .await;
    let lobbies =
        futures_util::future::join_all(players.iter_mut().map(|p| p.next_extension(LOBBY))).await;
    let mut members = std::collections::HashMap::<String, usize>::new();
    for lobby in &lobbies {
        *members
            .entry(lobby["name"].as_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(members.len(), 5, "{members:?}");
    assert!(members.values().all(|&n| n == 4), "{members:?}");
    // The dashboard of either node lists both nodes, and its own lobbies (all five on one).
    let bearer = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let mut own = 0;
    for s in [&a, &b] {
        let (status, body) = http_get_with(s.web, "/_rallypoint/admin/api/state", &bearer);
        assert_eq!(status, 200, "{body}");
        let state: Value = serde_json::from_str(&body).unwrap();
        let nodes: Vec<&str> = state["health"]["cluster"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node"].as_str().unwrap())
            .collect();
        assert_eq!(nodes, ["a", "b"], "{state}");
        own += state["lobbies"].as_array().unwrap().len();
    }
    assert_eq!(own, 5);

    // A lobby another node lists is joined there; one with a password never is.
    let mut host = Player::connect_extension(b.web).await;
    host.send_extension(CREATE, json!({"public": true, "data": {"mode": "ctf"}}))
        .await;
    let on_b = host.next_extension(LOBBY).await;
    let mut locked = Player::connect_extension(b.web).await;
    locked
        .send_extension(
            CREATE,
            json!({"public": true, "password": "pw", "data": {"mode": "dm"}}),
        )
        .await;
    let locked = locked.next_extension(LOBBY).await;
    for lobby in [&on_b, &locked] {
        wait_in_list(&a, lobby["name"].as_str().unwrap()).await;
    }
    let mut player = Player::connect_extension(a.web).await;
    player
        .send_extension(QUICK_JOIN, json!({"filter": {"mode": "ctf"}}))
        .await;
    let joined = player.next_extension(LOBBY).await;
    assert_eq!(
        (joined["name"].clone(), joined["players"].clone()),
        (on_b["name"].clone(), json!(2))
    );
    let mut player = Player::connect_extension(a.web).await;
    player
        .send_extension(QUICK_JOIN, json!({"filter": {"mode": "dm"}}))
        .await;
    let opened = player.next_extension(LOBBY).await;
    assert_ne!(opened["name"], locked["name"]);
    assert_eq!(
        (opened["players"].clone(), opened["data"].clone()),
        (json!(1), json!({"mode": "dm"}))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Redis without a single point of failure: a master, a replica and three Sentinels (Debian's
/// redis-server in `--sentinel` mode); the nodes find the master through the Sentinels. The
/// master is killed: both nodes report Redis up through the promoted replica within 20 s, and a
/// lobby created after it on one node is joined from the other.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian's redis-server: apt install redis-server, then cargo test --test cluster -- --ignored (.ci/run does)"]
async fn through_sentinel_the_nodes_follow_a_failover() {
    let dir = common::temp_dir("redis-sentinel");
    let mut master = Redis::start(free_port(), &dir);
    let replica_dir = dir.join("replica");
    std::fs::create_dir_all(&replica_dir).unwrap();
    let replica = Redis::start_with(
        free_port(),
        &replica_dir,
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    master.command(&["SET", "probe", "1"]);
    wait_until(
        "the replica follows the master",
        Duration::from_secs(10),
        || replica.command(&["GET", "probe"]) == "1",
    );
    let sentinels: Vec<Redis> = (0..3)
        .map(|_| Redis::sentinel(free_port(), &dir, master.port))
        .collect();
    // Each knows the replica and the two other Sentinels before anything fails.
    for s in &sentinels {
        wait_until(
            "the Sentinels know each other and the replica",
            Duration::from_secs(30),
            || {
                s.command(&["SENTINEL", "REPLICAS", "rp"]).starts_with("*1")
                    && s.command(&["SENTINEL", "SENTINELS", "rp"])
                        .starts_with("*2")
            },
        );
    }
    let listed: Vec<String> = sentinels
        .iter()
        .map(|s| format!("\"127.0.0.1:{}\"", s.port))
        .collect();
    let through = format!(
        "sentinels = [{}]\nsentinel_master = \"rp\"",
        listed.join(", ")
    );
    let (a, b) = two_nodes_with(&through);

    master.stop();
    let took = wait_until(
        "both nodes report Redis up through the promoted replica",
        Duration::from_secs(20),
        || {
            let promoted = replica.command(&["ROLE"]).starts_with("*3");
            promoted
                && [&a, &b]
                    .iter()
                    .all(|s| health(s)["cluster"]["redis"] == "up" && names(s) == ["a", "b"])
        },
    );
    assert!(took <= Duration::from_secs(20), "{took:?}");

    // A lobby made after the failover, on a, is joined from b.
    let (_host, code) = Player::open_lobby(a.web).await;
    wait_listed(&replica, &code);
    let mut guest = Player::connect_extension(b.web).await;
    guest
        .send_extension(JOIN_BY_CODE, json!({"lobby": code}))
        .await;
    let joined = guest.next_extension(LOBBY).await;
    assert_eq!(
        (joined["code"].clone(), joined["players"].clone()),
        (json!(code), json!(2))
    );
    drop(sentinels);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A player whose JOIN is refused on its own node (a mistyped code) may join another node's
/// lobby next, on the same socket: a refused JOIN settles nothing.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Debian's redis-server: apt install redis-server, then cargo test --test cluster -- --ignored (.ci/run does)"]
async fn one_socket_joins_across_nodes_until_it_is_in_a_lobby() {
    let dir = common::temp_dir("redis-mistyped");
    let redis = Redis::start(free_port(), &dir);
    let (a, b) = two_nodes(&redis);
    let (mut host, code) = Player::open_lobby(a.web).await;
    wait_listed(&redis, &code);

    let mut player = Player::connect_extension(b.web).await;
    player
        .send_extension(JOIN_BY_CODE, json!({"lobby": "ZZZZZZ"}))
        .await;
    assert_eq!(player.next_extension(ERROR).await["code"], "not_found");
    player
        .send_extension(JOIN_BY_CODE, json!({"lobby": code}))
        .await;
    assert_eq!(player.next_extension(LOBBY).await["code"], code.as_str());
    let id = peer_connected(&mut host).await;
    player.send_json(OFFER as u8, 1, "offer").await;
    assert_eq!(
        relayed(&mut host).await,
        (OFFER, u64::from(id), "offer".into())
    );

    // A LIST and, in the same write, a JOIN of the other node's lobby: the list this node's hub
    // answered while the JOIN was looked up still arrives, before the lobby.
    let mut browser = Player::connect_extension(b.web).await;
    let request = |kind: u64, data: Value| {
        Message::text(json!({"type": kind, "id": 0, "data": data.to_string()}).to_string())
    };
    browser.ws.feed(request(LIST, json!({}))).await.unwrap();
    let join = request(JOIN_BY_CODE, json!({"lobby": code}));
    browser.ws.feed(join).await.unwrap();
    browser.ws.flush().await.unwrap();
    let mut kinds = Vec::new();
    while kinds.last() != Some(&LOBBY) {
        kinds.push(browser.recv_json().await["type"].as_u64().unwrap());
    }
    assert_eq!(kinds.first(), Some(&LOBBIES), "{kinds:?}");

    // A wrong password on the other node's lobby, then a lobby back on this node: joined here
    // (the node that refused the first join does not keep the player).
    let mut locked = Player::connect_extension(a.web).await;
    locked
        .send_extension(CREATE, json!({"password": "pw"}))
        .await;
    let locked = locked.next_extension(LOBBY).await["code"].clone();
    wait_listed(&redis, locked.as_str().unwrap());
    let (_home_host, home) = Player::open_lobby(b.web).await;
    let mut guesser = Player::connect_extension(b.web).await;
    let wrong = json!({"lobby": locked, "password": "nope"});
    guesser.send_extension(JOIN_BY_CODE, wrong).await;
    let refused = guesser.next_extension(ERROR).await;
    assert_eq!(refused["code"], "wrong_password", "{refused}");
    guesser
        .send_extension(JOIN_BY_CODE, json!({"lobby": home}))
        .await;
    assert_eq!(guesser.next_extension(LOBBY).await["code"], home.as_str());
    // In a lobby, for good: a JOIN of another node's lobby is refused where it is; so it is for
    // a player in another node's lobby (its node is told it entered).
    for (in_lobby, other) in [(&mut guesser, &code), (&mut player, &home)] {
        let join = json!({"lobby": other});
        in_lobby.send_extension(JOIN_BY_CODE, join).await;
        let refused = in_lobby.next_extension(ERROR).await;
        assert_eq!(refused["code"], "already_in_lobby");
    }
    drop((host, player, browser, guesser, a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
