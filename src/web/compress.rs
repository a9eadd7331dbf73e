//! On-the-fly compression of files that have no precompressed sidecar, kept by (path, coding,
//! modification time, size) under a size budget. A Godot `.wasm` shrinks to about a quarter with
//! gzip and further with brotli; compressing it once per export instead of once per player is
//! the point.
//!
//! Copies are written as they are made into unnamed files in the cache directory (systemd's
//! `CacheDirectory`, else the temporary directory): a 40 MiB export costs the server its
//! encoder's state while compressing and nothing after, and the kernel's page cache serves it.
//! Copies of at most [`IN_MEMORY`] bytes are kept in memory instead. Unnamed files vanish with
//! their last reader, and with the process.
//!
//! A cold file is compressed once, by the first request: while that runs, requests for the same
//! file and coding get the file uncompressed rather than starting another compression (players
//! arriving together after a deploy would otherwise compress it once each, holding a copy each).
//! At most one compression per CPU runs at a time; beyond that, files go out uncompressed too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hyper::body::Bytes;

use super::negotiate::Coding;

/// Brotli quality for on-the-fly work: near gzip's speed, clearly better ratio. Sidecars made
/// ahead of time (`brotli -q 11`) do better still.
const BROTLI_QUALITY: u32 = 5;
/// A 256 KiB window: the encoder's state for Godot 4.6's 36 MiB `index.wasm` is about 5 MiB, 9 MiB
/// with a 512 KiB window and 38 MiB with brotli's default 4 MiB, for 1 % of size (measured).
const BROTLI_WINDOW: u32 = 18;

/// Compressed copies up to this size are kept in memory.
pub const IN_MEMORY: u64 = 256 * 1024;

type Key = (PathBuf, &'static str);

/// One compressed copy.
#[derive(Clone, Debug)]
pub enum Compressed {
    Memory(Bytes),
    /// An unnamed file, read at offsets so that readers never share a position.
    File {
        file: Arc<File>,
        len: u64,
    },
}

impl Compressed {
    pub fn len(&self) -> u64 {
        match self {
            Compressed::Memory(bytes) => bytes.len() as u64,
            Compressed::File { len, .. } => *len,
        }
    }
}

struct Entry {
    modified: SystemTime,
    len: u64,
    copy: Compressed,
}

pub struct CompressionCache {
    /// Where copies too big for memory are written.
    dir: PathBuf,
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
    pub fn new(dir: PathBuf, budget: usize) -> CompressionCache {
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        CompressionCache {
            dir,
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
    ) -> Option<Compressed> {
        let key = (file.to_path_buf(), coding.token());
        let s = self.state.lock().unwrap();
        let e = s.entries.get(&key)?;
        (e.modified == modified && e.len == len).then(|| e.copy.clone())
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
    ) -> std::io::Result<Option<Compressed>> {
        if let Some(copy) = self.cached(file, coding, modified, len) {
            return Ok(Some(copy));
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
        let (path, dir) = (file.to_path_buf(), self.dir.clone());
        let copy = tokio::task::spawn_blocking(move || compress_file(&path, coding, &dir))
            .await
            .map_err(std::io::Error::other)??;
        self.compressed.fetch_add(1, Ordering::Relaxed);
        self.insert(
            key,
            Entry {
                modified,
                len,
                copy: copy.clone(),
            },
        );
        Ok(Some(copy))
    }

    /// Compressions done, and requests sent uncompressed because one was under way.
    pub fn figures(&self) -> (u64, u64) {
        (
            self.compressed.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        )
    }

    fn insert(&self, key: Key, entry: Entry) {
        let size = entry.copy.len() as usize;
        if size > self.budget {
            return;
        }
        let mut s = self.state.lock().unwrap();
        if let Some(old) = s.entries.remove(&key) {
            s.used -= old.copy.len() as usize;
            s.order.retain(|k| *k != key);
        }
        while s.used + size > self.budget {
            let Some(oldest) = s.order.pop_front() else {
                break;
            };
            if let Some(e) = s.entries.remove(&oldest) {
                s.used -= e.copy.len() as usize;
            }
        }
        s.used += size;
        s.order.push_back(key.clone());
        s.entries.insert(key, entry);
    }
}

/// Compresses a file as it is read into an unnamed file in `dir`, so that neither the file nor
/// its compressed copy is ever held whole in memory; small copies are read back into memory.
fn compress_file(path: &Path, coding: Coding, dir: &Path) -> std::io::Result<Compressed> {
    let mut input = File::open(path)?;
    let out = unnamed_file(dir)?;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, &out);
    match coding {
        Coding::Brotli => {
            let mut c =
                brotli::CompressorWriter::new(&mut w, 64 * 1024, BROTLI_QUALITY, BROTLI_WINDOW);
            std::io::copy(&mut input, &mut c)?;
            c.flush()?;
        }
        Coding::Gzip => {
            let mut c = flate2::write::GzEncoder::new(&mut w, flate2::Compression::default());
            std::io::copy(&mut input, &mut c)?;
            c.finish()?;
        }
        Coding::Identity => {
            std::io::copy(&mut input, &mut w)?;
        }
    }
    w.flush()?;
    drop(w);
    let len = out.metadata()?.len();
    // The encoder's state (megabytes) has just been freed: hand it back to the system now rather
    // than keep it in the allocator's free lists.
    // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
    unsafe { libc::malloc_trim(0) };
    if len <= IN_MEMORY {
        let mut bytes = vec![0; len as usize];
        out.read_exact_at(&mut bytes, 0)?;
        return Ok(Compressed::Memory(bytes.into()));
    }
    Ok(Compressed::File {
        file: Arc::new(out),
        len,
    })
}

/// A file in `dir` with no name: it goes away when the last handle closes, crash or not.
fn unnamed_file(dir: &Path) -> std::io::Result<File> {
    let tmpfile = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match tmpfile {
        Ok(file) => Ok(file),
        // Filesystems without O_TMPFILE: a named file, unlinked at once.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            let mut name = [0u8; 8];
            getrandom::fill(&mut name).map_err(std::io::Error::other)?;
            let path = dir.join(format!(".rallypoint-{:016x}", u64::from_ne_bytes(name)));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(file)
        }
        Err(e) => Err(e),
    }
}

/// Where compressed copies go: systemd's `CacheDirectory`, else the temporary directory.
pub fn compression_dir() -> PathBuf {
    std::env::var_os("CACHE_DIRECTORY")
        // systemd may list several directories, colon-separated.
        .and_then(|v| v.to_str()?.split(':').next().map(PathBuf::from))
        .unwrap_or_else(std::env::temp_dir)
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

    fn dir() -> PathBuf {
        std::env::temp_dir()
    }

    fn contents(copy: &Compressed) -> Vec<u8> {
        match copy {
            Compressed::Memory(bytes) => bytes.to_vec(),
            Compressed::File { file, len } => {
                let mut bytes = vec![0; *len as usize];
                file.read_exact_at(&mut bytes, 0).unwrap();
                bytes
            }
        }
    }

    #[test]
    fn round_trips_through_real_decoders() {
        let data = b"let godot = 'engine';\n".repeat(500);
        let path = file_with("round.js", &data);
        let br = contents(&compress_file(&path, Coding::Brotli, &dir()).unwrap());
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(br.len() < data.len() / 10);
        let gz = contents(&compress_file(&path, Coding::Gzip, &dir()).unwrap());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn big_copies_live_in_unnamed_files() {
        // Barely compressible: the copy is larger than what is kept in memory.
        let mut data = Vec::new();
        let mut x = 12345u32;
        for _ in 0..(1 << 20) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push((x >> 16) as u8);
        }
        let path = file_with("noise.wasm", &data);
        let copies = dir().join(format!("rallypoint-copies-{}", std::process::id()));
        std::fs::create_dir_all(&copies).unwrap();
        let copy = compress_file(&path, Coding::Gzip, &copies).unwrap();
        assert!(matches!(copy, Compressed::File { len, .. } if len > IN_MEMORY));
        assert_eq!(
            std::fs::read_dir(&copies).unwrap().count(),
            0,
            "no name in the directory"
        );
        std::fs::remove_dir(&copies).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&contents(&copy)[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[tokio::test]
    async fn caches_by_mtime_and_evicts_under_the_budget() {
        let a = file_with("a.js", "a".repeat(10_000).as_bytes());
        let b = file_with("b.js", "b".repeat(10_000).as_bytes());
        let t = SystemTime::UNIX_EPOCH;
        let first = compress_file(&a, Coding::Gzip, &dir()).unwrap().len() as usize;
        let cache = CompressionCache::new(dir(), first + 10);
        let get = async |at| {
            contents(
                &cache
                    .get(&a, Coding::Gzip, at, 10_000)
                    .await
                    .unwrap()
                    .unwrap(),
            )
        };
        let one = get(t).await;
        // Same key and validators: the cached bytes, even after the file changed on disk.
        std::fs::write(&a, "c".repeat(10_000)).unwrap();
        assert_eq!(get(t).await, one);
        // New mtime: compressed again.
        let later = t + std::time::Duration::from_secs(1);
        assert_ne!(get(later).await, one);
        // Over budget: the older entry goes.
        cache.get(&b, Coding::Gzip, t, 10_000).await.unwrap();
        let s = cache.state.lock().unwrap();
        assert_eq!(s.entries.len(), 1);
        assert!(s.used <= first + 10);
    }

    #[tokio::test]
    async fn one_compression_per_file_at_a_time_the_rest_go_uncompressed() {
        let path = file_with("big.wasm", &b"\0asm".repeat(1 << 20));
        let cache = std::sync::Arc::new(CompressionCache::new(dir(), 64 << 20));
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
