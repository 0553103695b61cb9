//! Model-based property test: random appends, truncations, purges and reopens against a
//! plain `Vec`, with record sizes from 0 B to 1 MiB and compression on and off. Small
//! segments force many roll-overs.

use crate::support::{self, noise, text};
use proptest::prelude::*;
use std::path::Path;
use wolfscale::wal::{Record, Wal, WalOptions};

#[derive(Debug, Clone)]
enum Op {
    Append {
        sizes: Vec<usize>,
        new_term: bool,
        compressible: bool,
    },
    /// Truncate after a point chosen as a fraction (per mille) of the held range.
    TruncateAfter(u64),
    /// Purge before a point chosen as a fraction (per mille) of the held range plus two.
    PurgeBefore(u64),
    Reopen,
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        12 => 0usize..64,
        6 => 64usize..4096,
        1 => 4096usize..=(1 << 20),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::collection::vec(size(), 1..6), any::<bool>(), any::<bool>()).prop_map(
            |(sizes, new_term, compressible)| Op::Append {
                sizes,
                new_term,
                compressible
            }
        ),
        2 => (0u64..=1000).prop_map(Op::TruncateAfter),
        2 => (0u64..=1000).prop_map(Op::PurgeBefore),
        1 => Just(Op::Reopen),
    ]
}

struct Model {
    base: u64,
    records: Vec<Record>,
    term: u64,
}

impl Model {
    fn next(&self) -> u64 {
        self.base + self.records.len() as u64
    }
}

fn check(wal: &Wal, m: &Model, after: &Op) -> Result<(), TestCaseError> {
    let first = m.records.first().map(|r| (r.lsn, r.term));
    let last = m.records.last().map(|r| (r.lsn, r.term));
    prop_assert_eq!(wal.first(), first, "first() after {:?}", after);
    prop_assert_eq!(wal.last(), last, "last() after {:?}", after);
    prop_assert_eq!(wal.next_lsn(), m.next(), "next_lsn after {:?}", after);
    let got = wal
        .read(..)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(got == m.records, "content differs after {:?}", after);
    if let Some(r) = m.records.get(m.records.len() / 2) {
        prop_assert_eq!(wal.term_of(r.lsn), Some(r.term));
        let one = wal
            .read(r.lsn..=r.lsn)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(one.len() == 1 && one[0] == *r);
    }
    Ok(())
}

fn run(dir: &Path, opts: WalOptions, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fail = |e: wolfscale::wal::Error| TestCaseError::fail(e.to_string());
    let mut wal = Wal::open(dir, opts.clone()).map_err(fail)?;
    let mut m = Model {
        base: 1,
        records: Vec::new(),
        term: 1,
    };
    for op in ops {
        match &op {
            Op::Append {
                sizes,
                new_term,
                compressible,
            } => {
                if *new_term {
                    m.term += 1;
                }
                let batch: Vec<Record> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &len)| {
                        let lsn = m.next() + i as u64;
                        let payload = if *compressible {
                            text(lsn, len)
                        } else {
                            noise(lsn, len)
                        };
                        Record::new(lsn, m.term, payload)
                    })
                    .collect();
                wal.append_blocking(batch.clone()).map_err(fail)?;
                m.records.extend(batch);
            }
            Op::TruncateAfter(p) => {
                let held = m.records.len() as u64;
                let lsn = m.base - 1 + held * p / 1000;
                wal.truncate_after_blocking(lsn).map_err(fail)?;
                m.records.truncate((lsn + 1 - m.base) as usize);
            }
            Op::PurgeBefore(p) => {
                let lsn = m.base + (m.records.len() as u64 + 2) * p / 1000;
                wal.purge_before_blocking(lsn).map_err(fail)?;
                if lsn >= m.next() {
                    m.base = lsn;
                    m.records.clear();
                } else {
                    let first = wal.first().map_or(m.next(), |f| f.0);
                    prop_assert!(
                        first >= m.base && first <= lsn.max(m.base),
                        "purge_before({}) left first {} (base was {})",
                        lsn,
                        first,
                        m.base
                    );
                    m.records.drain(..(first - m.base) as usize);
                    m.base = first;
                }
            }
            Op::Reopen => {
                wal.close().map_err(fail)?;
                wal = Wal::open(dir, opts.clone()).map_err(fail)?;
            }
        }
        check(&wal, &m, &op)?;
    }
    wal.close().map_err(fail)?;
    let wal = Wal::open(dir, opts).map_err(fail)?;
    check(&wal, &m, &Op::Reopen)?;
    wal.close().map_err(fail)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn wal_matches_a_vec_model(
        ops in prop::collection::vec(op(), 1..40),
        compression in any::<bool>(),
        fsync in any::<bool>(),
        segment_kib in 4u64..64,
    ) {
        support::init_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        run(dir.path(), support::opts(segment_kib * 1024, compression, fsync), ops)?;
    }
}
