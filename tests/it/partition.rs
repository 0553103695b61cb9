//! Network partitions between in-process nodes (issue 4): every node listens on its own
//! loopback address behind a relay that black-holes the links the test cuts, so a node
//! can be cut off without any connection being closed.

use crate::cluster::{same_history, write_retry};
use crate::support::cluster::{Cluster, ELECTION_TIMEOUT_MS};
use openraft::RaftLogReader;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wolfscale::consensus::network::ClusterError;
use wolfscale::consensus::{Entry, Request, Response};
use wolfscale::node::{Node, Role};

/// Waits for a leader among `slots` in a term above `term`; returns its slot.
async fn wait_new_leader(c: &Cluster, slots: &[usize], term: u64, limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        for &i in slots {
            let s = c.slots[i].node().status();
            if s.role == Role::Leader && s.term > term {
                return i;
            }
        }
        assert!(
            start.elapsed() < limit,
            "no leader among slots {slots:?} above term {term} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The log of `node` from index 0 to `last`, inclusive.
async fn log(node: &Node, last: u64) -> Vec<Entry> {
    let mut store = node.log_store().clone();
    store
        .try_get_log_entries(0..=last)
        .await
        .expect("read the log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_commits_nothing_and_the_majority_moves_on() {
    let c = Cluster::start_partitionable(3).await;
    let old = c.wait_leader(Duration::from_secs(5)).await;
    let majority: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let mut acked = Vec::new();
    for i in 0..30u32 {
        let p = format!("before{i}").into_bytes();
        write_retry(&c, i as usize % 3, p.clone()).await;
        acked.push(p);
    }
    let lsn = c.slots[old].node().status().last_log_lsn;
    c.wait_applied(lsn, Duration::from_secs(10)).await;

    let old_node = c.slots[old].node().clone();
    let before = old_node.status();
    c.isolate(old);
    let cut_at = Instant::now();

    // Writes sent to the cut-off leader: it still believes it leads and appends them, but
    // no follower hears of them, so none may be acknowledged while the partition lasts.
    let stranded: Vec<_> = (0..5u32)
        .map(|i| {
            let n = old_node.clone();
            let payload = format!("stranded{i}").into_bytes();
            let task = tokio::spawn(async move {
                n.propose_local(Request {
                    payload: payload.clone(),
                })
                .await
            });
            (format!("stranded{i}").into_bytes(), task)
        })
        .collect();

    // The majority elects a leader of its own and commits through it.
    let new = wait_new_leader(&c, &majority, before.term, Duration::from_secs(10)).await;
    let failover = cut_at.elapsed();
    eprintln!("majority elected slot {new} after {failover:?}");
    // A follower stands after half to all of election_timeout_ms of silence.
    assert!(
        failover < Duration::from_millis(ELECTION_TIMEOUT_MS + 1000),
        "the majority took {failover:?} to elect a leader"
    );
    let mut last = 0;
    for i in 0..100u32 {
        let p = format!("after{i}").into_bytes();
        last = write_retry(&c, majority[i as usize % 2], p.clone()).await;
        acked.push(p);
    }
    assert!(last > before.last_log_lsn);

    // Nothing committed on the old leader's side: it applied nothing new, answered none of
    // the stranded writes, and still holds them as an uncommitted suffix.
    let during = old_node.status();
    assert_eq!(
        during.applied_lsn, before.applied_lsn,
        "the isolated leader applied something"
    );
    for (p, task) in &stranded {
        assert!(
            !task.is_finished(),
            "a write to the isolated leader finished during the partition: {}",
            String::from_utf8_lossy(p)
        );
    }
    let suffix = log(&old_node, during.last_log_lsn).await;
    // Counted by request. The leader batches writes and keeps at most two entries in
    // flight, so while nothing commits some stranded writes wait in its queue, unappended
    // (and unanswered, checked above); at least one was appended.
    let stranded_in_log: usize = suffix
        .iter()
        .filter(|e| e.log_id.index > before.last_log_lsn)
        .map(|e| match &e.payload {
            openraft::EntryPayload::Normal(rs) => rs.0.len(),
            _ => 0,
        })
        .sum();
    assert!(
        (1..=stranded.len()).contains(&stranded_in_log),
        "the isolated leader should hold some stranded writes uncommitted: {stranded_in_log}"
    );
    assert!(suffix
        .iter()
        .filter(|e| e.log_id.index > before.last_log_lsn)
        .all(|e| e.log_id.leader_id.term == before.term));

    // Heal: the old leader hears the new term, steps down and follows.
    c.heal();
    let new_number = c.slots[new].node().number();
    let start = Instant::now();
    loop {
        let s = old_node.status();
        if s.role == Role::Follower && s.leader == Some(new_number) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the old leader did not follow the new one after healing: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Each stranded write ends refused (queued, never appended) or of unknown fate
    // (appended to the lost suffix); never acknowledged from the old leader's lost suffix,
    // and never applied when it was not acknowledged (nothing re-proposes it).
    let mut outcomes: BTreeMap<Vec<u8>, Result<(u64, Response), ClusterError>> = BTreeMap::new();
    for (p, task) in stranded {
        let r = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("a stranded write never got an answer after healing")
            .expect("stranded write task");
        outcomes.insert(p, r);
    }

    let lsn = c.slots[new].node().status().last_log_lsn;
    c.wait_applied(lsn, Duration::from_secs(20)).await;
    let history = same_history(&c);
    let applied: BTreeMap<&Vec<u8>, u64> = history.iter().map(|(i, p)| (p, *i)).collect();
    for p in &acked {
        assert!(
            applied.contains_key(p),
            "acknowledged write {} is missing",
            String::from_utf8_lossy(p)
        );
    }
    let acked_order: Vec<&Vec<u8>> = history
        .iter()
        .map(|(_, p)| p)
        .filter(|p| acked.contains(p))
        .collect();
    assert_eq!(
        acked_order,
        acked.iter().collect::<Vec<_>>(),
        "acknowledged writes, in order"
    );
    for (p, r) in &outcomes {
        let name = String::from_utf8_lossy(p);
        match r {
            Ok((at, _)) => {
                assert_eq!(applied.get(p), Some(at), "{name} acknowledged at {at}");
                assert!(*at > before.last_log_lsn);
            }
            Err(_) => assert!(!applied.contains_key(p), "{name} refused but applied"),
        }
    }
    let shown: Vec<String> = outcomes
        .iter()
        .map(|(p, r)| match r {
            Ok((at, _)) => format!("{} committed at {at}", String::from_utf8_lossy(p)),
            Err(e) => format!("{} refused: {e}", String::from_utf8_lossy(p)),
        })
        .collect();
    eprintln!("stranded writes after healing: {shown:?}");

    // One history: the logs agree entry for entry up to the commit point, and the old
    // leader's uncommitted suffix is gone.
    let logs: Vec<Vec<Entry>> = {
        let mut v = Vec::new();
        for (_, n) in c.running() {
            v.push(log(n, lsn).await);
        }
        v
    };
    assert_eq!(logs[0].len() as u64, lsn + 1);
    for l in &logs[1..] {
        assert_eq!(l, &logs[0], "logs differ");
    }
    assert!(
        logs[0]
            .iter()
            .filter(|e| e.log_id.index > before.last_log_lsn)
            .all(|e| e.log_id.leader_id.term > before.term),
        "an entry of the old leader's lost suffix survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_holds_a_cut_links_bytes_and_delivers_them_when_restored() {
    use crate::support::relay::Relay;
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let relay = Relay::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        server.local_addr().expect("addr"),
    )
    .await;
    let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
    let dial = |from: IpAddr| async move {
        let s = tokio::net::TcpSocket::new_v4().expect("socket");
        s.bind((from, 0).into()).expect("bind source");
        s.connect(relay.addr).await.expect("connect to the relay")
    };
    let mut from_a = dial(a).await;
    let (mut up_a, _) = server.accept().await.expect("relayed connection");
    let mut buf = [0u8; 5];

    relay.cut(a);
    from_a.write_all(b"hello").await.expect("write while cut");
    up_a.write_all(b"world").await.expect("write while cut");
    // Nothing arrives either way, and nothing is closed.
    for side in [&mut from_a, &mut up_a] {
        let r = tokio::time::timeout(Duration::from_millis(300), side.read(&mut buf)).await;
        assert!(r.is_err(), "bytes crossed a cut link: {r:?}");
    }
    // Another source still gets through; a new connection from the cut one is held.
    let mut from_b = dial(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6))).await;
    let (mut up_b, _) = server.accept().await.expect("relayed connection");
    from_b.write_all(b"other").await.expect("write");
    up_b.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"other");
    let _held = dial(a).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), server.accept())
            .await
            .is_err(),
        "a connection from a cut source reached the node"
    );

    relay.restore(a);
    up_a.read_exact(&mut buf)
        .await
        .expect("held bytes delivered");
    assert_eq!(&buf, b"hello");
    from_a
        .read_exact(&mut buf)
        .await
        .expect("held bytes delivered");
    assert_eq!(&buf, b"world");
    tokio::time::timeout(Duration::from_secs(5), server.accept())
        .await
        .expect("the held connection reaches the node once restored")
        .expect("accept");
}
