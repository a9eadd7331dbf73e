//! What a request path resolves to, remembered for a second: the canonical file, its size and
//! modification time, its fresh precompressed sidecars, and the bytes of small files. A hot
//! request is then answered without touching the filesystem; a stale one costs one trip to the
//! blocking pool for all its checks together. A new export copied into place is seen within
//! [`RECHECK`].

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hyper::body::Bytes;

use super::negotiate::Coding;
use super::safe_path::{self, NoFile};
use super::sendfile;

pub const RECHECK: Duration = Duration::from_secs(1);
/// Files up to this size are kept in memory whole.
pub const SMALL_FILE: u64 = 1024 * 1024;
/// Entries at most (a flood of distinct paths clears the map rather than growing it) and bytes
/// of small files at most.
const MAX_ENTRIES: usize = 16_384;
const MAX_BYTES: usize = 64 << 20;

/// One representation on disk.
#[derive(Clone, Debug)]
pub struct OnDisk {
    pub path: PathBuf,
    pub len: u64,
    /// The whole content, for small files.
    pub bytes: Option<Bytes>,
}

#[derive(Clone, Debug)]
pub struct Resolved {
    pub file: OnDisk,
    pub modified: SystemTime,
    /// Sidecars (`.br`, `.gz`) at least as new as the file.
    pub sidecars: Vec<(Coding, OnDisk)>,
}

type Lookup = Result<Arc<Resolved>, NoFile>;

#[derive(Default)]
pub struct FileCache {
    entries: Mutex<State>,
}

#[derive(Default)]
struct State {
    map: HashMap<(PathBuf, String), (Instant, Lookup)>,
    bytes: usize,
}

impl FileCache {
    /// The file serving `request_path` (still percent-encoded) under `root`.
    pub async fn lookup(&self, root: &Path, request_path: &str) -> Lookup {
        // Paths that could never name a file are refused without a lookup or an entry.
        safe_path::check_path(request_path)?;
        let key = (root.to_path_buf(), request_path.to_string());
        let now = Instant::now();
        if let Some((at, found)) = self.entries.lock().unwrap().map.get(&key)
            && now.duration_since(*at) < RECHECK
        {
            return found.clone();
        }
        let (root, path) = (key.0.clone(), key.1.clone());
        let found = tokio::task::spawn_blocking(move || inspect(&root, &path))
            .await
            .unwrap_or(Err(NoFile::NotFound));
        let mut s = self.entries.lock().unwrap();
        if s.map.len() >= MAX_ENTRIES || s.bytes >= MAX_BYTES {
            s.map.clear();
            s.bytes = 0;
        }
        s.bytes += found.as_ref().map_or(0, |r| cached_bytes(r));
        if let Some((_, Ok(old))) = s.map.insert(key, (now, found.clone())) {
            s.bytes = s.bytes.saturating_sub(cached_bytes(&old));
        }
        found
    }
}

fn cached_bytes(r: &Resolved) -> usize {
    let len = |d: &OnDisk| d.bytes.as_ref().map_or(0, |b| b.len());
    len(&r.file) + r.sidecars.iter().map(|(_, d)| len(d)).sum::<usize>()
}

/// Everything the responder needs from the filesystem, in one go.
fn inspect(root: &Path, request_path: &str) -> Lookup {
    let file = safe_path::resolve(root, request_path)?;
    let meta = std::fs::metadata(&file).map_err(|_| NoFile::NotFound)?;
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let mut sidecars = Vec::new();
    for coding in [Coding::Brotli, Coding::Gzip] {
        let mut name = file.as_os_str().to_owned();
        name.push(coding.suffix().unwrap_or_default());
        let path = PathBuf::from(name);
        if let Ok(m) = std::fs::metadata(&path)
            && m.is_file()
            && m.modified()
                .is_ok_and(|t| whole_seconds(t) >= whole_seconds(modified))
        {
            sidecars.push((coding, on_disk(path, m.len())));
        }
    }
    Ok(Arc::new(Resolved {
        file: on_disk(file, meta.len()),
        modified,
        sidecars,
    }))
}

/// A time to the second: `brotli -k` (and other tools) give a sidecar its file's time cut to
/// whole seconds, which is fresh, not older.
fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn on_disk(path: PathBuf, len: u64) -> OnDisk {
    let bytes = (len <= SMALL_FILE)
        .then(|| read_whole(&path, len))
        .flatten();
    OnDisk { path, len, bytes }
}

/// The file's `len` bytes (none if it is not that long now); large ones keep the file open to
/// be sent with `sendfile`.
fn read_whole(path: &Path, len: u64) -> Option<Bytes> {
    let mut file = File::open(path).ok()?;
    let mut data = Vec::with_capacity(len as usize);
    file.read_to_end(&mut data).ok()?;
    if data.len() as u64 != len {
        return None;
    }
    Some(if len >= sendfile::MIN_LEN {
        sendfile::file_backed(data, file)
    } else {
        Bytes::from(data)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembers_for_a_second_and_finds_sidecars() {
        let root = std::env::temp_dir().join(format!("rallypoint-fc-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.js"), "one").unwrap();
        let cache = FileCache::default();
        let first = cache.lookup(&root, "/a.js").await.unwrap();
        assert_eq!(first.file.bytes.as_deref(), Some(&b"one"[..]));
        assert!(first.sidecars.is_empty());
        std::fs::write(root.join("a.js"), "two").unwrap();
        std::fs::write(root.join("a.js.br"), "br").unwrap();
        let soon = cache.lookup(&root, "/a.js").await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &soon),
            "within a second: the remembered answer"
        );
        cache.entries.lock().unwrap().map.clear();
        let later = cache.lookup(&root, "/a.js").await.unwrap();
        assert_eq!(later.file.bytes.as_deref(), Some(&b"two"[..]));
        assert_eq!(later.sidecars[0].0, Coding::Brotli);
        // A sidecar given the file's time cut to the second (as `brotli -k` does) is fresh;
        // one a second older is not.
        let file_time = std::fs::metadata(root.join("a.js"))
            .unwrap()
            .modified()
            .unwrap();
        let cut = SystemTime::UNIX_EPOCH + Duration::from_secs(whole_seconds(file_time));
        let set = |t| {
            std::fs::File::options()
                .write(true)
                .open(root.join("a.js.br"))
                .unwrap()
                .set_modified(t)
                .unwrap()
        };
        set(cut);
        cache.entries.lock().unwrap().map.clear();
        assert_eq!(
            cache.lookup(&root, "/a.js").await.unwrap().sidecars.len(),
            1
        );
        set(cut - Duration::from_secs(1));
        cache.entries.lock().unwrap().map.clear();
        assert!(
            cache
                .lookup(&root, "/a.js")
                .await
                .unwrap()
                .sidecars
                .is_empty()
        );
        assert_eq!(
            cache.lookup(&root, "/../x").await.unwrap_err(),
            NoFile::Malformed
        );
        assert_eq!(
            cache.lookup(&root, "/missing.js").await.unwrap_err(),
            NoFile::NotFound
        );
    }
}
