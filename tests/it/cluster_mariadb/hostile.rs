//! Hostile names and values through every write route and `/query` of a live 2-node
//! cluster, alternating between the leader and the follower (whose writes are forwarded):
//! names with backticks, quotes, `;`, `--`, `/*`, unicode are quoted and work; empty,
//! NUL, 10 kB, astral-plane and dotted names are refused; values with quotes,
//! backslashes, NUL, arbitrary bytes, 1 MB strings and 64-bit extremes are stored exactly.
//! Every refusal is a 4xx JSON answer that appends nothing, and no statement the caller
//! did not ask for runs: no table or row appears that the test did not create.

use super::assert_converged;
use crate::support::procs::{write, ProcCluster, DATABASE};
use crate::support::tables::quote;
use base64::Engine as _;
use mysql_async::prelude::Queryable;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;
use wolfscale::api::client::{Client, WriteKind};
use wolfscale::api::{Consistency, QueryRequest, WriteResult};
use wolfscale::command::Input;

/// The hostile table: every quoting hazard at once, under 64 characters.
const T: &str = "t`; DROP TABLE victim; -- '\"/*表*/";
const ID: &str = "id`) VALUES (1); --";
const TEXT: &str = "v'\"; DELETE FROM victim; #";
const BLOB: &str = "b/*`*/";
const BIG: &str = "ü表 -- u";
const NEG: &str = "i\\n";
const DEC: &str = "d;";

/// A value with every character that could end a string literal or start a comment.
const NASTY: &str = "O'Brien \"q\" `b` \\ \\\\' ; -- /* */ # \0 end \u{1F600}";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn ok(client: &Client, kind: WriteKind, body: &serde_json::Value) -> WriteResult {
    let text = body.to_string();
    match write(client, kind, &text).await {
        Ok(r) => r,
        Err(e) => panic!("{kind:?} {} failed: {e}", cut(&text)),
    }
}

fn cut(text: &str) -> String {
    text.chars().take(300).collect()
}

/// Asserts a raw body is refused with a JSON 4xx carrying `code` (any code if `None`).
async fn refused(
    client: &Client,
    kind: WriteKind,
    body: impl Into<bytes::Bytes>,
    status: u16,
    code: Option<&str>,
) {
    let body = body.into();
    let shown = cut(&String::from_utf8_lossy(&body));
    match client.write_raw(kind, body).await {
        Err(e) => {
            // `Error::Api` is only built from a JSON error body.
            assert_eq!(
                e.status().map(|s| s.as_u16()),
                Some(status),
                "{kind:?} {shown}: {e}"
            );
            if let Some(code) = code {
                assert_eq!(e.code(), Some(code), "{kind:?} {shown}: {e}");
            }
        }
        Ok(r) => panic!("{kind:?} {shown} was accepted: {r:?}"),
    }
}

fn query(sql: &str, params: Vec<Input>) -> QueryRequest {
    QueryRequest {
        sql: sql.into(),
        params,
        consistency: Consistency::None,
        min_lsn: None,
        timeout_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_values_are_stored_exactly_or_refused_and_run_nothing_else() {
    let c = ProcCluster::start(2).await;
    let leader = c.leader(Duration::from_secs(10)).await;
    let follower = c.other_than(leader);
    let via = [c.client(leader), c.client(follower)];
    let t = quote(T);
    ok(
        &via[0],
        WriteKind::Ddl,
        &json!({"ddl": "CREATE TABLE victim (id INT PRIMARY KEY) ENGINE=InnoDB"}),
    )
    .await;
    ok(
        &via[1],
        WriteKind::Sql,
        &json!({"statements": [{"sql": "INSERT INTO victim VALUES (1)"}]}),
    )
    .await;
    let ddl = format!(
        "CREATE TABLE {t} ({} BIGINT PRIMARY KEY, {} LONGTEXT, {} LONGBLOB, {} BIGINT UNSIGNED, \
         {} BIGINT, {} DECIMAL(65,0)) ENGINE=InnoDB",
        quote(ID),
        quote(TEXT),
        quote(BLOB),
        quote(BIG),
        quote(NEG),
        quote(DEC)
    );
    ok(&via[1], WriteKind::Ddl, &json!({ "ddl": ddl })).await;

    // Row 1 through the leader: every nasty value, exactly.
    let bytes: Vec<u8> = vec![0, 0xff, 0xfe, b'\'', b'\\', 0, 0x80, b'`', b'"'];
    let digits = "12345678901234567890123456789012345678901234567890";
    let row1 = format!(
        r#"{{"table": {tn}, "values": {{{id}: 1, {text}: {nasty}, {blob}: {{"$base64": "{b}"}}, {big}: {umax}, {neg}: {imin}, {dec}: {digits}}}}}"#,
        tn = json!(T),
        id = json!(ID),
        text = json!(TEXT),
        nasty = json!(NASTY),
        blob = json!(BLOB),
        b = b64(&bytes),
        big = json!(BIG),
        umax = u64::MAX,
        neg = json!(NEG),
        imin = i64::MIN,
        dec = json!(DEC),
    );
    let r = write(&via[0], WriteKind::Insert, &row1)
        .await
        .expect("row 1");
    assert_eq!(r.affected_rows, 1);

    // Row 2 through the follower: a 1 MB string with hazards spread through it.
    let mut big_text = String::with_capacity(1_000_000);
    while big_text.len() < 999_000 {
        big_text.push_str(&"x".repeat(997));
        big_text.push_str("'\\\"`;表");
    }
    let r = ok(
        &via[1],
        WriteKind::Insert,
        &json!({"table": T, "values": {ID: 2, TEXT: big_text}}),
    )
    .await;
    assert_eq!(r.affected_rows, 1);

    // Row 3 through the follower: 700 kB of arbitrary bytes.
    let blob: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    ok(
        &via[1],
        WriteKind::Insert,
        &json!({"table": T, "values": {ID: 3, BLOB: {"$base64": b64(&blob)}}}),
    )
    .await;

    // Updates and deletes keyed by hostile names and injection-shaped values.
    let r = ok(
        &via[1],
        WriteKind::Update,
        &json!({"table": T, "set": {NEG: -1}, "where_key": {TEXT: "x' OR '1'='1"}}),
    )
    .await;
    assert_eq!(r.affected_rows, 0, "a where_key value is a value, not SQL");
    let r = ok(
        &via[0],
        WriteKind::Delete,
        &json!({"table": T, "where_key": {TEXT: "' OR 1=1 --"}}),
    )
    .await;
    assert_eq!(r.affected_rows, 0, "a where_key value is a value, not SQL");
    let r = ok(&via[0], WriteKind::Update, &json!({"table": T, "set": {DEC: "-99999999999999999999999999999999999999999999999999999999999999999"}, "where_key": {ID: 3}})).await;
    assert_eq!(r.affected_rows, 1);
    // /write/sql: hostile values as parameters, a `?` inside a string literal is text.
    let r = ok(
        &via[1],
        WriteKind::Sql,
        &json!({"statements": [
            {"sql": format!("INSERT INTO {t} ({}, {}) VALUES (?, ?)", quote(ID), quote(TEXT)), "params": [4, "'); DROP TABLE victim; --"]},
            {"sql": format!("UPDATE {t} SET {} = ? + LENGTH('?') WHERE {} = ?", quote(NEG), quote(ID)), "params": [-8, 4]},
            {"sql": format!("INSERT INTO {t} ({}) VALUES (?)", quote(ID)), "params": [5]}
        ], "transaction": true}),
    )
    .await;
    assert_eq!(r.affected_rows, 3);
    let r = ok(
        &via[0],
        WriteKind::Delete,
        &json!({"table": T, "where_key": {ID: 5}}),
    )
    .await;
    assert_eq!(r.affected_rows, 1);
    // A value MariaDB itself refuses (strict mode): a deterministic 4xx result, no row.
    let over = format!(
        r#"{{"table": {}, "values": {{{}: 6, {}: 18446744073709551616}}}}"#,
        json!(T),
        json!(ID),
        json!(BIG)
    );
    let e = write(&via[1], WriteKind::Insert, &over)
        .await
        .expect_err("out of range");
    assert!(e.status().is_some_and(|s| s.is_client_error()), "{e}");

    // Everything reads back exactly through /query (on the follower, after the last write).
    let lsn = c.wait_converged(Duration::from_secs(30)).await;
    let cols = [ID, TEXT, BLOB, BIG, NEG, DEC].map(quote).join(", ");
    let mut q = query(
        &format!("SELECT {cols} FROM {t} WHERE {} = ?", quote(ID)),
        vec![Input::from(1i64)],
    );
    q.min_lsn = Some(lsn);
    let rows = via[1].query(&q).await.expect("read row 1").rows;
    assert_eq!(
        rows,
        vec![vec![
            Input::from(1i64),
            Input::from(NASTY),
            Input::Base64(b64(&bytes)),
            Input::from(u64::MAX),
            Input::from(i64::MIN),
            Input::from(digits),
        ]]
    );
    // The same query with injection-shaped parameters finds nothing and breaks nothing.
    let none = via[0]
        .query(&query(
            &format!(
                "SELECT {cols} FROM {t} WHERE {} = ? OR {} = ?",
                quote(TEXT),
                quote(BLOB)
            ),
            vec![
                Input::from("' OR '1'='1"),
                Input::from("\0'; DROP TABLE victim; --"),
            ],
        ))
        .await
        .expect("read with hostile params");
    assert!(none.rows.is_empty(), "{:?}", none.rows);
    let r4 = via[0]
        .query(&query(
            &format!(
                "SELECT {}, {} FROM {t} WHERE {} = 4",
                quote(TEXT),
                quote(NEG),
                quote(ID)
            ),
            vec![],
        ))
        .await
        .expect("row 4")
        .rows;
    assert_eq!(
        r4,
        vec![vec![
            Input::from("'); DROP TABLE victim; --"),
            Input::from(-7i64)
        ]]
    );

    // Directly in MariaDB, on both nodes: the big values are exact to the byte.
    for node in &c.nodes {
        let mut conn = node.db.conn_to(DATABASE).await.expect("connect");
        let text_row: Option<(u64, String)> = conn
            .query_first(format!(
                "SELECT LENGTH({0}), SHA2({0}, 256) FROM {t} WHERE {1} = 2",
                quote(TEXT),
                quote(ID)
            ))
            .await
            .expect("big text");
        assert_eq!(
            text_row,
            Some((big_text.len() as u64, sha_hex(big_text.as_bytes()))),
            "{}",
            node.name
        );
        let blob_row: Option<(u64, String)> = conn
            .query_first(format!(
                "SELECT LENGTH({0}), SHA2({0}, 256) FROM {t} WHERE {1} = 3",
                quote(BLOB),
                quote(ID)
            ))
            .await
            .expect("blob");
        assert_eq!(
            blob_row,
            Some((blob.len() as u64, sha_hex(&blob))),
            "{}",
            node.name
        );
        let nasty: Option<Vec<u8>> = conn
            .query_first(format!(
                "SELECT {} FROM {t} WHERE {} = 1",
                quote(TEXT),
                quote(ID)
            ))
            .await
            .expect("nasty text");
        assert_eq!(nasty.as_deref(), Some(NASTY.as_bytes()), "{}", node.name);
    }

    refusals_append_nothing(&c, &via, &t).await;

    // Only the tables and rows the test asked for exist, identically on both nodes.
    let (state, _) = assert_converged(&c).await;
    let names: Vec<&str> = state.tables.keys().map(String::as_str).collect();
    let mut expected = vec!["_wolfscale", "victim", T];
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(state.tables["victim"].rows, 1);
    assert_eq!(state.tables[T].rows, 4);
}

/// Names and requests that must be refused: each a JSON 4xx, and the log does not move.
async fn refusals_append_nothing(c: &ProcCluster, via: &[Client; 2], t: &str) {
    // Measured again if an election appends its own entry meanwhile.
    for attempt in 1.. {
        let (term, before) = c.settled(Duration::from_secs(20)).await;
        send_refusals(via, t).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (term_after, after) = c.settled(Duration::from_secs(20)).await;
        if term_after == term {
            assert_eq!(after, before, "a refused request reached the log");
            return;
        }
        assert!(attempt < 3, "an election during each of 3 attempts");
    }
}

async fn send_refusals(via: &[Client; 2], t: &str) {
    let long = "n".repeat(10_000);
    let bad_names: [&str; 6] = ["", "a\0b", &long, "emoji\u{1F600}", "db.table", "trailing "];
    for (i, name) in bad_names.iter().enumerate() {
        let client = &via[i % 2];
        let code = Some("invalid_identifier");
        let v = json!({"v": 1});
        refused(
            client,
            WriteKind::Insert,
            json!({"table": name, "values": v}).to_string(),
            400,
            code,
        )
        .await;
        refused(
            client,
            WriteKind::Update,
            json!({"table": name, "set": v, "where_key": {"id": 1}}).to_string(),
            400,
            code,
        )
        .await;
        refused(
            client,
            WriteKind::Delete,
            json!({"table": name, "where_key": {"id": 1}}).to_string(),
            400,
            code,
        )
        .await;
        if name.contains('.') {
            continue; // a dot is fine in a column name
        }
        refused(
            client,
            WriteKind::Insert,
            json!({"table": T, "values": {*name: 1}}).to_string(),
            400,
            code,
        )
        .await;
        refused(
            client,
            WriteKind::Update,
            json!({"table": T, "set": {*name: 1}, "where_key": {ID: 1}}).to_string(),
            400,
            code,
        )
        .await;
        refused(
            client,
            WriteKind::Update,
            json!({"table": T, "set": {TEXT: 1}, "where_key": {*name: 1}}).to_string(),
            400,
            code,
        )
        .await;
        refused(
            client,
            WriteKind::Delete,
            json!({"table": T, "where_key": {*name: 1}}).to_string(),
            400,
            code,
        )
        .await;
    }
    let (l, f) = (&via[0], &via[1]);
    // Statements smuggled after a first one, and statements on the wrong route.
    refused(
        l,
        WriteKind::Ddl,
        json!({"ddl": "CREATE TABLE x (a INT); DROP TABLE victim"}).to_string(),
        400,
        Some("multiple_statements"),
    )
    .await;
    refused(
        f,
        WriteKind::Ddl,
        json!({"ddl": "DELETE FROM victim"}).to_string(),
        400,
        Some("not_ddl"),
    )
    .await;
    refused(
        l,
        WriteKind::Sql,
        json!({"statements": [{"sql": "INSERT INTO victim VALUES (2); DROP TABLE victim"}]})
            .to_string(),
        400,
        Some("multiple_statements"),
    )
    .await;
    refused(
        f,
        WriteKind::Sql,
        json!({"statements": [{"sql": "INSERT INTO victim VALUES (?)", "params": [1, 2]}]})
            .to_string(),
        400,
        Some("param_count"),
    )
    .await;
    refused(
        l,
        WriteKind::Update,
        json!({"table": T, "set": {TEXT: "x"}, "where_key": {}}).to_string(),
        400,
        Some("empty_where"),
    )
    .await;
    refused(
        f,
        WriteKind::Delete,
        json!({"table": "victim", "where_key": {}}).to_string(),
        400,
        Some("empty_where"),
    )
    .await;
    refused(
        l,
        WriteKind::Insert,
        json!({"table": "victim", "values": {}}).to_string(),
        400,
        None,
    )
    .await;
    // Values JSON cannot carry or the API does not take.
    refused(
        f,
        WriteKind::Insert,
        format!(
            r#"{{"table": {}, "values": {{{}: 9, {}: "\ud800"}}}}"#,
            json!(T),
            json!(ID),
            json!(TEXT)
        ),
        400,
        None,
    )
    .await;
    let mut raw = format!(
        r#"{{"table": {}, "values": {{{}: 9, {}: ""#,
        json!(T),
        json!(ID),
        json!(TEXT)
    )
    .into_bytes();
    raw.extend_from_slice(&[0xff, 0xfe, b'"', b'}', b'}']);
    refused(l, WriteKind::Insert, raw, 400, None).await;
    refused(
        f,
        WriteKind::Insert,
        json!({"table": T, "values": {ID: 9, TEXT: [1, 2]}}).to_string(),
        400,
        Some("invalid_value"),
    )
    .await;
    refused(
        l,
        WriteKind::Insert,
        format!(
            r#"{{"table": {}, "values": {{{}: 9, {}: 1{}}}}}"#,
            json!(T),
            json!(ID),
            json!(DEC),
            "0".repeat(150)
        ),
        400,
        Some("invalid_value"),
    )
    .await;
    refused(
        f,
        WriteKind::Insert,
        json!({"table": T, "values": {ID: 9, BLOB: {"$base64": "not base64!"}}}).to_string(),
        400,
        Some("invalid_value"),
    )
    .await;
    // Over the 1 MiB body limit.
    refused(
        l,
        WriteKind::Insert,
        json!({"table": T, "values": {ID: 9, TEXT: "y".repeat(2 << 20)}}).to_string(),
        413,
        Some("too_large"),
    )
    .await;

    // Reads: one read statement only; hostile identifiers reach MariaDB quoted.
    for (sql, code) in [
        ("SELECT 1; DROP TABLE victim", Some("multiple_statements")),
        ("DELETE FROM victim", Some("not_read")),
        ("SELECT * FROM victim WHERE id = ?", Some("param_count")),
    ] {
        let e = l.query(&query(sql, vec![])).await.expect_err(sql);
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{sql}: {e}");
        if let Some(code) = code {
            assert_eq!(e.code(), Some(code), "{sql}: {e}");
        }
    }
    let e = f
        .query(&query(&format!("SELECT * FROM {}", quote(&long)), vec![]))
        .await
        .expect_err("10 kB identifier");
    assert!(e.status().is_some_and(|s| s.is_client_error()), "{e}");
    let e = f
        .query(&query(
            &format!("SELECT * FROM {t} WHERE {} = ?", quote(ID)),
            vec![Input::Json(json!([1]))],
        ))
        .await
        .expect_err("array parameter");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
}
