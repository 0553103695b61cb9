//! Observability against real node processes: `/metrics` of a leader and a follower pass
//! `promtool check metrics`; the dashboard at `/ui`, rendered by headless Chromium, shows
//! the three nodes and the leader, then a killed node as down (screenshot saved as
//! `target/ui-dashboard.png`); the nodes log one JSON object per line, with the node and
//! term on each event line; `/openapi.json` is checked by schemathesis against a live node
//! (no 5xx, no undocumented status); the alert rules in `contrib/` pass
//! `promtool check rules` and the Grafana dashboard uses only metrics the nodes export.
//!
//! `scripts/test.sh` installs promtool (`prometheus`), `chromium` and schemathesis (in
//! `target/schemathesis-venv`) when missing; without them these tests fail, they are not
//! skipped.

use crate::support::procs::{write, NodeConfig, ProcCluster};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use wolfscale::api::client::WriteKind;
use wolfscale::api::{NodeState, QueryRequest, Role};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `name` on PATH (or in /usr/bin, /usr/sbin), or a clear failure.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed; scripts/test.sh installs it"))
}

/// Runs `cmd` with a deadline; its output.
async fn run(mut cmd: tokio::process::Command, limit: Duration) -> Output {
    cmd.kill_on_drop(true);
    let what = format!("{cmd:?}");
    tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("{what} could not run: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `promtool check metrics` on `exposition`.
async fn promtool_check_metrics(exposition: &str) {
    let mut cmd = tokio::process::Command::new(tool("promtool"));
    cmd.args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn promtool");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("promtool stdin");
        stdin
            .write_all(exposition.as_bytes())
            .await
            .expect("feed promtool");
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("promtool finishes")
        .expect("promtool runs");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics refused the exposition: {}\n---\n{exposition}",
        text(&out)
    );
}

/// Headless Chromium on `url`: the DOM after the page ran for `budget_ms` of virtual
/// time, and with `screenshot`, a PNG of the window.
async fn chromium(url: &str, budget_ms: u64, screenshot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let mut cmd = tokio::process::Command::new(tool("chromium"));
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,860",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--virtual-time-budget={budget_ms}"));
    match screenshot {
        Some(png) => cmd.arg(format!("--screenshot={}", png.display())),
        None => cmd.arg("--dump-dom"),
    };
    cmd.arg(url);
    let out = run(cmd, Duration::from_secs(90)).await;
    assert!(out.status.success(), "chromium failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `<tr data-node=…>` opening tags of the dashboard's node table.
fn node_rows(dom: &str) -> Vec<String> {
    dom.match_indices("<tr data-node=")
        .map(|(i, _)| dom[i..].split('>').next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_dashboard_and_json_logs_on_a_three_node_cluster() {
    let config = NodeConfig::with(|c| c.log.format = wolfscale::config::LogFormat::Json);
    let mut c = ProcCluster::start_with(3, &config).await;
    let leader = c.leader(Duration::from_secs(10)).await;
    let follower = c.other_than(leader);
    let lc = c.client(leader);
    write(
        &lc,
        WriteKind::Ddl,
        &json!({"ddl": "CREATE TABLE obs (id INT PRIMARY KEY, v VARCHAR(20))"}).to_string(),
    )
    .await
    .expect("create table");
    for i in 0..20 {
        write(
            &lc,
            WriteKind::Insert,
            &json!({"table": "obs", "values": {"id": i, "v": "x"}}).to_string(),
        )
        .await
        .expect("insert");
    }
    let refused = lc
        .write_raw(
            WriteKind::Insert,
            json!({"table": "missing", "values": {"id": 1}}).to_string(),
        )
        .await
        .expect_err("insert into a missing table");
    let refused_code = refused.code().expect("an API error").to_string();
    lc.query(&QueryRequest {
        sql: "SELECT COUNT(*) FROM obs".into(),
        params: vec![],
        consistency: wolfscale::api::Consistency::Linearizable,
        min_lsn: None,
        timeout_ms: None,
    })
    .await
    .expect("read");
    c.wait_converged(Duration::from_secs(20)).await;

    // /metrics: every named metric, valid for promtool, on the leader and a follower.
    let on_leader = lc.metrics().await.expect("leader /metrics");
    let on_follower = c
        .client(follower)
        .metrics()
        .await
        .expect("follower /metrics");
    for name in [
        "wolfscale_up 1",
        "wolfscale_is_leader 1",
        "wolfscale_term ",
        "wolfscale_last_log_lsn ",
        "wolfscale_commit_lsn ",
        "wolfscale_applied_lsn ",
        "wolfscale_apply_lag_entries ",
        "wolfscale_node_status{status=\"ACTIVE\"} 1",
        "wolfscale_node_status{status=\"DEGRADED\"} 0",
        "wolfscale_writes_total{route=\"insert\",result=\"ok\"} 20",
        "wolfscale_writes_total{route=\"ddl\",result=\"ok\"} 1",
        "wolfscale_write_duration_seconds_bucket{le=",
        "wolfscale_reads_total{consistency=\"linearizable\",result=\"ok\"} 1",
        "wolfscale_wal_fsync_duration_seconds_bucket{le=",
        "wolfscale_wal_bytes_total ",
        "wolfscale_wal_records_total ",
        "wolfscale_wal_segments ",
        "wolfscale_batch_requests_bucket{le=",
        "wolfscale_elections_total ",
        "wolfscale_leader_changes_total ",
        "wolfscale_snapshot_transfers_total ",
        "wolfscale_peer_replication_lag_entries{peer=\"node-",
    ] {
        assert!(
            on_leader.contains(name),
            "leader lacks {name}:\n{on_leader}"
        );
    }
    assert!(
        on_leader.contains(&format!(
            "wolfscale_writes_total{{route=\"insert\",result=\"{refused_code}\"}} 1"
        )),
        "the refused insert is not counted by its code {refused_code}:\n{on_leader}"
    );
    assert!(
        on_follower.contains("wolfscale_is_leader 0"),
        "{on_follower}"
    );
    assert!(
        !on_follower.contains("wolfscale_peer_replication_lag_entries"),
        "a follower reports no peer lag:\n{on_follower}"
    );
    promtool_check_metrics(&on_leader).await;
    promtool_check_metrics(&on_follower).await;

    // /events: the leader saw its election and the membership changes of the joins.
    let events = lc.events().await.expect("/events");
    let kinds: Vec<String> = events.iter().map(|e| format!("{:?}", e.kind)).collect();
    assert!(kinds.iter().any(|k| k == "LeaderChange"), "{events:?}");
    assert!(kinds.iter().any(|k| k == "Membership"), "{events:?}");

    // The dashboard in a real browser: three nodes, one leader highlighted.
    let url = format!("http://{}/ui", c.nodes[leader].api);
    let dom = chromium(&url, 4000, None).await;
    let rows = node_rows(&dom);
    assert_eq!(rows.len(), 3, "three node rows expected:\n{dom}");
    for n in &c.nodes {
        assert!(
            rows.iter()
                .any(|r| r.contains(&format!("data-node=\"{}\"", n.name))),
            "{} missing from the dashboard:\n{dom}",
            n.name
        );
    }
    let leader_rows: Vec<&String> = rows
        .iter()
        .filter(|r| r.contains("class=\"leader\""))
        .collect();
    assert_eq!(leader_rows.len(), 1, "one highlighted leader:\n{dom}");
    assert!(
        leader_rows[0].contains(&format!("data-node=\"{}\"", c.nodes[leader].name)),
        "{dom}"
    );
    assert!(dom.contains("id=\"events\""), "{dom}");

    // Kill a follower: the dashboard shows it down.
    let victim = follower;
    let victim_name = c.nodes[victim].name.clone();
    c.nodes[victim].kill9().await;
    let start = Instant::now();
    loop {
        let cl = lc.cluster().await.expect("/cluster");
        if cl
            .nodes
            .iter()
            .any(|n| n.node_id == victim_name && n.status == NodeState::Offline)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{cl:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dom = chromium(&url, 4000, None).await;
    let rows = node_rows(&dom);
    assert!(
        rows.iter()
            .any(|r| r.contains(&format!("data-node=\"{victim_name}\""))
                && r.contains("data-status=\"OFFLINE\"")
                && r.contains("class=\"down\"")),
        "{victim_name} not shown as down:\n{dom}"
    );
    assert!(dom.contains(">DOWN<"), "{dom}");
    // Traffic while the screenshot is taken, so its charts show something.
    let traffic = {
        let lc = lc.clone();
        tokio::spawn(async move {
            for i in 1000.. {
                let row = json!({"table": "obs", "values": {"id": i, "v": "y"}}).to_string();
                let _ = lc.write_raw(WriteKind::Insert, row).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let png = manifest_dir().join("target").join("ui-dashboard.png");
    let _ = std::fs::remove_file(&png);
    chromium(&url, 6000, Some(&png)).await;
    traffic.abort();
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        png.display()
    );

    // JSON logs: every line an object; event lines carry the node and the term.
    let raw = c.nodes[leader].log_bytes();
    assert!(
        !raw.contains(&0x1b),
        "ANSI escape codes in a log written to a file"
    );
    let mut event_lines = 0;
    for line in String::from_utf8_lossy(&raw)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
        if v.get("event").is_some() {
            event_lines += 1;
            assert!(
                v.get("node_id").is_some() && v.get("term").is_some(),
                "{line}"
            );
        }
    }
    assert!(
        event_lines >= events.len().min(3),
        "too few event lines in the log"
    );
    let me = c.nodes[leader].status().await.expect("leader status");
    assert_eq!(me.role, Role::Leader);
}

/// Where scripts/test.sh puts schemathesis, or `schemathesis` on PATH.
fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("WOLFSCALE_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let venv = manifest_dir().join("target/schemathesis-venv/bin/schemathesis");
    if venv.is_file() {
        return venv;
    }
    tool("schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let c = ProcCluster::start(1).await;
    let client = c.client(0);
    write(
        &client,
        WriteKind::Ddl,
        &json!({"ddl": "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))"}).to_string(),
    )
    .await
    .expect("create table");
    let examples = std::env::var("WOLFSCALE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let reports = tempfile::tempdir().expect("report dir");
    let mut cmd = tokio::process::Command::new(schemathesis());
    cmd.arg("run")
        .arg(format!("http://{}/openapi.json", c.nodes[0].api))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            &examples,
            "--seed",
            "17",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
        ])
        .arg("--report-dir")
        .arg(reports.path())
        // Its cache directory goes there too, not into the source tree.
        .current_dir(reports.path())
        .env("NO_COLOR", "1");
    let out = run(cmd, Duration::from_secs(600)).await;
    assert!(
        out.status.success(),
        "schemathesis found problems: {}",
        text(&out)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    // It really tested the operations (a schema it could not load tests nothing).
    let tested = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    assert!(
        tested >= 18,
        "schemathesis tested {tested} operations:\n{report}"
    );
    assert!(c.nodes[0].status().await.is_some(), "the node survived");
}

#[tokio::test]
async fn contrib_alert_rules_pass_promtool_and_the_dashboard_uses_exported_metrics() {
    let dir = manifest_dir().join("contrib");
    let mut cmd = tokio::process::Command::new(tool("promtool"));
    cmd.args(["check", "rules"])
        .arg(dir.join("prometheus/wolfscale-alerts.yml"));
    let out = run(cmd, Duration::from_secs(30)).await;
    assert!(out.status.success(), "{}", text(&out));
    let mut cmd = tokio::process::Command::new(tool("promtool"));
    cmd.args(["check", "config"])
        .arg(dir.join("prometheus/scrape-example.yml"));
    let out = run(cmd, Duration::from_secs(30)).await;
    assert!(out.status.success(), "{}", text(&out));

    // Every wolfscale_* name the dashboard and the rules query is one the node exports.
    let exported = std::fs::read_to_string(manifest_dir().join("src/observe/metrics.rs"))
        .expect("read metrics.rs");
    let dashboard = std::fs::read_to_string(dir.join("grafana/wolfscale-dashboard.json"))
        .expect("read dashboard");
    let v: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    assert!(v["panels"].as_array().is_some_and(|p| p.len() >= 10));
    let rules =
        std::fs::read_to_string(dir.join("prometheus/wolfscale-alerts.yml")).expect("read rules");
    for text in [&dashboard, &rules] {
        for (i, _) in text.match_indices("wolfscale_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                exported.contains(&format!("\"{base}\"")),
                "{name} is queried but not exported"
            );
        }
    }
}
