//! Integration tests: one binary, shared harness in `support`, one module per scenario.

mod support;
mod transport;
