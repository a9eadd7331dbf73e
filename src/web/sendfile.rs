//! Cached file bytes sent with `sendfile(2)` on plain TCP, as nginx does: the kernel takes the
//! pages from the page cache instead of copying the bytes from our memory (measured: that copy
//! was 43 % of the server's CPU serving a 1 MiB file).
//!
//! hyper writes a response body as the `Bytes` it was given, through
//! `poll_write_vectored`, and has no hook for `sendfile`. So a cached file of at least
//! [`MIN_LEN`] is held as [`file_backed`] bytes: ordinary bytes whose memory is registered here
//! with the open file they were read from. [`SendfileStream`], the plain-TCP connection hyper
//! writes to, looks each large slice up by address; a registered one goes out with `sendfile` at
//! the matching offset, anything else with `writev` as before. The bytes are always real, so
//! nothing depends on the lookup: if the file shrank since it was read, `sendfile` sends less
//! than asked (or nothing) and the rest is written from memory. Like nginx, a file rewritten in
//! place while being sent goes out as it now is; a file replaced by a rename (rsync, `rallypoint
//! deploy`) is not affected, since the open file is the old one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll, ready};

use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::rewind::Rewind;

/// Files this large or larger are sent from the file (each one cached keeps a descriptor open:
/// at most the file cache's bytes / `MIN_LEN`, 256).
pub const MIN_LEN: u64 = 256 * 1024;

/// Registered memory: its end address and the file its bytes were read from.
type Region = (usize, Arc<File>);
/// Registered memory by start address.
static REGIONS: LazyLock<Mutex<BTreeMap<usize, Region>>> = LazyLock::new(Default::default);
static SENT: AtomicU64 = AtomicU64::new(0);

/// Bytes sent with `sendfile` since start (`rallypoint_web_sendfile_bytes_total`).
pub fn bytes_sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// `data`, the whole content of `file`, as bytes that a [`SendfileStream`] sends from the file.
pub fn file_backed(data: Vec<u8>, file: File) -> Bytes {
    let data = data.into_boxed_slice();
    if data.is_empty() {
        return Bytes::new();
    }
    let start = data.as_ptr() as usize;
    REGIONS
        .lock()
        .unwrap()
        .insert(start, (start + data.len(), Arc::new(file)));
    Bytes::from_owner(Registered(data))
}

/// Memory registered in [`REGIONS`] while it lives.
struct Registered(Box<[u8]>);

impl AsRef<[u8]> for Registered {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        REGIONS.lock().unwrap().remove(&(self.0.as_ptr() as usize));
    }
}

/// The file and offset holding `slice`, if its memory is registered.
fn lookup(slice: &[u8]) -> Option<(Arc<File>, u64)> {
    let at = slice.as_ptr() as usize;
    let regions = REGIONS.lock().unwrap();
    let (start, (end, file)) = regions.range(..=at).next_back()?;
    (at + slice.len() <= *end).then(|| (file.clone(), (at - start) as u64))
}

/// A plain TCP connection that sends registered slices with `sendfile`.
pub struct SendfileStream {
    inner: Rewind<TcpStream>,
}

impl SendfileStream {
    pub fn new(inner: Rewind<TcpStream>) -> Self {
        Self { inner }
    }

    /// Writes `bufs` with `MSG_MORE`: more follows at once, so no partial segment is sent.
    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let tcp = self.inner.get_ref();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            match tcp.try_io(Interest::WRITABLE, || {
                socket2::SockRef::from(tcp).send_vectored_with_flags(bufs, libc::MSG_MORE)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    /// Sends up to `len` bytes of `file` from `offset`; 0 when the file has nothing there.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let tcp = self.inner.get_ref();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            let sent = tcp.try_io(Interest::WRITABLE, || {
                let mut off = offset as libc::off_t;
                // SAFETY: both descriptors are open for the call; `off` is a valid pointer.
                let n = unsafe { libc::sendfile(tcp.as_raw_fd(), file.as_raw_fd(), &mut off, len) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.as_mut().poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Only large slices are looked up: small responses never take the lock.
        let from_file = bufs.iter().enumerate().find_map(|(i, b)| {
            (b.len() as u64 >= MIN_LEN)
                .then(|| lookup(b))
                .flatten()
                .map(|found| (i, found))
        });
        match from_file {
            // What comes before it (the response head) first, held back by the kernel to go
            // out in one segment with the file's first bytes.
            Some((i, _)) if i > 0 => self.poll_send_more(cx, &bufs[..i]),
            Some((_, (file, offset))) => {
                let sent = ready!(self.poll_sendfile(cx, &file, offset, bufs[0].len()))?;
                if sent > 0 {
                    SENT.fetch_add(sent as u64, Ordering::Relaxed);
                    return Poll::Ready(Ok(sent));
                }
                // The file is shorter than when it was read: the bytes we hold.
                Pin::new(&mut self.inner).poll_write(cx, &bufs[0])
            }
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_of_file_backed_bytes_find_their_offset_until_dropped() {
        let path = std::env::temp_dir().join(format!("rallypoint-sf-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        let bytes = file_backed(vec![7u8; 1000], File::open(&path).unwrap());
        let part = bytes.slice(100..600);
        assert_eq!(lookup(&part).map(|(_, at)| at), Some(100));
        assert_eq!(lookup(&bytes).map(|(_, at)| at), Some(0));
        let other = vec![7u8; 1000];
        assert!(lookup(&other).is_none(), "memory not registered");
        let start = bytes.as_ptr() as usize;
        drop((bytes, part));
        std::fs::remove_file(&path).unwrap();
        assert!(
            !REGIONS.lock().unwrap().contains_key(&start),
            "unregistered when dropped"
        );
    }
}
