//! The replicated operations — the only things that enter the log — and their validation.
//!
//! A client request ([`request`]) is checked and turned into an [`Entry`]: a [`Command`]
//! plus the leader's timestamp and any Snowflake IDs it generated, so every node applies
//! exactly the same thing. Entries are encoded with a versioned binary codec for the WAL.
//! This module knows nothing of storage or the network; SQL text is built in [`crate::sql`].
//!
//! # Entry encoding (version 1)
//!
//! ```text
//! byte 0     format version: ENTRY_FORMAT_VERSION (1)
//! bytes 1..  postcard encoding of `Entry`: integers as LEB128 varints (signed ones
//!            zigzagged), strings and sequences length-prefixed, enum variants as a varint
//!            index in declaration order, tuples and structs as their fields in order
//! ```
//!
//! Compatibility: new [`Command`] or [`Value`] variants are only ever appended, which old
//! entries cannot contain; any other layout change takes a new version byte, and the
//! decoder keeps reading every older version. Validation rules apply when a request is
//! accepted, never when an entry is decoded, so a stricter build still reads the log that
//! an older one wrote.

pub mod request;

pub use request::{
    prepare, DdlRequest, DeleteRequest, Fields, Input, InsertRequest, SqlRequest,
    SqlStatementRequest, UpdateRequest, Wait, WriteRequest,
};

use crate::sql::SqlError;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// First byte of every encoded [`Entry`]; bump it for any incompatible layout change.
pub const ENTRY_FORMAT_VERSION: u8 = 1;
/// MariaDB's limit on table and column names, in characters.
pub const MAX_IDENT_CHARS: usize = 64;
/// Most columns in one `values`, `set` or `where_key` (InnoDB allows 1017 per table).
pub const MAX_COLUMNS: usize = 1024;
/// Most statements in one `/write/sql` batch.
pub const MAX_STATEMENTS: usize = 1000;
/// Most parameters of one statement: the MySQL protocol counts them in 16 bits.
pub const MAX_PARAMS: usize = 65_535;
/// Largest encoded entry. Half of MariaDB's default `max_allowed_packet` (16 MiB), so a
/// statement and its parameters always fit one packet.
pub const MAX_ENTRY_BYTES: usize = 8 << 20;
/// Longest number literal kept as text; MariaDB's DECIMAL holds 65 digits.
pub const MAX_NUMBER_CHARS: usize = 100;

/// A validated table or column name, stored unquoted; [`crate::sql::quote_ident`] quotes it.
///
/// Rules (checked by [`Ident::table`] and [`Ident::column`]): 1 to 64 characters; no NUL,
/// no other control character (U+0001–U+001F, U+007F: stricter than MariaDB, so names
/// stay printable in logs); no character beyond U+FFFF (MariaDB refuses those); no
/// trailing space (MariaDB refuses that). Table names may not contain `.`: they are never
/// database-qualified, every node writes to its configured database. Backticks, quotes,
/// `;` and any other character are allowed and are quoted safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ident(String);

impl Ident {
    /// Checks a table name.
    ///
    /// # Errors
    /// [`Error::InvalidIdentifier`] naming the broken rule.
    pub fn table(name: &str) -> Result<Ident, Error> {
        Self::checked(name, "table")
    }

    /// Checks a column name.
    ///
    /// # Errors
    /// [`Error::InvalidIdentifier`] naming the broken rule.
    pub fn column(name: &str) -> Result<Ident, Error> {
        Self::checked(name, "column")
    }

    /// The name as given, unquoted.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn checked(name: &str, role: &'static str) -> Result<Ident, Error> {
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.chars().count() > MAX_IDENT_CHARS {
            Some("it is longer than 64 characters")
        } else if name.contains('\0') {
            Some("it contains a NUL character")
        } else if name.chars().any(|c| c.is_ascii_control()) {
            Some("it contains a control character")
        } else if name.chars().any(|c| u32::from(c) > 0xFFFF) {
            Some("it contains a character beyond U+FFFF, which MariaDB refuses in names")
        } else if name.ends_with(' ') {
            Some("it ends with a space, which MariaDB refuses")
        } else if role == "table" && name.contains('.') {
            Some("it contains `.`: table names are unqualified, the database is the one in the node's config")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidIdentifier {
                role,
                name: shown(name),
                reason,
            }),
            None => Ok(Ident(name.to_string())),
        }
    }
}

/// A name as shown in an error message: at most 64 characters, escaped onto one line.
pub(crate) fn shown(name: &str) -> String {
    let cut: String = name.chars().take(MAX_IDENT_CHARS).collect();
    let more = if cut.len() < name.len() { "…" } else { "" };
    format!("\"{}\"{more}", cut.escape_debug())
}

/// A value bound as a statement parameter; never spliced into SQL text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Bound as 1 or 0, as MariaDB stores BOOLEAN.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// An integer above `i64::MAX` that fits `u64`.
    UInt(u64),
    /// Any other JSON number (beyond 64 bits, a fraction or an exponent) as its exact
    /// decimal text; MariaDB converts it to the column's type without going through f64.
    Number(String),
    /// A JSON string (UTF-8, may hold NUL).
    Text(String),
    /// Arbitrary bytes, sent by clients as `{"$base64": "…"}`.
    Bytes(Vec<u8>),
}

/// A column name and the value for it, in request order.
pub type Column = (Ident, Value);

/// One statement of a [`Command::Sql`] batch, checked by [`crate::sql::check_write`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlStatement {
    /// One INSERT/UPDATE/DELETE/REPLACE with `?` markers, no trailing `;`.
    pub sql: String,
    /// One value per `?`, in order.
    pub params: Vec<Value>,
}

/// A replicated operation, as validated on the leader; `sql::statements` turns it into
/// the exact statements every node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// One row.
    Insert {
        /// Target table.
        table: Ident,
        /// Non-empty, distinct columns (a Snowflake column included).
        values: Vec<Column>,
    },
    /// The rows matching `where_key` (column = value, NULL meaning IS NULL).
    Update {
        /// Target table.
        table: Ident,
        /// Non-empty, distinct columns to assign.
        set: Vec<Column>,
        /// Non-empty, distinct equality conditions, ANDed.
        where_key: Vec<Column>,
    },
    /// The rows matching `where_key`.
    Delete {
        /// Target table.
        table: Ident,
        /// Non-empty, distinct equality conditions, ANDed.
        where_key: Vec<Column>,
    },
    /// One schema change, checked by [`crate::sql::check_ddl`]; applied alone.
    Ddl {
        /// The statement, no trailing `;`, no placeholders.
        statement: String,
    },
    /// A batch of writes.
    Sql {
        /// Non-empty, in order.
        statements: Vec<SqlStatement>,
        /// All or nothing when true; otherwise each statement's error is its own result.
        transaction: bool,
    },
}

impl Command {
    /// Whether this entry must be applied alone, outside a group transaction (MariaDB
    /// commits implicitly around DDL).
    pub fn is_ddl(&self) -> bool {
        matches!(self, Command::Ddl { .. })
    }
}

/// What the log carries: a command and everything a node needs to apply it identically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The leader's clock when it accepted the request, microseconds since the Unix
    /// epoch; applied with `SET timestamp` so NOW() agrees on every node.
    pub timestamp_us: u64,
    /// Snowflake IDs the leader generated for this entry, returned to the client.
    pub ids: Vec<u64>,
    /// The operation.
    pub command: Command,
}

/// Why bytes from the log are not an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Zero bytes.
    #[error("empty entry payload")]
    Empty,
    /// Written by a newer build (or not an entry at all).
    #[error(
        "entry format version {0} is unknown to this build (it reads version 1); upgrade wolfscale"
    )]
    UnknownVersion(u8),
    /// The body does not decode.
    #[error("malformed entry payload: {0}")]
    Malformed(String),
    /// The body decoded but bytes were left over.
    #[error("entry payload has {0} unexpected trailing byte(s)")]
    TrailingBytes(usize),
}

impl Entry {
    /// The leader's timestamp in milliseconds.
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_us / 1000
    }

    /// Encodes the entry for the WAL (see the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, vec![ENTRY_FORMAT_VERSION])
            .expect("postcard encodes every Entry: all its sequences have known lengths")
    }

    /// Decodes bytes written by [`Entry::encode`] of this or an older build.
    ///
    /// # Errors
    /// A [`DecodeError`] for empty, foreign, truncated or padded input; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != ENTRY_FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let (entry, rest) = postcard::take_from_bytes::<Entry>(body)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        Ok(entry)
    }

    /// One line for `wolfscale wal dump`: the operation, table and column names, counts and
    /// timestamp. Values are never shown; SQL text is cut to 80 characters.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let names = |cols: &[Column]| {
            let list: Vec<String> = cols.iter().map(|(c, _)| shown(c.as_str())).collect();
            format!("[{}]", list.join(","))
        };
        // Writing to a String cannot fail.
        let _ = match &self.command {
            Command::Insert { table, values } => write!(
                s,
                "insert table={} columns={}",
                shown(table.as_str()),
                names(values)
            ),
            Command::Update {
                table,
                set,
                where_key,
            } => write!(
                s,
                "update table={} set={} where={}",
                shown(table.as_str()),
                names(set),
                names(where_key)
            ),
            Command::Delete { table, where_key } => write!(
                s,
                "delete table={} where={}",
                shown(table.as_str()),
                names(where_key)
            ),
            Command::Ddl { statement } => write!(s, "ddl sql={}", one_line(statement, 80)),
            Command::Sql {
                statements,
                transaction,
            } => write!(
                s,
                "sql statements={} transaction={} params={} first={}",
                statements.len(),
                transaction,
                statements.iter().map(|st| st.params.len()).sum::<usize>(),
                statements
                    .first()
                    .map_or_else(String::new, |st| one_line(&st.sql, 80))
            ),
        };
        let _ = write!(
            s,
            " ts={}.{:06}",
            self.timestamp_us / 1_000_000,
            self.timestamp_us % 1_000_000
        );
        if !self.ids.is_empty() {
            let ids: Vec<String> = self.ids.iter().map(u64::to_string).collect();
            let _ = write!(s, " ids=[{}]", ids.join(","));
        }
        s
    }
}

/// `text` with whitespace runs collapsed, control characters escaped, cut to `max` chars.
fn one_line(text: &str, max: usize) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = collapsed.chars().take(max).collect();
    let more = if cut.len() < collapsed.len() {
        "…"
    } else {
        ""
    };
    format!("\"{}\"{more}", cut.escape_debug())
}

/// Why a request is refused before anything is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A table or column name breaks a rule of [`Ident`].
    #[error("invalid {role} name {name}: {reason}")]
    InvalidIdentifier {
        /// "table" or "column".
        role: &'static str,
        /// The name, escaped and cut to 64 characters.
        name: String,
        /// The broken rule.
        reason: &'static str,
    },
    /// `values` or `set` has no column.
    #[error("`{field}` is empty: give at least one column")]
    EmptyColumns {
        /// The request field.
        field: &'static str,
    },
    /// `where_key` has no column: no accidental whole-table update or delete.
    #[error("`where_key` is empty: an update or delete must name the rows it changes (a whole-table change goes through /write/sql)")]
    EmptyWhere,
    /// The same column twice (names compare case-insensitively, as in MariaDB).
    #[error("column {column} appears more than once in `{field}`")]
    DuplicateColumn {
        /// The request field.
        field: &'static str,
        /// The repeated name, escaped.
        column: String,
    },
    /// A value that cannot be bound.
    #[error("invalid value for {at}: {reason}")]
    InvalidValue {
        /// Where: a column or a statement's parameter.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// A `/write/sql` request without statements.
    #[error("`statements` is empty: give at least one statement")]
    EmptyBatch,
    /// A bound from this module's constants is exceeded.
    #[error("{what} is too large: {actual} exceeds the limit of {limit}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// What the request has.
        actual: usize,
    },
    /// The DDL statement is refused.
    #[error(transparent)]
    Ddl(SqlError),
    /// A batch statement is refused.
    #[error("statement {index}: {source}")]
    Statement {
        /// Its 0-based position in `statements`.
        index: usize,
        /// Why.
        source: SqlError,
    },
}

impl Error {
    /// Stable machine-readable code for API error bodies, e.g. `invalid_identifier`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidIdentifier { .. } => "invalid_identifier",
            Error::EmptyColumns { .. } => "empty_values",
            Error::EmptyWhere => "empty_where",
            Error::DuplicateColumn { .. } => "duplicate_column",
            Error::InvalidValue { .. } => "invalid_value",
            Error::EmptyBatch => "empty_batch",
            Error::TooLarge { .. } => "too_large",
            Error::Ddl(e) | Error::Statement { source: e, .. } => e.code(),
        }
    }

    /// The HTTP status for this refusal: 413 when too large, 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::TooLarge { .. } => 413,
            _ => 400,
        }
    }
}
