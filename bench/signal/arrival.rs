//! When a socket's bytes reached this host: a TCP stream whose reads also take the kernel's
//! receive timestamp (`SO_TIMESTAMPNS`) of the last segment each read consumed. A relay's
//! latency measured to that leaves out the generator's own delay in reading it (its CPU held by
//! the hypervisor, its other sockets read first), which is the generator's, not the server's.
//! On loopback the kernel stamps a segment as the server's write hands it over, so the stamp
//! follows the server's send; a read that takes several frames stamps them all with the last
//! one's arrival, which only ever makes a latency longer.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The arrival of the last bytes read, in µs since the Unix epoch (the kernel stamps with the
/// real-time clock); 0 before the first stamped read.
pub type Arrival = Arc<AtomicU64>;

/// Now on the clock the kernel stamps with, in µs since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_micros() as u64
}

/// A TCP stream whose reads record their arrival.
pub struct Stamped {
    inner: TcpStream,
    arrival: Arrival,
}

impl Stamped {
    pub fn new(inner: TcpStream) -> io::Result<(Stamped, Arrival)> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and an int option of the size given.
        let set = unsafe {
            libc::setsockopt(
                inner.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
        let arrival = Arrival::default();
        Ok((
            Stamped {
                inner,
                arrival: arrival.clone(),
            },
            arrival,
        ))
    }
}

/// One `recvmsg` into `buf`: the bytes read and, if the kernel gave one, their arrival in µs.
fn receive(fd: i32, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one control message holding a timespec, aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    // SAFETY: zeroed msghdr is valid; it points at `iov` and `control`, which outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: `msg` describes writable buffers of the lengths it gives.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

impl AsyncRead for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let fd = this.inner.as_raw_fd();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match this
                .inner
                .try_io(Interest::READABLE, || receive(fd, unfilled))
            {
                Ok((n, stamp)) => {
                    if let Some(stamp) = stamp {
                        this.arrival.store(stamp, Ordering::Relaxed);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
