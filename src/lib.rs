//! WolfScale keeps several MariaDB servers identical: every write goes through one
//! elected leader, is appended to a write-ahead log, replicated, committed by a
//! majority and applied by every node to its own MariaDB in the same order.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`service`] | the protocol-neutral operations every front end calls: write (prepare, batch, forward to the leader), read with consistency, status; their errors carry MariaDB's error number, no HTTP |
//! | [`api`] | the HTTP API: routes, JSON errors, auth, the server loop, the typed client; the [`api::Backend`] seam the node implements over the service |
//! | [`config`] | the `wolfscale.toml` schema, defaults and validation |
//! | [`command`] | the replicated operations, their validation and their log encoding |
//! | [`sql`] | all SQL text: quoting, parameterised statements, checks on client SQL, MariaDB error classes |
//! | [`wal`] | the write-ahead log: segments, CRC, LZ4, group commit, recovery |
//! | [`state`] | the SQLite state database: vote, log pointers, node registry |
//! | [`consensus`] | openraft over the WAL: types, log store, state-machine seam, network, election timing and pre-vote |
//! | [`transport`] | authenticated, multiplexed RPC over TCP between nodes |
//! | [`tls`] | the `[tls]` files as rustls configurations (mutual TLS on the cluster port, HTTPS on the API), their reload, `tls init` certificates |
//! | [`node`] | one running node: identity, start/join/bootstrap, member removal, promotion and demotion, leadership transfer, background tasks, systemd readiness |
//! | [`id`] | Snowflake IDs: layout, encode/decode, the per-node generator and its clock |
//! | [`db`] | MariaDB connection options and the pre-flight check |
//! | [`apply`] | the MariaDB applier: committed entries applied exactly once, `_wolfscale` position, client reads |
//! | [`snapshot`] | state transfer: consistent copies of the replicated database (build, store, send, load) and the sync progress |
//! | [`observe`] | what operators watch: Prometheus metrics, the event list, the web dashboard's assets, log setup |
//! | [`cli`] | the command-line interface that the `wolfscale` binary runs |
//! | [`cli_docs`] | the man pages and shell completions generated from the CLI definition |

pub mod api;
pub mod apply;
pub mod cli;
pub mod cli_docs;
pub mod command;
pub mod config;
pub mod consensus;
pub mod db;
pub mod id;
pub mod node;
pub mod observe;
pub mod proxy;
pub mod service;
pub mod snapshot;
pub mod sql;
pub mod state;
#[doc(hidden)]
pub mod testing;
pub mod tls;
pub mod transport;
pub mod wal;
