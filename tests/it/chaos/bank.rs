//! A transactional client for chaos runs: bank transfers through the MySQL front ends of
//! random nodes while the nemesis runs. Each transfer is an interactive transaction
//! (`BEGIN`, read both balances, refuse to overdraw, write both, `COMMIT`) certified in
//! log order; 1213 is retried, any other failure (a node killed, paused or cut off, a
//! COMMIT whose outcome is unknown) drops the connection and goes on elsewhere. Whatever
//! happened, the checker then requires on every node: the total of all balances is what
//! it started as, and no balance is negative.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Accounts in table `bank`.
pub const ACCOUNTS: i64 = 8;
/// Each account's starting balance.
pub const START: i64 = 100;
/// Transfer clients.
const CLIENTS: u64 = 2;
/// Longest one statement may take before the client gives up on its connection.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The bank's table, created with the workload's schema (rows inserted after it).
pub const SCHEMA: &str =
    "CREATE TABLE bank (id INT NOT NULL PRIMARY KEY, balance INT NOT NULL) ENGINE=InnoDB";

/// What the bank clients saw.
#[derive(Debug, Default)]
pub struct BankReport {
    /// Transfers whose COMMIT succeeded.
    pub committed: u64,
    /// Transfers refused for want of money (rolled back by the client).
    pub refused: u64,
    /// 1213 answers (conflicts, and transactions rolled back for the applier).
    pub conflicts: u64,
    /// Other failures: connection lost, timeouts, 1105 outcome unknown.
    pub failures: u64,
}

/// One transfer in one interactive transaction: `Ok(false)` when `from` lacks the money.
///
/// # Errors
/// The client's error (1213: retry the transfer).
pub async fn transfer(
    conn: &mut Conn,
    from: i64,
    to: i64,
    amount: i64,
) -> Result<bool, mysql_async::Error> {
    conn.query_drop("BEGIN").await?;
    let rows: Vec<(i64, i64)> = conn
        .exec(
            "SELECT id, balance FROM bank WHERE id IN (?, ?) ORDER BY id",
            (from, to),
        )
        .await?;
    let balance = rows
        .iter()
        .find(|(id, _)| *id == from)
        .map_or(0, |(_, b)| *b);
    if balance < amount {
        conn.query_drop("ROLLBACK").await?;
        return Ok(false);
    }
    conn.exec_drop(
        "UPDATE bank SET balance = balance - ? WHERE id = ?",
        (amount, from),
    )
    .await?;
    conn.exec_drop(
        "UPDATE bank SET balance = balance + ? WHERE id = ?",
        (amount, to),
    )
    .await?;
    // The read is part of what is certified: if another transfer changed `from` first,
    // COMMIT fails with 1213 and nothing of this one is applied anywhere.
    conn.query_drop("COMMIT").await?;
    Ok(true)
}

fn opts(addr: &str) -> OptsBuilder {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "3307"));
    OptsBuilder::default()
        .ip_or_hostname(host.to_string())
        .tcp_port(port.parse().unwrap_or(3307))
        .user(Some(super::cluster::MYSQL_USER.0))
        .pass(Some(super::cluster::MYSQL_USER.1))
        .db_name(Some("app"))
        .prefer_socket(false)
}

/// Runs the bank clients against `mysql` (one front-end address per node) until `stop`.
pub async fn run(seed: u64, mysql: Vec<String>, stop: CancellationToken) -> BankReport {
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let mysql = mysql.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ (0xba4c << 8) ^ client);
            let mut report = BankReport::default();
            let mut conn: Option<Conn> = None;
            while !stop.is_cancelled() {
                if conn.is_none() {
                    let node = rng.gen_range(0..mysql.len());
                    conn = tokio::time::timeout(STATEMENT_TIMEOUT, Conn::new(opts(&mysql[node])))
                        .await
                        .ok()
                        .and_then(Result::ok);
                    if conn.is_none() {
                        report.failures += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
                let from = rng.gen_range(0..ACCOUNTS);
                let to = (from + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
                let amount = rng.gen_range(1..=40);
                let Some(c) = conn.as_mut() else { continue };
                let answer =
                    tokio::time::timeout(STATEMENT_TIMEOUT * 3, transfer(c, from, to, amount))
                        .await;
                match answer {
                    Ok(Ok(true)) => report.committed += 1,
                    Ok(Ok(false)) => report.refused += 1,
                    Ok(Err(mysql_async::Error::Server(e))) if e.code == 1213 => {
                        report.conflicts += 1;
                        // A transaction rolled back under the client still needs its end.
                        if let Some(c) = conn.as_mut() {
                            if c.query_drop("ROLLBACK").await.is_err() {
                                conn = None;
                            }
                        }
                    }
                    _ => {
                        report.failures += 1;
                        // Dropped: the node rolls the local transaction back.
                        conn = None;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            if let Some(c) = conn {
                let _ = tokio::time::timeout(Duration::from_secs(2), c.disconnect()).await;
            }
            report
        }));
    }
    let mut total = BankReport::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.committed += r.committed;
            total.refused += r.refused;
            total.conflicts += r.conflicts;
            total.failures += r.failures;
        }
    }
    total
}
