//! Datagrams received in batches: one recvmmsg(2) takes what is queued, up to a batch, into
//! slots that keep headroom in front for framing in place. A batch that comes back short says
//! the queue was empty at that moment, so the socket's readiness is cleared right there instead
//! of by a further call that would only meet EAGAIN: one system call per wake-up, not two.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The most datagrams one call takes.
pub const MAX_BATCH: usize = 32;

pub struct RecvBatch {
    bytes: Vec<u8>,
    slot: usize,
    /// Where in a slot a datagram starts.
    headroom: usize,
    /// How many bytes of a slot a datagram may fill.
    window: usize,
    received: Vec<(usize, SocketAddr)>,
}

impl RecvBatch {
    /// `count` slots of `slot` bytes, each receiving up to `window` bytes after `headroom`.
    pub fn new(count: usize, slot: usize, headroom: usize, window: usize) -> RecvBatch {
        assert!((1..=MAX_BATCH).contains(&count) && headroom + window <= slot);
        RecvBatch {
            bytes: vec![0; count * slot],
            slot,
            headroom,
            window,
            received: Vec::with_capacity(count),
        }
    }

    fn count(&self) -> usize {
        self.bytes.len() / self.slot
    }

    /// Receives what is queued on `socket` without waiting: the number of datagrams, or
    /// WouldBlock when there was none (readiness is then cleared), or the socket's error (an
    /// ICMP error from an earlier send surfaces here).
    pub fn try_recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut got = 0;
        let result = socket.try_io(Interest::READABLE, || {
            got = self.recvmmsg(socket)?;
            if got < self.count() {
                // Short: clears readiness as of before the call, so a datagram that arrived
                // since still wakes the next wait.
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
            Err(e) => Err(e),
            Ok(()) => Ok(got),
        }
    }

    /// Waits until `socket` is readable and receives what is queued.
    pub async fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        loop {
            socket.readable().await?;
            match self.try_recv(socket) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    /// Datagram `i` of the last batch: its whole slot (the datagram at `headroom`), its length
    /// and its sender.
    pub fn slot_mut(&mut self, i: usize) -> (&mut [u8], usize, SocketAddr) {
        let (len, from) = self.received[i];
        let slot = &mut self.bytes[i * self.slot..(i + 1) * self.slot];
        (slot, len, from)
    }

    fn recvmmsg(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let count = self.count();
        // The kernel's bookkeeping lives on the stack for the call: nothing allocated.
        // SAFETY: these are plain C structs for which all-zero is a valid value.
        let mut names: [libc::sockaddr_storage; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut iovecs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let slots = self.bytes.chunks_exact_mut(self.slot);
        for (((h, iov), name), slot) in headers
            .iter_mut()
            .zip(&mut iovecs)
            .zip(&mut names)
            .zip(slots)
        {
            iov.iov_base = slot[self.headroom..].as_mut_ptr().cast();
            iov.iov_len = self.window;
            h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the first `count` headers point at live iovecs into `self.bytes` and live
        // name buffers, with their true sizes; the kernel writes no further.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                count as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received.clear();
        for (h, name) in headers.iter().zip(&names).take(n as usize) {
            if let Some(from) = socket_addr(name) {
                self.received.push((h.msg_len as usize, from));
            }
        }
        Ok(self.received.len())
    }
}

/// The sender's address as the kernel wrote it.
fn socket_addr(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let family = i32::from(name.ss_family);
    let name: *const libc::sockaddr_storage = name;
    match family {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in, which it is large enough for.
            let a = unsafe { &*name.cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*name.cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_and_a_short_one_waits_for_the_next_datagram() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = socket.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            sender.send_to(&[i; 10], to).unwrap();
        }
        let mut batch = RecvBatch::new(4, 64, 8, 32);
        // Readiness arrives with the first datagram; all five are queued by now (loopback).
        assert_eq!(batch.recv(&socket).await.unwrap(), 4, "a full batch");
        for i in 0..4 {
            let (slot, len, from) = batch.slot_mut(i);
            assert_eq!(
                (&slot[8..8 + len], from),
                (&[i as u8; 10][..], sender.local_addr().unwrap())
            );
        }
        assert_eq!(batch.recv(&socket).await.unwrap(), 1, "the rest: short");
        // Short cleared readiness; a new datagram still wakes the next wait.
        assert_eq!(
            batch.try_recv(&socket).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        sender.send_to(b"late", to).unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), batch.recv(&socket))
            .await
            .expect("woken by the new datagram")
            .unwrap();
        let (slot, len, _) = batch.slot_mut(0);
        assert_eq!((n, &slot[8..8 + len]), (1, &b"late"[..]));
    }

    #[tokio::test]
    async fn a_datagram_longer_than_the_window_is_cut_to_it() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .send_to(&[1; 100], socket.local_addr().unwrap())
            .unwrap();
        let mut batch = RecvBatch::new(2, 64, 8, 33);
        assert_eq!(batch.recv(&socket).await.unwrap(), 1);
        assert_eq!(
            batch.slot_mut(0).1,
            33,
            "callers drop what fills the window"
        );
    }
}
