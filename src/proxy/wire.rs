//! What the MySQL front end puts on the wire besides plain OKs: MariaDB's column
//! definitions and values relayed to the client (text and binary protocol), and service
//! errors as MySQL error numbers.
//!
//! The protocol crate (opensrv-mysql 0.7, patched) writes the packets; errors go out with
//! any number and SQLSTATE, MariaDB's own (above 1885: 1969, 4025, …) included.

use crate::service::{ErrorKind as Kind, ServiceError};
use opensrv_mysql::{Column, ColumnFlags, ColumnType, ErrorKind, ToMysqlValue};
use std::io::{self, Write};

/// The error numbers whose SQLSTATE opensrv-mysql's table holds (1000..=1885 without
/// gaps; MySQL and MariaDB agree on them). MariaDB's later numbers are in
/// [`crate::sql::sqlstate`].
const CRATE_CODES: std::ops::RangeInclusive<u16> = 1000..=1885;

/// MariaDB's character set number for binary data (numbers, dates, blobs).
pub const BINARY: u16 = 63;
/// utf8mb4_general_ci: the text columns the front end makes up itself.
pub const UTF8MB4: u16 = 45;

/// A MySQL error to send: its number, SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyError {
    /// The error number, e.g. 1062.
    pub code: u16,
    /// The SQLSTATE sent with it, e.g. `23000`.
    pub sqlstate: [u8; 5],
    /// The message.
    pub message: String,
}

impl MyError {
    /// Error `code` with MariaDB's SQLSTATE for it and `message`.
    pub fn new(code: u16, message: impl Into<String>) -> MyError {
        MyError {
            code,
            sqlstate: sqlstate(code),
            message: message.into(),
        }
    }

    /// Error `code` with the SQLSTATE the server sent (MariaDB's table otherwise).
    pub fn with_state(code: u16, state: &str, message: impl Into<String>) -> MyError {
        let mut e = MyError::new(code, message);
        if let Ok(state) = <[u8; 5]>::try_from(state.as_bytes()) {
            e.sqlstate = state;
        }
        e
    }

    /// A statement the front end does not run, with why (1235 `ER_NOT_SUPPORTED_YET`,
    /// SQLSTATE 42000).
    pub fn unsupported(message: impl Into<String>) -> MyError {
        MyError::new(1235, message)
    }

    /// Refused by WolfScale's SQL rules (1064-style syntax/rule error, SQLSTATE 42000).
    pub fn refused(message: impl Into<String>) -> MyError {
        MyError::new(1064, message)
    }
}

/// The SQLSTATE MariaDB sends with error number `code` (`HY000` when it has none).
pub fn sqlstate(code: u16) -> [u8; 5] {
    if CRATE_CODES.contains(&code) {
        return *ErrorKind::from(code).sqlstate();
    }
    <[u8; 5]>::try_from(crate::sql::sqlstate(code).as_bytes()).unwrap_or(*b"HY000")
}

/// A service error as the MySQL error a client expects:
/// - MariaDB's deterministic refusal keeps its number (1062, 1146, 1064, …);
/// - input refused by WolfScale's rules: 1064 (`ER_PARSE_ERROR`, 42000), too large: 1153
///   (`ER_NET_PACKET_TOO_LARGE`, 08S01);
/// - no leader, no quorum, not ready: 1213 (`ER_LOCK_DEADLOCK`, 40001), which drivers and
///   ORMs treat as "retry": nothing was appended;
/// - a read that timed out: 1205 (`ER_LOCK_WAIT_TIMEOUT`); a write that timed out may or
///   may not be applied, so it is 1105 (`ER_UNKNOWN_ERROR`), which drivers do not retry,
///   with the message saying so;
/// - anything else: 1105.
pub fn service_error(e: &ServiceError, write: bool) -> MyError {
    match (e.kind(), e) {
        (_, ServiceError::Database(db)) => MyError::new(db.code, db.message.clone()),
        (Kind::Invalid | Kind::NotDeterministic, _) => MyError::refused(e.to_string()),
        (Kind::TooLarge, _) => MyError::new(1153, e.to_string()),
        (Kind::Unavailable | Kind::NoQuorum, _) => MyError::new(
            1213,
            format!("WolfScale: {e}; nothing was written, retry the statement"),
        ),
        (Kind::Timeout, _) if !write => MyError::new(1205, format!("WolfScale: {e}")),
        _ => MyError::new(1105, format!("WolfScale: {e}")),
    }
}

/// MariaDB's column definition as the crate sends one: name, table, type, flags, and the
/// character set, length and decimals drivers map types from (63, binary, tells a BLOB
/// from a TEXT and a VARBINARY from a VARCHAR). A text column carries utf8mb4_general_ci,
/// as MariaDB describes text to a utf8mb4 client (the collation of the connection's
/// results, not the column's; the read pool's own connection collation may differ).
pub fn column(c: &mysql_async::Column) -> Column {
    let ty = c.column_type() as u8;
    Column {
        table: c.table_str().into_owned(),
        column: c.name_str().into_owned(),
        coltype: ColumnType::try_from(ty).unwrap_or(ColumnType::MYSQL_TYPE_VAR_STRING),
        colflags: ColumnFlags::from_bits_truncate(c.flags().bits()),
        charset: if c.character_set() == BINARY {
            BINARY
        } else {
            UTF8MB4
        },
        column_length: c.column_length(),
        decimals: c.decimals(),
    }
}

/// A text column of a result the front end makes up itself (session variables, SHOW
/// WARNINGS): utf8mb4, as MariaDB describes a string expression.
pub fn text_column(name: &str) -> Column {
    Column {
        charset: UTF8MB4,
        column_length: 1024 * 4,
        decimals: 0,
        ..Column::new(
            "",
            name,
            ColumnType::MYSQL_TYPE_VAR_STRING,
            ColumnFlags::empty(),
        )
    }
}

/// An integer column of a result the front end makes up itself, as MariaDB describes
/// `CONNECTION_ID()` (`LONG`, length 10) and `LAST_INSERT_ID()` (`LONGLONG`, 21):
/// binary, unsigned, not null.
pub fn integer_column(name: &str, coltype: ColumnType) -> Column {
    Column {
        charset: BINARY,
        column_length: if coltype == ColumnType::MYSQL_TYPE_LONG {
            10
        } else {
            21
        },
        ..Column::new(
            "",
            name,
            coltype,
            ColumnFlags::UNSIGNED_FLAG
                | ColumnFlags::NOT_NULL_FLAG
                | ColumnFlags::BINARY_FLAG
                | ColumnFlags::NUM_FLAG,
        )
    }
}

/// One value of a relayed row.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell(pub mysql_async::Value);

impl ToMysqlValue for Cell {
    fn to_mysql_text<W: Write>(&self, w: &mut W) -> io::Result<()> {
        use mysql_async::Value as V;
        match &self.0 {
            V::NULL => None::<u8>.to_mysql_text(w),
            V::Bytes(b) => b.as_slice().to_mysql_text(w),
            other => text_of(other).as_bytes().to_mysql_text(w),
        }
    }

    fn to_mysql_bin<W: Write>(&self, w: &mut W, c: &Column) -> io::Result<()> {
        use mysql_async::Value as V;
        match &self.0 {
            // The row writer puts NULL in the bitmap and never asks for its bytes.
            V::NULL => Ok(()),
            V::Bytes(b) => lenenc_bytes(w, b),
            V::Int(n) => int_bin(w, *n as u64, c.coltype),
            V::UInt(n) => int_bin(w, *n, c.coltype),
            V::Float(f) => match c.coltype {
                ColumnType::MYSQL_TYPE_DOUBLE => w.write_all(&f64::from(*f).to_le_bytes()),
                _ => w.write_all(&f.to_le_bytes()),
            },
            V::Double(f) => match c.coltype {
                ColumnType::MYSQL_TYPE_FLOAT => w.write_all(&(*f as f32).to_le_bytes()),
                _ => w.write_all(&f.to_le_bytes()),
            },
            V::Date(y, mo, d, h, mi, s, us) => {
                if *us != 0 {
                    w.write_all(&[11])?;
                } else if (*h, *mi, *s) != (0, 0, 0) {
                    w.write_all(&[7])?;
                } else if (*y, *mo, *d) != (0, 0, 0) {
                    w.write_all(&[4])?;
                } else {
                    return w.write_all(&[0]);
                }
                w.write_all(&y.to_le_bytes())?;
                w.write_all(&[*mo, *d])?;
                if (*h, *mi, *s, *us) != (0, 0, 0, 0) {
                    w.write_all(&[*h, *mi, *s])?;
                }
                if *us != 0 {
                    w.write_all(&us.to_le_bytes())?;
                }
                Ok(())
            }
            V::Time(neg, days, h, mi, s, us) => {
                if (*days, *h, *mi, *s, *us) == (0, 0, 0, 0, 0) {
                    return w.write_all(&[0]);
                }
                w.write_all(&[if *us != 0 { 12 } else { 8 }, u8::from(*neg)])?;
                w.write_all(&days.to_le_bytes())?;
                w.write_all(&[*h, *mi, *s])?;
                if *us != 0 {
                    w.write_all(&us.to_le_bytes())?;
                }
                Ok(())
            }
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.0, mysql_async::Value::NULL)
    }
}

/// An integer in the width its column type has in the binary protocol (the bits of a
/// negative number are kept: the client reads them with the column's sign).
fn int_bin<W: Write>(w: &mut W, n: u64, ty: ColumnType) -> io::Result<()> {
    match ty {
        ColumnType::MYSQL_TYPE_TINY => w.write_all(&[n as u8]),
        ColumnType::MYSQL_TYPE_SHORT | ColumnType::MYSQL_TYPE_YEAR => {
            w.write_all(&(n as u16).to_le_bytes())
        }
        ColumnType::MYSQL_TYPE_LONG | ColumnType::MYSQL_TYPE_INT24 => {
            w.write_all(&(n as u32).to_le_bytes())
        }
        ColumnType::MYSQL_TYPE_LONGLONG => w.write_all(&n.to_le_bytes()),
        // A number in a column typed otherwise (e.g. DECIMAL): its text.
        _ => lenenc_bytes(w, n.to_string().as_bytes()),
    }
}

/// A length-encoded string.
fn lenenc_bytes<W: Write>(w: &mut W, b: &[u8]) -> io::Result<()> {
    let n = b.len() as u64;
    if n < 251 {
        w.write_all(&[n as u8])?;
    } else if n < 1 << 16 {
        w.write_all(&[0xfc])?;
        w.write_all(&(n as u16).to_le_bytes())?;
    } else if n < 1 << 24 {
        w.write_all(&[0xfd])?;
        w.write_all(&(n as u32).to_le_bytes()[..3])?;
    } else {
        w.write_all(&[0xfe])?;
        w.write_all(&n.to_le_bytes())?;
    }
    w.write_all(b)
}

/// MariaDB's text form of a typed value (for a text-protocol answer to a read that had
/// to be sent as a prepared statement).
fn text_of(v: &mysql_async::Value) -> String {
    use mysql_async::Value as V;
    match v {
        V::NULL => String::new(),
        V::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        V::Int(n) => n.to_string(),
        V::UInt(n) => n.to_string(),
        V::Float(f) => f.to_string(),
        V::Double(f) => f.to_string(),
        V::Date(y, mo, d, h, mi, s, us) => {
            if *us != 0 {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
            } else {
                format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
            }
        }
        V::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *neg { "-" } else { "" };
            if *us != 0 {
                format!("{sign}{hours:02}:{mi:02}:{s:02}.{us:06}")
            } else {
                format!("{sign}{hours:02}:{mi:02}:{s:02}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::DbError;

    #[test]
    fn mariadb_errors_keep_their_number() {
        let e = ServiceError::Database(DbError {
            class: crate::service::FailureClass::from_class(crate::sql::ErrorClass::Conflict)
                .expect("deterministic"),
            code: 1062,
            message: "Duplicate entry '1' for key 'PRIMARY'".into(),
        });
        let m = service_error(&e, true);
        assert_eq!(m.code, 1062);
        assert_eq!(&m.sqlstate, b"23000");
        assert_eq!(m.message, "Duplicate entry '1' for key 'PRIMARY'");
    }

    #[test]
    fn mariadb_only_numbers_keep_their_number_and_sqlstate() {
        let m = MyError::new(4025, "CONSTRAINT `c` failed for `t`");
        assert_eq!((m.code, &m.sqlstate), (4025, b"23000"));
        assert_eq!(m.message, "CONSTRAINT `c` failed for `t`");
        assert_eq!(&MyError::new(1969, "x").sqlstate, b"70100");
        assert_eq!(&MyError::new(1927, "x").sqlstate, b"70100");
        assert_eq!(&MyError::new(1317, "x").sqlstate, b"70100");
        assert_eq!(&MyError::new(4999, "x").sqlstate, b"HY000");
        assert_eq!(&MyError::with_state(1644, "45000", "x").sqlstate, b"45000");
        for code in CRATE_CODES {
            // The crate panics on numbers outside its table: every one in the range is in it.
            assert_eq!(ErrorKind::from(code) as u16, code);
        }
    }

    #[test]
    fn leader_loss_is_a_retryable_1213() {
        let m = service_error(&ServiceError::NoLeader { retry_after: 1 }, true);
        assert_eq!(m.code, 1213);
        assert_eq!(&m.sqlstate, b"40001");
        let m = service_error(
            &ServiceError::Invalid {
                code: "not_write".into(),
                message: "x".into(),
            },
            false,
        );
        assert_eq!(m.code, 1064);
    }

    #[test]
    fn binary_integers_take_their_column_width() {
        let mut out = Vec::new();
        int_bin(&mut out, (-2i64) as u64, ColumnType::MYSQL_TYPE_SHORT).expect("write");
        assert_eq!(out, (-2i16).to_le_bytes());
        let mut out = Vec::new();
        int_bin(&mut out, 7, ColumnType::MYSQL_TYPE_LONGLONG).expect("write");
        assert_eq!(out, 7u64.to_le_bytes());
    }

    #[test]
    fn typed_values_have_mariadbs_text_form() {
        use mysql_async::Value as V;
        assert_eq!(
            text_of(&V::Date(2024, 2, 3, 4, 5, 6, 0)),
            "2024-02-03 04:05:06"
        );
        assert_eq!(text_of(&V::Time(true, 1, 2, 3, 4, 5)), "-26:03:04.000005");
        let mut out = Vec::new();
        lenenc_bytes(&mut out, &[b'x'; 300]).expect("write");
        assert_eq!(&out[..3], &[0xfc, 44, 1]);
    }
}
