//! The wire frame of the cluster transport: its byte layout, a pure decoder that never
//! panics on any input, the encoder, and the buffered reader and writer loops that move
//! frames over a stream. It knows nothing of authentication or of what payloads mean.
//!
//! # Byte layout (all integers big-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | `len`: bytes after this field, i.e. `10 + payload length` |
//! | 4 | 1 | version, [`VERSION`] |
//! | 5 | 1 | [`Kind`] |
//! | 6 | 8 | request id: matches a response to its request on a shared connection |
//! | 14 | `len - 10` | payload (postcard-encoded message, or raw bytes for handshake proofs) |
//!
//! The decoder checks `len` against the caller's limit as soon as the first four bytes
//! arrive, so an oversized frame is refused before any buffer grows to hold it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frame format version; a peer speaking another one is refused at the first frame.
pub const VERSION: u8 = 1;
/// Bytes before the payload: length, version, kind and request id.
pub const HEADER_LEN: usize = 14;
/// Bytes counted by `len` besides the payload: version, kind and request id.
const FIXED_AFTER_LEN: usize = HEADER_LEN - 4;
/// Largest payload accepted from an authenticated peer; snapshot chunks must fit.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// Largest payload accepted before the peer has authenticated: handshake messages are tiny,
/// and an anonymous peer must not make us buffer more than this.
pub const MAX_PREAUTH_PAYLOAD: usize = 4 * 1024;

/// What a frame carries; the first five only ever appear during the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client → server: protocol version, cluster name, node name, client nonce.
    Hello = 1,
    /// Server → client: server node name and nonce.
    Challenge = 2,
    /// Client → server: the client's proof of the secret.
    Proof = 3,
    /// Server → client: the server's proof; the connection is authenticated.
    Welcome = 4,
    /// Either way: the handshake is refused, with a reason; the connection closes.
    Reject = 5,
    /// Client → server: an RPC request.
    Request = 16,
    /// Server → client: the handler's answer to the request with the same id.
    Response = 17,
    /// Server → client: the request with the same id failed; payload is a UTF-8 reason.
    Failure = 18,
    /// Client → server: liveness probe on an idle connection.
    Ping = 32,
    /// Server → client: answer to a ping.
    Pong = 33,
}

impl Kind {
    /// The kind for a wire byte, if it is one we know.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Challenge,
            3 => Kind::Proof,
            4 => Kind::Welcome,
            5 => Kind::Reject,
            16 => Kind::Request,
            17 => Kind::Response,
            18 => Kind::Failure,
            32 => Kind::Ping,
            33 => Kind::Pong,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: Kind,
    /// Request id (0 during the handshake and for pings).
    pub id: u64,
    /// The payload bytes.
    pub payload: Bytes,
}

/// Why bytes are not a valid frame. Every variant ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// `len` is smaller than the fixed part of the header.
    #[error("frame length {len} is shorter than the {FIXED_AFTER_LEN}-byte header")]
    TooShort {
        /// The length field as received.
        len: u32,
    },
    /// The payload would exceed the limit in force (pre- or post-authentication).
    #[error("frame payload of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Payload length announced (or produced, when encoding).
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The peer speaks another frame version.
    #[error("unsupported frame version {0} (this build speaks {VERSION})")]
    BadVersion(u8),
    /// A kind byte this build does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes received.
        have: usize,
        /// Bytes the frame needed.
        need: usize,
    },
}

/// Validates the header at the start of `buf` and returns the total frame size, or `None`
/// when more bytes are needed. Each field is checked as soon as its bytes are present.
fn frame_size(buf: &[u8], limit: usize) -> Result<Option<usize>, FrameError> {
    let Some(len_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let payload_len = (len as usize)
        .checked_sub(FIXED_AFTER_LEN)
        .ok_or(FrameError::TooShort { len })?;
    if payload_len > limit {
        return Err(FrameError::TooLarge {
            len: payload_len,
            limit,
        });
    }
    if let Some(&v) = buf.get(4) {
        if v != VERSION {
            return Err(FrameError::BadVersion(v));
        }
    }
    if let Some(&k) = buf.get(5) {
        Kind::from_u8(k).ok_or(FrameError::UnknownKind(k))?;
    }
    let total = HEADER_LEN + payload_len;
    Ok((buf.len() >= total).then_some(total))
}

fn header_fields(buf: &[u8]) -> (Kind, u64) {
    let kind = Kind::from_u8(buf[5]).expect("frame_size validated the kind byte");
    let mut id = [0u8; 8];
    id.copy_from_slice(&buf[6..HEADER_LEN]);
    (kind, u64::from_be_bytes(id))
}

/// Decodes one frame from the start of `buf`: `Ok(None)` means more bytes are needed,
/// `Ok(Some((frame, used)))` gives the frame and how many bytes it took. Pure and
/// panic-free on any input; the payload is copied.
///
/// # Errors
/// A [`FrameError`] when the bytes can never become a valid frame under `limit`.
pub fn decode(buf: &[u8], limit: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(total) = frame_size(buf, limit)? else {
        return Ok(None);
    };
    let (kind, id) = header_fields(buf);
    let payload = Bytes::copy_from_slice(&buf[HEADER_LEN..total]);
    Ok(Some((Frame { kind, id, payload }, total)))
}

/// Like [`decode`], but takes the frame out of `buf` without copying the payload, and
/// reserves room for the rest of a frame whose header has been validated.
///
/// # Errors
/// As [`decode`].
pub fn decode_from(buf: &mut BytesMut, limit: usize) -> Result<Option<Frame>, FrameError> {
    match frame_size(buf, limit)? {
        Some(total) => {
            let (kind, id) = header_fields(buf);
            let mut bytes = buf.split_to(total);
            bytes.advance(HEADER_LEN);
            Ok(Some(Frame {
                kind,
                id,
                payload: bytes.freeze(),
            }))
        }
        None => {
            if buf.len() >= 4 {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                buf.reserve((4 + len).saturating_sub(buf.len()));
            }
            Ok(None)
        }
    }
}

fn write_header(out: &mut [u8], kind: Kind, id: u64, payload_len: usize) {
    let len = u32::try_from(payload_len + FIXED_AFTER_LEN)
        .expect("callers check payload_len against a limit far below u32::MAX");
    out[..4].copy_from_slice(&len.to_be_bytes());
    out[4] = VERSION;
    out[5] = kind as u8;
    out[6..HEADER_LEN].copy_from_slice(&id.to_be_bytes());
}

/// Encodes a frame around raw payload bytes.
///
/// # Errors
/// [`FrameError::TooLarge`] when the payload exceeds `limit`.
pub fn encode(kind: Kind, id: u64, payload: &[u8], limit: usize) -> Result<Bytes, FrameError> {
    check_len(payload.len(), limit)?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    out.put_bytes(0, HEADER_LEN);
    write_header(&mut out, kind, id, payload.len());
    out.put_slice(payload);
    Ok(out.freeze())
}

fn check_len(len: usize, limit: usize) -> Result<(), FrameError> {
    // u32::MAX bounds the wire field whatever limit a caller passes.
    let limit = limit.min(u32::MAX as usize - FIXED_AFTER_LEN);
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    Ok(())
}

/// Why a message could not be turned into a frame.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// serde refused the value.
    #[error("cannot encode message: {0}")]
    Serialize(#[from] postcard::Error),
    /// The encoded message exceeds the frame limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Encodes a serde value (postcard) straight into a frame, without an intermediate copy.
/// The result is a `Vec` so that [`set_id`] can still stamp the request id.
///
/// # Errors
/// [`EncodeError`] when serde fails or the result exceeds `limit`.
pub fn encode_value<T: Serialize + ?Sized>(
    kind: Kind,
    id: u64,
    value: &T,
    limit: usize,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = postcard::to_extend(value, vec![0u8; HEADER_LEN])?;
    let payload_len = out.len() - HEADER_LEN;
    check_len(payload_len, limit)?;
    write_header(&mut out, kind, id, payload_len);
    Ok(out)
}

/// Overwrites the request id of an encoded frame.
///
/// # Panics
/// If `frame` is shorter than a header, which [`encode_value`] never produces.
pub fn set_id(frame: &mut [u8], id: u64) {
    frame[6..HEADER_LEN].copy_from_slice(&id.to_be_bytes());
}

/// Why reading the next frame failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads frames from a stream through one growing buffer, under a size limit that is
/// raised once the peer has authenticated.
pub struct FrameReader<R> {
    rd: R,
    buf: BytesMut,
    limit: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader that accepts payloads up to `limit` bytes.
    pub fn new(rd: R, limit: usize) -> Self {
        FrameReader {
            rd,
            buf: BytesMut::with_capacity(8 * 1024),
            limit,
        }
    }

    /// Changes the payload limit for the frames not yet decoded.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The next frame, or `None` at a clean end of stream. Cancel-safe: bytes already read
    /// stay in the buffer.
    ///
    /// # Errors
    /// I/O failures, invalid frames, and an end of stream in the middle of a frame.
    pub async fn next(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = decode_from(&mut self.buf, self.limit)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(8 * 1024);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                // decode_from has validated any header present, so `len` is in bounds.
                let need = match self.buf.get(..4) {
                    Some(b) => 4 + u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
                    None => HEADER_LEN,
                };
                return Err(FrameError::Truncated {
                    have: self.buf.len(),
                    need,
                }
                .into());
            }
        }
    }
}

/// Writes queued frames until the queue closes or `cancel` fires, flushing whenever the
/// queue is momentarily empty so small frames written together share one syscall.
///
/// # Errors
/// The first write failure.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::Receiver<Bytes>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => break,
            f = rx.recv() => match f { Some(f) => f, None => break },
        };
        wr.write_all(&frame).await?;
        while let Ok(frame) = rx.try_recv() {
            wr.write_all(&frame).await?;
        }
        wr.flush().await?;
    }
    let _ = wr.shutdown().await;
    Ok(())
}

/// Writes one frame and flushes; used during the handshake, before the writer task exists.
///
/// # Errors
/// The write failure.
pub async fn write_frame<W: AsyncWrite + Unpin>(wr: &mut W, frame: &[u8]) -> std::io::Result<()> {
    wr.write_all(frame).await?;
    wr.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(len: u32, version: u8, kind: u8, id: u64) -> Vec<u8> {
        let mut v = len.to_be_bytes().to_vec();
        v.push(version);
        v.push(kind);
        v.extend_from_slice(&id.to_be_bytes());
        v
    }

    const KINDS: [Kind; 10] = [
        Kind::Hello,
        Kind::Challenge,
        Kind::Proof,
        Kind::Welcome,
        Kind::Reject,
        Kind::Request,
        Kind::Response,
        Kind::Failure,
        Kind::Ping,
        Kind::Pong,
    ];

    proptest! {
        #[test]
        fn round_trip(k in 0usize..KINDS.len(), id: u64,
                      payload in proptest::collection::vec(any::<u8>(), 0..2048),
                      trailing in proptest::collection::vec(any::<u8>(), 0..32)) {
            let kind = KINDS[k];
            let bytes = encode(kind, id, &payload, MAX_PAYLOAD).unwrap();
            let mut buf = bytes.to_vec();
            buf.extend_from_slice(&trailing);
            let (frame, used) = decode(&buf, MAX_PAYLOAD).unwrap().unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(frame.kind, kind);
            prop_assert_eq!(frame.id, id);
            prop_assert_eq!(&frame.payload[..], &payload[..]);
            // Every strict prefix asks for more bytes, never errors.
            for cut in 0..bytes.len() {
                prop_assert_eq!(decode(&bytes[..cut], MAX_PAYLOAD).unwrap(), None);
            }
            let mut bm = BytesMut::from(&buf[..]);
            let f2 = decode_from(&mut bm, MAX_PAYLOAD).unwrap().unwrap();
            prop_assert_eq!(f2, frame);
            prop_assert_eq!(&bm[..], &trailing[..]);
        }

        #[test]
        fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..256),
                                    limit in 0usize..512) {
            let _ = decode(&buf, limit);
            let mut bm = BytesMut::from(&buf[..]);
            while let Ok(Some(_)) = decode_from(&mut bm, limit) {}
        }
    }

    #[test]
    fn short_header_needs_more_bytes() {
        let full = header(10, VERSION, Kind::Ping as u8, 7);
        for cut in 0..HEADER_LEN {
            assert_eq!(decode(&full[..cut], 16), Ok(None), "cut at {cut}");
        }
        let (f, used) = decode(&full, 16).unwrap().unwrap();
        assert_eq!((f.kind, f.id, used), (Kind::Ping, 7, HEADER_LEN));
    }

    #[test]
    fn length_below_header_is_rejected() {
        let h = header(9, VERSION, Kind::Ping as u8, 0);
        assert_eq!(decode(&h, 16), Err(FrameError::TooShort { len: 9 }));
        assert_eq!(decode(&h[..4], 16), Err(FrameError::TooShort { len: 9 }));
    }

    #[test]
    fn bad_version_is_rejected() {
        let h = header(10, VERSION + 1, Kind::Ping as u8, 0);
        assert_eq!(
            decode(&h[..5], 16),
            Err(FrameError::BadVersion(VERSION + 1))
        );
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let h = header(10, VERSION, 99, 0);
        assert_eq!(decode(&h[..6], 16), Err(FrameError::UnknownKind(99)));
        assert_eq!(
            decode(&header(10, VERSION, 0, 0), 16),
            Err(FrameError::UnknownKind(0))
        );
    }

    #[test]
    fn oversize_length_is_rejected_from_four_bytes() {
        // A claim of ~4 GiB is refused from the length field alone, before any buffer grows.
        let h = header(u32::MAX, VERSION, Kind::Request as u8, 1);
        let err = FrameError::TooLarge {
            len: u32::MAX as usize - 10,
            limit: MAX_PAYLOAD,
        };
        assert_eq!(decode(&h[..4], MAX_PAYLOAD), Err(err.clone()));
        let mut bm = BytesMut::from(&h[..]);
        let cap = bm.capacity();
        assert_eq!(decode_from(&mut bm, MAX_PAYLOAD), Err(err));
        assert_eq!(bm.capacity(), cap, "no reservation for a refused frame");
        // Just over the pre-authentication limit.
        let h = header((MAX_PREAUTH_PAYLOAD + 11) as u32, VERSION, 1, 0);
        assert!(matches!(
            decode(&h, MAX_PREAUTH_PAYLOAD),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(decode(&h, MAX_PAYLOAD), Ok(None));
    }

    #[test]
    fn encoder_refuses_oversize() {
        let payload = vec![0u8; 100];
        assert_eq!(
            encode(Kind::Request, 1, &payload, 99),
            Err(FrameError::TooLarge {
                len: 100,
                limit: 99
            })
        );
        let err = encode_value(Kind::Request, 1, &payload, 50).unwrap_err();
        assert!(
            matches!(err, EncodeError::Frame(FrameError::TooLarge { .. })),
            "{err}"
        );
    }

    #[test]
    fn encode_value_round_trip() {
        let v = (42u64, "hello".to_string(), vec![1u8, 2, 3]);
        let mut bytes = encode_value(Kind::Response, 9, &v, MAX_PAYLOAD).unwrap();
        let (f, _) = decode(&bytes, MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(f.id, 9);
        set_id(&mut bytes, 11);
        let (f, _) = decode(&bytes, MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!(f.id, 11);
        let back: (u64, String, Vec<u8>) = postcard::from_bytes(&f.payload).unwrap();
        assert_eq!(back, v);
    }

    #[tokio::test]
    async fn reader_reports_truncated_stream() {
        let bytes = encode(Kind::Request, 3, b"abcdef", MAX_PAYLOAD).unwrap();
        let cut = &bytes[..bytes.len() - 2];
        let mut r = FrameReader::new(cut, MAX_PAYLOAD);
        match r.next().await {
            Err(ReadError::Frame(FrameError::Truncated { have, need })) => {
                assert_eq!((have, need), (bytes.len() - 2, bytes.len()));
            }
            other => panic!("expected truncation, got {other:?}"),
        }
        let mut r = FrameReader::new(&bytes[..], MAX_PAYLOAD);
        assert_eq!(r.next().await.unwrap().unwrap().id, 3);
        assert!(r.next().await.unwrap().is_none());
    }
}
