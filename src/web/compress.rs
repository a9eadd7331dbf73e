//! On-the-fly compression of files that have no precompressed sidecar, kept in memory by
//! (path, coding, modification time, size) under a size budget. A Godot `.wasm` shrinks to about
//! a quarter with gzip and further with brotli; compressing it once per export instead of once
//! per player is the point.
//!
//! A cold file is compressed once, by the first request: while that runs, requests for the same
//! file and coding get the file uncompressed rather than starting another compression (players
//! arriving together after a deploy would otherwise compress it once each, holding a copy each).
//! At most one compression per CPU runs at a time; beyond that, files go out uncompressed too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use hyper::body::Bytes;

use super::negotiate::Coding;

/// Brotli quality for on-the-fly work: near gzip's speed, clearly better ratio. Sidecars made
/// ahead of time (`brotli -q 11`) do better still.
const BROTLI_QUALITY: u32 = 5;
/// A 512 KiB window: the encoder's state for a 40 MiB file is about 9 MiB, against 38 MiB with
/// brotli's default 4 MiB window, for a few percent of ratio (measured on that file).
const BROTLI_WINDOW: u32 = 19;

type Key = (PathBuf, &'static str);

struct Entry {
    modified: SystemTime,
    len: u64,
    bytes: Bytes,
}

pub struct CompressionCache {
    budget: usize,
    /// Compressions running at once at most.
    parallel: usize,
    state: Mutex<State>,
    compressed: AtomicU64,
    skipped: AtomicU64,
}

#[derive(Default)]
struct State {
    used: usize,
    entries: HashMap<Key, Entry>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<Key>,
    /// Compressions under way.
    running: HashSet<Key>,
}

/// Takes a running compression off the list however it ends.
struct Running<'a>(&'a CompressionCache, Key);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().running.remove(&self.1);
    }
}

impl CompressionCache {
    pub fn new(budget: usize) -> CompressionCache {
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        CompressionCache {
            budget,
            parallel,
            state: Mutex::new(State::default()),
            compressed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// `file` in `coding` if it is cached.
    pub fn cached(
        &self,
        file: &Path,
        coding: Coding,
        modified: SystemTime,
        len: u64,
    ) -> Option<Bytes> {
        let key = (file.to_path_buf(), coding.token());
        let s = self.state.lock().unwrap();
        let e = s.entries.get(&key)?;
        (e.modified == modified && e.len == len).then(|| e.bytes.clone())
    }

    /// `file` in `coding`, from the cache or compressed now (off the async threads); `None` when
    /// that file is being compressed already, or as many compressions as CPUs are running: the
    /// caller then sends it uncompressed.
    pub async fn get(
        &self,
        file: &Path,
        coding: Coding,
        modified: SystemTime,
        len: u64,
    ) -> std::io::Result<Option<Bytes>> {
        if let Some(bytes) = self.cached(file, coding, modified, len) {
            return Ok(Some(bytes));
        }
        let key = (file.to_path_buf(), coding.token());
        {
            let mut s = self.state.lock().unwrap();
            if s.running.contains(&key) || s.running.len() >= self.parallel {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            s.running.insert(key.clone());
        }
        let _running = Running(self, key.clone());
        let path = file.to_path_buf();
        let bytes = tokio::task::spawn_blocking(move || compress_file(&path, coding))
            .await
            .map_err(std::io::Error::other)??;
        self.compressed.fetch_add(1, Ordering::Relaxed);
        self.insert(
            key,
            Entry {
                modified,
                len,
                bytes: bytes.clone(),
            },
        );
        Ok(Some(bytes))
    }

    /// Compressions done, and requests sent uncompressed because one was under way.
    pub fn figures(&self) -> (u64, u64) {
        (
            self.compressed.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        )
    }

    fn insert(&self, key: Key, entry: Entry) {
        let size = entry.bytes.len();
        if size > self.budget {
            return;
        }
        let mut s = self.state.lock().unwrap();
        if let Some(old) = s.entries.remove(&key) {
            s.used -= old.bytes.len();
            s.order.retain(|k| *k != key);
        }
        while s.used + size > self.budget {
            let Some(oldest) = s.order.pop_front() else {
                break;
            };
            if let Some(e) = s.entries.remove(&oldest) {
                s.used -= e.bytes.len();
            }
        }
        s.used += size;
        s.order.push_back(key.clone());
        s.entries.insert(key, entry);
    }
}

/// Compresses a file as it is read, so only the compressed copy is ever held whole.
fn compress_file(path: &Path, coding: Coding) -> std::io::Result<Bytes> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len() as usize;
    // Room for the whole input up front: untouched pages cost no memory, and the buffer never
    // doubles (and copies) on the way; shrinking it after moves no bytes for a large buffer.
    let mut out = Vec::with_capacity(len + 1024);
    match coding {
        Coding::Brotli => {
            let mut w =
                brotli::CompressorWriter::new(&mut out, 64 * 1024, BROTLI_QUALITY, BROTLI_WINDOW);
            std::io::copy(&mut file, &mut w)?;
            w.flush()?;
        }
        Coding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
            std::io::copy(&mut file, &mut w)?;
            w.finish()?;
        }
        Coding::Identity => {
            std::io::copy(&mut file, &mut out)?;
        }
    }
    out.shrink_to_fit();
    // The encoder's state (megabytes) has just been freed: hand it back to the system now rather
    // than keep it in the allocator's free lists.
    // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
    unsafe { libc::malloc_trim(0) };
    Ok(out.into())
}

/// Types worth compressing: text, and the binaries of a Godot export (`.wasm`, `.pck`).
pub fn compressible(path: &Path, content_type: &str) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    content_type.starts_with("text/")
        || content_type.contains("javascript")
        || content_type.contains("json")
        || content_type.contains("svg")
        || content_type == "application/wasm"
        || ext.eq_ignore_ascii_case("pck")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn file_with(name: &str, data: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rallypoint-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    #[test]
    fn round_trips_through_real_decoders() {
        let data = b"let godot = 'engine';\n".repeat(500);
        let path = file_with("round.js", &data);
        let br = compress_file(&path, Coding::Brotli).unwrap();
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(br.len() < data.len() / 10);
        let gz = compress_file(&path, Coding::Gzip).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[tokio::test]
    async fn caches_by_mtime_and_evicts_under_the_budget() {
        let a = file_with("a.js", "a".repeat(10_000).as_bytes());
        let b = file_with("b.js", "b".repeat(10_000).as_bytes());
        let t = SystemTime::UNIX_EPOCH;
        let first = compress_file(&a, Coding::Gzip).unwrap().len();
        let cache = CompressionCache::new(first + 10);
        let one = cache
            .get(&a, Coding::Gzip, t, 10_000)
            .await
            .unwrap()
            .unwrap();
        // Same key and validators: the cached bytes, even after the file changed on disk.
        std::fs::write(&a, "c".repeat(10_000)).unwrap();
        assert_eq!(
            cache.get(&a, Coding::Gzip, t, 10_000).await.unwrap(),
            Some(one.clone())
        );
        // New mtime: compressed again.
        let later = t + std::time::Duration::from_secs(1);
        assert_ne!(
            cache.get(&a, Coding::Gzip, later, 10_000).await.unwrap(),
            Some(one)
        );
        // Over budget: the older entry goes.
        cache.get(&b, Coding::Gzip, t, 10_000).await.unwrap();
        let s = cache.state.lock().unwrap();
        assert_eq!(s.entries.len(), 1);
        assert!(s.used <= first + 10);
    }

    #[tokio::test]
    async fn one_compression_per_file_at_a_time_the_rest_go_uncompressed() {
        let path = file_with("big.wasm", &b"\0asm".repeat(1 << 20));
        let cache = std::sync::Arc::new(CompressionCache::new(64 << 20));
        let t = SystemTime::UNIX_EPOCH;
        let len = 4 << 20;
        let gets = (0..8).map(|_| {
            let (cache, path) = (cache.clone(), path.clone());
            tokio::spawn(async move { cache.get(&path, Coding::Brotli, t, len).await.unwrap() })
        });
        let results = futures_util::future::join_all(gets).await;
        let compressed = results
            .iter()
            .filter(|r| r.as_ref().unwrap().is_some())
            .count();
        assert!(compressed >= 1);
        assert_eq!(cache.figures().0, 1, "compressed once");
        assert_eq!(
            cache.figures().1 as usize,
            8 - compressed,
            "the others skipped"
        );
        assert!(cache.state.lock().unwrap().running.is_empty());
        // Afterwards everyone gets the cached copy.
        assert!(
            cache
                .get(&path, Coding::Brotli, t, len)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(cache.figures().0, 1);
    }

    #[test]
    fn what_is_worth_compressing() {
        assert!(compressible(Path::new("g.wasm"), "application/wasm"));
        assert!(compressible(Path::new("g.pck"), "application/octet-stream"));
        assert!(compressible(
            Path::new("g.js"),
            "text/javascript; charset=utf-8"
        ));
        assert!(!compressible(Path::new("g.png"), "image/png"));
    }
}
