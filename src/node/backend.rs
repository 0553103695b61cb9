//! The HTTP API's [`Backend`] for a running node: client operations go to the node's
//! [`Service`]; cluster management (remove, transfer, promote, demote) to the node's
//! cluster operations, with their refusals as the API reports them.

use crate::api::{Backend, RemoveResult, RoleResult, TransferResult};
use crate::command::WriteRequest;
use crate::consensus::network::{AdminDone, AdminError};
use crate::service::{
    CheckReport, ClusterStatus, NodeStatus, ReadRequest, ReadResult, Service, ServiceError,
    SnapshotCreated, SnapshotList, WriteOutcome,
};

/// The node as the HTTP API sees it.
#[derive(Clone)]
pub struct NodeBackend {
    service: Service,
}

impl NodeBackend {
    /// The API's backend over `service`.
    pub fn new(service: Service) -> NodeBackend {
        NodeBackend { service }
    }
}

/// A cluster operation's refusal as the HTTP API answers it.
fn admin_error(e: AdminError) -> ServiceError {
    match e {
        AdminError::UnknownNode(message) => ServiceError::NotFound {
            code: "unknown_node".into(),
            message,
        },
        AdminError::Refused { code, message } => ServiceError::Conflict { code, message },
        AdminError::NoLeader => ServiceError::NoLeader { retry_after: 1 },
        AdminError::Busy(reason) => ServiceError::NotReady {
            reason,
            retry_after: 1,
        },
        AdminError::Timeout(message) => ServiceError::Timeout {
            message,
            lsn: None,
            lagging: Vec::new(),
        },
        AdminError::Failed(m) => ServiceError::Internal(m),
    }
}

fn role_result(done: AdminDone) -> Result<RoleResult, ServiceError> {
    match done {
        AdminDone::RoleChanged {
            name,
            number,
            lsn,
            voter,
            voters,
            learners,
        } => Ok(RoleResult {
            node_id: name,
            node_number: number,
            voter,
            lsn,
            voters,
            learners,
        }),
        other => Err(unexpected(other)),
    }
}

fn unexpected(done: AdminDone) -> ServiceError {
    ServiceError::Internal(format!("cluster operation answered {done:?}"))
}

impl Backend for NodeBackend {
    async fn write(&self, request: WriteRequest) -> Result<WriteOutcome, ServiceError> {
        self.service.write(request).await
    }

    async fn query(&self, query: ReadRequest) -> Result<ReadResult, ServiceError> {
        self.service.read(query).await
    }

    async fn ids(&self, count: usize) -> Result<Vec<u64>, ServiceError> {
        self.service.ids(count).await
    }

    fn status(&self) -> NodeStatus {
        self.service.status()
    }

    async fn cluster(&self) -> ClusterStatus {
        self.service.cluster_status().await
    }

    fn observe(&self) -> crate::observe::metrics::Observation {
        self.service.observe()
    }

    fn events(&self) -> crate::observe::events::EventList {
        self.service.events()
    }

    fn ready(&self) -> bool {
        self.service.ready()
    }

    async fn remove_node(&self, node: String) -> Result<RemoveResult, ServiceError> {
        let done = self
            .service
            .node()
            .remove_member(&node)
            .await
            .map_err(admin_error)?;
        match done {
            AdminDone::Removed {
                name,
                number,
                lsn,
                voters,
                learners,
            } => Ok(RemoveResult {
                removed: name,
                node_number: number,
                lsn,
                voters,
                learners,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn transfer_leader(&self, node: String) -> Result<TransferResult, ServiceError> {
        let done = self
            .service
            .node()
            .transfer_leader(&node)
            .await
            .map_err(admin_error)?;
        match done {
            AdminDone::Transferred {
                name,
                number,
                term,
                previous,
                previous_term,
            } => Ok(TransferResult {
                leader_id: name,
                node_number: number,
                term,
                previous_leader: previous,
                previous_term,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn promote_node(&self, node: String) -> Result<RoleResult, ServiceError> {
        let node_handle = self.service.node();
        role_result(
            node_handle
                .promote_member(&node)
                .await
                .map_err(admin_error)?,
        )
    }

    async fn demote_node(&self, node: String) -> Result<RoleResult, ServiceError> {
        let node_handle = self.service.node();
        role_result(
            node_handle
                .demote_member(&node)
                .await
                .map_err(admin_error)?,
        )
    }

    async fn snapshot_create(&self, purge: bool) -> Result<SnapshotCreated, ServiceError> {
        self.service.snapshot_create(purge).await
    }

    async fn check(&self) -> Result<CheckReport, ServiceError> {
        self.service.check().await
    }

    async fn resync(&self) -> Result<crate::service::ResyncDone, ServiceError> {
        self.service.resync().await
    }

    async fn snapshot_list(&self) -> Result<SnapshotList, ServiceError> {
        self.service.snapshot_list().await
    }
}
