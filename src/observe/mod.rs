//! What operators watch: Prometheus metrics (`/metrics`), the recent lifecycle events
//! (`/events`), the web dashboard's embedded assets (`/ui`), and the log subscriber.
//! Nothing here decides anything for the node; it only reports.

pub mod events;
pub mod logging;
pub mod metrics;
pub mod ui;
