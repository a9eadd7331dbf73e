//! Splits a TURN byte stream (TCP or TLS) into messages. Over a stream, STUN messages and
//! ChannelData frames follow each other with no other framing (RFC 8656 §12.5): the first two bits
//! tell which one comes, and its header gives its length.

/// The whole length of the frame starting at `buf[0]`, once enough of its header has arrived.
///
/// `Ok(None)`: need more bytes. `Err(())`: the stream is not TURN, close it.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    match buf[0] {
        // STUN: 20-byte header, attributes padded to 4 already counted in the length.
        0x00..=0x3f if length % 4 == 0 => Ok(Some(20 + length)),
        // ChannelData (see `CHANNEL_NUMBERS`): 4-byte header; over streams the data is padded
        // to 4 (§12.5).
        0x40..=0x7f => Ok(Some(4 + length.next_multiple_of(4))),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_channel_data_lengths() {
        assert_eq!(frame_len(&[0x00, 0x01]), Ok(None));
        assert_eq!(frame_len(&[0x00, 0x01, 0x00, 0x08]), Ok(Some(28)));
        assert_eq!(frame_len(&[0x40, 0x00, 0x00, 0x05]), Ok(Some(12)));
        assert_eq!(frame_len(&[0x4f, 0xff, 0x00, 0x00]), Ok(Some(4)));
    }

    #[test]
    fn anything_else_is_refused() {
        // Text passes as a ChannelData header ("GET " is channel 0x4745) only to be dropped for
        // an unbound channel; bytes from 0x80 up are neither STUN nor ChannelData.
        assert_eq!(frame_len(b"\x80\x00\x00\x04"), Err(()));
        assert_eq!(frame_len(&[0x00, 0x01, 0x00, 0x07]), Err(()));
        assert_eq!(frame_len(&[0xc0, 0, 0, 0]), Err(()));
        assert_eq!(
            frame_len(&[0x7f, 0xff, 0, 4]),
            Ok(Some(8)),
            "RFC 5766's range"
        );
    }
}
