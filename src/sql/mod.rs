//! The only place SQL text exists: identifier quoting, the parameterised statements a
//! [`Command`] becomes, the session settings every applier connection uses, the checks on
//! client SQL ([`check_ddl`], [`check_write`], [`check_read`], [`NON_DETERMINISTIC`]) and
//! the classification of MariaDB error codes ([`classify`]). It runs nothing: the applier
//! owns connections.
//!
//! Values are always bound as parameters, never spliced into text; the only numbers in
//! generated text are the leader's timestamp, formatted from a `u64`.

mod check;
mod errors;
mod lex;

pub use check::{
    check_ddl, check_deterministic, check_read, check_write, statement_kind, Pattern, Rule,
    SqlError, StatementKind, NON_DETERMINISTIC,
};
pub use errors::{classify, ddl_already_applied, ErrorClass};

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
    let us = timestamp_us.max(1);
    format!("SET timestamp = {}.{:06}", us / 1_000_000, us % 1_000_000)
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
            .map(|s| Statement {
                sql: s.sql.clone(),
                params: s.params.iter().map(to_mysql).collect(),
            })
            .collect(),
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
