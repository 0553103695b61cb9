//! The process's log subscriber: the filter from `WOLFSCALE_LOG`/`RUST_LOG` or
//! `log.level`, human lines (coloured only on a terminal) or one JSON object per line.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The filter text does not parse.
    #[error("invalid log filter {filter:?}: {reason}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// The parser's reason.
        reason: String,
    },
}

/// Installs the global subscriber writing to stderr. `env_filter` (from the environment,
/// read by `main`) wins over `config.level`. ANSI colours only when stderr is a terminal
/// and `NO_COLOR` is unset (`no_color`). A second call leaves the first subscriber in place.
///
/// # Errors
/// [`LogError::Filter`] when the filter does not parse.
pub fn init(config: &LogConfig, env_filter: Option<&str>, no_color: bool) -> Result<(), LogError> {
    let text = env_filter
        .filter(|f| !f.trim().is_empty())
        .unwrap_or(&config.level);
    let filter = EnvFilter::try_new(text).map_err(|e| LogError::Filter {
        filter: text.to_string(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already installed (tests, a second call).
    let _ = match config.format {
        LogFormat::Text => builder
            .with_ansi(!no_color && std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}
