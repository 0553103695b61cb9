//! Group apply without savepoints, against real private servers: a deterministic failure
//! in the middle of a group undoes only its own statement; a lock held elsewhere makes the
//! applier roll the group back and retry all of it, so nothing is applied twice or lost,
//! and a lock held by the MySQL front end's local transaction is taken from it at once;
//! inserts,
//! updates and deletes carry the leader's timestamp without a `SET timestamp` of their own.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use mysql_async::prelude::Queryable;
use serde_json::json;
use wolfscale::apply::{MariaDbApplier, Outcome};
use wolfscale::command::{self, Command, Ident, Value};

use crate::apply_support::{applier, apply, ddl, entries, failed_code, insert, TS};
use crate::support::MariaDb;

const T: Duration = Duration::from_secs(10);

const ITEMS: &str = "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL, \
     at DATETIME(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB";

fn update(ts: u64, id: i64, v: &str) -> command::Entry {
    command::Entry {
        timestamp_us: ts,
        ids: vec![],
        command: Command::Update {
            table: Ident::table("items").expect("valid"),
            set: vec![(Ident::column("v").expect("valid"), Value::Text(v.into()))],
            where_key: vec![(Ident::column("id").expect("valid"), Value::Int(id))],
        },
    }
}

fn item(ts: u64, id: i64, v: &str) -> command::Entry {
    insert(
        ts,
        "items",
        &[("id", Value::Int(id)), ("v", Value::Text(v.into()))],
        vec![],
    )
}

/// One counter of `SHOW GLOBAL STATUS`.
async fn counter(conn: &mut mysql_async::Conn, name: &str) -> anyhow::Result<u64> {
    let row: Option<(String, u64)> = conn
        .exec_first("SHOW GLOBAL STATUS WHERE Variable_name = ?", (name,))
        .await?;
    row.map(|r| r.1)
        .with_context(|| format!("no status {name}"))
}

async fn items(a: &MariaDbApplier) -> anyhow::Result<Vec<Vec<serde_json::Value>>> {
    Ok(a.reader()
        .query("SELECT id, v, at FROM items ORDER BY id", &[], T)
        .await?
        .rows)
}

#[tokio::test]
async fn a_duplicate_mid_group_fails_alone_without_savepoints_or_set_timestamp(
) -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    apply(&mut a, entries(1, &[ddl(TS, ITEMS)])).await?;
    let mut stats = db.conn().await?;
    let savepoints = counter(&mut stats, "Com_savepoint").await?;
    let sets = counter(&mut stats, "Com_set_option").await?;
    let group = vec![
        item(TS + 1, 1, "one"),
        item(TS + 2, 2, "two"),
        item(TS + 3, 1, "dup"),
        item(TS + 4, 3, "three"),
        update(TS + 5, 2, "two'"),
        update(TS + 6, 3, "x".repeat(21).as_str()),
        item(TS + 7, 4, "four"),
    ];
    let out = apply(&mut a, entries(2, &group)).await?;
    ensure!(out.len() == 7, "{out:?}");
    for (i, o) in out.iter().enumerate() {
        let failed = matches!(i, 2 | 5);
        ensure!(
            failed != matches!(o, Outcome::Applied { .. }),
            "entry {i}: {o:?}"
        );
    }
    ensure!(failed_code(&out[2]) == Some(1062), "{:?}", out[2]);
    // Strict mode: a value too long for the column is a deterministic error too.
    ensure!(failed_code(&out[5]) == Some(1406), "{:?}", out[5]);
    ensure!(
        counter(&mut stats, "Com_savepoint").await? == savepoints,
        "single-statement entries need no savepoint"
    );
    ensure!(
        counter(&mut stats, "Com_set_option").await? == sets,
        "inserts and updates carry their timestamp: no SET statement of their own"
    );
    let rows = items(&a).await?;
    ensure!(
        rows == vec![
            vec![json!(1), json!("one"), json!("2024-11-26 04:44:26.123457")],
            vec![json!(2), json!("two'"), json!("2024-11-26 04:44:26.123458")],
            vec![
                json!(3),
                json!("three"),
                json!("2024-11-26 04:44:26.123460")
            ],
            vec![json!(4), json!("four"), json!("2024-11-26 04:44:26.123463")],
        ],
        "each row has its own entry's timestamp and the failures changed nothing: {rows:?}"
    );
    let (applied, _) = wolfscale::consensus::state_machine::Applier::applied_state(&mut a).await?;
    ensure!(applied.map(|l| l.index) == Some(8), "{applied:?}");
    a.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_lock_wait_timeout_retries_the_whole_group() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    // New sessions (the applier's) give up waiting for a lock after one second.
    db.conn()
        .await?
        .query_drop("SET GLOBAL innodb_lock_wait_timeout = 1")
        .await?;
    let mut a = applier(&db, "app").await?;
    apply(
        &mut a,
        entries(1, &[ddl(TS, ITEMS), item(TS + 1, 10, "ten")]),
    )
    .await?;
    let mut blocker = db.conn_to("app").await?;
    blocker.query_drop("START TRANSACTION").await?;
    blocker
        .query_drop("SELECT * FROM items WHERE id = 10 FOR UPDATE")
        .await?;
    let status = a.status();
    let group = vec![
        item(TS + 2, 1, "one"),
        update(TS + 3, 10, "changed"),
        item(TS + 4, 2, "two"),
    ];
    let task = tokio::spawn(async move {
        let out = apply(&mut a, entries(3, &group)).await;
        (a, out)
    });
    // At least one attempt times out on the lock (and, without a savepoint, leaves the
    // first insert in the transaction): then let the retry through.
    let started = Instant::now();
    while status.snapshot().retries == 0 {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the lock wait never timed out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    blocker.query_drop("ROLLBACK").await?;
    let (a, out) = tokio::time::timeout(Duration::from_secs(60), task).await??;
    let out = out?;
    ensure!(
        out.iter().all(|o| matches!(o, Outcome::Applied { .. })),
        "a retried group applies every entry once (a leftover first insert would fail \
         as a duplicate): {out:?}"
    );
    let rows: Vec<(serde_json::Value, serde_json::Value)> = items(&a)
        .await?
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    ensure!(
        rows == vec![
            (json!(1), json!("one")),
            (json!(2), json!("two")),
            (json!(10), json!("changed")),
        ],
        "{rows:?}"
    );
    ensure!(status.snapshot().applied_lsn == Some(5) && !status.snapshot().degraded);
    a.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_local_transaction_holding_rows_is_rolled_back_for_the_applier() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    apply(
        &mut a,
        entries(
            1,
            &[ddl(TS, ITEMS), item(TS + 1, 1, "a0"), item(TS + 2, 2, "b0")],
        ),
    )
    .await?;
    // The MySQL front end's local transaction: it wrote row 1 and holds its lock.
    let tentatives = a.reader().tentatives().clone();
    let mut local = tentatives.begin(false, TS, Duration::from_secs(30)).await?;
    local
        .write(
            "UPDATE items SET v = ? WHERE id = ?",
            &[Value::Text("local".into()), Value::Int(1)],
        )
        .await?;
    let mut reader = tentatives.begin(true, TS, Duration::from_secs(30)).await?;
    ensure!(tentatives.open_count() == 2);
    let status = a.status();
    // The applier does not wait for it: the transaction is killed and the group applies.
    let started = Instant::now();
    let out = apply(
        &mut a,
        entries(4, &[update(TS + 3, 1, "a1"), update(TS + 4, 2, "b1")]),
    )
    .await?;
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "the applier waited {:?}",
        started.elapsed()
    );
    ensure!(
        out.iter().all(|o| matches!(o, Outcome::Applied { .. })),
        "{out:?}"
    );
    ensure!(
        !status.snapshot().degraded,
        "a killed local transaction is not a fault: {:?}",
        status.snapshot()
    );
    ensure!(local.killed(), "the writer was not rolled back");
    ensure!(
        !reader.killed(),
        "a transaction that holds no row lock is left alone"
    );
    let e = local
        .write(
            "UPDATE items SET v = ? WHERE id = ?",
            &[Value::Text("again".into()), Value::Int(2)],
        )
        .await;
    ensure!(e.is_err(), "the killed transaction still ran a statement");
    // The reader still sees its snapshot, from before the group.
    let seen = reader
        .read(
            "SELECT v FROM items WHERE id = 1",
            &[],
            wolfscale::apply::Protocol::Binary,
            wolfscale::apply::ReadLimits::UNLIMITED,
            false,
        )
        .await?;
    ensure!(
        seen.rows == vec![vec![mysql_async::Value::Bytes(b"a0".to_vec())]],
        "{:?}",
        seen.rows
    );
    drop(local);
    reader.finish().await;
    let rows: Vec<(serde_json::Value, serde_json::Value)> = items(&a)
        .await?
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    ensure!(
        rows == vec![(json!(1), json!("a1")), (json!(2), json!("b1"))],
        "{rows:?}"
    );
    // A schema change rolls back every open local transaction, readers too.
    let reader = tentatives.begin(true, TS, Duration::from_secs(30)).await?;
    apply(
        &mut a,
        entries(6, &[ddl(TS + 5, "ALTER TABLE items ADD COLUMN w INT NULL")]),
    )
    .await?;
    ensure!(reader.killed(), "the reader kept its metadata lock");
    drop(reader);
    a.close().await?;
    Ok(())
}

fn batch_entry(index: u64, commands: &[command::Entry]) -> wolfscale::consensus::Entry {
    wolfscale::consensus::Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::Normal(wolfscale::consensus::Requests(
            commands
                .iter()
                .map(|c| wolfscale::consensus::Request {
                    payload: c.encode(),
                })
                .collect(),
        )),
    }
}

#[tokio::test]
async fn a_batched_entry_applies_its_requests_in_order_and_answers_each() -> anyhow::Result<()> {
    use wolfscale::consensus::state_machine::Applier;
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    apply(&mut a, entries(1, &[ddl(TS, ITEMS)])).await?;
    let batch = batch_entry(
        2,
        &[
            item(TS + 1, 1, "one"),
            item(TS + 2, 1, "dup"),
            item(TS + 3, 2, "two"),
            update(TS + 4, 1, "one'"),
        ],
    );
    let single = entries(3, &[item(TS + 5, 3, "three")]);
    let mut both = vec![batch.clone()];
    both.extend(single);
    let responses = a.apply(both).await?;
    ensure!(
        responses.len() == 2,
        "one Responses per entry: {responses:?}"
    );
    ensure!(responses[0].0.len() == 4 && responses[1].0.len() == 1);
    let outcomes: Vec<Outcome> = responses[0]
        .0
        .iter()
        .map(Outcome::decode)
        .collect::<Result<_, _>>()?;
    ensure!(
        outcomes.iter().all(|o| o.lsn() == 2),
        "every request of the entry has its LSN: {outcomes:?}"
    );
    ensure!(
        matches!(outcomes[0], Outcome::Applied { .. })
            && failed_code(&outcomes[1]) == Some(1062)
            && matches!(outcomes[2], Outcome::Applied { .. })
            && matches!(
                outcomes[3],
                Outcome::Applied {
                    affected_rows: 1,
                    ..
                }
            ),
        "{outcomes:?}"
    );
    let rows = items(&a).await?;
    ensure!(
        rows == vec![
            vec![json!(1), json!("one'"), json!("2024-11-26 04:44:26.123457")],
            vec![json!(2), json!("two"), json!("2024-11-26 04:44:26.123459")],
            vec![
                json!(3),
                json!("three"),
                json!("2024-11-26 04:44:26.123461")
            ],
        ],
        "{rows:?}"
    );
    // Handed again (a restart before openraft saw the answer), it changes nothing.
    let again = a.apply(vec![batch]).await?;
    let again: Vec<Outcome> = again[0]
        .0
        .iter()
        .map(Outcome::decode)
        .collect::<Result<_, _>>()?;
    ensure!(
        again == vec![Outcome::AlreadyApplied { lsn: 2 }; 4],
        "{again:?}"
    );
    // DDL must apply alone: an entry that mixes it with other requests stops the node.
    let mixed = batch_entry(
        4,
        &[item(TS + 6, 4, "four"), ddl(TS + 6, "DROP TABLE items")],
    );
    let err = a.apply(vec![mixed]).await;
    ensure!(err.is_err(), "{err:?}");
    ensure!(items(&a).await?.len() == 3, "the mixed entry ran nothing");
    a.close().await?;
    Ok(())
}

#[tokio::test]
async fn an_entry_larger_than_a_group_still_applies_in_one_transaction() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    apply(&mut a, entries(1, &[ddl(TS, ITEMS)])).await?;
    let n = wolfscale::apply::MAX_GROUP + 10;
    let commands: Vec<command::Entry> = (0..n)
        .map(|i| item(TS + 1 + i as u64, i as i64, "x"))
        .collect();
    let before = a.status().snapshot().batches;
    let out = apply(
        &mut a,
        vec![batch_entry(2, &commands), batch_entry(3, &commands[..1])],
    )
    .await?;
    ensure!(out.len() == n + 1, "{}", out.len());
    ensure!(out[..n]
        .iter()
        .all(|o| matches!(o, Outcome::Applied { lsn: 2, .. })));
    ensure!(failed_code(&out[n]) == Some(1062), "{:?}", out[n]);
    let after = a.status().snapshot().batches;
    ensure!(
        after - before == 2,
        "the big entry is one transaction, the next entry another: {before} -> {after}"
    );
    a.close().await?;
    Ok(())
}
