//! Write batching on the leader (in-process nodes, real TCP): concurrent writes share log
//! entries, and each writer still gets the answer for its own request.

use crate::support::cluster::Cluster;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_each_gets_its_own_answer() {
    let c = Cluster::start_all(3).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let node = c.slots[leader].node().clone();
    let mut tasks = Vec::new();
    for i in 0..400u32 {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let payload = format!("c{i}").into_bytes();
            let (lsn, response) = node
                .propose_local(wolfscale::consensus::Request {
                    payload: payload.clone(),
                })
                .await
                .expect("write");
            (payload, lsn, response.payload)
        }));
    }
    let mut answered = BTreeMap::new();
    let mut last = 0;
    for t in tasks {
        let (payload, lsn, response) = t.await.expect("task");
        // The test applier answers every request with its entry's index.
        assert_eq!(
            response,
            lsn.to_le_bytes().to_vec(),
            "answer for {payload:?}"
        );
        last = last.max(lsn);
        answered.insert(payload, lsn);
    }
    c.wait_applied(last, Duration::from_secs(20)).await;
    let mut histories = c
        .running()
        .map(|(i, n)| (n.info().name.clone(), c.slots[i].applier.payloads()));
    let (_, first) = histories.next().expect("a node");
    for (name, h) in histories {
        assert_eq!(h, first, "{name} applied a different history");
    }
    assert_eq!(first.len(), 400, "every write applied once");
    for (lsn, payload) in &first {
        assert_eq!(
            answered.get(payload),
            Some(lsn),
            "{payload:?} was answered with the LSN it was applied at"
        );
    }
    let entries: std::collections::BTreeSet<u64> = first.iter().map(|(l, _)| *l).collect();
    assert!(
        entries.len() < 400,
        "400 concurrent writes were batched into fewer entries ({})",
        entries.len()
    );
}
