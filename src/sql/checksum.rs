//! SQL of the divergence checker (`apply::check`): the consistent snapshot taken at a
//! check barrier, the schema read at that point, and the range checksums the bisection
//! runs. Nothing here runs a query; every identifier is quoted with [`quote_ident`] and
//! every key value is bound as a parameter.
//!
//! # Row and range checksums
//!
//! A row's hash is `CRC32` of the `CRC32` of each column, joined by `#`, with `N` for a
//! NULL column: per-column CRCs keep the hashed text short whatever the row holds (a long
//! `CONCAT_WS` of BLOBs would hit `max_allowed_packet` and turn NULL), and `N` tells NULL
//! from every value. A range's checksum is its row count, the `BIT_XOR` and the `SUM` of
//! its rows' hashes: both aggregates ignore row order, and together they catch a changed
//! row that a 32-bit XOR alone would miss one time in four billion.
//!
//! # Key ranges
//!
//! A range is `(after, upto]` in primary-key order; either end may be open. For a key of
//! several columns the row comparison `(a, b) > (?, ?)` is spelled out as
//! `a > ? OR (a = ? AND b > ?)`, a form the range optimizer reads as index ranges.

use super::{quote_ident, Statement};

/// Opens the read view every later checker query of this connection sees: the state at
/// the barrier (the applier runs these before it applies anything after the barrier).
pub const START_SNAPSHOT: &[&str] = &[
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
];

/// Ends the snapshot transaction.
pub const END_SNAPSHOT: &str = "ROLLBACK";

/// Ends a snapshot connection from another connection (the applier, before a DDL entry:
/// the snapshot's metadata locks would make the DDL wait for the check to finish).
pub fn kill_connection(connection_id: u32) -> String {
    format!("KILL CONNECTION {connection_id}")
}

/// The replicated tables (base tables only, WolfScale's own position table excluded):
/// name, engine.
pub const LIST_TABLES: &str = "SELECT TABLE_NAME, COALESCE(ENGINE, '') \
     FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> '_wolfscale' \
     ORDER BY TABLE_NAME";

/// Every column of the database, in table and ordinal order: table, column, type,
/// nullability, collation.
pub const LIST_COLUMNS: &str = "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
     COALESCE(COLLATION_NAME, '') \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
     ORDER BY TABLE_NAME, ORDINAL_POSITION";

/// Every primary-key column, in table and key order: table, column.
pub const LIST_PRIMARY_KEYS: &str = "SELECT TABLE_NAME, COLUMN_NAME \
     FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY' \
     ORDER BY TABLE_NAME, SEQ_IN_INDEX";

/// Where a key range starts and ends: values of the key columns, in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds<'a> {
    /// Rows with a key strictly above this one; `None` from the first row.
    pub after: Option<&'a [mysql_async::Value]>,
    /// Rows with a key up to and including this one; `None` to the last row.
    pub upto: Option<&'a [mysql_async::Value]>,
}

/// The hash of one row over `columns` (see the module docs).
pub fn row_hash(columns: &[String]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("IFNULL(CRC32({}), 'N')", quote_ident(c)))
        .collect();
    format!("CRC32(CONCAT_WS('#', {}))", parts.join(", "))
}

/// `WHERE` text and its parameters for `bounds` over `key` (`1` when both ends are open).
fn range_where(key: &[String], bounds: &Bounds<'_>) -> (String, Vec<mysql_async::Value>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    if let Some(after) = bounds.after {
        let (text, mut p) = compare(key, after, ">", false);
        clauses.push(text);
        params.append(&mut p);
    }
    if let Some(upto) = bounds.upto {
        let (text, mut p) = compare(key, upto, "<", true);
        clauses.push(text);
        params.append(&mut p);
    }
    if clauses.is_empty() {
        ("1".into(), params)
    } else {
        (clauses.join(" AND "), params)
    }
}

/// `(key) op (values)`, or `<=` when `or_equal`, as a disjunction of column tests.
fn compare(
    key: &[String],
    values: &[mysql_async::Value],
    op: &str,
    or_equal: bool,
) -> (String, Vec<mysql_async::Value>) {
    let mut terms = Vec::new();
    let mut params = Vec::new();
    let value = |j: usize| values.get(j).cloned().unwrap_or(mysql_async::Value::NULL);
    for (i, column) in key.iter().enumerate() {
        let mut conj = Vec::new();
        for (j, earlier) in key[..i].iter().enumerate() {
            conj.push(format!("{} = ?", quote_ident(earlier)));
            params.push(value(j));
        }
        conj.push(format!("{} {op} ?", quote_ident(column)));
        params.push(value(i));
        terms.push(format!("({})", conj.join(" AND ")));
    }
    if or_equal {
        let conj: Vec<String> = key
            .iter()
            .map(|k| format!("{} = ?", quote_ident(k)))
            .collect();
        params.extend((0..key.len()).map(value));
        terms.push(format!("({})", conj.join(" AND ")));
    }
    (format!("({})", terms.join(" OR ")), params)
}

fn key_list(key: &[String]) -> String {
    key.iter()
        .map(|k| quote_ident(k))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Count, `BIT_XOR` and `SUM` (as text) of the row hashes of `table` in `bounds`; an
/// empty `key` means the whole table.
pub fn range_checksum(
    table: &str,
    columns: &[String],
    key: &[String],
    bounds: &Bounds<'_>,
) -> Statement {
    let (filter, params) = range_where(key, bounds);
    Statement {
        sql: format!(
            "SELECT COUNT(*), COALESCE(BIT_XOR(h), 0), CAST(COALESCE(SUM(h), 0) AS CHAR) \
             FROM (SELECT {} AS h FROM {} WHERE {filter}) AS rows_in_range",
            row_hash(columns),
            quote_ident(table)
        ),
        params,
    }
}

/// The key of the row `offset` rows into `bounds` (0 = the first), in key order.
pub fn key_at(table: &str, key: &[String], bounds: &Bounds<'_>, offset: u64) -> Statement {
    let (filter, params) = range_where(key, bounds);
    let keys = key_list(key);
    Statement {
        sql: format!(
            "SELECT {keys} FROM {} WHERE {filter} ORDER BY {keys} LIMIT 1 OFFSET {offset}",
            quote_ident(table)
        ),
        params,
    }
}

/// The key columns and the row hash of the first `limit` rows in `bounds`, in key order.
pub fn row_hashes(
    table: &str,
    columns: &[String],
    key: &[String],
    bounds: &Bounds<'_>,
    limit: u64,
) -> Statement {
    let (filter, params) = range_where(key, bounds);
    let keys = key_list(key);
    Statement {
        sql: format!(
            "SELECT {keys}, {} FROM {} WHERE {filter} ORDER BY {keys} LIMIT {limit}",
            row_hash(columns),
            quote_ident(table)
        ),
        params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn row_hash_covers_every_column_and_quotes_names() {
        let h = row_hash(&cols(&["id", "we`ird"]));
        assert_eq!(
            h,
            "CRC32(CONCAT_WS('#', IFNULL(CRC32(`id`), 'N'), IFNULL(CRC32(`we``ird`), 'N')))"
        );
    }

    #[test]
    fn open_range_has_no_filter_and_no_params() {
        let s = range_checksum("t", &cols(&["id", "v"]), &cols(&["id"]), &Bounds::default());
        assert!(s.sql.contains("FROM `t` WHERE 1"), "{}", s.sql);
        assert!(s.params.is_empty());
    }

    #[test]
    fn single_column_bounds_bind_each_end_once_or_twice() {
        let after = [Value::Int(5)];
        let upto = [Value::Int(9)];
        let b = Bounds {
            after: Some(&after),
            upto: Some(&upto),
        };
        let s = key_at("t", &cols(&["id"]), &b, 3);
        assert_eq!(
            s.sql,
            "SELECT `id` FROM `t` WHERE ((`id` > ?)) AND ((`id` < ?) OR (`id` = ?)) \
             ORDER BY `id` LIMIT 1 OFFSET 3"
        );
        assert_eq!(s.params, vec![Value::Int(5), Value::Int(9), Value::Int(9)]);
    }

    #[test]
    fn composite_keys_expand_the_row_comparison() {
        let after = [Value::Int(1), Value::Bytes(b"x".to_vec())];
        let b = Bounds {
            after: Some(&after),
            upto: None,
        };
        let s = row_hashes("t", &cols(&["a", "b", "v"]), &cols(&["a", "b"]), &b, 33);
        assert!(
            s.sql
                .contains("WHERE ((`a` > ?) OR (`a` = ? AND `b` > ?)) ORDER BY `a`, `b` LIMIT 33"),
            "{}",
            s.sql
        );
        assert_eq!(
            s.params,
            vec![Value::Int(1), Value::Int(1), Value::Bytes(b"x".to_vec())]
        );
    }
}
