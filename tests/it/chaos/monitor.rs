//! Samples every node's `/status` about every 100 ms during a run: the (term, leader)
//! pairs the checker needs for "at most one leader per term", and the leader hint the
//! workload and the nemesis use to aim at the leader.

use super::history::Sample;
use super::workload::Shared;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wolfscale::api::client::Client;
use wolfscale::api::Role;

/// Sampling period.
pub const PERIOD: Duration = Duration::from_millis(100);

/// Samples until `stop`; returns every answer received.
pub async fn run(
    apis: Vec<String>,
    shared: Shared,
    t0: Instant,
    stop: CancellationToken,
) -> Vec<Sample> {
    let clients: Vec<Client> = apis
        .iter()
        .map(|a| {
            Client::new(a)
                .expect("client")
                .with_timeout(Duration::from_millis(400))
        })
        .collect();
    let mut samples = Vec::new();
    while !stop.is_cancelled() {
        let at = t0.elapsed();
        let round = futures::future::join_all(clients.iter().map(|c| c.status())).await;
        let mut best: Option<(u64, usize)> = None;
        for (node, answer) in round.into_iter().enumerate() {
            let Ok(s) = answer else { continue };
            let leader = s.role == Role::Leader;
            if leader && best.is_none_or(|(t, _)| s.term > t) {
                best = Some((s.term, node));
            }
            samples.push(Sample {
                at,
                node,
                term: s.term,
                leader,
                leader_id: s.leader_id,
            });
        }
        shared
            .leader
            .store(best.map_or(usize::MAX, |(_, n)| n), Ordering::Relaxed);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(PERIOD.saturating_sub(t0.elapsed() - at)) => {}
        }
    }
    samples
}
