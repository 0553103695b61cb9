//! The HTTP-level cases: malformed JSON, invalid UTF-8, wrong types, missing fields,
//! oversized bodies, unknown routes and methods, wrong content types, bad credentials and
//! bytes that are not HTTP at all.

use super::{auth, check, get, post_json, Case, Expect, LiveNode};
use crate::support::live_node::TOKEN;
use crate::support::raw_http::{self, Piece};

/// Every route that reads a JSON body.
pub const BODY_ROUTES: [&str; 6] = [
    "/write/insert",
    "/write/update",
    "/write/delete",
    "/write/ddl",
    "/write/sql",
    "/query",
];

fn on_every_body_route(label: &str, body: &[u8], expect: Expect) -> Vec<Case> {
    BODY_ROUTES
        .iter()
        .map(|r| Case::new(format!("{label} to {r}"), post_json(r, body), expect))
        .collect()
}

pub fn malformed_json() -> Vec<Case> {
    let mut bodies: Vec<(&str, Vec<u8>)> = [
        ("empty body", &b""[..]),
        ("lone brace", b"{"),
        ("closing brace", b"}"),
        ("truncated object", br#"{"table": "t", "values": {"id": 1}"#),
        ("truncated string", br#"{"table": "t"#),
        ("trailing comma", br#"{"table": "t", "values": {"id": 1},}"#),
        ("single quotes", br#"{'table': 't', 'values': {'id': 1}}"#),
        ("bare word", b"nul"),
        ("array", b"[]"),
        ("string", br#""t""#),
        ("number", b"42"),
        ("null", b"null"),
        (
            "trailing garbage",
            br#"{"table": "t", "values": {"id": 1}} trailing"#,
        ),
        ("two documents", br#"{"table": "t"}{"table": "t"}"#),
        (
            "byte order mark",
            b"\xEF\xBB\xBF{\"table\": \"t\", \"values\": {\"id\": 1}}",
        ),
        ("comment", br#"{"table": "t" /* c */, "values": {"id": 1}}"#),
        ("leading zero", br#"{"table": "t", "values": {"id": 01}}"#),
        ("NaN", br#"{"table": "t", "values": {"id": NaN}}"#),
        (
            "Infinity",
            br#"{"table": "t", "values": {"id": -Infinity}}"#,
        ),
        ("hex number", br#"{"table": "t", "values": {"id": 0x10}}"#),
        ("bare minus", br#"{"table": "t", "values": {"id": -}}"#),
        ("dot number", br#"{"table": "t", "values": {"id": .5}}"#),
        ("bad escape", br#"{"table": "t\x", "values": {"id": 1}}"#),
        (
            "short unicode escape",
            br#"{"table": "t\u12", "values": {"id": 1}}"#,
        ),
        (
            "lone high surrogate",
            br#"{"table": "t\ud800", "values": {"id": 1}}"#,
        ),
        (
            "lone low surrogate",
            br#"{"table": "t", "values": {"id": "\udc00"}}"#,
        ),
        (
            "raw control byte in string",
            b"{\"table\": \"t\x01\", \"values\": {\"id\": 1}}",
        ),
        (
            "raw newline in string",
            b"{\"table\": \"t\n\", \"values\": {\"id\": 1}}",
        ),
        (
            "NUL byte outside string",
            b"{\"table\": \"t\",\x00 \"values\": {\"id\": 1}}",
        ),
        (
            "duplicate field",
            br#"{"table": "t", "table": "u", "values": {"id": 1}}"#,
        ),
    ]
    .into_iter()
    .map(|(l, b)| (l, b.to_vec()))
    .collect();
    // Nesting far past serde's recursion limit, inside a value and at the top.
    let deep = 30_000;
    let mut nested = br#"{"table": "t", "values": {"id": "#.to_vec();
    nested.extend(std::iter::repeat_n(b'[', deep));
    nested.extend(std::iter::repeat_n(b']', deep));
    nested.extend_from_slice(b"}}");
    bodies.push(("30000 nested arrays in a value", nested));
    let mut objects = Vec::new();
    for _ in 0..deep / 6 {
        objects.extend_from_slice(br#"{"a":"#);
    }
    bodies.push(("5000 unclosed nested objects", objects));
    bodies
        .iter()
        .flat_map(|(label, body)| on_every_body_route(label, body, Expect::Status(400)))
        .collect()
}

pub fn invalid_utf8() -> Vec<Case> {
    let mut cases: Vec<Case> = [
        (
            "0xFF in a string",
            &b"{\"table\": \"t\xFF\", \"values\": {\"id\": 1}}"[..],
        ),
        (
            "overlong slash",
            b"{\"table\": \"t\xC0\xAF\", \"values\": {\"id\": 1}}",
        ),
        (
            "UTF-16 surrogate bytes",
            b"{\"table\": \"t\", \"values\": {\"id\": \"\xED\xA0\x80\"}}",
        ),
        (
            "beyond U+10FFFF",
            b"{\"table\": \"t\", \"values\": {\"id\": \"\xF4\x90\x80\x80\"}}",
        ),
        (
            "truncated sequence",
            b"{\"table\": \"t\", \"values\": {\"id\": \"\xE2\x82\"}}",
        ),
        (
            "invalid byte in a key",
            b"{\"table\": \"t\", \"values\": {\"i\xFEd\": 1}}",
        ),
        (
            "invalid byte in ddl",
            b"{\"ddl\": \"CREATE TABLE \xFF (a INT)\"}",
        ),
        (
            "invalid byte in sql",
            b"{\"statements\": [{\"sql\": \"DELETE FROM t WHERE v = '\xFF'\"}]}",
        ),
        ("latin-1 body", b"{\"sql\": \"SELECT '\xE9t\xE9'\"}"),
        (
            "UTF-16LE body",
            b"{\x00\"\x00s\x00q\x00l\x00\"\x00:\x00\"\x00x\x00\"\x00}\x00",
        ),
    ]
    .iter()
    .flat_map(|(label, body)| on_every_body_route(label, body, Expect::Status(400)))
    .collect();
    // In the URL: percent-encoded it reaches the router; raw it is not HTTP.
    for (label, target, expect) in [
        (
            "percent-encoded 0xFF in the path",
            &b"/write/%FF%FE"[..],
            Expect::Status(404),
        ),
        (
            "percent-encoded 0xFF in /id",
            b"/id?count=%FF",
            Expect::Status(400),
        ),
        (
            "percent-encoded overlong in /id",
            b"/id?count=%C0%AF",
            Expect::Status(400),
        ),
        ("raw 0xFF in the path", b"/health\xFF", Expect::Protocol),
        ("raw 0xFF in the query", b"/id?count=\xFF", Expect::Protocol),
    ] {
        cases.push(Case::new(label, get(target), expect));
    }
    cases.push(Case::new(
        "0xFF in the content type",
        raw_http::request(
            "POST",
            b"/write/insert",
            &[&auth(), b"Content-Type: application/json\xFF"],
            Some(br#"{"table": "t", "values": {"id": 1}}"#),
        ),
        Expect::Status(415),
    ));
    cases
}

pub fn wrong_types() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |route: &str, label: &str, body: &str, status: u16| {
        cases.push(Case::new(
            format!("{route}: {label}"),
            post_json(route, body.as_bytes()),
            Expect::Status(status),
        ))
    };
    let i = "/write/insert";
    add(
        i,
        "table is a number",
        r#"{"table": 1, "values": {"id": 1}}"#,
        400,
    );
    add(
        i,
        "table is null",
        r#"{"table": null, "values": {"id": 1}}"#,
        400,
    );
    add(
        i,
        "table is an array",
        r#"{"table": ["t"], "values": {"id": 1}}"#,
        400,
    );
    add(
        i,
        "table is an object",
        r#"{"table": {"t": 1}, "values": {"id": 1}}"#,
        400,
    );
    add(
        i,
        "values is an array",
        r#"{"table": "t", "values": [1, 2]}"#,
        400,
    );
    add(
        i,
        "values is a string",
        r#"{"table": "t", "values": "id=1"}"#,
        400,
    );
    add(
        i,
        "values is null",
        r#"{"table": "t", "values": null}"#,
        400,
    );
    add(
        i,
        "value is an array",
        r#"{"table": "t", "values": {"id": [1]}}"#,
        400,
    );
    add(
        i,
        "value is an object",
        r#"{"table": "t", "values": {"id": {"a": 1}}}"#,
        400,
    );
    add(
        i,
        "base64 is a number",
        r#"{"table": "t", "values": {"b": {"$base64": 5}}}"#,
        400,
    );
    add(
        i,
        "base64 is invalid",
        r#"{"table": "t", "values": {"b": {"$base64": "!!!"}}}"#,
        400,
    );
    add(
        i,
        "base64 with a second key",
        r#"{"table": "t", "values": {"b": {"$base64": "YQ==", "x": 1}}}"#,
        400,
    );
    add(
        i,
        "101-digit number",
        &format!(
            r#"{{"table": "t", "values": {{"id": 1{}}}}}"#,
            "0".repeat(100)
        ),
        400,
    );
    add(
        i,
        "snowflake is a number",
        r#"{"table": "t", "values": {"v": "x"}, "snowflake": 5}"#,
        400,
    );
    add(
        i,
        "snowflake also in values",
        r#"{"table": "t", "values": {"id": 1}, "snowflake": "id"}"#,
        400,
    );
    add(
        i,
        "wait is unknown",
        r#"{"table": "t", "values": {"id": 1}, "wait": "sometimes"}"#,
        400,
    );
    add(
        i,
        "wait is a number",
        r#"{"table": "t", "values": {"id": 1}, "wait": 1}"#,
        400,
    );
    add(
        i,
        "wait is null",
        r#"{"table": "t", "values": {"id": 1}, "wait": null}"#,
        400,
    );
    add(
        i,
        "duplicate column by case",
        r#"{"table": "t", "values": {"id": 1, "ID": 2}}"#,
        400,
    );
    let many: Vec<String> = (0..1025).map(|n| format!(r#""c{n}": 1"#)).collect();
    add(
        i,
        "1025 columns",
        &format!(r#"{{"table": "t", "values": {{{}}}}}"#, many.join(",")),
        413,
    );
    let u = "/write/update";
    add(
        u,
        "set is an array",
        r#"{"table": "t", "set": [["v", 1]], "where_key": {"id": 1}}"#,
        400,
    );
    add(
        u,
        "where_key is a number",
        r#"{"table": "t", "set": {"v": "x"}, "where_key": 5}"#,
        400,
    );
    add(
        u,
        "where value is an array",
        r#"{"table": "t", "set": {"v": "x"}, "where_key": {"id": [1, 2]}}"#,
        400,
    );
    let d = "/write/delete";
    add(
        d,
        "where_key is a string",
        r#"{"table": "t", "where_key": "id=1"}"#,
        400,
    );
    add(
        d,
        "where_key is null",
        r#"{"table": "t", "where_key": null}"#,
        400,
    );
    let ddl = "/write/ddl";
    add(ddl, "ddl is a number", r#"{"ddl": 5}"#, 400);
    add(
        ddl,
        "ddl is an array",
        r#"{"ddl": ["CREATE TABLE x (a INT)"]}"#,
        400,
    );
    add(ddl, "ddl is null", r#"{"ddl": null}"#, 400);
    let s = "/write/sql";
    add(s, "statements is an object", r#"{"statements": {}}"#, 400);
    add(
        s,
        "statements is a string",
        r#"{"statements": "DELETE FROM t"}"#,
        400,
    );
    add(s, "statement is a number", r#"{"statements": [5]}"#, 400);
    add(s, "sql is a number", r#"{"statements": [{"sql": 5}]}"#, 400);
    add(
        s,
        "params is a string",
        r#"{"statements": [{"sql": "DELETE FROM t WHERE id = ?", "params": "1"}]}"#,
        400,
    );
    add(
        s,
        "param is an array",
        r#"{"statements": [{"sql": "DELETE FROM t WHERE id = ?", "params": [[1]]}]}"#,
        400,
    );
    add(
        s,
        "transaction is a string",
        r#"{"statements": [{"sql": "DELETE FROM t WHERE id = 1"}], "transaction": "yes"}"#,
        400,
    );
    add(
        s,
        "too few params",
        r#"{"statements": [{"sql": "DELETE FROM t WHERE id = ? AND v = ?", "params": [1]}]}"#,
        400,
    );
    add(
        s,
        "too many params",
        r#"{"statements": [{"sql": "DELETE FROM t WHERE id = 1", "params": [1]}]}"#,
        400,
    );
    let batch: Vec<&str> = vec![r#"{"sql": "DELETE FROM t WHERE id = 1"}"#; 1001];
    add(
        s,
        "1001 statements",
        &format!(r#"{{"statements": [{}]}}"#, batch.join(",")),
        413,
    );
    let q = "/query";
    add(q, "sql is a number", r#"{"sql": 5}"#, 400);
    add(
        q,
        "params is a number",
        r#"{"sql": "SELECT ?", "params": 5}"#,
        400,
    );
    add(
        q,
        "param is an object",
        r#"{"sql": "SELECT ?", "params": [{"a": 1}]}"#,
        400,
    );
    add(
        q,
        "consistency is unknown",
        r#"{"sql": "SELECT 1", "consistency": "strong"}"#,
        400,
    );
    add(
        q,
        "consistency is a number",
        r#"{"sql": "SELECT 1", "consistency": 1}"#,
        400,
    );
    add(
        q,
        "min_lsn is negative",
        r#"{"sql": "SELECT 1", "min_lsn": -1}"#,
        400,
    );
    add(
        q,
        "min_lsn is a string",
        r#"{"sql": "SELECT 1", "min_lsn": "5"}"#,
        400,
    );
    add(
        q,
        "min_lsn is a fraction",
        r#"{"sql": "SELECT 1", "min_lsn": 1.5}"#,
        400,
    );
    add(
        q,
        "min_lsn overflows u64",
        r#"{"sql": "SELECT 1", "min_lsn": 18446744073709551616}"#,
        400,
    );
    add(
        q,
        "timeout_ms is negative",
        r#"{"sql": "SELECT 1", "timeout_ms": -1}"#,
        400,
    );
    add(
        q,
        "timeout_ms is a float",
        r#"{"sql": "SELECT 1", "timeout_ms": 1e3}"#,
        400,
    );
    add(
        q,
        "timeout_ms over the limit",
        r#"{"sql": "SELECT 1", "timeout_ms": 99999999}"#,
        400,
    );
    add(
        q,
        "timeout_ms is u64::MAX",
        r#"{"sql": "SELECT 1", "timeout_ms": 18446744073709551615}"#,
        400,
    );
    add(q, "missing param", r#"{"sql": "SELECT ?"}"#, 400);
    for (label, target) in [
        ("count=0", &b"/id?count=0"[..]),
        ("count=-1", b"/id?count=-1"),
        ("count=1.5", b"/id?count=1.5"),
        ("count too large", b"/id?count=100000000000000000000000"),
        ("count twice", b"/id?count=1&count=2"),
        ("unknown parameter", b"/id?number=1"),
        ("count is empty", b"/id?count="),
    ] {
        cases.push(Case::new(
            format!("/id: {label}"),
            get(target),
            Expect::Status(400),
        ));
    }
    cases
}

pub fn missing_fields() -> Vec<Case> {
    [
        ("/write/insert", "{}"),
        ("/write/insert", r#"{"table": "t"}"#),
        ("/write/insert", r#"{"values": {"id": 1}}"#),
        ("/write/insert", r#"{"table": "t", "values": {}}"#),
        ("/write/insert", r#"{"table": "", "values": {"id": 1}}"#),
        ("/write/insert", r#"{"table": "t", "values": {"": 1}}"#),
        (
            "/write/insert",
            r#"{"table": "t", "values": {"id": 1}, "extra": 1}"#,
        ),
        ("/write/update", r#"{"table": "t", "set": {"v": "x"}}"#),
        ("/write/update", r#"{"table": "t", "where_key": {"id": 1}}"#),
        (
            "/write/update",
            r#"{"table": "t", "set": {}, "where_key": {"id": 1}}"#,
        ),
        (
            "/write/update",
            r#"{"table": "t", "set": {"v": "x"}, "where_key": {}}"#,
        ),
        (
            "/write/update",
            r#"{"set": {"v": "x"}, "where_key": {"id": 1}}"#,
        ),
        ("/write/delete", r#"{"table": "t"}"#),
        ("/write/delete", r#"{"table": "t", "where_key": {}}"#),
        ("/write/delete", r#"{"where_key": {"id": 1}}"#),
        ("/write/ddl", "{}"),
        ("/write/ddl", r#"{"ddl": ""}"#),
        ("/write/ddl", r#"{"ddl": "   -- nothing"}"#),
        (
            "/write/ddl",
            r#"{"ddl": "CREATE TABLE x (a INT)", "wat": 1}"#,
        ),
        ("/write/sql", "{}"),
        ("/write/sql", r#"{"statements": []}"#),
        ("/write/sql", r#"{"statements": [{}]}"#),
        ("/write/sql", r#"{"statements": [{"sql": ""}]}"#),
        ("/write/sql", r#"{"statements": [{"params": [1]}]}"#),
        ("/query", "{}"),
        ("/query", r#"{"sql": ""}"#),
        ("/query", r#"{"params": [1]}"#),
        ("/query", r#"{"sql": "SELECT 1", "x": 1}"#),
    ]
    .into_iter()
    .map(|(route, body)| {
        Case::new(
            format!("{route}: missing or empty field {body}"),
            post_json(route, body.as_bytes()),
            Expect::Status(400),
        )
    })
    .collect()
}

/// A `/write/ddl` body of exactly `len` bytes (padded with spaces inside the object).
fn ddl_body(len: usize) -> Vec<u8> {
    let head = br#"{"ddl": "CREATE TABLE big (a INT)""#;
    let mut body = head.to_vec();
    body.resize(len - 1, b' ');
    body.push(b'}');
    body
}

pub fn oversized(max: usize) -> Vec<Case> {
    let auth = auth();
    let json = b"Content-Type: application/json".to_vec();
    let mut at_limit = br#"{"table": "", "values": {"id": 1}}"#.to_vec();
    at_limit.pop();
    at_limit.resize(max - 1, b' ');
    at_limit.push(b'}');
    let mut chunked = raw_http::request(
        "POST",
        b"/write/ddl",
        &[&auth, &json, b"Transfer-Encoding: chunked"],
        None,
    );
    let body = ddl_body(max + 1);
    chunked.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let declared = |len: &str, extra: &[u8]| {
        let mut r = raw_http::request(
            "POST",
            b"/write/ddl",
            &[
                &auth,
                &json,
                format!("Content-Length: {len}").as_bytes(),
                extra,
            ],
            None,
        );
        r.extend_from_slice(&ddl_body(1024));
        r
    };
    let mut cases = vec![
        Case::new(
            "body exactly at the limit is read (and refused for its empty table name)",
            post_json("/write/insert", &at_limit),
            Expect::Status(400),
        ),
        Case::new(
            "body one byte over the limit, declared",
            post_json("/write/ddl", &ddl_body(max + 1)),
            Expect::Status(413),
        ),
        Case::new(
            "body one byte over the limit, chunked",
            chunked,
            Expect::Status(413),
        ),
        Case::new(
            "1 GiB declared, 1 KiB sent",
            declared("1073741824", b"X-Pad: 1"),
            Expect::Status(413),
        ),
        Case::new(
            "1 GiB declared with Expect: 100-continue",
            declared("1073741824", b"Expect: 100-continue"),
            Expect::Status(413),
        ),
        // hyper refuses a length it cannot represent itself (a bare 431).
        Case::new(
            "u64::MAX declared",
            declared("18446744073709551615", b"X-Pad: 1"),
            Expect::Protocol,
        ),
        Case::new(
            "length beyond u64",
            declared("99999999999999999999999", b"X-Pad: 1"),
            Expect::Protocol,
        ),
        Case::new(
            "negative length",
            declared("-1", b"X-Pad: 1"),
            Expect::Protocol,
        ),
        Case::new(
            "length is not a number",
            declared("abc", b"X-Pad: 1"),
            Expect::Protocol,
        ),
        Case::new(
            "two different lengths",
            declared("10", b"Content-Length: 20"),
            Expect::Protocol,
        ),
    ];
    // A length shorter than the body: the first bytes are a truncated document.
    let mut short = raw_http::request(
        "POST",
        b"/write/insert",
        &[&auth, &json, b"Content-Length: 10"],
        None,
    );
    short.extend_from_slice(br#"{"table": "t", "values": {"id": 1}}"#);
    cases.push(Case::new(
        "length shorter than the body",
        short,
        Expect::Status(400),
    ));
    let mut bad_chunk = raw_http::request(
        "POST",
        b"/write/insert",
        &[&auth, &json, b"Transfer-Encoding: chunked"],
        None,
    );
    bad_chunk.extend_from_slice(b"zz\r\n{}\r\n0\r\n\r\n");
    cases.push(Case::new(
        "chunk size is not hex",
        bad_chunk,
        Expect::Client,
    ));
    let mut huge_chunk = raw_http::request(
        "POST",
        b"/write/insert",
        &[&auth, &json, b"Transfer-Encoding: chunked"],
        None,
    );
    huge_chunk.extend_from_slice(b"ffffffffffffffffff\r\n{}\r\n0\r\n\r\n");
    cases.push(Case::new(
        "chunk size overflows",
        huge_chunk,
        Expect::Client,
    ));
    cases
}

/// Far over the limit, streamed without a length: 32 MiB in 64 KiB chunks. The node must
/// answer 413 after reading just over the limit (and may then close while we still send).
pub async fn streamed_far_over(node: &LiveNode, max: usize) {
    let mut pieces = vec![Piece::now(raw_http::request(
        "POST",
        b"/write/ddl",
        &[
            &auth(),
            b"Content-Type: application/json",
            b"Transfer-Encoding: chunked",
        ],
        None,
    ))];
    let frame = |data: &[u8]| {
        let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
        framed.extend_from_slice(data);
        framed.extend_from_slice(b"\r\n");
        framed
    };
    pieces.push(Piece::now(frame(br#"{"ddl": ""#)));
    let spaces = frame(&vec![b' '; 64 * 1024]);
    for _ in 0..512 {
        pieces.push(Piece::now(spaces.clone()));
    }
    assert!(512 * 64 * 1024 > 100 * max);
    let (reply, _) = raw_http::exchange_paced(&node.api, pieces, super::ANSWER_LIMIT).await;
    check(
        "32 MiB streamed without a length",
        &reply,
        Expect::Status(413),
    );
}

pub fn routes_and_methods() -> Vec<Case> {
    let a = auth();
    let req = |m: &str, t: &[u8]| raw_http::request(m, t, &[&a], None);
    let long_path = format!("/{}", "a".repeat(10_000));
    let mut cases = vec![
        Case::new("GET /nope", req("GET", b"/nope"), Expect::Status(404)),
        Case::new("POST /nope", post_json("/nope", b"{}"), Expect::Status(404)),
        Case::new("GET /", req("GET", b"/"), Expect::Status(404)),
        Case::new("GET /write", req("GET", b"/write"), Expect::Status(404)),
        Case::new(
            "POST /write/",
            post_json("/write/", b"{}"),
            Expect::Status(404),
        ),
        Case::new(
            "POST /write/insert/",
            post_json("/write/insert/", b"{}"),
            Expect::Status(404),
        ),
        Case::new(
            "POST /WRITE/INSERT",
            post_json("/WRITE/INSERT", b"{}"),
            Expect::Status(404),
        ),
        Case::new(
            "POST /write/upsert",
            post_json("/write/upsert", b"{}"),
            Expect::Status(404),
        ),
        Case::new("GET /health/", req("GET", b"/health/"), Expect::Status(404)),
        Case::new("GET //health", req("GET", b"//health"), Expect::Status(404)),
        Case::new("GET /%00", req("GET", b"/%00"), Expect::Status(404)),
        Case::new(
            "dot-dot path",
            req("GET", b"/../../etc/passwd"),
            Expect::Status(404),
        ),
        Case::new(
            "encoded dot-dot",
            req("GET", b"/..%2F..%2Fetc%2Fpasswd"),
            Expect::Status(404),
        ),
        Case::new(
            "10 kB path",
            req("GET", long_path.as_bytes()),
            Expect::Status(404),
        ),
        Case::new(
            "GET /write/insert",
            req("GET", b"/write/insert"),
            Expect::Status(405),
        ),
        Case::new("PUT /query", req("PUT", b"/query"), Expect::Status(405)),
        Case::new(
            "DELETE /health",
            req("DELETE", b"/health"),
            Expect::Status(405),
        ),
        Case::new(
            "PATCH /status",
            req("PATCH", b"/status"),
            Expect::Status(405),
        ),
        Case::new(
            "POST /health",
            post_json("/health", b"{}"),
            Expect::Status(405),
        ),
        Case::new("POST /id", post_json("/id", b"{}"), Expect::Status(405)),
        Case::new(
            "POST /cluster/nodes",
            post_json("/cluster/nodes", b"{}"),
            Expect::Status(405),
        ),
        Case::new(
            "OPTIONS /write/sql",
            req("OPTIONS", b"/write/sql"),
            Expect::Status(405),
        ),
        Case::new(
            "TRACE /health",
            req("TRACE", b"/health"),
            Expect::Status(405),
        ),
        Case::new(
            "extension method",
            req("FOO", b"/health"),
            Expect::Status(405),
        ),
        Case::new(
            "lowercase method",
            req("get", b"/status"),
            Expect::Status(405),
        ),
        Case::new("OPTIONS *", req("OPTIONS", b"*"), Expect::Client),
        Case::new("CONNECT", req("CONNECT", b"node:443"), Expect::Protocol),
    ];
    // HEAD answers carry no body: only the status is checked.
    cases.push(Case::new(
        "HEAD /nope",
        req("HEAD", b"/nope"),
        Expect::Protocol,
    ));
    cases
}

pub fn content_types() -> Vec<Case> {
    let body = br#"{"table": "t", "values": {"id": 1}}"#;
    let mut cases = Vec::new();
    for ct in [
        None,
        Some(&b"Content-Type: text/plain"[..]),
        Some(b"Content-Type: application/x-www-form-urlencoded"),
        Some(b"Content-Type: multipart/form-data; boundary=x"),
        Some(b"Content-Type: application/jsonx"),
        Some(b"Content-Type: application/json-seq"),
        Some(b"Content-Type: text/json"),
        Some(b"Content-Type: json"),
        Some(b"Content-Type: "),
        Some(b"Content-Type: ;application/json"),
    ] {
        for route in BODY_ROUTES {
            let a = auth();
            let mut headers: Vec<&[u8]> = vec![&a];
            headers.extend(ct);
            cases.push(Case::new(
                format!("{route} with {:?}", ct.map(String::from_utf8_lossy)),
                raw_http::request("POST", route.as_bytes(), &headers, Some(body)),
                Expect::Status(415),
            ));
        }
    }
    cases
}

pub fn credentials() -> Vec<Case> {
    let body = br#"{"table": "t", "values": {"id": 1}}"#;
    let huge = format!("Authorization: Bearer {}", "x".repeat(10_000));
    let mut invalid = format!("Authorization: Bearer {TOKEN}").into_bytes();
    invalid.push(0xFF);
    let prefix = format!("Authorization: Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Authorization: Bearer {TOKEN}x");
    let twice = format!("Authorization: Bearer {TOKEN} {TOKEN}");
    let creds: Vec<(&str, Option<&[u8]>)> = vec![
        ("no credentials", None),
        ("wrong token", Some(b"Authorization: Bearer wrong")),
        ("token prefix", Some(prefix.as_bytes())),
        ("token plus a byte", Some(longer.as_bytes())),
        ("token twice", Some(twice.as_bytes())),
        ("basic auth", Some(b"Authorization: Basic dXNlcjpwYXNz")),
        ("scheme only", Some(b"Authorization: Bearer")),
        ("empty header", Some(b"Authorization: ")),
        ("10 kB token", Some(huge.as_bytes())),
        ("token then 0xFF", Some(&invalid)),
    ];
    let mut cases = Vec::new();
    for (label, header) in creds {
        let mut headers: Vec<&[u8]> = vec![b"Content-Type: application/json"];
        headers.extend(header);
        for route in BODY_ROUTES {
            cases.push(Case::new(
                format!("{route}: {label}"),
                raw_http::request("POST", route.as_bytes(), &headers, Some(body)),
                Expect::Status(401),
            ));
        }
        for route in ["/id", "/status", "/cluster", "/cluster/nodes"] {
            cases.push(Case::new(
                format!("{route}: {label}"),
                raw_http::request("GET", route.as_bytes(), &headers, None),
                Expect::Status(401),
            ));
        }
    }
    cases
}

pub fn not_http() -> Vec<Case> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut cases: Vec<Case> = (0..8)
        .map(|i| {
            let len = rng.gen_range(1..4096);
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            Case::new(
                format!("random bytes #{i} ({len})"),
                bytes,
                Expect::Protocol,
            )
        })
        .collect();
    let many_headers: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("X-H{i}: {}", "v".repeat(900)).into_bytes())
        .collect();
    let many_refs: Vec<&[u8]> = many_headers.iter().map(Vec::as_slice).collect();
    let giant = format!("X-Big: {}", "v".repeat(600_000));
    for (label, raw) in [
        ("NUL bytes", vec![0u8; 64]),
        (
            "TLS client hello",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec(),
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        (
            "HTTP/9.9",
            b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("no version", b"GET /health\r\n\r\n".to_vec()),
        ("method only", b"GET\r\n\r\n".to_vec()),
        (
            "header without colon",
            b"GET /health HTTP/1.1\r\nGarbage\r\n\r\n".to_vec(),
        ),
        (
            "space in header name",
            b"GET /health HTTP/1.1\r\nBad Header: x\r\n\r\n".to_vec(),
        ),
        (
            "NUL in header value",
            b"GET /health HTTP/1.1\r\nX-A: a\x00b\r\n\r\n".to_vec(),
        ),
        (
            "bare LF line ends",
            b"GET /status HTTP/1.1\nHost: x\nX\n\n".to_vec(),
        ),
        (
            "200 headers of 900 bytes",
            raw_http::request("GET", b"/health", &many_refs, None),
        ),
        (
            "one 600 kB header",
            raw_http::request("GET", b"/health", &[giant.as_bytes()], None),
        ),
        (
            "length and chunked together",
            raw_http::request(
                "POST",
                b"/write/insert",
                &[b"Content-Length: 5", b"Transfer-Encoding: chunked"],
                Some(b"0\r\n\r\n"),
            ),
        ),
    ] {
        cases.push(Case::new(label, raw, Expect::Protocol));
    }
    cases
}
