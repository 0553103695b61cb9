//! Which tables the applier may give a run of single-row inserts as one multi-row INSERT
//! (see `apply::rows`).
//!
//! A multi-row INSERT must leave every row exactly as the single-row statements would
//! have, whichever way a node happened to group the entries: nodes group differently (a
//! leader applies what just committed, a follower catching up applies hundreds of
//! entries at once). The single-row statements each run under their own request's
//! timestamp, the multi-row one under one timestamp, and a trigger sees one statement
//! instead of many. So only tables whose rows cannot depend on either qualify: InnoDB
//! base tables (statement rollback undoes a failed multi-row INSERT completely) with no
//! trigger, no generated column and no column default other than NULL, a number, a plain
//! quoted string, or the statement's time on a DATETIME or TIMESTAMP column
//! (`CURRENT_TIMESTAMP(n)`, which the applier then gives each row explicitly from its own
//! request's timestamp); any other function (`UUID()`, `NEXTVAL()`, `CURDATE()`, …) or
//! anything else disqualifies the table. (`ON UPDATE` clauses do not act on inserts.)

use sqlparser::ast::{Ident, Statement, TableObject};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// The names of the tables of the replicated database that qualify (see the module docs).
/// Read after every schema change.
pub const SELECT_MERGEABLE_TABLES: &str = "SELECT t.`TABLE_NAME` \
     FROM `information_schema`.`TABLES` t \
     WHERE t.`TABLE_SCHEMA` = DATABASE() AND t.`TABLE_TYPE` = 'BASE TABLE' \
     AND t.`ENGINE` = 'InnoDB' \
     AND NOT EXISTS (SELECT 1 FROM `information_schema`.`COLUMNS` c \
         WHERE c.`TABLE_SCHEMA` = t.`TABLE_SCHEMA` AND c.`TABLE_NAME` = t.`TABLE_NAME` \
         AND (c.`EXTRA` LIKE '%GENERATED%' \
              OR (c.`COLUMN_DEFAULT` IS NOT NULL AND c.`COLUMN_DEFAULT` <> 'NULL' \
                  AND NOT c.`COLUMN_DEFAULT` REGEXP '^(''[^''\\\\\\\\()]*''|-?[0-9]+(\\\\.[0-9]+)?)$' \
                  AND NOT (c.`COLUMN_DEFAULT` REGEXP '^current_timestamp\\\\([0-6]?\\\\)$' \
                           AND c.`DATA_TYPE` IN ('datetime', 'timestamp'))))) \
     AND NOT EXISTS (SELECT 1 FROM `information_schema`.`TRIGGERS` g \
         WHERE g.`EVENT_OBJECT_SCHEMA` = t.`TABLE_SCHEMA` \
         AND g.`EVENT_OBJECT_TABLE` = t.`TABLE_NAME`)";

/// `(table, column, default)` of every DATETIME or TIMESTAMP column whose default is the
/// statement's time (`CURRENT_TIMESTAMP(n)`, written `NOW(n)` too): a multi-row INSERT
/// gives each row that column's value explicitly, from its own request's timestamp
/// ([`FROM_TIMESTAMP`] bound to [`timestamp_digits`]), when the rows leave it out.
pub const SELECT_TIME_DEFAULTS: &str = "SELECT `TABLE_NAME`, `COLUMN_NAME`, `COLUMN_DEFAULT` \
     FROM `information_schema`.`COLUMNS` WHERE `TABLE_SCHEMA` = DATABASE() \
     AND `COLUMN_DEFAULT` REGEXP '^current_timestamp\\\\([0-6]?\\\\)$' \
     AND `DATA_TYPE` IN ('datetime', 'timestamp')";

/// The fractional digits a `current_timestamp(n)` default keeps (`current_timestamp()`: 0).
pub fn time_default_digits(default: &str) -> Option<u32> {
    let inner = default
        .strip_prefix("current_timestamp(")?
        .strip_suffix(')')?;
    match inner {
        "" => Some(0),
        d => d.parse().ok().filter(|d| *d <= 6),
    }
}

/// The value a `current_timestamp(n)` default takes for a statement that ran at
/// `timestamp_us` (the session time zone is UTC for the applier): bound to
/// `?` as [`timestamp_digits`] gives it.
pub const FROM_TIMESTAMP: &str = "FROM_UNIXTIME(CAST(? AS DECIMAL(20,6)))";

/// `timestamp_us` as seconds with its fraction cut to `digits` digits: MariaDB's
/// `CURRENT_TIMESTAMP(digits)` truncates the session timestamp the same way.
pub fn timestamp_digits(timestamp_us: u64, digits: u32) -> String {
    let us = timestamp_us.max(1);
    let (secs, frac) = (us / 1_000_000, us % 1_000_000);
    let cut = 10u64.pow(6 - digits.min(6));
    format!("{secs}.{:06}", frac / cut * cut)
}

/// Rows of a multi-row INSERT, at most: MariaDB binds at most 65,535 parameters to one
/// statement, and the applier keeps each statement's packet well under
/// `max_allowed_packet` ([`MAX_BYTES`]).
pub const MAX_PARAMS: usize = 65_535;

/// Bytes of bound values one multi-row INSERT carries at most.
pub const MAX_BYTES: usize = 4 << 20;

/// A client's INSERT that a run may take (see [`single_row_insert`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowInsert {
    /// The table, unqualified.
    pub table: String,
    /// The columns it names, in order; one `?` each.
    pub columns: Vec<String>,
}

/// Reads a client's statement as `INSERT INTO t (a, b, …) VALUES (?, ?, …)` — one row,
/// every value a bound parameter, nothing else (no IGNORE, ON DUPLICATE KEY UPDATE,
/// REPLACE, SET form, partition, priority, alias, database qualifier or hint) — or
/// `None`. The statement is parsed and compared with that form rebuilt from its own
/// names, so anything the parser sees beyond it disqualifies it; comments do too, since
/// MariaDB runs the ones written `/*! … */` while the parser skips them.
pub fn single_row_insert(sql: &str) -> Option<RowInsert> {
    if sql.contains("/*") || sql.contains("--") || sql.contains('#') {
        return None;
    }
    let list = Parser::parse_sql(&MySqlDialect {}, sql).ok()?;
    let [Statement::Insert(insert)] = list.as_slice() else {
        return None;
    };
    let TableObject::TableName(name) = &insert.table else {
        return None;
    };
    let [table] = name.0.as_slice() else {
        return None;
    };
    let table = table.as_ident()?;
    let columns: Vec<&Ident> = insert
        .columns
        .iter()
        .map(|c| match c.0.as_slice() {
            [part] => part.as_ident(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if columns.is_empty() {
        return None;
    }
    let names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let canonical = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        vec!["?"; columns.len()].join(", ")
    );
    let again = Parser::parse_sql(&MySqlDialect {}, &canonical).ok()?;
    if again != list {
        return None;
    }
    Some(RowInsert {
        table: table.value.clone(),
        columns: columns.iter().map(|c| c.value.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_defaults_keep_their_digits() {
        assert_eq!(time_default_digits("current_timestamp()"), Some(0));
        assert_eq!(time_default_digits("current_timestamp(6)"), Some(6));
        assert_eq!(time_default_digits("current_timestamp(7)"), None);
        assert_eq!(time_default_digits("now()"), None);
        assert_eq!(
            timestamp_digits(1_732_596_266_999_999, 0),
            "1732596266.000000"
        );
        assert_eq!(
            timestamp_digits(1_732_596_266_999_999, 3),
            "1732596266.999000"
        );
        assert_eq!(
            timestamp_digits(1_732_596_266_999_999, 6),
            "1732596266.999999"
        );
        assert_eq!(timestamp_digits(0, 6), "0.000001");
    }

    #[test]
    fn only_plain_one_row_parameter_inserts_qualify() {
        let row = single_row_insert("INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)")
            .expect("sysbench's insert qualifies");
        assert_eq!(row.table, "sbtest1");
        assert_eq!(row.columns, ["id", "k", "c", "pad"]);
        let quoted = single_row_insert("insert into `odd``name` (`a b`,c) values (?,?)")
            .expect("quoted names qualify");
        assert_eq!(quoted.table, "odd`name");
        assert_eq!(quoted.columns, ["a b", "c"]);
        for not in [
            "INSERT INTO t VALUES (?, ?)",
            "INSERT INTO t (a) VALUES (1)",
            "INSERT INTO t (a) VALUES (?), (?)",
            "INSERT INTO t (a) VALUES (? + 1)",
            "INSERT IGNORE INTO t (a) VALUES (?)",
            "INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = a + 1",
            "REPLACE INTO t (a) VALUES (?)",
            "INSERT INTO t SET a = ?",
            "INSERT INTO d.t (a) VALUES (?)",
            "INSERT LOW_PRIORITY INTO t (a) VALUES (?)",
            "INSERT INTO t (a) SELECT ?",
            "INSERT /*! IGNORE */ INTO t (a) VALUES (?)",
            "INSERT INTO t (a) VALUES (?) -- note",
            "INSERT INTO t (a) VALUES (?) RETURNING a",
            "INSERT INTO t (a) VALUES (?); INSERT INTO t (a) VALUES (?)",
            "UPDATE t SET a = ?",
        ] {
            assert_eq!(single_row_insert(not), None, "{not}");
        }
    }
}
