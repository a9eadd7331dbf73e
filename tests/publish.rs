//! `rallypoint publish` and the operator API it uses (docs/publish.md), against the real server:
//! only the contents the server lacks are sent; a wrong token changes nothing and is limited; a
//! publish that stops half way leaves the live release alone, resumes where it stopped, keeps
//! a second publish out, and is cleaned up once silent.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{BIN, Server, ephemeral_config, http_get, temp_dir};
use serde_json::{Value, json};

const TOKEN: &str = "publish-test-token-0123456789-0123456789";

/// A Godot-shaped export: an engine of `engine` bytes (the same for the same number) and a
/// `.pck` saying `version`.
fn export(dir: &Path, engine: usize, version: u32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let wasm: Vec<u8> = (0..engine).map(|i| (i * 7 % 251) as u8).collect();
    let pck = format!("pck v{version};").repeat(2000);
    let html = format!(
        "<!DOCTYPE html><html><script src=\"index.js\"></script><script>const GODOT_CONFIG = \
         {{\"args\":[],\"executable\":\"index\",\"fileSizes\":{{\"index.pck\":{},\"index.wasm\":{}}}}};\
         </script></html>",
        pck.len(),
        wasm.len()
    );
    std::fs::write(dir.join("index.html"), html).unwrap();
    std::fs::write(dir.join("index.js"), "/* the engine's loader */").unwrap();
    std::fs::write(dir.join("index.wasm"), wasm).unwrap();
    std::fs::write(dir.join("index.pck"), pck).unwrap();
    dir.to_path_buf()
}

fn server(extra: &str) -> (Server, PathBuf) {
    let root = temp_dir("publish-root").join("www");
    let config = ephemeral_config(&format!("[admin]\ntokens = [\"{TOKEN}\"]\n{extra}"));
    let s = Server::start_with_args(&config, &["--root", root.to_str().unwrap()]);
    (s, root)
}

fn publish(web: SocketAddr, dir: &Path, token: &str) -> Output {
    std::process::Command::new(BIN)
        .args([
            "publish",
            dir.to_str().unwrap(),
            "--server",
            &format!("http://{web}"),
            "--fast",
        ])
        .env("RALLYPOINT_TOKEN", token)
        .output()
        .unwrap()
}

fn received(web: SocketAddr) -> u64 {
    let (_, text) = http_get(web, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("rallypoint_publish_received_bytes_total "))
        .map_or(0, |v| v.parse().unwrap())
}

fn live(root: &Path) -> String {
    std::fs::read_link(root)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// One request over a fresh connection: status and JSON body. `body` is sent whole unless
/// `cut` says how many of its bytes to send before closing the connection (a client killed half
/// way), which returns no answer.
fn call(
    web: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
    cut: Option<usize>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(web).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {web}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    if let Some(n) = cut {
        // Part of the body, then the end of the stream: what arrived is the server's to keep.
        s.write_all(&body[..n]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = s.read_to_end(&mut Vec::new());
        return (0, Value::Null);
    }
    s.write_all(body).unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text[9..12].parse().unwrap();
    let json = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn only_what_the_server_lacks_is_sent() {
    let (s, root) = server("");
    let dir = temp_dir("publish-export");
    let first = export(&dir.join("v1"), 2_000_000, 1);
    let out = publish(s.web, &first, TOKEN);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("live: http://{}/ (release ", s.web)),
        "{stdout}"
    );
    assert!(
        stderr.contains(" MB sent, ") && stderr.contains("switches it live"),
        "{stderr}"
    );
    let total: u64 = ["index.html", "index.js", "index.wasm", "index.pck"]
        .iter()
        .map(|f| std::fs::metadata(first.join(f)).unwrap().len())
        .sum();
    assert_eq!(received(s.web), total);
    let (status, page) = http_get(s.web, "/index.html");
    assert_eq!(status, 302, "the page goes to its release: {page}");
    let release = live(&root);

    // The same export again: nothing but the manifest goes, and a new release is live.
    let out = publish(s.web, &first, TOKEN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = received(s.web) - total;
    assert!(again * 20 <= total, "sent {again} of {total} bytes again");
    assert_ne!(live(&root), release);

    // A new .pck with the same engine: about the .pck is sent.
    let second = export(&dir.join("v2"), 2_000_000, 2);
    let before = received(s.web);
    let out = publish(s.web, &second, TOKEN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pck = std::fs::metadata(second.join("index.pck")).unwrap().len();
    assert_eq!(
        received(s.web) - before,
        pck,
        "the .pck alone (the page and engine are the same)"
    );
    let served = std::fs::read_to_string(root.join("index.pck")).unwrap();
    assert!(served.starts_with("pck v2;"));
}

#[test]
fn a_wrong_token_changes_nothing_and_is_limited() {
    let (s, root) = server("failed_tokens_per_minute = 3\n");
    let dir = export(&temp_dir("publish-export"), 10_000, 1);
    let out = publish(s.web, &dir, TOKEN);
    assert!(out.status.success());
    let release = live(&root);
    // Without a token: nothing (and no wrong token counted).
    let (status, body) = call(
        s.web,
        "POST",
        "/_rallypoint/admin/api/publish",
        "",
        b"{}",
        None,
    );
    assert_eq!(status, 401, "{body}");
    for _ in 0..3 {
        let out = publish(s.web, &dir, "not-the-token-0123456789-0123456789-x");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("refused (401): wrong token"), "{stderr}");
    }
    // Spent: the right token is refused too, for a while, with when to try again.
    let out = publish(s.web, &dir, TOKEN);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused (429): too many wrong tokens"),
        "{stderr}"
    );
    assert_eq!(live(&root), release);
    let (_, metrics) = http_get(s.web, "/metrics");
    assert!(
        metrics.contains("rallypoint_admin_refused_total{reason=\"wrong_token\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("rallypoint_admin_refused_total{reason=\"rate_limited\"} 1"));
    // A token over plain HTTP to another machine is never sent.
    let out = std::process::Command::new(BIN)
        .args([
            "publish",
            dir.to_str().unwrap(),
            "--server",
            "http://192.0.2.1",
            "--token",
            TOKEN,
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to send the token in clear"));
}

#[test]
fn a_publish_stopped_half_way_changes_nothing_resumes_and_is_cleaned_up() {
    let (s, root) = server("");
    let dir = export(&temp_dir("publish-export"), 10_000, 1);
    assert!(publish(s.web, &dir, TOKEN).status.success());
    let release = live(&root);

    // A new engine: the manifest, then half its bytes, and the client is gone.
    let wasm: Vec<u8> = (0..300_000u32).map(|i| (i % 13) as u8).collect();
    let entry = |path: &str, bytes: &[u8]| json!({"path": path, "size": bytes.len(), "sha256": sha256(bytes)});
    let mut files = vec![entry("index.wasm", &wasm)];
    for f in ["index.html", "index.js", "index.pck"] {
        files.push(entry(f, &std::fs::read(dir.join(f)).unwrap()));
    }
    let manifest = json!({"files": files}).to_string();
    let api = "/_rallypoint/admin/api/publish";
    let (status, started) = call(s.web, "POST", api, TOKEN, manifest.as_bytes(), None);
    assert_eq!(status, 201, "{started}");
    // What the kept release has is not asked for.
    assert_eq!(started["missing"].as_array().unwrap().len(), 1, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let blob = format!("{api}/{id}/blobs/{}", sha256(&wasm));
    call(s.web, "PUT", &blob, TOKEN, &wasm, Some(100_000));
    // The server answered the cut request (its body ended early) after keeping what came.
    let (_, status) = call(s.web, "GET", &format!("{api}/{id}"), TOKEN, b"", None);
    let got = status["missing"][0]["received"].as_u64().unwrap();
    assert!(
        got > 0 && got <= 100_000,
        "{got} bytes kept of the 100000 sent"
    );
    assert_eq!(live(&root), release, "nothing live changed");

    // Another publish meanwhile is refused with a reason; a wrong offset says where to go on.
    let (status, busy) = call(s.web, "POST", api, TOKEN, manifest.as_bytes(), None);
    assert_eq!(status, 409);
    assert!(
        busy["error"]
            .as_str()
            .unwrap()
            .contains("another publish is under way"),
        "{busy}"
    );
    let (status, wrong) = call(
        s.web,
        "PUT",
        &format!("{blob}?offset=0"),
        TOKEN,
        &wasm,
        None,
    );
    assert_eq!(
        (status, wrong["received"].as_u64()),
        (409, Some(got)),
        "{wrong}"
    );
    // The rest, from where it stopped; then the commit puts it live.
    let rest = &wasm[got as usize..];
    let (status, done) = call(
        s.web,
        "PUT",
        &format!("{blob}?offset={got}"),
        TOKEN,
        rest,
        None,
    );
    assert_eq!(
        (status, done["received"].as_u64()),
        (200, Some(wasm.len() as u64)),
        "{done}"
    );
    // Committed it would be live; cancelled instead, its files go (a silent one is abandoned the
    // same way after admin.publish_idle_timeout: src/admin/mod.rs's tests, on a clock they set).
    let releases = root.with_file_name("www.releases");
    let staging = || {
        std::fs::read_dir(&releases)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".publish-"))
            .count()
    };
    assert_eq!(staging(), 1);
    let (status, _) = call(s.web, "DELETE", &format!("{api}/{id}"), TOKEN, b"", None);
    assert_eq!(status, 200);
    let (status, gone) = call(
        s.web,
        "POST",
        &format!("{api}/{id}/commit"),
        TOKEN,
        b"",
        None,
    );
    assert_eq!(status, 404, "{gone}");
    assert_eq!(staging(), 0, "its files are removed");
    assert_eq!(live(&root), release);
    // And the next publish goes through.
    assert!(publish(s.web, &dir, TOKEN).status.success());
}
