//! The `wolfscale` binary: reads the environment and hands the command line to the
//! library, which sets up logging once it has read the configuration.

use std::process::ExitCode;
use wolfscale::config::EnvOverrides;

fn main() -> ExitCode {
    let env = EnvOverrides {
        db_password: std::env::var("WOLFSCALE_DB_PASSWORD").ok(),
        cluster_secret: std::env::var("WOLFSCALE_CLUSTER_SECRET").ok(),
        api_token: std::env::var("WOLFSCALE_API_TOKEN").ok(),
        log_filter: std::env::var("WOLFSCALE_LOG")
            .or_else(|_| std::env::var("RUST_LOG"))
            .ok(),
        no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    };
    wolfscale::cli::run(std::env::args_os(), env)
}
