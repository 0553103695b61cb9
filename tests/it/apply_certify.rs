//! Interactive transactions certified where they are applied (`Command::Certified`),
//! against real private servers: a transaction recorded on one server (the origin node's
//! — run for real, its observations kept, then rolled back, as the MySQL front end does)
//! commits on a replica when nothing it observed changed before its turn in the log, and
//! is rolled back there as a 1213 conflict when something did (a lost update cannot
//! happen); generated ids, NOW(), statement errors and savepoints replay exactly.

use anyhow::{ensure, Context};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use wolfscale::apply::{certify::CONFLICT_CODE, rows_digest, MariaDbApplier, Outcome};
use wolfscale::command::{self, prepare_certified, CertifiedStep, Observed, Value};
use wolfscale::sql::{self, StatementKind};

use crate::apply_support::{applier, apply, ddl, entries, failed_code, sql as sql_entry, TS};
use crate::support::MariaDb;

const ACCOUNTS: &str = "CREATE TABLE acct (id INT PRIMARY KEY, balance INT NOT NULL) ENGINE=InnoDB";
const NOTES: &str =
    "CREATE TABLE note (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(20) NOT NULL UNIQUE, \
     at DATETIME(6) NOT NULL) ENGINE=InnoDB";

/// Runs `statements` in a transaction on `conn` under `SET timestamp = ts`, the way the
/// front end runs a client's transaction, records what each one returned, and rolls back.
async fn record(
    conn: &mut Conn,
    ts_us: u64,
    statements: &[(&str, Vec<Value>)],
) -> anyhow::Result<Vec<CertifiedStep>> {
    for s in sql::SESSION_SETUP {
        conn.query_drop(*s).await?;
    }
    conn.query_drop(sql::set_timestamp(ts_us)).await?;
    conn.query_drop("START TRANSACTION").await?;
    let mut steps = Vec::new();
    for (text, params) in statements {
        let bound: Vec<mysql_async::Value> =
            params.iter().map(wolfscale::command::to_mysql).collect();
        let read = matches!(sql::statement_kind(text), Ok(StatementKind::Read));
        let observed = if read {
            match conn.exec::<Row, _, _>(*text, bound).await {
                Ok(rows) => {
                    let (count, digest) = rows_digest(&rows);
                    Observed::Rows { count, digest }
                }
                Err(mysql_async::Error::Server(e)) => Observed::Failed { code: e.code },
                Err(e) => return Err(e.into()),
            }
        } else {
            match conn.exec_drop(*text, bound).await {
                Ok(()) => Observed::Changed {
                    affected_rows: conn.affected_rows(),
                    insert_id: conn.last_insert_id().unwrap_or(0),
                },
                Err(mysql_async::Error::Server(e)) => Observed::Failed { code: e.code },
                Err(e) => return Err(e.into()),
            }
        };
        steps.push(CertifiedStep {
            sql: text.to_string(),
            params: params.clone(),
            observed,
        });
    }
    conn.query_drop("ROLLBACK").await?;
    Ok(steps)
}

/// One row inserted with the table's first id.
const FIRST_ROW: Observed = Observed::Changed {
    affected_rows: 1,
    insert_id: 1,
};

/// A plain `/write/sql` insert of a note.
fn note(body: &str) -> command::Entry {
    sql_entry(
        TS,
        &[(
            "INSERT INTO note (body, at) VALUES (?, NOW())",
            vec![Value::Text(body.into())],
        )],
        true,
    )
}

fn certified(steps: Vec<CertifiedStep>, session_ts: u64) -> anyhow::Result<command::Entry> {
    Ok(prepare_certified(steps, session_ts, TS + 1_000_000)?)
}

async fn balances(conn: &mut Conn) -> anyhow::Result<Vec<(i32, i32)>> {
    Ok(conn
        .query("SELECT id, balance FROM acct ORDER BY id")
        .await?)
}

/// A read-modify-write of account `from` → `to` by `amount`, as a client computes it:
/// the new balances are values it decided from what it read.
async fn transfer(
    conn: &mut Conn,
    from: i32,
    to: i32,
    amount: i32,
) -> anyhow::Result<Vec<CertifiedStep>> {
    let (a,): (i32,) = conn
        .exec_first("SELECT balance FROM acct WHERE id = ?", (from,))
        .await?
        .context("from account")?;
    let (b,): (i32,) = conn
        .exec_first("SELECT balance FROM acct WHERE id = ?", (to,))
        .await?
        .context("to account")?;
    record(
        conn,
        TS,
        &[
            (
                "SELECT balance FROM acct WHERE id = ? FOR UPDATE",
                vec![Value::Int(from.into())],
            ),
            (
                "SELECT balance FROM acct WHERE id = ? FOR UPDATE",
                vec![Value::Int(to.into())],
            ),
            (
                "UPDATE acct SET balance = ? WHERE id = ?",
                vec![Value::Int((a - amount).into()), Value::Int(from.into())],
            ),
            (
                "UPDATE acct SET balance = ? WHERE id = ?",
                vec![Value::Int((b + amount).into()), Value::Int(to.into())],
            ),
        ],
    )
    .await
}

/// Two servers holding the same accounts: the origin, where clients run transactions,
/// and a replica, where they are certified. Returns the replica's applier and a
/// connection to each.
async fn setup() -> anyhow::Result<(Vec<MariaDb>, MariaDbApplier, Conn, Conn)> {
    let dbs = MariaDb::start_many(2).await?;
    let seed = sql_entry(
        TS,
        &[(
            "INSERT INTO acct (id, balance) VALUES (1, 100), (2, 100), (3, 100)",
            vec![],
        )],
        true,
    );
    let mut appliers = Vec::new();
    for db in &dbs {
        let mut a = applier(db, "app").await?;
        apply(
            &mut a,
            entries(1, &[ddl(TS, ACCOUNTS), ddl(TS, NOTES), seed.clone()]),
        )
        .await?;
        appliers.push(a);
    }
    let origin = dbs[0].conn_to("app").await?;
    let replica = dbs[1].conn_to("app").await?;
    let a = appliers.pop().context("replica applier")?;
    Ok((dbs, a, origin, replica))
}

#[tokio::test]
async fn of_two_transfers_that_read_the_same_balance_one_commits_and_one_conflicts(
) -> anyhow::Result<()> {
    let (_dbs, mut a, mut origin, mut conn) = setup().await?;
    // Both clients read balance 100 of account 1 before either committed.
    let first = transfer(&mut origin, 1, 2, 30).await?;
    let second = transfer(&mut origin, 1, 3, 50).await?;
    let out = apply(
        &mut a,
        entries(4, &[certified(first, TS)?, certified(second, TS)?]),
    )
    .await?;
    ensure!(
        matches!(
            out[0],
            Outcome::Applied {
                affected_rows: 2,
                ..
            }
        ),
        "{:?}",
        out[0]
    );
    ensure!(failed_code(&out[1]) == Some(CONFLICT_CODE), "{:?}", out[1]);
    let Outcome::Failed { failure, .. } = &out[1] else {
        unreachable!()
    };
    ensure!(
        failure.statement == 0,
        "the first read differs: {failure:?}"
    );
    ensure!(
        failure.message.contains("try restarting transaction"),
        "{failure:?}"
    );
    // The lost update did not happen: exactly the first transfer took effect, the total
    // is unchanged, and the conflicting transaction left nothing behind.
    ensure!(
        balances(&mut conn).await? == vec![(1, 70), (2, 130), (3, 100)],
        "{:?}",
        balances(&mut conn).await?
    );
    // The digest ignores row order (nodes may return rows in another order without ORDER
    // BY) but not a changed value.
    let up: Vec<Row> = conn
        .exec("SELECT id, balance FROM acct ORDER BY id", ())
        .await?;
    let down: Vec<Row> = conn
        .exec("SELECT id, balance FROM acct ORDER BY id DESC", ())
        .await?;
    let other: Vec<Row> = conn.exec("SELECT id, balance + 1 FROM acct", ()).await?;
    ensure!(rows_digest(&up) == rows_digest(&down));
    ensure!(rows_digest(&up).1 != rows_digest(&other).1);
    // Retried on the new state, the second transfer commits.
    let retry = transfer(&mut conn, 1, 3, 50).await?;
    let out = apply(&mut a, entries(6, &[certified(retry, TS)?])).await?;
    ensure!(matches!(out[0], Outcome::Applied { .. }), "{:?}", out[0]);
    ensure!(balances(&mut conn).await? == vec![(1, 20), (2, 130), (3, 150)]);
    Ok(())
}

#[tokio::test]
async fn generated_ids_now_errors_and_savepoints_replay_exactly() -> anyhow::Result<()> {
    let (_dbs, mut a, mut origin, mut conn) = setup().await?;
    let session_ts = TS + 42;
    let steps = record(
        &mut origin,
        session_ts,
        &[
            (
                "INSERT INTO note (body, at) VALUES (?, NOW(6))",
                vec![Value::Text("a".into())],
            ),
            ("SAVEPOINT s1", vec![]),
            (
                "INSERT INTO note (body, at) VALUES (?, NOW(6))",
                vec![Value::Text("b".into())],
            ),
            ("ROLLBACK TO SAVEPOINT s1", vec![]),
            // A duplicate the client saw fail; the transaction went on.
            (
                "INSERT INTO note (body, at) VALUES (?, NOW(6))",
                vec![Value::Text("a".into())],
            ),
            (
                "INSERT INTO note (body, at) VALUES (?, NOW(6))",
                vec![Value::Text("c".into())],
            ),
            (
                "SELECT id, body, at, NOW(6) FROM note WHERE id > ? ORDER BY id",
                vec![Value::Int(0)],
            ),
        ],
    )
    .await?;
    ensure!(steps[0].observed == FIRST_ROW, "{:?}", steps[0]);
    ensure!(
        steps[4].observed == Observed::Failed { code: 1062 },
        "{:?}",
        steps[4]
    );
    let out = apply(&mut a, entries(4, &[certified(steps, session_ts)?])).await?;
    ensure!(
        matches!(
            out[0],
            Outcome::Applied {
                // What the client was told: three inserts (one undone by its savepoint).
                affected_rows: 3,
                last_insert_id: Some(4),
                ..
            }
        ),
        "{:?}",
        out[0]
    );
    let rows: Vec<(i64, String, String)> = conn
        .query("SELECT id, body, CAST(at AS CHAR) FROM note ORDER BY id")
        .await?;
    ensure!(rows.len() == 2, "{rows:?}");
    ensure!(rows[0].1 == "a" && rows[1].1 == "c", "{rows:?}");
    ensure!(
        rows.iter().all(|r| r.2 == "2024-11-26 04:44:26.123498"),
        "NOW() is the client's session time: {rows:?}"
    );
    // The ids are those the client was told (the origin burnt 2 and 3 on the insert its
    // savepoint undid and on the duplicate), forced on replay.
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    ensure!(ids == vec![1, 4], "{ids:?}");
    Ok(())
}

#[tokio::test]
async fn an_id_taken_in_between_is_a_conflict_and_the_forced_id_does_not_leak() -> anyhow::Result<()>
{
    let (_dbs, mut a, mut origin, mut conn) = setup().await?;
    let steps = record(
        &mut origin,
        TS,
        &[(
            "INSERT INTO note (body, at) VALUES (?, NOW())",
            vec![Value::Text("mine".into())],
        )],
    )
    .await?;
    ensure!(steps[0].observed == FIRST_ROW, "{:?}", steps[0]);
    // Another writer's insert commits first and takes id 1.
    let other = note("theirs");
    let later = note("later");
    let out = apply(&mut a, entries(4, &[other, certified(steps, TS)?, later])).await?;
    ensure!(matches!(out[0], Outcome::Applied { .. }), "{:?}", out[0]);
    ensure!(failed_code(&out[1]) == Some(CONFLICT_CODE), "{:?}", out[1]);
    ensure!(
        matches!(
            out[2],
            Outcome::Applied {
                last_insert_id: Some(2),
                ..
            }
        ),
        "the next insert takes the table's next id, not a forced one: {:?}",
        out[2]
    );
    let rows: Vec<(i64, String)> = conn.query("SELECT id, body FROM note ORDER BY id").await?;
    ensure!(
        rows == vec![(1, "theirs".to_string()), (2, "later".to_string())],
        "{rows:?}"
    );
    Ok(())
}
