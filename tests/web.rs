//! The web server against a Godot export fixture: hyper's client for ordinary requests (HTTP/1.1,
//! and HTTP/2 over TLS), raw TCP where a client would clean the path up first, or to be slow.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Server, temp_dir};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const SECRET: &str = "web-test-secret-0123456789";

/// A Godot export with threads (isolated), one without, sidecars, and a way out of the root.
fn export() -> PathBuf {
    let dir = temp_dir("www");
    let www = dir.join("www");
    for (sub, threads) in [("threads", true), ("single", false)] {
        std::fs::create_dir_all(www.join(sub)).unwrap();
        let html =
            format!("<!doctype html><script>const GODOT_THREADS_ENABLED = {threads};</script>");
        std::fs::write(www.join(sub).join("index.html"), html).unwrap();
        for name in [
            "index.js",
            "index.wasm",
            "index.pck",
            "index.png",
            "index.icon.png",
            "index.apple-touch-icon.png",
            "index.audio.worklet.js",
            "index.audio.position.worklet.js",
            "index.service.worker.js",
            "index.manifest.json",
            "index.offline.html",
            "index.side.wasm",
            "index.svg",
            "favicon.ico",
            "style.css",
            "app.webmanifest",
        ] {
            std::fs::write(
                www.join(sub).join(name),
                format!("content of {name} ").repeat(200),
            )
            .unwrap();
        }
    }
    std::fs::write(www.join("game.wasm"), b"\0asm".repeat(5000)).unwrap();
    std::fs::write(www.join("game.wasm.br"), b"BROTLI SIDECAR").unwrap();
    std::fs::write(www.join("game.wasm.gz"), b"GZIP SIDECAR").unwrap();
    std::fs::write(www.join("data.bin"), (0..=255u8).collect::<Vec<_>>()).unwrap();
    std::fs::write(www.join(".env"), "SECRET=1").unwrap();
    std::fs::write(dir.join("outside.txt"), "OUTSIDE-THE-ROOT").unwrap();
    std::os::unix::fs::symlink(dir.join("outside.txt"), www.join("link.txt")).unwrap();
    www
}

fn server_for(www: &Path, extra: &str) -> Server {
    Server::start(&format!(
        "[web]\nlisten = [\"127.0.0.1:0\"]\nroot = \"{}\"\n{extra}\n[turn]\nlisten = [\"127.0.0.1:0\"]\n\
         secrets = [\"{SECRET}\"]\n",
        www.display()
    ))
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
    send(addr, "GET", path, headers).await
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response<Bytes> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

fn header<'a>(r: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn every_godot_export_file_gets_its_mime_type() {
    let www = export();
    let server = server_for(&www, "");
    for (file, mime) in [
        ("index.html", "text/html; charset=utf-8"),
        ("index.js", "text/javascript; charset=utf-8"),
        ("index.wasm", "application/wasm"),
        ("index.side.wasm", "application/wasm"),
        ("index.pck", "application/octet-stream"),
        ("index.png", "image/png"),
        ("index.icon.png", "image/png"),
        ("index.apple-touch-icon.png", "image/png"),
        ("index.audio.worklet.js", "text/javascript; charset=utf-8"),
        (
            "index.audio.position.worklet.js",
            "text/javascript; charset=utf-8",
        ),
        ("index.service.worker.js", "text/javascript; charset=utf-8"),
        ("index.manifest.json", "application/json"),
        ("index.offline.html", "text/html; charset=utf-8"),
        ("index.svg", "image/svg+xml"),
        ("favicon.ico", "image/x-icon"),
        ("style.css", "text/css; charset=utf-8"),
        ("app.webmanifest", "application/manifest+json"),
    ] {
        let r = get(server.web, &format!("/single/{file}"), &[]).await;
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(header(&r, "content-type"), Some(mime), "{file}");
        assert_eq!(header(&r, "cache-control"), Some("no-cache"), "{file}");
    }
    let r = get(server.web, "/single/", &[]).await;
    assert!(r.body().starts_with(b"<!doctype html>"), "directory index");
}

#[tokio::test]
async fn validators_give_304() {
    let www = export();
    let server = server_for(&www, "");
    let r = get(server.web, "/data.bin", &[]).await;
    let etag = header(&r, "etag").unwrap().to_string();
    let modified = header(&r, "last-modified").unwrap().to_string();
    assert!(etag.starts_with("W/\""));
    let r = get(server.web, "/data.bin", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), 304);
    assert!(r.body().is_empty());
    let r = get(server.web, "/data.bin", &[("if-modified-since", &modified)]).await;
    assert_eq!(r.status(), 304);
    let r = get(server.web, "/data.bin", &[("if-none-match", "W/\"stale\"")]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn ranges_give_206_and_416() {
    let www = export();
    let server = server_for(&www, "");
    let r = get(server.web, "/data.bin", &[("range", "bytes=10-19")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), Some("bytes 10-19/256"));
    assert_eq!(r.body().as_ref(), &(10..20u8).collect::<Vec<_>>()[..]);
    let r = get(server.web, "/data.bin", &[("range", "bytes=-6")]).await;
    assert_eq!(r.body().as_ref(), &(250..=255u8).collect::<Vec<_>>()[..]);
    let r = get(server.web, "/data.bin", &[("range", "bytes=300-")]).await;
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), Some("bytes */256"));
    let modified = get(server.web, "/data.bin", &[]).await;
    let date = header(&modified, "last-modified").unwrap().to_string();
    let r = get(
        server.web,
        "/data.bin",
        &[("range", "bytes=0-0"), ("if-range", &date)],
    )
    .await;
    assert_eq!(r.status(), 206);
    let r = get(
        server.web,
        "/data.bin",
        &[
            ("range", "bytes=0-0"),
            ("if-range", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ],
    )
    .await;
    assert_eq!(
        (r.status(), r.body().len()),
        (StatusCode::OK, 256),
        "If-Range mismatch: whole file"
    );
}

/// `rallypoint_web_sendfile_bytes_total` from `/metrics`.
async fn sendfile_bytes(web: SocketAddr) -> u64 {
    let r = get(web, "/metrics", &[]).await;
    let text = String::from_utf8_lossy(r.body()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("rallypoint_web_sendfile_bytes_total "))
        .expect("sendfile metric")
        .parse()
        .unwrap()
}

/// Waits until the server has counted `sent` bytes sent with sendfile (it counts just after
/// the bytes went out, and a client that has read them may ask first).
async fn sendfile_bytes_reach(web: SocketAddr, sent: u64) {
    let line = format!("rallypoint_web_sendfile_bytes_total {sent}");
    common::wait_for_metrics(web, &[&line]).await;
}

#[tokio::test]
async fn large_files_go_out_with_sendfile_and_survive_being_cut_short() {
    let www = export();
    let content: Vec<u8> = (0..600 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(www.join("big.pck"), &content).unwrap();
    let server = server_for(&www, "");
    let (whole, half) = (content.len() as u64, content.len() as u64 / 2);
    let r = get(server.web, "/big.pck", &[]).await;
    assert_eq!(r.body().as_ref(), &content[..]);
    sendfile_bytes_reach(server.web, whole).await;
    let r = get(server.web, "/big.pck", &[("range", "bytes=1000-299999")]).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.body().as_ref(), &content[1000..300_000]);
    let mut sent = whole + 299_000;
    sendfile_bytes_reach(server.web, sent).await;
    // Cut in place to half while the server still holds the whole file (it rechecks after a
    // second): the first half comes from the file, the rest from memory, all of it right. The
    // lookup is timed by the server's clock; a recheck in between is tried again.
    let mut cut_short_served = false;
    for attempt in 0..5 {
        let name = format!("cut{attempt}.pck");
        std::fs::write(www.join(&name), &content).unwrap();
        let path = format!("/{name}");
        assert_eq!(
            get(server.web, &path, &[]).await.body().len(),
            content.len()
        );
        sent += whole;
        sendfile_bytes_reach(server.web, sent).await;
        std::fs::File::options()
            .write(true)
            .open(www.join(&name))
            .unwrap()
            .set_len(half)
            .unwrap();
        let r = get(server.web, &path, &[]).await;
        if r.body().len() == content.len() {
            assert_eq!(r.body().as_ref(), &content[..], "cut short: still whole");
            // The half still in the file went out with sendfile, the rest from memory.
            sendfile_bytes_reach(server.web, sent + half).await;
            cut_short_served = true;
            break;
        }
        assert_eq!(
            r.body().as_ref(),
            &content[..content.len() / 2],
            "rechecked"
        );
        // Read again, the half is large enough to go out with sendfile too.
        sent += half;
        sendfile_bytes_reach(server.web, sent).await;
    }
    assert!(
        cut_short_served,
        "never served from the cache after the cut"
    );
    // Small files are copied as before.
    let before = sendfile_bytes(server.web).await;
    get(server.web, "/data.bin", &[]).await;
    assert_eq!(sendfile_bytes(server.web).await, before);
}

#[tokio::test]
async fn head_answers_headers_only() {
    let www = export();
    let server = server_for(&www, "");
    let r = send(server.web, "HEAD", "/data.bin", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), Some("256"));
    assert!(r.body().is_empty());
    assert_eq!(
        send(server.web, "POST", "/data.bin", &[]).await.status(),
        405
    );
}

#[tokio::test]
async fn content_coding_follows_accept_encoding() {
    use std::io::Read;
    let www = export();
    let server = server_for(&www, "");
    let r = get(
        server.web,
        "/game.wasm",
        &[("accept-encoding", "gzip, deflate, br")],
    )
    .await;
    assert_eq!(
        (header(&r, "content-encoding"), r.body().as_ref()),
        (Some("br"), &b"BROTLI SIDECAR"[..])
    );
    assert_eq!(header(&r, "vary"), Some("Accept-Encoding"));
    let r = get(
        server.web,
        "/game.wasm",
        &[("accept-encoding", "gzip, br;q=0")],
    )
    .await;
    assert_eq!(
        (header(&r, "content-encoding"), r.body().as_ref()),
        (Some("gzip"), &b"GZIP SIDECAR"[..])
    );
    let r = get(
        server.web,
        "/game.wasm",
        &[("accept-encoding", "br;q=0, gzip;q=0")],
    )
    .await;
    assert_eq!(
        (header(&r, "content-encoding"), r.body().len()),
        (None, 20_000)
    );
    let r = get(server.web, "/game.wasm", &[]).await;
    assert_eq!(header(&r, "content-encoding"), None);

    // No sidecar: compressed on the fly, and decodes back to the file.
    let original = std::fs::read(www.join("single/index.js")).unwrap();
    let r = get(server.web, "/single/index.js", &[("accept-encoding", "br")]).await;
    assert_eq!(header(&r, "content-encoding"), Some("br"));
    let mut back = Vec::new();
    brotli::Decompressor::new(r.body().as_ref(), 4096)
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, original);
    let r = get(
        server.web,
        "/single/index.js",
        &[("accept-encoding", "gzip")],
    )
    .await;
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(r.body().as_ref())
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, original);
    // Images are not worth it.
    let r = get(
        server.web,
        "/single/index.png",
        &[("accept-encoding", "br")],
    )
    .await;
    assert_eq!(header(&r, "content-encoding"), None);
    // Data that does not compress (random bytes) goes as it is, not a few bytes larger.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(www.join("single/noise.js"), &noise).unwrap();
    for coding in ["br", "gzip"] {
        let r = get(
            server.web,
            "/single/noise.js",
            &[("accept-encoding", coding)],
        )
        .await;
        assert_eq!(
            (header(&r, "content-encoding"), r.body().len()),
            (None, noise.len()),
            "{coding}"
        );
        assert!(r.body().as_ref() == noise, "{coding}: not the file's bytes");
    }
}

/// Sends `target` exactly as written and returns the whole response.
fn raw(addr: SocketAddr, target: &str) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[tokio::test]
async fn no_byte_from_outside_the_root() {
    let www = export();
    let server = server_for(&www, "");
    for target in [
        "/../outside.txt",
        "/single/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/%2E%2E/outside.txt",
        "/..%2foutside.txt",
        "/..%2Foutside.txt",
        "/%2e%2e%2foutside.txt",
        "/..\\outside.txt",
        "/single\\..\\..\\outside.txt",
        "/%5c..%5coutside.txt",
        "/%252e%252e/outside.txt",
        "/%252e%252e%252foutside.txt",
        "/outside.txt%00.png",
        "/link.txt%00",
        "/C:\\outside.txt",
        "/C:/outside.txt",
        "//outside.txt",
        "/link.txt",
        "/.env",
        "/%2eenv",
        "/single/%2e%2e/%2e%2e/outside.txt",
    ] {
        let response = raw(server.web, target);
        let text = String::from_utf8_lossy(&response);
        assert!(
            !text.contains("OUTSIDE-THE-ROOT") && !text.contains("SECRET=1"),
            "{target}: {text}"
        );
        assert!(
            text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.1 404"),
            "{target}: {}",
            text.lines().next().unwrap_or("")
        );
    }
}

/// Hidden files are a well-formed request for something we will not show: 404, like a missing
/// file; only `/.well-known/` at the top is served.
#[tokio::test]
async fn dotfiles_are_not_found_and_well_known_is_served() {
    let www = export();
    std::fs::create_dir_all(www.join(".well-known")).unwrap();
    std::fs::write(
        www.join(".well-known/security.txt"),
        "Contact: mailto:x@example.org",
    )
    .unwrap();
    std::fs::create_dir_all(www.join(".git")).unwrap();
    std::fs::write(www.join(".git/config"), "[core]").unwrap();
    let server = server_for(&www, "");
    for path in [
        "/.env",
        "/.git/config",
        "/%2egit/config",
        "/single/.well-known/x",
    ] {
        assert_eq!(get(server.web, path, &[]).await.status(), 404, "{path}");
    }
    let r = get(server.web, "/.well-known/security.txt", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), b"Contact: mailto:x@example.org");
}

/// A game folder named without its slash is redirected to the folder, so the page's relative
/// `index.js`, `.wasm` and `.pck` URLs resolve inside it.
#[tokio::test]
async fn a_folder_without_its_slash_is_redirected() {
    let www = export();
    let server = server_for(&www, "");
    let r = get(server.web, "/single?lobby=ABC", &[]).await;
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&r, "location"), Some("/single/?lobby=ABC"));
    let r = get(server.web, "/single", &[]).await;
    assert_eq!(header(&r, "location"), Some("/single/"));
    assert_eq!(get(server.web, "/single/", &[]).await.status(), 200);
    // "//single" must not become a Location of "//single/" (another host to a browser).
    let response = raw(server.web, "//single");
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(text.contains("location: /single/\r\n"), "{text}");
}

/// A page named with a trailing slash is redirected to its name: served there, its relative
/// URLs would resolve under a folder that does not exist (`/single/index.html/index.js`).
#[tokio::test]
async fn a_file_named_with_a_slash_is_redirected_to_its_name() {
    let www = export();
    let server = server_for(&www, "");
    let r = get(server.web, "/single/index.html/?lobby=ABC", &[]).await;
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&r, "location"), Some("/single/index.html?lobby=ABC"));
    let r = get(server.web, "/single/index.wasm//", &[]).await;
    assert_eq!(header(&r, "location"), Some("/single/index.wasm"));
    // What is not there is still not there, with or without the slash.
    assert_eq!(
        get(server.web, "/single/nothing.js/", &[]).await.status(),
        404
    );
}

#[tokio::test]
async fn threaded_exports_are_cross_origin_isolated() {
    let www = export();
    let server = server_for(&www, "");
    for file in ["index.html", "index.js", "index.wasm", "index.pck"] {
        let r = get(server.web, &format!("/threads/{file}"), &[]).await;
        assert_eq!(
            header(&r, "cross-origin-opener-policy"),
            Some("same-origin"),
            "{file}"
        );
        assert_eq!(
            header(&r, "cross-origin-embedder-policy"),
            Some("require-corp"),
            "{file}"
        );
        let r = get(server.web, &format!("/single/{file}"), &[]).await;
        assert_eq!(header(&r, "cross-origin-opener-policy"), None, "{file}");
        assert_eq!(header(&r, "cross-origin-embedder-policy"), None, "{file}");
    }
    let forced = server_for(&www, "cross_origin_isolation = \"always\"");
    let r = get(forced.web, "/single/index.html", &[]).await;
    assert_eq!(
        header(&r, "cross-origin-embedder-policy"),
        Some("require-corp")
    );
}

#[tokio::test]
async fn api_ice_credentials_verify_against_the_turn_secret() {
    let www = export();
    let server = server_for(&www, "");
    let r = get(
        server.web,
        "/api/ice",
        &[("origin", &format!("http://{}", server.web))],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some(format!("http://{}", server.web).as_str())
    );
    let json: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    let ice = &json["iceServers"][0];
    let username = ice["username"].as_str().unwrap();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(ice["credential"].as_str(), Some(expected.as_str()));
    let urls: Vec<&str> = ice["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&format!("turn:127.0.0.1:{}?transport=udp", server.turn.port()).as_str()),
        "{urls:?}"
    );
    let r = get(
        server.web,
        "/api/ice",
        &[("origin", "https://elsewhere.example")],
    )
    .await;
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    // Every credential has its own user part, so the per-user allocation quota is per player,
    // not shared by everyone who fetched within the same second.
    let other: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    let other = other["iceServers"][0]["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').expect("expiry:user");
    assert!(
        expiry.parse::<u64>().is_ok() && user.len() == 16,
        "{username}"
    );
    assert_ne!(other.split_once(':').unwrap().1, user);
}

#[tokio::test]
async fn healthz_and_metrics() {
    let www = export();
    let server = server_for(&www, "metrics_allow = [\"10.0.0.0/8\"]");
    let r = get(server.web, "/healthz", &[]).await;
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["turn"]["allocations"], 0);
    assert_eq!(json["signal"]["peers"], 0);
    assert_eq!(
        get(server.web, "/metrics", &[]).await.status(),
        403,
        "loopback not in metrics_allow"
    );

    // By default this machine reads them: the version, and the process's own figures under
    // the names every Prometheus client gives them.
    let server = server_for(&www, "");
    let r = get(server.web, "/metrics", &[]).await;
    assert_eq!(r.status(), 200);
    let text = String::from_utf8(r.body().to_vec()).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            "rallypoint_build_info{{version=\"{version}\"}} 1\n"
        )),
        "{text}"
    );
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 4.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("process_start_time_seconds") > 1.7e9);
    assert!(text.ends_with("# EOF\n"), "one end, after everything");
}

fn write_cert(dir: &Path) -> rcgen::CertifiedKey<rcgen::KeyPair> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    cert
}

fn tls_client(roots: &[&rcgen::CertifiedKey<rcgen::KeyPair>]) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for c in roots {
        store.add(c.cert.der().clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn https_with_h2_redirects_and_a_certificate_swapped_by_sighup() {
    let www = export();
    let dir = temp_dir("web-tls");
    let first = write_cert(&dir);
    let server = server_for(
        &www,
        &format!(
            "tls_listen = [\"127.0.0.1:0\"]\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
    );
    let mut server = server;
    let https = server.web_tls.expect("an HTTPS listener");
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();

    // Plain HTTP redirects, keeping path and query; ACME challenges stay on HTTP.
    let r = get(server.web, "/single/index.html?x=1", &[]).await;
    assert_eq!(r.status(), 308);
    assert_eq!(
        header(&r, "location"),
        Some(format!("https://127.0.0.1:{}/single/index.html?x=1", https.port()).as_str())
    );
    let acme = get(server.web, "/.well-known/acme-challenge/token", &[]).await;
    assert_eq!(
        acme.status(),
        404,
        "ACME challenges are answered over plain HTTP; this token is not one under way"
    );
    // A monitor that does not follow redirects still sees health and metrics.
    let health = get(server.web, "/healthz", &[]).await;
    assert_eq!(health.status(), 200, "/healthz over plain HTTP");
    let metrics = get(server.web, "/metrics", &[]).await;
    assert_eq!(
        metrics.status(),
        200,
        "/metrics over plain HTTP from loopback"
    );
    let redirected = get(server.web, "/healthz/", &[]).await;
    assert_eq!(
        redirected.status(),
        308,
        "only the monitoring paths themselves"
    );

    // HTTP/2 over TLS, on a connection kept open across the reload.
    let tls = tls_client(&[&first])
        .connect(name.clone(), TcpStream::connect(https).await.unwrap())
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut old, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = || {
        Request::get(format!("https://localhost:{}/data.bin", https.port()))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    assert_eq!(old.send_request(request()).await.unwrap().status(), 200);

    let second = write_cert(&dir);
    server.signal(libc::SIGHUP);
    server.wait_notification("RELOADING=1");
    server.wait_notification("READY=1");
    // A new client trusting only the new certificate gets in; one trusting only the old does not.
    let fresh = tls_client(&[&second])
        .connect(name.clone(), TcpStream::connect(https).await.unwrap())
        .await;
    assert!(fresh.is_ok(), "new certificate served: {:?}", fresh.err());
    let stale = tls_client(&[&first])
        .connect(name, TcpStream::connect(https).await.unwrap())
        .await;
    assert!(stale.is_err(), "old certificate no longer served");
    // The connection opened before the swap still works.
    assert_eq!(old.send_request(request()).await.unwrap().status(), 200);
}

/// 100 clients sending one header byte a second must not delay a normal request, and are cut
/// off at the header timeout.
#[tokio::test]
async fn slowloris_neither_delays_others_nor_lingers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let www = export();
    let server = server_for(&www, "header_timeout = \"2s\"");
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(server.web).await.unwrap();
        s.write_all(b"G").await.unwrap();
        slow.push(s);
    }
    let started = Instant::now();
    let mut drip = tokio::time::interval(Duration::from_secs(1));
    drip.tick().await;
    let normal = tokio::spawn({
        let addr = server.web;
        async move { get(addr, "/data.bin", &[]).await.status() }
    });
    drip.tick().await;
    for s in &mut slow {
        let _ = s.write_all(b"E").await;
    }
    assert_eq!(normal.await.unwrap(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "normal request delayed: {:?}",
        started.elapsed()
    );
    // By the header timeout (2 s) plus slack, every slow connection has been closed.
    let mut buf = [0u8; 256];
    for s in &mut slow {
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(_)) | Ok(Err(_))), "still open");
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn selftest_page_status_and_switch() {
    let www = export();
    let server = server_for(&www, "");
    let r = get(server.web, "/_rallypoint/", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(r.body()).contains("<title>rallypoint self-test</title>"));
    // Isolated, so the page can report whether a threaded export would be.
    assert_eq!(
        header(&r, "cross-origin-opener-policy"),
        Some("same-origin")
    );
    assert_eq!(
        header(&r, "cross-origin-embedder-policy"),
        Some("require-corp")
    );
    let r = get(server.web, "/_rallypoint", &[]).await;
    assert_eq!(r.status(), 308);
    assert_eq!(header(&r, "location"), Some("/_rallypoint/"));
    assert_eq!(get(server.web, "/_rallypoint/x", &[]).await.status(), 404);

    let r = get(server.web, "/_rallypoint/status", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    let json: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(json["signal_path"], "/ws");
    for key in ["peers", "lobbies", "allocations", "relayed_bytes"] {
        assert_eq!(json[key], 0, "{key} in {json}");
    }

    // What players are handed: this test server's loopback TURN listener, no warning.
    let r = get(server.web, "/_rallypoint/addresses", &[]).await;
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    let urls = json["turn_urls"].as_array().unwrap();
    assert!(
        urls.iter()
            .any(|u| u.as_str().unwrap().starts_with("turn:127.0.0.1:")),
        "{json}"
    );
    assert_eq!(json["relay_addresses"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(json["warnings"], serde_json::json!([]));

    let off = server_for(&www, "selftest = false");
    assert_eq!(get(off.web, "/_rallypoint/", &[]).await.status(), 404);
    assert_eq!(get(off.web, "/_rallypoint/status", &[]).await.status(), 404);
}

/// HTTP/2 (here cleartext, prior knowledge, on the plain port) is held to `web.header_timeout`
/// like HTTP/1.1: a connection that sends no request is closed, one in use is not cut.
#[tokio::test]
async fn idle_http2_connections_are_closed_after_the_header_timeout() {
    let www = export();
    let server = server_for(&www, "header_timeout = \"1s\"");
    let connect = || async {
        let io = TokioIo::new(TcpStream::connect(server.web).await.unwrap());
        let (sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        (sender, tokio::spawn(conn))
    };
    let (_idle, idle_conn) = connect().await;
    let (mut busy, busy_conn) = connect().await;
    let started = Instant::now();
    // The busy one sends a request every 400 ms.
    while started.elapsed() < Duration::from_millis(2500) {
        let request = Request::get("/data.bin")
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(busy.send_request(request).await.unwrap().status(), 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        idle_conn.is_finished(),
        "the idle HTTP/2 connection is still open"
    );
    assert!(!busy_conn.is_finished(), "the busy one was closed");
    common::wait_for_metrics(server.web, &["rallypoint_web_connections 1"]).await;
}

/// Over `web.max_connections`, connections are closed at once, counted and logged once.
#[tokio::test]
async fn the_connection_cap_is_counted_and_logged() {
    use tokio::io::AsyncReadExt;
    let www = export();
    let mut server = server_for(&www, "max_connections = 3");
    let mut held = Vec::new();
    // One listener accepts in order, so these three are admitted before the fourth.
    for _ in 0..3 {
        held.push(TcpStream::connect(server.web).await.unwrap());
    }
    let mut over = TcpStream::connect(server.web).await.unwrap();
    let mut b = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), over.read(&mut b)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "not closed: {read:?}"
    );
    drop(held);
    common::wait_for_metrics(
        server.web,
        &["rallypoint_web_connections_refused_total{cap=\"total\"} 1"],
    )
    .await;
    server.wait_log("web.max_connections = 3 reached");
}

#[tokio::test]
async fn api_ice_is_limited_per_address_and_can_be_switched_off() {
    let www = export();
    let server = server_for(&www, "ice_api_per_minute = 3");
    for _ in 0..3 {
        assert_eq!(get(server.web, "/api/ice", &[]).await.status(), 200);
    }
    let r = get(server.web, "/api/ice", &[]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("20"), "one every 20 s");
    common::wait_for_metrics(server.web, &["rallypoint_web_ice_refused_total 1"]).await;

    // Off: nobody gets an open credential.
    let server = server_for(&www, "ice_api = \"off\"");
    let r = get(server.web, "/api/ice", &[]).await;
    assert_eq!(r.status(), 403);
    assert!(String::from_utf8_lossy(r.body()).contains("web.ice_api"));
}

#[tokio::test]
async fn a_folder_with_a_godot_page_not_named_index_says_so() {
    let dir = common::temp_dir("web-mygame");
    std::fs::write(dir.join("MyGame.html"), "<html>").unwrap();
    let server = server_for(&dir, "");
    let r = get(server.web, "/", &[]).await;
    assert_eq!(r.status(), 404);
    let body = String::from_utf8_lossy(r.body()).into_owned();
    assert!(
        body.contains("rename MyGame.html to index.html, or open /MyGame.html"),
        "{body}"
    );
    assert_eq!(get(server.web, "/MyGame.html", &[]).await.status(), 200);
}

/// `--root ~/exports` for `~/exports/web/index.html`: the 404 at `/` points one folder down.
/// A folder with a space in its name is found as well, and nothing outside the root is listed.
#[tokio::test]
async fn a_root_one_folder_above_the_export_says_where_the_game_is() {
    let dir = common::temp_dir("web-above");
    for sub in ["web", "my game/web", "assets"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("web/index.html"), "<html>").unwrap();
    std::fs::write(dir.join("my game/web/index.html"), "<html>").unwrap();
    let outside = common::temp_dir("web-above-outside");
    std::fs::create_dir_all(outside.join("secret-game")).unwrap();
    std::fs::write(outside.join("secret-game/index.html"), "<html>").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
    let server = server_for(&dir, "");
    let r = get(server.web, "/", &[]).await;
    assert_eq!(r.status(), 404);
    let body = String::from_utf8_lossy(r.body()).into_owned();
    assert!(body.contains("one folder down: open /web/"), "{body}");
    let r = get(server.web, "/my%20game/", &[]).await;
    let body = String::from_utf8_lossy(r.body()).into_owned();
    assert!(body.contains("open /my%20game/web/"), "{body}");
    let r = get(server.web, "/link/", &[]).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.body().as_ref(), b"not found\n");
    assert_eq!(get(server.web, "/web/", &[]).await.status(), 200);
}

/// Behind nginx or Caddy every connection is the proxy's: its `X-Forwarded-For` names the
/// player, believed only from `proxy_protocol.trusted`, so per-address limits hold per player;
/// and `/metrics`, allowed to loopback, is never served through a proxy on loopback.
#[tokio::test]
async fn a_trusted_proxy_names_the_player_and_metrics_stay_private() {
    let www = export();
    let mut untrusted = server_for(&www, "");
    let through = |ip: &'static str| [("x-forwarded-for", ip)];
    let r = get(untrusted.web, "/metrics", &through("198.51.100.9")).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "proxied, by an untrusted proxy"
    );
    assert_eq!(
        get(untrusted.web, "/metrics", &[]).await.status(),
        StatusCode::OK
    );
    get(untrusted.web, "/", &through("198.51.100.9")).await;
    let line = untrusted.wait_log("not in proxy_protocol.trusted");
    assert!(line.contains("127.0.0.1"), "{line}");
    assert_eq!(
        untrusted
            .log
            .iter()
            .filter(|l| l.contains("not in proxy_protocol.trusted"))
            .count(),
        1,
        "one line"
    );

    let trusted = server_for(
        &www,
        "ice_api_per_minute = 2\n[proxy_protocol]\ntrusted = [\"127.0.0.1/32\"]",
    );
    for ip in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..2 {
            let r = get(trusted.web, "/api/ice", &through(ip)).await;
            assert_eq!(r.status(), StatusCode::OK, "{ip}: its own quota");
        }
        let r = get(trusted.web, "/api/ice", &through(ip)).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{ip}");
    }
    let r = get(trusted.web, "/metrics", &through("198.51.100.1")).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a player on the internet"
    );
    assert_eq!(
        get(trusted.web, "/metrics", &[]).await.status(),
        StatusCode::OK
    );
}
