//! Cluster operations on in-process nodes over real TCP (issue 4): removing a follower, a
//! node that is down and the leader itself, the refusals that keep a quorum, and
//! transferring leadership to a named follower while writes go on.

use crate::cluster::{same_history, write_retry};
use crate::support::cluster::{propose_via, Cluster};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wolfscale::consensus::network::{AdminDone, AdminError};
use wolfscale::consensus::Request;
use wolfscale::node::{Node, NodeError, Role, StartMode};
use wolfscale::state::StateDb;

/// Polls `done` every 20 ms until it holds, failing after `limit`.
async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Names in slot `i`'s node registry (its state db), sorted.
fn registry(c: &Cluster, i: usize) -> Vec<String> {
    let db = StateDb::open(&c.slots[i].dir.path().join("state")).expect("state db");
    let mut names: Vec<String> = db
        .nodes()
        .expect("registry")
        .into_iter()
        .map(|r| r.name)
        .collect();
    names.sort();
    names
}

fn voter_names(c: &Cluster, node: &Node) -> Vec<String> {
    let s = node.status();
    let mut names: Vec<String> = s
        .voters
        .iter()
        .map(|n| {
            c.slots
                .iter()
                .find(|slot| slot.node.as_ref().is_some_and(|x| x.number() == *n))
                .map_or_else(|| n.to_string(), |slot| slot.name.clone())
        })
        .collect();
    names.sort();
    names
}

/// The slots of running nodes other than `except`.
fn others(c: &Cluster, except: &[usize]) -> Vec<usize> {
    c.running()
        .map(|(i, _)| i)
        .filter(|i| !except.contains(i))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_follower_keeps_the_cluster_committing_and_silences_it() {
    let mut c = Cluster::start_all(3).await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    for i in 0..20u32 {
        write_retry(&c, leader, format!("a{i}").into_bytes()).await;
    }
    let gone = (leader + 1) % 3;
    let via = (leader + 2) % 3;
    let gone_name = c.slots[gone].name.clone();
    let term = c.slots[leader].node().status().term;
    // Asked through the other follower: passed on to the leader.
    let done = c.slots[via]
        .node()
        .remove_member(&gone_name)
        .await
        .expect("remove a follower");
    let AdminDone::Removed {
        name,
        voters,
        learners,
        ..
    } = done
    else {
        panic!("unexpected answer {done:?}")
    };
    assert_eq!(name, gone_name);
    assert_eq!(voters.len(), 2, "{voters:?}");
    assert!(!voters.contains(&gone_name) && learners.is_empty());
    // The removed node hears of it and never campaigns: its term stays put.
    wait_for("the removed node knows", Duration::from_secs(5), || {
        c.slots[gone].node().is_removed()
    })
    .await;
    let gone_term = c.slots[gone].node().status().term;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        c.slots[gone].node().status().term,
        gone_term,
        "a removed node started an election"
    );
    assert_eq!(c.slots[leader].node().status().term, term);
    assert_eq!(c.slots[leader].node().status().role, Role::Leader);
    // Every remaining node forgets it in its registry too.
    for i in [leader, via] {
        let mut expected: Vec<String> = [leader, via]
            .iter()
            .map(|j| c.slots[*j].name.clone())
            .collect();
        expected.sort();
        wait_for("registry follows", Duration::from_secs(5), || {
            registry(&c, i) == expected
        })
        .await;
        let names = voter_names(&c, c.slots[i].node());
        assert_eq!(names, expected);
    }
    let stopping = Instant::now();
    c.slots[gone].stop().await;
    let stop_time = stopping.elapsed();
    let mut last = 0;
    for i in 0..20u32 {
        last = write_retry(&c, via, format!("b{i}").into_bytes()).await;
    }
    c.wait_applied(last, Duration::from_secs(10)).await;
    assert_eq!(same_history(&c).len(), 40);
    // A removed node refuses a plain start, saying how to come back.
    match c.slots[gone].start(StartMode::Start).await {
        Err(e @ NodeError::Removed(_)) => assert!(e.to_string().contains("wolfscale join")),
        Err(e) => panic!("expected Removed, got {e}"),
        Ok(()) => panic!("a removed node started as a member"),
    }
    eprintln!("a removed follower stopped in {stop_time:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_removed_while_down_learns_it_on_return_and_can_join_again() {
    let mut c = Cluster::start_all(3).await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    for i in 0..10u32 {
        write_retry(&c, leader, format!("a{i}").into_bytes()).await;
    }
    let gone = (leader + 1) % 3;
    let gone_name = c.slots[gone].name.clone();
    let gone_number = c.slots[gone].node().number();
    c.slots[gone].stop().await;
    let term = c.slots[leader].node().status().term;
    c.slots[leader]
        .node()
        .remove_member(&gone_name)
        .await
        .expect("removing a node that is down works");
    for i in 0..10u32 {
        write_retry(&c, leader, format!("b{i}").into_bytes()).await;
    }
    // It comes back believing it is a voter; asking the leader tells it otherwise.
    c.slots[gone]
        .start(StartMode::Start)
        .await
        .expect("it does not know yet");
    wait_for("the returning node learns", Duration::from_secs(10), || {
        c.slots[gone].node().is_removed()
    })
    .await;
    // It disturbed nobody.
    assert_eq!(c.slots[leader].node().status().role, Role::Leader);
    assert_eq!(c.slots[leader].node().status().term, term);
    c.slots[gone].stop().await;
    assert!(matches!(
        c.slots[gone].start(StartMode::Start).await,
        Err(NodeError::Removed(_))
    ));
    // `join` adds it back with its old log, under a new number: a removed member's
    // number is never handed out again.
    let seed = c.slots[leader].addr();
    c.slots[gone]
        .start(StartMode::Join(vec![seed]))
        .await
        .expect("join again");
    c.wait_voters(3, Duration::from_secs(20)).await;
    assert!(!c.slots[gone].node().is_removed());
    assert_ne!(c.slots[gone].node().number(), gone_number);
    let last = write_retry(&c, gone, b"c0".to_vec()).await;
    c.wait_applied(last, Duration::from_secs(20)).await;
    assert_eq!(same_history(&c).len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_leader_hands_the_cluster_to_the_others() {
    let mut c = Cluster::start_all(3).await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let via = (leader + 1) % 3;
    for i in 0..10u32 {
        write_retry(&c, via, format!("a{i}").into_bytes()).await;
    }
    let leader_name = c.slots[leader].name.clone();
    let asked = Instant::now();
    let done = c.slots[via]
        .node()
        .remove_member(&leader_name)
        .await
        .expect("remove the leader");
    let took = asked.elapsed();
    assert!(matches!(done, AdminDone::Removed { ref name, .. } if *name == leader_name));
    // Leadership was handed over first: another node already leads when the answer comes.
    let leaders: Vec<usize> = others(&c, &[leader])
        .into_iter()
        .filter(|i| c.slots[*i].node().status().role == Role::Leader)
        .collect();
    let [new] = leaders[..] else {
        panic!("no leader among the others right after the removal: {leaders:?}")
    };
    eprintln!(
        "removing the leader took {took:?}; {} leads",
        c.slots[new].name
    );
    wait_for(
        "the old leader knows it was removed",
        Duration::from_secs(5),
        || c.slots[leader].node().is_removed(),
    )
    .await;
    wait_for("the old leader steps down", Duration::from_secs(5), || {
        c.slots[leader].node().status().role != Role::Leader
    })
    .await;
    assert_eq!(voter_names(&c, c.slots[new].node()).len(), 2);
    c.slots[leader].stop().await;
    let mut last = 0;
    for i in 0..10u32 {
        last = write_retry(&c, new, format!("b{i}").into_bytes()).await;
    }
    c.wait_applied(last, Duration::from_secs(10)).await;
    assert_eq!(same_history(&c).len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_that_would_lose_the_quorum_are_refused() {
    let mut c = Cluster::start_all(3).await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let node = c.slots[leader].node().clone();
    match node.remove_member("node-9").await {
        Err(AdminError::UnknownNode(m)) => assert!(m.contains("node-9"), "{m}"),
        other => panic!("expected UnknownNode, got {other:?}"),
    }
    let (down, up) = ((leader + 1) % 3, (leader + 2) % 3);
    let (down_name, up_name) = (c.slots[down].name.clone(), c.slots[up].name.clone());
    c.slots[down].stop().await;
    // Without `up`, the voters left ({leader, down}) have only one node running.
    match node.remove_member(&up_name).await {
        Err(AdminError::Refused { code, message }) => {
            assert_eq!(code, "no_quorum", "{message}");
            assert!(message.contains(&up_name), "{message}");
        }
        other => panic!("expected a no_quorum refusal, got {other:?}"),
    }
    // Removing the node that is down is fine, by number too.
    let up_number = c.slots[up].node().number();
    let number = node
        .status()
        .voters
        .into_iter()
        .find(|n| *n != node.number() && *n != up_number)
        .expect("the stopped voter");
    remove_retrying_busy(&node, &number.to_string())
        .await
        .unwrap_or_else(|e| panic!("remove {down_name} by number {number}: {e}"));
    remove_retrying_busy(&node, &up_name)
        .await
        .expect("both are up now");
    match node.remove_member(&c.slots[leader].name).await {
        Err(AdminError::Refused { code, .. }) => assert_eq!(code, "last_voter"),
        other => panic!("expected a last_voter refusal, got {other:?}"),
    }
    let last = write_retry(&c, leader, b"alone".to_vec()).await;
    assert!(last > 0);
}

/// `remove_member`, retried while the leader answers `Busy` (another membership change,
/// e.g. the previous removal's second step, is still in flight: "retry shortly").
async fn remove_retrying_busy(node: &Node, member: &str) -> Result<AdminDone, AdminError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match node.remove_member(member).await {
            Err(AdminError::Busy(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Writes fresh payloads through `node` (to the leader among `nodes`) until `stop`;
/// returns those acknowledged, in order, and how many were not.
fn writer(
    node: Node,
    nodes: Vec<Node>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<Vec<u8>>, u32)> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut refused = 0u32;
        let mut n = 0u32;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let payload = format!("w{n}").into_bytes();
            let request = Request {
                payload: payload.clone(),
            };
            match propose_via(&node, &nodes, request).await {
                Ok(_) => acked.push(payload),
                Err(_) => {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        (acked, refused)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_leader_moves_leadership_while_writes_go_on() {
    let c = Cluster::start_all(3).await;
    let old = c.wait_leader(Duration::from_secs(5)).await;
    let target = (old + 1) % 3;
    let third = (old + 2) % 3;
    let target_name = c.slots[target].name.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let nodes = c.running().map(|(_, n)| n.clone()).collect();
    let writes = writer(c.slots[third].node().clone(), nodes, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old_term = c.slots[old].node().status().term;
    // Asked through the third node: passed on to the leader.
    let started = Instant::now();
    let done = c.slots[third]
        .node()
        .transfer_leader(&target_name)
        .await
        .expect("transfer");
    let took = started.elapsed();
    let AdminDone::Transferred {
        name,
        term,
        previous,
        previous_term,
        ..
    } = done
    else {
        panic!("unexpected answer {done:?}")
    };
    assert_eq!(name, target_name);
    assert_eq!(previous, c.slots[old].name);
    assert_eq!(previous_term, old_term);
    assert!(term > old_term);
    assert_eq!(c.slots[target].node().status().role, Role::Leader);
    wait_for(
        "everyone follows the new leader",
        Duration::from_secs(5),
        || {
            c.running().all(|(_, n)| {
                let s = n.status();
                s.term == term && s.leader == Some(c.slots[target].node().number())
            })
        },
    )
    .await;
    // Writes go on through the new leader.
    let before = c.slots[target].node().status().last_log_lsn;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (acked, refused) = writes.await.expect("writer");
    assert!(
        c.slots[target].node().status().last_log_lsn > before,
        "no write after the transfer"
    );
    eprintln!(
        "transfer took {took:?}; {} writes acknowledged, {refused} refused meanwhile",
        acked.len()
    );
    // Asking for the leader it already is is a no-op; a learner or stranger is refused.
    match c.slots[old].node().transfer_leader(&target_name).await {
        Ok(AdminDone::Transferred { name, term: t, .. }) => {
            assert_eq!((name, t), (target_name.clone(), term))
        }
        other => panic!("expected a no-op, got {other:?}"),
    }
    assert!(matches!(
        c.slots[old].node().transfer_leader("nobody").await,
        Err(AdminError::UnknownNode(_))
    ));
    let lsn = c.slots[target].node().status().last_log_lsn;
    c.wait_applied(lsn, Duration::from_secs(10)).await;
    let history = same_history(&c);
    let applied: Vec<&Vec<u8>> = history.iter().map(|(_, p)| p).collect();
    // Every acknowledged write is there, in the order it was acknowledged.
    let mut it = applied.iter();
    for a in &acked {
        assert!(it.any(|p| *p == a), "acknowledged write {a:?} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_transfers_wait_out_the_fresh_leaders_lease() {
    let c = Cluster::start_all(3).await;
    let first = c.wait_leader(Duration::from_secs(5)).await;
    let second = (first + 1) % 3;
    let third = (first + 2) % 3;
    let mut terms = Vec::new();
    // The second transfer starts right after an election: every voter's lease is fresh,
    // so the target is granted only once it has run out.
    for (to, via) in [(second, first), (third, first)] {
        let name = c.slots[to].name.clone();
        let started = Instant::now();
        match c.slots[via].node().transfer_leader(&name).await {
            Ok(AdminDone::Transferred { name: n, term, .. }) => {
                assert_eq!(n, name);
                terms.push(term);
                eprintln!("transfer to {name} took {:?}", started.elapsed());
            }
            other => panic!("transfer to {name}: {other:?}"),
        }
        assert_eq!(c.wait_leader(Duration::from_secs(5)).await, to);
    }
    assert!(terms[1] > terms[0]);
    let last = write_retry(&c, first, b"after".to_vec()).await;
    c.wait_applied(last, Duration::from_secs(10)).await;
    assert_eq!(same_history(&c).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_a_node_that_is_down_fails_and_the_leader_carries_on() {
    let mut c = Cluster::start_all(3).await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    write_retry(&c, leader, b"a".to_vec()).await;
    let down = (leader + 1) % 3;
    let down_name = c.slots[down].name.clone();
    c.slots[down].stop().await;
    let term = c.slots[leader].node().status().term;
    let started = Instant::now();
    match c.slots[leader].node().transfer_leader(&down_name).await {
        Err(AdminError::Refused { code, message }) => {
            assert_eq!(code, "unreachable", "{message}");
            assert!(message.contains(&down_name), "{message}");
        }
        other => panic!("expected an unreachable refusal, got {other:?}"),
    }
    eprintln!("refused after {:?}", started.elapsed());
    // Heartbeats resumed at once: nobody else started an election.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = c.slots[leader].node().status();
    assert_eq!((s.role, s.term), (Role::Leader, term));
    let last = write_retry(&c, leader, b"b".to_vec()).await;
    c.wait_applied(last, Duration::from_secs(10)).await;
    assert_eq!(same_history(&c).len(), 2);
}
