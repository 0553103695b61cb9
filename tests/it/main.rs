//! WolfScale's integration tests, built as one binary: `support` is the shared harness
//! (private MariaDB servers, ports, proxies, logging) and each other module is one scenario.

mod apply;
mod apply_crash;
mod apply_sql;
mod apply_support;
mod cli;
mod mariadb_harness;
mod support;
mod transport;
