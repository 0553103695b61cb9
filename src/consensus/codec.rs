//! How a consensus log entry is laid out inside a WAL record payload:
//!
//! ```text
//! byte 0     format version (3; 2 is still read)
//! bytes 1..  postcard of openraft::Entry<TypeConfig> (log id, then Blank | Normal | Membership)
//! ```
//!
//! Version 3 added `learner` to each member's `NodeInfo` in membership entries; the
//! other payloads are byte for byte those of version 2. postcard is not self-describing,
//! so a version-2 membership is decoded through the old layout (`v2` below) and its
//! members read as voting-eligible (`learner = false`), which is what they were.
//!
//! The WAL record already carries its own length, CRC, LSN and term; this layer only
//! names the encoding so a later format can be told apart.

use super::{Entry, LogId};

/// The previous entry encoding: a client entry carries a list of requests (version 1, one
/// request per entry, was never released); members carry no `learner` flag.
pub const ENTRY_FORMAT_V2: u8 = 2;
/// The entry encoding written now: as version 2, with `NodeInfo::learner`.
pub const ENTRY_FORMAT_V3: u8 = 3;

/// Why a WAL payload is not a consensus entry.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Empty payload.
    #[error("empty entry payload")]
    Empty,
    /// A version byte this build does not know.
    #[error("unknown entry format version {0}")]
    Version(u8),
    /// postcard failed.
    #[error("entry does not decode: {0}")]
    Postcard(#[from] postcard::Error),
    /// Bytes left over after the entry.
    #[error("{0} trailing bytes after the entry")]
    Trailing(usize),
    /// The entry's index differs from the record's LSN.
    #[error("entry index {index} stored at lsn {lsn}")]
    Misplaced {
        /// LSN of the WAL record.
        lsn: u64,
        /// Index inside the entry.
        index: u64,
    },
}

/// Encodes an entry for the WAL.
///
/// # Errors
/// Only if postcard cannot serialise (it can for every entry our types produce).
pub fn encode(entry: &Entry) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_extend(entry, vec![ENTRY_FORMAT_V3])?)
}

/// The entry in `payload` (version byte first), and what follows it.
fn parse(payload: &[u8]) -> Result<(Entry, usize), CodecError> {
    let (&version, body) = payload.split_first().ok_or(CodecError::Empty)?;
    match version {
        ENTRY_FORMAT_V3 => {
            let (entry, rest): (Entry, &[u8]) = postcard::take_from_bytes(body)?;
            Ok((entry, rest.len()))
        }
        ENTRY_FORMAT_V2 => {
            let (entry, rest): (v2::Entry, &[u8]) = postcard::take_from_bytes(body)?;
            Ok((entry.into(), rest.len()))
        }
        other => Err(CodecError::Version(other)),
    }
}

/// Decodes the entry stored at `lsn`, checking that it really belongs there.
///
/// # Errors
/// [`CodecError`] when the payload is not a version-2 or -3 entry for `lsn`.
pub fn decode(lsn: u64, payload: &[u8]) -> Result<Entry, CodecError> {
    let (entry, rest) = parse(payload)?;
    if rest != 0 {
        return Err(CodecError::Trailing(rest));
    }
    if entry.log_id.index != lsn {
        return Err(CodecError::Misplaced {
            lsn,
            index: entry.log_id.index,
        });
    }
    Ok(entry)
}

/// One line for `wolfscale wal dump`: the entry's log id and kind, and for client
/// requests the command's own description (names and counts, never row values).
pub fn describe(payload: &[u8]) -> Option<String> {
    let (e, rest) = parse(payload).ok()?;
    if rest != 0 {
        return None;
    }
    let LogId { leader_id, index } = e.log_id;
    let kind = match &e.payload {
        openraft::EntryPayload::Blank => "blank".to_string(),
        openraft::EntryPayload::Normal(rs) => {
            let each: Vec<String> =
                rs.0.iter()
                    .map(|r| match crate::command::Entry::decode(&r.payload) {
                        Ok(cmd) => cmd.describe(),
                        Err(err) => format!(
                            "request of {} bytes that does not decode: {err}",
                            r.payload.len()
                        ),
                    })
                    .collect();
            match each.len() {
                1 => each.concat(),
                n => format!("batch of {n}: {}", each.join("; ")),
            }
        }
        openraft::EntryPayload::Membership(m) => format!("membership {m}"),
    };
    Some(format!(
        "index={index} term={} leader={} {kind}",
        leader_id.term, leader_id.node_id
    ))
}

/// The version-2 layout of a log entry, for reading logs written before `learner`.
mod v2 {
    use crate::consensus::{LogId, NodeId, NodeInfo, Requests, TypeConfig};
    use serde::Deserialize;
    use std::collections::{BTreeMap, BTreeSet};

    /// `openraft::Entry` as version 2 laid it out.
    #[derive(Deserialize)]
    pub(super) struct Entry {
        log_id: LogId,
        payload: Payload,
    }

    /// `openraft::EntryPayload`, variant for variant.
    #[derive(Deserialize)]
    enum Payload {
        Blank,
        Normal(Requests),
        Membership(Membership),
    }

    /// `openraft::Membership`, field for field.
    #[derive(Deserialize)]
    struct Membership {
        configs: Vec<BTreeSet<NodeId>>,
        nodes: BTreeMap<NodeId, Member>,
    }

    /// `NodeInfo` before `learner`.
    #[derive(Deserialize)]
    struct Member {
        name: String,
        cluster_addr: String,
        api_addr: String,
    }

    impl From<Entry> for super::Entry {
        fn from(e: Entry) -> Self {
            let payload = match e.payload {
                Payload::Blank => openraft::EntryPayload::<TypeConfig>::Blank,
                Payload::Normal(r) => openraft::EntryPayload::Normal(r),
                Payload::Membership(m) => {
                    let nodes: BTreeMap<NodeId, NodeInfo> = m
                        .nodes
                        .into_iter()
                        .map(|(id, n)| {
                            let info = NodeInfo {
                                name: n.name,
                                cluster_addr: n.cluster_addr,
                                api_addr: n.api_addr,
                                learner: false,
                            };
                            (id, info)
                        })
                        .collect();
                    openraft::EntryPayload::Membership(openraft::Membership::new(m.configs, nodes))
                }
            };
            super::Entry {
                log_id: e.log_id,
                payload,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{Request, Requests};
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64, payload: EntryPayload<crate::consensus::TypeConfig>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
            payload,
        }
    }

    #[test]
    fn round_trip_every_kind() {
        let members = std::collections::BTreeSet::from([1u64, 2]);
        let m = openraft::Membership::new(vec![members], None);
        for e in [
            entry(5, EntryPayload::Blank),
            entry(
                6,
                EntryPayload::Normal(Requests::one(Request {
                    payload: vec![0, 1, 255],
                })),
            ),
            entry(
                7,
                EntryPayload::Normal(Requests(vec![
                    Request { payload: vec![1] },
                    Request { payload: vec![] },
                ])),
            ),
            entry(8, EntryPayload::Membership(m)),
        ] {
            let bytes = encode(&e).expect("encode");
            let back = decode(e.log_id.index, &bytes).expect("decode");
            assert_eq!(back.log_id, e.log_id);
            assert_eq!(format!("{:?}", back.payload), format!("{:?}", e.payload));
            assert!(describe(&bytes).is_some());
        }
    }

    #[test]
    fn rejects_foreign_payloads() {
        assert!(matches!(decode(1, &[]), Err(CodecError::Empty)));
        assert!(matches!(decode(1, &[9, 0]), Err(CodecError::Version(9))));
        assert!(matches!(decode(1, &[1, 0]), Err(CodecError::Version(1))));
        assert!(matches!(
            decode(1, &[3, 0xff]),
            Err(CodecError::Postcard(_))
        ));
        assert!(matches!(
            decode(1, &[2, 0xff]),
            Err(CodecError::Postcard(_))
        ));
        let mut long = encode(&entry(1, EntryPayload::Blank)).expect("encode");
        long.push(0);
        assert!(matches!(decode(1, &long), Err(CodecError::Trailing(1))));
        let bytes = encode(&entry(5, EntryPayload::Blank)).expect("encode");
        assert!(matches!(
            decode(6, &bytes),
            Err(CodecError::Misplaced { lsn: 6, index: 5 })
        ));
        assert_eq!(describe(&[9, 1, 2]), None);
    }

    /// A membership entry written by the version-2 encoder (before `learner`), captured
    /// from that build: still read, its members voting-eligible.
    #[test]
    fn reads_a_version_2_membership() {
        let hex = "02030109020101010201066e6f64652d310d31302e302e302e313a373635340d31302e302e\
                   302e313a3830383002066e6f64652d320d31302e302e302e323a3736353400";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let e = decode(9, &bytes).expect("a version-2 entry decodes");
        assert_eq!(e.log_id, LogId::new(CommittedLeaderId::new(3, 1), 9));
        let EntryPayload::Membership(m) = e.payload else {
            panic!("expected a membership, got {:?}", e.payload);
        };
        assert_eq!(m.voter_ids().collect::<Vec<_>>(), [1]);
        assert_eq!(m.learner_ids().collect::<Vec<_>>(), [2]);
        let two = m.get_node(&2).expect("node 2");
        assert_eq!(
            (
                two.name.as_str(),
                two.cluster_addr.as_str(),
                two.api_addr.as_str()
            ),
            ("node-2", "10.0.0.2:7654", "")
        );
        assert!(!two.learner && !m.get_node(&1).expect("node 1").learner);
        assert_eq!(m.get_node(&1).expect("node 1").api_addr, "10.0.0.1:8080");
        assert!(describe(&bytes).is_some_and(|d| d.contains("membership")));
    }
}
