//! The only place SQL text exists: identifier quoting, the parameterised statements a
//! [`Command`] becomes, the session settings every applier connection uses, the checks on
//! client SQL ([`check_ddl`], [`check_write`], [`check_read`], [`NON_DETERMINISTIC`], and
//! Galera's own rules in [`check_galera_ddl`]) and
//! the classification of MariaDB error codes ([`classify`]). It runs nothing: the applier
//! owns connections.
//!
//! Values are always bound as parameters, never spliced into text; the only numbers in
//! generated text are the leader's timestamp, formatted from a `u64`.

mod admit;
pub mod autoinc;
mod check;
pub mod checksum;
mod errors;
pub mod functions;
mod galera;
mod lex;
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

use crate::command::{Column, Command, Ident, Value};

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
/// Safe for any string; [`Ident`] rules keep out the names MariaDB would refuse anyway.
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

/// The parameter for a command value.
pub fn to_mysql(value: &Value) -> mysql_async::Value {
    match value {
        Value::Null => mysql_async::Value::NULL,
        Value::Bool(b) => mysql_async::Value::Int(i64::from(*b)),
        Value::Int(n) => mysql_async::Value::Int(*n),
        Value::UInt(n) => mysql_async::Value::UInt(*n),
        // Sent as text: MariaDB converts decimal text to the column's type exactly.
        Value::Number(t) | Value::Text(t) => mysql_async::Value::Bytes(t.as_bytes().to_vec()),
        Value::Bytes(b) => mysql_async::Value::Bytes(b.clone()),
    }
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

/// The statements of a command that binds the leader's timestamp into each statement
/// ([`stamped`]): the single statement of `Insert`, `Update` or `Delete`. `None` for DDL
/// and client SQL batches, which run after a session [`set_timestamp`] instead (client
/// SQL is run as written, and DDL is not prepared).
pub fn stamped_statements(command: &Command, timestamp_us: u64) -> Option<Vec<Statement>> {
    match command {
        Command::Insert { .. } | Command::Update { .. } | Command::Delete { .. } => Some(
            statements(command)
                .into_iter()
                .map(|s| stamped(s, timestamp_us))
                .collect(),
        ),
        Command::Ddl { .. }
        | Command::Sql { .. }
        | Command::CheckBarrier { .. }
        | Command::Outcomes { .. }
        | Command::Certified { .. } => None,
    }
}

/// The statements every node runs for `command`, in order.
pub fn statements(command: &Command) -> Vec<Statement> {
    match command {
        Command::Insert { table, values } => vec![insert(table, values)],
        Command::Update {
            table,
            set,
            where_key,
        } => vec![update(table, set, where_key)],
        Command::Delete { table, where_key } => vec![delete(table, where_key)],
        Command::Ddl { statement } => vec![Statement {
            sql: statement.clone(),
            params: Vec::new(),
        }],
        Command::Sql { statements, .. } => statements
            .iter()
            .map(|s| client_statement(&s.sql, &s.params))
            .collect(),
        // A barrier runs nothing; the applier takes its snapshot after the commit.
        Command::CheckBarrier { .. } => Vec::new(),
        // Bookkeeping of the applier: no SQL.
        Command::Outcomes { .. } => Vec::new(),
        Command::Certified { steps, .. } => steps
            .iter()
            .map(|s| client_statement(&s.sql, &s.params))
            .collect(),
    }
}

/// A client's statement as written, with its parameters bound.
pub fn client_statement(sql: &str, params: &[Value]) -> Statement {
    Statement {
        sql: sql.to_string(),
        params: params.iter().map(to_mysql).collect(),
    }
}

/// `INSERT INTO `t` (`a`,`b`) VALUES (?,?)`.
pub fn insert(table: &Ident, values: &[Column]) -> Statement {
    let cols: Vec<String> = values
        .iter()
        .map(|(c, _)| quote_ident(c.as_str()))
        .collect();
    let marks = vec!["?"; values.len()].join(",");
    Statement {
        sql: format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            quote_ident(table.as_str()),
            cols.join(",")
        ),
        params: values.iter().map(|(_, v)| to_mysql(v)).collect(),
    }
}

/// `UPDATE `t` SET `a`=?,`b`=? WHERE `k`=? AND `n` IS NULL`.
pub fn update(table: &Ident, set: &[Column], where_key: &[Column]) -> Statement {
    let assignments: Vec<String> = set
        .iter()
        .map(|(c, _)| format!("{}=?", quote_ident(c.as_str())))
        .collect();
    let mut params: Vec<mysql_async::Value> = set.iter().map(|(_, v)| to_mysql(v)).collect();
    let cond = condition(where_key, &mut params);
    Statement {
        sql: format!(
            "UPDATE {} SET {} WHERE {cond}",
            quote_ident(table.as_str()),
            assignments.join(",")
        ),
        params,
    }
}

/// `DELETE FROM `t` WHERE `k`=? AND …`.
pub fn delete(table: &Ident, where_key: &[Column]) -> Statement {
    let mut params = Vec::new();
    let cond = condition(where_key, &mut params);
    Statement {
        sql: format!("DELETE FROM {} WHERE {cond}", quote_ident(table.as_str())),
        params,
    }
}

/// ANDed equalities; a NULL key becomes `IS NULL` (plain `= NULL` would match nothing).
fn condition(where_key: &[Column], params: &mut Vec<mysql_async::Value>) -> String {
    let parts: Vec<String> = where_key
        .iter()
        .map(|(c, v)| {
            if *v == Value::Null {
                format!("{} IS NULL", quote_ident(c.as_str()))
            } else {
                params.push(to_mysql(v));
                format!("{}=?", quote_ident(c.as_str()))
            }
        })
        .collect();
    parts.join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::lex::{tokenize, Kind};
    use super::*;
    use crate::command::strategies;
    use proptest::prelude::*;

    fn ident(name: &str) -> Ident {
        Ident::column(name).expect("test name is valid")
    }

    fn cols(pairs: &[(&str, Value)]) -> Vec<Column> {
        pairs.iter().map(|(n, v)| (ident(n), v.clone())).collect()
    }

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

    #[test]
    fn hostile_names_are_quoted_or_refused() {
        for name in [
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
            &"x".repeat(64),
            &"é".repeat(64),
        ] {
            assert!(
                Ident::column(name).is_ok(),
                "{name:?} is a valid column name"
            );
            assert_one_identifier(name);
        }
        for name in [
            "",
            "a\0b",
            "line\nbreak",
            "tab\t",
            "\u{7f}",
            "emoji 😀",
            "trailing ",
            &"x".repeat(65),
            &"y".repeat(10 * 1024),
        ] {
            let e = Ident::column(name).expect_err(name);
            assert_eq!(e.code(), "invalid_identifier");
            assert!(e.to_string().len() < 300, "error messages stay short");
        }
        assert!(Ident::table("a.b").is_err(), "table names are unqualified");
    }

    #[test]
    fn insert_update_delete_text() {
        let t = ident("users");
        let s = insert(
            &t,
            &cols(&[
                ("id", Value::Int(1)),
                ("na`me", Value::Text("Alice".into())),
            ]),
        );
        assert_eq!(s.sql, "INSERT INTO `users` (`id`,`na``me`) VALUES (?,?)");
        assert_eq!(
            s.params,
            [
                mysql_async::Value::Int(1),
                mysql_async::Value::Bytes(b"Alice".to_vec())
            ]
        );

        let s = update(
            &t,
            &cols(&[("name", Value::Text("Bob".into())), ("n", Value::Null)]),
            &cols(&[("id", Value::Int(1)), ("deleted", Value::Null)]),
        );
        assert_eq!(
            s.sql,
            "UPDATE `users` SET `name`=?,`n`=? WHERE `id`=? AND `deleted` IS NULL"
        );
        assert_eq!(
            s.params,
            [
                mysql_async::Value::Bytes(b"Bob".to_vec()),
                mysql_async::Value::NULL,
                mysql_async::Value::Int(1)
            ]
        );

        let s = delete(&t, &cols(&[("id", Value::UInt(u64::MAX))]));
        assert_eq!(s.sql, "DELETE FROM `users` WHERE `id`=?");
        assert_eq!(s.params, [mysql_async::Value::UInt(u64::MAX)]);
    }

    #[test]
    fn command_statements() {
        let ddl = Command::Ddl {
            statement: "DROP TABLE t".into(),
        };
        assert_eq!(
            statements(&ddl),
            [Statement {
                sql: "DROP TABLE t".into(),
                params: vec![]
            }]
        );
        let batch = Command::Sql {
            statements: vec![
                crate::command::SqlStatement {
                    sql: "INSERT INTO t (a) VALUES (?)".into(),
                    params: vec![Value::Bool(true)],
                },
                crate::command::SqlStatement {
                    sql: "DELETE FROM t WHERE a = 0".into(),
                    params: vec![],
                },
            ],
            transaction: true,
        };
        let st = statements(&batch);
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].params, [mysql_async::Value::Int(1)]);
        assert_eq!(st[1].params(), mysql_async::Params::Empty);
        assert_eq!(
            st[0].params(),
            mysql_async::Params::Positional(vec![mysql_async::Value::Int(1)])
        );
    }

    #[test]
    fn values_map_exactly() {
        assert_eq!(
            to_mysql(&Value::Int(i64::MIN)),
            mysql_async::Value::Int(i64::MIN)
        );
        assert_eq!(
            to_mysql(&Value::UInt(18446744073709551615)),
            mysql_async::Value::UInt(u64::MAX)
        );
        assert_eq!(
            to_mysql(&Value::Number("123456789012345678901234567890".into())),
            mysql_async::Value::Bytes(b"123456789012345678901234567890".to_vec())
        );
        assert_eq!(to_mysql(&Value::Bool(false)), mysql_async::Value::Int(0));
        assert_eq!(
            to_mysql(&Value::Bytes(vec![0, 255, b'\''])),
            mysql_async::Value::Bytes(vec![0, 255, b'\''])
        );
        assert_eq!(
            to_mysql(&Value::Text("a\0'\\".into())),
            mysql_async::Value::Bytes(b"a\0'\\".to_vec())
        );
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
    fn stamped_statements_bind_the_timestamp_first() {
        let table = Ident::table("t").expect("valid");
        let insert = Command::Insert {
            table: table.clone(),
            values: vec![(Ident::column("a").expect("valid"), Value::Int(7))],
        };
        let st = stamped_statements(&insert, 1_732_596_266_123_456).expect("insert is stamped");
        assert_eq!(st.len(), 1);
        assert_eq!(
            st[0].sql,
            "SET STATEMENT timestamp = CAST(? AS DECIMAL(20,6)) FOR INSERT INTO `t` (`a`) VALUES (?)"
        );
        assert_eq!(
            st[0].params,
            vec![
                mysql_async::Value::Bytes(b"1732596266.123456".to_vec()),
                mysql_async::Value::Int(7)
            ]
        );
        // The text does not depend on the timestamp: one prepared statement serves all.
        let later = stamped_statements(&insert, 1_732_596_299_000_001).expect("stamped");
        assert_eq!(later[0].sql, st[0].sql);
        assert_eq!(
            later[0].sql.matches('?').count(),
            later[0].params.len(),
            "one parameter per marker"
        );
        assert_eq!(
            stamped_statements(&insert, 0).expect("stamped")[0].params[0],
            mysql_async::Value::Bytes(b"0.000001".to_vec())
        );
        let key = vec![(Ident::column("id").expect("valid"), Value::Int(1))];
        for c in [
            Command::Update {
                table: table.clone(),
                set: vec![(Ident::column("a").expect("valid"), Value::Null)],
                where_key: key.clone(),
            },
            Command::Delete {
                table: table.clone(),
                where_key: key,
            },
        ] {
            let st = stamped_statements(&c, 9).expect("stamped");
            assert!(st[0]
                .sql
                .starts_with("SET STATEMENT timestamp = CAST(? AS DECIMAL(20,6)) FOR "));
            assert_eq!(st[0].sql.matches('?').count(), st[0].params.len());
        }
        assert!(stamped_statements(
            &Command::Ddl {
                statement: "CREATE TABLE x (a INT)".into()
            },
            1
        )
        .is_none());
        assert!(stamped_statements(
            &Command::Sql {
                statements: vec![],
                transaction: true
            },
            1
        )
        .is_none());
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

    /// Replaces every value that is not NULL with another non-NULL value.
    fn scrambled(cols: &[Column]) -> Vec<Column> {
        cols.iter()
            .map(|(c, v)| {
                (
                    c.clone(),
                    if *v == Value::Null {
                        Value::Null
                    } else {
                        Value::Int(7)
                    },
                )
            })
            .collect()
    }

    proptest! {
        #[test]
        fn hostile_identifiers_round_trip_or_are_refused(
            name in prop_oneof!["\\PC{0,80}", "[`'\";\\-#/* \0\n.a-z😀]{0,70}", Just("z".repeat(10_000))]
        ) {
            let chars = name.chars().count();
            let broken = name.is_empty()
                || chars > 64
                || name.chars().any(|c| c.is_ascii_control() || u32::from(c) > 0xFFFF)
                || name.ends_with(' ');
            match Ident::column(&name) {
                Ok(id) => {
                    prop_assert!(!broken, "{:?} should be refused", name);
                    assert_one_identifier(id.as_str());
                }
                Err(e) => prop_assert!(broken, "{:?} refused: {}", name, e),
            }
        }

        #[test]
        fn generated_sql_never_contains_a_value(cmd in strategies::command()) {
            let scrambled_cmd = match &cmd {
                Command::Insert { table, values } => Some(Command::Insert { table: table.clone(), values: scrambled(values) }),
                Command::Update { table, set, where_key } => Some(Command::Update {
                    table: table.clone(), set: scrambled(set), where_key: scrambled(where_key),
                }),
                Command::Delete { table, where_key } => Some(Command::Delete { table: table.clone(), where_key: scrambled(where_key) }),
                _ => None,
            };
            if let Some(other) = scrambled_cmd {
                let a = statements(&cmd);
                let b = statements(&other);
                prop_assert_eq!(&a[0].sql, &b[0].sql, "text depends only on names and NULLs");
                let toks = tokenize(&a[0].sql).expect("generated SQL lexes");
                let marks = toks.iter().filter(|t| t.kind == Kind::Placeholder).count();
                let is_null = toks.iter().filter(|t| t.is_word(&a[0].sql, "IS")).count();
                prop_assert_eq!(marks, a[0].params.len());
                let (values, nulls_in_where): (Vec<&Value>, usize) = match &cmd {
                    Command::Insert { values, .. } => (values.iter().map(|(_, v)| v).collect(), 0),
                    Command::Update { set, where_key, .. } => (
                        set.iter().chain(where_key.iter().filter(|(_, v)| *v != Value::Null)).map(|(_, v)| v).collect(),
                        where_key.iter().filter(|(_, v)| *v == Value::Null).count(),
                    ),
                    Command::Delete { where_key, .. } => (
                        where_key.iter().filter(|(_, v)| *v != Value::Null).map(|(_, v)| v).collect(),
                        where_key.iter().filter(|(_, v)| *v == Value::Null).count(),
                    ),
                    _ => unreachable!("only row commands are scrambled"),
                };
                let expected: Vec<mysql_async::Value> = values.into_iter().map(to_mysql).collect();
                prop_assert_eq!(&a[0].params, &expected);
                prop_assert_eq!(is_null, nulls_in_where);
            }
        }
    }
}
