//! WolfScale's integration tests, built as one binary: `support` is the shared harness
//! (private MariaDB servers, ports, proxies, WAL helpers, logging) and each other module
//! is one area of scenarios.

mod apply;
mod apply_certify;
mod apply_check;
mod apply_crash;
mod apply_group;
mod apply_rows;
mod apply_sql;
mod apply_support;
mod bad_input;
mod chaos;
mod check_e2e;
mod cli;
mod cluster;
mod cluster_admin;
mod cluster_batch;
mod cluster_cli;
mod cluster_learner;
mod cluster_mariadb;
mod e2e;
mod galera_bridge;
mod mariadb_harness;
mod observe;
mod partition;
mod proxy;
mod proxy_kill;
mod proxy_txn;
mod proxy_wire;
mod security;
mod service;
mod snapshot_cluster;
mod snapshot_db;
mod snapshot_e2e;
mod support;
mod tls;
mod transport;
mod wal_crash;
mod wal_disk_full;
mod wal_fiu;
mod wal_model;
mod wal_segments;
