//! The read path: a read runs on this node's MariaDB once this node has applied what the
//! request's consistency asks for (its own commit index for `weak`, the leader's read
//! index for `linearizable`) and its `min_lsn` (read-your-writes on any node).

use super::write::no_leader;
use super::{Consistency, ReadRequest, ReadResult, Service, ServiceError};
use crate::apply::{Protocol, QueryError, RawRows};
use crate::command::Input;
use crate::consensus::network::{ClusterError, PeerRequest, PeerResponse};
use openraft::ServerState;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long opening an interactive transaction may wait for this node to catch up.
const BEGIN_WAIT: Duration = Duration::from_secs(30);

impl Service {
    /// Runs one read on this node after the waits its request asks for.
    ///
    /// # Errors
    /// The statement is not one read or its values do not bind
    /// ([`ServiceError::Invalid`]), MariaDB refused it ([`ServiceError::Database`]), the
    /// waits or the statement ran past `timeout` ([`ServiceError::Timeout`]), the answer
    /// is too large, or the node cannot serve reads now.
    pub async fn read(&self, request: ReadRequest) -> Result<ReadResult, ServiceError> {
        let started = Instant::now();
        self.wait_for_read(&request, started).await?;
        let rows = self
            .inner
            .reader
            .query(&request.sql, &request.params, request.timeout)
            .await
            .map_err(query_error)?;
        Ok(ReadResult {
            columns: rows.columns,
            rows: rows
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(json_to_input).collect())
                .collect(),
        })
    }

    /// [`Service::read`], answering MariaDB's result set as it is (column definitions and
    /// values), for a front end that relays it to a MySQL client; see
    /// [`crate::apply::Reader::query_raw`] for `protocol`.
    ///
    /// # Errors
    /// As [`Service::read`].
    pub async fn read_raw(
        &self,
        request: ReadRequest,
        protocol: Protocol,
    ) -> Result<RawRows, ServiceError> {
        let started = Instant::now();
        self.wait_for_read(&request, started).await?;
        let left = request.timeout.saturating_sub(started.elapsed());
        self.inner
            .reader
            .query_raw(
                &request.sql,
                &request.params,
                left,
                protocol,
                request.sql_mode.as_deref(),
            )
            .await
            .map_err(query_error)
    }

    /// Opens a local transaction on this node's MariaDB for an interactive transaction of
    /// a front end (see [`crate::apply::tentative`]), once this node has applied what
    /// `consistency` and `min_lsn` ask for; `max_duration` bounds each of its statements.
    ///
    /// # Errors
    /// The waits time out, the node cannot serve reads now, or MariaDB is unavailable.
    pub async fn begin_local(
        &self,
        read_only: bool,
        timestamp_us: u64,
        consistency: Consistency,
        min_lsn: Option<u64>,
        max_duration: Duration,
    ) -> Result<crate::apply::tentative::LocalTxn, ServiceError> {
        let request = ReadRequest {
            sql: String::new(),
            params: Vec::new(),
            consistency,
            min_lsn,
            sql_mode: None,
            timeout: BEGIN_WAIT,
        };
        self.wait_for_read(&request, Instant::now()).await?;
        self.inner
            .reader
            .tentatives()
            .begin(read_only, timestamp_us, max_duration)
            .await
            .map_err(query_error)
    }

    /// The bounds a read's answer is held to.
    pub fn read_limits(&self) -> crate::apply::ReadLimits {
        self.inner.reader.limits()
    }

    /// The result columns `sql` (a read with `params` placeholders) will have, as this
    /// node's MariaDB prepares it, for a front end answering a client's prepare.
    ///
    /// # Errors
    /// Not one read, MariaDB's refusal, or MariaDB unavailable.
    pub async fn describe_read(
        &self,
        sql: &str,
        params: usize,
    ) -> Result<Vec<mysql_async::Column>, ServiceError> {
        self.inner
            .reader
            .describe(sql, params)
            .await
            .map_err(query_error)
    }

    /// Waits until this node may serve `request`: it is a member with its data, and it
    /// has applied what the request's consistency and `min_lsn` ask for.
    async fn wait_for_read(
        &self,
        request: &ReadRequest,
        started: Instant,
    ) -> Result<(), ServiceError> {
        if self.inner.node.is_removed() {
            return Err(self.removed_error());
        }
        if self.loading_snapshot() {
            return Err(ServiceError::NotReady {
                reason: "this node is loading a snapshot; read from another node".into(),
                retry_after: 5,
            });
        }
        let mut min_lsn = request.min_lsn;
        if request.consistency == Consistency::Linearizable {
            // Everything committed before this read started is applied here before it runs.
            let index = self.read_index(request.timeout).await?;
            min_lsn = Some(min_lsn.map_or(index, |m| m.max(index)));
        } else if request.consistency == Consistency::Weak {
            // What this node already knows is committed, without asking anyone.
            let known = self.inner.commit.load(Ordering::Acquire);
            min_lsn = Some(min_lsn.map_or(known, |m| m.max(known)));
        }
        if let Some(lsn) = min_lsn {
            let left = request.timeout.saturating_sub(started.elapsed());
            self.inner
                .apply
                .wait_applied(lsn, left)
                .await
                .map_err(|e| ServiceError::Timeout {
                    message: e.to_string(),
                    lsn: Some(lsn),
                    lagging: vec![self.inner.node.info().name.clone()],
                })?;
        }
        Ok(())
    }

    /// The leader's read index: asked of consensus here when this node leads, else of the
    /// leader over the cluster transport; within `timeout`.
    async fn read_index(&self, timeout: Duration) -> Result<u64, ServiceError> {
        if let Some(refusal) = self.quorum_refusal() {
            return Err(refusal);
        }
        let timed_out = || ServiceError::Timeout {
            message: format!(
                "the leader did not confirm its leadership within {} ms",
                timeout.as_millis()
            ),
            lsn: None,
            lagging: Vec::new(),
        };
        let leading = self.inner.node.raft().metrics().borrow().state == ServerState::Leader;
        let answer = if leading {
            tokio::time::timeout(timeout, self.inner.node.read_index())
                .await
                .map_err(|_| timed_out())?
        } else {
            let leader = self.leader().ok_or_else(no_leader)?;
            match self
                .inner
                .node
                .client()
                .call::<_, PeerResponse>(&leader.cluster_addr, &PeerRequest::ReadIndex, timeout)
                .await
            {
                Ok(PeerResponse::ReadIndex(r)) => r,
                Ok(_) => {
                    return Err(ServiceError::Internal(
                        "leader answered with the wrong message".into(),
                    ))
                }
                Err(crate::transport::Error::Timeout { .. }) => return Err(timed_out()),
                // Reads change nothing: any other transport failure is worth a retry.
                Err(_) => return Err(no_leader()),
            }
        };
        answer.map_err(|e| match e {
            // Leadership moved while we asked: the client retries and finds the new one.
            ClusterError::NoLeader | ClusterError::NotLeader(..) => no_leader(),
            other => ServiceError::Internal(other.to_string()),
        })
    }
}

/// A failed read as the client must see it.
fn query_error(e: QueryError) -> ServiceError {
    match e {
        QueryError::Invalid(e) => ServiceError::Invalid {
            code: e.code().to_string(),
            message: e.to_string(),
        },
        QueryError::Sql {
            code,
            message,
            class,
        } => ServiceError::from_mariadb(class, code, &message),
        QueryError::Unavailable(m) => ServiceError::NotReady {
            reason: m,
            retry_after: 1,
        },
        QueryError::Timeout(t) => ServiceError::Timeout {
            message: format!("query did not finish within {t:?}"),
            lsn: None,
            lagging: Vec::new(),
        },
        e @ QueryError::TooLarge { .. } => ServiceError::TooLarge {
            message: e.to_string(),
        },
    }
}

fn json_to_input(v: serde_json::Value) -> Input {
    match v {
        serde_json::Value::Null => Input::Null,
        serde_json::Value::Bool(b) => Input::Bool(b),
        serde_json::Value::Number(n) => Input::Number(n.to_string()),
        serde_json::Value::String(s) => Input::Text(s),
        serde_json::Value::Object(ref o)
            if o.len() == 1 && o.get("$base64").is_some_and(|b| b.is_string()) =>
        {
            Input::Base64(
                o.get("$base64")
                    .and_then(|b| b.as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        }
        other => Input::Json(other),
    }
}
