//! The values a client binds to a prepared statement, as the service takes them: for a
//! write the request encoding `/write/sql` accepts (numbers as exact text, bytes that are
//! not UTF-8 as base64), for a read the bound [`Value`]s.

use super::wire::MyError;
use crate::command::{Input, Value};
use base64::Engine as _;
use opensrv_mysql::{ParamParser, ValueInner};

/// Reads `expected` values from a COM_STMT_EXECUTE.
///
/// # Errors
/// A count that differs from the statement's placeholders, a non-finite float, or a
/// date/time value of a malformed length.
pub fn from_wire(params: ParamParser<'_>, expected: usize) -> Result<Vec<Input>, MyError> {
    let mut out = Vec::with_capacity(expected);
    if expected == 0 {
        return Ok(out);
    }
    for p in params {
        out.push(input(p.value.into_inner())?);
    }
    if out.len() != expected {
        return Err(MyError::new(
            1210,
            format!(
                "the statement has {expected} `?` placeholder(s) but {} value(s) were sent",
                out.len()
            ),
        ));
    }
    Ok(out)
}

fn input(v: ValueInner<'_>) -> Result<Input, MyError> {
    Ok(match v {
        ValueInner::NULL => Input::Null,
        ValueInner::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Input::Text(s.to_string()),
            Err(_) => Input::Base64(base64::engine::general_purpose::STANDARD.encode(b)),
        },
        ValueInner::Int(n) => Input::Number(n.to_string()),
        ValueInner::UInt(n) => Input::Number(n.to_string()),
        ValueInner::Double(f) if f.is_finite() => Input::Number(f.to_string()),
        ValueInner::Double(_) => {
            return Err(MyError::new(
                1210,
                "NaN and infinity cannot be stored; bind a finite number",
            ))
        }
        ValueInner::Date(b) | ValueInner::Datetime(b) => Input::Text(datetime(b)?),
        ValueInner::Time(b) => Input::Text(time(b)?),
    })
}

/// The binary protocol's DATE/DATETIME (length 0, 4, 7 or 11 bytes) as MariaDB's text.
fn datetime(b: &[u8]) -> Result<String, MyError> {
    let bad = || MyError::new(1210, "malformed DATE/DATETIME parameter");
    let (y, mo, d) = match b.len() {
        0 => return Ok("0000-00-00 00:00:00".into()),
        4 | 7 | 11 => (u16::from_le_bytes([b[0], b[1]]), b[2], b[3]),
        _ => return Err(bad()),
    };
    let (h, mi, s) = if b.len() >= 7 {
        (b[4], b[5], b[6])
    } else {
        (0, 0, 0)
    };
    let us = if b.len() == 11 {
        u32::from_le_bytes([b[7], b[8], b[9], b[10]])
    } else {
        0
    };
    Ok(if us > 0 {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
    } else {
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    })
}

/// The binary protocol's TIME (length 0, 8 or 12 bytes) as MariaDB's text.
fn time(b: &[u8]) -> Result<String, MyError> {
    match b.len() {
        0 => Ok("00:00:00".into()),
        8 | 12 => {
            let sign = if b[0] == 1 { "-" } else { "" };
            let days = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
            let hours = u64::from(days) * 24 + u64::from(b[5]);
            let (mi, s) = (b[6], b[7]);
            if b.len() == 12 {
                let us = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
                Ok(format!("{sign}{hours:02}:{mi:02}:{s:02}.{us:06}"))
            } else {
                Ok(format!("{sign}{hours:02}:{mi:02}:{s:02}"))
            }
        }
        _ => Err(MyError::new(1210, "malformed TIME parameter")),
    }
}

/// Values for a read: exact integers stay integers, other numbers exact decimal text,
/// bytes as they came.
///
/// # Errors
/// A base64 value that does not decode (never produced by [`from_wire`]).
pub fn bind_read(values: Vec<Input>) -> Result<Vec<Value>, MyError> {
    values
        .into_iter()
        .map(|v| {
            Ok(match v {
                Input::Null => Value::Null,
                Input::Bool(b) => Value::Bool(b),
                Input::Number(n) => {
                    if let Ok(i) = n.parse::<i64>() {
                        Value::Int(i)
                    } else if let Ok(u) = n.parse::<u64>() {
                        Value::UInt(u)
                    } else {
                        Value::Number(n)
                    }
                }
                Input::Text(t) => Value::Text(t),
                Input::Base64(b) => Value::Bytes(
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| MyError::new(1210, format!("bad parameter: {e}")))?,
                ),
                Input::Json(j) => Value::Text(j.to_string()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_dates_and_times_become_mariadb_text() {
        let mut b = vec![0xe8, 0x07, 2, 29];
        assert_eq!(datetime(&b).expect("date"), "2024-02-29 00:00:00");
        b.extend([13, 14, 15]);
        assert_eq!(datetime(&b).expect("datetime"), "2024-02-29 13:14:15");
        b.extend(5u32.to_le_bytes());
        assert_eq!(datetime(&b).expect("micros"), "2024-02-29 13:14:15.000005");
        assert!(datetime(&[1, 2]).is_err());
        let t = [1, 1, 0, 0, 0, 2, 3, 4];
        assert_eq!(time(&t).expect("time"), "-26:03:04");
        assert!(time(&[0; 5]).is_err());
    }

    #[test]
    fn numbers_stay_exact() {
        assert_eq!(
            input(ValueInner::Int(-5)).expect("int"),
            Input::Number("-5".into())
        );
        assert_eq!(
            input(ValueInner::Double(0.1)).expect("double"),
            Input::Number("0.1".into())
        );
        assert!(input(ValueInner::Double(f64::NAN)).is_err());
        assert_eq!(
            input(ValueInner::Bytes(&[0xff, 0])).expect("bytes"),
            Input::Base64("/wA=".into())
        );
        assert_eq!(
            bind_read(vec![Input::Number("18446744073709551615".into())]).expect("bind"),
            vec![Value::UInt(u64::MAX)]
        );
    }
}
