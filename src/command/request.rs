//! Write requests as the HTTP API receives them (JSON), and [`prepare`], which validates
//! one and turns it into an [`Entry`]. Nothing here is appended anywhere.
//!
//! Values ([`Input`]): JSON null, booleans, numbers (kept exact: integers as i64/u64, any
//! other number as its decimal text, never through f64), strings, and `{"$base64": "…"}`
//! for arbitrary bytes. Arrays and other objects are refused; send a JSON document for a
//! JSON column as a string. Deserialize requests straight from the request body
//! (`serde_json::from_slice`): numbers are read from the raw text, so going through
//! `serde_json::Value` first would already have rounded big ones.

use super::{
    shown, Column, Command, Entry, Error, Ident, SqlStatement, Value, MAX_COLUMNS, MAX_ENTRY_BYTES,
    MAX_NUMBER_CHARS, MAX_PARAMS, MAX_STATEMENTS,
};
use base64::Engine as _;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::{self, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::fmt;

/// How long the client waits before the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Committed by a majority and applied on the leader.
    #[default]
    Quorum,
    /// Applied on every voter (with a timeout that reports the laggards).
    All,
}

/// A value as a client sent it, before validation turns it into a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A JSON number, exactly as written.
    Number(String),
    /// A JSON string.
    Text(String),
    /// `{"$base64": "…"}`: standard alphabet, padded.
    Base64(String),
    /// An array or another object: refused by validation.
    Json(serde_json::Value),
}

impl From<&str> for Input {
    fn from(s: &str) -> Self {
        Input::Text(s.to_string())
    }
}

impl From<i64> for Input {
    fn from(n: i64) -> Self {
        Input::Number(n.to_string())
    }
}

impl From<u64> for Input {
    fn from(n: u64) -> Self {
        Input::Number(n.to_string())
    }
}

impl From<bool> for Input {
    fn from(b: bool) -> Self {
        Input::Bool(b)
    }
}

impl Input {
    fn from_json_text(text: &str) -> Result<Input, serde_json::Error> {
        let t = text.trim();
        if t.starts_with('-') || t.starts_with(|c: char| c.is_ascii_digit()) {
            return Ok(Input::Number(t.to_string()));
        }
        Ok(match serde_json::from_str(t)? {
            serde_json::Value::Null => Input::Null,
            serde_json::Value::Bool(b) => Input::Bool(b),
            serde_json::Value::String(s) => Input::Text(s),
            serde_json::Value::Object(m) if m.len() == 1 && m.contains_key("$base64") => {
                match m.into_iter().next() {
                    Some((_, serde_json::Value::String(b))) => Input::Base64(b),
                    Some((k, v)) => {
                        Input::Json(serde_json::Value::Object(std::iter::once((k, v)).collect()))
                    }
                    None => Input::Json(serde_json::Value::Object(Default::default())),
                }
            }
            other => Input::Json(other),
        })
    }

    /// The value to bind; `at` names the place for the error message.
    fn into_value(self, at: impl Fn() -> String) -> Result<Value, Error> {
        let bad = |reason: String| Error::InvalidValue { at: at(), reason };
        Ok(match self {
            Input::Null => Value::Null,
            Input::Bool(b) => Value::Bool(b),
            Input::Text(s) => Value::Text(s),
            Input::Number(t) => number(&t).map_err(|r| bad(r.to_string()))?,
            Input::Base64(b) => Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_bytes())
                    .map_err(|e| bad(format!("`$base64` is not valid base64: {e}")))?,
            ),
            Input::Json(v) => {
                let what = if v.is_array() {
                    "an array"
                } else {
                    "an object"
                };
                return Err(bad(format!(
                    "{what} is not a column value; send JSON documents as strings and bytes as {{\"$base64\": \"…\"}}"
                )));
            }
        })
    }
}

/// Parses a JSON number literal exactly.
fn number(text: &str) -> Result<Value, &'static str> {
    if text.len() > MAX_NUMBER_CHARS {
        return Err("number literal longer than 100 characters");
    }
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let s = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - s
    };
    let int_start = i;
    let int_len = digits(&mut i);
    let mut integer = true;
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return Err("not a JSON number");
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        integer = false;
        if digits(&mut i) == 0 {
            return Err("not a JSON number");
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        integer = false;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return Err("not a JSON number");
        }
    }
    if i != b.len() {
        return Err("not a JSON number");
    }
    if integer {
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Value::Int(n));
        }
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Value::UInt(n));
        }
    }
    Ok(Value::Number(text.to_string()))
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Box<RawValue> = Deserialize::deserialize(d)?;
        Input::from_json_text(raw.get()).map_err(de::Error::custom)
    }
}

impl Serialize for Input {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Input::Null => s.serialize_unit(),
            Input::Bool(b) => s.serialize_bool(*b),
            Input::Text(t) => s.serialize_str(t),
            Input::Number(t) => {
                number(t).map_err(ser::Error::custom)?;
                RawValue::from_string(t.clone())
                    .map_err(ser::Error::custom)?
                    .serialize(s)
            }
            Input::Base64(b) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("$base64", b)?;
                m.end()
            }
            Input::Json(v) => v.serialize(s),
        }
    }
}

// The API description of a value: any JSON scalar, or `{"$base64": "…"}` for bytes.
impl utoipa::PartialSchema for Input {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property(
                        "$base64",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .description(Some("bytes, standard base64 alphabet, padded")),
                    )
                    .required("$base64")
                    .additional_properties(Some(
                        utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                    )),
            )
            .description(Some(
                "a column value: null, a boolean, a number (kept exactly as written), a string, \
                 or {\"$base64\": \"…\"} for bytes",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Input {}

// The API description of a row: column names to values.
impl utoipa::PartialSchema for Fields {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(<Input as utoipa::PartialSchema>::schema()))
            .description(Some("column names (unqualified) to values"))
            .into()
    }
}

impl utoipa::ToSchema for Fields {}

/// A JSON object of column → value, in request order, duplicates kept so that validation
/// can refuse them by name (a plain map would silently keep the last one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, Input)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of column names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Input>()? {
                    out.push(entry);
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `POST /write/insert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertRequest {
    /// Target table, unqualified.
    pub table: String,
    /// The row.
    pub values: Fields,
    /// A column for the leader to fill with a fresh Snowflake ID (must not be in `values`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snowflake: Option<String>,
    /// When to answer.
    #[serde(default)]
    pub wait: Wait,
}

/// `POST /write/update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// Target table, unqualified.
    pub table: String,
    /// Columns to assign.
    pub set: Fields,
    /// Equality conditions, ANDed; null means IS NULL.
    pub where_key: Fields,
    /// When to answer.
    #[serde(default)]
    pub wait: Wait,
}

/// `POST /write/delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// Target table, unqualified.
    pub table: String,
    /// Equality conditions, ANDed; null means IS NULL.
    pub where_key: Fields,
    /// When to answer.
    #[serde(default)]
    pub wait: Wait,
}

/// `POST /write/ddl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DdlRequest {
    /// One CREATE / ALTER / DROP / RENAME / TRUNCATE statement.
    pub ddl: String,
    /// When to answer.
    #[serde(default)]
    pub wait: Wait,
}

/// One statement of `POST /write/sql`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlStatementRequest {
    /// One INSERT / UPDATE / DELETE / REPLACE with `?` markers.
    pub sql: String,
    /// One value per `?`.
    #[serde(default)]
    pub params: Vec<Input>,
}

/// `POST /write/sql`: a batch of writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// In order.
    pub statements: Vec<SqlStatementRequest>,
    /// All or nothing when true. Default false: each statement stands alone.
    #[serde(default)]
    pub transaction: bool,
    /// When to answer.
    #[serde(default)]
    pub wait: Wait,
}

/// An interactive transaction to certify: the statements a client ran inside its local
/// transaction with what each returned to it, to be replayed and compared by every node
/// (see [`super::prepare_certified`]). Built by the MySQL front end at COMMIT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifiedRequest {
    /// The statements in the order the client ran them.
    pub steps: Vec<super::CertifiedStep>,
    /// The `SET timestamp` (µs since the epoch) the client's statements ran under.
    pub session_timestamp_us: u64,
    /// When to answer.
    #[serde(default)]
    pub wait: Wait,
}

/// Any write request, as the route that received it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRequest {
    /// `/write/insert`.
    Insert(InsertRequest),
    /// `/write/update`.
    Update(UpdateRequest),
    /// `/write/delete`.
    Delete(DeleteRequest),
    /// `/write/ddl`.
    Ddl(DdlRequest),
    /// `/write/sql`.
    Sql(SqlRequest),
    /// COMMIT of an interactive transaction (MySQL front end).
    Certified(CertifiedRequest),
}

impl WriteRequest {
    /// When the client wants its answer.
    pub fn wait(&self) -> Wait {
        match self {
            WriteRequest::Insert(r) => r.wait,
            WriteRequest::Update(r) => r.wait,
            WriteRequest::Delete(r) => r.wait,
            WriteRequest::Ddl(r) => r.wait,
            WriteRequest::Sql(r) => r.wait,
            WriteRequest::Certified(r) => r.wait,
        }
    }
}

/// Validates `request` and builds the entry to append, with the leader's clock
/// (`timestamp_us`, microseconds since the Unix epoch) and, for an insert with
/// `snowflake`, one ID from `ids` (called only after every other check passed).
///
/// # Errors
/// An [`Error`] saying what is wrong; nothing should be appended then.
pub fn prepare(
    request: WriteRequest,
    timestamp_us: u64,
    ids: &mut dyn FnMut() -> u64,
) -> Result<Entry, Error> {
    let mut generated = Vec::new();
    let command = match request {
        WriteRequest::Certified(r) => {
            return super::prepare_certified(r.steps, r.session_timestamp_us, timestamp_us)
        }
        WriteRequest::Insert(r) => {
            let table = Ident::table(&r.table)?;
            let mut values = columns("values", r.values)?;
            if let Some(col) = r.snowflake {
                let col = Ident::column(&col)?;
                if values.iter().any(|(c, _)| same_name(c, &col)) {
                    return Err(Error::DuplicateColumn {
                        field: "values",
                        column: shown(col.as_str()),
                    });
                }
                if values.len() >= MAX_COLUMNS {
                    return Err(too_many("columns in `values`", values.len() + 1));
                }
                let id = ids();
                generated.push(id);
                values.push((col, Value::UInt(id)));
            }
            Command::Insert { table, values }
        }
        WriteRequest::Update(r) => Command::Update {
            table: Ident::table(&r.table)?,
            set: columns("set", r.set)?,
            where_key: columns("where_key", r.where_key)?,
        },
        WriteRequest::Delete(r) => Command::Delete {
            table: Ident::table(&r.table)?,
            where_key: columns("where_key", r.where_key)?,
        },
        WriteRequest::Ddl(r) => Command::Ddl {
            statement: crate::sql::check_ddl(sql_text(&r.ddl)?)
                .map_err(Error::Ddl)?
                .to_string(),
        },
        WriteRequest::Sql(r) => Command::Sql {
            statements: statements(r.statements)?,
            transaction: r.transaction,
        },
    };
    let entry = Entry {
        timestamp_us,
        ids: generated,
        command,
    };
    let size = entry.encode().len();
    if size > MAX_ENTRY_BYTES {
        return Err(Error::TooLarge {
            what: "the encoded request (bytes)",
            limit: MAX_ENTRY_BYTES,
            actual: size,
        });
    }
    Ok(entry)
}

/// Refuses SQL text too large for any entry before spending time lexing it.
fn sql_text(sql: &str) -> Result<&str, Error> {
    if sql.len() > MAX_ENTRY_BYTES {
        return Err(Error::TooLarge {
            what: "the SQL text (bytes)",
            limit: MAX_ENTRY_BYTES,
            actual: sql.len(),
        });
    }
    Ok(sql)
}

fn too_many(what: &'static str, actual: usize) -> Error {
    Error::TooLarge {
        what,
        limit: MAX_COLUMNS,
        actual,
    }
}

/// MariaDB compares column names case-insensitively.
fn same_name(a: &Ident, b: &Ident) -> bool {
    a.as_str().to_lowercase() == b.as_str().to_lowercase()
}

fn columns(field: &'static str, fields: Fields) -> Result<Vec<Column>, Error> {
    if fields.0.is_empty() {
        return Err(if field == "where_key" {
            Error::EmptyWhere
        } else {
            Error::EmptyColumns { field }
        });
    }
    if fields.0.len() > MAX_COLUMNS {
        return Err(Error::TooLarge {
            what: match field {
                "values" => "columns in `values`",
                "set" => "columns in `set`",
                _ => "columns in `where_key`",
            },
            limit: MAX_COLUMNS,
            actual: fields.0.len(),
        });
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(fields.0.len());
    for (name, input) in fields.0 {
        let col = Ident::column(&name)?;
        if !seen.insert(col.as_str().to_lowercase()) {
            return Err(Error::DuplicateColumn {
                field,
                column: shown(&name),
            });
        }
        let value = input.into_value(|| format!("`{field}` column {}", shown(&name)))?;
        out.push((col, value));
    }
    Ok(out)
}

fn statements(list: Vec<SqlStatementRequest>) -> Result<Vec<SqlStatement>, Error> {
    if list.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if list.len() > MAX_STATEMENTS {
        return Err(Error::TooLarge {
            what: "statements in the batch",
            limit: MAX_STATEMENTS,
            actual: list.len(),
        });
    }
    let mut out = Vec::with_capacity(list.len());
    for (index, st) in list.into_iter().enumerate() {
        if st.params.len() > MAX_PARAMS {
            return Err(Error::TooLarge {
                what: "parameters of one statement",
                limit: MAX_PARAMS,
                actual: st.params.len(),
            });
        }
        let sql = crate::sql::check_write(sql_text(&st.sql)?, st.params.len())
            .map_err(|source| Error::Statement { index, source })?
            .to_string();
        let params = st
            .params
            .into_iter()
            .enumerate()
            .map(|(j, p)| p.into_value(|| format!("statement {index} parameter {j}")))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(SqlStatement { sql, params });
    }
    Ok(out)
}
