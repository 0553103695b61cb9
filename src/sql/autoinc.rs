//! AUTO_INCREMENT values the applier hands out itself (see `apply::ids`): which table an
//! INSERT generates values for, which schema changes reset a table's counter, and the
//! statements that read what the counters start from.
//!
//! InnoDB's own counter is per server and never goes back: an interactive transaction
//! that inserts and then rolls back on the node its client uses moves that node's counter
//! only. So the applier does not let InnoDB choose: before every statement that may
//! generate a value it forces the value with `SET insert_id`, from a counter it keeps as
//! part of the replicated state.

use super::quote_ident;
use sqlparser::ast::{
    AlterTableOperation, ObjectName, RenameTableNameKind, SetExpr, Statement, TableObject,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// The table an INSERT or REPLACE adds rows to, and what it says about the columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertTarget {
    /// The table's name (without a database qualifier; the statement was admitted only
    /// inside the replicated database).
    pub table: String,
    /// The columns the statement names; empty when it names none (every column).
    pub columns: Vec<String>,
    /// A plain `INSERT … VALUES` or `INSERT … SET`: no IGNORE, no ON DUPLICATE KEY
    /// UPDATE, not REPLACE, not INSERT … SELECT. When such a statement also leaves the
    /// AUTO_INCREMENT column out, it generates exactly one value per row it reports.
    pub plain: bool,
}

impl InsertTarget {
    /// Whether every row the statement adds takes a generated value of `column`, one
    /// after the other: a plain insert that leaves `column` out.
    pub fn generates_all(&self, column: &str) -> bool {
        self.plain
            && !self.columns.is_empty()
            && !self.columns.iter().any(|c| c.eq_ignore_ascii_case(column))
    }
}

/// Whether `sql` starts (after blanks and comments) with INSERT or REPLACE: the only
/// statements that generate AUTO_INCREMENT values. Cheap; [`insert_target`] parses.
pub fn may_insert(sql: &str) -> bool {
    let sql = unstamped(sql);
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("/*") {
            match r.find("*/") {
                Some(end) => rest = r[end + 2..].trim_start(),
                None => return false,
            }
        } else if let Some(r) = rest.strip_prefix("--").or_else(|| rest.strip_prefix('#')) {
            match r.find('\n') {
                Some(end) => rest = r[end + 1..].trim_start(),
                None => return false,
            }
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    word.eq_ignore_ascii_case("INSERT") || word.eq_ignore_ascii_case("REPLACE")
}

/// The table `sql` inserts into, when it is one INSERT or REPLACE into a named table.
pub fn insert_target(sql: &str) -> Option<InsertTarget> {
    if !may_insert(sql) {
        return None;
    }
    let mut list = Parser::parse_sql(&MySqlDialect {}, unstamped(sql)).ok()?;
    if list.len() != 1 {
        return None;
    }
    let Statement::Insert(insert) = list.pop()? else {
        return None;
    };
    let TableObject::TableName(name) = &insert.table else {
        return None;
    };
    let table = last_part(name)?;
    let mut columns: Vec<String> = insert.columns.iter().filter_map(last_part).collect();
    if columns.is_empty() && !insert.assignments.is_empty() {
        columns = insert
            .assignments
            .iter()
            .filter_map(|a| match &a.target {
                sqlparser::ast::AssignmentTarget::ColumnName(n) => last_part(n),
                sqlparser::ast::AssignmentTarget::Tuple(_) => None,
            })
            .collect();
    }
    let values = match &insert.source {
        None => !insert.assignments.is_empty(),
        Some(q) => matches!(q.body.as_ref(), SetExpr::Values(_)),
    };
    Some(InsertTarget {
        table,
        columns,
        plain: values && !insert.ignore && insert.on.is_none() && !insert.replace_into,
    })
}

/// The statement inside the applier's `SET STATEMENT timestamp = … FOR` prefix.
fn unstamped(sql: &str) -> &str {
    sql.strip_prefix(super::STAMP_PREFIX).unwrap_or(sql)
}

fn last_part(name: &ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
}

/// What a schema change does to the counters the applier keeps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DdlCounters {
    /// Tables whose counter starts afresh from what InnoDB holds right after the change
    /// (created, truncated, dropped, or given `AUTO_INCREMENT = n`).
    pub fresh: Vec<String>,
    /// Tables renamed, old name → new name: the counter moves with the table.
    pub renamed: Vec<(String, String)>,
}

/// Reads what `ddl` does to AUTO_INCREMENT counters. A statement the parser does not
/// understand changes none (the ones that matter — CREATE, DROP, TRUNCATE, RENAME and
/// ALTER TABLE — parse).
pub fn ddl_counters(ddl: &str) -> DdlCounters {
    let mut out = DdlCounters::default();
    let Ok(list) = Parser::parse_sql(&MySqlDialect {}, ddl) else {
        return out;
    };
    for statement in list {
        match statement {
            Statement::CreateTable(ct) => out.fresh.extend(last_part(&ct.name)),
            Statement::Drop { names, .. } => out.fresh.extend(names.iter().filter_map(last_part)),
            Statement::Truncate(t) => out
                .fresh
                .extend(t.table_names.iter().filter_map(|t| last_part(&t.name))),
            Statement::RenameTable(list) => {
                for r in list {
                    if let (Some(a), Some(b)) = (last_part(&r.old_name), last_part(&r.new_name)) {
                        out.renamed.push((a, b));
                    }
                }
            }
            Statement::AlterTable(alter) => {
                let Some(table) = last_part(&alter.name) else {
                    continue;
                };
                let mut current = table.clone();
                for op in &alter.operations {
                    match op {
                        AlterTableOperation::RenameTable { table_name } => {
                            let new = match table_name {
                                RenameTableNameKind::As(n) | RenameTableNameKind::To(n) => n,
                            };
                            if let Some(new) = last_part(new) {
                                out.renamed.push((current.clone(), new.clone()));
                                current = new;
                            }
                        }
                        AlterTableOperation::AutoIncrement { .. } => out.fresh.push(table.clone()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Every AUTO_INCREMENT column of the replicated database: table name, column name.
pub const SELECT_AUTOINC_COLUMNS: &str = "SELECT `TABLE_NAME`, `COLUMN_NAME` \
     FROM `information_schema`.`COLUMNS` WHERE `TABLE_SCHEMA` = DATABASE() \
     AND `EXTRA` LIKE '%auto_increment%'";

/// InnoDB's counter of one table (parameter: the table name); no row without one.
pub const SELECT_TABLE_AUTOINC: &str = "SELECT `AUTO_INCREMENT` \
     FROM `information_schema`.`TABLES` WHERE `TABLE_SCHEMA` = DATABASE() \
     AND `TABLE_NAME` = ? AND `AUTO_INCREMENT` IS NOT NULL";

/// The value after the largest `column` of `table` holds (1 for an empty table): where a
/// counter starts when nothing recorded says otherwise, and how far one must at least be
/// after a statement that may have stored values of its own.
pub fn next_after_max(table: &str, column: &str) -> String {
    format!(
        "SELECT CAST(COALESCE(MAX({}), 0) AS UNSIGNED) + 1 FROM {}",
        quote_ident(column),
        quote_ident(table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(sql: &str) -> InsertTarget {
        insert_target(sql).unwrap_or_else(|| panic!("no target: {sql}"))
    }

    #[test]
    fn inserts_name_their_table_and_columns() {
        let t = target("INSERT INTO note (body, at) VALUES (?, NOW())");
        assert_eq!(t.table, "note");
        assert_eq!(t.columns, vec!["body", "at"]);
        assert!(t.plain);
        assert!(t.generates_all("id"));
        assert!(!t.generates_all("BODY"));
        let t = target("/* c */ insert into `db`.`we``ird` set a = 1, b = 2");
        assert_eq!(t.table, "we`ird");
        assert_eq!(t.columns, vec!["a", "b"]);
        assert!(t.generates_all("id"));
        // Every column, so also the AUTO_INCREMENT one: not known to generate.
        assert!(!target("INSERT INTO t VALUES (NULL, 'x')").generates_all("id"));
        for sql in [
            "INSERT IGNORE INTO t (a) VALUES (1)",
            "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = 2",
            "REPLACE INTO t (a) VALUES (1)",
            "INSERT INTO t (a) SELECT a FROM u",
        ] {
            let t = target(sql);
            assert_eq!(t.table, "t", "{sql}");
            assert!(!t.plain, "{sql}");
        }
        for sql in [
            "UPDATE t SET a = 1",
            "DELETE FROM t",
            "SELECT 1",
            "-- INSERT\nSELECT 1",
            "INSERT INTO t (a) VALUES (1); INSERT INTO t (a) VALUES (2)",
            "INSERT",
        ] {
            assert_eq!(insert_target(sql), None, "{sql}");
        }
        let stamped = crate::sql::stamped(
            crate::sql::Statement {
                sql: "INSERT INTO `t` (`a`) VALUES (?)".into(),
                params: vec![],
            },
            1,
        );
        assert_eq!(target(&stamped.sql).columns, vec!["a"]);
        assert!(may_insert(
            "  # x\n -- y\n /* z */ REPLACE INTO t VALUES (1)"
        ));
        assert!(!may_insert("/* unterminated INSERT"));
    }

    #[test]
    fn schema_changes_say_which_counters_start_afresh() {
        let d = |s: &str| ddl_counters(s);
        assert_eq!(
            d("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY) AUTO_INCREMENT = 100").fresh,
            vec!["t"]
        );
        assert_eq!(d("DROP TABLE IF EXISTS a, b").fresh, vec!["a", "b"]);
        assert_eq!(d("TRUNCATE TABLE t").fresh, vec!["t"]);
        assert_eq!(d("ALTER TABLE t AUTO_INCREMENT = 5").fresh, vec!["t"]);
        assert_eq!(d("ALTER TABLE t ADD COLUMN c INT"), DdlCounters::default());
        assert_eq!(
            d("RENAME TABLE a TO b, c TO d").renamed,
            vec![("a".into(), "b".into()), ("c".into(), "d".into())]
        );
        assert_eq!(
            d("ALTER TABLE a RENAME TO b").renamed,
            vec![("a".into(), "b".into())]
        );
        assert_eq!(d("CREATE INDEX i ON t (a)"), DdlCounters::default());
        assert_eq!(d("not sql at all"), DdlCounters::default());
    }

    #[test]
    fn the_start_value_reads_the_largest_id() {
        assert_eq!(
            next_after_max("a`b", "id"),
            "SELECT CAST(COALESCE(MAX(`id`), 0) AS UNSIGNED) + 1 FROM `a``b`"
        );
    }
}
