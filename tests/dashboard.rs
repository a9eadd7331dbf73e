//! The dashboard's API against the real server (docs/operating.md): nothing without a token; with
//! one, a lobby a client opened is listed at once, and closing it (or removing a player) closes
//! the client with a reason it can show; a login's cookie opens the API, but an action with it
//! must come from the page itself.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::ws::Client as Player;
use common::{Server, ephemeral_config};
use serde_json::{Value, json};

const TOKEN: &str = "dashboard-test-token-0123456789-0123456789";
const CREATE: u64 = 100;
const LOBBY: u64 = 101;
const JOIN_BY_CODE: u64 = 103;
const QUICK_JOIN: u64 = 112;

fn server() -> Server {
    server_with("")
}

/// With `signal` as the `[signal]` section's keys.
fn server_with(signal: &str) -> Server {
    Server::start(&ephemeral_config(&format!(
        "[admin]\ntokens = [\"{TOKEN}\"]\n[signal]\n{signal}\n"
    )))
}

/// One request: status, headers and body. `headers` are "Name: value\r\n" lines.
fn request(
    web: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(web).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {web}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head[9..12].parse().unwrap(),
        head.to_string(),
        body.to_string(),
    )
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}\r\n")
}

fn state(web: SocketAddr) -> Value {
    let (status, _, body) = request(web, "GET", "/_rallypoint/admin/api/state", &bearer(), "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn without_a_token_nothing_leaks() {
    let s = server();
    let mut host = Player::connect_extension(s.web).await;
    host.send_extension(CREATE, json!({"title": "secret-title"}))
        .await;
    let code = host.next_extension(LOBBY).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        "/_rallypoint/admin/api/state",
        "/_rallypoint/admin/api/events",
    ] {
        let (status, _, body) = request(s.web, "GET", path, "", "");
        assert_eq!(status, 401, "{path}: {body}");
        assert!(!body.contains(&code) && !body.contains("secret-title"));
    }
    let (status, _, page) = request(s.web, "GET", "/_rallypoint/admin/", "", "");
    assert_eq!(status, 200);
    assert!(page.contains("Log in") && !page.contains(&code) && !page.contains("secret-title"));
    let (status, _, _) = request(
        s.web,
        "POST",
        &format!("/_rallypoint/admin/api/lobbies/{code}/close"),
        "",
        "",
    );
    assert_eq!(status, 401);
    let wrong = "x-rallypoint-admin: 1\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    let (status, head, _) = request(
        s.web,
        "POST",
        "/_rallypoint/admin/login",
        wrong,
        "token=not-the-token",
    );
    assert_eq!(status, 401);
    assert!(!head.to_lowercase().contains("set-cookie"));
}

#[tokio::test]
async fn a_lobby_is_listed_at_once_and_closing_it_tells_its_players() {
    listed_removed_and_closed(server()).await;
}

/// The same with the lobbies spread over three hubs (`signal.shards`): the dashboard asks each.
/// Lobbies opened by quick play for six filters land in the filters' hubs.
#[tokio::test]
async fn on_three_hubs_too() {
    let s = server_with("shards = 3");
    let mut players = Vec::new();
    for n in 0..6 {
        let mut player = Player::connect_extension(s.web).await;
        player
            .send_extension(QUICK_JOIN, json!({"filter": {"n": n}}))
            .await;
        player.next_extension(LOBBY).await;
        players.push(player);
    }
    let listed = state(s.web);
    let codes: Vec<String> = (listed["lobbies"].as_array().unwrap().iter())
        .map(|l| l["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        (codes.len(), listed["players"].clone()),
        (6, json!(6)),
        "{listed}"
    );
    for code in codes {
        let path = format!("/_rallypoint/admin/api/lobbies/{code}/close");
        let (status, _, body) = request(s.web, "POST", &path, &bearer(), "");
        assert_eq!(status, 200, "{code}: {body}");
    }
    for mut player in players {
        assert_eq!(
            player.closed().await.1,
            "Lobby closed by the server's operator"
        );
    }
    listed_removed_and_closed(s).await;
}

async fn listed_removed_and_closed(s: Server) {
    let mut host = Player::connect_extension(s.web).await;
    host.send_extension(CREATE, json!({"title": "Friday duel", "max_players": 4}))
        .await;
    let code = host.next_extension(LOBBY).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut guest = Player::connect_extension(s.web).await;
    guest
        .send_extension(JOIN_BY_CODE, json!({"lobby": code}))
        .await;
    guest.next_extension(LOBBY).await;
    let listed = state(s.web);
    let lobby = listed["lobbies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["code"] == code.as_str())
        .unwrap_or_else(|| panic!("{code} not listed: {listed}"))
        .clone();
    assert_eq!(
        (lobby["title"].clone(), lobby["players"].clone()),
        (json!("Friday duel"), json!(2))
    );
    assert_eq!(listed["players"], 2);
    let guest_id = lobby["members"][1].as_u64().unwrap();

    // Removing the guest, then closing the lobby: each is told why.
    let path = format!(
        "/_rallypoint/admin/api/lobbies/{}/players/{guest_id}/remove",
        code.to_lowercase()
    );
    let (status, _, body) = request(s.web, "POST", &path, &bearer(), "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        guest.closed().await,
        (4000, "Removed by the server's operator".into())
    );
    let (status, _, body) = request(
        s.web,
        "POST",
        &format!("/_rallypoint/admin/api/lobbies/{code}/close"),
        &bearer(),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        host.closed().await,
        (4000, "Lobby closed by the server's operator".into())
    );
    assert!(state(s.web)["lobbies"].as_array().unwrap().is_empty());
    let (status, _, _) = request(
        s.web,
        "POST",
        &format!("/_rallypoint/admin/api/lobbies/{code}/close"),
        &bearer(),
        "",
    );
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_login_cookie_opens_the_api_and_actions_need_the_page() {
    let s = server();
    let form = "x-rallypoint-admin: 1\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    let (status, head, _) = request(
        s.web,
        "POST",
        "/_rallypoint/admin/login",
        form,
        &format!("token={TOKEN}"),
    );
    assert_eq!(status, 200);
    let set = head
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let with_cookie = format!("Cookie: {cookie}\r\n");
    let (status, _, _) = request(
        s.web,
        "GET",
        "/_rallypoint/admin/api/state",
        &with_cookie,
        "",
    );
    assert_eq!(status, 200);

    let (mut host, code) = Player::open_lobby(s.web).await;
    let close = format!("/_rallypoint/admin/api/lobbies/{code}/close");
    // As a page elsewhere could send it: the cookie, not the page's header, or another origin.
    let (status, _, _) = request(s.web, "POST", &close, &with_cookie, "");
    assert_eq!(status, 403);
    let elsewhere =
        format!("{with_cookie}x-rallypoint-admin: 1\r\nOrigin: https://evil.example\r\n");
    let (status, _, _) = request(s.web, "POST", &close, &elsewhere, "");
    assert_eq!(status, 403);
    let page = format!(
        "{with_cookie}x-rallypoint-admin: 1\r\nOrigin: http://{}\r\n",
        s.web
    );
    let (status, _, body) = request(s.web, "POST", &close, &page, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        host.closed().await.1,
        "Lobby closed by the server's operator"
    );
    // Logged out, the cookie opens nothing.
    request(s.web, "POST", "/_rallypoint/admin/logout", &with_cookie, "");
    let (status, _, _) = request(
        s.web,
        "GET",
        "/_rallypoint/admin/api/state",
        &with_cookie,
        "",
    );
    assert_eq!(status, 401);
}

#[test]
fn rolling_back_from_the_dashboard_puts_a_kept_release_live() {
    let root = common::temp_dir("dashboard-root").join("www");
    let s = Server::start_with_args(
        &ephemeral_config(&format!("[admin]\ntokens = [\"{TOKEN}\"]\n")),
        &["--root", root.to_str().unwrap()],
    );
    let export = common::temp_dir("dashboard-export");
    for version in ["one", "two"] {
        let html = format!(
            "<!DOCTYPE html><html><!-- {version} --><script src=\"index.js\"></script><script>\
             const GODOT_CONFIG = {{\"executable\":\"index\"}};</script></html>"
        );
        std::fs::write(export.join("index.html"), html).unwrap();
        for f in ["index.js", "index.wasm", "index.pck"] {
            std::fs::write(export.join(f), version).unwrap();
        }
        let out = std::process::Command::new(common::BIN)
            .args([
                "--root",
                root.to_str().unwrap(),
                "deploy",
                "--fast",
                export.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let releases = state(s.web)["releases"].as_array().unwrap().clone();
    assert_eq!(releases.len(), 2, "{releases:?}");
    let first = releases[0]["id"].as_str().unwrap();
    assert_eq!(
        (releases[0]["live"].clone(), releases[1]["live"].clone()),
        (json!(false), json!(true))
    );
    let path = format!("/_rallypoint/admin/api/releases/{first}/rollback");
    let (status, _, body) = request(s.web, "POST", &path, &bearer(), "");
    assert_eq!(status, 200, "{body}");
    assert!(
        std::fs::read_to_string(root.join("index.html"))
            .unwrap()
            .contains("one")
    );
    let (status, _, body) = request(s.web, "POST", &path, &bearer(), "");
    assert_eq!(status, 409, "already live: {body}");
}
