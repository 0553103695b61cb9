//! The connection handshake: both ends prove knowledge of the shared cluster secret
//! before any request is read. It owns the key, the messages and the proof rules; it does
//! not own sockets, timeouts (the caller wraps the whole exchange in one) or logging.
//!
//! ```text
//! client                                      server
//!   Hello { proto, cluster, node_c, nonce_c } ->
//!                                           <- Challenge { proto, node_s, nonce_s }
//!   Proof  HMAC(k, "client" ‖ transcript)     ->   verified before anything else is read
//!                                           <- Welcome HMAC(k, "server" ‖ transcript)
//! ```
//!
//! The transcript binds the protocol version, cluster name, both node names and both
//! fresh nonces, so a proof cannot be replayed on another connection, and the direction
//! label stops a proof being reflected back to the side that made it. The server proves
//! itself only to a client that has already proved itself, so an anonymous peer learns
//! nothing it could use. A refusal is sent as a [`Kind::Reject`] frame before closing.

use super::frame::{self, FrameReader, Kind, ReadError, MAX_PREAUTH_PAYLOAD};
use super::Error;
use crate::config::MIN_CLUSTER_SECRET_LEN;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use tokio::io::{AsyncRead, AsyncWrite};

/// Handshake protocol version; peers with another one are refused with a clear reason.
/// Version 2: a client log entry carries a list of requests (batched proposals), so
/// replication messages of version 1 do not decode. Version 3: a member's `NodeInfo`
/// carries `learner`, so membership in version-2 messages does not decode. Version 4: it
/// also carries the member's identity and the retired numbers (issue 13). Version 5: the
/// raw forwarded write (`PeerRequest::Write`) is gone, so the later peer messages' tags moved.
pub const PROTOCOL_VERSION: u16 = 5;
const NONCE_LEN: usize = 32;
const TAG_LEN: usize = 32;
const CLIENT_LABEL: &[u8] = b"wolfscale transport v1 client proof";
const SERVER_LABEL: &[u8] = b"wolfscale transport v1 server proof";

/// The cluster secret, keyed into HMAC-SHA256 once; the raw secret is not kept.
#[derive(Clone)]
pub struct AuthKey {
    mac: Hmac<Sha256>,
}

impl AuthKey {
    /// Keys the handshake with the cluster secret.
    ///
    /// # Errors
    /// [`Error::WeakSecret`] when the secret is shorter than the configured minimum.
    pub fn new(secret: &str) -> Result<Self, Error> {
        if secret.chars().count() < MIN_CLUSTER_SECRET_LEN {
            return Err(Error::WeakSecret {
                min: MIN_CLUSTER_SECRET_LEN,
            });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC accepts keys of any length");
        Ok(AuthKey { mac })
    }

    fn keyed(&self, label: &[u8], t: &Transcript<'_>) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(label);
        mac.update(&t.proto.to_be_bytes());
        for field in [t.cluster, t.client_node, t.server_node] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac.update(t.client_nonce);
        mac.update(t.server_nonce);
        mac
    }

    fn prove(&self, label: &[u8], t: &Transcript<'_>) -> [u8; TAG_LEN] {
        self.keyed(label, t).finalize().into_bytes().into()
    }

    /// Constant-time check of a proof.
    fn verify(&self, label: &[u8], t: &Transcript<'_>, tag: &[u8]) -> bool {
        self.keyed(label, t).verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(********)")
    }
}

/// How this node introduces itself at connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Cluster name; both ends must agree (empty when the cluster has none).
    pub cluster: String,
    /// This node's name, as the peer's handler will see it in [`super::PeerInfo`].
    pub node: String,
}

struct Transcript<'a> {
    proto: u16,
    cluster: &'a str,
    client_node: &'a str,
    server_node: &'a str,
    client_nonce: &'a [u8],
    server_nonce: &'a [u8],
}

#[derive(Serialize, Deserialize)]
struct Hello {
    proto: u16,
    cluster: String,
    node: String,
    nonce: [u8; NONCE_LEN],
}

#[derive(Serialize, Deserialize)]
struct Challenge {
    proto: u16,
    node: String,
    nonce: [u8; NONCE_LEN],
}

#[derive(Serialize, Deserialize)]
enum Refusal {
    AuthFailed,
    Incompatible(String),
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    #[error("{0}")]
    Incompatible(String),
    #[error("connection closed during the handshake")]
    Closed,
    #[error("unexpected {0:?} frame during the handshake")]
    Unexpected(Kind),
    #[error("malformed handshake message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

impl HandshakeError {
    /// The caller-facing error for a client handshake with `peer`.
    pub(crate) fn into_error(self, peer: &str) -> Error {
        let peer = peer.to_string();
        match self {
            HandshakeError::AuthFailed(reason) => Error::AuthFailed { peer, reason },
            HandshakeError::Incompatible(reason) => Error::Incompatible { peer, reason },
            other => Error::Unreachable {
                peer,
                reason: format!("handshake: {other}"),
            },
        }
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

async fn send<W: AsyncWrite + Unpin>(
    wr: &mut W,
    kind: Kind,
    payload: &[u8],
) -> Result<(), HandshakeError> {
    let bytes = frame::encode(kind, 0, payload, MAX_PREAUTH_PAYLOAD)
        .map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    frame::write_frame(wr, &bytes).await?;
    Ok(())
}

async fn send_value<W: AsyncWrite + Unpin, T: Serialize>(
    wr: &mut W,
    kind: Kind,
    value: &T,
) -> Result<(), HandshakeError> {
    let payload =
        postcard::to_allocvec(value).map_err(|e| HandshakeError::Malformed(e.to_string()))?;
    send(wr, kind, &payload).await
}

async fn refuse<W: AsyncWrite + Unpin>(wr: &mut W, refusal: Refusal) {
    // Best effort: the connection closes whether or not the peer hears why.
    let _ = send_value(wr, Kind::Reject, &refusal).await;
}

/// Reads the next handshake frame; a peer's refusal becomes the matching error.
async fn expect<R: AsyncRead + Unpin>(
    rd: &mut FrameReader<R>,
    want: Kind,
) -> Result<bytes::Bytes, HandshakeError> {
    let frame = rd.next().await?.ok_or(HandshakeError::Closed)?;
    if frame.kind == Kind::Reject {
        return Err(match postcard::from_bytes::<Refusal>(&frame.payload) {
            Ok(Refusal::AuthFailed) => HandshakeError::AuthFailed(
                "the peer did not accept our proof of the cluster secret".into(),
            ),
            Ok(Refusal::Incompatible(why)) => HandshakeError::Incompatible(why),
            Err(e) => HandshakeError::Malformed(e.to_string()),
        });
    }
    if frame.kind != want {
        return Err(HandshakeError::Unexpected(frame.kind));
    }
    Ok(frame.payload)
}

fn parse<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, HandshakeError> {
    postcard::from_bytes(payload).map_err(|e| HandshakeError::Malformed(e.to_string()))
}

/// Runs the client side; returns the server's node name once both sides are proven.
pub(crate) async fn client<R, W>(
    rd: &mut FrameReader<R>,
    wr: &mut W,
    me: &Identity,
    key: &AuthKey,
) -> Result<String, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello = Hello {
        proto: PROTOCOL_VERSION,
        cluster: me.cluster.clone(),
        node: me.node.clone(),
        nonce: nonce(),
    };
    send_value(wr, Kind::Hello, &hello).await?;
    let challenge: Challenge = parse(&expect(rd, Kind::Challenge).await?)?;
    if challenge.proto != PROTOCOL_VERSION {
        return Err(HandshakeError::Incompatible(format!(
            "peer speaks protocol {}, this build {PROTOCOL_VERSION}",
            challenge.proto
        )));
    }
    let t = Transcript {
        proto: PROTOCOL_VERSION,
        cluster: &me.cluster,
        client_node: &me.node,
        server_node: &challenge.node,
        client_nonce: &hello.nonce,
        server_nonce: &challenge.nonce,
    };
    send(wr, Kind::Proof, &key.prove(CLIENT_LABEL, &t)).await?;
    let tag = expect(rd, Kind::Welcome).await?;
    if !key.verify(SERVER_LABEL, &t, &tag) {
        return Err(HandshakeError::AuthFailed(
            "the server did not prove the cluster secret".into(),
        ));
    }
    Ok(challenge.node)
}

/// Runs the server side; returns the client's node name once both sides are proven.
/// Nothing the client sends after its proof is read before the proof is verified.
pub(crate) async fn server<R, W>(
    rd: &mut FrameReader<R>,
    wr: &mut W,
    me: &Identity,
    key: &AuthKey,
) -> Result<String, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello: Hello = parse(&expect(rd, Kind::Hello).await?)?;
    let mismatch = if hello.proto != PROTOCOL_VERSION {
        Some(format!(
            "peer speaks protocol {}, this node {PROTOCOL_VERSION}",
            hello.proto
        ))
    } else if hello.cluster != me.cluster {
        Some(format!(
            "peer belongs to cluster {:?}, not ours",
            hello.cluster
        ))
    } else {
        None
    };
    if let Some(why) = mismatch {
        refuse(wr, Refusal::Incompatible(why.clone())).await;
        return Err(HandshakeError::Incompatible(why));
    }
    let challenge = Challenge {
        proto: PROTOCOL_VERSION,
        node: me.node.clone(),
        nonce: nonce(),
    };
    send_value(wr, Kind::Challenge, &challenge).await?;
    let tag = expect(rd, Kind::Proof).await?;
    let t = Transcript {
        proto: PROTOCOL_VERSION,
        cluster: &me.cluster,
        client_node: &hello.node,
        server_node: &me.node,
        client_nonce: &hello.nonce,
        server_nonce: &challenge.nonce,
    };
    if !key.verify(CLIENT_LABEL, &t, &tag) {
        refuse(wr, Refusal::AuthFailed).await;
        return Err(HandshakeError::AuthFailed(
            "the peer did not prove the cluster secret".into(),
        ));
    }
    send(wr, Kind::Welcome, &key.prove(SERVER_LABEL, &t)).await?;
    Ok(hello.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-secret";

    fn id(node: &str) -> Identity {
        Identity {
            cluster: "c1".into(),
            node: node.into(),
        }
    }

    async fn run(
        client_key: &AuthKey,
        server_key: &AuthKey,
        client_id: Identity,
        server_id: Identity,
    ) -> (
        Result<String, HandshakeError>,
        Result<String, HandshakeError>,
    ) {
        let (a, b) = tokio::io::duplex(4096);
        let (ar, mut aw) = tokio::io::split(a);
        let (br, mut bw) = tokio::io::split(b);
        let mut ar = FrameReader::new(ar, MAX_PREAUTH_PAYLOAD);
        let mut br = FrameReader::new(br, MAX_PREAUTH_PAYLOAD);
        let c = async {
            let r = client(&mut ar, &mut aw, &client_id, client_key).await;
            drop(aw);
            r
        };
        let s = async {
            let r = server(&mut br, &mut bw, &server_id, server_key).await;
            drop(bw);
            r
        };
        tokio::join!(c, s)
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(matches!(
            AuthKey::new("fifteen-chars!!"),
            Err(Error::WeakSecret { min: 16 })
        ));
        assert!(AuthKey::new("sixteen-chars!!!").is_ok());
        assert_eq!(
            format!("{:?}", AuthKey::new(SECRET).unwrap()),
            "AuthKey(********)"
        );
    }

    #[tokio::test]
    async fn same_secret_authenticates_both_ways() {
        let k = AuthKey::new(SECRET).unwrap();
        let (c, s) = run(&k, &k, id("a"), id("b")).await;
        assert_eq!(c.unwrap(), "b");
        assert_eq!(s.unwrap(), "a");
    }

    #[tokio::test]
    async fn wrong_secret_fails_on_both_sides() {
        let k1 = AuthKey::new(SECRET).unwrap();
        let k2 = AuthKey::new("another-secret-of-the-same-kind").unwrap();
        let (c, s) = run(&k1, &k2, id("a"), id("b")).await;
        assert!(matches!(c, Err(HandshakeError::AuthFailed(_))), "{c:?}");
        assert!(matches!(s, Err(HandshakeError::AuthFailed(_))), "{s:?}");
    }

    #[tokio::test]
    async fn cluster_mismatch_is_incompatible() {
        let k = AuthKey::new(SECRET).unwrap();
        let other = Identity {
            cluster: "c2".into(),
            node: "a".into(),
        };
        let (c, s) = run(&k, &k, other, id("b")).await;
        assert!(matches!(c, Err(HandshakeError::Incompatible(_))), "{c:?}");
        assert!(matches!(s, Err(HandshakeError::Incompatible(_))), "{s:?}");
    }

    proptest::proptest! {
        /// Whatever an anonymous peer sends, the server side never panics and never
        /// reports success.
        #[test]
        fn server_refuses_arbitrary_input(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            hello_first: bool,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let outcome = rt.block_on(async {
                let mut input = Vec::new();
                if hello_first {
                    let hello = Hello { proto: PROTOCOL_VERSION, cluster: "c1".into(), node: "m".into(), nonce: [3; 32] };
                    input.extend_from_slice(&frame::encode(Kind::Hello, 0, &postcard::to_allocvec(&hello).unwrap(), 4096).unwrap());
                }
                input.extend_from_slice(&junk);
                let mut rd = FrameReader::new(&input[..], MAX_PREAUTH_PAYLOAD);
                let mut sink = Vec::new();
                server(&mut rd, &mut sink, &id("b"), &AuthKey::new(SECRET).unwrap()).await
            });
            proptest::prop_assert!(outcome.is_err());
        }
    }

    #[test]
    fn proofs_depend_on_direction_and_every_field() {
        let k = AuthKey::new(SECRET).unwrap();
        let (n1, n2) = ([1u8; 32], [2u8; 32]);
        let t = Transcript {
            proto: 1,
            cluster: "c",
            client_node: "a",
            server_node: "b",
            client_nonce: &n1,
            server_nonce: &n2,
        };
        let client_proof = k.prove(CLIENT_LABEL, &t);
        assert!(k.verify(CLIENT_LABEL, &t, &client_proof));
        assert!(!k.verify(SERVER_LABEL, &t, &client_proof), "reflection");
        let swapped = Transcript {
            client_nonce: &n2,
            server_nonce: &n1,
            ..t
        };
        assert!(!k.verify(CLIENT_LABEL, &swapped, &client_proof));
        let renamed = Transcript {
            client_node: "ab",
            server_node: "",
            ..t
        };
        assert!(!k.verify(CLIENT_LABEL, &renamed, &client_proof));
        assert!(!k.verify(CLIENT_LABEL, &t, &client_proof[..31]));
    }
}
