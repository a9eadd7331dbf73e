//! A publish, as the server keeps it: the manifest the client sent (paths, sizes, SHA-256), the
//! contents it must still upload (any content a kept release already has is linked from there,
//! not sent), the uploads so far, and the commit that makes a release of it with `deploy`.
//!
//! Everything lives in `<web.root>.releases/.publish-<id>/` (`blobs/<sha256>` as they arrive,
//! `export/` at the commit) until the commit or until it is abandoned; nothing live changes
//! before the commit's switch. Blocking file work: the HTTP layer calls it off the runtime.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::deploy::{self, DeployError, Effort, Switched, layout};

/// Files a manifest may list at most.
pub const MAX_FILES: usize = 10_000;
/// Releases kept after a publish, the live one among them (as `rallypoint deploy`'s default).
pub const KEEP: usize = 3;
const STAGING_PREFIX: &str = ".publish-";

/// One file of the export.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Relative, `/`-separated, no hidden parts.
    pub path: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub files: Vec<Entry>,
}

/// A content the client must send, and how much of it has arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub sha256: String,
    pub size: u64,
    pub received: u64,
}

/// Why a request about a publish is refused; `Display` is the reason the client shows.
#[derive(Debug)]
pub enum PublishError {
    /// Not a usable manifest (the first problem).
    Invalid(String),
    /// Its files add up to more than `admin.max_release_size` (this many bytes).
    TooLarge(u64),
    /// Another publish is under way, started this many seconds ago.
    Busy(u64),
    /// No such publish (finished, abandoned, or never).
    Unknown,
    /// The content is not one this publish waits for.
    NotMissing,
    /// An upload must continue where the last one stopped: at this offset.
    WrongOffset(u64),
    /// More bytes than the manifest's size for this content.
    Overflow,
    /// The content arrived whole but its SHA-256 is another: it starts over.
    Corrupt,
    /// The commit came before every content arrived (this many are missing).
    Incomplete(usize),
    Deploy(DeployError),
    Io(String, io::Error),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Invalid(why) => write!(f, "not a manifest this server takes: {why}"),
            PublishError::TooLarge(max) => write!(
                f,
                "the export is larger than admin.max_release_size ({max} bytes): leave out what \
                 the game does not load, or raise the limit"
            ),
            PublishError::Busy(secs) => write!(
                f,
                "another publish is under way (started {secs} s ago); try again when it is \
                 done, or after admin.publish_idle_timeout of silence from it"
            ),
            PublishError::Unknown => f.write_str(
                "no such publish: it was committed, cancelled, or abandoned after \
                 admin.publish_idle_timeout; start again",
            ),
            PublishError::NotMissing => f.write_str("this publish does not wait for that content"),
            PublishError::WrongOffset(at) => {
                write!(f, "this content has {at} bytes so far: continue from there")
            }
            PublishError::Overflow => f.write_str("more bytes than the manifest's size"),
            PublishError::Corrupt => f.write_str(
                "the content's SHA-256 is not the manifest's: it was changed or damaged on the \
                 way; upload it again",
            ),
            PublishError::Incomplete(n) => write!(f, "{n} content(s) still missing"),
            PublishError::Deploy(e) => e.fmt(f),
            PublishError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> PublishError {
    let what = what.into();
    move |e| PublishError::Io(what, e)
}

/// One publish under way.
pub struct Session {
    pub id: String,
    pub started: Instant,
    pub touched: Instant,
    files: Vec<Entry>,
    /// Where it keeps its files: `<releases>/.publish-<id>`.
    dir: PathBuf,
    /// Contents still to come (by SHA-256): size, and bytes received so far.
    missing: HashMap<String, (u64, u64)>,
    /// Contents a kept release has, where.
    found: HashMap<String, PathBuf>,
    /// Contents being written by a request now.
    writing: HashSet<String>,
}

impl Session {
    /// Checks `manifest` and looks for its contents in the releases kept beside `root`.
    pub fn start(
        root: &Path,
        id: String,
        manifest: Manifest,
        max_size: u64,
        hashes: &mut HashCache,
        now: Instant,
    ) -> Result<Session, PublishError> {
        let files = manifest.files;
        check(&files, max_size)?;
        let releases = layout::releases_dir(root);
        let dir = releases.join(format!("{STAGING_PREFIX}{id}"));
        fs::create_dir_all(dir.join("blobs"))
            .map_err(io_err(format!("cannot create {}", dir.display())))?;
        let wanted: HashMap<&str, u64> =
            files.iter().map(|f| (f.sha256.as_str(), f.size)).collect();
        let sizes: HashSet<u64> = wanted.values().copied().collect();
        let mut found = HashMap::new();
        for release in layout::releases(root) {
            for file in tree(&releases.join(&release)) {
                let Ok(meta) = fs::metadata(&file) else {
                    continue;
                };
                if !sizes.contains(&meta.len()) {
                    continue;
                }
                if let Some(sha) = hashes.sha256(&file, &meta)
                    && wanted.contains_key(sha.as_str())
                {
                    found.entry(sha).or_insert(file);
                }
            }
        }
        let missing = wanted
            .iter()
            .filter(|(sha, _)| !found.contains_key(**sha))
            .map(|(sha, &size)| (sha.to_string(), (size, 0)))
            .collect();
        Ok(Session {
            id,
            started: now,
            touched: now,
            files,
            dir,
            missing,
            found,
            writing: HashSet::new(),
        })
    }

    /// What the client must still send, largest first.
    pub fn missing(&self) -> Vec<Missing> {
        let mut out: Vec<Missing> = self
            .missing
            .iter()
            .map(|(sha, &(size, received))| Missing {
                sha256: sha.clone(),
                size,
                received,
            })
            .collect();
        out.sort_by(|a, b| b.size.cmp(&a.size).then(a.sha256.cmp(&b.sha256)));
        out
    }

    /// (bytes in all, bytes it must send) for the manifest's distinct contents.
    pub fn bytes(&self) -> (u64, u64) {
        let mut seen = HashSet::new();
        let total = self
            .files
            .iter()
            .filter(|f| seen.insert(&f.sha256))
            .map(|f| f.size)
            .sum();
        (total, self.missing.values().map(|(size, _)| size).sum())
    }

    /// Claims content `sha` for an upload starting at `offset`: the file to append to and how
    /// many bytes it may still take. [`Session::uploaded`] must follow.
    pub fn begin_upload(&mut self, sha: &str, offset: u64) -> Result<(PathBuf, u64), PublishError> {
        let &(size, received) = self.missing.get(sha).ok_or(PublishError::NotMissing)?;
        if offset != received || !self.writing.insert(sha.to_string()) {
            return Err(PublishError::WrongOffset(received));
        }
        Ok((self.dir.join("blobs").join(sha), size - received))
    }

    /// The upload of `sha` that [`Session::begin_upload`] claimed wrote `added` bytes (the
    /// file holds whatever was written, even when the request failed half way).
    pub fn uploaded(&mut self, sha: &str, added: u64) {
        self.writing.remove(sha);
        if let Some((_, received)) = self.missing.get_mut(sha) {
            *received += added;
        }
    }

    /// Whether `sha` has all its bytes.
    pub fn complete(&self, sha: &str) -> bool {
        self.missing.get(sha).is_some_and(|(size, got)| got == size)
    }

    /// Takes a complete content's SHA-256 as read back (`actual`): the manifest's, and it is no
    /// longer missing; another, and it starts over.
    pub fn verified(&mut self, sha: &str, actual: io::Result<String>) -> Result<(), PublishError> {
        let path = self.dir.join("blobs").join(sha);
        let actual = actual.map_err(io_err("cannot read an upload back"))?;
        if actual == sha {
            self.missing.remove(sha);
            self.found.insert(sha.to_string(), path);
            return Ok(());
        }
        let _ = fs::remove_file(&path);
        if let Some((_, received)) = self.missing.get_mut(sha) {
            *received = 0;
        }
        Err(PublishError::Corrupt)
    }

    /// Bytes of `sha` here: all of them once it is no longer missing.
    pub fn received(&self, sha: &str) -> u64 {
        match self.missing.get(sha) {
            Some(&(_, received)) => received,
            None => self
                .files
                .iter()
                .find(|f| f.sha256 == sha)
                .map_or(0, |f| f.size),
        }
    }

    /// Makes a release of the manifest's files and puts it live, as `rallypoint deploy` does.
    pub fn commit(
        &self,
        root: &Path,
        max_size: u64,
        effort: Effort,
    ) -> Result<Switched, PublishError> {
        if !self.missing.is_empty() {
            return Err(PublishError::Incomplete(self.missing.len()));
        }
        let export = self.dir.join("export");
        let _ = fs::remove_dir_all(&export);
        for entry in &self.files {
            let to = export.join(&entry.path);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(io_err("cannot assemble the export"))?;
            }
            let from = &self.found[&entry.sha256];
            // A link where the file system allows one: the bytes are not copied twice.
            fs::hard_link(from, &to)
                .or_else(|_| fs::copy(from, &to).map(drop))
                .map_err(io_err(format!("cannot assemble {}", entry.path)))?;
        }
        deploy::deploy(root, &export, KEEP, effort, max_size, &mut |_| {})
            .map_err(PublishError::Deploy)
    }

    /// Removes its files.
    pub fn discard(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }

    pub fn owns(&self, dir: &Path) -> bool {
        dir == self.dir
    }
}

/// Removes what publishes left beside `root` that `current` does not own (a crash, a restart).
pub fn sweep_strays(root: &Path, current: Option<&Session>) {
    let Ok(entries) = fs::read_dir(layout::releases_dir(root)) else {
        return;
    };
    for entry in entries.flatten() {
        let stray = entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
            && !current.is_some_and(|s| s.owns(&entry.path()));
        if stray {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The first problem of a manifest, if any.
fn check(files: &[Entry], max_size: u64) -> Result<(), PublishError> {
    let invalid = |why: String| Err(PublishError::Invalid(why));
    if files.is_empty() {
        return invalid("no files".into());
    }
    if files.len() > MAX_FILES {
        return invalid(format!("{} files; at most {MAX_FILES}", files.len()));
    }
    let mut paths = HashSet::new();
    let mut total: u64 = 0;
    for f in files {
        if let Some(why) = bad_path(&f.path) {
            return invalid(format!("{:?}: {why}", f.path));
        }
        if !paths.insert(f.path.as_str()) {
            return invalid(format!("{:?} is listed twice", f.path));
        }
        let hex = f.sha256.len() == 64
            && f.sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return invalid(format!("{:?}: sha256 is 64 lower-case hex digits", f.path));
        }
        total = total.saturating_add(f.size);
    }
    if max_size > 0 && total > max_size {
        return Err(PublishError::TooLarge(max_size));
    }
    Ok(())
}

/// Why `path` cannot name a file of a release, if it cannot.
fn bad_path(path: &str) -> Option<&'static str> {
    if path.is_empty() || path.len() > 1024 {
        return Some("a path is 1 to 1024 bytes");
    }
    if path.contains('\\') || path.contains('\0') || path.starts_with('/') {
        return Some("a relative path with / between its parts");
    }
    let parts_ok = Path::new(path).components().all(|c| match c {
        Component::Normal(part) => !part.to_string_lossy().starts_with('.'),
        _ => false,
    });
    if !parts_ok || path.split('/').any(str::is_empty) {
        return Some("no hidden, empty, . or .. parts");
    }
    None
}

/// Every file under `dir`, not following links.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => folders.push(entry.path()),
                Ok(t) if t.is_file() => out.push(entry.path()),
                _ => {}
            }
        }
    }
    out
}

/// The SHA-256 of a file, in lower-case hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    File::open(path).and_then(sha256_of)
}

fn sha256_of(mut file: File) -> io::Result<String> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
    }
    Ok(hex(context.finish().as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of kept releases' files, by path, size and time: a release's files never
/// change, so each is read once per process.
#[derive(Default)]
pub struct HashCache(HashMap<(PathBuf, u64, Option<SystemTime>), String>);

impl HashCache {
    fn sha256(&mut self, file: &Path, meta: &fs::Metadata) -> Option<String> {
        let key = (file.to_path_buf(), meta.len(), meta.modified().ok());
        if let Some(sha) = self.0.get(&key) {
            return Some(sha.clone());
        }
        let sha = File::open(file).and_then(sha256_of).ok()?;
        // Bounded: releases come and go; forget them all now and then.
        if self.0.len() > 100_000 {
            self.0.clear();
        }
        self.0.insert(key, sha.clone());
        Some(sha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, content: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            size: content.len() as u64,
            sha256: hex(ring::digest::digest(&ring::digest::SHA256, content).as_ref()),
        }
    }

    #[test]
    fn manifests_name_files_inside_the_release_only() {
        let ok = entry("index.html", b"x");
        assert!(check(std::slice::from_ref(&ok), 0).is_ok());
        for path in [
            "",
            "/etc/passwd",
            "../up",
            "a/../../b",
            ".hidden",
            "a/.git/config",
            "a//b",
            "a\\b",
            "a/",
            "./a",
        ] {
            let bad = Entry {
                path: path.into(),
                ..ok.clone()
            };
            assert!(
                matches!(check(&[bad], 0), Err(PublishError::Invalid(_))),
                "{path:?}"
            );
        }
        assert!(matches!(
            check(&[ok.clone(), ok.clone()], 0),
            Err(PublishError::Invalid(_))
        ));
        let upper = Entry {
            sha256: ok.sha256.to_uppercase(),
            ..ok.clone()
        };
        assert!(matches!(check(&[upper], 0), Err(PublishError::Invalid(_))));
        assert!(matches!(check(&[], 0), Err(PublishError::Invalid(_))));
        assert!(matches!(check(&[ok], 0), Ok(())));
        let big = entry("big.pck", &[0; 100]);
        assert!(matches!(check(&[big], 99), Err(PublishError::TooLarge(99))));
    }
}
