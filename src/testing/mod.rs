//! Harness code shared by the integration tests and `wolfscale-bench`, which cannot share
//! a module otherwise: not part of WolfScale's API (hidden from the docs), and nothing
//! in the node calls it.

pub mod mariadbd;
