//! Admission by allow-list from a real parse (sqlparser, MySQL dialect): a statement is
//! replicated only when WolfScale has read all of it and found nothing whose result could
//! differ between nodes. It runs after the lexer-level checks in [`super::check`], which
//! stay as a second, independent layer (they see executable comments and quoting exactly as
//! MariaDB does; the parser sees structure).
//!
//! What the parse adds: every function called anywhere, quoted or not, must be on
//! [`super::functions::DETERMINISTIC`]; no name may reach outside the replicated database
//! (a qualified `db.table`, `db.func()` or `db.t.col`); no plan-dependent write (INSERT …
//! SELECT, LIMIT, multi-table UPDATE/DELETE, CREATE TABLE … SELECT, window functions);
//! tables are InnoDB; statements the parser cannot read are refused, naming where it
//! stopped.

use super::check::SqlError;
use super::functions;
use serde_json::Value as Json;
use sqlparser::ast::{visit_expressions, Expr, FunctionArguments, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// What a statement is admitted as; each mode has its own allow-list of statement kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// INSERT, REPLACE, UPDATE, DELETE sent through the log.
    Write,
    /// A schema change sent through the log.
    Ddl,
    /// A statement inside a trigger, procedure or function body.
    Body,
    /// A query served by one node, never logged.
    Read,
}

/// `information_schema` tables a read may name: table, column, index and routine
/// definitions. The rest (PROCESSLIST, USER_PRIVILEGES, …) show other sessions or accounts.
const READABLE_INFORMATION_SCHEMA: &[&str] = &[
    "TABLES",
    "COLUMNS",
    "STATISTICS",
    "KEY_COLUMN_USAGE",
    "REFERENTIAL_CONSTRAINTS",
    "TABLE_CONSTRAINTS",
    "CHECK_CONSTRAINTS",
    "VIEWS",
    "ROUTINES",
    "PARAMETERS",
    "TRIGGERS",
    "SCHEMATA",
    "CHARACTER_SETS",
    "COLLATIONS",
    "COLLATION_CHARACTER_SET_APPLICABILITY",
    "ENGINES",
    "PARTITIONS",
    "SEQUENCES",
    "COLUMN_PRIVILEGES",
];

/// Parses `sql` (one statement, no trailing `;`) and admits it for `mode`.
///
/// # Errors
/// [`SqlError::Unparsable`] when the parser cannot read it, or the first construct that
/// is not allowed.
pub(crate) fn admit(sql: &str, mode: Mode) -> Result<(), SqlError> {
    let statement = parse_one(sql)?;
    check_kind(&statement, mode)?;
    check_tree(&statement, mode)?;
    check_functions(&statement, mode)
}

/// Parses one expression (an IF condition, a SET value, a DEFAULT or RETURN in a stored
/// program) and admits it as replicated code.
///
/// # Errors
/// As [`admit`].
pub(crate) fn admit_expr(sql: &str) -> Result<(), SqlError> {
    let dialect = MySqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(|e| unparsable(sql, &e.to_string()))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| unparsable(sql, &e.to_string()))?;
    if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
        return Err(unparsable(
            sql,
            &format!("unexpected `{}` after the expression", parser.peek_token()),
        ));
    }
    let tree = serde_json::to_value(&expr).map_err(|e| unparsable(sql, &e.to_string()))?;
    walk(&tree, Mode::Body, "")?;
    functions_in(&expr, Mode::Body)
}

/// Admits a SELECT that every node replays inside an interactive transaction and whose
/// rows it compares with what the client saw: replicated code rules (deterministic
/// functions, no variables, nothing outside the replicated database, no window functions),
/// plus locking clauses, and a top-level LIMIT only under an ORDER BY.
///
/// # Errors
/// As [`admit`].
pub(crate) fn admit_certified_read(sql: &str) -> Result<(), SqlError> {
    let statement = parse_one(sql)?;
    if !matches!(statement, Statement::Query(_)) {
        return Err(SqlError::NotRead {
            verb: sql.split_whitespace().next().unwrap_or("").to_string(),
        });
    }
    let mut tree = serde_json::to_value(&statement).map_err(|e| unparsable(sql, &e.to_string()))?;
    if let Some(query) = tree.get_mut("Query").and_then(Json::as_object_mut) {
        let present = |k: &str| query.get(k).is_some_and(|v| !v.is_null());
        let limited = present("limit") || present("limit_clause") || present("fetch");
        if limited && !present("order_by") {
            return Err(refused("LIMIT without ORDER BY", PLAN));
        }
        // Under an ORDER BY (on a unique key: the client's duty, as for any replicated
        // statement) every node keeps the same rows.
        for k in ["limit", "limit_clause", "fetch"] {
            query.remove(k);
        }
    }
    walk(&tree, Mode::Body, "")?;
    check_functions(&statement, Mode::Body)
}

fn parse_one(sql: &str) -> Result<Statement, SqlError> {
    let mut list =
        Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| unparsable(sql, &e.to_string()))?;
    match (list.pop(), list.is_empty()) {
        (Some(statement), true) => Ok(statement),
        (None, _) => Err(SqlError::Empty),
        (Some(_), false) => Err(unparsable(sql, "more than one statement")),
    }
}

fn unparsable(sql: &str, detail: &str) -> SqlError {
    let start: String = sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
    SqlError::Unparsable {
        statement: start.chars().take(60).collect(),
        detail: detail.trim_start_matches("sql parser error: ").to_string(),
    }
}

fn refused(construct: impl Into<String>, reason: &'static str) -> SqlError {
    SqlError::NotReplicable {
        construct: construct.into(),
        reason,
    }
}

const PLAN: &str = "which rows it touches, or in which order, depends on each node's query plan and storage order; write one statement per row, keyed by a unique key";

/// The statement kinds each mode accepts.
fn check_kind(statement: &Statement, mode: Mode) -> Result<(), SqlError> {
    let ok = match mode {
        Mode::Write | Mode::Body => {
            matches!(
                statement,
                Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
            ) || (mode == Mode::Body && matches!(statement, Statement::Query(_)))
        }
        Mode::Ddl => matches!(
            statement,
            Statement::CreateTable(_)
                | Statement::AlterTable(_)
                | Statement::CreateIndex(_)
                | Statement::CreateView(_)
                | Statement::Drop { .. }
                | Statement::DropTrigger(_)
                | Statement::DropProcedure { .. }
                | Statement::DropFunction(_)
                | Statement::RenameTable(_)
                | Statement::Truncate(_)
                | Statement::CreateSequence { .. }
        ),
        Mode::Read => matches!(
            statement,
            Statement::Query(_) | Statement::Explain { .. } | Statement::ExplainTable { .. }
        ),
    };
    if ok {
        return Ok(());
    }
    let text = statement.to_string();
    let verb: String = text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    Err(refused(
        verb,
        "is not accepted here (see the README's table of accepted SQL)",
    ))
}

/// Walks the whole parse tree (serialised, so no field escapes the walk) for qualified
/// names, variables and plan-dependent or non-transactional constructs.
fn check_tree(statement: &Statement, mode: Mode) -> Result<(), SqlError> {
    let tree = serde_json::to_value(statement)
        .map_err(|e| unparsable(&statement.to_string(), &e.to_string()))?;
    if mode != Mode::Read {
        statement_rules(&tree)?;
    }
    walk(&tree, mode, "")
}

/// Rules about one statement's top level: INSERT … SELECT, multi-table UPDATE/DELETE,
/// CREATE TABLE … SELECT, TEMPORARY tables and storage engines.
fn statement_rules(tree: &Json) -> Result<(), SqlError> {
    if let Some(insert) = tree.get("Insert") {
        let values = insert.pointer("/source/body/Values").is_some();
        let set_form = insert
            .get("assignments")
            .and_then(Json::as_array)
            .is_some_and(|a| !a.is_empty());
        if !values && !set_form {
            return Err(refused("INSERT … SELECT", PLAN));
        }
    }
    if let Some(update) = tree.get("Update") {
        let joins = update
            .pointer("/table/joins")
            .and_then(Json::as_array)
            .is_some_and(|j| !j.is_empty());
        if joins || !update.get("from").is_none_or(Json::is_null) {
            return Err(refused("multi-table UPDATE", PLAN));
        }
    }
    if let Some(delete) = tree.get("Delete") {
        let named = delete
            .get("tables")
            .and_then(Json::as_array)
            .is_some_and(|t| !t.is_empty());
        let using = !delete.get("using").is_none_or(Json::is_null);
        let from = delete
            .pointer("/from/WithFromKeyword")
            .or_else(|| delete.pointer("/from/WithoutKeyword"))
            .and_then(Json::as_array);
        let several = from.is_some_and(|f| {
            f.len() > 1
                || f.iter().any(|t| {
                    t.get("joins")
                        .and_then(Json::as_array)
                        .is_some_and(|j| !j.is_empty())
                })
        });
        if named || using || several {
            return Err(refused("multi-table DELETE", PLAN));
        }
    }
    if let Some(create) = tree.get("CreateTable") {
        if !create.get("query").is_none_or(Json::is_null) {
            return Err(refused("CREATE TABLE … SELECT", PLAN));
        }
        if create.get("temporary").and_then(Json::as_bool) == Some(true) {
            return Err(refused(
                "TEMPORARY table",
                "temporary tables belong to one session on one node and are not replicated",
            ));
        }
        engine_is_innodb(create)?;
    }
    // The parser cannot read `ALTER TABLE … ENGINE=` today (refused as unparsable); should
    // it learn to, the engine is held to the same rule.
    if let Some(alter) = tree.get("AlterTable") {
        engine_is_innodb(alter)?;
    }
    Ok(())
}

/// `ENGINE = x` must be InnoDB: group rollback, savepoints and the position row committed
/// with the data hold only for a transactional engine.
fn engine_is_innodb(create: &Json) -> Result<(), SqlError> {
    let mut found = Ok(());
    visit_objects(create, &mut |key, value| {
        let is_engine = value
            .pointer("/key/value")
            .and_then(Json::as_str)
            .is_some_and(|k| k.eq_ignore_ascii_case("ENGINE"));
        if key == "NamedParenthesizedList" || key == "KeyValue" {
            if !is_engine {
                return;
            }
            let name = value
                .pointer("/name/value")
                .or_else(|| value.pointer("/value/Value/value/SingleQuotedString"))
                .or_else(|| value.pointer("/value/Identifier/value"))
                .and_then(Json::as_str)
                .unwrap_or("?");
            if !name.eq_ignore_ascii_case("InnoDB") && found.is_ok() {
                found = Err(refused(
                    format!("ENGINE={name}"),
                    "only InnoDB tables are replicated: other engines cannot roll back a failed group or keep the applied position in the same transaction",
                ));
            }
        }
    });
    found
}

/// Calls `f(key, value)` for every `{key: value}` pair of every object in the tree.
fn visit_objects(tree: &Json, f: &mut dyn FnMut(&str, &Json)) {
    match tree {
        Json::Object(map) => {
            for (k, v) in map {
                f(k, v);
                visit_objects(v, f);
            }
        }
        Json::Array(items) => {
            for v in items {
                visit_objects(v, f);
            }
        }
        _ => {}
    }
}

/// Keys under which the tree holds object names (an expression list serialises the same
/// way, so names are recognised by where they sit).
const OBJECT_NAME_KEYS: &[&str] = &[
    "name",
    "names",
    "TableName",
    "table_name",
    "table_names",
    "ColumnName",
    "old_name",
    "new_name",
    "foreign_table",
    "Plain",
    "Parenthesized",
    "tables",
    "clone",
    "partition_of",
    "inherits",
    "sequence_name",
    "view_name",
    "to",
];

/// An object name (`[{"Identifier": {...}}, …]`) as its parts' unquoted values.
fn object_name(value: &Json) -> Option<Vec<String>> {
    let parts = value.as_array()?;
    if parts.is_empty() {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            p.pointer("/Identifier/value")
                .and_then(Json::as_str)
                .map(str::to_string)
        })
        .collect()
}

fn walk(tree: &Json, mode: Mode, parent_key: &str) -> Result<(), SqlError> {
    match tree {
        Json::Array(items) => {
            let named = OBJECT_NAME_KEYS.contains(&parent_key);
            if let Some(parts) = object_name(tree).filter(|_| named) {
                // An assignment's target is `col` or `t.col`; `db.t.col` is qualified.
                if parent_key == "ColumnName" {
                    if parts.len() > 2 {
                        qualified(&parts[..parts.len() - 1], mode)?;
                    }
                } else {
                    qualified(&parts, mode)?;
                }
            }
            for v in items {
                walk(v, mode, parent_key)?;
            }
        }
        Json::Object(map) => {
            for (k, v) in map {
                node_rules(k, v, mode)?;
                walk(v, mode, k)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Rules on one `{key: value}` node of the tree.
fn node_rules(key: &str, value: &Json, mode: Mode) -> Result<(), SqlError> {
    match key {
        "CompoundIdentifier" => {
            let parts: Vec<String> = value
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.get("value").and_then(Json::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            // `t.col` is a column; `db.t.col` reaches into another database.
            if parts.len() > 2 {
                qualified(&parts[..parts.len() - 1], mode)?;
            }
        }
        "Identifier" if mode != Mode::Read => {
            if let Some(name) = value.get("value").and_then(Json::as_str) {
                if name.starts_with('@') && value.get("quote_style").is_none_or(Json::is_null) {
                    return Err(refused(
                        name,
                        "variables are session state that is not replicated; pass the value as a parameter",
                    ));
                }
            }
        }
        "limit" | "limit_clause" | "fetch" if mode != Mode::Read && !value.is_null() => {
            return Err(refused("LIMIT", PLAN));
        }
        "over" if mode != Mode::Read && !value.is_null() => {
            return Err(refused("window function (OVER …)", PLAN));
        }
        "into" if mode == Mode::Read && value.is_object() => {
            return Err(SqlError::NotRead {
                verb: "SELECT … INTO".to_string(),
            });
        }
        "locks" if mode == Mode::Read && value.as_array().is_some_and(|l| !l.is_empty()) => {
            return Err(SqlError::NotRead {
                verb: "SELECT … FOR UPDATE / LOCK IN SHARE MODE".to_string(),
            });
        }
        _ => {}
    }
    Ok(())
}

/// A name with a qualifier: replicated SQL names objects of the replicated database only
/// (unqualified); reads may also look at table and column definitions in
/// `information_schema`.
fn qualified(parts: &[String], mode: Mode) -> Result<(), SqlError> {
    if parts.len() < 2 {
        return Ok(());
    }
    let schema = &parts[0];
    if mode == Mode::Read && schema.eq_ignore_ascii_case("information_schema") {
        let table = &parts[1];
        if READABLE_INFORMATION_SCHEMA
            .iter()
            .any(|t| t.eq_ignore_ascii_case(table))
        {
            return Ok(());
        }
    }
    Err(SqlError::OtherDatabase {
        name: parts.join("."),
    })
}

fn check_functions(statement: &Statement, mode: Mode) -> Result<(), SqlError> {
    let mut found = Ok(());
    let _ = visit_expressions(statement, |expr| function_rule(expr, mode, &mut found));
    found
}

fn functions_in(expr: &Expr, mode: Mode) -> Result<(), SqlError> {
    let mut found = Ok(());
    let _ = visit_expressions(expr, |e| function_rule(e, mode, &mut found));
    found
}

fn function_rule(expr: &Expr, mode: Mode, found: &mut Result<(), SqlError>) -> ControlFlow<()> {
    let Expr::Function(f) = expr else {
        return ControlFlow::Continue(());
    };
    let name = f
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_else(|| f.name.to_string());
    let args = match &f.args {
        FunctionArguments::List(list) => list.args.len(),
        FunctionArguments::Subquery(_) => 1,
        FunctionArguments::None => 0,
    };
    let allowed = if mode == Mode::Read {
        functions::readable(&name)
    } else {
        functions::replicable(&name, args)
    };
    if allowed {
        return ControlFlow::Continue(());
    }
    *found = Err(if mode == Mode::Read {
        SqlError::NotRead {
            verb: format!("{}()", name.to_ascii_uppercase()),
        }
    } else {
        SqlError::FunctionNotAllowed {
            name: name.to_ascii_uppercase(),
        }
    });
    ControlFlow::Break(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(sql: &str, mode: Mode) -> &'static str {
        match admit(sql, mode) {
            Ok(()) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn quoted_built_ins_are_refused() {
        for sql in [
            "INSERT INTO u (id, v) VALUES (1, `UUID`())",
            "INSERT INTO u (id, v) VALUES (1, `RAND`())",
            "INSERT INTO u (id, v) VALUES (1, ENCRYPT('pw'))",
            "UPDATE u SET v = `SYSDATE`(6) WHERE id = 1",
            "UPDATE u SET v = `sysdate`() WHERE id = 1",
            "INSERT INTO u VALUES (1, nosuchfn(6))",
            "INSERT INTO u VALUES (1, GROUP_CONCAT(2))",
        ] {
            assert_eq!(code(sql, Mode::Write), "non_deterministic", "{sql}");
        }
    }

    #[test]
    fn deterministic_writes_pass() {
        for sql in [
            "INSERT INTO t (a, b) VALUES (?, NOW()), (2, CONCAT('x', ?))",
            "INSERT INTO t SET a = 1, b = IF(1, 2, 3)",
            "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a) + 1",
            "REPLACE INTO t VALUES (1, 'x')",
            "UPDATE t SET a = a + 1, b = JSON_SET(b, '$.x', 1) WHERE id = 3",
            "DELETE FROM p WHERE id IN (SELECT id FROM q WHERE q.x > 1)",
            "UPDATE t SET v = RAND(42) WHERE id = 1",
            "INSERT INTO t VALUES (CAST('1' AS UNSIGNED), DATE_ADD(NOW(), INTERVAL 1 DAY))",
        ] {
            assert_eq!(code(sql, Mode::Write), "ok", "{sql}");
        }
    }

    #[test]
    fn plan_dependent_writes_are_refused() {
        for sql in [
            "INSERT INTO t SELECT * FROM q",
            "INSERT INTO t (a) SELECT a FROM q ORDER BY a",
            "UPDATE t SET a = 1 WHERE b = 2 ORDER BY id LIMIT 1",
            "DELETE FROM t WHERE b = 2 LIMIT 1",
            "DELETE FROM p WHERE id IN (SELECT id FROM q ORDER BY id LIMIT 1)",
            "UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.a = t2.a",
            "DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id",
            "UPDATE t SET a = (SELECT ROW_NUMBER() OVER (ORDER BY x) FROM q WHERE q.id = 1) WHERE id = 1",
        ] {
            assert_eq!(code(sql, Mode::Write), "not_replicable", "{sql}");
        }
    }

    #[test]
    fn other_databases_are_refused() {
        for (sql, mode) in [
            ("INSERT INTO other.t VALUES (1)", Mode::Write),
            ("UPDATE t SET a = other.f(1) WHERE id = 1", Mode::Write),
            (
                "DELETE FROM t WHERE id IN (SELECT id FROM other.q)",
                Mode::Write,
            ),
            ("DROP TABLE other.t", Mode::Ddl),
            ("CREATE TABLE x LIKE other.t", Mode::Ddl),
            ("SELECT * FROM other.t", Mode::Read),
            ("SELECT other.t.c FROM t", Mode::Read),
            ("SELECT * FROM information_schema.processlist", Mode::Read),
        ] {
            assert_eq!(code(sql, mode), "other_database", "{sql}");
        }
        assert_eq!(
            code(
                "SELECT table_name FROM information_schema.tables",
                Mode::Read
            ),
            "ok"
        );
    }

    #[test]
    fn engines_other_than_innodb_are_refused() {
        assert_eq!(
            code(
                "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=MyISAM",
                Mode::Ddl
            ),
            "not_replicable"
        );
        assert_eq!(
            code("CREATE TABLE m (id INT PRIMARY KEY) ENGINE=Aria", Mode::Ddl),
            "not_replicable"
        );
        assert_eq!(
            code(
                "CREATE TABLE m (id INT PRIMARY KEY) ENGINE=InnoDB",
                Mode::Ddl
            ),
            "ok"
        );
        assert_eq!(
            code(
                "CREATE TABLE m (id INT PRIMARY KEY, u CHAR(36) DEFAULT (uuid()))",
                Mode::Ddl
            ),
            "non_deterministic"
        );
        assert_eq!(
            code("CREATE TABLE m2 AS SELECT * FROM m", Mode::Ddl),
            "not_replicable"
        );
    }

    #[test]
    fn reads_refuse_side_effects() {
        assert_eq!(
            code("SELECT LOAD_FILE('/etc/passwd')", Mode::Read),
            "not_read"
        );
        assert_eq!(code("SELECT NEXTVAL(s)", Mode::Read), "not_read");
        assert_eq!(code("SELECT SLEEP(1), UUID()", Mode::Read), "ok");
        assert_eq!(code("SELECT a INTO @x FROM t", Mode::Read), "not_read");
    }

    #[test]
    fn unparsable_is_refused_naming_where() {
        let e = admit("INSERT INTO t VALUES (NEXT VALUE FOR s)", Mode::Write).unwrap_err();
        assert_eq!(e.code(), "unsupported_sql");
        assert!(e.to_string().contains("INSERT INTO t"), "{e}");
    }

    #[test]
    fn expressions_in_bodies() {
        assert!(admit_expr("NEW.a + 1").is_ok());
        assert_eq!(
            admit_expr("UUID()").unwrap_err().code(),
            "non_deterministic"
        );
        assert_eq!(
            admit_expr("@@time_zone").unwrap_err().code(),
            "not_replicable"
        );
        assert_eq!(admit_expr("1 + ) 2").unwrap_err().code(), "unsupported_sql");
    }
}
