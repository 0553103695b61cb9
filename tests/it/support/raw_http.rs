//! A deliberately dumb HTTP/1.1 client over a raw TCP stream, for bytes no real client
//! sends: broken request lines, invalid UTF-8, lying lengths, bodies that trickle or never
//! end. It writes while it reads, so a server that answers before the body is complete is
//! heard, and it reports a connection closed without an answer as such.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A complete HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, as received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as lossy text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The server answered.
    Answer(Answer),
    /// The server closed or reset the connection before a complete answer.
    Closed {
        /// Bytes received before the close.
        partial: Vec<u8>,
    },
}

/// One piece of a request: bytes sent after a pause.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Wait this long before sending.
    pub after: Duration,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Piece {
    /// Bytes sent at once.
    pub fn now(bytes: impl Into<Vec<u8>>) -> Piece {
        Piece {
            after: Duration::ZERO,
            bytes: bytes.into(),
        }
    }
}

/// Sends `request` in one piece; see [`exchange_paced`].
pub async fn exchange(addr: &str, request: &[u8], limit: Duration) -> Reply {
    exchange_paced(addr, vec![Piece::now(request)], limit)
        .await
        .0
}

/// Sends `pieces` (each after its pause) while reading, and returns what came back with
/// the time it took. The writer stops quietly at the first write error (the server may
/// close early). After the last piece the connection stays open for writing, so a server
/// waiting for more bytes must end the exchange itself.
///
/// # Panics
/// When nothing ends the exchange within `limit`, or the connection cannot be made.
pub async fn exchange_paced(addr: &str, pieces: Vec<Piece>, limit: Duration) -> (Reply, Duration) {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect to the api");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        for piece in pieces {
            tokio::time::sleep(piece.after).await;
            if wr.write_all(&piece.bytes).await.is_err() {
                return wr;
            }
        }
        wr
    });
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(answer) = parse(&buf) {
                return Reply::Answer(answer);
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return match parse_to_eof(&buf) {
                        Some(answer) => Reply::Answer(answer),
                        None => Reply::Closed { partial: buf },
                    }
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let reply = tokio::time::timeout(limit, read).await.unwrap_or_else(|_| {
        panic!("no answer and no close within {limit:?}");
    });
    writer.abort();
    (reply, started.elapsed())
}

/// A complete answer at the start of `buf`, if there is one.
fn parse(buf: &[u8]) -> Option<Answer> {
    let (status, headers, body_at) = head(buf)?;
    let rest = &buf[body_at..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = length {
        rest.get(..len)?.to_vec()
    } else if (100..200).contains(&status) || status == 204 || status == 304 {
        Vec::new()
    } else {
        return None; // delimited by the close
    };
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// The answer in `buf` once the server has closed: a body without a length runs to here.
fn parse_to_eof(buf: &[u8]) -> Option<Answer> {
    if let Some(answer) = parse(buf) {
        return Some(answer);
    }
    let (status, headers, body_at) = head(buf)?;
    let framed = headers
        .iter()
        .any(|(n, _)| n == "content-length" || n == "transfer-encoding");
    (!framed).then(|| Answer {
        status,
        headers,
        body: buf[body_at..].to_vec(),
    })
}

type Head = (u16, Vec<(String, String)>, usize);

fn head(buf: &[u8]) -> Option<Head> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()?
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, end + 4))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// A request head (`Connection: close`, with `Host`), followed by `body` if given.
/// `headers` are extra `name: value` lines, raw bytes so they may be invalid.
pub fn request(method: &str, target: &[u8], headers: &[&[u8]], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: node\r\nConnection: close\r\n");
    for h in headers {
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lengths_chunks_and_partial_answers() {
        let a = parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (404, &b"{}"[..]));
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}").is_none());
        let c = parse(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(c.body, b"abc");
        assert!(parse(b"HTTP/1.1 400 Bad Request\r\n\r\n").is_none());
        assert_eq!(
            parse_to_eof(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                .unwrap()
                .status,
            400
        );
        assert!(parse_to_eof(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nab").is_none());
    }
}
