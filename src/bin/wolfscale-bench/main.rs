//! `wolfscale-bench`: benchmark programs that print numbers (never timed tests).
//!
//! - `wolfscale-bench wal [--dir DIR] [--seconds N] [--quick]`: WAL append throughput
//!   against a plain write + fdatasync baseline measured in the same run.
//! - `wolfscale-bench wal-probe --dir DIR`: opens a WAL and tries two appends, printing
//!   each outcome; the fsync fault-injection test runs it under `fiu-run`.

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
        /// Only the fsync-on, fallocate cases (for repeated before/after comparisons).
        #[arg(long)]
        quick: bool,
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
        Cmd::Wal {
            dir,
            seconds,
            quick,
        } => wal::run(&dir, seconds, quick),
        Cmd::WalProbe { dir } => wal::probe(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
