//! `wolfscale start` / `wolfscale join`: connects the applier to the local MariaDB, starts
//! the node and its HTTP API, and runs until SIGTERM or Ctrl-C, then shuts down cleanly.

use super::{Node, NodeBackend, NodeError, StartMode};
use crate::api::{self, ApiOptions};
use crate::apply::{MariaDbApplier, ReadLimits};
use crate::config::Loaded;
use crate::id::Generator;
use std::time::Duration;

/// Creates the data dir if needed and makes it 0700: it holds the log of every write and
/// the node's vote, readable by this user only.
fn private_data_dir(dir: &std::path::Path) -> Result<(), NodeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let fail = |e: std::io::Error| {
        NodeError::Config(format!("cannot prepare data dir {}: {e}", dir.display()))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(fail)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)
}

/// Runs a node in the foreground until it is told to stop. With `progress`, prints its
/// status every second until it is ACTIVE (for `wolfscale join`).
///
/// # Errors
/// [`NodeError`] when MariaDB, the data dir, the cluster or a listen address is unusable.
pub async fn run(loaded: Loaded, mode: StartMode, progress: bool) -> Result<(), NodeError> {
    for w in crate::config::warnings(&loaded) {
        tracing::warn!(key = %w.key, reason = %w.reason, "unsafe setting");
    }
    let Loaded { config, secrets } = loaded;
    private_data_dir(&config.data_dir())?;
    // Installed first, so that nothing counted during startup is lost.
    if let Err(e) = crate::observe::metrics::handle() {
        tracing::warn!(error = %e, "metrics are not available");
    }
    let applier = MariaDbApplier::connect(&config.database, secrets.db_password.as_ref())
        .await
        .map_err(|e| NodeError::Config(format!("cannot use MariaDB: {e}")))?;
    let apply_status = applier.status();
    let reader = applier.reader().with_limits(ReadLimits {
        max_rows: config.api.max_result_rows,
        max_bytes: config.api.max_result_bytes,
    });
    let checks = applier.checks();
    let galera = config.database.galera.applies(applier.wsrep_on());
    if galera {
        tracing::info!(
            setting = config.database.galera.as_str(),
            "galera rules apply at admission"
        );
    }
    let api_cfg = config.api.clone();
    let proxy_cfg = config.proxy.clone();
    let node = Node::start(config, &secrets, mode, applier).await?;
    let ids = u16::try_from(node.number())
        .ok()
        .and_then(|n| Generator::new(n).ok())
        .ok_or_else(|| {
            NodeError::Config(format!(
                "node number {} is not a valid Snowflake node",
                node.number()
            ))
        })?;
    let service =
        crate::service::Service::install(node.clone(), apply_status, reader, ids, checks, galera);
    let backend = std::sync::Arc::new(NodeBackend::new(service.clone()));

    if api_cfg.enabled {
        let listener = tokio::net::TcpListener::bind(&api_cfg.bind_address)
            .await
            .map_err(|e| {
                NodeError::Config(format!(
                    "cannot listen on api.bind_address {}: {e}",
                    api_cfg.bind_address
                ))
            })?;
        let app = api::router(backend.clone(), ApiOptions::from_config(&api_cfg, &secrets));
        let token = node.shutdown_token();
        let tls = node.tls();
        let max_conn = usize::try_from(api_cfg.max_connections).unwrap_or(usize::MAX);
        node.spawn(async move {
            let served = match tls {
                Some(tls) => api::serve_tls(listener, app, tls, max_conn, token).await,
                None => {
                    let timeout = api::HEADER_READ_TIMEOUT;
                    api::serve_limited(listener, app, timeout, max_conn, token).await
                }
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "http api stopped");
            }
        });
        tracing::info!(addr = %api_cfg.bind_address, https = node.tls().is_some(), "http api listening");
    }
    let mariadb = crate::db::opts(&node.config().database, secrets.db_password.as_ref());
    if let Some(proxy) = crate::proxy::Proxy::bind(&proxy_cfg, mariadb)
        .await
        .map_err(|e| NodeError::Config(e.to_string()))?
    {
        let addr = proxy
            .local_addr()
            .map_or_else(|_| proxy_cfg.bind_address.clone(), |a| a.to_string());
        node.spawn(proxy.serve(service.clone(), node.shutdown_token()));
        tracing::info!(addr = %addr, "mysql front end listening");
    }
    if progress {
        let b = service.clone();
        let token = node.shutdown_token();
        node.spawn(async move {
            let mut shown = crate::observe::terminal::JoinProgress::new();
            loop {
                if shown.update(&b.status()) {
                    return;
                }
                tokio::select! {
                    _ = token.cancelled() => {
                        shown.abandon();
                        return;
                    }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }

    // A `Type=notify` unit is started once the node serves: it knows a leader, its
    // MariaDB is usable and it holds its data (the test `/health` answers 200 for).
    {
        let b = service.clone();
        let token = node.shutdown_token();
        let ready = format!("serving as {} (number {})", node.info().name, node.number());
        node.spawn(async move {
            tell_supervisor(vec![sd_notify::NotifyState::Status(
                "starting: waiting for a leader and the local data",
            )])
            .await;
            while !b.ready() {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            tell_supervisor(vec![
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(&ready),
            ])
            .await;
        });
    }
    let failed = tokio::select! {
        () = wait_for_signal() => None,
        reason = consensus_failed(&node) => Some(reason),
    };
    tell_supervisor(vec![sd_notify::NotifyState::Stopping]).await;
    let Some(reason) = failed else {
        tracing::info!("shutting down");
        return node.shutdown().await;
    };
    // A node whose engine has quit (e.g. its WAL or state db could not be written) would
    // otherwise stay up, answer requests and never catch up again: exit non-zero so the
    // supervisor restarts it, once the cause (a full disk, a failing device) is fixed.
    tracing::error!(error = %reason, "consensus stopped on a fatal error; shutting the node down");
    if let Err(e) = node.shutdown().await {
        tracing::warn!(error = %e, "shutdown after the fatal error was not clean");
    }
    Err(NodeError::Raft(format!(
        "stopped on a fatal error: {reason}; fix the cause and start the node again"
    )))
}

/// Resolves when the consensus engine has stopped by itself (a storage error); pending
/// while it runs.
async fn consensus_failed(node: &Node) -> String {
    let mut metrics = node.raft().metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "the consensus engine quit".into();
        }
    }
}

/// Tells systemd (when it started this process with `NOTIFY_SOCKET`) how the node is;
/// does nothing otherwise. One datagram, sent off the runtime; a failure only costs the
/// supervisor's view, so it is logged and not fatal.
async fn tell_supervisor(states: Vec<sd_notify::NotifyState<'_>>) {
    let states: Vec<String> = states.iter().map(ToString::to_string).collect();
    let sent = tokio::task::spawn_blocking(move || {
        let parsed: Vec<sd_notify::NotifyState<'_>> = states
            .iter()
            .map(|s| sd_notify::NotifyState::Custom(s.as_str()))
            .collect();
        sd_notify::notify(&parsed)
    })
    .await;
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot notify systemd"),
        Err(e) => tracing::warn!(error = %e, "systemd notification task failed"),
    }
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C still works.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
