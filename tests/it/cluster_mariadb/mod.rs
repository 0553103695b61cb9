//! Issue 5 on real clusters: `wolfscale` processes, each with its own private MariaDB,
//! driven only through the HTTP API, and checked by reading every node's MariaDB directly.
//!
//! - `load`: 1,000 mixed writes through random nodes by 8 concurrent clients; then every
//!   table and `_wolfscale` identical on every node.
//! - `determinism`: duplicate keys, NOW(), refused non-deterministic SQL, AUTO_INCREMENT
//!   under concurrency and `min_lsn` read-your-writes.
//! - `hostile`: hostile names and values through every write route and `/query`.
//! - `crash`: kill -9 of node processes and of `mariadbd` in the middle of a load.
//! - `restore`: SPEC's "restore a backup first, then join" flow.
//! - `stranded`: a leader without a majority answers 504 within the write deadline.
//! - `outcomes`, `resync`: outcome agreement (DIVERGED) and resync, automatic and by
//!   `wolfscale resync`.
//! - `rejoin`: a node whose data dir and database were wiped cannot take back its seat.

mod crash;
mod determinism;
mod hostile;
mod load;
mod outcomes;
mod rejoin;
mod restore;
mod resync;
mod stranded;

use crate::support::procs::ProcCluster;
use crate::support::tables::{assert_identical, db_state, DbState};
use std::time::Duration;

/// Waits until every running node applied the whole log, then asserts their databases
/// are identical and `_wolfscale` is at that LSN everywhere; returns the first node's
/// state and the LSN.
pub async fn assert_converged(c: &ProcCluster) -> (DbState, u64) {
    let lsn = c.wait_converged(Duration::from_secs(60)).await;
    let mut states = Vec::new();
    for node in c.nodes.iter().filter(|n| n.is_running()) {
        states.push((
            node.name.clone(),
            db_state(&node.db, crate::support::procs::DATABASE).await,
        ));
    }
    assert_identical(&states);
    let first = states.swap_remove(0).1;
    assert_eq!(
        first.applied_index,
        Some(lsn),
        "_wolfscale is not at the log's last LSN"
    );
    (first, lsn)
}
