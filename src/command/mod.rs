//! The replicated operations — the only things that enter the log — and their validation.
//!
//! A client request ([`request`]) is checked and turned into an [`Entry`]: a [`Command`]
//! plus the leader's timestamp and any Snowflake IDs it generated, so every node applies
//! exactly the same thing. Entries are encoded with a versioned binary codec for the WAL.
//! This module knows nothing of storage or the network; SQL text is built and checked in
//! [`crate::sql`], which in turn knows nothing of commands (`to_sql` binds the two).
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

mod certified;
pub mod request;
mod to_sql;

pub use certified::prepare_certified;
pub use request::{
    prepare, CertifiedRequest, DdlRequest, DeleteRequest, Fields, Input, InsertRequest, SqlRequest,
    SqlStatementRequest, UpdateRequest, Wait, WriteRequest,
};
pub use to_sql::{client_statement, stamped_statements, statements, to_mysql};

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
/// database-qualified, every node writes to its configured database. No name may be
/// `_wolfscale`, in any letter case: that is the applier's position table (client SQL is
/// held to the same rule by [`crate::sql::check_write`]). Backticks, quotes, `;` and any
/// other character are allowed and are quoted safely.
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
        } else if name.eq_ignore_ascii_case(crate::sql::position::POSITION_TABLE) {
            Some("it is the name of WolfScale's own position table, reserved in writes")
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

/// A replicated operation, as validated on the leader; [`statements`] turns it into
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
    /// A divergence-check barrier: changes nothing, but each node, on applying it, takes a
    /// consistent snapshot of its database at exactly this LSN for check `id` (see
    /// `apply::check`). Never built from a client request; applied alone in its entry.
    CheckBarrier {
        /// The check run this barrier belongs to.
        id: u64,
    },
    /// Outcome agreement: the digests of the outcomes the leader reached for earlier
    /// entries. Every node compares them with its own and stops as DIVERGED on a
    /// difference. Proposed by the leader only, never built from a client request; last in
    /// the enum so older entries decode unchanged.
    Outcomes {
        /// In LSN order.
        digests: Vec<OutcomeDigest>,
    },
    /// An interactive transaction a client ran on one node, certified where it is applied:
    /// every node replays its steps in order, under the session timestamp the client saw,
    /// and compares what it observes with what the client observed. Any difference (another
    /// transaction earlier in the log changed what it read or wrote) rolls the whole
    /// transaction back on every node alike, and the client's COMMIT fails as a conflict
    /// it can retry (see `apply::certify`). Appended last so older entries decode unchanged.
    Certified {
        /// The `SET timestamp` the client's statements ran under, microseconds since the
        /// Unix epoch, so `NOW()` observed by the client is what every node computes.
        timestamp_us: u64,
        /// The client's statements, in the order it ran them; never empty.
        steps: Vec<CertifiedStep>,
    },
}

/// One statement of a [`Command::Certified`] transaction and what the client saw of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedStep {
    /// The statement with `?` markers, checked by [`crate::sql::check_certified_step`].
    pub sql: String,
    /// One value per `?`, in order.
    pub params: Vec<Value>,
    /// What the client was told.
    pub observed: Observed,
}

/// What one statement of an interactive transaction returned to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Observed {
    /// A read: its rows, as [`crate::apply::rows_digest`] summarises them.
    Rows {
        /// Number of rows.
        count: u64,
        /// Order-independent digest of the rows' values.
        digest: u64,
    },
    /// A write (or a savepoint statement): what MariaDB's OK packet said.
    Changed {
        /// Rows affected.
        affected_rows: u64,
        /// The AUTO_INCREMENT value the statement generated; 0 when none. Every node
        /// generates the same one (`SET insert_id`), or the transaction conflicts.
        insert_id: u64,
    },
    /// The statement failed with this MariaDB error and the transaction went on.
    Failed {
        /// MariaDB's error number.
        code: u16,
    },
    /// A read sent as text (no parameters): its rows as MariaDB's text protocol returns
    /// them, summarised as for [`Observed::Rows`]; every node reads it as text again.
    /// Appended last so older entries decode unchanged.
    TextRows {
        /// Number of rows.
        count: u64,
        /// Order-independent digest of the rows' values.
        digest: u64,
    },
}

/// One entry's outcome as the leader reached it: a digest over every request's result
/// (rows affected, generated ids, or the MariaDB error number), never over messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeDigest {
    /// The entry's log index.
    pub lsn: u64,
    /// See [`crate::apply::Outcome::digest`].
    pub digest: u64,
}

impl Command {
    /// Whether this entry must be applied alone, outside a group transaction (MariaDB
    /// commits implicitly around DDL).
    pub fn is_ddl(&self) -> bool {
        matches!(self, Command::Ddl { .. })
    }

    /// Whether the leader must put this command in a log entry of its own: DDL, and a
    /// check barrier (nothing of the same entry may apply after it before the snapshot).
    pub fn alone_in_entry(&self) -> bool {
        matches!(self, Command::Ddl { .. } | Command::CheckBarrier { .. })
    }

    /// The check id, for a [`Command::CheckBarrier`].
    pub fn check_barrier(&self) -> Option<u64> {
        match self {
            Command::CheckBarrier { id } => Some(*id),
            _ => None,
        }
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
            Command::Outcomes { digests } => write!(
                s,
                "outcomes entries={} first={} last={}",
                digests.len(),
                digests.first().map_or(0, |d| d.lsn),
                digests.last().map_or(0, |d| d.lsn)
            ),
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
            Command::CheckBarrier { id } => write!(s, "check-barrier id={id}"),
            Command::Certified {
                timestamp_us,
                steps,
            } => write!(
                s,
                "certified steps={} params={} session_ts={}.{:06} first={}",
                steps.len(),
                steps.iter().map(|st| st.params.len()).sum::<usize>(),
                timestamp_us / 1_000_000,
                timestamp_us % 1_000_000,
                steps
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

    /// Whether a statement was refused because its result would differ between nodes.
    pub fn is_non_deterministic(&self) -> bool {
        match self {
            Error::Ddl(e) | Error::Statement { source: e, .. } => e.is_non_deterministic(),
            _ => false,
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

/// proptest strategies for commands and entries.
#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    pub fn ident() -> impl Strategy<Value = Ident> {
        "[a-zA-Z_`'\";é表-][a-zA-Z0-9_ `'\";é表/*-]{0,20}"
            .prop_filter_map("valid name", |s| Ident::column(&s).ok())
    }

    pub fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Value::UInt),
            "-?[1-9][0-9]{19,40}(\\.[0-9]{1,5})?".prop_map(Value::Number),
            "\\PC{0,20}".prop_map(Value::Text),
            vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
        ]
    }

    /// Distinct (case-insensitively) column names with values.
    pub fn columns() -> impl Strategy<Value = Vec<Column>> {
        vec((ident(), value()), 1..6).prop_map(|cols| {
            let mut seen = std::collections::HashSet::new();
            cols.into_iter()
                .filter(|(c, _)| seen.insert(c.as_str().to_lowercase()))
                .collect()
        })
    }

    pub fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (ident(), columns()).prop_map(|(table, values)| Command::Insert { table, values }),
            (ident(), columns(), columns()).prop_map(|(table, set, where_key)| Command::Update {
                table,
                set,
                where_key
            }),
            (ident(), columns())
                .prop_map(|(table, where_key)| Command::Delete { table, where_key }),
            "\\PC{0,40}".prop_map(|statement| Command::Ddl { statement }),
            (vec(("\\PC{0,40}", vec(value(), 0..4)), 1..4), any::<bool>()).prop_map(
                |(st, transaction)| Command::Sql {
                    statements: st
                        .into_iter()
                        .map(|(sql, params)| SqlStatement { sql, params })
                        .collect(),
                    transaction,
                }
            ),
        ]
    }

    pub fn entry() -> impl Strategy<Value = Entry> {
        (any::<u64>(), vec(any::<u64>(), 0..3), command()).prop_map(
            |(timestamp_us, ids, command)| Entry {
                timestamp_us,
                ids,
                command,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn insert(json: &str) -> Result<Entry, Error> {
        let req: InsertRequest = serde_json::from_str(json).expect("request parses");
        prepare(WriteRequest::Insert(req), 1_000_000, &mut || 42)
    }

    fn values(entry: &Entry) -> Vec<(String, Value)> {
        match &entry.command {
            Command::Insert { values, .. } => values
                .iter()
                .map(|(c, v)| (c.as_str().to_string(), v.clone()))
                .collect(),
            other => panic!("not an insert: {other:?}"),
        }
    }

    #[test]
    fn spec_insert_example() {
        let e =
            insert(r#"{"table": "users", "values": {"id": 1, "name": "Alice"}}"#).expect("valid");
        assert_eq!(
            values(&e),
            [
                ("id".into(), Value::Int(1)),
                ("name".into(), Value::Text("Alice".into()))
            ]
        );
        assert_eq!(e.timestamp_us, 1_000_000);
        assert!(e.ids.is_empty());
    }

    #[test]
    fn hostile_names_are_valid_or_refused() {
        for name in crate::sql::tests::hostile_names() {
            let name = name.as_str();
            let id = Ident::column(name).unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
            assert_eq!(
                crate::sql::unquote_ident(&crate::sql::quote_ident(id.as_str())).as_deref(),
                Some(name)
            );
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

    proptest::proptest! {
        #[test]
        fn identifiers_are_refused_exactly_when_mariadb_could_not_take_them(
            name in proptest::prop_oneof![
                "\\PC{0,80}",
                "[`'\";\\-#/* \0\n.a-z😀]{0,70}",
                proptest::strategy::Just("z".repeat(10_000))
            ]
        ) {
            let chars = name.chars().count();
            let broken = name.is_empty()
                || chars > 64
                || name.chars().any(|c| c.is_ascii_control() || u32::from(c) > 0xFFFF)
                || name.ends_with(' ');
            match Ident::column(&name) {
                Ok(_) => proptest::prop_assert!(!broken, "{:?} should be refused", name),
                Err(e) => proptest::prop_assert!(broken, "{:?} refused: {}", name, e),
            }
        }
    }

    #[test]
    fn the_position_table_name_is_reserved() {
        for name in ["_wolfscale", "_WOLFSCALE", "_WolfScale"] {
            for e in [Ident::table(name), Ident::column(name)] {
                let e = e.expect_err(name);
                assert_eq!(e.code(), "invalid_identifier");
                assert!(e.to_string().contains("position table"), "{e}");
            }
        }
        assert!(Ident::table("_wolfscale_x").is_ok());
        assert!(Ident::column("wolfscale").is_ok());
    }

    #[test]
    fn big_integers_stay_exact() {
        let e = insert(
            r#"{"table": "t", "values": {"a": 9223372036854775807, "b": -9223372036854775808,
                "c": 18446744073709551615, "d": 123456789012345678901234567890,
                "e": -18446744073709551616, "f": 0.1, "g": 1e400, "h": -0}}"#,
        )
        .expect("valid");
        assert_eq!(
            values(&e).into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            [
                Value::Int(i64::MAX),
                Value::Int(i64::MIN),
                Value::UInt(u64::MAX),
                Value::Number("123456789012345678901234567890".into()),
                Value::Number("-18446744073709551616".into()),
                Value::Number("0.1".into()),
                Value::Number("1e400".into()),
                Value::Int(0),
            ]
        );
    }

    #[test]
    fn strings_of_any_content_and_base64_bytes() {
        let e = insert(
            r#"{"table": "t", "values": {"s": "it's \"q\" \\ \u0000 ; -- é", "b": {"$base64": "AP8n"}, "n": null, "t": true}}"#,
        )
        .expect("valid");
        assert_eq!(
            values(&e).into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            [
                Value::Text("it's \"q\" \\ \0 ; -- é".into()),
                Value::Bytes(vec![0, 255, b'\'']),
                Value::Null,
                Value::Bool(true),
            ]
        );
    }

    #[test]
    fn arrays_objects_and_bad_base64_are_refused() {
        for (json, needle) in [
            (r#"{"table": "t", "values": {"a": [1, 2]}}"#, "an array"),
            (r#"{"table": "t", "values": {"a": {"x": 1}}}"#, "an object"),
            (
                r#"{"table": "t", "values": {"a": {"$base64": "!!"}}}"#,
                "not valid base64",
            ),
            (
                r#"{"table": "t", "values": {"a": {"$base64": 5}}}"#,
                "an object",
            ),
        ] {
            let e = insert(json).expect_err(json);
            assert_eq!(e.code(), "invalid_value", "{json}");
            assert!(e.to_string().contains(needle), "{json}: {e}");
            assert!(e.to_string().contains("\"a\""), "names the column: {e}");
        }
    }

    #[test]
    fn duplicate_columns_are_refused_case_insensitively() {
        for json in [
            r#"{"table": "t", "values": {"a": 1, "a": 2}}"#,
            r#"{"table": "t", "values": {"Name": 1, "nAME": 2}}"#,
        ] {
            assert_eq!(insert(json).expect_err(json).code(), "duplicate_column");
        }
        let req: DeleteRequest =
            serde_json::from_str(r#"{"table": "t", "where_key": {"k": 1, "K": null}}"#)
                .expect("parses");
        let e = prepare(WriteRequest::Delete(req), 1, &mut || 0).expect_err("dup");
        assert_eq!(
            e,
            Error::DuplicateColumn {
                field: "where_key",
                column: "\"K\"".into()
            }
        );
    }

    #[test]
    fn unknown_fields_and_bad_wait_do_not_parse() {
        assert!(serde_json::from_str::<UpdateRequest>(
            r#"{"table": "t", "set": {"a": 1}, "where": {"id": 1}}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<DdlRequest>(r#"{"ddl": "DROP TABLE t", "wait": "some"}"#)
                .is_err()
        );
        let r: DdlRequest =
            serde_json::from_str(r#"{"ddl": "DROP TABLE t", "wait": "all"}"#).expect("parses");
        assert_eq!(WriteRequest::Ddl(r).wait(), Wait::All);
        let r: DdlRequest = serde_json::from_str(r#"{"ddl": "DROP TABLE t"}"#).expect("parses");
        assert_eq!(r.wait, Wait::Quorum);
    }

    #[test]
    fn requests_also_deserialize_from_a_json_value() {
        let v =
            serde_json::json!({"table": "t", "values": {"a": 5, "b": "x", "c": {"$base64": ""}}});
        let req: InsertRequest = serde_json::from_value(v).expect("parses from Value");
        assert_eq!(
            req.values.0,
            [
                ("a".to_string(), Input::Number("5".into())),
                ("b".to_string(), Input::Text("x".into())),
                ("c".to_string(), Input::Base64(String::new())),
            ]
        );
    }

    #[test]
    fn requests_serialize_back_exactly() {
        let json = r#"{"table":"t","values":{"a":18446744073709551616,"b":{"$base64":"AA=="},"c":[1]},"snowflake":"id","wait":"all"}"#;
        let req: InsertRequest = serde_json::from_str(json).expect("parses");
        assert_eq!(serde_json::to_string(&req).expect("serialises"), json);
    }

    #[test]
    fn snowflake_fills_the_column_and_is_reported() {
        let mut calls = 0;
        let req: InsertRequest =
            serde_json::from_str(r#"{"table": "t", "values": {"name": "x"}, "snowflake": "id"}"#)
                .expect("parses");
        let e = prepare(WriteRequest::Insert(req), 7, &mut || {
            calls += 1;
            1_234_567_890_123
        })
        .expect("valid");
        assert_eq!(calls, 1);
        assert_eq!(e.ids, [1_234_567_890_123]);
        assert_eq!(values(&e)[1], ("id".into(), Value::UInt(1_234_567_890_123)));
    }

    #[test]
    fn snowflake_is_not_drawn_for_an_invalid_request() {
        let mut calls = 0;
        for json in [
            r#"{"table": "t", "values": {"ID": 1}, "snowflake": "id"}"#,
            r#"{"table": "", "values": {"a": 1}, "snowflake": "id"}"#,
            r#"{"table": "t", "values": {"a": [1]}, "snowflake": "id"}"#,
            r#"{"table": "t", "values": {"a": 1}, "snowflake": ""}"#,
        ] {
            let req: InsertRequest = serde_json::from_str(json).expect("parses");
            let e = prepare(WriteRequest::Insert(req), 7, &mut || {
                calls += 1;
                1
            });
            assert!(e.is_err(), "{json}");
        }
        assert_eq!(calls, 0);
    }

    #[test]
    fn empty_values_set_and_where_are_refused() {
        assert_eq!(
            insert(r#"{"table": "t", "values": {}}"#)
                .expect_err("empty")
                .code(),
            "empty_values"
        );
        let up: UpdateRequest =
            serde_json::from_str(r#"{"table": "t", "set": {"a": 1}, "where_key": {}}"#)
                .expect("parses");
        assert_eq!(
            prepare(WriteRequest::Update(up), 1, &mut || 0),
            Err(Error::EmptyWhere)
        );
        let up: UpdateRequest =
            serde_json::from_str(r#"{"table": "t", "set": {}, "where_key": {"id": 1}}"#)
                .expect("parses");
        assert_eq!(
            prepare(WriteRequest::Update(up), 1, &mut || 0),
            Err(Error::EmptyColumns { field: "set" })
        );
        let del: DeleteRequest =
            serde_json::from_str(r#"{"table": "t", "where_key": {}}"#).expect("parses");
        let e = prepare(WriteRequest::Delete(del), 1, &mut || 0).expect_err("empty where");
        assert_eq!((e.code(), e.http_status()), ("empty_where", 400));
    }

    #[test]
    fn bad_table_names_are_refused() {
        let long = "t".repeat(10 * 1024);
        for table in ["", "db.users", "a\0b", long.as_str(), "x "] {
            let req = InsertRequest {
                table: table.to_string(),
                values: Fields(vec![("a".into(), Input::Null)]),
                snowflake: None,
                wait: Wait::Quorum,
            };
            let e = prepare(WriteRequest::Insert(req), 1, &mut || 0).expect_err(table);
            assert_eq!(e.code(), "invalid_identifier");
            assert!(e.to_string().len() < 300);
        }
    }

    #[test]
    fn size_limits() {
        let many: Vec<(String, Input)> = (0..=MAX_COLUMNS)
            .map(|i| (format!("c{i}"), Input::Null))
            .collect();
        let req = InsertRequest {
            table: "t".into(),
            values: Fields(many),
            snowflake: None,
            wait: Wait::Quorum,
        };
        let e = prepare(WriteRequest::Insert(req), 1, &mut || 0).expect_err("too many");
        assert_eq!((e.code(), e.http_status()), ("too_large", 413));

        let huge = "x".repeat(MAX_ENTRY_BYTES);
        let req = InsertRequest {
            table: "t".into(),
            values: Fields(vec![("a".into(), Input::Text(huge))]),
            snowflake: None,
            wait: Wait::Quorum,
        };
        let e = prepare(WriteRequest::Insert(req), 1, &mut || 0).expect_err("too big");
        assert_eq!((e.code(), e.http_status()), ("too_large", 413));

        let st = SqlStatementRequest {
            sql: "DELETE FROM t WHERE id = 1".into(),
            params: vec![],
        };
        let req = SqlRequest {
            statements: vec![st; MAX_STATEMENTS + 1],
            transaction: false,
            wait: Wait::Quorum,
        };
        assert_eq!(
            prepare(WriteRequest::Sql(req), 1, &mut || 0)
                .expect_err("too many")
                .code(),
            "too_large"
        );

        let ddl = DdlRequest {
            ddl: format!("CREATE TABLE t (a INT) -- {}", "x".repeat(MAX_ENTRY_BYTES)),
            wait: Wait::Quorum,
        };
        let e = prepare(WriteRequest::Ddl(ddl), 1, &mut || 0).expect_err("too big");
        assert_eq!((e.code(), e.http_status()), ("too_large", 413));

        let long_number = Input::Number("1".repeat(MAX_NUMBER_CHARS + 1));
        let req = InsertRequest {
            table: "t".into(),
            values: Fields(vec![("a".into(), long_number)]),
            snowflake: None,
            wait: Wait::Quorum,
        };
        assert_eq!(
            prepare(WriteRequest::Insert(req), 1, &mut || 0)
                .expect_err("long")
                .code(),
            "invalid_value"
        );
    }

    #[test]
    fn ddl_is_checked_and_trimmed() {
        let ok = DdlRequest {
            ddl: "  ALTER TABLE users ADD COLUMN email VARCHAR(255);\n".into(),
            wait: Wait::Quorum,
        };
        let e = prepare(WriteRequest::Ddl(ok), 5, &mut || 0).expect("valid");
        assert_eq!(
            e.command,
            Command::Ddl {
                statement: "  ALTER TABLE users ADD COLUMN email VARCHAR(255)".into()
            }
        );
        assert!(e.command.is_ddl());
        for (ddl, code) in [
            ("INSERT INTO t VALUES (1)", "not_ddl"),
            ("DROP TABLE a; DROP TABLE b", "multiple_statements"),
            (
                "CREATE TABLE t (id CHAR(36) DEFAULT (UUID()))",
                "non_deterministic",
            ),
            ("CREATE DATABASE x", "unsupported_ddl"),
            ("CREATE TABLE 'x", "invalid_sql"),
        ] {
            let req = DdlRequest {
                ddl: ddl.into(),
                wait: Wait::Quorum,
            };
            let e = prepare(WriteRequest::Ddl(req), 5, &mut || 0).expect_err(ddl);
            assert_eq!((e.code(), e.http_status()), (code, 400), "{ddl}");
        }
    }

    #[test]
    fn sql_batches_are_checked_per_statement() {
        let req: SqlRequest = serde_json::from_str(
            r#"{"statements": [
                {"sql": "INSERT INTO t (a, b) VALUES (?, ?);", "params": [1, "x"]},
                {"sql": "UPDATE t SET a = a + 1 WHERE b = ?", "params": [null]}
            ], "transaction": true}"#,
        )
        .expect("parses");
        let e = prepare(WriteRequest::Sql(req), 9, &mut || 0).expect("valid");
        assert_eq!(
            e.command,
            Command::Sql {
                statements: vec![
                    SqlStatement {
                        sql: "INSERT INTO t (a, b) VALUES (?, ?)".into(),
                        params: vec![Value::Int(1), Value::Text("x".into())]
                    },
                    SqlStatement {
                        sql: "UPDATE t SET a = a + 1 WHERE b = ?".into(),
                        params: vec![Value::Null]
                    },
                ],
                transaction: true,
            }
        );
        let req: SqlRequest = serde_json::from_str(
            r#"{"statements": [{"sql": "DELETE FROM t WHERE a = 1"}, {"sql": "DELETE FROM t WHERE a = ?"}]}"#,
        )
        .expect("parses");
        assert!(!req.transaction);
        let e = prepare(WriteRequest::Sql(req), 9, &mut || 0).expect_err("param count");
        assert_eq!(e.code(), "param_count");
        assert!(e.to_string().starts_with("statement 1: "), "{e}");

        let req: SqlRequest = serde_json::from_str(r#"{"statements": []}"#).expect("parses");
        assert_eq!(
            prepare(WriteRequest::Sql(req), 9, &mut || 0),
            Err(Error::EmptyBatch)
        );
        let req: SqlRequest = serde_json::from_str(
            r#"{"statements": [{"sql": "INSERT INTO t (a) VALUES (?)", "params": [[1]]}]}"#,
        )
        .expect("parses");
        let e = prepare(WriteRequest::Sql(req), 9, &mut || 0).expect_err("array param");
        assert!(e.to_string().contains("statement 0 parameter 0"), "{e}");
    }

    #[test]
    fn number_grammar() {
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1x", "0x10", "NaN",
        ] {
            let req = InsertRequest {
                table: "t".into(),
                values: Fields(vec![("a".into(), Input::Number(bad.into()))]),
                snowflake: None,
                wait: Wait::Quorum,
            };
            assert_eq!(
                prepare(WriteRequest::Insert(req), 1, &mut || 0)
                    .expect_err(bad)
                    .code(),
                "invalid_value",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn golden_encoding_v1() {
        let e = Entry {
            timestamp_us: 1,
            ids: vec![2],
            command: Command::Insert {
                table: Ident::table("t").expect("valid"),
                values: vec![(Ident::column("a").expect("valid"), Value::Int(-1))],
            },
        };
        // version, ts, ids len, id, Insert, "t", 1 column, "a", Int, zigzag(-1)
        let golden = [1, 1, 1, 2, 0, 1, b't', 1, 1, b'a', 2, 1];
        assert_eq!(e.encode(), golden);
        assert_eq!(Entry::decode(&golden), Ok(e));
    }

    #[test]
    fn decode_errors_are_values() {
        let good = Entry {
            timestamp_us: 5,
            ids: vec![],
            command: Command::Ddl {
                statement: "DROP TABLE t".into(),
            },
        }
        .encode();
        assert_eq!(Entry::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(Entry::decode(&[2, 0]), Err(DecodeError::UnknownVersion(2)));
        assert!(matches!(
            Entry::decode(&good[..good.len() - 1]),
            Err(DecodeError::Malformed(_))
        ));
        let mut padded = good.clone();
        padded.push(0);
        assert_eq!(Entry::decode(&padded), Err(DecodeError::TrailingBytes(1)));
        assert!(
            matches!(Entry::decode(&[1, 0, 0, 9]), Err(DecodeError::Malformed(_))),
            "unknown variant"
        );
        // A length prefix far beyond the input must fail, not allocate.
        assert!(Entry::decode(&[1, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn describe_shows_no_values() {
        let e = Entry {
            timestamp_us: 1_732_596_266_123_456,
            ids: vec![77],
            command: Command::Update {
                table: Ident::table("users").expect("valid"),
                set: vec![(
                    Ident::column("name").expect("valid"),
                    Value::Text("SECRET-NAME".into()),
                )],
                where_key: vec![(Ident::column("id").expect("valid"), Value::Int(987_654_321))],
            },
        };
        assert_eq!(
            e.describe(),
            "update table=\"users\" set=[\"name\"] where=[\"id\"] ts=1732596266.123456 ids=[77]"
        );
        let sql = Entry {
            timestamp_us: 0,
            ids: vec![],
            command: Command::Sql {
                statements: vec![SqlStatement {
                    sql: format!("INSERT INTO t (a)\n VALUES (?) {}", "x".repeat(100)),
                    params: vec![Value::Text("SECRET".into())],
                }],
                transaction: false,
            },
        };
        let d = sql.describe();
        assert!(d.starts_with("sql statements=1 transaction=false params=1 first=\"INSERT INTO t (a) VALUES (?) xxx"), "{d}");
        assert!(
            !d.contains("SECRET") && !d.contains('\n') && d.contains('…'),
            "{d}"
        );
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(entry in strategies::entry()) {
            let bytes = entry.encode();
            prop_assert_eq!(bytes[0], ENTRY_FORMAT_VERSION);
            prop_assert_eq!(Entry::decode(&bytes), Ok(entry.clone()));
            let d = entry.describe();
            prop_assert!(!d.contains('\n'));
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Entry::decode(&bytes);
            let mut v = vec![ENTRY_FORMAT_VERSION];
            v.extend_from_slice(&bytes);
            let _ = Entry::decode(&v);
        }

        #[test]
        fn truncated_entries_never_decode(entry in strategies::entry(), cut in any::<prop::sample::Index>()) {
            let bytes = entry.encode();
            let n = cut.index(bytes.len());
            prop_assert!(Entry::decode(&bytes[..n]).is_err());
        }
    }
}
