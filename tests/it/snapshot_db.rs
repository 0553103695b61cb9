//! Snapshots against real MariaDB servers (issue 7): a copy taken from one server and
//! loaded into another holds exactly the same values (binary, NULL, 64-bit integers,
//! decimals, dates, JSON, bits, floats), the same tables, views, routines, triggers and
//! sequence, replaces whatever the target held, does not fire triggers while loading, and
//! records the copy's log position; an interrupted load is redone.

use crate::apply_support::{applier, blank};
use crate::support::MariaDb;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use wolfscale::consensus::state_machine::Applier;
use wolfscale::snapshot::Snapshots;

const SCHEMA: &[&str] = &[
    "CREATE TABLE t_types (
        id BIGINT UNSIGNED PRIMARY KEY,
        i8 TINYINT, u64 BIGINT UNSIGNED, i64 BIGINT, dec_v DECIMAL(30,10),
        f FLOAT, d DOUBLE, dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, dd DATE,
        tm TIME(6), y YEAR, b VARBINARY(64), blb LONGBLOB, txt TEXT, j JSON,
        e ENUM('a','b'), st SET('x','y'), bt BIT(10),
        gen INT AS (i8 * 2) VIRTUAL,
        INDEX idx_i64 (i64)
    ) ENGINE=InnoDB",
    "CREATE TABLE audit (n INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(50)) ENGINE=InnoDB",
    "CREATE TABLE nokey (a INT, b VARCHAR(10)) ENGINE=InnoDB",
    "CREATE TABLE zero_ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
    "CREATE VIEW v1 AS SELECT id, dec_v FROM t_types",
    "CREATE VIEW v0 AS SELECT COUNT(*) AS n FROM v1",
    "CREATE TRIGGER tr AFTER INSERT ON t_types FOR EACH ROW INSERT INTO audit (note) VALUES (CONCAT('ins ', NEW.id))",
    "CREATE FUNCTION f_double(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
    "CREATE PROCEDURE p_count() SELECT COUNT(*) FROM t_types",
    "CREATE SEQUENCE s1 START WITH 100",
];

const TABLES: &[&str] = &["t_types", "audit", "nokey", "zero_ai"];

async fn fill(conn: &mut Conn) {
    for s in SCHEMA {
        conn.query_drop(*s).await.expect(s);
    }
    conn.query_drop(
        "INSERT INTO t_types (id, i8, u64, i64, dec_v, f, d, dt, ts, dd, tm, y, b, blb, txt, j, e, st, bt) VALUES
         (1, -128, 18446744073709551615, -9223372036854775808, -12345678901234567890.0123456789,
          0.1, 1e-300, '1000-01-01 00:00:00.000001', '2038-01-19 03:14:07.999999',
          '9999-12-31', '-838:59:59.000000', 2155, x'00FF0080', x'000102', 'naïve ☃ 😀',
          '{\"a\": [1, 2.5, null]}', 'b', 'x,y', b'1010101010'),
         (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
          NULL, NULL, NULL, NULL)",
    )
    .await
    .expect("extreme rows");
    // A large binary value and many ordinary rows.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    conn.exec_drop("UPDATE t_types SET blb = ? WHERE id = 1", (big,))
        .await
        .expect("blob");
    for chunk in 0..10u64 {
        let rows: Vec<String> = (0..500u64)
            .map(|k| {
                let i = 3 + chunk * 500 + k;
                format!(
                    "({i}, {}, {i}, -{i}, {i}.5, {i}.25, {i}.125, NOW(6), NULL, CURDATE(), '12:00:00', 2000, x'{:04x}', NULL, 'row {i}', '[{i}]', 'a', 'x', b'1')",
                    i % 100,
                    i % 65536
                )
            })
            .collect();
        conn.query_drop(format!(
            "INSERT INTO t_types (id, i8, u64, i64, dec_v, f, d, dt, ts, dd, tm, y, b, blb, txt, j, e, st, bt) VALUES {}",
            rows.join(",")
        ))
        .await
        .expect("rows");
    }
    conn.query_drop("INSERT INTO nokey VALUES (1, 'a'), (1, 'a'), (NULL, NULL)")
        .await
        .expect("nokey");
    conn.query_drop("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
        .await
        .expect("mode");
    conn.query_drop("INSERT INTO zero_ai VALUES (0, 1), (5, 2)")
        .await
        .expect("zero");
}

async fn checksums(conn: &mut Conn) -> Vec<(String, Option<i64>)> {
    let mut out = Vec::new();
    for t in TABLES {
        let row: Option<(String, Option<i64>)> = conn
            .query_first(format!("CHECKSUM TABLE {t}"))
            .await
            .expect("checksum");
        out.push(row.expect("a checksum row"));
    }
    out
}

type Values = Vec<Vec<mysql_async::Value>>;

async fn all_values(conn: &mut Conn) -> Values {
    let rows: Vec<mysql_async::Row> = conn
        .exec("SELECT * FROM t_types ORDER BY id", ())
        .await
        .expect("select");
    rows.into_iter().map(|r| r.unwrap()).collect()
}

async fn count(conn: &mut Conn, sql: &str) -> i64 {
    let n: Option<i64> = conn.query_first(sql).await.expect(sql);
    n.expect("one row")
}

const COUNTERS: &str = "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = 'app' AND AUTO_INCREMENT IS NOT NULL ORDER BY 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_copies_every_value_and_object_exactly_and_replaces_the_target() {
    crate::support::init_tracing();
    let dbs = MariaDb::start_many(2).await.expect("mariadb");
    let mut source = applier(&dbs[0], "app").await.expect("applier");
    let mut src = dbs[0].conn_to("app").await.expect("conn");
    fill(&mut src).await;
    // The applied position the copy must carry.
    source.apply_entries(vec![blank(7)]).await.expect("blank");
    // A counter that moves after the position was recorded (an apply attempt that did
    // not commit does that).
    let recorded: Vec<(String, u64)> = src.query(COUNTERS).await.expect("counters");
    assert!(
        recorded.iter().any(|(t, _)| t == "zero_ai"),
        "the fixture has AUTO_INCREMENT tables: {recorded:?}"
    );
    src.query_drop("ALTER TABLE zero_ai AUTO_INCREMENT = 1000")
        .await
        .expect("bump the counter");

    let dir = tempfile::tempdir().expect("tempdir");
    let snaps = Snapshots::open(
        &dir.path().join("a"),
        source.snapshot_db().expect("mariadb snapshots"),
    )
    .expect("open");
    let m = snaps.build().await.expect("build");
    assert_eq!(m.index(), 7);
    assert_eq!(m.source, "built");
    assert_eq!(
        (m.views, m.routines, m.triggers, m.sequences),
        (2, 2, 1, 1),
        "{m:?}"
    );
    assert_eq!(m.rows, 5002 + 5002 + 3 + 2, "{m:?}");
    // Nothing applied since: the same snapshot comes back, not a new copy.
    assert_eq!(snaps.build().await.expect("again").id, m.id);

    // The target holds something else, which must go.
    let mut target = applier(&dbs[1], "app").await.expect("applier");
    let mut dst = dbs[1].conn_to("app").await.expect("conn");
    dst.query_drop("CREATE TABLE junk (x INT PRIMARY KEY)")
        .await
        .expect("junk");
    dst.query_drop("CREATE VIEW junk_v AS SELECT x FROM junk")
        .await
        .expect("junk view");
    dst.query_drop("CREATE PROCEDURE junk_p() SELECT 1")
        .await
        .expect("junk proc");
    let into = Snapshots::open(
        &dir.path().join("b"),
        target.snapshot_db().expect("mariadb snapshots"),
    )
    .expect("open");
    let restored = into
        .restore(&snaps.file_path(&m.id))
        .await
        .expect("restore");
    assert_eq!(restored.id, m.id);
    assert_eq!(restored.sha256, m.sha256);

    assert_eq!(checksums(&mut src).await, checksums(&mut dst).await);
    assert_eq!(all_values(&mut src).await, all_values(&mut dst).await);
    let nk: Vec<(Option<i32>, Option<String>)> = dst
        .query("SELECT a, b FROM nokey ORDER BY a, b")
        .await
        .expect("nokey");
    assert_eq!(nk.len(), 3);
    let zero: Vec<(i32, i32)> = dst
        .query("SELECT id, v FROM zero_ai ORDER BY id")
        .await
        .expect("zero");
    assert_eq!(zero, vec![(0, 1), (5, 2)], "an explicit 0 id stays 0");
    // The trigger did not fire on loaded rows, and fires afterwards.
    assert_eq!(count(&mut dst, "SELECT COUNT(*) FROM audit").await, 5002);
    dst.query_drop("INSERT INTO t_types (id) VALUES (99999)")
        .await
        .expect("insert");
    assert_eq!(count(&mut dst, "SELECT COUNT(*) FROM audit").await, 5003);
    assert_eq!(count(&mut dst, "SELECT n FROM v0").await, 5003);
    assert_eq!(count(&mut dst, "SELECT f_double(21)").await, 42);
    let next: Option<i64> = dst.query_first("SELECT NEXTVAL(s1)").await.expect("seq");
    assert_eq!(next, Some(100));
    assert_eq!(
        count(
            &mut dst,
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME LIKE 'junk%'"
        )
        .await,
        0,
        "the target's own objects are gone"
    );
    assert_eq!(
        count(
            &mut dst,
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'app'"
        )
        .await,
        2
    );
    let (applied, membership) = target.applied_state().await.expect("position");
    assert_eq!(applied.map(|l| l.index), Some(7));
    assert_eq!(membership, m.membership);

    // An interrupted load (marker left behind, data half gone) is redone on resume.
    dst.query_drop("DROP TABLE audit").await.expect("damage");
    std::fs::write(into.dir().join("INSTALLING"), &m.id).expect("marker");
    assert!(
        into.resume(None).await.expect("resume"),
        "the load is redone"
    );
    assert!(!into.dir().join("INSTALLING").exists());
    assert_eq!(checksums(&mut src).await, checksums(&mut dst).await);
    // Nothing to redo the second time.
    assert!(!into.resume(applied).await.expect("resume"));

    // A stop after the marker was written but before the received file moved into place:
    // the part is found, moved and loaded.
    dst.query_drop("DROP TABLE audit").await.expect("damage");
    std::fs::rename(into.file_path(&m.id), into.dir().join("recv-1-0.part")).expect("unmove");
    std::fs::write(into.dir().join("INSTALLING"), &m.id).expect("marker");
    assert!(
        into.resume(None).await.expect("resume"),
        "the install is finished"
    );
    assert!(into.file_path(&m.id).is_file());
    assert!(!into.dir().join("recv-1-0.part").exists());
    assert!(!into.dir().join("INSTALLING").exists());
    assert_eq!(checksums(&mut src).await, checksums(&mut dst).await);

    // The applier's AUTO_INCREMENT counters (what generated ids come from) are those
    // recorded with the copy's position, whatever `SHOW CREATE TABLE` said.
    let stored = "SELECT `autoinc` FROM `_wolfscale` WHERE `id` = 1";
    let a: Option<Option<String>> = src.query_first(stored).await.expect("source counters");
    let b: Option<Option<String>> = dst.query_first(stored).await.expect("copy's counters");
    assert_eq!(a, b);

    // Damaged files are refused before anything is loaded.
    let bad = dir.path().join("bad.snap");
    let mut bytes = std::fs::read(snaps.file_path(&m.id)).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&bad, bytes).expect("write");
    let e = into.restore(&bad).await.expect_err("damaged");
    assert!(e.to_string().contains("damaged"), "{e}");
    assert_eq!(checksums(&mut src).await, checksums(&mut dst).await);
}
