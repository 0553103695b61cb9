//! The SQL the `sql` module reasons about, checked against a real MariaDB: every construct
//! in `sql::NON_DETERMINISTIC` is refused by the checker in an example MariaDB itself
//! parses (so the list names real syntax, not constructs that could never run).

use anyhow::ensure;
use mysql_async::prelude::Queryable;
use wolfscale::sql::{check_deterministic, SqlError, NON_DETERMINISTIC};

use crate::support::MariaDb;

/// One example per rule, as a client could send it.
const EXAMPLES: &[(&str, &str)] = &[
    ("UUID()", "INSERT INTO t (s) VALUES (UUID())"),
    ("UUID_SHORT()", "INSERT INTO t (n) VALUES (UUID_SHORT())"),
    ("SYS_GUID()", "UPDATE t SET s = SYS_GUID() WHERE id = 1"),
    (
        "RAND() without a seed",
        "UPDATE t SET n = RAND() WHERE id = 1",
    ),
    (
        "RANDOM_BYTES()",
        "INSERT INTO t (b) VALUES (RANDOM_BYTES(16))",
    ),
    ("SYSDATE()", "INSERT INTO t (d) VALUES (SYSDATE())"),
    (
        "CONNECTION_ID()",
        "INSERT INTO t (n) VALUES (CONNECTION_ID())",
    ),
    ("USER()", "INSERT INTO t (s) VALUES (USER())"),
    ("CURRENT_USER", "INSERT INTO t (s) VALUES (CURRENT_USER)"),
    (
        "SESSION_USER()",
        "INSERT INTO t (s) VALUES (SESSION_USER())",
    ),
    ("SYSTEM_USER()", "INSERT INTO t (s) VALUES (SYSTEM_USER())"),
    ("CURRENT_ROLE", "INSERT INTO t (s) VALUES (CURRENT_ROLE())"),
    (
        "LAST_INSERT_ID()",
        "INSERT INTO t (n) VALUES (LAST_INSERT_ID())",
    ),
    ("ROW_COUNT()", "INSERT INTO t (n) VALUES (ROW_COUNT())"),
    ("FOUND_ROWS()", "INSERT INTO t (n) VALUES (FOUND_ROWS())"),
    ("LASTVAL()", "INSERT INTO t (n) VALUES (LASTVAL(sq))"),
    (
        "PREVIOUS VALUE FOR",
        "INSERT INTO t (n) VALUES (PREVIOUS VALUE FOR sq)",
    ),
    ("NEXTVAL()", "INSERT INTO t (n) VALUES (NEXTVAL(sq))"),
    (
        "NEXT VALUE FOR",
        "INSERT INTO t (n) VALUES (NEXT VALUE FOR sq)",
    ),
    ("GET_LOCK()", "INSERT INTO t (n) SELECT GET_LOCK('x', 10)"),
    (
        "RELEASE_LOCK()",
        "INSERT INTO t (n) VALUES (RELEASE_LOCK('x'))",
    ),
    (
        "RELEASE_ALL_LOCKS()",
        "INSERT INTO t (n) VALUES (RELEASE_ALL_LOCKS())",
    ),
    (
        "IS_FREE_LOCK()",
        "INSERT INTO t (n) VALUES (IS_FREE_LOCK('x'))",
    ),
    (
        "IS_USED_LOCK()",
        "INSERT INTO t (n) VALUES (IS_USED_LOCK('x'))",
    ),
    ("SLEEP()", "UPDATE t SET n = SLEEP(5) WHERE id = 1"),
    (
        "BENCHMARK()",
        "UPDATE t SET n = BENCHMARK(10, MD5('x')) WHERE id = 1",
    ),
    (
        "LOAD_FILE()",
        "UPDATE t SET b = LOAD_FILE('/etc/hostname') WHERE id = 1",
    ),
    (
        "MASTER_POS_WAIT()",
        "INSERT INTO t (n) VALUES (MASTER_POS_WAIT('f', 4))",
    ),
    (
        "MASTER_GTID_WAIT()",
        "INSERT INTO t (n) VALUES (MASTER_GTID_WAIT('0-1-1'))",
    ),
    ("VERSION()", "INSERT INTO t (s) VALUES (VERSION())"),
    ("@@variable", "INSERT INTO t (s) VALUES (@@hostname)"),
    ("@variable", "INSERT INTO t (n) VALUES (@x)"),
    (
        "INTO OUTFILE",
        "SELECT * FROM t INTO OUTFILE '/tmp/wolfscale-never-written'",
    ),
    (
        "INTO DUMPFILE",
        "SELECT b FROM t INTO DUMPFILE '/tmp/wolfscale-never-written'",
    ),
    (
        "LOAD DATA",
        "LOAD DATA INFILE '/tmp/wolfscale-never-read' INTO TABLE t",
    ),
    (
        "LOAD XML",
        "LOAD XML INFILE '/tmp/wolfscale-never-read' INTO TABLE t",
    ),
    ("TEMPORARY table", "CREATE TEMPORARY TABLE tmp (a INT)"),
    (
        "LIMIT without ORDER BY",
        "DELETE FROM t WHERE n < 5 LIMIT 10",
    ),
];

/// MariaDB's ER_PARSE_ERROR: the only answer that would mean "not real syntax".
const PARSE_ERROR: u16 = 1064;

#[tokio::test]
async fn every_refused_construct_is_real_mariadb_syntax() -> anyhow::Result<()> {
    for rule in NON_DETERMINISTIC {
        ensure!(
            EXAMPLES.iter().any(|(name, _)| *name == rule.name),
            "no MariaDB example for rule {}",
            rule.name
        );
    }
    let db = MariaDb::start().await?;
    db.create_database("app").await?;
    let mut conn = db.conn_to("app").await?;
    conn.query_drop(
        "CREATE TABLE t (id INT PRIMARY KEY, n BIGINT, s VARCHAR(200), d DATETIME, b BLOB)",
    )
    .await?;
    conn.query_drop("CREATE SEQUENCE sq").await?;
    for (name, sql) in EXAMPLES {
        match check_deterministic(sql) {
            Err(SqlError::NonDeterministic { construct, .. }) => {
                ensure!(
                    construct == *name,
                    "{sql}: refused as {construct}, expected {name}"
                )
            }
            other => anyhow::bail!("{sql}: expected {name} to be refused, got {other:?}"),
        }
        // Preparing parses and resolves names without running anything; a statement
        // kind that cannot be prepared (LOAD DATA, …) answers with another code.
        match conn.prep(*sql).await {
            Ok(stmt) => conn.close(stmt).await?,
            Err(mysql_async::Error::Server(e)) => ensure!(
                e.code != PARSE_ERROR,
                "MariaDB does not parse the example for {name}: {sql}: {}",
                e.message
            ),
            Err(e) => return Err(e.into()),
        }
    }
    conn.disconnect().await?;
    Ok(())
}
