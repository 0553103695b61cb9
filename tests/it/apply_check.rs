//! The applier's side of the divergence checker against a real private server: a check
//! barrier in the middle of one apply call snapshots exactly the state at its LSN (the
//! entries after it in the same call are not seen), the snapshot keeps answering while
//! later entries apply, a barrier replayed after it was applied takes no snapshot, the
//! chunk size does not change a checksum, a released snapshot answers no more, and a
//! DDL after the barrier ends the snapshot instead of waiting for it.

use std::time::Duration;

use anyhow::{ensure, Context};
use wolfscale::apply::check::{CheckAnswer, CheckAsk, KeyRange, KeyValue, Pace, RangeSum};
use wolfscale::apply::Outcome;
use wolfscale::command::{self, Command, Value};

use crate::apply_support::{applier, apply, ddl, entries, entry, insert, sql, TS};
use crate::support::MariaDb;

fn barrier(id: u64) -> command::Entry {
    command::Entry {
        timestamp_us: TS,
        ids: vec![],
        command: Command::CheckBarrier { id },
    }
}

fn row(id: i64, v: &str) -> command::Entry {
    insert(
        TS,
        "t",
        &[("id", Value::Int(id)), ("v", Value::Text(v.into()))],
        vec![],
    )
}

fn sum_of(answer: CheckAnswer) -> anyhow::Result<RangeSum> {
    match answer {
        CheckAnswer::Sum(s) => Ok(s),
        other => anyhow::bail!("expected a sum, got {other:?}"),
    }
}

#[tokio::test]
async fn a_barrier_snapshots_exactly_its_lsn_while_later_entries_apply() -> anyhow::Result<()> {
    crate::support::init_tracing();
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "chk").await?;
    let checks = a.checks();
    apply(
        &mut a,
        entries(
            1,
            &[ddl(
                TS,
                "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
            )],
        ),
    )
    .await?;
    // One apply call: a row, the barrier, then more rows and a change to the first row.
    let out = apply(
        &mut a,
        entries(
            2,
            &[
                row(1, "one"),
                barrier(7),
                row(2, "two"),
                sql(
                    TS,
                    &[("UPDATE t SET v = 'uno' WHERE id = 1", vec![])],
                    false,
                ),
            ],
        ),
    )
    .await?;
    ensure!(
        matches!(out[1], Outcome::Applied { lsn: 3, .. }),
        "barrier outcome: {out:?}"
    );
    let schema = checks.answer(CheckAsk::Schema { id: 7, wait_ms: 0 }).await;
    let CheckAnswer::Schema { lsn, tables } = schema else {
        anyhow::bail!("no snapshot for the barrier: {schema:?}");
    };
    ensure!(lsn == 3, "snapshot at lsn {lsn}");
    let t = tables.iter().find(|t| t.name == "t").context("table t")?;
    ensure!(t.key == vec!["id".to_string()], "{t:?}");
    ensure!(!tables.iter().any(|t| t.name == "_wolfscale"), "{tables:?}");

    // Later entries apply meanwhile; the snapshot still sees the state at lsn 3.
    apply(&mut a, entries(6, &[row(3, "three"), barrier(8)])).await?;
    let sum = |id| CheckAsk::Sum {
        id,
        table: "t".into(),
        range: KeyRange::default(),
    };
    let at3 = sum_of(checks.answer(sum(7)).await)?;
    let at7 = sum_of(checks.answer(sum(8)).await)?;
    ensure!(at3.rows == 1, "{at3:?}");
    ensure!(at7.rows == 3, "{at7:?}");
    let rows = |id| CheckAsk::Rows {
        id,
        table: "t".into(),
        range: KeyRange::default(),
        limit: 10,
    };
    let (CheckAnswer::Rows(before), CheckAnswer::Rows(after)) =
        (checks.answer(rows(7)).await, checks.answer(rows(8)).await)
    else {
        anyhow::bail!("row hashes not answered");
    };
    ensure!(
        before.len() == 1 && before[0].0 == vec![KeyValue::Int(1)],
        "{before:?}"
    );
    ensure!(after.len() == 3, "{after:?}");
    ensure!(
        before[0].1 != after[0].1,
        "the update of id 1 must change its hash"
    );

    // The chunk size changes the work, not the answer.
    checks.set_pace(Pace {
        chunk_rows: 1,
        rows_per_sec: 0,
    });
    ensure!(
        sum_of(checks.answer(sum(8)).await)? == at7,
        "chunked sum differs"
    );
    let upper = CheckAsk::Sum {
        id: 8,
        table: "t".into(),
        range: KeyRange {
            after: Some(vec![KeyValue::Int(1)]),
            upto: Some(vec![KeyValue::Int(3)]),
        },
    };
    ensure!(sum_of(checks.answer(upper).await)?.rows == 2);
    let mid = checks
        .answer(CheckAsk::KeyAt {
            id: 8,
            table: "t".into(),
            range: KeyRange::default(),
            offset: 1,
        })
        .await;
    ensure!(
        mid == CheckAnswer::Key(Some(vec![KeyValue::Int(2)])),
        "{mid:?}"
    );

    // A barrier at or below the applied position is not run again: no snapshot.
    apply(&mut a, vec![entry(3, &barrier(9))]).await?;
    let replay = checks
        .answer(CheckAsk::Schema {
            id: 9,
            wait_ms: 100,
        })
        .await;
    ensure!(matches!(replay, CheckAnswer::Error(_)), "{replay:?}");

    // Released: no more answers for it; the other one still answers.
    ensure!(checks.answer(CheckAsk::Release { id: 7 }).await == CheckAnswer::Released);
    ensure!(matches!(checks.answer(sum(7)).await, CheckAnswer::Error(_)));
    ensure!(matches!(checks.answer(sum(8)).await, CheckAnswer::Sum(_)));
    let unknown = checks
        .answer(CheckAsk::Sum {
            id: 8,
            table: "nope".into(),
            range: KeyRange::default(),
        })
        .await;
    ensure!(matches!(unknown, CheckAnswer::Error(_)), "{unknown:?}");
    // A DDL after the barrier does not wait for the check (whose snapshot holds metadata
    // locks on `t`): the snapshot is ended first, and says why.
    let alter = ddl(TS, "ALTER TABLE t ADD COLUMN w INT NULL");
    tokio::time::timeout(
        Duration::from_secs(20),
        apply(&mut a, vec![entry(8, &alter)]),
    )
    .await
    .context("the DDL waited for the check snapshot")??;
    match checks.answer(sum(8)).await {
        CheckAnswer::Error(e) => ensure!(e.contains("run the check again"), "{e}"),
        other => anyhow::bail!("snapshot still answers after a DDL: {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), a.close())
        .await
        .context("close")??;
    Ok(())
}
