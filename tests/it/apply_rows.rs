//! Runs of single-row inserts applied as multi-row INSERTs (`apply::rows`), against real
//! private servers: a run costs one statement, every request keeps its own answer, and
//! whatever runs a node forms, its rows and answers are exactly those of a node that
//! applied every request alone.

use std::time::Duration;

use anyhow::{ensure, Context};
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wolfscale::apply::{MariaDbApplier, Outcome};
use wolfscale::command::{self, Value};
use wolfscale::consensus::{Entry, Request, Requests};

use crate::apply_support::{applier, apply, ddl, entries, failed_code, insert, sql, TS};
use crate::support::MariaDb;

const T: Duration = Duration::from_secs(10);

/// Tables of every kind a run may or may not form on.
const TABLES: &[&str] = &[
    // Mergeable, AUTO_INCREMENT left out by most requests.
    "CREATE TABLE counted (id BIGINT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL UNIQUE, \
     v VARCHAR(8) NOT NULL DEFAULT 'x', n DECIMAL(6,2) DEFAULT -1.5) ENGINE=InnoDB",
    // Mergeable, no AUTO_INCREMENT.
    "CREATE TABLE keyed (k INT PRIMARY KEY, v VARCHAR(8)) ENGINE=InnoDB",
    // Mergeable: defaults that read the statement's time, each row its own request's.
    "CREATE TABLE stamped (k INT PRIMARY KEY, v VARCHAR(8), at DATETIME(6) NOT NULL \
     DEFAULT NOW(6), s0 DATETIME DEFAULT CURRENT_TIMESTAMP, s3 DATETIME(6) DEFAULT \
     CURRENT_TIMESTAMP(3), t6 TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE \
     CURRENT_TIMESTAMP(6)) ENGINE=InnoDB",
    // Not mergeable: a default that calls a function.
    "CREATE TABLE dated (k INT PRIMARY KEY, v VARCHAR(8), d DATE DEFAULT (CURDATE()), \
     n INT DEFAULT (1 + 1)) ENGINE=InnoDB",
    // Not mergeable: a trigger counts rows as each is inserted.
    "CREATE TABLE watched (k INT PRIMARY KEY, v VARCHAR(8), seen INT) ENGINE=InnoDB",
    "CREATE TRIGGER watched_count BEFORE INSERT ON watched FOR EACH ROW \
     SET NEW.seen = (SELECT COUNT(*) FROM watched)",
];

fn one(table: &str, values: Vec<(&str, Value)>, ts: u64) -> command::Entry {
    insert(ts, table, &values, vec![])
}

/// A random insert of kind `kind`: mostly fresh keys, sometimes a duplicate or a value
/// too long for its column.
fn random_insert(rng: &mut StdRng, kind: u32, ts: u64) -> command::Entry {
    // Now and then a key from a small range, which is likely taken already.
    let k = if rng.gen_ratio(1, 80) {
        rng.gen_range(0..10)
    } else {
        rng.gen_range(0..1_000_000)
    };
    let v = if rng.gen_ratio(1, 150) {
        Value::Text("too long for it".into())
    } else {
        Value::Text(format!("v{}", rng.gen_range(0..100)))
    };
    let id = Value::Int(if rng.gen_ratio(1, 80) {
        rng.gen_range(1..20)
    } else {
        rng.gen_range(1..1_000_000)
    });
    let transaction = rng.gen_bool(0.5);
    match kind {
        0 => one("counted", vec![("k", Value::Int(k)), ("v", v)], ts),
        1 => one(
            "counted",
            vec![("id", id), ("k", Value::Int(k)), ("v", v)],
            ts,
        ),
        2 => sql(
            ts,
            &[(
                "INSERT INTO counted (id, k, v) VALUES (?, ?, ?)",
                vec![id, Value::Int(k), v],
            )],
            transaction,
        ),
        3 => sql(
            ts,
            &[(
                "INSERT INTO counted (k, v) VALUES (?, ?)",
                vec![Value::Int(k), v],
            )],
            transaction,
        ),
        // NULL generates a value: such requests never share a statement.
        4 => sql(
            ts,
            &[(
                "INSERT INTO counted (id, k, v) VALUES (?, ?, ?)",
                vec![Value::Null, Value::Int(k), v],
            )],
            transaction,
        ),
        5 => one("keyed", vec![("k", Value::Int(k)), ("v", v)], ts),
        6 => sql(
            ts,
            &[(
                "INSERT INTO keyed (k, v) VALUES (?, ?)",
                vec![Value::Int(k), v],
            )],
            transaction,
        ),
        7 => one("stamped", vec![("k", Value::Int(k)), ("v", v)], ts),
        8 => sql(
            ts,
            &[(
                "INSERT INTO stamped (k, v) VALUES (?, ?)",
                vec![Value::Int(k), v],
            )],
            transaction,
        ),
        9 => one("dated", vec![("k", Value::Int(k)), ("v", v)], ts),
        _ => one("watched", vec![("k", Value::Int(k)), ("v", v)], ts),
    }
}

fn batch(index: u64, commands: &[command::Entry]) -> Entry {
    Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::Normal(Requests(
            commands
                .iter()
                .map(|c| Request {
                    payload: c.encode(),
                })
                .collect(),
        )),
    }
}

/// What a client is told, without the LSN (which differs with the entry layout).
fn answer(o: &Outcome) -> String {
    match o {
        Outcome::Applied {
            affected_rows,
            last_insert_id,
            ..
        } => format!("applied {affected_rows} {last_insert_id:?}"),
        Outcome::Batch { statements, .. } => format!("batch {statements:?}"),
        other => format!("failed {:?}", failed_code(other)),
    }
}

async fn dump(a: &MariaDbApplier) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for q in [
        "SELECT id, k, v, n FROM counted ORDER BY id",
        "SELECT k, v FROM keyed ORDER BY k",
        "SELECT k, v, at, s0, s3, t6 FROM stamped ORDER BY k",
        "SELECT k, v, d, n FROM dated ORDER BY k",
        "SELECT k, v, seen FROM watched ORDER BY k",
    ] {
        let rows = a.reader().query(q, &[], T).await?.rows;
        out.extend(rows.iter().map(|r| format!("{q}: {r:?}")));
    }
    Ok(out)
}

async fn com_insert(db: &MariaDb) -> anyhow::Result<u64> {
    let mut c = db.conn().await?;
    let row: Option<(String, u64)> = c
        .query_first("SHOW GLOBAL STATUS WHERE Variable_name = 'Com_insert'")
        .await?;
    row.map(|r| r.1).context("no Com_insert")
}

async fn schema(a: &mut MariaDbApplier) -> anyhow::Result<u64> {
    let ddls: Vec<command::Entry> = TABLES.iter().map(|s| ddl(TS, s)).collect();
    apply(a, entries(1, &ddls)).await?;
    Ok(TABLES.len() as u64 + 1)
}

#[tokio::test]
async fn a_run_of_inserts_is_one_statement_and_each_request_gets_its_id() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    let next = schema(&mut a).await?;
    let requests: Vec<command::Entry> = (0..100)
        .map(|k| {
            one(
                "counted",
                vec![("k", Value::Int(k)), ("v", Value::Text(format!("r{k}")))],
                TS + 1 + k as u64,
            )
        })
        .collect();
    let before = com_insert(&db).await?;
    let out = apply(&mut a, vec![batch(next, &requests)]).await?;
    let statements = com_insert(&db).await? - before;
    ensure!(
        statements == 3,
        "100 requests are runs of 64, 32 and 4 rows: {statements} INSERT statements"
    );
    let answers: Vec<String> = out.iter().map(answer).collect();
    let expected: Vec<String> = (1..=100)
        .map(|id| format!("applied 1 Some({id})"))
        .collect();
    ensure!(answers == expected, "{answers:?}");
    let rows = a
        .reader()
        .query("SELECT id, k, v FROM counted ORDER BY id", &[], T)
        .await?
        .rows;
    for (i, row) in rows.iter().enumerate() {
        ensure!(
            *row == vec![
                serde_json::json!(i + 1),
                serde_json::json!(i),
                serde_json::json!(format!("r{i}"))
            ],
            "row {i}: {row:?}"
        );
    }
    // The counter moved past the run: a later single insert takes 101.
    let later = apply(
        &mut a,
        vec![batch(
            next + 1,
            &[one("counted", vec![("k", Value::Int(1000))], TS + 200)],
        )],
    )
    .await?;
    ensure!(answer(&later[0]) == "applied 1 Some(101)", "{later:?}");
    a.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_failing_run_falls_back_to_one_statement_per_request() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    let mut a = applier(&db, "app").await?;
    let next = schema(&mut a).await?;
    // Request 5 repeats request 2's unique key: the run of 8 fails as a whole and its
    // requests apply alone — 5 alone fails, the others take consecutive ids.
    let requests: Vec<command::Entry> = (0..8)
        .map(|i| {
            let k = if i == 5 { 2 } else { i };
            one("counted", vec![("k", Value::Int(k))], TS + 1 + i as u64)
        })
        .collect();
    let out = apply(&mut a, vec![batch(next, &requests)]).await?;
    let answers: Vec<String> = out.iter().map(answer).collect();
    ensure!(
        answers
            == [
                "applied 1 Some(1)",
                "applied 1 Some(2)",
                "applied 1 Some(3)",
                "applied 1 Some(4)",
                "applied 1 Some(5)",
                "failed Some(1062)",
                "applied 1 Some(6)",
                "applied 1 Some(7)",
            ],
        "{answers:?}"
    );
    a.close().await?;
    Ok(())
}

/// The same random requests applied on one node in large entries (runs form) and on
/// another one request per entry (no run can form) leave the same rows and give every
/// request the same answer.
#[tokio::test]
async fn grouping_never_changes_rows_or_answers() -> anyhow::Result<()> {
    let db = MariaDb::start().await?;
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(0x5eed_0000 + seed);
        let grouped_db = format!("grouped{seed}");
        let alone_db = format!("alone{seed}");
        let mut grouped = applier(&db, &grouped_db).await?;
        let mut alone = applier(&db, &alone_db).await?;
        let next = schema(&mut grouped).await?;
        schema(&mut alone).await?;
        // Bursts of one kind, so runs form.
        let mut requests: Vec<command::Entry> = Vec::new();
        while requests.len() < 400 {
            let kind = rng.gen_range(0..11);
            for _ in 0..rng.gen_range(1..=24) {
                // Fractions that cross every rounding boundary.
                let ts = TS + 1 + requests.len() as u64 * 333_337;
                requests.push(random_insert(&mut rng, kind, ts));
            }
        }
        let mut entries_grouped = Vec::new();
        let mut index = next;
        let mut rest = requests.as_slice();
        while !rest.is_empty() {
            let n = rng.gen_range(1..=rest.len().min(120));
            entries_grouped.push(batch(index, &rest[..n]));
            index += 1;
            rest = &rest[n..];
        }
        let before = com_insert(&db).await?;
        let out_grouped = apply(&mut grouped, entries_grouped).await?;
        let statements_grouped = com_insert(&db).await? - before;
        let before = com_insert(&db).await?;
        let mut out_alone = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            out_alone.extend(
                apply(
                    &mut alone,
                    vec![batch(next + i as u64, std::slice::from_ref(r))],
                )
                .await?,
            );
        }
        let statements_alone = com_insert(&db).await? - before;

        let a: Vec<String> = out_grouped.iter().map(answer).collect();
        let b: Vec<String> = out_alone.iter().map(answer).collect();
        ensure!(a.len() == requests.len() && b.len() == requests.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            ensure!(
                x == y,
                "seed {seed}, request {i} {:?}: {x} grouped, {y} alone",
                requests[i].command
            );
        }
        let (rows_grouped, rows_alone) = (dump(&grouped).await?, dump(&alone).await?);
        ensure!(
            rows_grouped == rows_alone,
            "seed {seed}: rows differ\n{}",
            rows_grouped
                .iter()
                .zip(&rows_alone)
                .filter(|(x, y)| x != y)
                .map(|(x, y)| format!("{x}\n{y}"))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
        ensure!(
            a.iter()
                .any(|x| x.starts_with("failed") || x.contains("Failed"))
                && a.iter().filter(|x| x.starts_with("applied")).count() > 100,
            "seed {seed}: the mix has both failures and inserts"
        );
        // A quarter of the bursts go to tables that take no runs, and a taken key makes
        // its run fall back: still, most requests shared statements.
        ensure!(
            statements_grouped * 4 < statements_alone * 3,
            "seed {seed}: runs formed: {statements_grouped} INSERT statements grouped, \
             {statements_alone} alone"
        );
        grouped.close().await?;
        alone.close().await?;
    }
    Ok(())
}
