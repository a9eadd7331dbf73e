//! Precompressed copies written at deploy time, next to each file (`index.wasm.br`,
//! `index.wasm.gz`), at the strongest settings: made once, served to every player, and the
//! server never compresses those files on the fly.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Files worth compressing: text and a Godot export's binaries (as the web server decides).
const COMPRESSIBLE: &[&str] = &[
    "html", "htm", "js", "mjs", "wasm", "pck", "json", "css", "svg", "txt", "xml", "map",
];
/// Smaller files are not worth a sidecar.
const MIN_SIZE: u64 = 1024;
const BROTLI_QUALITY: u32 = 11;
const BROTLI_WINDOW: u32 = 24;

/// Writes `.br` and `.gz` beside every compressible file under `dir` that has none, keeping
/// only those smaller than the file. Returns how many were written.
pub fn write_all(dir: &Path) -> io::Result<usize> {
    let mut written = 0;
    for file in files(dir)? {
        let Some(ext) = file.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        let len = std::fs::metadata(&file)?.len();
        if !COMPRESSIBLE.contains(&ext.to_ascii_lowercase().as_str()) || len < MIN_SIZE {
            continue;
        }
        for suffix in ["br", "gz"] {
            let mut name = file.clone().into_os_string();
            name.push(".");
            name.push(suffix);
            let sidecar = PathBuf::from(name);
            if sidecar.exists() {
                continue;
            }
            compress(&file, &sidecar, suffix)?;
            if std::fs::metadata(&sidecar)?.len() >= len {
                std::fs::remove_file(&sidecar)?;
            } else {
                written += 1;
            }
        }
    }
    Ok(written)
}

fn compress(from: &Path, to: &Path, suffix: &str) -> io::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, File::open(from)?);
    let mut out = BufWriter::with_capacity(64 * 1024, File::create(to)?);
    if suffix == "br" {
        let mut c =
            brotli::CompressorWriter::new(&mut out, 64 * 1024, BROTLI_QUALITY, BROTLI_WINDOW);
        io::copy(&mut input, &mut c)?;
        c.flush()?;
    } else {
        let mut c = flate2::write::GzEncoder::new(&mut out, flate2::Compression::best());
        io::copy(&mut input, &mut c)?;
        c.finish()?;
    }
    out.flush()
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
