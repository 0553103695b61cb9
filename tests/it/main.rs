//! Integration tests, built as one binary: `support` holds the shared harness, each other
//! module one area of scenarios.

mod support;
mod wal_crash;
mod wal_disk_full;
mod wal_fiu;
mod wal_model;
mod wal_segments;
