//! What the MySQL front end puts on the wire besides plain OKs: MariaDB's column
//! definitions and values relayed to the client (text and binary protocol), and service
//! errors as MySQL error numbers.
//!
//! The protocol crate (opensrv-mysql 0.7) writes the packets; it knows MySQL's error
//! numbers 1000–1885 with their SQLSTATEs, so a MariaDB-only number (above 1885) reaches
//! the client as 1105 `ER_UNKNOWN_ERROR` with the original number in the message.

use crate::service::{ErrorKind as Kind, ServiceError};
use opensrv_mysql::{Column, ColumnFlags, ColumnType, ErrorKind, ToMysqlValue};
use std::io::{self, Write};

/// The error numbers opensrv-mysql can send (its table covers 1000..=1885 without gaps).
const KNOWN_CODES: std::ops::RangeInclusive<u16> = 1000..=1885;

/// A MySQL error to send: its number and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyError {
    /// The number sent (with its SQLSTATE).
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
}

impl MyError {
    /// Error `code` with `message`; a number the crate cannot send becomes 1105 with the
    /// number kept in the message.
    pub fn new(code: u16, message: impl Into<String>) -> MyError {
        let message = message.into();
        if KNOWN_CODES.contains(&code) {
            MyError {
                kind: ErrorKind::from(code),
                message,
            }
        } else {
            MyError {
                kind: ErrorKind::ER_UNKNOWN_ERROR,
                message: format!("MariaDB error {code}: {message}"),
            }
        }
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

/// MariaDB's column definition as the crate describes one (the crate sends every column
/// with charset utf8_general_ci, length 1024 and 0 decimals).
pub fn column(c: &mysql_async::Column) -> Column {
    let ty = c.column_type() as u8;
    Column {
        table: c.table_str().into_owned(),
        column: c.name_str().into_owned(),
        coltype: ColumnType::try_from(ty).unwrap_or(ColumnType::MYSQL_TYPE_VAR_STRING),
        colflags: ColumnFlags::from_bits_truncate(c.flags().bits()),
    }
}

/// A column of a result the front end makes up itself (session variables, SHOW WARNINGS).
pub fn text_column(name: &str) -> Column {
    Column {
        table: String::new(),
        column: name.to_string(),
        coltype: ColumnType::MYSQL_TYPE_VAR_STRING,
        colflags: ColumnFlags::empty(),
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
        assert_eq!(m.kind as u16, 1062);
        assert_eq!(m.kind.sqlstate(), b"23000");
        assert_eq!(m.message, "Duplicate entry '1' for key 'PRIMARY'");
    }

    #[test]
    fn unknown_numbers_become_1105_with_the_number_in_the_message() {
        let m = MyError::new(4025, "CONSTRAINT `c` failed");
        assert_eq!(m.kind as u16, 1105);
        assert_eq!(m.message, "MariaDB error 4025: CONSTRAINT `c` failed");
        for code in KNOWN_CODES {
            // The crate panics on numbers outside its table: every one in the range is in it.
            assert_eq!(ErrorKind::from(code) as u16, code);
        }
    }

    #[test]
    fn leader_loss_is_a_retryable_1213() {
        let m = service_error(&ServiceError::NoLeader { retry_after: 1 }, true);
        assert_eq!(m.kind as u16, 1213);
        assert_eq!(m.kind.sqlstate(), b"40001");
        let m = service_error(
            &ServiceError::Invalid {
                code: "not_write".into(),
                message: "x".into(),
            },
            false,
        );
        assert_eq!(m.kind as u16, 1064);
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
