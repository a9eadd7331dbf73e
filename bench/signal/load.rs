//! Signalling load generator: opens N WebSocket peers in lobbies of four on a running server,
//! then relays offers, answers and candidates between lobby members at a fixed rate.
//!
//! Prints the peers held, the messages per second relayed, the relay latency (p50/p99, and the
//! p99 of each second) from a message's sending to its arrival at this host (the kernel's receive
//! timestamp, [`arrival`]) and, beside it, to its reading by the generator, the server's memory
//! per connected peer (from /proc/PID/status) and CPU per message, and the generator's own CPU
//! and lateness (how late a 1 ms timer of its fires, the worst of each second: a tail the
//! generator causes shows there, and in the reading latency only). With
//! `--extension`, peers use rallypoint's lobby extension (subprotocol `rallypoint.v1`: public
//! lobbies created with options, joined by code), and `--list-queries N` then times N lobby-list
//! queries (LIST, one page) over the open lobbies. Without it, the load is Godot's plain protocol,
//! which Godot's reference server speaks too. Run it through `bench/signal/run`, which starts the
//! servers; by hand:
//!
//!   cargo bench --bench signal-load -- --url ws://127.0.0.1:8080/ws --server-pid PID \
//!       [--peers 10000] [--rate 5000] [--seconds 10] [--extension] [--list-queries 1000] \
//!       [--join-url ws://127.0.0.1:8081/ws[,ws://127.0.0.1:8082/ws]] [--sources 3] [--threads 2] \
//!       [--together DIR:N] [--latencies FILE]
//!
//! With `--join-url` (other nodes of the same cluster), each lobby's host connects to `--url`
//! and the three others to the join URLs (member n to the (n-1)th, cycling): every relay then
//! crosses nodes (through Redis). With `--sources N` the peers connect from 127.0.0.1 to
//! 127.0.0.N in turn: one source address has only some 28,000 ports for one server port. With
//! `--threads N` the generator runs on N threads, each sending to its share of the lobbies: one
//! thread offers about 40,000 messages a second at most. Past one process's open files, several
//! generators share a load: with `--together DIR:N` each starts its traffic once all N have
//! connected their peers (each leaves a file in DIR), and `--latencies FILE` writes every relay's
//! latency to its arrival (µs, one a line) for `bench/signal/run` to take percentiles over all
//! of them.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

mod arrival;
use arrival::{Arrival, Stamped, now_micros};

type Ws = WebSocketStream<Stamped>;
type Sink = SplitSink<Ws, Message>;

struct Args {
    url: String,
    /// Where lobby members other than the host connect (other nodes, comma separated: member n
    /// on the (n-1)th, cycling); `url` if unset.
    join_url: Option<String>,
    server_pid: u32,
    peers: usize,
    rate: u64,
    seconds: u64,
    extension: bool,
    list_queries: usize,
    /// Connect from this many loopback addresses (127.0.0.1, .2, ...): one address has some
    /// 28,000 ports to connect to one server port from.
    sources: usize,
    /// Threads of the generator (and senders, each to its share of the lobbies).
    threads: usize,
    /// Other generators sharing the load: start the traffic once this many have left a file in
    /// this folder.
    together: Option<(String, usize)>,
    /// Write every relay's latency here.
    latencies: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        join_url: None,
        server_pid: 0,
        peers: 10_000,
        rate: 5_000,
        seconds: 10,
        extension: false,
        list_queries: 0,
        sources: 1,
        threads: 1,
        together: None,
        latencies: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("flag needs a value").clone();
        match flag.as_str() {
            "--url" => a.url = value(),
            "--join-url" => a.join_url = Some(value()),
            "--server-pid" => a.server_pid = value().parse().expect("pid"),
            "--peers" => a.peers = value().parse().expect("peers"),
            "--rate" => a.rate = value().parse().expect("rate"),
            "--seconds" => a.seconds = value().parse().expect("seconds"),
            "--extension" => a.extension = true,
            "--list-queries" => a.list_queries = value().parse().expect("list queries"),
            "--sources" => a.sources = value().parse().expect("sources"),
            "--threads" => a.threads = value().parse().expect("threads"),
            "--together" => {
                let v = value();
                let (dir, n) = v.rsplit_once(':').expect("--together DIR:N");
                a.together = Some((dir.to_string(), n.parse().expect("a number of generators")));
            }
            "--latencies" => a.latencies = Some(value()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        !a.url.is_empty() && a.server_pid != 0,
        "--url and --server-pid are required"
    );
    assert!(
        a.peers >= 4 && a.peers.is_multiple_of(4),
        "--peers must be a multiple of 4"
    );
    assert!(
        a.threads >= 1 && a.threads <= a.peers / 4,
        "--threads must be between 1 and the number of lobbies"
    );
    a
}

/// Sends `total` messages at `rate` a second, from member i of each lobby to member i+1, cycling
/// through lobbies; nine in ten are candidates, the rest offers and answers. Each carries when it
/// was sent ([`now_micros`]).
async fn send(mut sinks: Vec<Vec<Member>>, rate: u64, total: u64) -> Vec<Vec<Member>> {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0u64;
    let traffic = Instant::now();
    while sent < total {
        tick.tick().await;
        let due = (traffic.elapsed().as_micros() as u64 * rate / 1_000_000).min(total);
        while sent < due {
            let l = (sent as usize) % sinks.len();
            let m = (sent as usize / sinks.len()) % 4;
            let to = sinks[l][(m + 1) % 4].id;
            let kind = match sent % 10 {
                0 => 4,
                1 => 5,
                _ => 6,
            };
            let micros = now_micros();
            let frame = serde_json::json!({"type": kind, "id": to, "data": payload(kind, micros)})
                .to_string();
            sinks[l][m].sink.send(Message::text(frame)).await.unwrap();
            sent += 1;
        }
    }
    sinks
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server is running");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("server is running");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// One relay received: when (ms since the traffic's epoch), and its latency in µs from being
/// sent to arriving at this host (the kernel's stamp) and to being read by the generator.
#[derive(Clone, Copy)]
struct Relay {
    at: u32,
    arrived: u32,
    read: u32,
}

/// One lobby member: where to write, and the id the others address it by.
struct Member {
    sink: Sink,
    id: u64,
}

async fn recv_json(stream: &mut SplitStream<Ws>) -> Value {
    loop {
        match stream.next().await.expect("open").expect("frame") {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            _ => continue,
        }
    }
}

/// The loopback address the next connection comes from, round robin over `--sources`.
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// A WebSocket to `url`: where to write, what it reads, and when its last read arrived.
async fn connect(url: &str, extension: bool, sources: usize) -> (Sink, SplitStream<Ws>, Arrival) {
    let mut request = url.into_client_request().expect("a ws:// URL");
    if extension {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("rallypoint.v1"),
        );
    }
    // tungstenite's default read buffer is 128 KiB per socket, zero-filled up to its capacity
    // before each read: at 10,000 sockets the generator would spend its time in memset and page
    // faults, and its own stalls would show up as relay latency. Signalling frames are small.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let host = request
        .uri()
        .authority()
        .expect("a host")
        .as_str()
        .to_string();
    let server = tokio::net::lookup_host(&host)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % sources;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if sources > 1 {
        socket
            .bind((Ipv4Addr::new(127, 0, 0, 1 + n as u8), 0).into())
            .expect("bind a loopback source address");
    }
    let stream = socket.connect(server).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (stream, arrival) = Stamped::new(stream).expect("receive timestamps");
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .expect("WebSocket handshake");
    let (sink, stream) = ws.split();
    (sink, stream, arrival)
}

/// An extension message: Godot's envelope, `data` a JSON object as a string.
fn ext(kind: u64, data: Value) -> Message {
    Message::text(serde_json::json!({"type": kind, "id": 0, "data": data.to_string()}).to_string())
}

/// Reads until a message of type `kind`; returns it.
async fn recv_type(stream: &mut SplitStream<Ws>, kind: u64) -> Value {
    loop {
        let v = recv_json(stream).await;
        if v["type"].as_u64() == Some(kind) {
            return v;
        }
    }
}

/// Opens a lobby of four, the host on `url` and the others on `join_urls` (member n on the
/// (n-1)th, cycling); returns the members and their streams, join sequences consumed. With the
/// extension: a public lobby with a title and data, joined by its code.
async fn lobby(
    url: &str,
    join_urls: &[String],
    extension: bool,
    sources: usize,
) -> Vec<(Member, SplitStream<Ws>, Arrival)> {
    let (mut sink, mut stream, arrival) = connect(url, extension, sources).await;
    let name = if extension {
        let options = serde_json::json!({"title": "bench", "public": true, "max_players": 8,
                                         "data": {"version": "1.0", "mode": "bench"}});
        sink.send(ext(100, options)).await.unwrap();
        let lobby = recv_type(&mut stream, 101).await;
        let lobby: Value = serde_json::from_str(lobby["data"].as_str().unwrap()).unwrap();
        lobby["code"].as_str().unwrap().to_string()
    } else {
        sink.send(Message::text(r#"{"type":0,"id":0,"data":""}"#))
            .await
            .unwrap();
        recv_json(&mut stream).await; // ID 1
        recv_json(&mut stream).await["data"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut members = vec![(Member { sink, id: 1 }, stream, arrival)];
    for n in 1..4 {
        let join_url = &join_urls[(n - 1) % join_urls.len()];
        let (mut sink, mut stream, arrival) = connect(join_url, extension, sources).await;
        let id = if extension {
            sink.send(ext(103, serde_json::json!({"lobby": name.to_lowercase()})))
                .await
                .unwrap();
            let id = recv_type(&mut stream, 1).await["id"].as_u64().unwrap();
            recv_type(&mut stream, 101).await; // after PEER_CONNECTs, JOIN, SESSION
            for (_, s, _) in members.iter_mut() {
                recv_type(s, 101).await; // PEER_CONNECT(newcomer), the new count
            }
            id
        } else {
            let join = serde_json::json!({"type": 0, "id": 0, "data": name}).to_string();
            sink.send(Message::text(join)).await.unwrap();
            let id = recv_json(&mut stream).await["id"].as_u64().unwrap();
            for _ in 0..n + 1 {
                recv_json(&mut stream).await; // PEER_CONNECTs, then JOIN
            }
            for (_, s, _) in members.iter_mut() {
                recv_json(s).await; // PEER_CONNECT(newcomer)
            }
            id
        };
        members.push((Member { sink, id }, stream, arrival));
    }
    members
}

/// Times `n` lobby-list queries, one after another, from one extension client; prints how many
/// lobbies are listed and the round trip p50/p99.
async fn time_list_queries(url: &str, n: usize) {
    let (mut sink, mut stream, _) = connect(url, true, 1).await;
    let mut times = Vec::with_capacity(n);
    let mut listed = (0, 0);
    for i in 0..n {
        let start = Instant::now();
        sink.send(ext(
            104,
            serde_json::json!({"filter": {"version": "1.0"}, "page": i % 20}),
        ))
        .await
        .unwrap();
        let answer = recv_type(&mut stream, 105).await;
        times.push(start.elapsed());
        let page: Value = serde_json::from_str(answer["data"].as_str().unwrap()).unwrap();
        let on_page = page["lobbies"].as_array().unwrap().len();
        listed = (page["pages"].as_u64().unwrap(), listed.1.max(on_page));
    }
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "list queries:          {n} (filtered on version, {} pages of up to {} public lobbies): \
         p50 {:.2} ms, p99 {:.2} ms",
        listed.0,
        listed.1,
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0
    );
}

/// A quantile (0.99: the p99; 1.0: the max) of each second's samples, given as (when, in ms;
/// value, in µs), printed in ms: where a tail is (the first pass over the peers, a burst at some
/// moment, or spread evenly).
fn by_second(arrivals: &[(u32, u32)], quantile: f64) -> String {
    let Some(first) = arrivals.iter().map(|&(at, _)| at).min() else {
        return String::new();
    };
    let mut seconds: Vec<Vec<u32>> = Vec::new();
    for &(at, latency) in arrivals {
        let s = ((at - first) / 1000) as usize;
        if seconds.len() <= s {
            seconds.resize(s + 1, Vec::new());
        }
        seconds[s].push(latency);
    }
    seconds
        .iter_mut()
        .map(|l| {
            l.sort_unstable();
            let at = ((l.len() as f64 * quantile) as usize).min(l.len().saturating_sub(1));
            format!("{:.1}", l.get(at).copied().unwrap_or(0) as f64 / 1000.0)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A payload of each kind, about the size Godot sends, stamped with the send time.
fn payload(kind: u64, micros: u64) -> String {
    match kind {
        4 | 5 => format!(
            "{micros}\n{}",
            "a=candidate-free SDP line padding 0123456789\r\n".repeat(20)
        ),
        _ => format!(
            "{micros}\n0\n0\ncandidate:842163049 1 udp 1677729535 203.0.113.9 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0"
        ),
    }
}

/// Leaves a file in `dir` and waits (two minutes at most) until `n` generators have.
async fn wait_for_each_other(dir: &str, n: usize) {
    std::fs::write(format!("{dir}/ready.{}", std::process::id()), "").expect("a ready file");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = std::fs::read_dir(dir)
            .expect("the folder of ready files")
            .count();
        if ready >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {ready} of {n} generators ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn main() {
    let a = args();
    let runtime = match a.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    runtime.expect("a runtime").block_on(run(a));
}

async fn run(a: Args) {
    let base_rss = rss_kib(a.server_pid);
    let start = Instant::now();

    // Connect everyone, 64 lobbies at a time.
    let gate = Arc::new(Semaphore::new(64));
    let extension = a.extension;
    let sources = a.sources;
    let join_urls: Arc<Vec<String>> = Arc::new(match &a.join_url {
        Some(list) => list.split(',').map(str::to_string).collect(),
        None => vec![a.url.clone()],
    });
    let mut joins = Vec::new();
    for _ in 0..a.peers / 4 {
        let gate = gate.clone();
        let url = a.url.clone();
        let join_urls = join_urls.clone();
        joins.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            lobby(&url, &join_urls, extension, sources).await
        }));
    }
    let mut lobbies = Vec::new();
    for j in joins {
        lobbies.push(j.await.unwrap());
    }
    let connect_time = start.elapsed();
    // Let the server settle (its tasks have finished their handshakes) before reading memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held_rss = rss_kib(a.server_pid);
    if a.list_queries > 0 {
        time_list_queries(&a.url, a.list_queries).await;
    }
    if let Some((dir, n)) = &a.together {
        wait_for_each_other(dir, *n).await;
    }

    // Readers: record the latency of every relay, to its arrival and to its reading.
    let relays = Arc::new(Mutex::new(Vec::<Relay>::with_capacity(
        (a.rate * a.seconds) as usize,
    )));
    let unstamped = Arc::new(AtomicU64::new(0));
    let mut sinks: Vec<Vec<Member>> = Vec::new();
    let epoch = Instant::now();
    for lobby in lobbies {
        let mut members = Vec::new();
        for (member, mut stream, arrival) in lobby {
            let (relays, unstamped) = (relays.clone(), unstamped.clone());
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    if let Message::Text(t) = msg {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        if let Some(sent) = v["data"]
                            .as_str()
                            .and_then(|d| d.split('\n').next()?.parse::<u64>().ok())
                        {
                            let read = now_micros().max(sent);
                            // A stamp from before the sending is not this frame's arrival
                            // (its read came without one): the reading stands in (never
                            // shorter), and is counted.
                            let stamp = arrival.load(Ordering::Relaxed);
                            let arrived = if stamp >= sent {
                                stamp.min(read)
                            } else {
                                unstamped.fetch_add(1, Ordering::Relaxed);
                                read
                            };
                            relays.lock().unwrap().push(Relay {
                                at: epoch.elapsed().as_millis() as u32,
                                arrived: (arrived - sent) as u32,
                                read: (read - sent) as u32,
                            });
                        }
                    }
                }
            });
            members.push(member);
        }
        sinks.push(members);
    }

    // The generator's own lateness: a task that asks to wake every millisecond records how late
    // it woke, per second. A tail that shows here is the generator's, not the server's.
    let lag = Arc::new(Mutex::new(Vec::<(u32, u32)>::new()));
    let probe = {
        let lag = lag.clone();
        tokio::spawn(async move {
            loop {
                let asked = Instant::now() + Duration::from_millis(1);
                tokio::time::sleep_until(asked.into()).await;
                let late = asked.elapsed().as_micros() as u32;
                let at = epoch.elapsed().as_millis() as u32;
                lag.lock().unwrap().push((at, late));
            }
        })
    };
    let own_cpu_before = cpu_seconds(std::process::id());

    // Traffic (see `send`).
    let lobby_count = sinks.len();
    let cpu_before = cpu_seconds(a.server_pid);
    let total = a.rate * a.seconds;
    let traffic = Instant::now();
    // Sender k sends to lobbies k, k + threads, ...: its share of the rate.
    let mut shares: Vec<Vec<Vec<Member>>> = (0..a.threads).map(|_| Vec::new()).collect();
    for (l, lobby) in sinks.into_iter().enumerate() {
        shares[l % a.threads].push(lobby);
    }
    let senders: Vec<_> = (shares.into_iter().enumerate())
        .map(|(k, share)| {
            let n = a.threads as u64;
            let (rate, total) = (a.rate / n, total / n + u64::from((k as u64) < total % n));
            tokio::spawn(send(share, rate.max(1), total))
        })
        .collect();
    // The senders give their peers back, held open until the stragglers are in.
    let mut held = Vec::new();
    for sender in senders {
        held.push(sender.await.unwrap());
    }
    let send_time = traffic.elapsed();
    // Wait for stragglers, at most two seconds.
    let deadline = Instant::now() + Duration::from_secs(2);
    while relays.lock().unwrap().len() < total as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu_seconds(a.server_pid) - cpu_before;
    let own_cpu = cpu_seconds(std::process::id()) - own_cpu_before;
    probe.abort();
    let lag = lag.lock().unwrap().clone();
    let relays = relays.lock().unwrap().clone();
    let arrivals: Vec<(u32, u32)> = relays.iter().map(|r| (r.at, r.arrived)).collect();
    let readings: Vec<(u32, u32)> = relays.iter().map(|r| (r.at, r.read)).collect();
    let sorted = |of: &[(u32, u32)]| {
        let mut l: Vec<u32> = of.iter().map(|&(_, latency)| latency).collect();
        l.sort_unstable();
        l
    };
    let (l, read) = (sorted(&arrivals), sorted(&readings));
    let pct = |l: &[u32], p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };

    println!(
        "peers held:            {} in {} lobbies (connected in {:.1}s)",
        a.peers,
        lobby_count,
        connect_time.as_secs_f64()
    );
    println!(
        "server RSS:            {} KiB idle, {} KiB with peers -> {:.1} KiB per peer",
        base_rss,
        held_rss,
        (held_rss.saturating_sub(base_rss)) as f64 / a.peers as f64
    );
    println!(
        "relayed:               {} of {} sent ({:.0} msg/s offered, {:.0} msg/s received)",
        l.len(),
        total,
        total as f64 / send_time.as_secs_f64(),
        l.len() as f64 / send_time.as_secs_f64()
    );
    let ms = |micros: u32| micros as f64 / 1000.0;
    let unstamped = unstamped.load(Ordering::Relaxed);
    if unstamped > 0 {
        println!(
            "arrival unknown:       {unstamped} relays (no kernel stamp: their reading counted)"
        );
    }
    println!(
        "relay latency:         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (sent to arrived)",
        ms(pct(&l, 0.50)),
        ms(pct(&l, 0.99)),
        ms(pct(&l, 1.0))
    );
    println!("p99 by second:         {}", by_second(&arrivals, 0.99));
    println!(
        "as read:               p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (sent to read by the \
         generator); p99 by second {}",
        ms(pct(&read, 0.50)),
        ms(pct(&read, 0.99)),
        ms(pct(&read, 1.0)),
        by_second(&readings, 0.99)
    );
    println!("generator late, max by second: {}", by_second(&lag, 1.0));
    println!(
        "generator CPU:         {:.2} s ({:.0}% of the traffic's time)",
        own_cpu,
        own_cpu * 100.0 / send_time.as_secs_f64()
    );
    println!(
        "server CPU:            {:.2} s for {} messages ({:.1} µs per message)",
        cpu,
        l.len(),
        cpu * 1e6 / l.len().max(1) as f64
    );
    if let Some(file) = &a.latencies {
        let lines: Vec<String> = l.iter().map(u32::to_string).collect();
        std::fs::write(file, lines.join("\n")).expect("the latencies written");
    }
    // One line for bench/signal/run to compare servers with.
    println!(
        "summary: kib_per_peer={:.2} p50_ms={:.3} p99_ms={:.3} relayed={} sent={}",
        (held_rss.saturating_sub(base_rss)) as f64 / a.peers as f64,
        ms(pct(&l, 0.50)),
        ms(pct(&l, 0.99)),
        l.len(),
        total
    );
}
