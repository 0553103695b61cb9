//! Slow-loris clients: bodies that never come or trickle, heads that never end, and
//! connections that send nothing. The node must cut each one off (10 s header and body
//! deadlines) while answering everybody else at once.

use super::auth;
use crate::support::raw_http::{self, Piece, Reply};
use std::time::{Duration, Instant};

/// The node's header and body deadlines (`api::HEADER_READ_TIMEOUT`, the body timeout).
const DEADLINE: Duration = Duration::from_secs(10);
/// How long past the deadline a loaded machine may take to cut a client off.
const SLACK: Duration = Duration::from_secs(20);
/// Idle connections held open at once.
const IDLE_CONNECTIONS: usize = 64;

/// How one slow client ended.
#[derive(Debug)]
pub struct Outcome {
    label: String,
    reply: Reply,
    elapsed: Duration,
    /// Whether the node may just close (a head that never ends) instead of answering 408.
    may_close: bool,
}

fn head(content: &[&[u8]]) -> Vec<u8> {
    let a = auth();
    let mut headers: Vec<&[u8]> = vec![&a, b"Content-Type: application/json"];
    headers.extend_from_slice(content);
    raw_http::request("POST", b"/write/insert", &headers, None)
}

fn trickle(bytes: &[u8], every: Duration) -> Vec<Piece> {
    bytes
        .iter()
        .map(|b| Piece {
            after: every,
            bytes: vec![*b],
        })
        .collect()
}

/// Runs every slow client at once, checks `/health` stays quick meanwhile, and returns
/// how each ended.
pub async fn run(api: String) -> Vec<Outcome> {
    let body = br#"{"table": "t", "values": {"id": 1, "v": "slow"}}"#;
    let mut clients: Vec<(String, Vec<Piece>, bool)> = vec![
        (
            "body never sent".into(),
            vec![Piece::now(head(&[b"Content-Length: 100"]))],
            false,
        ),
        (
            "body trickled a byte every 400 ms".into(),
            std::iter::once(Piece::now(head(&[b"Content-Length: 200"])))
                .chain(trickle(&[b' '; 200], Duration::from_millis(400)))
                .collect(),
            false,
        ),
        (
            "length says 1000, 100 bytes sent".into(),
            vec![
                Piece::now(head(&[b"Content-Length: 1000"])),
                Piece::now(vec![b' '; 100]),
            ],
            false,
        ),
        (
            "chunked body without its last chunk".into(),
            vec![
                Piece::now(head(&[b"Transfer-Encoding: chunked"])),
                Piece::now(format!("{:x}\r\n", body.len()).into_bytes()),
                Piece::now(body.to_vec()),
                Piece::now(b"\r\n".to_vec()),
            ],
            false,
        ),
        (
            "head never finished".into(),
            vec![Piece::now(
                b"POST /write/insert HTTP/1.1\r\nHost: node\r\n".to_vec(),
            )],
            true,
        ),
        (
            "head trickled a byte every 400 ms".into(),
            trickle(&head(&[b"Content-Length: 2"]), Duration::from_millis(400)),
            true,
        ),
    ];
    for i in 0..IDLE_CONNECTIONS {
        clients.push((format!("idle connection #{i}"), Vec::new(), true));
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(label, pieces, may_close)| {
            let api = api.clone();
            tokio::spawn(async move {
                let (reply, elapsed) =
                    raw_http::exchange_paced(&api, pieces, DEADLINE + SLACK).await;
                Outcome {
                    label,
                    reply,
                    elapsed,
                    may_close,
                }
            })
        })
        .collect();
    // While they hang on, other clients are served at once.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let reply = raw_http::exchange(
            &api,
            &raw_http::request("GET", b"/health", &[], None),
            Duration::from_secs(10),
        )
        .await;
        let took = started.elapsed();
        assert!(
            matches!(&reply, Reply::Answer(a) if a.status == 200),
            "/health beside slow clients: {reply:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "/health took {took:?} beside slow clients"
        );
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("slow client task"));
    }
    outcomes
}

/// Each slow client was cut off after the deadline (not before, not long after): a 408
/// JSON answer for a body, a 408 or a close for a head.
pub fn check(outcomes: &[Outcome]) {
    for o in outcomes {
        assert!(
            o.elapsed >= DEADLINE - Duration::from_secs(1),
            "{}: ended after {:?}, before the deadline: {:?}",
            o.label,
            o.elapsed,
            o.reply
        );
        assert!(
            o.elapsed <= DEADLINE + SLACK,
            "{}: cut off after {:?}",
            o.label,
            o.elapsed
        );
        match &o.reply {
            Reply::Closed { .. } if o.may_close => {}
            reply => {
                let code = super::check(&o.label, reply, super::Expect::Status(408));
                assert_eq!(code.as_deref(), Some("request_timeout"), "{}", o.label);
            }
        }
    }
}
