//! Outcome agreement (DESIGN invariant 7): every node keeps a digest of the outcome it
//! reached for each client entry; the leader proposes its digests in later log entries
//! ([`Command::Outcomes`](crate::command::Command::Outcomes)); every node compares them with
//! its own when it applies that entry. The leader's outcome is the agreed one — it is what
//! the client was told. A node that reached another outcome has a different state: it
//! stops applying and reports DIVERGED with the entry and both digests, so no replica is
//! ever silently different and one bad replica never stops the others.
//!
//! Digests live in memory (the last [`KEEP`] entries): after a restart a node cannot check
//! entries it applied before; the divergence checker (`wolfscale check`) covers those.

use super::outcome::{Outcome, StatementOutcome};
use crate::command::OutcomeDigest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Digests kept per node for entries not yet compared.
pub const KEEP: usize = 100_000;

/// Digests proposed in one `Outcomes` entry at most.
pub const MAX_PER_ENTRY: usize = 4096;

/// [`MAX_PER_ENTRY`], for the proposer.
pub fn digest_limit() -> usize {
    MAX_PER_ENTRY
}

/// Where a node's outcome differed from the leader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Divergence {
    /// The entry whose outcomes differ.
    pub lsn: u64,
    /// This node's digest of its outcome.
    pub own: u64,
    /// The leader's (agreed) digest.
    pub agreed: u64,
}

/// The digests of one node.
#[derive(Debug, Default)]
pub(super) struct Agreement {
    own: BTreeMap<u64, u64>,
    /// The highest LSN covered by an applied `Outcomes` entry.
    reported: u64,
    diverged: Option<Divergence>,
}

impl Agreement {
    pub(super) fn record(&mut self, lsn: u64, digest: u64) {
        self.own.insert(lsn, digest);
        while self.own.len() > KEEP {
            self.own.pop_first();
        }
    }

    /// Digests this node holds above the last reported LSN, oldest first.
    pub(super) fn unreported(&self, limit: usize) -> Vec<OutcomeDigest> {
        self.own
            .range(self.reported + 1..)
            .take(limit)
            .map(|(&lsn, &digest)| OutcomeDigest { lsn, digest })
            .collect()
    }

    /// Compares the leader's digests with this node's own; the first difference is kept.
    pub(super) fn compare(&mut self, agreed: &[OutcomeDigest]) -> Option<Divergence> {
        for a in agreed {
            self.reported = self.reported.max(a.lsn);
            if let Some(own) = self.own.remove(&a.lsn) {
                if own != a.digest && self.diverged.is_none() {
                    self.diverged = Some(Divergence {
                        lsn: a.lsn,
                        own,
                        agreed: a.digest,
                    });
                }
            }
        }
        // Older digests will never be reported (their leader lost them in a restart).
        let reported = self.reported;
        self.own.retain(|&lsn, _| lsn > reported);
        self.diverged
    }

    pub(super) fn diverged(&self) -> Option<Divergence> {
        self.diverged
    }

    /// The database was replaced by a copy of a healthy member's: this node's digests
    /// describe a state it no longer has, and it no longer differs.
    pub(super) fn reset(&mut self) {
        self.own.clear();
        self.diverged = None;
    }
}

/// The digest of one entry's outcomes (one per request, in order): what each request did
/// (rows affected, generated id) or the MariaDB error number it failed with. Messages are
/// left out: servers of different versions word them differently. `None` when the entry
/// has no client outcome to compare (blank, membership, `Outcomes`, already applied).
pub fn digest(outcomes: &[&Outcome]) -> Option<u64> {
    let mut h = Sha256::new();
    let mut any = false;
    for o in outcomes {
        match o {
            Outcome::Applied {
                affected_rows,
                last_insert_id,
                ..
            } => {
                h.update([1]);
                h.update(affected_rows.to_le_bytes());
                h.update(last_insert_id.unwrap_or(u64::MAX).to_le_bytes());
            }
            Outcome::Failed { failure, .. } => {
                h.update([2]);
                h.update(failure.statement.to_le_bytes());
                h.update(failure.code.to_le_bytes());
            }
            Outcome::Batch { statements, .. } => {
                h.update([3]);
                for s in statements {
                    match s {
                        StatementOutcome::Done {
                            affected_rows,
                            last_insert_id,
                        } => {
                            h.update([4]);
                            h.update(affected_rows.to_le_bytes());
                            h.update(last_insert_id.unwrap_or(u64::MAX).to_le_bytes());
                        }
                        StatementOutcome::Failed(f) => {
                            h.update([5]);
                            h.update(f.code.to_le_bytes());
                        }
                    }
                }
            }
            Outcome::Internal { .. } => continue,
            Outcome::AlreadyApplied { .. } => return None,
        }
        any = true;
    }
    if !any {
        return None;
    }
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    Some(u64::from_le_bytes(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Failure, FailureClass};

    fn applied(lsn: u64, rows: u64) -> Outcome {
        Outcome::Applied {
            lsn,
            affected_rows: rows,
            last_insert_id: None,
            ids: vec![],
        }
    }

    fn failed(lsn: u64, code: u16, message: &str) -> Outcome {
        Outcome::Failed {
            lsn,
            ids: vec![],
            failure: Failure {
                statement: 0,
                code,
                message: message.into(),
                class: FailureClass::Conflict,
            },
        }
    }

    #[test]
    fn digests_tell_outcomes_apart_but_not_messages() {
        let a = digest(&[&applied(5, 1)]);
        assert!(a.is_some());
        assert_eq!(a, digest(&[&applied(5, 1)]));
        assert_ne!(a, digest(&[&applied(5, 0)]));
        assert_ne!(a, digest(&[&failed(5, 1062, "dup")]));
        assert_eq!(
            digest(&[&failed(5, 1062, "Duplicate entry '1'")]),
            digest(&[&failed(5, 1062, "Doppelter Eintrag '1'")])
        );
        assert_eq!(digest(&[&Outcome::Internal { lsn: 5 }]), None);
        assert_eq!(digest(&[&Outcome::AlreadyApplied { lsn: 5 }]), None);
    }

    #[test]
    fn a_difference_is_reported_once_and_kept() {
        let mut a = Agreement::default();
        a.record(1, 10);
        a.record(2, 20);
        a.record(3, 30);
        assert_eq!(
            a.unreported(10).iter().map(|d| d.lsn).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(a.compare(&[OutcomeDigest { lsn: 1, digest: 10 }]), None);
        assert_eq!(a.unreported(10).len(), 2);
        let d = a.compare(&[
            OutcomeDigest { lsn: 2, digest: 21 },
            OutcomeDigest { lsn: 3, digest: 31 },
        ]);
        assert_eq!(
            d,
            Some(Divergence {
                lsn: 2,
                own: 20,
                agreed: 21
            })
        );
        assert_eq!(a.diverged().map(|d| d.lsn), Some(2));
        assert!(a.unreported(10).is_empty());
    }

    #[test]
    fn unknown_digests_are_skipped() {
        let mut a = Agreement::default();
        a.record(9, 1);
        // The leader reports entries this node applied before a restart: nothing to
        // compare, no divergence.
        assert_eq!(a.compare(&[OutcomeDigest { lsn: 4, digest: 7 }]), None);
        assert_eq!(a.unreported(10).len(), 1);
        assert_eq!(a.compare(&[OutcomeDigest { lsn: 9, digest: 1 }]), None);
    }
}
