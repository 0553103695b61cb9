//! How a consensus log entry is laid out inside a WAL record payload:
//!
//! ```text
//! byte 0     format version (4; 2 and 3 are still read)
//! bytes 1..  postcard of openraft::Entry<TypeConfig> (log id, then Blank | Normal | Membership)
//! ```
//!
//! The versions differ only in each member's [`NodeInfo`](super::NodeInfo) inside
//! membership entries; blank and client entries are byte for byte the same:
//!
//! | version | member record |
//! |---|---|
//! | 2 | name, cluster address, API address |
//! | 3 | as 2, then `learner` |
//! | 4 | as 3, then `identity` and the `retired` node numbers |
//!
//! postcard writes fields in order with no names or lengths, so an older entry cannot be
//! read as the newer one through a serde default: it is read with its own member type
//! ([`old`]) and converted, the fields it lacks empty (`learner = false`, which is what a
//! version-2 member was; no identity; nothing retired).
//!
//! The WAL record already carries its own length, CRC, LSN and term; this layer only
//! names the encoding so a later format can be told apart.

use super::{Entry, LogId};

/// Still read: a client entry carries a list of requests (version 1, one request per
/// entry, was never released); members are name and addresses only.
pub const ENTRY_FORMAT_V2: u8 = 2;
/// Still read: as version 2, each member with `NodeInfo::learner`.
pub const ENTRY_FORMAT_V3: u8 = 3;
/// The entry encoding written now: as version 3, each member also with its identity and
/// the retired node numbers.
pub const ENTRY_FORMAT_V4: u8 = 4;

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
    Ok(postcard::to_extend(entry, vec![ENTRY_FORMAT_V4])?)
}

/// The entry in `payload` (version byte first), and the number of bytes after it.
fn parse(payload: &[u8]) -> Result<(Entry, usize), CodecError> {
    let (&version, body) = payload.split_first().ok_or(CodecError::Empty)?;
    match version {
        ENTRY_FORMAT_V4 => {
            let (entry, rest): (Entry, &[u8]) = postcard::take_from_bytes(body)?;
            Ok((entry, rest.len()))
        }
        ENTRY_FORMAT_V3 => {
            let (entry, rest): (old::Entry<old::MemberV3>, &[u8]) =
                postcard::take_from_bytes(body)?;
            Ok((entry.into(), rest.len()))
        }
        ENTRY_FORMAT_V2 => {
            let (entry, rest): (old::Entry<old::MemberV2>, &[u8]) =
                postcard::take_from_bytes(body)?;
            Ok((entry.into(), rest.len()))
        }
        other => Err(CodecError::Version(other)),
    }
}

/// Decodes the entry stored at `lsn`, checking that it really belongs there.
///
/// # Errors
/// [`CodecError`] when the payload is not a version-2, -3 or -4 entry for `lsn`.
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

/// The member records of versions 2 and 3 and the entry layout around them, for reading
/// WALs written by older builds.
mod old {
    use crate::consensus::{LogId, NodeId, NodeInfo, Requests, TypeConfig};
    use serde::Deserialize;
    use std::collections::{BTreeMap, BTreeSet};

    /// `openraft::Entry` as versions 2 and 3 laid it out, over their member record `M`.
    #[derive(Deserialize)]
    pub(super) struct Entry<M> {
        log_id: LogId,
        payload: Payload<M>,
    }

    /// `openraft::EntryPayload`, variant for variant.
    #[derive(Deserialize)]
    enum Payload<M> {
        Blank,
        Normal(Requests),
        Membership(Membership<M>),
    }

    /// `openraft::Membership`, field for field.
    #[derive(Deserialize)]
    struct Membership<M> {
        configs: Vec<BTreeSet<NodeId>>,
        nodes: BTreeMap<NodeId, M>,
    }

    /// A member as version 2 wrote it.
    #[derive(Deserialize)]
    pub(super) struct MemberV2 {
        name: String,
        cluster_addr: String,
        api_addr: String,
    }

    /// A member as version 3 wrote it.
    #[derive(Deserialize)]
    pub(super) struct MemberV3 {
        name: String,
        cluster_addr: String,
        api_addr: String,
        learner: bool,
    }

    impl From<MemberV2> for NodeInfo {
        fn from(m: MemberV2) -> Self {
            NodeInfo {
                name: m.name,
                cluster_addr: m.cluster_addr,
                api_addr: m.api_addr,
                ..NodeInfo::default()
            }
        }
    }

    impl From<MemberV3> for NodeInfo {
        fn from(m: MemberV3) -> Self {
            NodeInfo {
                name: m.name,
                cluster_addr: m.cluster_addr,
                api_addr: m.api_addr,
                learner: m.learner,
                ..NodeInfo::default()
            }
        }
    }

    impl<M: Into<NodeInfo>> From<Entry<M>> for super::Entry {
        fn from(e: Entry<M>) -> Self {
            let payload = match e.payload {
                Payload::Blank => openraft::EntryPayload::<TypeConfig>::Blank,
                Payload::Normal(r) => openraft::EntryPayload::Normal(r),
                Payload::Membership(m) => {
                    let nodes: BTreeMap<NodeId, NodeInfo> =
                        m.nodes.into_iter().map(|(id, n)| (id, n.into())).collect();
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
    use crate::consensus::{NodeInfo, Request, Requests};
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
            decode(1, &[4, 0xff]),
            Err(CodecError::Postcard(_))
        ));
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

    /// A membership entry in the version-3 layout (members carry `learner`, no identity),
    /// byte for byte what the version-3 encoder wrote (the version-2 bytes above with a
    /// learner byte after each member): node 1 a voter, node 2 a learner. Still read, the
    /// learner flag kept, identities empty, nothing retired.
    #[test]
    fn reads_a_version_3_membership() {
        let hex = "03030109020101010201066e6f64652d310d31302e302e302e313a373635340d31302e302e\
                   302e313a383038300002066e6f64652d320d31302e302e302e323a373635340001";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let e = decode(9, &bytes).expect("a version-3 entry decodes");
        assert_eq!(e.log_id, LogId::new(CommittedLeaderId::new(3, 1), 9));
        let EntryPayload::Membership(m) = e.payload else {
            panic!("expected a membership, got {:?}", e.payload);
        };
        assert_eq!(m.voter_ids().collect::<Vec<_>>(), [1]);
        assert_eq!(m.learner_ids().collect::<Vec<_>>(), [2]);
        let one = m.get_node(&1).expect("node 1");
        let two = m.get_node(&2).expect("node 2");
        assert_eq!(
            (one.name.as_str(), one.api_addr.as_str(), one.learner),
            ("node-1", "10.0.0.1:8080", false)
        );
        assert_eq!(
            (two.name.as_str(), two.cluster_addr.as_str(), two.learner),
            ("node-2", "10.0.0.2:7654", true)
        );
        assert!(one.identity.is_empty() && two.identity.is_empty());
        assert!(one.retired.is_empty() && two.retired.is_empty());
        assert!(describe(&bytes).is_some_and(|d| d.contains("membership")));
    }

    /// Version 4 keeps every member field: learner flag, identity and retired numbers.
    #[test]
    fn version_4_keeps_learner_identity_and_retired_numbers() {
        let info = NodeInfo {
            name: "node-3".into(),
            cluster_addr: "10.0.0.3:7654".into(),
            api_addr: String::new(),
            learner: true,
            identity: "0123456789abcdef0123456789abcdef".into(),
            retired: std::collections::BTreeSet::from([2, 5]),
        };
        let m = openraft::Membership::new(
            vec![std::collections::BTreeSet::from([1u64])],
            std::collections::BTreeMap::from([(1u64, NodeInfo::default()), (3u64, info.clone())]),
        );
        let bytes = encode(&entry(2, EntryPayload::Membership(m))).expect("encode");
        assert_eq!(bytes[0], ENTRY_FORMAT_V4);
        let EntryPayload::Membership(m) = decode(2, &bytes).expect("decode").payload else {
            panic!("not a membership entry");
        };
        assert_eq!(m.get_node(&3), Some(&info));
    }
}
