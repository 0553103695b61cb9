//! The only place SQL text exists: identifier quoting, the parameterised statements a
//! replicated command becomes (bound to them by `command::to_sql`, which holds no SQL
//! text), the session settings every applier connection uses, the checks on
//! client SQL ([`check_ddl`], [`check_write`], [`check_read`], [`NON_DETERMINISTIC`], and
//! Galera's own rules in [`check_galera_ddl`]) and
//! the classification of MariaDB error codes ([`classify`]). It runs nothing: the applier
//! owns connections.
//!
//! Values are always bound as parameters, never spliced into text; the only numbers in
//! generated text are the leader's timestamp, formatted from a `u64`. This module knows
//! nothing of [`crate::command`]: it builds and reads SQL text, and `command` calls it.

mod admit;
pub mod autoinc;
mod check;
pub mod checksum;
mod errors;
pub mod functions;
mod galera;
mod lex;
pub mod merge;
pub mod position;
mod routine;
mod rules;
pub mod session;
pub mod snapshot;

pub use check::{
    check_certified_step, check_ddl, check_deterministic, check_read, check_write, placeholders,
    statement_kind, CertifiedKind, SqlError, StatementKind,
};
pub use errors::{classify, classify_error, ddl_already_applied, sqlstate, ErrorClass};
pub use galera::{check_galera_ddl, WSREP_ON as GALERA_WSREP_ON};
pub use rules::{Pattern, Rule, NON_DETERMINISTIC};

/// Session settings every applier connection runs before its first entry, so that a
/// statement behaves the same on every node whatever each server's defaults are: UTC for
/// NOW() and TIMESTAMP columns, MariaDB's strict default `sql_mode` (and with it backslash
/// escapes and `"…"` strings, as the checker's lexer assumes), one character set, and
/// AUTO_INCREMENT stepping by one.
pub const SESSION_SETUP: &[&str] = &[
    "SET time_zone = '+00:00'",
    "SET sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION'",
    "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
    "SET auto_increment_increment = 1, auto_increment_offset = 1",
    // Settings that change results or accepted DDL and may differ per server (issue 12).
    "SET lc_time_names = 'en_US', div_precision_increment = 4, group_concat_max_len = 1048576, \
     innodb_strict_mode = ON, default_storage_engine = 'InnoDB', \
     explicit_defaults_for_timestamp = ON, max_sort_length = 1024",
];

/// A statement ready for `exec`: text with `?` markers and one parameter per marker.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// SQL text; contains identifiers and `?`, never a value.
    pub sql: String,
    /// Parameters in marker order.
    pub params: Vec<mysql_async::Value>,
}

impl Statement {
    /// The parameters in the form `mysql_async`'s `exec*` calls take.
    pub fn params(&self) -> mysql_async::Params {
        if self.params.is_empty() {
            mysql_async::Params::Empty
        } else {
            mysql_async::Params::Positional(self.params.clone())
        }
    }
}

/// Quotes a name as a MariaDB identifier: wrapped in backticks, inner backticks doubled.
/// Safe for any string; `command::Ident`'s rules keep out the names MariaDB would refuse
/// anyway.
pub fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('`');
    for c in name.chars() {
        if c == '`' {
            s.push('`');
        }
        s.push(c);
    }
    s.push('`');
    s
}

/// Reverses [`quote_ident`]; `None` when `quoted` is not exactly one quoted identifier.
pub fn unquote_ident(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('`')?.strip_suffix('`')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '`' && chars.next() != Some('`') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// The statement that makes NOW(), CURRENT_TIMESTAMP and friends return the leader's
/// timestamp (microseconds since the Unix epoch) on this connection. Zero would make
/// MariaDB fall back to its own clock, so it is raised to one microsecond.
pub fn set_timestamp(timestamp_us: u64) -> String {
    format!("SET timestamp = {}", timestamp_text(timestamp_us))
}

/// The leader's timestamp as MariaDB's `timestamp` variable takes it: seconds with six
/// decimals, at least one microsecond (zero would mean "the server's own clock").
fn timestamp_text(timestamp_us: u64) -> String {
    let us = timestamp_us.max(1);
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// What [`stamped`] puts before a statement.
pub(crate) const STAMP_PREFIX: &str = "SET STATEMENT timestamp = CAST(? AS DECIMAL(20,6)) FOR ";

/// Prefixes `statement` with `SET STATEMENT timestamp = … FOR`, the leader's timestamp bound
/// as its first parameter: NOW() and column defaults read that timestamp while this one
/// statement runs, without a `SET timestamp` round trip of its own. The text stays the same
/// for every timestamp, so the server-side prepared statement is reused. (MariaDB accepts a
/// parameter there only inside `CAST`; DECIMAL keeps the value exactly as `SET timestamp`
/// with a decimal literal would.)
pub fn stamped(statement: Statement, timestamp_us: u64) -> Statement {
    let mut params = Vec::with_capacity(statement.params.len() + 1);
    params.push(mysql_async::Value::Bytes(
        timestamp_text(timestamp_us).into_bytes(),
    ));
    params.extend(statement.params);
    Statement {
        sql: format!("{STAMP_PREFIX}{}", statement.sql),
        params,
    }
}

/// What [`with_insert_id`] puts before a stamped statement: the leader's timestamp and
/// the forced AUTO_INCREMENT value, both bound.
const STAMP_AND_ID_PREFIX: &str = "SET STATEMENT timestamp = CAST(? AS DECIMAL(20,6)), \
     insert_id = CAST(? AS UNSIGNED) FOR ";

/// What [`with_insert_id`] puts before a client's INSERT or REPLACE.
const ID_PREFIX: &str = "SET STATEMENT insert_id = CAST(? AS UNSIGNED) FOR ";

/// `statement` with the first AUTO_INCREMENT value it generates forced to `value` for this
/// one statement (`SET STATEMENT insert_id = … FOR`), so the applier needs no `SET insert_id`
/// round trip before it nor one to clear the value after it (the variable ends with the
/// statement, whether it used the value or failed). The value is bound, so the text stays
/// the same for every value. `None` when `statement` is neither a [`stamped`] statement
/// nor one that starts with INSERT or REPLACE (a client's own `SET STATEMENT … FOR`
/// cannot take a second prefix): the caller sets the session variable instead.
pub fn with_insert_id(statement: &Statement, value: u64) -> Option<Statement> {
    let id = mysql_async::Value::UInt(value);
    if let Some(rest) = statement.sql.strip_prefix(STAMP_PREFIX) {
        let (timestamp, params) = statement.params.split_first()?;
        let mut bound = Vec::with_capacity(statement.params.len() + 1);
        bound.push(timestamp.clone());
        bound.push(id);
        bound.extend(params.iter().cloned());
        return Some(Statement {
            sql: format!("{STAMP_AND_ID_PREFIX}{rest}"),
            params: bound,
        });
    }
    if !autoinc::may_insert(&statement.sql) {
        return None;
    }
    let mut bound = Vec::with_capacity(statement.params.len() + 1);
    bound.push(id);
    bound.extend(statement.params.iter().cloned());
    Some(Statement {
        sql: format!("{ID_PREFIX}{}", statement.sql),
        params: bound,
    })
}

/// A column name and the value bound for it.
pub type Binding<'a> = (&'a str, mysql_async::Value);

/// `INSERT INTO `t` (`a`,`b`) VALUES (?,?),(?,?)`: `rows` rows of `columns`, each column's
/// value written as its `cells` entry (`?`, or an expression of one `?` such as
/// [`merge::FROM_TIMESTAMP`]), bound in row order (`params` holds `rows × columns.len()`
/// values). What the applier runs for a run of single-row inserts into one table (see
/// `apply::rows`).
pub fn insert_rows(
    table: &str,
    columns: &[&str],
    cells: &[&str],
    rows: usize,
    params: Vec<mysql_async::Value>,
) -> Statement {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let row = format!("({})", cells.join(","));
    let tuples = vec![row.as_str(); rows].join(",");
    Statement {
        sql: format!(
            "INSERT INTO {} ({}) VALUES {tuples}",
            quote_ident(table),
            cols.join(",")
        ),
        params,
    }
}

/// `INSERT INTO `t` (`a`,`b`) VALUES (?,?)`, one parameter per column.
pub fn insert(table: &str, values: Vec<Binding<'_>>) -> Statement {
    let cols: Vec<String> = values.iter().map(|(c, _)| quote_ident(c)).collect();
    let marks = vec!["?"; values.len()].join(",");
    Statement {
        sql: format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            quote_ident(table),
            cols.join(",")
        ),
        params: values.into_iter().map(|(_, v)| v).collect(),
    }
}

/// `UPDATE `t` SET `a`=?,`b`=? WHERE `k`=? AND `n` IS NULL`.
pub fn update(table: &str, set: Vec<Binding<'_>>, where_key: Vec<Binding<'_>>) -> Statement {
    let assignments: Vec<String> = set
        .iter()
        .map(|(c, _)| format!("{}=?", quote_ident(c)))
        .collect();
    let mut params: Vec<mysql_async::Value> = set.into_iter().map(|(_, v)| v).collect();
    let cond = condition(where_key, &mut params);
    Statement {
        sql: format!(
            "UPDATE {} SET {} WHERE {cond}",
            quote_ident(table),
            assignments.join(",")
        ),
        params,
    }
}

/// `DELETE FROM `t` WHERE `k`=? AND …`.
pub fn delete(table: &str, where_key: Vec<Binding<'_>>) -> Statement {
    let mut params = Vec::new();
    let cond = condition(where_key, &mut params);
    Statement {
        sql: format!("DELETE FROM {} WHERE {cond}", quote_ident(table)),
        params,
    }
}

/// ANDed equalities; a NULL key becomes `IS NULL` (plain `= NULL` would match nothing).
fn condition(where_key: Vec<Binding<'_>>, params: &mut Vec<mysql_async::Value>) -> String {
    let parts: Vec<String> = where_key
        .into_iter()
        .map(|(c, v)| {
            if v == mysql_async::Value::NULL {
                format!("{} IS NULL", quote_ident(c))
            } else {
                params.push(v);
                format!("{}=?", quote_ident(c))
            }
        })
        .collect();
    parts.join(" AND ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::lex::{tokenize, Kind};
    use super::*;
    use mysql_async::Value as V;
    use proptest::prelude::*;

    /// `name` quoted sits in a statement as exactly one identifier token.
    fn assert_one_identifier(name: &str) {
        let q = quote_ident(name);
        assert_eq!(unquote_ident(&q).as_deref(), Some(name));
        let sql = format!("SELECT {q} FROM t");
        let toks = tokenize(&sql).expect("quoted name lexes");
        let kinds: Vec<Kind> = toks.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [Kind::Word, Kind::QuotedIdent, Kind::Word, Kind::Word],
            "{name:?}"
        );
        assert_eq!(toks[1].text(&sql), q);
    }

    #[test]
    fn quoting_doubles_backticks() {
        assert_eq!(quote_ident("users"), "`users`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_ident("``"), "``````");
        assert_eq!(unquote_ident("`a``b`").as_deref(), Some("a`b"));
        for bad in ["", "`", "a", "`a", "`a`b`", "`a```b`"] {
            assert_eq!(unquote_ident(bad), None, "{bad}");
        }
    }

    /// Identifier names that try to end the quoting, comment, inject or confuse: all valid
    /// (at most 64 characters, no NUL or control characters).
    pub(crate) fn hostile_names() -> Vec<String> {
        let mut names: Vec<String> = [
            "a`b",
            "`",
            "'",
            "\"",
            ";",
            "-- x",
            "# x",
            "/* x */",
            "/*! UUID() */",
            "t`; DROP TABLE users; --",
            "x' OR '1'='1",
            "naïve",
            "表",
            "?",
            "@@hostname",
            "a.b",
        ]
        .map(String::from)
        .to_vec();
        names.push("x".repeat(64));
        names.push("é".repeat(64));
        names
    }

    #[test]
    fn hostile_names_are_quoted_as_one_identifier() {
        for name in hostile_names() {
            assert_one_identifier(&name);
        }
    }

    #[test]
    fn insert_update_delete_text() {
        let s = insert(
            "users",
            vec![("id", V::Int(1)), ("na`me", V::Bytes(b"Alice".to_vec()))],
        );
        assert_eq!(s.sql, "INSERT INTO `users` (`id`,`na``me`) VALUES (?,?)");
        assert_eq!(s.params, [V::Int(1), V::Bytes(b"Alice".to_vec())]);

        let s = update(
            "users",
            vec![("name", V::Bytes(b"Bob".to_vec())), ("n", V::NULL)],
            vec![("id", V::Int(1)), ("deleted", V::NULL)],
        );
        assert_eq!(
            s.sql,
            "UPDATE `users` SET `name`=?,`n`=? WHERE `id`=? AND `deleted` IS NULL"
        );
        assert_eq!(s.params, [V::Bytes(b"Bob".to_vec()), V::NULL, V::Int(1)]);

        let s = delete("users", vec![("id", V::UInt(u64::MAX))]);
        assert_eq!(s.sql, "DELETE FROM `users` WHERE `id`=?");
        assert_eq!(s.params, [V::UInt(u64::MAX)]);
        assert_eq!(
            s.params(),
            mysql_async::Params::Positional(s.params.clone())
        );
        let none = Statement {
            sql: "DROP TABLE t".into(),
            params: vec![],
        };
        assert_eq!(none.params(), mysql_async::Params::Empty);
    }

    #[test]
    fn timestamp_statement() {
        assert_eq!(
            set_timestamp(1_732_596_266_123_456),
            "SET timestamp = 1732596266.123456"
        );
        assert_eq!(set_timestamp(5), "SET timestamp = 0.000005");
        assert_eq!(
            set_timestamp(0),
            "SET timestamp = 0.000001",
            "zero would mean the server's clock"
        );
    }

    #[test]
    fn stamped_binds_the_timestamp_first() {
        let st = stamped(insert("t", vec![("a", V::Int(7))]), 1_732_596_266_123_456);
        assert_eq!(
            st.sql,
            "SET STATEMENT timestamp = CAST(? AS DECIMAL(20,6)) FOR INSERT INTO `t` (`a`) VALUES (?)"
        );
        assert_eq!(
            st.params,
            vec![V::Bytes(b"1732596266.123456".to_vec()), V::Int(7)]
        );
        // The text does not depend on the timestamp: one prepared statement serves all.
        let later = stamped(insert("t", vec![("a", V::Int(7))]), 1_732_596_299_000_001);
        assert_eq!(later.sql, st.sql);
        assert_eq!(later.sql.matches('?').count(), later.params.len());
        assert_eq!(
            stamped(insert("t", vec![]), 0).params[0],
            V::Bytes(b"0.000001".to_vec())
        );
    }

    #[test]
    fn session_setup_matches_the_lexers_assumptions() {
        let all = SESSION_SETUP.join(" ");
        assert!(all.contains("time_zone = '+00:00'"));
        assert!(all.contains("STRICT_TRANS_TABLES"));
        // The checker lexes backslash escapes and "…" strings; these modes would change both.
        assert!(!all.contains("NO_BACKSLASH_ESCAPES") && !all.contains("ANSI"));
        for s in SESSION_SETUP {
            assert_eq!(statement_kind(s), Ok(StatementKind::Other), "{s}");
        }
    }

    /// A column name (anything, hostile included) and a value, NULL one time in four.
    fn binding() -> impl Strategy<Value = (String, V)> {
        (
            prop_oneof!["\\PC{1,20}", "[`'\";\\-#/* ?.a-z]{1,20}"],
            prop_oneof![
                Just(V::NULL),
                any::<i64>().prop_map(V::Int),
                any::<u64>().prop_map(V::UInt),
                ".{0,20}".prop_map(|s: String| V::Bytes(s.into_bytes())),
            ],
        )
    }

    /// Every value that is not NULL replaced with another non-NULL value.
    fn scrambled(cols: &[(String, V)]) -> Vec<(String, V)> {
        cols.iter()
            .map(|(c, v)| {
                let v = if *v == V::NULL { V::NULL } else { V::Int(7) };
                (c.clone(), v)
            })
            .collect()
    }

    fn bind(cols: &[(String, V)]) -> Vec<Binding<'_>> {
        cols.iter().map(|(c, v)| (c.as_str(), v.clone())).collect()
    }

    proptest! {
        #[test]
        fn any_name_quotes_as_one_identifier(
            name in prop_oneof!["\\PC{1,80}", "[`'\";\\-#/* .a-z😀]{1,70}"]
        ) {
            assert_one_identifier(&name);
        }

        #[test]
        fn generated_sql_never_contains_a_value(
            table in "\\PC{1,20}",
            set in proptest::collection::vec(binding(), 1..6),
            key in proptest::collection::vec(binding(), 1..6),
        ) {
            let built = [
                (insert(&table, bind(&set)), insert(&table, bind(&scrambled(&set))), 0),
                (
                    update(&table, bind(&set), bind(&key)),
                    update(&table, bind(&scrambled(&set)), bind(&scrambled(&key))),
                    key.iter().filter(|(_, v)| *v == V::NULL).count(),
                ),
                (
                    delete(&table, bind(&key)),
                    delete(&table, bind(&scrambled(&key))),
                    key.iter().filter(|(_, v)| *v == V::NULL).count(),
                ),
            ];
            for (a, b, nulls_in_where) in built {
                prop_assert_eq!(&a.sql, &b.sql, "text depends only on names and NULLs");
                let toks = tokenize(&a.sql).expect("generated SQL lexes");
                let marks = toks.iter().filter(|t| t.kind == Kind::Placeholder).count();
                let is_null = toks.iter().filter(|t| t.is_word(&a.sql, "IS")).count();
                prop_assert_eq!(marks, a.params.len());
                prop_assert_eq!(is_null, nulls_in_where);
            }
        }
    }
}
