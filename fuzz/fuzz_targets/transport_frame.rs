//! The transport frame decoder on arbitrary bytes, whole and cut into arbitrary pieces:
//! what a peer, or anyone who can reach the cluster port, controls.
//!
//! Input: byte 0 picks the payload limit (pre-auth, post-auth, or a tiny one), byte 1
//! how the rest is cut into pieces, then the stream. Checks: `decode` and `decode_from`
//! agree; a decoded frame is within the limit and re-encodes to the same bytes; feeding
//! the stream in pieces yields the same frames and the same error as feeding it whole.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wolfscale::transport::frame::{
    self, Frame, FrameError, HEADER_LEN, MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD,
};

/// Every frame at the start of `buf`, and the error that stopped decoding, if any.
fn decode_all(buf: &[u8], limit: usize) -> (Vec<Frame>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        match frame::decode(&buf[at..], limit) {
            Ok(Some((f, used))) => {
                assert!(used >= HEADER_LEN && used <= buf.len() - at);
                assert_eq!(used, HEADER_LEN + f.payload.len());
                assert!(f.payload.len() <= limit);
                let again = frame::encode(f.kind, f.id, &f.payload, limit).expect("re-encodes");
                assert_eq!(&again[..], &buf[at..at + used]);
                frames.push(f);
                at += used;
            }
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [limit_sel, cut, stream @ ..] = data else {
        return;
    };
    let limit = match limit_sel % 3 {
        0 => MAX_PREAUTH_PAYLOAD,
        1 => MAX_PAYLOAD,
        _ => usize::from(*limit_sel),
    };
    let (whole, whole_err) = decode_all(stream, limit);

    // The same bytes arriving in pieces of 1..=cut+1 bytes, decoded in place.
    let step = usize::from(*cut) + 1;
    let mut buf = BytesMut::new();
    let mut pieces = Vec::new();
    let mut err = None;
    'feed: for chunk in stream.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match frame::decode_from(&mut buf, limit) {
                Ok(Some(f)) => pieces.push(f),
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(pieces, whole, "pieces and whole decode the same frames");
    assert_eq!(err, whole_err, "pieces and whole stop for the same reason");
});
