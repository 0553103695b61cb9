//! Non-voting learners on in-process nodes over real TCP (issue 18): a learner applies
//! every write and is never promoted by itself; with it cut off or down the voters go on
//! committing; an operator promotes it to a voter and demotes it back; the refusals.

use crate::cluster::{same_history, write_retry};
use crate::support::cluster::Cluster;
use std::time::{Duration, Instant};
use wolfscale::consensus::network::{AdminDone, AdminError};
use wolfscale::node::{NodeError, Role, StartMode};

/// Polls `done` every 20 ms until it holds, failing after `limit`.
async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three voters (slots 0-2) and a learner (slot 3), each behind its own relay.
async fn voters_and_a_learner() -> Cluster {
    let mut c = Cluster::new_partitionable(4).await;
    c.slots[3].learner = true;
    c.slots[0]
        .start(StartMode::Bootstrap)
        .await
        .expect("bootstrap");
    let seed = c.slots[0].addr();
    for i in 1..4 {
        c.slots[i]
            .start(StartMode::Join(vec![seed.clone()]))
            .await
            .expect("join");
    }
    let c_ref = &c;
    wait_for("3 voters and 1 learner", Duration::from_secs(20), || {
        c_ref.running().any(|(_, n)| {
            let s = n.status();
            s.role == Role::Leader && s.voters.len() == 3 && s.learners.len() == 1
        })
    })
    .await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_applies_the_log_but_the_voters_never_wait_for_it() {
    let mut c = voters_and_a_learner().await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    assert_ne!(leader, 3, "a learner never leads");
    let learner_no = c.slots[3].node().number();
    let mut last = 0;
    for i in 0..30u32 {
        last = write_retry(&c, leader, format!("a{i}").into_bytes()).await;
    }
    c.wait_applied(last, Duration::from_secs(10)).await;
    let s = c.slots[3].node().status();
    assert_eq!(s.role, Role::Learner);
    assert_eq!(s.learners, [learner_no]);
    assert!(!s.voters.contains(&learner_no));
    // Caught up and well past the promotion period: still a learner.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = c.slots[leader].node().status();
    assert_eq!((s.voters.len(), s.learners.clone()), (3, vec![learner_no]));

    // Cut off (a WAN outage): the voters commit without it, and promptly.
    c.isolate(3);
    let held = c.slots[3].node().status().applied_lsn;
    let start = Instant::now();
    for i in 0..30u32 {
        last = write_retry(&c, leader, format!("b{i}").into_bytes()).await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "30 writes took {:?} with the learner cut off",
        start.elapsed()
    );
    assert_eq!(c.slots[3].node().status().applied_lsn, held);
    // Writes through the cut-off learner have no leader to reach; nothing is lost.
    c.heal();
    c.wait_applied(last, Duration::from_secs(15)).await;

    // Down: same; back up, it catches up from where it stopped, still a learner.
    c.slots[3].stop().await;
    for i in 0..30u32 {
        last = write_retry(&c, leader, format!("c{i}").into_bytes()).await;
    }
    c.slots[3].start(StartMode::Start).await.expect("restart");
    c.wait_applied(last, Duration::from_secs(15)).await;
    assert_eq!(c.slots[3].node().status().role, Role::Learner);
    // Writes sent to the learner are forwarded to the leader.
    last = write_retry(&c, 3, b"via-learner".to_vec()).await;
    c.wait_applied(last, Duration::from_secs(10)).await;
    let history = same_history(&c);
    assert_eq!(history.len(), 91, "every write applied once on every node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_promotes_a_learner_and_demotes_a_voter() {
    let c = voters_and_a_learner().await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let mut last = 0;
    for i in 0..10u32 {
        last = write_retry(&c, leader, format!("p{i}").into_bytes()).await;
    }
    c.wait_applied(last, Duration::from_secs(10)).await;
    let learner = c.slots[3].name.clone();
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    // Asked through a follower: passed on to the leader.
    let done = c.slots[follower]
        .node()
        .promote_member(&learner)
        .await
        .expect("promote");
    let AdminDone::RoleChanged {
        name,
        voter,
        voters,
        learners,
        ..
    } = done
    else {
        panic!("promote answered {done:?}");
    };
    assert_eq!((name.as_str(), voter), (learner.as_str(), true));
    assert_eq!(voters.len(), 4, "{voters:?}");
    assert!(learners.is_empty(), "{learners:?}");
    let c_ref = &c;
    wait_for("the promoted node votes", Duration::from_secs(5), || {
        c_ref.slots[3].node().status().role == Role::Follower
    })
    .await;
    // Promoting a voter again changes nothing.
    let again = c.slots[leader]
        .node()
        .promote_member(&learner)
        .await
        .expect("promote a voter");
    assert!(matches!(again, AdminDone::RoleChanged { voter: true, .. }));

    // Demote it back: a learner again, and not promoted again by the leader.
    let done = c.slots[leader]
        .node()
        .demote_member(&learner)
        .await
        .expect("demote");
    assert!(
        matches!(&done, AdminDone::RoleChanged { voter: false, learners, .. } if learners.as_slice() == std::slice::from_ref(&learner)),
        "{done:?}"
    );
    for i in 0..10u32 {
        last = write_retry(&c, leader, format!("q{i}").into_bytes()).await;
    }
    c.wait_applied(last, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let s = c.slots[3].node().status();
    assert_eq!((s.role, s.voters.len()), (Role::Learner, 3));

    // Refusals: the leader itself, and an unknown node.
    let leader_name = c.slots[leader].name.clone();
    match c.slots[follower].node().demote_member(&leader_name).await {
        Err(AdminError::Refused { code, message }) => {
            assert_eq!(code, "is_leader");
            assert!(message.contains("transfer-leader"), "{message}");
        }
        other => panic!("demoting the leader answered {other:?}"),
    }
    assert!(matches!(
        c.slots[leader].node().promote_member("node-9").await,
        Err(AdminError::UnknownNode(_))
    ));
    // Demoting a voter leaves two voters, which still commit.
    c.slots[leader]
        .node()
        .demote_member(&c.slots[follower].name)
        .await
        .expect("demote a follower");
    last = write_retry(&c, leader, b"after".to_vec()).await;
    c.wait_applied(last, Duration::from_secs(10)).await;
    let s = c.slots[leader].node().status();
    assert_eq!((s.voters.len(), s.learners.len()), (2, 2));
    same_history(&c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_that_is_down_is_not_promoted_and_cannot_bootstrap() {
    let mut c = voters_and_a_learner().await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let learner = c.slots[3].name.clone();
    c.slots[3].stop().await;
    for i in 0..100u32 {
        write_retry(&c, leader, format!("d{i}").into_bytes()).await;
    }
    match c.slots[leader].node().promote_member(&learner).await {
        Err(AdminError::Refused { code, message }) => {
            assert_eq!(code, "learner_behind");
            assert!(message.contains(&learner), "{message}");
        }
        other => panic!("promoting a learner that is down answered {other:?}"),
    }
    // A node configured as a learner cannot found a cluster.
    let mut lone = Cluster::new(1);
    lone.slots[0].learner = true;
    match lone.slots[0].start(StartMode::Bootstrap).await {
        Err(NodeError::Config(m)) => assert!(m.contains("cluster.voter"), "{m}"),
        Err(e) => panic!("bootstrapping a learner failed with {e}"),
        Ok(()) => panic!("a learner bootstrapped a cluster"),
    }
}

/// Runs the `wolfscale` binary with `args`; returns (success, stdout + stderr).
async fn cli(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wolfscale"))
            .args(&args)
            .env_remove("WOLFSCALE_CONFIG")
            .env_remove("WOLFSCALE_API_TOKEN")
            .output()
    })
    .await
    .expect("cli task")
    .expect("run wolfscale");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The real binary: `join --learner` makes an ACTIVE learner, `status` shows its role,
/// and `cluster promote` / `cluster demote` change it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_learner_status_promote_and_demote_from_the_command_line() {
    use crate::support::procs::ProcCluster;
    use crate::support::MariaDb;
    let dbs = MariaDb::start_many(2).await.expect("mariadb");
    let mut c = ProcCluster::on(dbs);
    c.nodes[0].spawn(&["start", "--bootstrap"]);
    c.wait_healthy(0, Duration::from_secs(30)).await;
    let seed = c.nodes[0].cluster.clone();
    c.nodes[1].spawn(&["join", &seed, "--learner"]);
    // A caught-up non-voting learner is ACTIVE, not stuck JOINING.
    c.wait_active(2, Duration::from_secs(60)).await;
    let api = c.nodes[0].api.clone();
    let (ok, out) = cli(&["status", "--node", &api]).await;
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("node-2"))
        .unwrap_or_else(|| panic!("no node-2 in {out}"));
    assert!(line.contains("learner") && line.contains("ACTIVE"), "{out}");

    let (ok, out) = cli(&["cluster", "promote", "node-2", "--api", &api]).await;
    assert!(ok, "{out}");
    assert!(out.contains("node-2 (number 2) is a voter"), "{out}");
    assert!(out.contains("voters: node-1, node-2"), "{out}");
    let s = c.nodes[1].status().await.expect("status");
    assert_eq!(s.role, wolfscale::api::Role::Follower);

    let (ok, out) = cli(&["cluster", "demote", "node-2", "--api", &api]).await;
    assert!(ok, "{out}");
    assert!(out.contains("is a non-voting learner"), "{out}");
    assert!(out.contains("learners: node-2"), "{out}");
    // The leader cannot demote itself; the CLI says why and exits non-zero.
    let (ok, out) = cli(&["cluster", "demote", "node-1", "--api", &api]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("transfer-leader"), "{out}");
}
