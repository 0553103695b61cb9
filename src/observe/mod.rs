//! What operators watch: Prometheus metrics (`/metrics`), the recent lifecycle events
//! (`/events`), the web dashboard's embedded assets (`/ui`), the log subscriber, and the
//! progress bars of long CLI operations.
//! Nothing here decides anything for the node; it only reports.

pub mod events;
pub mod logging;
pub mod metrics;
pub mod stages;
pub mod terminal;
pub mod ui;
