//! `wolfscale-bench`: benchmark programs that print numbers (never timed tests).
//!
//! - `wolfscale-bench wal [--dir DIR] [--seconds N]`: WAL append throughput against a
//!   plain write + fdatasync baseline measured in the same run.
//! - `wolfscale-bench cluster [--dir DIR] [--seconds N]`: commits/s and commit latency
//!   through a 3-node cluster in this process, beside the same fdatasync baseline.
//! - `wolfscale-bench http [--dir DIR] [--seconds N]`: single-row inserts through the
//!   HTTP API of a 3-process cluster, each node with its own private MariaDB, against
//!   the same inserts straight into a bare private MariaDB.
//! - `wolfscale-bench peers [--dir DIR] [--seconds N] [--clients 1,16,64]`: the same
//!   inserts into WolfScale (HTTP), a 3-node Galera cluster and semi-synchronous
//!   replication (primary + 2 replicas), each keeping three copies on this machine, with
//!   a bare server as the reference line; ratios printed.
//! - `wolfscale-bench sysbench [--dir DIR] [--seconds N] [--threads 1,16,64]`: sysbench
//!   `oltp_insert` through the MySQL front end of a 3-process cluster's leader.
//! - `wolfscale-bench lag [--dir DIR] [--probe-seconds N] [--seconds N] [--clients N]
//!   [--fraction F] [--sample-ms MS]`: follower lag in milliseconds (first seen applied on
//!   each follower minus first seen committed on the leader, per LSN) while a 3-process
//!   cluster takes inserts at its maximum rate and then open-loop at a fraction of it.
//! - `wolfscale-bench catchup [--dir DIR] [--rows N] [--clients N] [--sample-ms MS]`: a
//!   follower SIGKILLed while N inserts land, started again: rows/s and entries/s from its
//!   process start until it has applied the leader's commit LSN, with the time split.
//! - `wolfscale-bench profile --out DIR [--dir DIR] [--seconds N] [--clients N] [--freq HZ]
//!   [--call-graph dwarf|fp]`: `perf record` of the leader's process during inserts from N
//!   clients; scripts/profile-leader.sh turns the recording into top frames and folded stacks.
//! - `wolfscale-bench apply [--dir DIR] [--entries N]`: entries/s one MariaDB applier
//!   re-applies, as a lagging follower does.
//! - `wolfscale-bench tls [--dir DIR] [--seconds N] [--clients N] [--write-clients 1,16,64]
//!   [--part all|transport|writes]`: cluster-transport and HTTP calls/s with TLS off and
//!   on, then end-to-end inserts through a plain and a TLS 3-process cluster, in one run,
//!   with their ratios.
//! - `wolfscale-bench wal-probe --dir DIR`: opens a WAL and tries two appends, printing
//!   each outcome; the fsync fault-injection test runs it under `fiu-run`.
//! - `wolfscale-bench snapshot --source H:P --target H:P [--mb N]`: state transfer (snapshot
//!   build, then verify and load on another server) beside `mariadb-dump | mariadb` of the
//!   same generated database.
//!
//! Every figure depends on the machine and its load: each run prints the load average
//! and the baseline it measured alongside.

mod apply;
mod breakdown;
mod catchup;
mod cluster;
mod http;
mod lag;
mod mariadb;
mod peers;
mod profile;
mod scratch;
mod snapshot;
mod stats;
mod sysbench;
mod tls;
mod tls_floor;
mod tls_writes;
mod wal;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "wolfscale-bench", about = "WolfScale benchmark programs")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// WAL append throughput (appends/s, MB/s) versus write + fdatasync.
    Wal {
        /// Directory for the benchmark files (on the disk to measure).
        #[arg(long, default_value = "wal-bench-data")]
        dir: PathBuf,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// State-transfer throughput (MB/s, rows/s) versus `mariadb-dump | mariadb`.
    Snapshot {
        /// Source MariaDB (host:port); the benchmark creates and drops `wsbench_src`.
        #[arg(long)]
        source: String,
        /// Target MariaDB (host:port); `wsbench_snap` and `wsbench_dump` are created there.
        #[arg(long)]
        target: String,
        /// Account on both servers.
        #[arg(long, default_value = "root")]
        user: String,
        /// Approximate size of the generated database, MiB.
        #[arg(long, default_value_t = 100)]
        mb: u64,
        /// Directory for the snapshot files.
        #[arg(long, default_value = "snapshot-bench-data")]
        dir: PathBuf,
    },
    /// Commits/s and commit latency through a 3-node cluster in this process.
    Cluster {
        /// Directory for the nodes' data (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Concurrent writers, one case each.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 256])]
        writers: Vec<usize>,
        /// Entry payload bytes.
        #[arg(long, default_value_t = 100)]
        size: usize,
    },
    /// Inserts through the HTTP API of a 3-process cluster versus a bare MariaDB.
    Http {
        /// Directory for the nodes' and servers' data (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Concurrent clients, one case each.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
        clients: Vec<usize>,
        /// The `wolfscale` binary (default: next to this one).
        #[arg(long)]
        wolfscale: Option<PathBuf>,
    },
    /// Inserts into WolfScale, Galera and semi-sync replication (3 copies each), side by side.
    Peers {
        /// Directory for every server's data (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Concurrent clients, one case each.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
        clients: Vec<usize>,
        /// The `wolfscale` binary (default: next to this one).
        #[arg(long)]
        wolfscale: Option<PathBuf>,
    },
    /// sysbench oltp_insert through the MySQL front end of a 3-process cluster.
    Sysbench {
        /// Directory for the nodes' and servers' data (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// sysbench threads, one case each.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
        threads: Vec<usize>,
        /// The `wolfscale` binary (default: next to this one).
        #[arg(long)]
        wolfscale: Option<PathBuf>,
        /// sysbench workload: oltp_insert, or a transactional one (oltp_write_only,
        /// oltp_read_write), whose aborted transactions (1213) are counted and retried.
        #[arg(long, default_value = "oltp_insert")]
        workload: String,
    },
    /// Follower lag (ms, per LSN) at the maximum insert rate and open-loop at a fraction of it.
    Lag {
        /// Directory for the nodes' and servers' data (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Seconds of the closed-loop probe that finds the maximum rate.
        #[arg(long, default_value_t = 5.0)]
        probe_seconds: f64,
        /// Seconds of the open-loop phase.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Concurrent clients in both phases.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Open-loop rate as a fraction of the maximum.
        #[arg(long, default_value_t = 0.5)]
        fraction: f64,
        /// Interval between two `GET /status` samples of one node, milliseconds.
        #[arg(long, default_value_t = 2.0)]
        sample_ms: f64,
        /// The `wolfscale` binary (default: next to this one).
        #[arg(long)]
        wolfscale: Option<PathBuf>,
    },
    /// Rows/s a restarted follower catches up after missing N inserts.
    Catchup {
        /// Directory for the nodes' and servers' data (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Single-row inserts written while the follower is down.
        #[arg(long, default_value_t = 50_000)]
        rows: u64,
        /// Concurrent clients writing them.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Interval between two `GET /status` polls of the restarted follower, milliseconds.
        #[arg(long, default_value_t = 5.0)]
        sample_ms: f64,
        /// The `wolfscale` binary (default: next to this one).
        #[arg(long)]
        wolfscale: Option<PathBuf>,
    },
    /// `perf record` of the leader's process while clients insert through its HTTP API.
    Profile {
        /// Directory for the nodes' and servers' data (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Where the recording (`perf.data`) and the leader's pid are kept.
        #[arg(long)]
        out: PathBuf,
        /// Seconds perf records.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Samples per second.
        #[arg(long, default_value_t = 499)]
        freq: u32,
        /// `perf record --call-graph` mode (`dwarf`: release builds have no frame pointers).
        #[arg(long, default_value = "dwarf")]
        call_graph: String,
        /// The `wolfscale` binary (default: next to this one).
        #[arg(long)]
        wolfscale: Option<PathBuf>,
    },
    /// Entries/s one MariaDB applier re-applies (a lagging follower catching up).
    Apply {
        /// Directory for the server's data (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Entries per measurement.
        #[arg(long, default_value_t = 40_000)]
        entries: u64,
    },
    /// Transport calls/s and end-to-end inserts/s, TLS off versus on, in one run.
    Tls {
        /// Directory for the certificates and the clusters' data (on the disk to measure).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Concurrent clients of the transport-only calls.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Concurrent clients of the end-to-end inserts, one case each.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
        write_clients: Vec<usize>,
        /// Which half to run.
        #[arg(long, value_enum, default_value_t = TlsPart::All)]
        part: TlsPart,
        /// The `wolfscale` binary for the end-to-end half (default: next to this one).
        #[arg(long)]
        wolfscale: Option<PathBuf>,
    },
    /// Open a WAL and try two appends, printing each outcome (for fault injection).
    #[command(hide = true)]
    WalProbe {
        /// WAL directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// The halves of `wolfscale-bench tls`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TlsPart {
    /// Both.
    All,
    /// Echo calls over the cluster transport and `GET /livez` (one process).
    Transport,
    /// Inserts through a plain and a TLS 3-process cluster.
    Writes,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Wal { dir, seconds } => wal::run(&dir, seconds),
        Cmd::Cluster {
            dir,
            seconds,
            writers,
            size,
        } => cluster::run(&dir, seconds, &writers, size),
        Cmd::Http {
            dir,
            seconds,
            clients,
            wolfscale,
        } => http::run(&dir, seconds, &clients, wolfscale),
        Cmd::Peers {
            dir,
            seconds,
            clients,
            wolfscale,
        } => peers::run(&dir, seconds, &clients, wolfscale),
        Cmd::Sysbench {
            dir,
            seconds,
            threads,
            wolfscale,
            workload,
        } => sysbench::run(&dir, seconds, &threads, wolfscale, &workload),
        Cmd::Lag {
            dir,
            probe_seconds,
            seconds,
            clients,
            fraction,
            sample_ms,
            wolfscale,
        } => lag::run(lag::Args {
            dir,
            probe_seconds,
            seconds,
            clients,
            fraction,
            sample_ms,
            wolfscale,
        }),
        Cmd::Catchup {
            dir,
            rows,
            clients,
            sample_ms,
            wolfscale,
        } => catchup::run(catchup::Args {
            dir,
            rows,
            clients,
            sample_ms,
            wolfscale,
        }),
        Cmd::Profile {
            dir,
            out,
            seconds,
            clients,
            freq,
            call_graph,
            wolfscale,
        } => profile::run(profile::Args {
            dir,
            out,
            seconds,
            clients,
            freq,
            call_graph,
            wolfscale,
        }),
        Cmd::Apply { dir, entries } => apply::run(&dir, entries),
        Cmd::Tls {
            dir,
            seconds,
            clients,
            write_clients,
            part,
            wolfscale,
        } => {
            let transport = match part {
                TlsPart::Writes => Ok(()),
                _ => tls::run(&dir, seconds, clients),
            };
            transport.and_then(|()| match part {
                TlsPart::Transport => Ok(()),
                _ => tls_writes::run(&dir, seconds, &write_clients, wolfscale),
            })
        }
        Cmd::WalProbe { dir } => wal::probe(&dir),
        Cmd::Snapshot {
            source,
            target,
            user,
            mb,
            dir,
        } => snapshot::run(snapshot::Args {
            source,
            target,
            user,
            mb,
            dir,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
