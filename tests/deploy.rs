//! `rallypoint deploy`: a broken export is refused and the live one untouched; a page load that
//! races a deploy gets every file from the export its page came from; rollback goes back.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{BIN, Server, temp_dir};

/// A Godot-shaped export of `version` in `dir`: the page names the engine and the sizes of its
/// `.wasm` and `.pck`, as Godot's does; every file says its version.
fn export(dir: &Path, version: u32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    // Sizes change with the version, as they do between real exports.
    let wasm = format!("wasm v{version};").repeat(400 + version as usize);
    let pck = format!("pck v{version};").repeat(10 + version as usize);
    let html = format!(
        "<!DOCTYPE html><html><!-- v{version}; --><script src=\"index.js\"></script><script>\
         const GODOT_CONFIG = {{\"args\":[],\"executable\":\"index\",\"fileSizes\":\
         {{\"index.pck\":{},\"index.wasm\":{}}},\"focusCanvas\":true}};</script></html>",
        pck.len(),
        wasm.len()
    );
    std::fs::write(dir.join("index.html"), html).unwrap();
    std::fs::write(dir.join("index.js"), format!("/* v{version}; */")).unwrap();
    std::fs::write(dir.join("index.wasm"), wasm).unwrap();
    std::fs::write(dir.join("index.pck"), pck).unwrap();
    dir.to_path_buf()
}

fn deploy(root: &Path, args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(["--root", root.to_str().unwrap(), "deploy"])
        .args(args)
        .output()
        .unwrap()
}

/// Status, headers and body of a GET.
fn fetch(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    fetch_with(addr, path, "")
}

/// The same, with `headers` ("Name: value\r\n" each) added to the request.
fn fetch_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, head, response[end + 4..].to_vec())
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then(|| v.to_string())
    })
}

/// The version a file says it is.
fn version_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let at = text.find(" v").expect("a version") + 2;
    text[at..].split(';').next().unwrap().to_string()
}

/// Where `/` sends a player now (the live release's page).
fn live_page(addr: SocketAddr) -> String {
    let (status, head, _) = fetch(addr, "/");
    assert_eq!(status, 302, "{head}");
    assert_eq!(header(&head, "cache-control").as_deref(), Some("no-store"));
    header(&head, "location").unwrap()
}

fn server(root: &Path) -> Server {
    Server::start_with_args(
        &common::ephemeral_config(""),
        &["--root", root.to_str().unwrap()],
    )
}

#[test]
fn broken_exports_are_refused_good_ones_go_live_and_rollback_goes_back() {
    let base = temp_dir("deploy");
    let root = export(&base.join("www"), 0);
    let server = server(&root);

    let no_wasm = export(&base.join("no-wasm"), 1);
    std::fs::remove_file(no_wasm.join("index.wasm")).unwrap();
    let mixed = export(&base.join("mixed"), 1);
    std::fs::copy(
        export(&base.join("other"), 7).join("index.wasm"),
        mixed.join("index.wasm"),
    )
    .unwrap();
    let renamed = export(&base.join("renamed"), 1);
    std::fs::rename(renamed.join("index.html"), renamed.join("MyGame.html")).unwrap();
    // The folder holding the export rather than the export: the answer names the export.
    let above = base.join("exports");
    let below = export(&above.join("web"), 1).display().to_string();
    let one_down = format!("the export is one folder down: name {below} instead");
    for (dir, says) in [
        (
            &no_wasm,
            "index.html loads index.wasm, which is not in the export",
        ),
        (&mixed, "but index.html expects"),
        (&renamed, "rename MyGame.html to index.html"),
        (&above, &one_down),
    ] {
        let out = deploy(&root, &[dir.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        // Untouched: still the folder it was, serving version 0 as it is.
        assert!(!root.symlink_metadata().unwrap().is_symlink());
        let (status, _, body) = fetch(server.web, "/");
        assert_eq!((status, version_of(&body)), (200, "0".to_string()));
    }

    // The first deploy turns the folder into a link to the new release; the folder is kept.
    let out = deploy(&root, &[export(&base.join("v1"), 1).to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.symlink_metadata().unwrap().is_symlink());
    let page = live_page(server.web);
    let (status, _, body) = fetch(server.web, &page);
    assert_eq!((status, version_of(&body)), (200, "1".to_string()));
    let (_, head, body) = fetch(server.web, &format!("{page}index.wasm"));
    assert_eq!(version_of(&body), "1");
    assert_eq!(
        header(&head, "cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    let release = root.canonicalize().unwrap();
    assert!(release.join("index.wasm.br").is_file() && release.join("index.wasm.gz").is_file());

    // A new page with the same engine: the engine's sidecars are the previous release's,
    // linked, and served as they were.
    let v1b = export(&base.join("v1b"), 1);
    std::fs::write(v1b.join("index.js"), "/* v1; again */").unwrap();
    let out = deploy(&root, &[v1b.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the same as the previous release's"),
        "{stdout}"
    );
    let again = root.canonicalize().unwrap();
    assert_ne!(again, release);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(again.join("index.wasm.br"))
            .unwrap()
            .nlink(),
        2
    );
    let page = live_page(server.web);
    let wasm = format!("{page}index.wasm");
    let (status, head, _) = fetch_with(server.web, &wasm, "Accept-Encoding: br\r\n");
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-encoding").as_deref(),
        Some("br"),
        "{head}"
    );
    // From the sidecar, not compressed on the fly (which would also say br): the file keeps
    // its time, so the sidecar counts as fresh, and its ETag is the one it had.
    let (_, _, metrics) = fetch(server.web, "/metrics");
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        text.contains("rallypoint_web_compressions_total 0"),
        "{text}"
    );
    let first_wasm = format!(
        "/_release/{}/index.wasm",
        release.file_name().unwrap().to_str().unwrap()
    );
    let (_, first_head, _) = fetch(server.web, &first_wasm);
    let (_, again_head, _) = fetch(server.web, &wasm);
    assert_eq!(header(&first_head, "etag"), header(&again_head, "etag"));

    for _ in 0..2 {
        let out = deploy(&root, &["--rollback"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (_, _, body) = fetch(server.web, &live_page(server.web));
    assert_eq!(
        version_of(&body),
        "0",
        "back to the folder served before the first deploy"
    );
    let out = deploy(&root, &["--rollback"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no release before the live one"));
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ids `deploy --list` shows, with the live one's and the rollback target's.
fn listed(root: &Path) -> (Vec<String>, String, Option<String>) {
    let text = stdout(&deploy(root, &["--list"]));
    let id = |l: &str| l.split_whitespace().next().unwrap().to_string();
    let ids = text.lines().map(id).collect();
    let live = text.lines().find(|l| l.ends_with("live")).map(id).unwrap();
    let back = text
        .lines()
        .find(|l| l.contains("--rollback goes here"))
        .map(id);
    (ids, live, back)
}

/// The first hour's trap: deploy A and B, roll back twice (to the folder served first), then
/// deploy D keeping two releases. The release live a second before D must stay, and a rollback
/// from D goes back to it, not to whatever sorts before D.
#[test]
fn retention_keeps_what_was_live_and_rollback_goes_where_the_list_says() {
    let base = temp_dir("deploy-history");
    let root = export(&base.join("www"), 0);
    let server = server(&root);
    let version_live = || {
        let (_, _, body) = fetch(server.web, &live_page(server.web));
        version_of(&body)
    };
    for v in [1, 2] {
        let dir = export(&base.join(format!("v{v}")), v);
        let out = deploy(&root, &[dir.to_str().unwrap(), "--fast"]);
        stdout(&out);
        // Not silent while it compresses: the file, its size, how far.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.lines()
                .any(|l| l.starts_with("compressing index.wasm (0.0 MB, .")),
            "{err}"
        );
    }
    let (ids, live, back) = listed(&root);
    assert_eq!(ids.len(), 3, "the first folder, v1, v2");
    assert_eq!(
        (live.as_str(), back.as_deref()),
        (ids[2].as_str(), Some(ids[1].as_str()))
    );
    stdout(&deploy(&root, &["--rollback"]));
    stdout(&deploy(&root, &["--rollback"]));
    assert_eq!(version_live(), "0");
    let first = ids[0].clone();

    let d = export(&base.join("v4"), 4);
    let out = stdout(&deploy(
        &root,
        &[d.to_str().unwrap(), "--fast", "--keep", "2"],
    ));
    let removed = out.lines().find(|l| l.starts_with("removed old releases"));
    assert!(
        removed.is_some_and(|l| !l.contains(&first)),
        "one release beyond --keep 2 removed, not the one live before D: {out}"
    );
    let (ids, live, back) = listed(&root);
    assert!(ids.contains(&first), "{ids:?}");
    assert_eq!(
        back.as_deref(),
        Some(first.as_str()),
        "--list names where --rollback goes"
    );
    assert_eq!(version_live(), "4");
    stdout(&deploy(&root, &["--rollback"]));
    assert_eq!(version_live(), "0", "back to what was live before D");

    // A release by its id, as --list shows it; then a plain rollback undoes that.
    stdout(&deploy(&root, &["--rollback", &live]));
    assert_eq!(version_live(), "4");
    stdout(&deploy(&root, &["--rollback"]));
    assert_eq!(version_live(), "0");
    for (id, says) in [
        (
            "20000101T000000Z-0001",
            "no release \"20000101T000000Z-0001\" is kept",
        ),
        ("../etc", "no release \"../etc\" is kept"),
        (first.as_str(), "is already live"),
    ] {
        let out = deploy(&root, &["--rollback", id]);
        assert_eq!(out.status.code(), Some(1), "{id}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{id}: {err}");
    }
    assert_eq!(
        version_live(),
        "0",
        "nothing switched by a refused rollback"
    );

    // A file copied into web.root by hand after a deploy is not the release's: browsers
    // revalidate it rather than keep it for a year; the deployed files stay immutable.
    stdout(&deploy(&root, &["--rollback", &live]));
    std::fs::write(root.join("notes.txt"), "added by hand").unwrap();
    std::fs::write(root.join("index.js"), "/* v4 patched by hand; */").unwrap();
    let cache = |file: &str| {
        let (status, head, _) = fetch(server.web, &format!("/_release/{live}/{file}"));
        assert_eq!(status, 200, "{file}: {head}");
        header(&head, "cache-control").unwrap()
    };
    assert_eq!(cache("index.wasm"), "public, max-age=31536000, immutable");
    assert_eq!(cache("notes.txt"), "no-cache");
    assert_eq!(cache("index.js"), "no-cache");
}

/// A page load: the page `/` sends the player to, then what it loads, relative to it.
fn page_load(addr: SocketAddr, between: impl FnOnce()) -> Vec<String> {
    let page = live_page(addr);
    let (_, _, html) = fetch(addr, &page);
    between();
    let mut versions = vec![version_of(&html)];
    for file in ["index.js", "index.wasm", "index.pck"] {
        let (status, _, body) = fetch(addr, &format!("{page}{file}"));
        assert_eq!(status, 200, "{page}{file}");
        versions.push(version_of(&body));
    }
    versions
}

#[test]
fn a_page_load_racing_deploys_never_mixes_versions() {
    let base = temp_dir("deploy-race");
    let root = base.join("www");
    let exports: Vec<PathBuf> = (1..=8)
        .map(|v| export(&base.join(format!("v{v}")), v))
        .collect();
    assert!(
        deploy(&root, &[exports[0].to_str().unwrap()])
            .status
            .success()
    );
    let server = server(&root);
    let addr = server.web;

    // Players loading pages over and over while the deploys below run.
    let done = Arc::new(AtomicBool::new(false));
    let loads = Arc::new(AtomicUsize::new(0));
    let players: Vec<_> = (0..4)
        .map(|_| {
            let (done, loads) = (done.clone(), loads.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let versions = page_load(addr, || {});
                    assert!(
                        versions.iter().all(|v| *v == versions[0]),
                        "mixed: {versions:?}"
                    );
                    loads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // And one slow player per deploy, whose page comes before the switch and whose files are
    // fetched after it, when `/` already sends new players to the new release, whose index.js
    // is the new one: it still gets its own page's files.
    for (i, next) in exports.iter().enumerate().skip(1) {
        let before = live_page(addr);
        let versions = page_load(addr, || {
            let out = deploy(&root, &[next.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let after = live_page(addr);
            assert_ne!(after, before, "the deploy switched what / serves");
            let (_, _, js) = fetch(addr, &format!("{after}index.js"));
            assert_eq!(
                version_of(&js),
                (i + 1).to_string(),
                "a new page loads new files"
            );
        });
        assert_eq!(
            versions,
            vec![i.to_string(); 4],
            "page of version {i}, its files"
        );
    }
    done.store(true, Ordering::Relaxed);
    for p in players {
        p.join().expect("no player saw mixed versions");
    }
    assert!(loads.load(Ordering::Relaxed) > 0);

    // Three releases are kept (--keep): a page of a removed one goes to the live release, its
    // other files are gone.
    let kept = std::fs::read_dir(base.join("www.releases"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            (!name.starts_with('.')).then_some(name)
        });
    assert_eq!(kept.count(), 3);
    let (status, head, _) = fetch(addr, "/_release/19990101T000000Z/");
    assert_eq!(status, 302);
    assert_eq!(header(&head, "location"), Some(live_page(addr)));
    assert_eq!(fetch(addr, "/_release/19990101T000000Z/index.js").0, 404);
    assert_eq!(fetch(addr, "/_release/..%2f..%2fetc/passwd").0, 404);
}

/// An export may come from someone less trusted than the one deploying it (`game@server` +
/// `sudo rallypoint deploy`): no link in it is followed, whatever it points at, and every one
/// is named at once; nothing is switched and nothing half-made stays. Sidecars are as readable
/// as their file, no more.
#[test]
fn links_in_an_export_are_refused_and_sidecars_keep_their_files_permissions() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let base = temp_dir("deploy-links");
    let root = base.join("www");
    let out = deploy(&root, &[export(&base.join("v1"), 1).to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = root.canonicalize().unwrap();

    let outside = base.join("outside");
    std::fs::create_dir_all(outside.join("folder")).unwrap();
    std::fs::write(outside.join("secret.txt"), "SECRET").unwrap();
    std::fs::write(outside.join("folder/other.txt"), "OTHER").unwrap();
    let linked = export(&base.join("linked"), 2);
    symlink(outside.join("secret.txt"), linked.join("secret.txt")).unwrap();
    symlink(outside.join("folder"), linked.join("assets")).unwrap();
    symlink("/etc/hostname", linked.join("hostname.txt")).unwrap();
    std::fs::create_dir(linked.join("sub")).unwrap();
    symlink("../index.js", linked.join("sub/inside.js")).unwrap();
    let out = deploy(&root, &[linked.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for name in ["secret.txt", "assets", "hostname.txt", "sub/inside.js"] {
        let path = linked.join(name);
        assert!(
            stderr.contains(&format!("{} (to ", path.display()))
                && stderr.contains("deploy copies no links"),
            "{name} is named: {stderr}"
        );
    }
    assert_eq!(root.canonicalize().unwrap(), live, "nothing switched");
    // The export itself named through a link: it could be swapped while it is copied.
    let through = base.join("through-a-link");
    symlink(export(&base.join("real"), 4), &through).unwrap();
    let out = deploy(&root, &[through.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is a symbolic link: name the folder itself"),
        "{stderr}"
    );
    let releases = std::fs::read_dir(live.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.') || n.starts_with(".incoming"))
        .collect::<Vec<_>>();
    assert_eq!(
        releases.len(),
        1,
        "no second release, nothing half-made: {releases:?}"
    );

    // A file readable by its owner only gives sidecars readable by its owner only.
    let private = export(&base.join("private"), 3);
    std::fs::write(private.join("extra.json"), "[1] ".repeat(1024)).unwrap();
    std::fs::set_permissions(
        private.join("extra.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(
        private.join("index.wasm"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let out = deploy(&root, &["--fast", private.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release = root.canonicalize().unwrap();
    for name in ["index.wasm", "index.wasm.gz", "index.wasm.br"] {
        let mode = std::fs::metadata(release.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let mode = std::fs::metadata(release.join("extra.json.gz"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o644,
        "other files' sidecars stay readable as their files"
    );
}

/// An export larger than `admin.max_release_size` (2 GiB unless set) is refused before a byte
/// of it is written: a sparse file of 3 GiB, which takes no room in the export, counts in full.
/// With the limit set lower in the config file, a small export over it is refused too.
#[test]
fn an_export_over_the_release_size_limit_is_refused_and_nothing_is_written() {
    let base = temp_dir("deploy-size");
    let root = base.join("www");
    let out = deploy(&root, &[export(&base.join("v1"), 1).to_str().unwrap()]);
    assert!(out.status.success());
    let live = root.canonicalize().unwrap();
    let releases = || {
        std::fs::read_dir(live.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with('.') || n.starts_with(".incoming"))
            .count()
    };

    let sparse = export(&base.join("sparse"), 2);
    std::fs::File::create(sparse.join("huge.bin"))
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let out = deploy(&root, &[sparse.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("larger than admin.max_release_size (2147483648 bytes)"),
        "{stderr}"
    );
    assert_eq!(releases(), 1, "nothing half-made stays");
    assert_eq!(root.canonicalize().unwrap(), live, "nothing switched");

    let config = base.join("rallypoint.toml");
    std::fs::write(
        &config,
        format!(
            "[web]\nroot = \"{}\"\n[admin]\nmax_release_size = \"2KiB\"\n",
            root.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "deploy"])
        .arg(export(&base.join("v3"), 3))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(2048 bytes)"), "{stderr}");
    assert_eq!(releases(), 1);
    let _ = std::fs::remove_dir_all(&base);
}
