//! What a node's replicated database holds, in a form two nodes can be compared by: per
//! table the row count, `CHECKSUM TABLE` and a SHA-256 over the rows in a fixed order;
//! plus the applied position in `_wolfscale`. It reads MariaDB directly, never through
//! WolfScale.

use super::mariadb::MariaDb;
use mysql_async::prelude::Queryable;
use mysql_async::Row;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One table's contents, summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableState {
    /// Rows it holds.
    pub rows: usize,
    /// `CHECKSUM TABLE` (InnoDB computes it over every row and column).
    pub checksum: Option<i64>,
    /// SHA-256 of every row's values, rows sorted: equal iff the same multiset of rows.
    pub hash: String,
}

/// A database's contents: every base table by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbState {
    /// Table name → summary (`_wolfscale` included).
    pub tables: BTreeMap<String, TableState>,
    /// `_wolfscale.applied_index`.
    pub applied_index: Option<u64>,
}

/// Quotes an identifier for the test's own SQL.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Reads the state of database `database` on `db`.
pub async fn db_state(db: &MariaDb, database: &str) -> DbState {
    let mut conn = db.conn_to(database).await.expect("connect for a snapshot");
    let names: Vec<String> = conn
        .exec(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name",
            (database,),
        )
        .await
        .expect("list tables");
    let mut tables = BTreeMap::new();
    for name in names {
        let q = quote(&name);
        let checksum: Option<(String, Option<i64>)> = conn
            .query_first(format!("CHECKSUM TABLE {q}"))
            .await
            .expect("checksum table");
        let rows: Vec<Row> = conn
            .query(format!("SELECT * FROM {q}"))
            .await
            .expect("read table");
        let mut encoded: Vec<String> = rows
            .into_iter()
            .map(|r| format!("{:?}", r.unwrap()))
            .collect();
        encoded.sort();
        let mut h = Sha256::new();
        for row in &encoded {
            h.update(row.as_bytes());
            h.update(b"\n");
        }
        let hash = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        tables.insert(
            name,
            TableState {
                rows: encoded.len(),
                checksum: checksum.and_then(|c| c.1),
                hash,
            },
        );
    }
    let applied_index: Option<Option<u64>> = conn
        .query_first("SELECT applied_index FROM `_wolfscale` WHERE id = 1")
        .await
        .expect("read _wolfscale");
    // The goodbye failing changes nothing about the snapshot.
    let _ = conn.disconnect().await;
    DbState {
        tables,
        applied_index: applied_index.flatten(),
    }
}

/// Asserts every state equals the first, naming the first table that differs.
pub fn assert_identical(states: &[(String, DbState)]) {
    let Some((first_name, first)) = states.first() else {
        return;
    };
    assert!(
        first.tables.contains_key("_wolfscale"),
        "{first_name} has no _wolfscale table: {first:?}"
    );
    for (name, state) in &states[1..] {
        assert_eq!(
            first.tables.keys().collect::<Vec<_>>(),
            state.tables.keys().collect::<Vec<_>>(),
            "{first_name} and {name} hold different tables"
        );
        for (table, a) in &first.tables {
            let b = &state.tables[table];
            assert_eq!(
                a, b,
                "table {table} differs between {first_name} and {name}"
            );
        }
        assert_eq!(
            first.applied_index, state.applied_index,
            "_wolfscale differs between {first_name} and {name}"
        );
    }
}
