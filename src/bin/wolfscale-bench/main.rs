//! `wolfscale-bench`: benchmark programs that print numbers (never timed tests).
//!
//! - `wolfscale-bench wal [--dir DIR] [--seconds N]`: WAL append throughput against a
//!   plain write + fdatasync baseline measured in the same run.
//! - `wolfscale-bench wal-probe --dir DIR`: opens a WAL and tries two appends, printing
//!   each outcome; the fsync fault-injection test runs it under `fiu-run`.
//! - `wolfscale-bench snapshot --source H:P --target H:P [--mb N]`: state transfer (snapshot
//!   build, then verify and load on another server) beside `mariadb-dump | mariadb` of the
//!   same generated database.

mod snapshot;
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
    /// Open a WAL and try two appends, printing each outcome (for fault injection).
    #[command(hide = true)]
    WalProbe {
        /// WAL directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Wal { dir, seconds } => wal::run(&dir, seconds),
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
