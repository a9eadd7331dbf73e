//! Precompressed copies written at deploy time, next to each file (`index.wasm.br`,
//! `index.wasm.gz`), at the strongest settings unless asked otherwise: made once, served to every player, and the
//! server never compresses those files on the fly. Brotli's best is slow (a 37 MB Godot engine
//! takes a minute and a half here), but the engine rarely changes between deploys: a file the
//! previous release has byte for byte takes that release's copies, linked, not made again.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Files worth compressing: text and a Godot export's binaries (as the web server decides).
const COMPRESSIBLE: &[&str] = &[
    "html", "htm", "js", "mjs", "wasm", "pck", "json", "css", "svg", "txt", "xml", "map",
];
/// Smaller files are not worth a sidecar.
const MIN_SIZE: u64 = 1024;

/// How hard to compress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effort {
    /// Brotli quality 11 and gzip level 9: the smallest files for players.
    Best,
    /// Brotli quality 5 and gzip level 6: seconds, for trying things out.
    Fast,
}

impl Effort {
    fn brotli(self) -> (u32, u32) {
        match self {
            Effort::Best => (11, 24),
            Effort::Fast => (5, 22),
        }
    }

    fn gzip(self) -> flate2::Compression {
        match self {
            Effort::Best => flate2::Compression::best(),
            Effort::Fast => flate2::Compression::default(),
        }
    }
}

/// Where compression is, told to a progress callback about every MiB read.
#[derive(Debug)]
pub struct Compressing<'a> {
    /// The file, relative to the release.
    pub file: &'a Path,
    /// "br" or "gz".
    pub suffix: &'a str,
    /// Its size.
    pub size: u64,
    /// Bytes read so far, over every file and both codings, out of `total`.
    pub done: u64,
    pub total: u64,
}

/// How often (in bytes read) progress is told.
const TELL_EVERY: u64 = 1 << 20;

/// Sidecars made or taken from the previous release.
#[derive(Debug, Default)]
pub struct Written {
    pub compressed: usize,
    pub reused: usize,
}

/// Writes `.br` and `.gz` beside every compressible file under `dir` that has none, keeping
/// only those smaller than the file; where `previous` (the live release) has the same file and
/// its sidecar, that one is linked instead. `progress` is told how far it is.
pub fn write_all(
    dir: &Path,
    previous: Option<&Path>,
    effort: Effort,
    progress: &mut dyn FnMut(&Compressing),
) -> io::Result<Written> {
    let mut written = Written::default();
    let mut compressible = Vec::new();
    for file in files(dir)? {
        let Some(ext) = file.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        let len = std::fs::metadata(&file)?.len();
        if COMPRESSIBLE.contains(&ext.to_ascii_lowercase().as_str()) && len >= MIN_SIZE {
            compressible.push((file, len));
        }
    }
    // Both codings read each file once.
    let total = compressible.iter().map(|(_, len)| 2 * len).sum();
    let mut done = 0;
    for (file, len) in compressible {
        // The same bytes as in the live release: the same modification time too (so its
        // sidecars count as fresh, and the ETag stays).
        let before = previous.and_then(|p| same_file_before(dir, &file, p));
        if let Some(old) = &before {
            File::options()
                .write(true)
                .open(&file)?
                .set_modified(std::fs::metadata(old)?.modified()?)?;
        }
        for suffix in ["br", "gz"] {
            let mut name = file.clone().into_os_string();
            name.push(".");
            name.push(suffix);
            let sidecar = PathBuf::from(name);
            if sidecar.exists() {
                continue;
            }
            if let Some(old) = before.clone() {
                let mut old_sidecar = old.into_os_string();
                old_sidecar.push(".");
                old_sidecar.push(suffix);
                if std::fs::hard_link(&old_sidecar, &sidecar)
                    .or_else(|_| std::fs::copy(&old_sidecar, &sidecar).map(drop))
                    .is_ok()
                {
                    written.reused += 1;
                    done += len;
                    continue;
                }
            }
            let relative = file.strip_prefix(dir).unwrap_or(&file);
            let mut tell = |read: u64| {
                progress(&Compressing {
                    file: relative,
                    suffix,
                    size: len,
                    done: done + read,
                    total,
                })
            };
            compress(&file, &sidecar, suffix, effort, &mut tell)?;
            done += len;
            // Readable by whom the file is, and no one else: a sidecar is its content.
            std::fs::set_permissions(&sidecar, std::fs::metadata(&file)?.permissions())?;
            if std::fs::metadata(&sidecar)?.len() >= len {
                std::fs::remove_file(&sidecar)?;
            } else {
                written.compressed += 1;
            }
        }
    }
    Ok(written)
}

/// The file at the same place under `previous` as `file` is under `dir`, if its bytes are the
/// same.
fn same_file_before(dir: &Path, file: &Path, previous: &Path) -> Option<PathBuf> {
    let old = previous.join(file.strip_prefix(dir).ok()?);
    if std::fs::metadata(&old).ok()?.len() != std::fs::metadata(file).ok()?.len() {
        return None;
    }
    let (mut a, mut b) = (File::open(file).ok()?, File::open(&old).ok()?);
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = a.read(&mut x).ok()?;
        if n == 0 {
            return Some(old);
        }
        b.read_exact(&mut y[..n]).ok()?;
        if x[..n] != y[..n] {
            return None;
        }
    }
}

fn compress(
    from: &Path,
    to: &Path,
    suffix: &str,
    effort: Effort,
    tell: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let mut input = Counted {
        inner: BufReader::with_capacity(64 * 1024, File::open(from)?),
        read: 0,
        told: 0,
        tell,
    };
    input.tell_now();
    let mut out = BufWriter::with_capacity(64 * 1024, File::create(to)?);
    if suffix == "br" {
        let (quality, window) = effort.brotli();
        let mut c = brotli::CompressorWriter::new(&mut out, 64 * 1024, quality, window);
        io::copy(&mut input, &mut c)?;
        c.flush()?;
    } else {
        let mut c = flate2::write::GzEncoder::new(&mut out, effort.gzip());
        io::copy(&mut input, &mut c)?;
        c.finish()?;
    }
    out.flush()
}

/// A reader that tells how much it has read, about every [`TELL_EVERY`] bytes.
struct Counted<'a, R> {
    inner: R,
    read: u64,
    told: u64,
    tell: &'a mut dyn FnMut(u64),
}

impl<R> Counted<'_, R> {
    fn tell_now(&mut self) {
        self.told = self.read;
        (self.tell)(self.read);
    }
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.told >= TELL_EVERY {
            self.tell_now();
        }
        Ok(n)
    }
}

/// Every regular file under `dir`.
fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    Ok(found)
}
