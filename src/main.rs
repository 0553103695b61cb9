//! The `wolfscale` binary: sets up logging, reads the environment, and hands the command
//! line to the library.

use std::process::ExitCode;
use wolfscale::config::EnvOverrides;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WOLFSCALE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let env = EnvOverrides {
        db_password: std::env::var("WOLFSCALE_DB_PASSWORD").ok(),
        cluster_secret: std::env::var("WOLFSCALE_CLUSTER_SECRET").ok(),
        api_token: std::env::var("WOLFSCALE_API_TOKEN").ok(),
    };
    wolfscale::cli::run(std::env::args_os(), env)
}
