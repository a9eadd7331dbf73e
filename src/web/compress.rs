//! On-the-fly compression of files that have no precompressed sidecar, kept in memory by
//! (path, coding, modification time, size) under a size budget. A Godot `.wasm` shrinks to about
//! a quarter with gzip and further with brotli; compressing it once per export instead of once
//! per player is the point.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use hyper::body::Bytes;

use super::negotiate::Coding;

/// Brotli quality for on-the-fly work: near gzip's speed, clearly better ratio. Sidecars made
/// ahead of time (`brotli -q 11`) do better still.
const BROTLI_QUALITY: u32 = 5;
const BROTLI_WINDOW: u32 = 22;

type Key = (PathBuf, &'static str);

struct Entry {
    modified: SystemTime,
    len: u64,
    bytes: Bytes,
}

pub struct CompressionCache {
    budget: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    used: usize,
    entries: HashMap<Key, Entry>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<Key>,
}

impl CompressionCache {
    pub fn new(budget: usize) -> CompressionCache {
        CompressionCache {
            budget,
            state: Mutex::new(State::default()),
        }
    }

    /// `file` in `coding`, from the cache or compressed now (off the async threads).
    pub async fn get(
        &self,
        file: &Path,
        coding: Coding,
        modified: SystemTime,
        len: u64,
    ) -> std::io::Result<Bytes> {
        let key = (file.to_path_buf(), coding.token());
        if let Some(e) = self.state.lock().unwrap().entries.get(&key) {
            if e.modified == modified && e.len == len {
                return Ok(e.bytes.clone());
            }
        }
        let path = file.to_path_buf();
        let bytes = tokio::task::spawn_blocking(move || compress(&std::fs::read(path)?, coding))
            .await
            .map_err(std::io::Error::other)??;
        self.insert(
            key,
            Entry {
                modified,
                len,
                bytes: bytes.clone(),
            },
        );
        Ok(bytes)
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

pub fn compress(data: &[u8], coding: Coding) -> std::io::Result<Bytes> {
    let mut out = Vec::with_capacity(data.len() / 3);
    match coding {
        Coding::Brotli => {
            let mut w =
                brotli::CompressorWriter::new(&mut out, 64 * 1024, BROTLI_QUALITY, BROTLI_WINDOW);
            w.write_all(data)?;
            w.flush()?;
        }
        Coding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
            w.write_all(data)?;
            w.finish()?;
        }
        Coding::Identity => out.extend_from_slice(data),
    }
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

    #[test]
    fn round_trips_through_real_decoders() {
        let data = b"let godot = 'engine';\n".repeat(500);
        let br = compress(&data, Coding::Brotli).unwrap();
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(br.len() < data.len() / 10);
        let gz = compress(&data, Coding::Gzip).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[tokio::test]
    async fn caches_by_mtime_and_evicts_under_the_budget() {
        let dir = std::env::temp_dir().join(format!("rallypoint-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.js"), dir.join("b.js"));
        std::fs::write(&a, "a".repeat(10_000)).unwrap();
        std::fs::write(&b, "b".repeat(10_000)).unwrap();
        let t = SystemTime::UNIX_EPOCH;
        let first = compress(&std::fs::read(&a).unwrap(), Coding::Gzip)
            .unwrap()
            .len();
        let cache = CompressionCache::new(first + 10);
        let one = cache.get(&a, Coding::Gzip, t, 10_000).await.unwrap();
        // Same key and validators: the cached bytes, even after the file changed on disk.
        std::fs::write(&a, "c".repeat(10_000)).unwrap();
        assert_eq!(cache.get(&a, Coding::Gzip, t, 10_000).await.unwrap(), one);
        // New mtime: compressed again.
        let later = t + std::time::Duration::from_secs(1);
        assert_ne!(
            cache.get(&a, Coding::Gzip, later, 10_000).await.unwrap(),
            one
        );
        // Over budget: the older entry goes.
        cache.get(&b, Coding::Gzip, t, 10_000).await.unwrap();
        let s = cache.state.lock().unwrap();
        assert_eq!(s.entries.len(), 1);
        assert!(s.used <= first + 10);
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
