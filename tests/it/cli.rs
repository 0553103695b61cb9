//! The `wolfscale` binary end to end: `init`, `validate` (with `--check-db` against a
//! private MariaDB) and `info`, checking exit codes and what an operator reads.

use crate::support::MariaDb;
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::process::{Command, Output};

fn wolfscale(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wolfscale"))
        .args(args)
        .current_dir(dir)
        .env_remove("WOLFSCALE_CONFIG")
        .env_remove("WOLFSCALE_DB_PASSWORD")
        .env_remove("WOLFSCALE_CLUSTER_SECRET")
        .output()
        .expect("run the wolfscale binary")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Points a fresh config at the private server as `user`.
fn config_for(dir: &Path, db: &MariaDb, user: &str) {
    let out = wolfscale(dir, &["init", "--node-id", "node-1", "-o", "w.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let cfg = std::fs::read_to_string(dir.join("w.toml")).expect("read config");
    let cfg = cfg
        .replace("host = \"localhost\"", &format!("host = \"{}\"", db.host()))
        .replace("port = 3306", &format!("port = {}", db.port()))
        .replace("user = \"wolfscale\"", &format!("user = \"{user}\""))
        .replace(
            "# password = \"your-password\"",
            "password = \"pw-for-tests\"",
        );
    std::fs::write(dir.join("w.toml"), cfg).expect("write config");
}

#[test]
fn init_validate_and_three_planted_mistakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = wolfscale(
        dir.path(),
        &["init", "--node-id", "node-1", "--output", "w.toml"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = wolfscale(dir.path(), &["validate", "-c", "w.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("valid"));

    let good = std::fs::read_to_string(dir.path().join("w.toml")).expect("read");
    let bad = good
        .replace("segment_size_mb = 64", "segment_size_mb = 0")
        .replace("fsync = true", "fsync = \"yes\"")
        .replace("[api]\n", "[api]\nbind_adress = \"0.0.0.0:1\"\n");
    std::fs::write(dir.path().join("bad.toml"), bad).expect("write");
    let out = wolfscale(dir.path(), &["validate", "-c", "bad.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    for key in ["wal.segment_size_mb", "wal.fsync", "api.bind_adress"] {
        assert!(t.contains(key), "{key} missing from:\n{t}");
    }
    assert!(
        !t.contains("panicked") && !t.contains("RUST_BACKTRACE"),
        "{t}"
    );

    std::fs::write(dir.path().join("syntax.toml"), "[node]\nid = \n").expect("write");
    let out = wolfscale(dir.path(), &["validate", "-c", "syntax.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("line 2"), "{}", text(&out));

    let out = wolfscale(dir.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("wolfscale.toml"), "{}", text(&out));

    let out = Command::new(env!("CARGO_BIN_EXE_wolfscale"))
        .args(["info"])
        .current_dir(dir.path())
        .env("WOLFSCALE_CONFIG", "w.toml")
        .env("WOLFSCALE_DB_PASSWORD", "very-secret-password")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("database password: environment"), "{t}");
    assert!(!t.contains("very-secret-password"), "{t}");
}

#[tokio::test]
async fn check_db_reports_version_and_missing_privileges() {
    let db = MariaDb::start().await.expect("start mariadb");
    let mut conn = db.conn().await.expect("connect");
    conn.query_drop(
        "CREATE USER 'full'@'127.0.0.1' IDENTIFIED BY 'pw-for-tests';
         GRANT ALL PRIVILEGES ON `myapp`.* TO 'full'@'127.0.0.1';
         CREATE USER 'thin'@'127.0.0.1' IDENTIFIED BY 'pw-for-tests';
         GRANT SELECT, INSERT ON `myapp`.* TO 'thin'@'127.0.0.1';",
    )
    .await
    .expect("create users");

    let dir = tempfile::tempdir().expect("tempdir");
    config_for(dir.path(), &db, "full");
    let out = wolfscale(dir.path(), &["validate", "-c", "w.toml", "--check-db"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("MariaDB 10.") || t.contains("MariaDB 11."),
        "{t}"
    );
    assert!(t.contains("does not exist yet"), "{t}");
    assert!(t.contains("privileges: ok"), "{t}");
    assert!(!t.contains("pw-for-tests"), "{t}");

    config_for_existing(dir.path(), "full", "thin");
    let out = wolfscale(dir.path(), &["validate", "-c", "w.toml", "--check-db"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("lacks UPDATE, DELETE, CREATE, DROP, ALTER, INDEX"),
        "{t}"
    );

    conn.query_drop("CREATE DATABASE myapp")
        .await
        .expect("create db");
    config_for_existing(dir.path(), "thin", "full");
    let out = wolfscale(dir.path(), &["validate", "-c", "w.toml", "--check-db"]);
    assert!(text(&out).contains("`myapp`: exists"), "{}", text(&out));

    config_for_existing(dir.path(), "full", "nobody");
    let out = wolfscale(dir.path(), &["validate", "-c", "w.toml", "--check-db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("Access denied"), "{}", text(&out));
}

fn config_for_existing(dir: &Path, from: &str, to: &str) {
    let cfg = std::fs::read_to_string(dir.join("w.toml")).expect("read config");
    let cfg = cfg.replace(&format!("user = \"{from}\""), &format!("user = \"{to}\""));
    std::fs::write(dir.join("w.toml"), cfg).expect("write config");
}
