//! Runs the real `rallypoint` binary as a child process on ephemeral ports, with a systemd notify
//! socket bound by the test, and reads what it says on that socket and on stderr.

#![allow(dead_code)] // each test binary uses its own part of this helper

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

pub mod ws;

pub const BIN: &str = env!("CARGO_BIN_EXE_rallypoint");

/// A fresh directory under the system temp dir, unique to this process and call.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rallypoint-test-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config that listens on ephemeral loopback ports only.
pub fn ephemeral_config(extra: &str) -> String {
    format!(
        "[server]\nshutdown_grace = \"3s\"\n{extra}\n[web]\nlisten = [\"127.0.0.1:0\"]\n[turn]\nlisten = [\"127.0.0.1:0\"]\nsecrets = [\"0123456789abcdef0123\"]\n"
    )
}

pub struct Server {
    pid: i32,
    exit: Receiver<ExitStatus>,
    exited: Option<ExitStatus>,
    pub dir: PathBuf,
    pub config: PathBuf,
    notify: UnixDatagram,
    stderr: Receiver<String>,
    /// Every stderr line read so far.
    pub log: Vec<String>,
    pub web: SocketAddr,
    pub turn: SocketAddr,
    /// The first `turn.tls_listen` address, when there is one.
    pub turn_tls: Option<SocketAddr>,
    /// The first `web.tls_listen` address, when there is one.
    pub web_tls: Option<SocketAddr>,
}

impl Server {
    /// Starts the binary on `config_text` and waits for READY=1.
    pub fn start(config_text: &str) -> Server {
        Server::start_with_args(config_text, &[])
    }

    /// [`Server::start`] with more command-line arguments after `--config FILE`.
    pub fn start_with_args(config_text: &str, args: &[&str]) -> Server {
        let mut s = Server::spawn_with_args(config_text, args);
        let ready = s.wait_notification("READY=1");
        let status = ready
            .lines()
            .find_map(|l| l.strip_prefix("STATUS="))
            .expect("READY carries a STATUS");
        let addr = |name: &str| -> SocketAddr {
            status
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {status:?}"))
                .parse()
                .unwrap()
        };
        s.web = addr("web");
        s.turn = addr("turn");
        let optional = |name: &str| {
            status
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(|a| a.parse().unwrap())
        };
        s.turn_tls = optional("turn_tls");
        s.web_tls = optional("web_tls");
        s
    }

    /// Starts the binary without waiting for anything.
    pub fn spawn(config_text: &str) -> Server {
        Server::spawn_with_args(config_text, &[])
    }

    fn spawn_with_args(config_text: &str, args: &[&str]) -> Server {
        let dir = temp_dir("server");
        let config = dir.join("rallypoint.toml");
        std::fs::write(&config, config_text).unwrap();
        let notify_path = dir.join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(&dir)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let (tx, stderr) = channel();
        let pipe = child.stderr.take().unwrap();
        let (exit_tx, exit) = channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(child.wait().unwrap());
        });
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let unset: SocketAddr = "0.0.0.0:0".parse().unwrap();
        Server {
            pid,
            exit,
            exited: None,
            dir,
            config,
            notify,
            stderr,
            log: Vec::new(),
            web: unset,
            turn: unset,
            turn_tls: None,
            web_tls: None,
        }
    }

    /// The next datagram on the notify socket, which must contain `expected`.
    pub fn wait_notification(&mut self, expected: &str) -> String {
        self.notify
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = self.notify.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no notification containing {expected:?}: {e}; log:\n{}",
                self.drain_log()
            )
        });
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            msg.lines().any(|l| l == expected),
            "expected {expected:?}, got {msg:?}"
        );
        msg
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no log line containing {needle:?}; log:\n{}",
                        self.log.join("\n")
                    )
                }
            }
        }
    }

    pub fn drain_log(&mut self) -> String {
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(100)) {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let status = self
            .exit
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("still running after {limit:?}"));
        self.exited = Some(status);
        status
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn is_running(&mut self) -> bool {
        if let Ok(status) = self.exit.try_recv() {
            self.exited = Some(status);
        }
        self.exited.is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.is_running() {
            // SAFETY: as in `signal`.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.exit.recv_timeout(Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A minimal HTTP/1.1 GET over a fresh connection; returns the status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_with(addr, path, "")
}

/// [`http_get`] with `headers` ("Name: value\r\n" each) added.
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Polls `/metrics` until it has every line of `expected` (metrics are published once a second).
pub async fn wait_for_metrics(web: SocketAddr, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        poll.tick().await;
        // A fetch that fails (a connection cap still full, say) is tried again until the deadline.
        let fetched = tokio::task::spawn_blocking(move || http_get(web, "/metrics")).await;
        let text = match fetched {
            Ok((200, text)) => text,
            other => format!("no metrics yet: {other:?}"),
        };
        if expected.iter().all(|line| text.lines().any(|l| l == *line)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {expected:?}:\n{text}"
        );
    }
}

/// A TURN client over UDP with `credentials` (from ICE_SERVERS or /api/ice).
pub async fn turn_client(
    server: SocketAddr,
    credentials: &serde_json::Value,
) -> webrtc_turn::client::Client {
    let ice = &credentials["iceServers"][0];
    let conn = std::sync::Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let user = ice["username"].as_str().unwrap();
    let password = ice["credential"].as_str().unwrap();
    turn_client_over(server, conn, user, password).await
}

/// A TURN client of `server` over `conn` (UDP, or a stream framed as RFC 8656 §12.5 says) as
/// `user`, listening.
pub async fn turn_client_over(
    server: SocketAddr,
    conn: std::sync::Arc<dyn webrtc_util::Conn + Send + Sync>,
    user: &str,
    password: &str,
) -> webrtc_turn::client::Client {
    let c = webrtc_turn::client::Client::new(webrtc_turn::client::ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: user.into(),
        password: password.into(),
        realm: "rallypoint".into(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .unwrap();
    c.listen().await.unwrap();
    c
}
