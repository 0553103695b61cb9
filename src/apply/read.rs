//! Client reads (`POST /query`): one checked read statement in a read-only transaction on
//! the node's read pool (separate from the applier's connections, so reads cannot starve
//! replication), rows returned as JSON values.
//!
//! Bounds: the answer is cut off with [`QueryError::TooLarge`] past
//! [`ReadLimits::max_rows`] rows or [`ReadLimits::max_bytes`] bytes of values, the
//! statement runs under MariaDB's `max_statement_time` set to what is left of the
//! timeout, and a read that is abandoned — timeout, client gone (the request future is
//! dropped) or over a bound — is stopped on the server with `KILL QUERY` from a fresh
//! connection, so it does not keep a MariaDB thread busy.
//!
//! Value mapping: NULL → `null`; integers → JSON numbers, exact over the whole i64/u64
//! range; FLOAT/DOUBLE → numbers (`null` for NaN/∞); DECIMAL → a string holding the
//! exact decimal; DATE → `"YYYY-MM-DD"`, DATETIME/TIMESTAMP → `"YYYY-MM-DD HH:MM:SS"`
//! (with `.ffffff` when the column has fractional seconds), TIME → `"[-]HH:MM:SS"`;
//! strings and blobs → a JSON string when the bytes are UTF-8, otherwise
//! `{"$base64": "…"}`, the same shape writes accept.

use crate::command::Value;
use crate::sql::{self, position, session, ErrorClass, SqlError};
use base64::Engine as _;
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Opts, Pool};
use serde::Serialize;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// Serves client reads on this node's MariaDB; cheap to clone.
#[derive(Debug, Clone)]
pub struct Reader {
    pool: Pool,
    /// For the one-off connection that sends `KILL QUERY`.
    opts: Opts,
    limits: ReadLimits,
    tentatives: std::sync::Arc<super::tentative::Tentatives>,
}

/// How much one read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Most rows in one answer.
    pub max_rows: u64,
    /// Most bytes of values in one answer (each value counts its text or binary length
    /// plus 8 bytes).
    pub max_bytes: u64,
}

impl ReadLimits {
    /// No bound (internal reads and tests).
    pub const UNLIMITED: ReadLimits = ReadLimits {
        max_rows: u64::MAX,
        max_bytes: u64::MAX,
    };
}

/// MariaDB's "Query execution was interrupted (max_statement_time exceeded)".
const ER_STATEMENT_TIMEOUT: u16 = 1969;

/// Bytes a value counts for against [`ReadLimits::max_bytes`].
fn value_bytes(v: &mysql_async::Value) -> u64 {
    let payload = match v {
        mysql_async::Value::Bytes(b) => b.len() as u64,
        _ => 8,
    };
    payload + 8
}

/// A result set: column names and rows of JSON values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rows {
    /// Column names (labels), in order.
    pub columns: Vec<String>,
    /// One array per row, one value per column.
    pub rows: Vec<Vec<Json>>,
}

/// A result set as MariaDB sent it: column definitions and values.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRows {
    /// MariaDB's column definitions (name, table, type, flags, decimals, charset).
    pub columns: Vec<Column>,
    /// One vector per row, one value per column.
    pub rows: Vec<Vec<mysql_async::Value>>,
}

impl RawRows {
    /// The rows as JSON values (see the module docs for the mapping).
    pub fn into_rows(self) -> Rows {
        let columns = self.columns;
        Rows {
            rows: self
                .rows
                .into_iter()
                .map(|r| {
                    r.into_iter()
                        .zip(columns.iter())
                        .map(|(v, c)| to_json(v, c))
                        .collect()
                })
                .collect(),
            columns: columns.iter().map(|c| c.name_str().into_owned()).collect(),
        }
    }
}

/// How a read is sent to MariaDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// As text (only without parameters): values come back in MariaDB's text form.
    Text,
    /// As a prepared statement: values come back typed.
    Binary,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Not exactly one read statement, or the parameter count is wrong: HTTP 400.
    #[error(transparent)]
    Invalid(#[from] SqlError),
    /// MariaDB refused the statement.
    #[error("MariaDB error {code}: {message}")]
    Sql {
        /// Error number.
        code: u16,
        /// Server message.
        message: String,
        /// How the API should report it.
        class: ErrorClass,
    },
    /// The connection failed; retry later (HTTP 503).
    #[error("MariaDB unavailable: {0}")]
    Unavailable(String),
    /// The read did not finish in time.
    #[error("query did not finish within {0:?}")]
    Timeout(Duration),
    /// The answer is over a bound of [`ReadLimits`]: HTTP 413.
    #[error("the result has more than {limit} {what} ({key}); add a LIMIT or a narrower WHERE")]
    TooLarge {
        /// "rows" or "bytes".
        what: &'static str,
        /// The bound.
        limit: u64,
        /// The config key that sets it.
        key: &'static str,
    },
}

impl From<mysql_async::Error> for QueryError {
    fn from(e: mysql_async::Error) -> Self {
        match e {
            mysql_async::Error::Server(se) => QueryError::Sql {
                code: se.code,
                class: sql::classify_error(se.code, &se.message),
                message: se.message,
            },
            other => QueryError::Unavailable(other.to_string()),
        }
    }
}

impl Reader {
    pub(super) fn new(
        pool: Pool,
        opts: Opts,
        tentatives: std::sync::Arc<super::tentative::Tentatives>,
    ) -> Self {
        Reader {
            pool,
            opts,
            limits: ReadLimits::UNLIMITED,
            tentatives,
        }
    }

    /// The bounds answers are held to.
    pub fn limits(&self) -> ReadLimits {
        self.limits
    }

    /// This node's local transactions (the MySQL front end's interactive ones).
    pub fn tentatives(&self) -> &std::sync::Arc<super::tentative::Tentatives> {
        &self.tentatives
    }

    /// The same reader with answers bounded by `limits`.
    pub fn with_limits(mut self, limits: ReadLimits) -> Reader {
        self.limits = limits;
        self
    }

    /// Runs one read statement (checked by [`sql::check_read`]) with `params` bound, in a
    /// `READ ONLY` transaction under `max_statement_time`. On timeout, on an answer over
    /// the limits, or when the caller drops the future, the statement is killed on
    /// MariaDB.
    ///
    /// # Errors
    /// [`QueryError`]: invalid statement, MariaDB's error, unavailability, timeout or an
    /// answer over the limits.
    pub async fn query(
        &self,
        sql_text: &str,
        params: &[Value],
        timeout: Duration,
    ) -> Result<Rows, QueryError> {
        let raw = self
            .query_raw(sql_text, params, timeout, Protocol::Binary, None)
            .await?;
        Ok(raw.into_rows())
    }

    /// [`Reader::query`], answering the result set as MariaDB sent it (column
    /// definitions and values), for a front end that relays it to a MySQL client. With
    /// [`Protocol::Text`] and no parameters the statement is sent as text, so every value
    /// is MariaDB's own text form. With `sql_mode`, the statement runs under that mode
    /// (a client session's), and the connection gets the server's back afterwards.
    ///
    /// # Errors
    /// As [`Reader::query`].
    pub async fn query_raw(
        &self,
        sql_text: &str,
        params: &[Value],
        timeout: Duration,
        protocol: Protocol,
        sql_mode: Option<&str>,
    ) -> Result<RawRows, QueryError> {
        let text = sql::check_read(sql_text, params.len())?;
        let protocol = if params.is_empty() {
            protocol
        } else {
            Protocol::Binary
        };
        let params: Vec<mysql_async::Value> = params.iter().map(crate::command::to_mysql).collect();
        let params = if params.is_empty() {
            mysql_async::Params::Empty
        } else {
            mysql_async::Params::Positional(params)
        };
        let started = Instant::now();
        let work = async {
            // Until the read ends cleanly, dropping this future kills the query.
            let mut held = Held {
                conn: Some(self.pool.get_conn().await?),
                opts: self.opts.clone(),
            };
            let conn = held.conn();
            let left = timeout.saturating_sub(started.elapsed());
            conn.query_drop(session::max_statement_time(left)).await?;
            if let Some(mode) = sql_mode {
                conn.exec_drop(session::SET_SQL_MODE, (mode,)).await?;
            }
            conn.query_drop(position::BEGIN_READ_ONLY).await?;
            let rows = read(conn, text, params, self.limits, protocol).await;
            if matches!(rows, Err(QueryError::TooLarge { .. })) {
                // The rest of the result is still coming: kill it rather than read it.
                return rows;
            }
            // A failed read leaves nothing to keep: end the transaction either way.
            let end = if rows.is_ok() {
                position::COMMIT
            } else {
                position::ROLLBACK
            };
            let mut ended = conn.query_drop(end).await;
            if sql_mode.is_some() && ended.is_ok() {
                ended = conn.query_drop(session::RESET_SQL_MODE).await;
            }
            // A connection that failed here goes back to the pool like any other, which
            // resets its session (mysql_async's default) before lending it again.
            held.release();
            let rows = rows?;
            ended?;
            Ok(rows)
        };
        match tokio::time::timeout(timeout, work).await {
            Err(_) => Err(QueryError::Timeout(timeout)),
            // MariaDB stopped it at max_statement_time: the same timeout, seen first there.
            Ok(Err(QueryError::Sql {
                code: ER_STATEMENT_TIMEOUT,
                ..
            })) => Err(QueryError::Timeout(timeout)),
            Ok(other) => other,
        }
    }
}

impl Reader {
    /// The result columns of a read (checked by [`sql::check_read`] for `params`
    /// placeholders) as MariaDB prepares it, without running it: what a MySQL client
    /// that prepares a statement expects to be told.
    ///
    /// # Errors
    /// An invalid statement, MariaDB's refusal, or unavailability.
    pub async fn describe(&self, sql_text: &str, params: usize) -> Result<Vec<Column>, QueryError> {
        // A locking read is prepared too: it runs inside interactive transactions.
        let text = match sql::check_read(sql_text, params) {
            Ok(text) => text,
            Err(e) => match sql::check_certified_step(sql_text, params) {
                Ok((text, sql::CertifiedKind::Read)) => text,
                _ => return Err(e.into()),
            },
        };
        let mut conn = self.pool.get_conn().await?;
        let stmt = conn.prep(text).await?;
        let columns = stmt.columns().to_vec();
        conn.close(stmt).await?;
        Ok(columns)
    }
}

/// A read connection that, when dropped before [`Held::release`] (timeout, client gone,
/// answer too large), has its statement killed: `KILL QUERY` from a fresh connection, and
/// only then is the connection given back to the pool, so no later read can be hit by
/// that kill.
struct Held {
    conn: Option<Conn>,
    opts: Opts,
}

impl Held {
    fn conn(&mut self) -> &mut Conn {
        // Set at construction and taken only by release(), which consumes self.
        self.conn
            .as_mut()
            .expect("a held connection is present until released")
    }

    /// The read ended cleanly: the connection goes back to the pool as it is.
    fn release(mut self) {
        self.conn.take();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // Drop cannot wait: the kill runs as its own short task (one connect, one
        // statement, bounded by a timeout). Outside a runtime the process is going away
        // and the server ends the statement when the connection closes.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let opts = self.opts.clone();
        let id = conn.id();
        handle.spawn(async move {
            let kill = async {
                let mut killer = Conn::new(opts).await?;
                killer.query_drop(session::kill_query(id)).await?;
                killer.disconnect().await
            };
            match tokio::time::timeout(Duration::from_secs(10), kill).await {
                Ok(Ok(())) => tracing::debug!(connection = id, "abandoned read killed"),
                Ok(Err(e)) => {
                    tracing::warn!(connection = id, error = %e, "cannot kill an abandoned read")
                }
                Err(_) => tracing::warn!(connection = id, "kill of an abandoned read timed out"),
            }
            // Back to the pool, which reads what is left of the interrupted result.
            drop(conn);
        });
    }
}

pub(super) async fn read(
    conn: &mut Conn,
    text: &str,
    params: mysql_async::Params,
    limits: ReadLimits,
    protocol: Protocol,
) -> Result<RawRows, QueryError> {
    match protocol {
        Protocol::Text => collect(conn.query_iter(text).await?, limits).await,
        Protocol::Binary => collect(conn.exec_iter(text, params).await?, limits).await,
    }
}

async fn collect<P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'_, '_, P>,
    limits: ReadLimits,
) -> Result<RawRows, QueryError> {
    let columns: Vec<Column> = result.columns_ref().to_vec();
    let mut rows = Vec::new();
    let mut bytes = 0u64;
    while let Some(row) = result.next().await? {
        if rows.len() as u64 >= limits.max_rows {
            return Err(QueryError::TooLarge {
                what: "rows",
                limit: limits.max_rows,
                key: "api.max_result_rows",
            });
        }
        let values = row.unwrap_raw();
        bytes = values.iter().fold(bytes, |b, v| {
            b.saturating_add(v.as_ref().map_or(8, value_bytes))
        });
        if bytes > limits.max_bytes {
            return Err(QueryError::TooLarge {
                what: "bytes",
                limit: limits.max_bytes,
                key: "api.max_result_bytes",
            });
        }
        rows.push(
            values
                .into_iter()
                .map(|v| v.unwrap_or(mysql_async::Value::NULL))
                .collect(),
        );
    }
    result.drop_result().await?;
    Ok(RawRows { columns, rows })
}

/// One value as JSON (see the module docs for the mapping).
pub fn to_json(value: mysql_async::Value, column: &Column) -> Json {
    use mysql_async::Value as V;
    match value {
        V::NULL => Json::Null,
        V::Int(n) => Json::from(n),
        V::UInt(n) => Json::from(n),
        // Through the shortest decimal text, so 0.1f32 stays 0.1.
        V::Float(f) => f
            .to_string()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number),
        V::Double(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        V::Bytes(b) => bytes_to_json(b, column.column_type()),
        V::Date(y, mo, d, h, mi, s, us) => {
            if column.column_type() == ColumnType::MYSQL_TYPE_DATE {
                Json::String(format!("{y:04}-{mo:02}-{d:02}"))
            } else if column.decimals() > 0 && column.decimals() <= 6 {
                let frac = format!("{us:06}");
                let frac = &frac[..usize::from(column.decimals())];
                Json::String(format!(
                    "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{frac}"
                ))
            } else {
                Json::String(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"))
            }
        }
        V::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if neg { "-" } else { "" };
            if us > 0 {
                Json::String(format!("{sign}{hours:02}:{mi:02}:{s:02}.{us:06}"))
            } else {
                Json::String(format!("{sign}{hours:02}:{mi:02}:{s:02}"))
            }
        }
    }
}

fn bytes_to_json(bytes: Vec<u8>, ty: ColumnType) -> Json {
    match String::from_utf8(bytes) {
        // DECIMAL stays text: exact beyond f64.
        Ok(s)
            if matches!(
                ty,
                ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL
            ) =>
        {
            Json::String(s)
        }
        Ok(s) => Json::String(s),
        Err(e) => {
            let mut obj = serde_json::Map::new();
            obj.insert(
                "$base64".into(),
                Json::String(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
            );
            Json::Object(obj)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_map_to_text_or_base64() {
        assert_eq!(
            bytes_to_json(b"caf\xc3\xa9".to_vec(), ColumnType::MYSQL_TYPE_VAR_STRING),
            Json::String("café".into())
        );
        assert_eq!(
            bytes_to_json(b"a\0b".to_vec(), ColumnType::MYSQL_TYPE_BLOB),
            Json::String("a\0b".into())
        );
        assert_eq!(
            bytes_to_json(vec![0xff, 0], ColumnType::MYSQL_TYPE_BLOB),
            serde_json::json!({"$base64": "/wA="})
        );
        assert_eq!(
            bytes_to_json(
                b"12345678901234567890.123456789".to_vec(),
                ColumnType::MYSQL_TYPE_NEWDECIMAL
            ),
            Json::String("12345678901234567890.123456789".into())
        );
    }

    #[test]
    fn server_errors_keep_their_class() {
        let e = QueryError::from(mysql_async::Error::Server(mysql_async::ServerError {
            code: 1146,
            message: "Table 'app.nope' doesn't exist".into(),
            state: "42S02".into(),
        }));
        assert!(matches!(
            e,
            QueryError::Sql {
                code: 1146,
                class: ErrorClass::NotFound,
                ..
            }
        ));
    }
}
