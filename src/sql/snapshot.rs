//! SQL text for taking and loading snapshots (state transfer): the consistent read view,
//! the catalogue queries that list what the replicated database holds, the `SHOW CREATE`
//! statements, row reads in primary-key order, the multi-row inserts that load rows with
//! bound parameters, and the `_wolfscale` position updates around a load. It runs nothing.

use super::position::POSITION_TABLE;
use super::quote_ident;

/// The isolation level a consistent snapshot needs.
pub const REPEATABLE_READ: &str = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";

/// A dump or load may pause on its local disk for a while: the server must not drop the
/// connection meanwhile.
pub const PATIENT_SESSION: &str = "SET SESSION net_write_timeout = 3600, net_read_timeout = 3600";

/// Opens one read view of every InnoDB table at once; the dump reads everything in it.
pub const START_CONSISTENT: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";

/// Ends the dump's transaction.
pub const END_READ: &str = "COMMIT";

/// Server version of the copy's origin.
pub const SELECT_VERSION: &str = "SELECT VERSION()";

/// Tables, views and sequences of the current database: name, type, engine.
pub const LIST_TABLES: &str =
    "SELECT TABLE_NAME, TABLE_TYPE, ENGINE FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME";

/// Columns of one table (parameter: table name): name and whether it is generated.
pub const LIST_COLUMNS: &str = "SELECT COLUMN_NAME, IS_GENERATED FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

/// Primary-key columns of one table, in key order (parameter: table name).
pub const LIST_PRIMARY_KEY: &str = "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' \
     ORDER BY SEQ_IN_INDEX";

/// Stored routines of the current database: name, `PROCEDURE` or `FUNCTION`.
pub const LIST_ROUTINES: &str =
    "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES \
     WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_TYPE, ROUTINE_NAME";

/// Triggers of the current database, in the order they must be created to keep their
/// firing order.
pub const LIST_TRIGGERS: &str = "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
     WHERE TRIGGER_SCHEMA = DATABASE() \
     ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER";

/// Session settings of a load: no foreign-key or unique checks while rows arrive (the copy
/// was consistent where it came from), and an explicit 0 in an AUTO_INCREMENT column stays 0.
pub const LOAD_SESSION: &str = "SET SESSION foreign_key_checks = 0, unique_checks = 0, \
     sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'";

/// Sets the session `sql_mode` (parameter: the mode) before creating a routine or trigger
/// under the mode it was defined with.
pub const SET_SQL_MODE: &str = "SET SESSION sql_mode = ?";

/// The `sql_mode` views are created under (the applier's).
pub const VIEW_SQL_MODE: &str =
    "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION";

/// Starts a batch of loaded rows.
pub const BEGIN: &str = "START TRANSACTION";
/// Commits a batch of loaded rows.
pub const COMMIT: &str = "COMMIT";

/// Forgets the applied position before a load replaces the data: a half-loaded database
/// never claims to be at any position.
pub const CLEAR_POSITION: &str = "UPDATE `_wolfscale` SET `applied_index` = NULL, \
     `applied_term` = NULL, `applied_node` = NULL, `ddl_in_flight` = NULL WHERE `id` = 1";

/// Records the position of a loaded copy; parameters: index, term, node, membership JSON,
/// DDL in flight, AUTO_INCREMENT counters JSON.
pub const RESTORE_POSITION: &str = "UPDATE `_wolfscale` SET `applied_index` = ?, \
     `applied_term` = ?, `applied_node` = ?, `membership` = ?, `ddl_in_flight` = ?, \
     `autoinc` = ? WHERE `id` = 1";

/// Whether `name` is the applier's own table, which a snapshot carries in its header
/// rather than as rows.
pub fn is_position_table(name: &str) -> bool {
    name == POSITION_TABLE
}

/// `SHOW CREATE TABLE` (also for sequences).
pub fn show_create_table(name: &str) -> String {
    format!("SHOW CREATE TABLE {}", quote_ident(name))
}

/// `SHOW CREATE VIEW`.
pub fn show_create_view(name: &str) -> String {
    format!("SHOW CREATE VIEW {}", quote_ident(name))
}

/// `SHOW CREATE PROCEDURE|FUNCTION`; `None` for another kind.
pub fn show_create_routine(kind: &str, name: &str) -> Option<String> {
    routine_kind(kind).map(|k| format!("SHOW CREATE {k} {}", quote_ident(name)))
}

/// `SHOW CREATE TRIGGER`.
pub fn show_create_trigger(name: &str) -> String {
    format!("SHOW CREATE TRIGGER {}", quote_ident(name))
}

fn routine_kind(kind: &str) -> Option<&'static str> {
    match kind {
        "PROCEDURE" => Some("PROCEDURE"),
        "FUNCTION" => Some("FUNCTION"),
        _ => None,
    }
}

/// Opens a table inside the dump's transaction so that its metadata lock is held until the
/// dump ends: a DDL statement on it waits rather than changing it under the read view.
pub fn touch(name: &str) -> String {
    format!("SELECT 1 FROM {} LIMIT 0", quote_ident(name))
}

/// Reads every row of a table, `columns` in order, in primary-key order when it has one.
pub fn select_rows(table: &str, columns: &[String], primary_key: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let mut sql = format!("SELECT {} FROM {}", cols.join(","), quote_ident(table));
    if !primary_key.is_empty() {
        let key: Vec<String> = primary_key.iter().map(|c| quote_ident(c)).collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&key.join(","));
    }
    sql
}

/// The next value a sequence hands out, as a snapshot records it.
pub fn select_sequence_next(name: &str) -> String {
    format!("SELECT next_not_cached_value FROM {}", quote_ident(name))
}

/// Makes a loaded sequence continue at `next` (a number formatted from an `i64`).
pub fn set_sequence_next(name: &str, next: i64) -> String {
    format!("SELECT SETVAL({}, {next}, 0)", quote_ident(name))
}

/// `INSERT INTO t (cols) VALUES (?,…),(?,…)` for `rows` rows.
pub fn insert_rows(table: &str, columns: &[String], rows: usize) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let one = format!("({})", vec!["?"; columns.len()].join(","));
    let mut sql = String::with_capacity(32 + cols.len() * 8 + rows * (one.len() + 1));
    sql.push_str("INSERT INTO ");
    sql.push_str(&quote_ident(table));
    sql.push_str(" (");
    sql.push_str(&cols.join(","));
    sql.push_str(") VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&one);
    }
    sql
}

/// `DROP TABLE IF EXISTS`.
pub fn drop_table(name: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", quote_ident(name))
}

/// `DROP SEQUENCE IF EXISTS`.
pub fn drop_sequence(name: &str) -> String {
    format!("DROP SEQUENCE IF EXISTS {}", quote_ident(name))
}

/// `DROP VIEW IF EXISTS`.
pub fn drop_view(name: &str) -> String {
    format!("DROP VIEW IF EXISTS {}", quote_ident(name))
}

/// `DROP PROCEDURE|FUNCTION IF EXISTS`; `None` for another kind.
pub fn drop_routine(kind: &str, name: &str) -> Option<String> {
    routine_kind(kind).map(|k| format!("DROP {k} IF EXISTS {}", quote_ident(name)))
}

/// Removes the `DEFINER=user@host` clause from the head of a `SHOW CREATE` statement, so
/// the object is created for the loading account, as the replicated DDL created it for
/// each node's own account. Statements without one come back unchanged.
pub fn strip_definer(create: &str) -> String {
    const KEY: &str = "DEFINER=";
    let Some(at) = create
        .as_bytes()
        .windows(KEY.len())
        .position(|w| w.eq_ignore_ascii_case(KEY.as_bytes()))
    else {
        return create.to_string();
    };
    // Only the statement's head (CREATE [OR REPLACE] [ALGORITHM=…] DEFINER=…): never a
    // word inside a body or a string.
    if create[..at].contains(['(', '\'', '"', '`']) {
        return create.to_string();
    }
    let b = create.as_bytes();
    let mut i = skip_account_part(b, at + KEY.len());
    if b.get(i) == Some(&b'@') {
        i = skip_account_part(b, i + 1);
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    format!("{}{}", &create[..at], &create[i..])
}

/// Skips one quoted (backtick, single or double quote, doubled to escape) or bare part of
/// an account name.
fn skip_account_part(b: &[u8], mut i: usize) -> usize {
    match b.get(i) {
        Some(&q @ (b'`' | b'\'' | b'"')) => {
            i += 1;
            while i < b.len() {
                if b[i] == q {
                    if b.get(i + 1) == Some(&q) {
                        i += 2;
                        continue;
                    }
                    return i + 1;
                }
                i += 1;
            }
            i
        }
        _ => {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || matches!(b[i], b'_' | b'$' | b'.' | b'%' | b'-'))
            {
                i += 1;
            }
            // CURRENT_USER and CURRENT_USER() are both accepted.
            if b[..i].ends_with(b"CURRENT_USER") && b.get(i..i + 2) == Some(b"()") {
                i += 2;
            }
            i
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{statement_kind, StatementKind};

    #[test]
    fn definers_are_stripped_from_the_head_only() {
        let cases = [
            (
                "CREATE DEFINER=`root`@`localhost` PROCEDURE `p`() SELECT 1",
                "CREATE PROCEDURE `p`() SELECT 1",
            ),
            (
                "CREATE ALGORITHM=UNDEFINED DEFINER=`we``ird`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1 AS `1`",
                "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1 AS `1`",
            ),
            (
                "CREATE DEFINER='app'@'10.0.0.%' TRIGGER `tr` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1",
                "CREATE TRIGGER `tr` BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = 1",
            ),
            (
                "CREATE DEFINER=CURRENT_USER() FUNCTION f() RETURNS INT RETURN 1",
                "CREATE FUNCTION f() RETURNS INT RETURN 1",
            ),
            (
                "CREATE DEFINER=`role_x` PROCEDURE p() BEGIN END",
                "CREATE PROCEDURE p() BEGIN END",
            ),
            (
                "CREATE PROCEDURE `p`() SELECT 'DEFINER=`x`@`y`'",
                "CREATE PROCEDURE `p`() SELECT 'DEFINER=`x`@`y`'",
            ),
        ];
        for (given, want) in cases {
            assert_eq!(strip_definer(given), want, "{given}");
        }
    }

    #[test]
    fn generated_statements_quote_names_and_use_markers() {
        let cols = vec!["a".to_string(), "b`c".to_string()];
        assert_eq!(
            insert_rows("t`1", &cols, 2),
            "INSERT INTO `t``1` (`a`,`b``c`) VALUES (?,?),(?,?)"
        );
        assert_eq!(
            select_rows("t", &cols, &["a".to_string()]),
            "SELECT `a`,`b``c` FROM `t` ORDER BY `a`"
        );
        assert_eq!(select_rows("t", &cols[..1], &[]), "SELECT `a` FROM `t`");
        assert_eq!(show_create_routine("TABLE", "x"), None);
        assert_eq!(drop_routine("EVENT", "x"), None);
        assert_eq!(
            drop_routine("FUNCTION", "f").as_deref(),
            Some("DROP FUNCTION IF EXISTS `f`")
        );
        assert_eq!(set_sequence_next("s", -5), "SELECT SETVAL(`s`, -5, 0)");
        for s in [
            LIST_TABLES,
            LIST_COLUMNS,
            LIST_PRIMARY_KEY,
            LIST_ROUTINES,
            LIST_TRIGGERS,
        ] {
            assert_eq!(statement_kind(s), Ok(StatementKind::Read), "{s}");
        }
        assert_eq!(RESTORE_POSITION.matches('?').count(), 6);
        assert!(is_position_table("_wolfscale"));
    }
}
