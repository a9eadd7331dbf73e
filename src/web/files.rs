//! Maps a request path to a file under the web root, and nothing outside it.
//!
//! Two layers: the decoded path must consist of normal components only (no `..`, `.`,
//! backslash or NUL segments), and the canonical result must still lie under the canonical
//! root, so a symlink cannot lead out of it. Dotfiles and dot-directories are hidden (404), except
//! `/.well-known/` (RFC 8615: `security.txt`, Android's `assetlinks.json`).

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

/// Why a request path maps to no file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a path a file could have: traversal, bad encoding.
    Malformed,
    /// A fine path with no file behind it (or only outside the root, or hidden).
    NotFound,
    /// A directory named without its trailing slash: the browser must ask again with it, or
    /// the page's relative URLs (`game.js`, `game.wasm`) would resolve against the parent.
    Directory,
}

/// The one dot-directory served, at the top of the root only.
const WELL_KNOWN: &str = ".well-known";

/// The relative path a request path (still percent-encoded) names, if it could name a file at
/// all: decoded, and made of normal components only.
pub fn check_path(path: &str) -> Result<PathBuf, Refused> {
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| Refused::Malformed)?;
    let mut relative = PathBuf::new();
    for (i, segment) in decoded.split('/').filter(|s| !s.is_empty()).enumerate() {
        let bad = segment == "."
            || segment == ".."
            || segment.contains(['\\', '\0', ':'])
            || segment.contains('%');
        if bad {
            return Err(Refused::Malformed);
        }
        if segment.starts_with('.') && !(i == 0 && segment == WELL_KNOWN) {
            return Err(Refused::NotFound);
        }
        relative.push(segment);
    }
    Ok(relative)
}

/// The file a request for `path` (the URL path, still percent-encoded) should get.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf, Refused> {
    let relative = check_path(path)?;
    let root = root.canonicalize().map_err(|_| Refused::NotFound)?;
    let mut full = root
        .join(&relative)
        .canonicalize()
        .map_err(|_| Refused::NotFound)?;
    if full.is_dir() {
        if !path.ends_with('/') {
            return Err(Refused::Directory);
        }
        full = full
            .join("index.html")
            .canonicalize()
            .map_err(|_| Refused::NotFound)?;
    }
    if !full.starts_with(&root) || !full.is_file() {
        return Err(Refused::NotFound);
    }
    Ok(full)
}

/// The Content-Type for a file name.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "pck" => "application/octet-stream",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rallypoint-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("www/game")).unwrap();
        std::fs::write(dir.join("www/index.html"), "home").unwrap();
        std::fs::write(dir.join("www/game/index.html"), "game").unwrap();
        std::fs::write(dir.join("www/.env"), "secret").unwrap();
        std::fs::create_dir_all(dir.join("www/.well-known")).unwrap();
        std::fs::write(dir.join("www/.well-known/security.txt"), "Contact: x").unwrap();
        std::fs::write(dir.join("outside.txt"), "secret").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("outside.txt"), dir.join("www/link.txt"));
        dir
    }

    #[test]
    fn serves_files_and_directory_indexes() {
        let dir = tree();
        let root = dir.join("www");
        assert!(resolve(&root, "/").unwrap().ends_with("www/index.html"));
        assert!(
            resolve(&root, "/game/")
                .unwrap()
                .ends_with("game/index.html")
        );
        assert_eq!(resolve(&root, "/game"), Err(Refused::Directory));
        assert_eq!(resolve(&root, "/gam%65"), Err(Refused::Directory));
        assert!(
            resolve(&root, "/gam%65/index.html")
                .unwrap()
                .ends_with("game/index.html")
        );
    }

    #[test]
    fn well_known_is_served_at_the_top_only() {
        let dir = tree();
        let root = dir.join("www");
        assert!(
            resolve(&root, "/.well-known/security.txt")
                .unwrap()
                .ends_with(".well-known/security.txt")
        );
    }

    #[test]
    fn never_leaves_the_root() {
        let dir = tree();
        let root = dir.join("www");
        for path in [
            "/../outside.txt",
            "/%2e%2e/outside.txt",
            "/..%2foutside.txt",
            "/%252e%252e/outside.txt",
            "/..\\outside.txt",
            "/index.html%00.png",
            "/C:\\outside.txt",
            "/%ff",
        ] {
            assert_eq!(resolve(&root, path), Err(Refused::Malformed), "{path}");
        }
        for path in [
            "/.env",
            "/%2eenv",
            "/game/.git/config",
            "/game/.well-known/x",
        ] {
            assert_eq!(resolve(&root, path), Err(Refused::NotFound), "{path}");
        }
        assert_eq!(resolve(&root, "/link.txt"), Err(Refused::NotFound));
        assert_eq!(resolve(&root, "/missing.js"), Err(Refused::NotFound));
    }

    #[test]
    fn godot_export_types() {
        assert_eq!(content_type(Path::new("game.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("game.pck")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(Path::new("game.JS")),
            "text/javascript; charset=utf-8"
        );
    }
}
