//! The MariaDB applier against real private servers: outcomes of every command kind,
//! exactly-once re-application, DDL crash idempotency, determinism across two servers,
//! hostile names and values, and the error codes real statements produce.

use std::time::Duration;

use anyhow::{ensure, Context};
use mysql_async::prelude::Queryable;
use serde_json::json;
use wolfscale::apply::{FailureClass, Outcome, StatementOutcome};
use wolfscale::command::Value;
use wolfscale::consensus::state_machine::Applier;
use wolfscale::sql::{self, quote_ident};

use crate::apply_support::{
    applier, apply, blank, ddl, entries, entry, failed_code, insert, sql, TS,
};
use crate::support::MariaDb;

const T: Duration = Duration::from_secs(10);

const USERS: &str = "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, \
     name VARCHAR(20) NOT NULL UNIQUE, sid BIGINT UNSIGNED NULL, \
     created TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB";

#[tokio::test]
async fn commands_apply_with_their_outcomes_and_only_once() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    let (none, _) = a.applied_state().await?;
    ensure!(none.is_none(), "fresh database has position {none:?}");
    let status = a.status();

    let cmds = vec![
        ddl(TS, USERS),
        insert(
            TS + 1,
            "users",
            &[
                ("name", Value::Text("ann".into())),
                ("sid", Value::UInt(77)),
            ],
            vec![77],
        ),
        insert(
            TS + 2,
            "users",
            &[("name", Value::Text("bob".into()))],
            vec![],
        ),
        insert(
            TS + 3,
            "users",
            &[("name", Value::Text("ann".into()))],
            vec![],
        ),
        sql(
            TS + 4,
            &[
                (
                    "UPDATE users SET name = ? WHERE id = ?",
                    vec![Value::Text("bea".into()), Value::Int(2)],
                ),
                (
                    "INSERT INTO users (name) VALUES (?)",
                    vec![Value::Text("ann".into())],
                ),
            ],
            true,
        ),
        sql(
            TS + 5,
            &[
                (
                    "INSERT INTO users (name) VALUES (?)",
                    vec![Value::Text("cy".into())],
                ),
                (
                    "INSERT INTO users (name) VALUES (?)",
                    vec![Value::Text("ann".into())],
                ),
                (
                    "DELETE FROM users WHERE name = ?",
                    vec![Value::Text("bob".into())],
                ),
            ],
            false,
        ),
    ];
    let mut es = vec![blank(1)];
    es.extend(entries(2, &cmds));
    let out = apply(&mut a, es.clone()).await?;
    ensure!(out.len() == 7, "{out:?}");
    ensure!(out[0] == Outcome::Internal { lsn: 1 }, "{:?}", out[0]);
    ensure!(
        matches!(out[1], Outcome::Applied { lsn: 2, .. }),
        "ddl: {:?}",
        out[1]
    );
    ensure!(
        out[2]
            == Outcome::Applied {
                lsn: 3,
                affected_rows: 1,
                last_insert_id: Some(1),
                ids: vec![77]
            },
        "{:?}",
        out[2]
    );
    ensure!(
        out[3]
            == Outcome::Applied {
                lsn: 4,
                affected_rows: 1,
                last_insert_id: Some(2),
                ids: vec![]
            },
        "{:?}",
        out[3]
    );
    match &out[4] {
        Outcome::Failed {
            lsn: 5, failure, ..
        } => ensure!(
            failure.code == 1062
                && failure.class == FailureClass::Conflict
                && failure.statement == 0,
            "{failure:?}"
        ),
        other => anyhow::bail!("duplicate insert gave {other:?}"),
    }
    match &out[5] {
        Outcome::Failed {
            lsn: 6, failure, ..
        } => {
            ensure!(
                failure.code == 1062 && failure.statement == 1,
                "{failure:?}"
            )
        }
        other => anyhow::bail!("all-or-nothing batch gave {other:?}"),
    }
    match &out[6] {
        Outcome::Batch {
            lsn: 7, statements, ..
        } => {
            ensure!(statements.len() == 3, "{statements:?}");
            ensure!(
                matches!(
                    statements[0],
                    StatementOutcome::Done {
                        affected_rows: 1,
                        last_insert_id: Some(_)
                    }
                ),
                "{:?}",
                statements[0]
            );
            ensure!(
                matches!(&statements[1], StatementOutcome::Failed(f) if f.code == 1062 && f.statement == 1),
                "{:?}",
                statements[1]
            );
            ensure!(
                statements[2]
                    == StatementOutcome::Done {
                        affected_rows: 1,
                        last_insert_id: None
                    },
                "{:?}",
                statements[2]
            );
        }
        other => anyhow::bail!("batch gave {other:?}"),
    }

    // The all-or-nothing batch left "bob" unrenamed (then deleted by the last batch).
    let rows = a
        .reader()
        .query(
            "SELECT id, name, sid, created FROM users ORDER BY id",
            &[],
            T,
        )
        .await?;
    ensure!(
        rows.columns == ["id", "name", "sid", "created"],
        "{:?}",
        rows.columns
    );
    let names: Vec<_> = rows.rows.iter().map(|r| r[1].clone()).collect();
    ensure!(names == [json!("ann"), json!("cy")], "{names:?}");
    ensure!(rows.rows[0][2] == json!(77), "{:?}", rows.rows[0]);
    ensure!(
        rows.rows[0][3] == json!("2024-11-26 04:44:26.123457"),
        "created takes the entry's timestamp: {:?}",
        rows.rows[0][3]
    );

    let (pos, _) = a.applied_state().await?;
    ensure!(pos.map(|l| l.index) == Some(7), "{pos:?}");
    ensure!(status.applied_lsn() == Some(7) && !status.is_degraded());
    ensure!(status.wait_applied(7, T).await == Ok(7));

    // openraft may re-send entries after a restart: nothing runs twice.
    let again = apply(&mut a, es.clone()).await?;
    ensure!(
        again
            .iter()
            .enumerate()
            .all(|(i, o)| *o == Outcome::AlreadyApplied { lsn: i as u64 + 1 }),
        "{again:?}"
    );
    let mut b = applier(&db, "app").await?;
    let mut tail = es[5..].to_vec();
    tail.push(entry(
        8,
        &insert(
            TS + 8,
            "users",
            &[("name", Value::Text("dee".into()))],
            vec![],
        ),
    ));
    let out = apply(&mut b, tail).await?;
    ensure!(
        out[..2]
            == [
                Outcome::AlreadyApplied { lsn: 6 },
                Outcome::AlreadyApplied { lsn: 7 }
            ]
            && matches!(out[2], Outcome::Applied { lsn: 8, .. }),
        "a second applier resumes after the stored position: {out:?}"
    );
    let count = b
        .reader()
        .query("SELECT COUNT(*) FROM users", &[], T)
        .await?;
    ensure!(count.rows == [[json!(3)]], "{:?}", count.rows);

    // Reads are checked and read-only.
    ensure!(b.reader().query("DELETE FROM users", &[], T).await.is_err());
    let e = b.reader().query("SELECT * FROM nope", &[], T).await;
    ensure!(
        matches!(e, Err(wolfscale::apply::QueryError::Sql { code: 1146, .. })),
        "{e:?}"
    );
    Ok(())
}

#[tokio::test]
async fn two_servers_reach_identical_state_and_results() -> anyhow::Result<()> {
    let dbs = MariaDb::start_many(2).await?;
    let cmds = vec![
        ddl(TS, USERS),
        ddl(TS + 1, "CREATE TABLE clock (id INT PRIMARY KEY, a DATETIME(6), b TIMESTAMP(6), c BIGINT) ENGINE=InnoDB"),
        insert(TS + 2, "users", &[("name", Value::Text("a".into()))], vec![]),
        insert(TS + 3, "users", &[("name", Value::Text("a".into()))], vec![]),
        insert(TS + 4, "users", &[("name", Value::Text("b".into()))], vec![]),
        sql(TS + 5, &[("DELETE FROM users WHERE name = ?", vec![Value::Text("b".into())])], false),
        insert(TS + 6, "users", &[("name", Value::Text("c".into()))], vec![]),
        sql(
            TS + 7_000_000,
            &[("INSERT INTO clock VALUES (1, NOW(6), CURRENT_TIMESTAMP(6), UNIX_TIMESTAMP())", vec![])],
            true,
        ),
        sql(TS + 8, &[("INSERT INTO users (name) VALUES (?), (?)", vec![Value::Text("d".into()), Value::Text("a".into())])], true),
        insert(TS + 9, "users", &[("name", Value::Text("e".into()))], vec![]),
    ];
    let mut results = Vec::new();
    let mut states = Vec::new();
    for db in &dbs {
        let mut a = applier(db, "app").await?;
        results.push(apply(&mut a, entries(1, &cmds)).await?);
        let r = a.reader();
        let users = r
            .query("SELECT id, name, created FROM users ORDER BY id", &[], T)
            .await?;
        let clock = r.query("SELECT a, b, c FROM clock", &[], T).await?;
        states.push((users, clock));
    }
    ensure!(
        results[0] == results[1],
        "outcomes differ:\n{:?}\n{:?}",
        results[0],
        results[1]
    );
    ensure!(
        failed_code(&results[0][3]) == Some(1062),
        "{:?}",
        results[0][3]
    );
    ensure!(
        failed_code(&results[0][8]) == Some(1062),
        "{:?}",
        results[0][8]
    );
    ensure!(
        states[0] == states[1],
        "tables differ:\n{:?}\n{:?}",
        states[0],
        states[1]
    );
    let (users, clock) = &states[0];
    let ids: Vec<_> = users.rows.iter().map(|r| r[0].clone()).collect();
    // The applier forces every AUTO_INCREMENT value from its own counters: a failed
    // insert takes none, a deleted id (b's 2) is not handed out again.
    ensure!(ids == [json!(1), json!(3), json!(4)], "ids {ids:?}");
    ensure!(
        clock.rows
            == [[
                json!("2024-11-26 04:44:33.123456"),
                json!("2024-11-26 04:44:33.123456"),
                json!(1_732_596_273)
            ]],
        "NOW() is the leader's timestamp: {:?}",
        clock.rows
    );
    Ok(())
}

#[tokio::test]
async fn ddl_interrupted_by_a_crash_counts_as_applied_on_reapply() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    apply(
        &mut a,
        entries(
            1,
            &[ddl(
                TS,
                "CREATE TABLE t (id INT PRIMARY KEY, x INT) ENGINE=InnoDB",
            )],
        ),
    )
    .await?;
    a.close().await?;
    // Each DDL is "crashed" after it ran: the marker says in flight, the position did not move.
    let steps = [
        "CREATE TABLE u (id INT PRIMARY KEY) ENGINE=InnoDB",
        "ALTER TABLE t ADD COLUMN y INT",
        "CREATE INDEX t_x ON t (x)",
        "ALTER TABLE t DROP COLUMN y",
        "RENAME TABLE u TO v",
        "DROP TABLE v",
    ];
    let mut conn = db.conn_to("app").await?;
    for (i, statement) in steps.iter().enumerate() {
        let lsn = 2 + i as u64;
        conn.exec_drop(
            "UPDATE _wolfscale SET ddl_in_flight = ? WHERE id = 1",
            (lsn,),
        )
        .await?;
        conn.query_drop(*statement).await?;
        let mut a = applier(&db, "app").await?;
        let out = apply(&mut a, vec![entry(lsn, &ddl(TS, statement))]).await?;
        ensure!(
            matches!(out[..], [Outcome::Applied { lsn: l, .. }] if l == lsn),
            "{statement}: {out:?}"
        );
        let (pos, _) = a.applied_state().await?;
        ensure!(pos.map(|l| l.index) == Some(lsn), "{statement}: {pos:?}");
        let marker: Option<Option<u64>> = conn
            .query_first("SELECT ddl_in_flight FROM _wolfscale")
            .await?;
        ensure!(marker == Some(None), "{statement}: marker left {marker:?}");
        a.close().await?;
    }
    // Without the marker the same error is the entry's result.
    let mut a = applier(&db, "app").await?;
    let out = apply(
        &mut a,
        vec![entry(8, &ddl(TS, "CREATE TABLE t (id INT PRIMARY KEY)"))],
    )
    .await?;
    ensure!(failed_code(&out[0]) == Some(1050), "{out:?}");
    conn.disconnect().await?;
    Ok(())
}

#[tokio::test]
async fn hostile_names_and_values_round_trip_and_touch_nothing_else() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    let table = "t`; DROP TABLE victim; --";
    let cols = ["c`1", "c'2\"", "c;3 -- x", "列四", "/*5*/", "c6\\"];
    let create = format!(
        "CREATE TABLE {} (id INT PRIMARY KEY, {} BIGINT UNSIGNED, {} DECIMAL(65,30), {} LONGTEXT, {} LONGTEXT, {} LONGBLOB, {} VARCHAR(64)) ENGINE=InnoDB",
        quote_ident(table),
        quote_ident(cols[0]),
        quote_ident(cols[1]),
        quote_ident(cols[2]),
        quote_ident(cols[3]),
        quote_ident(cols[4]),
        quote_ident(cols[5]),
    );
    let big = "x".repeat(1 << 20);
    let decimal = "12345678901234567890123456789012345.123456789012345678901234567890";
    let text = "a\0b'c\"d\\e`f;g -- h /* i */ é 表 \u{ffff}";
    let bytes = vec![0u8, 0xff, b'\'', b'\\', 0x80, b'"'];
    let values = [
        ("id", Value::Int(1)),
        (cols[0], Value::UInt(u64::MAX)),
        (cols[1], Value::Number(decimal.into())),
        (cols[2], Value::Text(text.into())),
        (cols[3], Value::Text(big.clone())),
        (cols[4], Value::Bytes(bytes.clone())),
        (cols[5], Value::Text("'); DROP TABLE victim; --".into())),
    ];
    let cmds = vec![
        ddl(TS, "CREATE TABLE victim (id INT PRIMARY KEY) ENGINE=InnoDB"),
        sql(TS, &[("INSERT INTO victim VALUES (1)", vec![])], true),
        ddl(TS, &create),
        insert(TS, table, &values, vec![]),
        sql(
            TS,
            &[(
                &format!(
                    "UPDATE {} SET {} = ? WHERE id = ?",
                    quote_ident(table),
                    quote_ident(cols[5])
                ),
                vec![Value::Text("x' OR '1'='1".into()), Value::Int(1)],
            )],
            false,
        ),
    ];
    let out = apply(&mut a, entries(1, &cmds)).await?;
    ensure!(
        out.iter()
            .all(|o| matches!(o, Outcome::Applied { .. } | Outcome::Batch { .. })),
        "{out:?}"
    );
    let r = a.reader();
    let select = format!(
        "SELECT {}, {}, {}, {}, {}, {} FROM {}",
        quote_ident(cols[0]),
        quote_ident(cols[1]),
        quote_ident(cols[2]),
        quote_ident(cols[3]),
        quote_ident(cols[4]),
        quote_ident(cols[5]),
        quote_ident(table)
    );
    let rows = r.query(&select, &[], T).await?;
    ensure!(rows.columns == cols, "{:?}", rows.columns);
    let row = rows.rows.first().context("no row")?;
    ensure!(row[0] == json!(u64::MAX), "{:?}", row[0]);
    ensure!(row[1] == json!(decimal), "{:?}", row[1]);
    ensure!(row[2] == json!(text), "{:?}", row[2]);
    ensure!(row[3] == json!(big), "1 MiB string changed");
    ensure!(row[4] == json!({"$base64": "AP8nXIAi"}), "{:?}", row[4]);
    ensure!(row[5] == json!("x' OR '1'='1"), "{:?}", row[5]);
    // Values bound as parameters read back exactly too.
    let found = r
        .query(
            &format!(
                "SELECT id FROM {} WHERE {} = ?",
                quote_ident(table),
                quote_ident(cols[2])
            ),
            &[Value::Text(text.into())],
            T,
        )
        .await?;
    ensure!(found.rows == [[json!(1)]], "{:?}", found.rows);

    let tables = r
        .query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app'",
            &[],
            T,
        )
        .await?;
    let mut names: Vec<_> = tables.rows.iter().map(|r| r[0].clone()).collect();
    names.sort_by_key(|v| v.to_string());
    ensure!(
        names == [json!("_wolfscale"), json!(table), json!("victim")],
        "{names:?}"
    );
    let victim = r.query("SELECT id FROM victim", &[], T).await?;
    ensure!(victim.rows == [[json!(1)]], "{:?}", victim.rows);
    Ok(())
}

#[tokio::test]
async fn real_statements_produce_the_classified_error_codes() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    let setup = vec![
        ddl(TS, "CREATE TABLE p (id INT PRIMARY KEY, s VARCHAR(3), n TINYINT) ENGINE=InnoDB"),
        ddl(TS, "CREATE TABLE c (id INT PRIMARY KEY, p INT, CONSTRAINT c_p FOREIGN KEY (p) REFERENCES p (id)) ENGINE=InnoDB"),
        sql(TS, &[("INSERT INTO p (id) VALUES (1)", vec![]), ("INSERT INTO c VALUES (1, 1)", vec![])], true),
    ];
    let out = apply(&mut a, entries(1, &setup)).await?;
    ensure!(
        out.iter().all(|o| matches!(o, Outcome::Applied { .. })),
        "{out:?}"
    );
    let cases: [(&str, u16); 8] = [
        ("INSERT INTO p (id) VALUES (1)", 1062),
        ("INSERT INTO nope (id) VALUES (1)", 1146),
        ("INSERT INTO p (nope) VALUES (1)", 1054),
        ("INSERT INTO p (id) VALUES (", 1064),
        ("INSERT INTO p (id, s) VALUES (2, 'toolong')", 1406),
        ("INSERT INTO p (id, n) VALUES (3, 1000)", 1264),
        ("DELETE FROM p WHERE id = 1", 1451),
        ("INSERT INTO c VALUES (2, 99)", 1452),
    ];
    let cmds: Vec<_> = cases
        .iter()
        .map(|(s, _)| sql(TS, &[(s, vec![])], true))
        .collect();
    let out = apply(&mut a, entries(4, &cmds)).await?;
    for ((statement, code), o) in cases.iter().zip(&out) {
        match o {
            Outcome::Failed { failure, .. } => {
                ensure!(failure.code == *code, "{statement}: {failure:?}");
                let class = sql::classify_error(failure.code, &failure.message);
                ensure!(
                    class.is_deterministic() && failure.class.class() == class,
                    "{statement}: {failure:?}"
                );
            }
            other => anyhow::bail!("{statement}: {other:?}"),
        }
    }
    let (pos, _) = a.applied_state().await?;
    ensure!(
        pos.map(|l| l.index) == Some(11),
        "failed entries still advance: {pos:?}"
    );
    Ok(())
}

#[tokio::test]
async fn reads_map_every_column_type_to_json() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    let cmds = vec![
        ddl(
            TS,
            "CREATE TABLE ty (i BIGINT, u BIGINT UNSIGNED, f FLOAT, d DOUBLE, m DECIMAL(30,10), \
             dt DATE, tm TIME, tm6 TIME(6), ts DATETIME, bit BIT(8), j JSON, n INT) ENGINE=InnoDB",
        ),
        sql(
            TS,
            &[(
                "INSERT INTO ty VALUES (?, ?, 0.1, 1.5e300, ?, '2024-02-29', '-838:59:59', \
                 '12:00:00.000001', '2024-11-26 04:44:26', b'11111111', '{\"a\": [1]}', NULL)",
                vec![
                    Value::Int(i64::MIN),
                    Value::UInt(u64::MAX),
                    Value::Number("-12345678901234567890.0123456789".into()),
                ],
            )],
            true,
        ),
    ];
    apply(&mut a, entries(1, &cmds)).await?;
    let rows = a.reader().query("SELECT * FROM ty", &[], T).await?;
    ensure!(
        rows.rows
            == [[
                json!(i64::MIN),
                json!(u64::MAX),
                json!(0.1),
                json!(1.5e300),
                json!("-12345678901234567890.0123456789"),
                json!("2024-02-29"),
                json!("-838:59:59"),
                json!("12:00:00.000001"),
                json!("2024-11-26 04:44:26"),
                json!({"$base64": "/w=="}),
                json!("{\"a\": [1]}"),
                json!(null),
            ]],
        "{:?}",
        rows.rows
    );
    let timeout = a
        .reader()
        .query("SELECT SLEEP(2)", &[], Duration::from_millis(100))
        .await;
    ensure!(
        matches!(timeout, Err(wolfscale::apply::QueryError::Timeout(_))),
        "{timeout:?}"
    );
    Ok(())
}

#[tokio::test]
async fn update_and_delete_commands_touch_only_the_keyed_rows() -> anyhow::Result<()> {
    use crate::apply_support::ident;
    use wolfscale::command::{Command, Entry as Cmd};
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    let col = |n: &str, v: Value| (ident(n), v);
    let table = wolfscale::command::Ident::table("kv")?;
    let cmds = vec![
        ddl(TS, "CREATE TABLE kv (k INT PRIMARY KEY, g INT NULL, v VARCHAR(10), at TIMESTAMP(6) NULL ON UPDATE CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"),
        sql(TS, &[("INSERT INTO kv (k, g, v) VALUES (1, NULL, 'a'), (2, 7, 'b'), (3, NULL, 'c')", vec![])], true),
        Cmd {
            timestamp_us: TS + 5_000_000,
            ids: vec![],
            command: Command::Update {
                table: table.clone(),
                set: vec![col("v", Value::Text("z".into()))],
                where_key: vec![col("g", Value::Null)],
            },
        },
        Cmd {
            timestamp_us: TS,
            ids: vec![],
            command: Command::Delete {
                table: table.clone(),
                where_key: vec![col("k", Value::Int(3)), col("g", Value::Null)],
            },
        },
        Cmd {
            timestamp_us: TS,
            ids: vec![],
            command: Command::Delete {
                table,
                where_key: vec![col("k", Value::Int(2)), col("g", Value::Int(8))],
            },
        },
    ];
    let out = apply(&mut a, entries(1, &cmds)).await?;
    let affected: Vec<_> = out
        .iter()
        .map(|o| match o {
            Outcome::Applied { affected_rows, .. } => Some(*affected_rows),
            _ => None,
        })
        .collect();
    ensure!(
        affected == [Some(0), Some(3), Some(2), Some(1), Some(0)],
        "{out:?}"
    );
    let rows = a
        .reader()
        .query("SELECT k, g, v, at FROM kv ORDER BY k", &[], T)
        .await?;
    ensure!(
        rows.rows
            == [
                vec![
                    json!(1),
                    json!(null),
                    json!("z"),
                    json!("2024-11-26 04:44:31.123456")
                ],
                vec![json!(2), json!(7), json!("b"), json!(null)],
            ],
        "{:?}",
        rows.rows
    );
    Ok(())
}
