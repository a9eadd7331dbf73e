//! Which service a connection to a web port is for (`web.accept_turn`). Chromium offers no ALPN
//! for `turns:`, so ALPN alone cannot tell TURN from HTTPS; the first bytes can. A TURN client's
//! first message is always a STUN request (Allocate, or a Binding before it; ChannelData needs
//! a channel bound first): two zero bits, then after the type and length the magic cookie
//! 0x2112A442. An HTTP request starts with a method in capital letters (0x41..0x5A) and an
//! HTTP/2 preface with "PRI": neither starts with two zero bits, so HTTP is decided on its first
//! byte and waits for nothing.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::turn::MAGIC_COOKIE;

/// Who serves a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Http,
    Turn,
}

/// What the first bytes of a connection say, or `None` while they do not say yet.
pub fn classify(first: &[u8]) -> Option<Service> {
    let &byte = first.first()?;
    if byte & 0xC0 != 0 {
        return Some(Service::Http);
    }
    if first.len() < 8 {
        return None;
    }
    if first[4..8] == MAGIC_COOKIE {
        Some(Service::Turn)
    } else {
        // Not HTTP either; the HTTP server answers it with 400.
        Some(Service::Http)
    }
}

/// Reads from `stream` until [`classify`] decides, within `timeout` (the web's header timeout:
/// a client that sends nothing is closed as if it had sent no request). Returns the service and
/// the bytes read, which belong to it (see [`crate::rewind::Rewind`]).
pub async fn sniff<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> io::Result<(Service, BytesMut)> {
    let mut first = BytesMut::with_capacity(1024);
    let read = async {
        loop {
            if let Some(service) = classify(&first) {
                return Ok(service);
            }
            if stream.read_buf(&mut first).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(service)) => Ok((service, first)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_decided_on_its_first_byte() {
        for request in [&b"G"[..], b"POST / HTTP/1.1", b"PRI * HTTP/2.0"] {
            assert_eq!(classify(request), Some(Service::Http), "{request:?}");
        }
    }

    #[test]
    fn stun_needs_its_cookie() {
        // A Binding request's header: type 0x0001, length 0, the magic cookie.
        let binding = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        for short in 0..8 {
            assert_eq!(classify(&binding[..short]), None, "{short} bytes");
        }
        assert_eq!(classify(&binding), Some(Service::Turn));
        let allocate = [0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42, 0xff];
        assert_eq!(classify(&allocate), Some(Service::Turn));
        // Anything else is HTTP's to refuse, such as a TLS handshake inside TLS.
        let client_hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
        assert_eq!(classify(&client_hello[..7]), None);
        assert_eq!(classify(&client_hello), Some(Service::Http));
    }

    #[tokio::test]
    async fn sniff_keeps_what_it_read_and_gives_up_on_silence() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let (service, first) = sniff(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(service, Service::Http);
        assert_eq!(&first[..], b"GET / HTTP/1.1\r\n");

        let (_quiet, mut server) = tokio::io::duplex(64);
        tokio::time::pause();
        let silent = sniff(&mut server, Duration::from_secs(10)).await;
        assert_eq!(silent.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
