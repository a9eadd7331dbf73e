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
pub enum NoFile {
    /// Not a path a file could have: traversal, bad encoding.
    Malformed,
    /// A fine path with no file behind it (or only outside the root, or hidden).
    NotFound,
    /// A directory named without its trailing slash: the browser must ask again with it, or
    /// the page's relative URLs (`game.js`, `game.wasm`) would resolve against the parent.
    Directory,
    /// A file named with a trailing slash (`/index.html/`): the browser must ask again without
    /// it, or the page's relative URLs would resolve under a folder that does not exist.
    Slashed,
}

/// The one dot-directory served, at the top of the root only.
const WELL_KNOWN: &str = ".well-known";

/// The relative path a request path (still percent-encoded) names, if it could name a file at
/// all: decoded, and made of normal components only.
pub fn check_path(path: &str) -> Result<PathBuf, NoFile> {
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| NoFile::Malformed)?;
    let mut relative = PathBuf::new();
    for (i, segment) in decoded.split('/').filter(|s| !s.is_empty()).enumerate() {
        let bad = segment == "."
            || segment == ".."
            || segment.contains(['\\', '\0', ':'])
            || segment.contains('%');
        if bad {
            return Err(NoFile::Malformed);
        }
        if segment.starts_with('.') && !(i == 0 && segment == WELL_KNOWN) {
            return Err(NoFile::NotFound);
        }
        relative.push(segment);
    }
    Ok(relative)
}

/// The file a request for `path` (the URL path, still percent-encoded) should get.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf, NoFile> {
    let relative = check_path(path)?;
    let root = root.canonicalize().map_err(|_| NoFile::NotFound)?;
    let mut full = root
        .join(&relative)
        .canonicalize()
        .map_err(|_| NoFile::NotFound)?;
    if full.is_dir() {
        if !path.ends_with('/') {
            return Err(NoFile::Directory);
        }
        full = full
            .join("index.html")
            .canonicalize()
            .map_err(|_| NoFile::NotFound)?;
    } else if path.ends_with('/') && full.starts_with(&root) && full.is_file() {
        return Err(NoFile::Slashed);
    }
    if !full.starts_with(&root) || !full.is_file() {
        return Err(NoFile::NotFound);
    }
    Ok(full)
}

/// The folder a request for `path` (still percent-encoded) names, if it is one under the root.
pub fn folder(root: &Path, path: &str) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let dir = root.join(check_path(path).ok()?).canonicalize().ok()?;
    (dir.starts_with(&root) && dir.is_dir()).then_some(dir)
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
        assert_eq!(resolve(&root, "/game"), Err(NoFile::Directory));
        assert_eq!(resolve(&root, "/game/index.html/"), Err(NoFile::Slashed));
        // Outside the root a slash changes nothing: not found.
        assert_eq!(resolve(&root, "/link.txt/"), Err(NoFile::NotFound));
        assert!(folder(&root, "/gam%65/").unwrap().ends_with("www/game"));
        assert_eq!(folder(&root, "/index.html"), None);
        assert_eq!(resolve(&root, "/gam%65"), Err(NoFile::Directory));
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
            assert_eq!(resolve(&root, path), Err(NoFile::Malformed), "{path}");
        }
        for path in [
            "/.env",
            "/%2eenv",
            "/game/.git/config",
            "/game/.well-known/x",
        ] {
            assert_eq!(resolve(&root, path), Err(NoFile::NotFound), "{path}");
        }
        assert_eq!(resolve(&root, "/link.txt"), Err(NoFile::NotFound));
        assert_eq!(resolve(&root, "/missing.js"), Err(NoFile::NotFound));
    }
}
