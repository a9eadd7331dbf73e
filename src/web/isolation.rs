//! Cross-origin isolation for Godot exports. A threaded export (the default before Godot 4.3)
//! needs `SharedArrayBuffer`, which browsers only give to cross-origin isolated pages: the page
//! must be served with COOP `same-origin` and COEP `require-corp`, and everything it loads must
//! be same-origin or say it may be embedded. The exported HTML says which kind it is:
//! `const GODOT_THREADS_ENABLED = true;`.
//!
//! With `web.cross_origin_isolation = "auto"`, a directory is isolated when an HTML file in it
//! says threads are on. Each file's verdict is cached by (path, modification time).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::config::CrossOriginIsolation;

/// Godot's exported HTML is a few KiB; a marker further in would not be Godot's.
const SCAN_LIMIT: u64 = 256 * 1024;
/// Files remembered; the cache is cleared when full rather than growing.
const CACHE_MAX: usize = 4096;
/// How long a directory's verdict is used before its files are looked at again. A new export
/// copied in place is seen within this time.
const DIRECTORY_RECHECK: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Isolation {
    /// HTML file → (mtime, threads enabled).
    verdicts: Mutex<HashMap<PathBuf, (SystemTime, bool)>>,
    /// Directory → (when checked, isolated).
    directories: Mutex<HashMap<PathBuf, (Instant, bool)>>,
}

impl Isolation {
    /// Whether `file` (canonical, under the web root) is served with isolation headers.
    pub fn applies(&self, mode: CrossOriginIsolation, file: &Path) -> bool {
        match mode {
            CrossOriginIsolation::Always => true,
            CrossOriginIsolation::Never => false,
            CrossOriginIsolation::Auto => file.parent().is_some_and(|dir| self.threaded_dir(dir)),
        }
    }

    fn threaded_dir(&self, dir: &Path) -> bool {
        let now = Instant::now();
        if let Some(&(at, verdict)) = self.directories.lock().unwrap().get(dir)
            && now.duration_since(at) < DIRECTORY_RECHECK
        {
            return verdict;
        }
        let verdict = std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("html"))
                })
                .any(|html| self.threaded_html(&html))
        });
        let mut cache = self.directories.lock().unwrap();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(dir.to_path_buf(), (now, verdict));
        verdict
    }

    fn threaded_html(&self, html: &Path) -> bool {
        let Ok(modified) = std::fs::metadata(html).and_then(|m| m.modified()) else {
            return false;
        };
        if let Some(&(at, verdict)) = self.verdicts.lock().unwrap().get(html)
            && at == modified
        {
            return verdict;
        }
        let verdict = says_threads_enabled(html);
        let mut cache = self.verdicts.lock().unwrap();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(html.to_path_buf(), (modified, verdict));
        verdict
    }
}

fn says_threads_enabled(html: &Path) -> bool {
    use std::io::Read;
    let mut text = String::new();
    let read = std::fs::File::open(html).and_then(|f| f.take(SCAN_LIMIT).read_to_string(&mut text));
    read.is_ok() && {
        let compact: String = text.split_whitespace().collect();
        compact.contains("GODOT_THREADS_ENABLED=true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_threaded_exports_per_directory_and_follows_changes() {
        let root = std::env::temp_dir().join(format!("rallypoint-iso-{}", std::process::id()));
        for (dir, flag) in [("threads", "true"), ("single", "false")] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(
                root.join(dir).join("index.html"),
                format!("<script>const GODOT_THREADS_ENABLED = {flag};</script>"),
            )
            .unwrap();
            std::fs::write(root.join(dir).join("index.wasm"), b"\0asm").unwrap();
        }
        let iso = Isolation::default();
        let auto = CrossOriginIsolation::Auto;
        assert!(
            iso.applies(auto, &root.join("threads/index.wasm")),
            "every file of a threaded export"
        );
        assert!(iso.applies(auto, &root.join("threads/index.html")));
        assert!(!iso.applies(auto, &root.join("single/index.wasm")));
        assert!(iso.applies(
            CrossOriginIsolation::Always,
            &root.join("single/index.wasm")
        ));
        assert!(!iso.applies(
            CrossOriginIsolation::Never,
            &root.join("threads/index.wasm")
        ));

        // A new export in place: the cached verdict follows the file's modification time, once
        // the directory is looked at again.
        iso.directories.lock().unwrap().clear();
        let html = root.join("threads/index.html");
        std::fs::write(
            &html,
            "<script>const GODOT_THREADS_ENABLED = false;</script>",
        )
        .unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&html)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!iso.applies(auto, &root.join("threads/index.wasm")));
    }
}
