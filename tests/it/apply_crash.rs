//! The applier through failures of MariaDB: kill -9 in the middle of a long apply loop
//! loses and repeats nothing, a stopped server makes the applier DEGRADED until it comes
//! back, a dump carries its own applied position to another server, and AUTO_INCREMENT
//! ids stay the same on every node through rolled-back attempts and restored dumps.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::json;
use wolfscale::apply::Outcome;
use wolfscale::command::Value;
use wolfscale::consensus::state_machine::Applier;

use crate::apply_support::{applier, apply, ddl, entries, insert, sql, TS};
use crate::support::MariaDb;

const T: Duration = Duration::from_secs(10);

fn counter_setup() -> Vec<wolfscale::command::Entry> {
    vec![
        ddl(
            TS,
            "CREATE TABLE counter (id INT PRIMARY KEY, c BIGINT NOT NULL) ENGINE=InnoDB",
        ),
        ddl(
            TS,
            "CREATE TABLE seen (lsn BIGINT PRIMARY KEY) ENGINE=InnoDB",
        ),
        sql(TS, &[("INSERT INTO counter VALUES (1, 0)", vec![])], true),
    ]
}

/// Entry `lsn` bumps the counter and records its own LSN: a double apply shows as a
/// counter above the entry count (or a duplicate-key failure).
fn bump(lsn: u64) -> wolfscale::command::Entry {
    sql(
        TS + lsn,
        &[
            ("UPDATE counter SET c = c + 1 WHERE id = 1", vec![]),
            ("INSERT INTO seen (lsn) VALUES (?)", vec![Value::UInt(lsn)]),
        ],
        true,
    )
}

#[tokio::test]
async fn kill9_of_mariadb_mid_apply_loses_and_repeats_nothing() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    apply(&mut a, entries(1, &counter_setup())).await?;
    let status = a.status();

    const N: u64 = 3000;
    let first = 4;
    let last = first + N - 1;
    let killer = tokio::spawn(async move {
        let mut db = db;
        let mut kills = 0;
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            db.kill9().await?;
            kills += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            db.restart().await?;
        }
        anyhow::Ok((db, kills))
    });
    let mut next = first;
    let mut batch = 1u64;
    let mut outcomes = Vec::new();
    while next <= last {
        let n = batch.min(last - next + 1);
        let cmds: Vec<_> = (next..next + n).map(bump).collect();
        outcomes.extend(apply(&mut a, entries(next, &cmds)).await?);
        next += n;
        batch = batch % 37 + 1;
    }
    let (db, kills) = killer.await??;
    ensure!(kills == 3);
    ensure!(
        status.snapshot().retries > 0,
        "no kill hit an apply: {:?}",
        status.snapshot()
    );
    ensure!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Applied { .. } | Outcome::AlreadyApplied { .. })),
        "{:?}",
        outcomes
            .iter()
            .find(|o| !matches!(o, Outcome::Applied { .. }))
    );

    // A fresh applier, as after a node restart: the stored position is the last entry.
    let mut b = applier(&db, "app").await?;
    let (pos, _) = b.applied_state().await?;
    ensure!(pos.map(|l| l.index) == Some(last), "{pos:?}");
    let r = b.reader();
    let counter = r.query("SELECT c FROM counter", &[], T).await?;
    ensure!(
        counter.rows == [[json!(N)]],
        "counter {:?}, expected {N}",
        counter.rows
    );
    let seen = r
        .query("SELECT COUNT(*), MIN(lsn), MAX(lsn) FROM seen", &[], T)
        .await?;
    ensure!(
        seen.rows == [[json!(N), json!(first), json!(last)]],
        "{:?}",
        seen.rows
    );
    // openraft re-sending the tail changes nothing.
    let tail: Vec<_> = (last - 9..=last).map(bump).collect();
    let again = apply(&mut b, entries(last - 9, &tail)).await?;
    ensure!(
        again
            .iter()
            .all(|o| matches!(o, Outcome::AlreadyApplied { .. })),
        "{again:?}"
    );
    Ok(())
}

#[tokio::test]
async fn stopped_mariadb_degrades_the_applier_until_it_returns() -> anyhow::Result<()> {
    let mut db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    apply(&mut a, entries(1, &counter_setup())).await?;
    let status = a.status();
    ensure!(!status.is_degraded() && status.applied_lsn() == Some(3));

    db.stop().await?;
    let cmds: Vec<_> = (4..14).map(bump).collect();
    let task = tokio::spawn(async move {
        let out = a.apply_entries(entries(4, &cmds)).await;
        (a, out)
    });
    let started = Instant::now();
    while !status.is_degraded() {
        ensure!(
            started.elapsed() < T,
            "never degraded: {:?}",
            status.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(!task.is_finished(), "apply returned while MariaDB was down");
    let snap = status.snapshot();
    ensure!(snap.degraded && snap.applied_lsn == Some(3), "{snap:?}");
    ensure!(snap.last_error.is_some(), "{snap:?}");
    ensure!(status
        .wait_applied(4, Duration::from_millis(50))
        .await
        .is_err());

    db.restart().await?;
    let (mut a, out) = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .context("apply did not resume")??;
    let out = out?;
    ensure!(
        out.len() == 10 && out.iter().all(|o| matches!(o, Outcome::Applied { .. })),
        "{out:?}"
    );
    let snap = status.snapshot();
    ensure!(
        !snap.degraded && snap.applied_lsn == Some(13) && snap.retries > 0,
        "{snap:?}"
    );
    let counter = a.reader().query("SELECT c FROM counter", &[], T).await?;
    ensure!(counter.rows == [[json!(10)]], "{:?}", counter.rows);
    let (pos, _) = a.applied_state().await?;
    ensure!(pos.map(|l| l.index) == Some(13), "{pos:?}");
    Ok(())
}

#[tokio::test]
async fn a_dump_carries_its_applied_position_to_another_server() -> anyhow::Result<()> {
    let dbs = MariaDb::start_many(2).await?;
    let (src, dst) = (&dbs[0], &dbs[1]);
    let mut a = applier(src, "app").await?;
    let mut cmds = counter_setup();
    cmds.extend((4..=20).map(bump));
    cmds.push(insert(TS, "seen", &[("lsn", Value::Int(1000))], vec![]));
    apply(&mut a, entries(1, &cmds)).await?;
    let (src_pos, src_members) = a.applied_state().await?;
    ensure!(src_pos.map(|l| l.index) == Some(21), "{src_pos:?}");

    let dir = tempfile::tempdir()?;
    let dump = dir.path().join("app.sql");
    let dumped = src
        .run_tool("mariadb-dump", &["--single-transaction", "app"])
        .await?;
    std::fs::write(&dump, dumped)?;
    dst.create_database("app").await?;
    let source = format!("source {}", dump.display());
    dst.run_tool("mariadb", &["--database=app", "--execute", &source])
        .await?;

    let text = std::fs::read_to_string(&dump)?;
    ensure!(
        text.contains("INSERT INTO `_wolfscale` VALUES"),
        "the dump lacks the position row:\n{text}"
    );
    let mut b = applier(dst, "app").await?;
    let (dst_pos, dst_members) = b.applied_state().await?;
    ensure!(
        dst_pos == src_pos,
        "restored position {dst_pos:?}, dumped {src_pos:?}"
    );
    ensure!(dst_members == src_members);
    ensure!(b.status().applied_lsn() == Some(21));
    // The log from the start, as a joining node receives it: only what follows the dump runs.
    let mut more = cmds.clone();
    more.extend((22..=25).map(bump));
    let out_a = apply(&mut a, entries(22, &more[21..])).await?;
    let out_b = apply(&mut b, entries(1, &more)).await?;
    ensure!(
        out_b[..21]
            .iter()
            .all(|o| matches!(o, Outcome::AlreadyApplied { .. })),
        "{out_b:?}"
    );
    ensure!(out_b[21..] == out_a[..], "{out_a:?} vs {:?}", &out_b[21..]);
    for q in ["SELECT c FROM counter", "SELECT lsn FROM seen ORDER BY lsn"] {
        let x = a.reader().query(q, &[], T).await?;
        let y = b.reader().query(q, &[], T).await?;
        ensure!(x == y, "{q}: {x:?} vs {y:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_not_applied_again() -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    apply(&mut a, entries(1, &counter_setup())).await?;
    // Entry 4 committed, position included, but the applier never heard back: its
    // connection dies before it learns anything.
    let mut conn = db.conn_to("app").await?;
    conn.query_drop("UPDATE counter SET c = c + 1 WHERE id = 1")
        .await?;
    conn.query_drop("INSERT INTO seen (lsn) VALUES (4)").await?;
    conn.query_drop("UPDATE _wolfscale SET applied_index = 4 WHERE id = 1")
        .await?;
    let ids: Vec<u64> = conn
        .query("SELECT id FROM information_schema.processlist WHERE db = 'app' AND id <> CONNECTION_ID()")
        .await?;
    ensure!(!ids.is_empty(), "the applier holds no connection");
    for id in ids {
        conn.exec_drop("KILL CONNECTION ?", (id,)).await?;
    }
    let out = apply(&mut a, entries(4, &[bump(4), bump(5)])).await?;
    ensure!(
        out == [
            Outcome::AlreadyApplied { lsn: 4 },
            Outcome::Applied {
                lsn: 5,
                affected_rows: 2,
                last_insert_id: None,
                ids: vec![]
            }
        ],
        "{out:?}"
    );
    ensure!(
        a.status().snapshot().retries > 0,
        "the dead connection was not noticed"
    );
    let c: Option<u64> = conn.query_first("SELECT c FROM counter").await?;
    ensure!(c == Some(2), "counter {c:?}: entry 4 applied twice");
    conn.disconnect().await?;
    Ok(())
}

/// Takes `n` AUTO_INCREMENT values of `ids` in a transaction that rolls back, as an apply
/// attempt interrupted between apply and commit does.
async fn rolled_back_attempt(db: &MariaDb, n: usize) -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    let mut conn = db.conn_to("app").await?;
    conn.query_drop("START TRANSACTION").await?;
    for _ in 0..n {
        conn.query_drop("INSERT INTO ids (k) VALUES (-1)").await?;
    }
    conn.query_drop("ROLLBACK").await?;
    conn.disconnect().await?;
    Ok(())
}

fn inserted_id(o: &Outcome) -> Option<u64> {
    match o {
        Outcome::Applied { last_insert_id, .. } => *last_insert_id,
        _ => None,
    }
}

#[tokio::test]
async fn rolled_back_attempts_and_restored_dumps_keep_auto_increment_ids_aligned(
) -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    let dbs = MariaDb::start_many(2).await?;
    let (src, dst) = (&dbs[0], &dbs[1]);
    let k = |k: i64| insert(TS, "ids", &[("k", Value::Int(k))], vec![]);
    let mut setup = vec![ddl(
        TS,
        "CREATE TABLE ids (id BIGINT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL) ENGINE=InnoDB",
    )];
    setup.extend((1..=3).map(k));
    let mut a = applier(src, "app").await?;
    apply(&mut a, entries(1, &setup)).await?;

    // A node restart after an attempt that took ids 4 and 5 and never committed.
    rolled_back_attempt(src, 2).await?;
    drop(a);
    let mut a = applier(src, "app").await?;
    let out = apply(&mut a, entries(5, &[k(4)])).await?;
    ensure!(inserted_id(&out[0]) == Some(4), "{out:?}");

    // A transient failure on the same applier (its connection killed) after another one.
    rolled_back_attempt(src, 3).await?;
    let mut conn = src.conn_to("app").await?;
    let ids: Vec<u64> = conn
        .query("SELECT id FROM information_schema.processlist WHERE db = 'app' AND id <> CONNECTION_ID()")
        .await?;
    for id in ids {
        conn.exec_drop("KILL CONNECTION ?", (id,)).await?;
    }
    conn.disconnect().await?;
    let out = apply(&mut a, entries(6, &[k(5)])).await?;
    ensure!(inserted_id(&out[0]) == Some(5), "{out:?}");
    ensure!(
        a.status().snapshot().retries > 0,
        "the kill was not noticed"
    );

    // A dump whose CREATE TABLE carries a counter read after its snapshot (mariadb-dump
    // reads it outside the transaction): the restored node is set back to the position's.
    let dumped = src
        .run_tool("mariadb-dump", &["--single-transaction", "app"])
        .await?;
    let text = String::from_utf8(dumped)?;
    // InnoDB's own counter there is past the rolled-back attempts' ids; the applier's
    // counters (stored in `_wolfscale`, dumped with it) are what ids come from.
    let at = text
        .find(") ENGINE=InnoDB AUTO_INCREMENT=")
        .with_context(|| format!("no AUTO_INCREMENT in the dump: {text}"))?;
    let digits = &text[at + ") ENGINE=InnoDB AUTO_INCREMENT=".len()..];
    let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
    ensure!(n.parse::<u64>()? >= 6, "{text}");
    let text = text.replace(&format!("AUTO_INCREMENT={n}"), "AUTO_INCREMENT=1000");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("app.sql");
    std::fs::write(&file, text)?;
    dst.create_database("app").await?;
    let source = format!("source {}", file.display());
    dst.run_tool("mariadb", &["--database=app", "--execute", &source])
        .await?;
    let mut b = applier(dst, "app").await?;
    let out_a = apply(&mut a, entries(7, &[k(6)])).await?;
    let out_b = apply(&mut b, entries(7, &[k(6)])).await?;
    ensure!(inserted_id(&out_a[0]) == Some(6), "{out_a:?}");
    ensure!(out_a == out_b, "{out_a:?} vs {out_b:?}");
    let q = "SELECT id, k FROM ids ORDER BY id";
    let x = a.reader().query(q, &[], T).await?;
    let y = b.reader().query(q, &[], T).await?;
    ensure!(x == y, "{x:?} vs {y:?}");
    Ok(())
}
