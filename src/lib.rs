//! WolfScale keeps several MariaDB servers identical: every write goes through one
//! elected leader, is appended to a write-ahead log, replicated, committed by a
//! majority and applied by every node to its own MariaDB in the same order.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the `wolfscale.toml` schema, defaults and validation |
//! | [`cli`] | the command-line interface that the `wolfscale` binary runs |
//! | [`wal`] | the write-ahead log: segments, CRC, LZ4, group commit, recovery |

pub mod cli;
pub mod config;
pub mod wal;
