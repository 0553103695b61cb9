//! Prometheus metrics through the `metrics` facade and `metrics-exporter-prometheus`.
//!
//! One recorder per process (a process runs one node). Counters and histograms are
//! updated where things happen (the API's write and read paths, the WAL's syncs, the
//! leader's batcher, the event watcher); gauges and the WAL's own counters are set from a
//! fresh [`Observation`] at every scrape, under one lock, just before rendering, so a
//! scrape always shows one consistent moment. Gauges not set by the latest scrape (a
//! peer's lag once this node no longer leads) expire after [`GAUGE_IDLE`].

use crate::api::{NodeState, NodeStatus, Role};
use crate::wal::MetricsSnapshot;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A gauge not set for this long is left out of the output.
pub const GAUGE_IDLE: Duration = Duration::from_secs(1);

const WRITE_DURATION: &str = "wolfscale_write_duration_seconds";
const WRITE_STAGE: &str = "wolfscale_write_stage_seconds";
const FSYNC_DURATION: &str = "wolfscale_wal_fsync_duration_seconds";
const BATCH_REQUESTS: &str = "wolfscale_batch_requests";
const ELECTIONS: &str = "wolfscale_elections_total";
const LEADER_CHANGES: &str = "wolfscale_leader_changes_total";

/// Bucket bounds of the write stages, seconds: fine below a millisecond, where a quiet
/// leader's stages are, coarse above.
const STAGE_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_02, 0.000_035, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_2,
    0.000_3, 0.000_4, 0.000_5, 0.000_75, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.5,
];

/// What a scrape reports about the node, gathered by the backend without I/O.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The node's own status.
    pub status: NodeStatus,
    /// The WAL's counters, when the node has a WAL.
    pub wal: Option<MetricsSnapshot>,
    /// Segment files in the WAL now.
    pub wal_segments: Option<u64>,
    /// On the leader: each peer's name and how many entries it trails the leader's log.
    pub peer_lag: Vec<(String, u64)>,
    /// Snapshots installed into this node since it started.
    pub snapshot_installs: u64,
}

impl Observation {
    /// An observation with only the node status (backends without a WAL).
    pub fn from_status(status: NodeStatus) -> Observation {
        Observation {
            status,
            wal: None,
            wal_segments: None,
            peer_lag: Vec::new(),
            snapshot_installs: 0,
        }
    }
}

/// Why `/metrics` cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Another recorder was installed in this process first.
    #[error("another metrics recorder is installed in this process")]
    RecorderTaken,
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
/// Serialises set-then-render so concurrent scrapes do not interleave.
static SCRAPE: Mutex<()> = Mutex::new(());

/// The process's recorder, installed (and every metric described) on first use.
///
/// # Errors
/// [`MetricsError::RecorderTaken`] when another recorder was installed first.
pub fn handle() -> Result<&'static PrometheusHandle, MetricsError> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
                .set_buckets_for_metric(
                    Matcher::Full(WRITE_DURATION.into()),
                    &[
                        0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01,
                        0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(WRITE_STAGE.into()), STAGE_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(FSYNC_DURATION.into()),
                        &[
                            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                            0.25, 1.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(BATCH_REQUESTS.into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                    )
                })
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
        .ok_or(MetricsError::RecorderTaken)
}

fn describe() {
    describe_gauge!("wolfscale_up", "1 while the node answers");
    describe_gauge!("wolfscale_is_leader", "1 on the leader, else 0");
    describe_gauge!("wolfscale_term", "the consensus term the node is in");
    describe_gauge!("wolfscale_last_log_lsn", "last LSN in the node's log");
    describe_gauge!("wolfscale_commit_lsn", "last LSN the node knows committed");
    describe_gauge!(
        "wolfscale_applied_lsn",
        "last LSN applied to the node's MariaDB"
    );
    describe_gauge!(
        "wolfscale_apply_lag_entries",
        "log entries the node holds but has not applied"
    );
    describe_gauge!(
        "wolfscale_node_status",
        "1 for the node's current status, 0 for every other status"
    );
    describe_gauge!(
        "wolfscale_peer_replication_lag_entries",
        "on the leader: entries a peer's log trails the leader's"
    );
    describe_counter!(
        "wolfscale_writes_total",
        "writes answered, by route and result"
    );
    describe_histogram!(
        WRITE_DURATION,
        metrics::Unit::Seconds,
        "time from a write's arrival to its answer"
    );
    describe_histogram!(
        WRITE_STAGE,
        metrics::Unit::Seconds,
        "on the leader: time a write spends in each stage of its path (see observe::stages)"
    );
    describe_counter!(
        "wolfscale_reads_total",
        "reads answered, by consistency and result"
    );
    describe_histogram!(
        FSYNC_DURATION,
        metrics::Unit::Seconds,
        "time of one WAL data sync"
    );
    describe_counter!("wolfscale_wal_bytes_total", "bytes written to WAL segments");
    describe_counter!("wolfscale_wal_records_total", "records written to the WAL");
    describe_counter!(
        "wolfscale_wal_appends_total",
        "append calls written to the WAL"
    );
    describe_counter!(
        "wolfscale_wal_payload_bytes_total",
        "payload bytes appended to the WAL before compression"
    );
    describe_counter!("wolfscale_wal_syncs_total", "WAL data syncs");
    describe_counter!("wolfscale_wal_batches_total", "WAL group-commit batches");
    describe_counter!(
        "wolfscale_wal_segments_created_total",
        "WAL segment files created"
    );
    describe_counter!(
        "wolfscale_wal_segments_deleted_total",
        "WAL segment files deleted by purge or truncation"
    );
    describe_gauge!("wolfscale_wal_segments", "WAL segment files now");
    describe_histogram!(
        BATCH_REQUESTS,
        "client requests carried by one log entry on the leader"
    );
    describe_counter!(ELECTIONS, "new terms this node has seen begin");
    describe_counter!(LEADER_CHANGES, "times the leader this node follows changed");
    describe_counter!(
        "wolfscale_snapshot_transfers_total",
        "snapshots installed into this node since it started"
    );
    describe_counter!(
        "wolfscale_proxy_connections_total",
        "MySQL front-end connections, by result (accepted, refused over max_connections)"
    );
    describe_counter!(
        "wolfscale_proxy_logins_total",
        "MySQL front-end logins, by result (ok, denied)"
    );
    describe_gauge!(
        "wolfscale_proxy_connections",
        "MySQL front-end connections open now"
    );
    describe_counter!(
        "wolfscale_proxy_statements_total",
        "MySQL front-end statements answered, by kind (read, write, ddl, session, refused) and result (ok, error)"
    );
    // Counters that must read 0 before their first event, for rate() and alerts.
    counter!(ELECTIONS).absolute(0);
    counter!(LEADER_CHANGES).absolute(0);
}

/// Every status a node can report, in the form `/status` spells it: read from the
/// status enum's schema, so a status added to [`NodeState`] appears here by itself.
pub fn all_statuses() -> Vec<String> {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    match <NodeState as utoipa::PartialSchema>::schema() {
        RefOr::T(Schema::Object(o)) => o
            .enum_values
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The text form of `state`, as `/status` spells it (`ACTIVE`).
pub fn status_name(state: NodeState) -> String {
    match serde_json::to_value(state) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{state:?}").to_uppercase(),
    }
}

/// Sets every gauge from `obs` and renders the whole registry in the Prometheus text
/// format.
///
/// # Errors
/// As [`handle`].
pub fn render(obs: &Observation) -> Result<String, MetricsError> {
    let handle = handle()?;
    // Plain gauges: a panic while holding the lock cannot leave them inconsistent.
    let _one = SCRAPE.lock().unwrap_or_else(|p| p.into_inner());
    let s = &obs.status;
    gauge!("wolfscale_up").set(1.0);
    gauge!("wolfscale_is_leader").set(if s.role == Role::Leader { 1.0 } else { 0.0 });
    gauge!("wolfscale_term").set(s.term as f64);
    gauge!("wolfscale_last_log_lsn").set(s.last_log_lsn as f64);
    gauge!("wolfscale_commit_lsn").set(s.commit_lsn as f64);
    gauge!("wolfscale_applied_lsn").set(s.applied_lsn as f64);
    gauge!("wolfscale_apply_lag_entries").set(s.lag as f64);
    let current = status_name(s.status);
    let mut statuses = all_statuses();
    if !statuses.contains(&current) {
        statuses.push(current.clone());
    }
    for name in statuses {
        let v = if name == current { 1.0 } else { 0.0 };
        gauge!("wolfscale_node_status", "status" => name).set(v);
    }
    for (peer, lag) in &obs.peer_lag {
        gauge!("wolfscale_peer_replication_lag_entries", "peer" => peer.clone()).set(*lag as f64);
    }
    if let Some(w) = &obs.wal {
        counter!("wolfscale_wal_bytes_total").absolute(w.bytes);
        counter!("wolfscale_wal_records_total").absolute(w.records);
        counter!("wolfscale_wal_appends_total").absolute(w.appends);
        counter!("wolfscale_wal_payload_bytes_total").absolute(w.payload_bytes);
        counter!("wolfscale_wal_syncs_total").absolute(w.syncs);
        counter!("wolfscale_wal_batches_total").absolute(w.batches);
        counter!("wolfscale_wal_segments_created_total").absolute(w.segments_created);
        counter!("wolfscale_wal_segments_deleted_total").absolute(w.segments_deleted);
    }
    if let Some(n) = obs.wal_segments {
        gauge!("wolfscale_wal_segments").set(n as f64);
    }
    counter!("wolfscale_snapshot_transfers_total").absolute(obs.snapshot_installs);
    handle.run_upkeep();
    Ok(handle.render())
}

/// Keeps the recorder's memory bounded between scrapes; call every few seconds.
pub fn upkeep() {
    if let Ok(h) = handle() {
        h.run_upkeep();
    }
}

/// A write on `route` (`insert`, `sql`, …) was answered: `Ok` or the error code.
pub fn write_done(route: &str, result: Result<(), &str>, took: Duration) {
    let result = result.err().unwrap_or("ok").to_string();
    counter!("wolfscale_writes_total", "route" => route.to_string(), "result" => result)
        .increment(1);
    histogram!(WRITE_DURATION).record(took.as_secs_f64());
}

/// A write spent `took` in `stage` (one of [`super::stages::STAGES`]).
pub fn write_stage(stage: &'static str, took: Duration) {
    histogram!(WRITE_STAGE, "stage" => stage).record(took.as_secs_f64());
}

/// A read with `consistency` was answered: `Ok` or the error code.
pub fn read_done(consistency: &str, result: Result<(), &str>) {
    let result = result.err().unwrap_or("ok").to_string();
    counter!(
        "wolfscale_reads_total",
        "consistency" => consistency.to_string(),
        "result" => result
    )
    .increment(1);
}

/// A MySQL front-end connection arrived: `accepted` or `refused`.
pub fn proxy_connection(result: &'static str) {
    counter!("wolfscale_proxy_connections_total", "result" => result).increment(1);
}

/// A MySQL front-end login was accepted or denied.
pub fn proxy_login(ok: bool) {
    let result = if ok { "ok" } else { "denied" };
    counter!("wolfscale_proxy_logins_total", "result" => result).increment(1);
}

/// A MySQL front-end connection opened (`1.0`) or closed (`-1.0`).
pub fn proxy_open(delta: f64) {
    gauge!("wolfscale_proxy_connections").increment(delta);
}

/// A MySQL front-end statement of `kind` was answered.
pub fn proxy_statement(kind: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    counter!("wolfscale_proxy_statements_total", "kind" => kind, "result" => result).increment(1);
}

/// One WAL data sync took `took`.
pub fn wal_fsync(took: Duration) {
    histogram!(FSYNC_DURATION).record(took.as_secs_f64());
}

/// The leader proposed one log entry carrying `requests` client requests.
pub fn batch(requests: usize) {
    histogram!(BATCH_REQUESTS).record(requests as f64);
}

/// This node saw a new term begin.
pub fn election() {
    counter!(ELECTIONS).increment(1);
}

/// The leader this node follows changed.
pub fn leader_change() {
    counter!(LEADER_CHANGES).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_listed_by_its_wire_name() {
        let all = all_statuses();
        for s in [NodeState::Active, NodeState::Degraded, NodeState::Offline] {
            assert!(all.contains(&status_name(s)), "{all:?}");
        }
        assert!(all
            .iter()
            .all(|s| s.chars().all(|c| c.is_ascii_uppercase() || c == '_')));
    }
}
