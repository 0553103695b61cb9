//! How a consensus log entry is laid out inside a WAL record payload:
//!
//! ```text
//! byte 0     format version (2)
//! bytes 1..  postcard of openraft::Entry<TypeConfig> (log id, then Blank | Normal | Membership)
//! ```
//!
//! The WAL record already carries its own length, CRC, LSN and term; this layer only
//! names the encoding so a later format can be told apart.

use super::{Entry, LogId};

/// The entry encoding: version 2, where a client entry carries a list of requests
/// (version 1, one request per entry, was never released).
pub const ENTRY_FORMAT_V2: u8 = 2;

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
    Ok(postcard::to_extend(entry, vec![ENTRY_FORMAT_V2])?)
}

/// Decodes the entry stored at `lsn`, checking that it really belongs there.
///
/// # Errors
/// [`CodecError`] when the payload is not a version-2 entry for `lsn`.
pub fn decode(lsn: u64, payload: &[u8]) -> Result<Entry, CodecError> {
    let (&version, body) = payload.split_first().ok_or(CodecError::Empty)?;
    if version != ENTRY_FORMAT_V2 {
        return Err(CodecError::Version(version));
    }
    let (entry, rest): (Entry, &[u8]) = postcard::take_from_bytes(body)?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
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
    let (&version, body) = payload.split_first()?;
    if version != ENTRY_FORMAT_V2 {
        return None;
    }
    let (e, rest): (Entry, &[u8]) = postcard::take_from_bytes(body).ok()?;
    if !rest.is_empty() {
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
}
