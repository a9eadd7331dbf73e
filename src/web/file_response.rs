//! Serving one file of the export: picks the representation (precompressed sidecar, cached
//! on-the-fly compression, or the file itself), applies validators, conditional requests and
//! ranges, and adds the headers a Godot export needs.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::compress::{self, Compressed, CompressionCache};
use super::file_cache::{OnDisk, Resolved};
use super::isolation::Isolation;
use super::mime;
use super::negotiate::{self, Coding, Range};
use super::response::{Body, full, plain};
use crate::config::CrossOriginIsolation;

/// Bytes read from disk at a time for a streamed body.
const CHUNK: usize = 256 * 1024;

pub async fn serve(
    method: &Method,
    headers: &HeaderMap,
    resolved: &Resolved,
    mode: CrossOriginIsolation,
    isolation: &Isolation,
    cache: &CompressionCache,
) -> Response<Body> {
    let file = &resolved.file.path;
    let modified = resolved.modified;
    let content_type = mime::content_type(file);
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };

    // Representations on offer, best first: sidecars, then compression on the fly.
    let compressible = compress::compressible(file, content_type);
    let mut available: Vec<Coding> = [Coding::Brotli, Coding::Gzip]
        .into_iter()
        .filter(|c| compressible || resolved.sidecars.iter().any(|(s, _)| s == c))
        .collect();
    available.push(Coding::Identity);
    let accept_encoding = header(header::ACCEPT_ENCODING);
    let Some(mut coding) = negotiate::choose_coding(accept_encoding, &available) else {
        return plain(StatusCode::NOT_ACCEPTABLE, "no acceptable content coding\n");
    };
    let source = match resolved.sidecars.iter().find(|(c, _)| *c == coding) {
        _ if coding == Coding::Identity => Source::Disk(resolved.file.clone()),
        Some((_, sidecar)) => Source::Disk(sidecar.clone()),
        None => {
            let len = resolved.file.len;
            // A HEAD never starts a compression: it gets what is cached, else the file as is.
            let compressed = if method == Method::HEAD {
                Ok(cache.cached(file, coding, modified, len))
            } else {
                cache.get(file, coding, modified, len).await
            };
            let identity_ok = negotiate::choose_coding(accept_encoding, &[Coding::Identity]);
            match compressed {
                // Already compressed data (a .pck of compressed textures, say) comes out no
                // smaller: the file as it is, with no coding to undo.
                Ok(Some(copy)) if copy.len() >= len && identity_ok.is_some() => {
                    coding = Coding::Identity;
                    Source::Disk(resolved.file.clone())
                }
                Ok(Some(copy)) => Source::Compressed(copy),
                // Being compressed for someone else: the file as it is, if the client takes it.
                Ok(None) if identity_ok.is_some() => {
                    coding = Coding::Identity;
                    Source::Disk(resolved.file.clone())
                }
                Ok(None) => {
                    let mut r = plain(StatusCode::SERVICE_UNAVAILABLE, "compressing, try again\n");
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    return r;
                }
                Err(e) => {
                    log::warn!("web: cannot compress {}: {e}", file.display());
                    return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n");
                }
            }
        }
    };
    let len = source.len();
    let etag = negotiate::etag(resolved.file.len, modified, coding);

    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, httpdate::fmt_http_date(modified))
        // Godot export file names carry no content hash: always revalidate.
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::VARY, "Accept-Encoding")
        .header(header::ACCEPT_RANGES, "bytes");
    if coding != Coding::Identity {
        response = response.header(header::CONTENT_ENCODING, coding.token());
    }
    if isolation.applies(mode, file) {
        response = response
            .header("cross-origin-opener-policy", "same-origin")
            .header("cross-origin-embedder-policy", "require-corp")
            .header("cross-origin-resource-policy", "same-origin");
    }
    if negotiate::not_modified(
        header(header::IF_NONE_MATCH),
        header(header::IF_MODIFIED_SINCE),
        &etag,
        modified,
    ) {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(full(Bytes::new()))
            .expect("valid response");
    }
    let (status, start, count) = match negotiate::range(
        header(header::RANGE),
        header(header::IF_RANGE),
        len,
        &etag,
        modified,
    ) {
        Range::Full => (StatusCode::OK, 0, len),
        Range::Part(first, last) => {
            response =
                response.header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"));
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        Range::Unsatisfiable => {
            return response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(full(Bytes::new()))
                .expect("valid response");
        }
    };
    response = response
        .status(status)
        .header(header::CONTENT_LENGTH, count);
    if method == Method::HEAD {
        return response.body(full(Bytes::new())).expect("valid response");
    }
    let body = match source {
        Source::Disk(OnDisk {
            bytes: Some(bytes), ..
        })
        | Source::Compressed(Compressed::Memory(bytes)) => {
            full(bytes.slice(start as usize..(start + count) as usize))
        }
        Source::Disk(OnDisk { path, .. }) => match stream_file(&path, start, count).await {
            Ok(body) => body,
            Err(e) => {
                log::warn!("web: cannot read {}: {e}", path.display());
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n");
            }
        },
        Source::Compressed(Compressed::File { file, .. }) => stream_at(file, start, count),
    };
    response.body(body).expect("valid response")
}

/// Where the bytes of the chosen representation come from.
enum Source {
    /// The file itself or a sidecar.
    Disk(OnDisk),
    /// A copy compressed on the fly.
    Compressed(Compressed),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Disk(on_disk) => on_disk.len,
            Source::Compressed(copy) => copy.len(),
        }
    }
}

/// `count` bytes of a large file from `start`, read as the client takes them.
async fn stream_file(path: &Path, start: u64, count: u64) -> std::io::Result<Body> {
    let file = tokio::fs::File::open(path).await?.into_std().await;
    Ok(stream_at(Arc::new(file), start, count))
}

/// `count` bytes of `file` from `start`, a chunk at a time as the client takes them, read at
/// offsets (so readers can share a file) into buffers that hyper then owns.
fn stream_at(file: Arc<File>, start: u64, count: u64) -> Body {
    let end = start + count;
    let chunks = futures_util::stream::try_unfold(start, move |at| {
        let file = file.clone();
        async move {
            if at >= end {
                return Ok(None);
            }
            let n = CHUNK.min((end - at) as usize);
            // Allocated here, not on a blocking-pool thread, so that it comes from and goes
            // back to the runtime threads' arenas (measured: 48 streams held 12 MiB more).
            let mut buf = vec![0; n];
            let chunk =
                tokio::task::spawn_blocking(move || file.read_exact_at(&mut buf, at).map(|()| buf))
                    .await
                    .map_err(std::io::Error::other)??;
            Ok::<_, std::io::Error>(Some((Frame::data(Bytes::from(chunk)), at + n as u64)))
        }
    });
    StreamBody::new(chunks).boxed()
}
