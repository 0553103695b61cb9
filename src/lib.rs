//! WolfScale keeps several MariaDB servers identical: every write goes through one
//! elected leader, is appended to a write-ahead log, replicated, committed by a
//! majority and applied by every node to its own MariaDB in the same order.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the `wolfscale.toml` schema, defaults and validation |
//! | [`db`] | MariaDB connection options and the pre-flight check |
//! | [`state`] | the SQLite state database: vote, log pointers, node registry |
//! | [`command`] | the replicated operations, their validation and their log encoding |
//! | [`sql`] | all SQL text: quoting, parameterised statements, checks on client SQL, MariaDB error classes |
//! | [`cli`] | the command-line interface that the `wolfscale` binary runs |
//! | [`id`] | Snowflake IDs: layout, encode/decode, the per-node generator and its clock |
//! | [`transport`] | authenticated, multiplexed RPC over TCP between nodes |
//! | [`wal`] | the write-ahead log: segments, CRC, LZ4, group commit, recovery |

pub mod cli;
pub mod command;
pub mod config;
pub mod db;
pub mod id;
pub mod sql;
pub mod state;
pub mod transport;
pub mod wal;
