//! Where deployed exports live. Each deploy is a release, a folder `<web.root>.releases/<id>`
//! (ids are UTC times, so they sort by age), and `web.root` is a symbolic link to the live one,
//! replaced in one `rename`. The web server reads the link for each page it serves and sends the
//! browser to `/_release/<id>/`, where every file the page loads comes from that same release.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where a release's files are served, immutable: `/_release/<id>/<path>`.
pub const URL_PREFIX: &str = "/_release/";

/// A stamp file a deploy leaves in a release once it is complete: files changed after it (copied
/// into `web.root` by hand) are not the release's, and are not served as immutable.
pub const RELEASED: &str = ".released";

/// When the release in `dir` was complete, if a deploy stamped it.
pub fn released_at(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(dir.join(RELEASED)).ok()?.modified().ok()
}

/// `<root>.releases`, next to the root.
pub fn releases_dir(root: &Path) -> PathBuf {
    let mut name = root.file_name().map_or_else(OsString::new, OsString::from);
    name.push(".releases");
    root.with_file_name(name)
}

/// Whether `id` could name a release (not a path, not hidden).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The release `root` links to, when it is a link into its releases folder.
pub fn current(root: &Path) -> Option<String> {
    let target = std::fs::read_link(root).ok()?;
    let target = match target.is_relative() {
        true => root.parent()?.join(target),
        false => target,
    };
    if target.parent()? != releases_dir(root) {
        return None;
    }
    let id = target.file_name()?.to_str()?;
    valid_id(id).then(|| id.to_string())
}

/// The folder of release `id`, if it is there.
pub fn release(root: &Path, id: &str) -> Option<PathBuf> {
    let dir = releases_dir(root).join(id);
    (valid_id(id) && dir.is_dir()).then_some(dir)
}

/// Every release, oldest first.
pub fn releases(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(releases_dir(root)) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let id = e.file_name().into_string().ok()?;
            (valid_id(&id) && e.file_type().ok()?.is_dir()).then_some(id)
        })
        .collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_names_not_paths() {
        assert!(valid_id("20261127T080102Z"));
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "..%2f"] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert_eq!(
            releases_dir(Path::new("/srv/rallypoint/www")),
            Path::new("/srv/rallypoint/www.releases")
        );
    }
}
