//! The command-line interface: argument definitions and the code behind each subcommand
//! that does not need a running node. Output goes to stdout; problems to stderr with a
//! non-zero exit code, never a panic or a backtrace.

use crate::config::{self, ConfigError, EnvOverrides, Loaded};
use crate::node::StartMode;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Keeps several MariaDB servers identical through one replicated write-ahead log.
#[derive(Debug, Parser)]
#[command(name = "wolfscale", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "WOLFSCALE_CONFIG",
        default_value = "wolfscale.toml"
    )]
    pub config: PathBuf,
    /// CA certificate the HTTP API's certificate must be signed by: the CLI then speaks
    /// HTTPS (default: the config file's `tls.ca_file`, when it has a `[tls]` section).
    #[arg(long, global = true, env = "WOLFSCALE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new, commented configuration file.
    Init {
        /// Unique name of this node, e.g. node-1.
        #[arg(long)]
        node_id: String,
        /// Where to write it (default: the --config path).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Cluster secret shared by every node (default: a new random one).
        #[arg(long)]
        secret: Option<String>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Check the configuration file and report every problem.
    Validate {
        /// Also connect to MariaDB and report its version and this user's privileges.
        #[arg(long)]
        check_db: bool,
    },
    /// Show this node's effective configuration (secrets masked).
    Info,
    /// Run this node: `--bootstrap` creates a new cluster on the first node; without it
    /// the node restarts from its data dir (or joins through `cluster.peers`).
    Start {
        /// Initialise a new one-node cluster (refused if the data dir already has one).
        #[arg(long)]
        bootstrap: bool,
    },
    /// Join an existing cluster through any member, then keep running as that node.
    Join {
        /// Cluster address (host:port) of any member.
        member: String,
        /// Join as a non-voting learner (a read replica or a remote site), like
        /// `cluster.voter = false`: it applies the log and serves reads, and the voters
        /// never wait for it; `wolfscale cluster promote` makes it a voter later.
        #[arg(long)]
        learner: bool,
    },
    /// Show every node of the cluster: role, status, term, LSNs and lag.
    Status {
        /// HTTP API address of the node to ask (default: this node's api.bind_address).
        #[arg(long)]
        node: Option<String>,
    },
    /// Compare every node's replicated tables at one LSN (while writes continue) and print,
    /// per table, identical or which nodes and key ranges differ. Exits 1 when any table
    /// differs or a node could not be compared.
    Check {
        /// HTTP API address of the node to run it from (default: this node's
        /// api.bind_address).
        #[arg(long)]
        node: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a node's copy of the replicated database with a fresh snapshot of the
    /// leader's, then let it apply the log again: for a DIVERGED node (with
    /// `cluster.auto_resync = false`) or one `wolfscale check` reports as different. The
    /// node is SYNCING meanwhile; the rest of the cluster keeps taking writes.
    Resync {
        /// HTTP API address of the node to resync (default: this node's api.bind_address).
        #[arg(long)]
        node: Option<String>,
    },
    /// Change the cluster's membership or leadership, through any member's HTTP API.
    Cluster {
        /// What to change.
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Inspect the write-ahead log (read-only; safe while the node runs).
    Wal {
        /// What to show.
        #[command(subcommand)]
        command: WalCommand,
    },
    /// Snapshots of the replicated database (state transfer).
    Snapshot {
        /// What to do.
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Write the man pages (DIR/man) and bash, zsh and fish completions
    /// (DIR/completions) of this command.
    Docs {
        /// Directory to write them under (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// TLS certificates.
    Tls {
        /// What to do.
        #[command(subcommand)]
        command: TlsCommand,
    },
}

/// `wolfscale tls ...`
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Generate a self-signed CA and a certificate and key per node, for a test cluster
    /// (use certificates from your own CA in production).
    Init {
        /// Directory to write `ca.pem`, `ca-key.pem`, `NODE.pem` and `NODE-key.pem` into.
        #[arg(long)]
        dir: PathBuf,
        /// Node names, comma-separated: node-1,node-2,node-3.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Host names and IP addresses every certificate is valid for, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost")]
        hosts: Vec<String>,
    },
}

/// `wolfscale snapshot ...`
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot on a running node now, through its HTTP API.
    Create {
        /// HTTP API address of the node (default: this node's api.bind_address).
        #[arg(long)]
        node: Option<String>,
        /// Then purge the WAL segments the snapshot covers that no live member needs.
        #[arg(long)]
        purge: bool,
    },
    /// List a running node's snapshots and any transfer into it.
    List {
        /// HTTP API address of the node (default: this node's api.bind_address).
        #[arg(long)]
        node: Option<String>,
    },
    /// Seed this (stopped, never joined) node's MariaDB from a snapshot file of the same
    /// cluster; then `wolfscale join` continues from the snapshot's position.
    Restore {
        /// A `.snap` file copied from a member's snapshot directory.
        file: PathBuf,
    },
}

/// `wolfscale cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Remove a node (voter or learner, running or down, the leader included); refused
    /// when the remaining voters could not commit.
    Remove {
        /// The node's name (node.id) or number.
        node: String,
        /// HTTP API address of the member to ask (default: this node's api.bind_address).
        #[arg(long)]
        api: Option<String>,
    },
    /// Make a voter the leader; waits until it leads.
    TransferLeader {
        /// The node's name (node.id) or number.
        node: String,
        /// HTTP API address of the member to ask (default: this node's api.bind_address).
        #[arg(long)]
        api: Option<String>,
    },
    /// Make a learner a voter (refused until it is within a few entries of the leader).
    Promote {
        /// The node's name (node.id) or number.
        node: String,
        /// HTTP API address of the member to ask (default: this node's api.bind_address).
        #[arg(long)]
        api: Option<String>,
    },
    /// Make a voter a non-voting learner (refused for the leader, the last voter, or when
    /// the voters left could not commit).
    Demote {
        /// The node's name (node.id) or number.
        node: String,
        /// HTTP API address of the member to ask (default: this node's api.bind_address).
        #[arg(long)]
        api: Option<String>,
    },
}

/// `wolfscale wal ...`
#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Segments, LSN ranges, sizes and compression ratio.
    Inspect,
    /// One line per record from --from to --to (commands decoded, other payloads in hex).
    Dump {
        /// First LSN to show.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Last LSN to show.
        #[arg(long, default_value_t = u64::MAX)]
        to: u64,
    },
}

/// Runs the command line `args` with environment overrides read by the binary.
pub fn run(args: impl IntoIterator<Item = OsString>, env: EnvOverrides) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version to stdout and usage errors to stderr itself.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Not `stdout().lock()`: `start` and `join` run the node on this thread, and a lock
    // held here for the whole run would block the node's own prints (the join progress
    // printer) on a runtime worker forever, and its shutdown with them.
    let mut out = std::io::stdout();
    // A node logs as its config says; every other command with the defaults.
    if !matches!(cli.command, Command::Start { .. } | Command::Join { .. }) {
        if let Err(e) = crate::observe::logging::init(
            &config::LogConfig::default(),
            env.log_filter.as_deref(),
            env.no_color,
        ) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let ca = cli.ca_file.as_deref();
    let result = match cli.command {
        Command::Init {
            node_id,
            output,
            secret,
            force,
        } => init(
            &mut out,
            output.as_deref().unwrap_or(&cli.config),
            &node_id,
            secret,
            force,
        ),
        Command::Validate { check_db } => validate(&mut out, &cli.config, &env, check_db),
        Command::Info => info(&mut out, &cli.config, &env),
        Command::Wal { command } => wal(&mut out, &cli.config, &env, command),
        Command::Start { bootstrap } => {
            let mode = if bootstrap {
                StartMode::Bootstrap
            } else {
                StartMode::Start
            };
            run_node(&cli.config, &env, mode, false)
        }
        Command::Join { member, learner } => run_node_as(
            &cli.config,
            &env,
            StartMode::Join(vec![member]),
            true,
            learner,
        ),
        Command::Status { node } => status(&mut out, &cli.config, &env, ca, node),
        Command::Check { node, json } => check(&mut out, &cli.config, &env, ca, node, json),
        Command::Resync { node } => resync(&mut out, &cli.config, &env, ca, node),
        Command::Cluster { command } => cluster(&mut out, &cli.config, &env, ca, command),
        Command::Snapshot { command } => snapshot(&mut out, &cli.config, &env, ca, command),
        Command::Docs { out: dir } => crate::cli_docs::write(&dir)
            .map_err(|e| format!("cannot write the docs under {}: {e}", dir.display()))
            .and_then(|files| {
                writeln!(out, "wrote {} files under {}", files.len(), dir.display())
                    .map_err(|e| e.to_string())
            }),
        Command::Tls { command } => tls(&mut out, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A failure already worded for the operator.
type CliResult = Result<(), String>;

fn load(path: &Path, env: &EnvOverrides) -> Result<Loaded, String> {
    config::load(path, env).map_err(|e| match e {
        ConfigError::Read { .. } => format!(
            "{e}\n  (create one with `wolfscale init --node-id NAME --output {}`)",
            path.display()
        ),
        _ => e.to_string(),
    })
}

fn init(
    out: &mut impl Write,
    path: &Path,
    node_id: &str,
    secret: Option<String>,
    force: bool,
) -> CliResult {
    config::check::node_name(node_id).map_err(|r| format!("--node-id: {r}"))?;
    let secret = match secret {
        Some(s) if s.chars().count() < config::MIN_CLUSTER_SECRET_LEN => {
            return Err(format!(
                "--secret: must be at least {} characters",
                config::MIN_CLUSTER_SECRET_LEN
            ))
        }
        Some(s) => s,
        None => random_secret(),
    };
    let text = config::template(node_id, &secret);
    write_new_file(path, text.as_bytes(), force)?;
    writeln!(
        out,
        "wrote {} for node {node_id}\nevery node of the cluster needs the same cluster.secret; check the file with `wolfscale validate -c {}`",
        path.display(),
        path.display()
    )
    .map_err(|e| e.to_string())
}

/// 32 random alphanumeric characters: ~190 bits, plenty for an HMAC key.
fn random_secret() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
}

/// Writes a file readable only by its owner (it holds the cluster secret). Without
/// `force`, `create_new` makes "refuse to overwrite" atomic rather than check-then-write.
fn write_new_file(path: &Path, bytes: &[u8], force: bool) -> CliResult {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!(
                "{} already exists; use --force to overwrite it",
                path.display()
            )
        }
        _ => format!("cannot create {}: {e}", path.display()),
    })?;
    // An overwritten file keeps its old mode: tighten it before the secret goes in.
    if f.metadata().is_ok_and(|m| m.is_file()) {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
    }
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn validate(out: &mut impl Write, path: &Path, env: &EnvOverrides, check_db: bool) -> CliResult {
    let loaded = load(path, env)?;
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(|e| e.to_string());
    for warning in config::warnings(&loaded) {
        w(out, format!("warning: {warning}"))?;
    }
    w(out, format!("{}: valid", path.display()))?;
    if !check_db {
        return Ok(());
    }
    let db = &loaded.config.database;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let report = runtime
        .block_on(crate::db::check(db, loaded.secrets.db_password.as_ref()))
        .map_err(|e| format!("database check failed: {e}"))?;
    w(
        out,
        format!(
            "database: MariaDB {} at {}:{} as {}",
            report.version, db.host, db.port, report.account
        ),
    )?;
    w(
        out,
        format!(
            "database `{}`: {}",
            db.database,
            if report.database_exists {
                "exists"
            } else {
                "does not exist yet (it will be created)"
            }
        ),
    )?;
    for g in &report.grants {
        w(out, format!("  {g}"))?;
    }
    if report.missing_privileges.is_empty() {
        w(out, "privileges: ok".into())
    } else {
        Err(format!(
            "user {} lacks {} on `{}`; run as an admin: GRANT {} ON `{}`.* TO {}",
            report.account,
            report.missing_privileges.join(", "),
            db.database,
            report.missing_privileges.join(", "),
            db.database.replace('`', "``"),
            report.account
        ))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn run_node(path: &Path, env: &EnvOverrides, mode: StartMode, progress: bool) -> CliResult {
    run_node_as(path, env, mode, progress, false)
}

/// Runs the node; `learner` (`join --learner`) overrides `cluster.voter` with false.
fn run_node_as(
    path: &Path,
    env: &EnvOverrides,
    mode: StartMode,
    progress: bool,
    learner: bool,
) -> CliResult {
    let mut loaded = load(path, env)?;
    if learner {
        loaded.config.cluster.voter = false;
    }
    // Everything the node creates (WAL, state db, snapshots) is for this user only: 0600
    // files, 0700 directories, whatever umask the shell had.
    // SAFETY: umask only sets the process's file-mode mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    crate::observe::logging::init(&loaded.config.log, env.log_filter.as_deref(), env.no_color)
        .map_err(|e| e.to_string())?;
    let rt = runtime()?;
    let result = rt.block_on(crate::node::run(loaded, mode, progress));
    // The node has flushed and closed its WAL; do not let a straggling task hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result.map_err(|e| e.to_string())
}

/// A client for the HTTP API at `addr`, or at this node's `api.bind_address`. The bearer
/// token is `WOLFSCALE_API_TOKEN`, else the config file's (when it can be read).
fn api_client(
    path: &Path,
    env: &EnvOverrides,
    ca: Option<&Path>,
    addr: Option<String>,
) -> Result<crate::api::client::Client, String> {
    let (addr, token, config_ca) = match addr {
        Some(a) => {
            let loaded = config::load(path, env).ok();
            let from_file = loaded
                .as_ref()
                .and_then(|l| l.secrets.api_token.as_ref().map(|t| t.expose().to_string()));
            let ca = loaded.and_then(|l| l.config.tls.map(|t| t.ca_file));
            (a, env.api_token.clone().or(from_file), ca)
        }
        None => {
            let loaded = load(path, env)?;
            let bind = loaded
                .config
                .api
                .bind_address
                .replace("0.0.0.0", "127.0.0.1");
            (
                bind,
                loaded.secrets.api_token.map(|t| t.expose().to_string()),
                loaded.config.tls.map(|t| t.ca_file),
            )
        }
    };
    let mut client = crate::api::client::Client::new(&addr).map_err(|e| e.to_string())?;
    if let Some(ca) = ca.map(Path::to_path_buf).or(config_ca) {
        client = client
            .with_ca_file(&ca)
            .map_err(|e| format!("--ca-file: {e}"))?;
    }
    if let Some(t) = token {
        client = client.with_token(t);
    }
    Ok(client)
}

fn status(
    out: &mut impl Write,
    path: &Path,
    env: &EnvOverrides,
    ca: Option<&Path>,
    node: Option<String>,
) -> CliResult {
    let client = api_client(path, env, ca, node)?;
    let addr = client.address().to_string();
    let cluster = runtime()?
        .block_on(client.cluster())
        .map_err(|e| format!("cannot get the cluster status from {addr}: {e}"))?;
    for line in status_lines(cluster) {
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `wolfscale status`'s table: the leader a majority follows, one row per member (a
/// node that names another leader, or none, is marked `*` and explained below).
fn status_lines(cluster: crate::api::ClusterStatus) -> Vec<String> {
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    };
    let mut lines = vec![
        format!(
            "leader: {}   term: {}",
            cluster.leader_id.as_deref().unwrap_or("(none)"),
            cluster.term
        ),
        format!(
            "{:<16} {:>6} {:<22} {:<9} {:<9} {:>6} {:>10} {:>10} {:>8} {:>10}",
            "NAME",
            "NUMBER",
            "ADDRESS",
            "ROLE",
            "STATUS",
            "TERM",
            "LAST_LSN",
            "APPLIED",
            "LAG",
            "QUORUM_MS"
        ),
    ];
    let mut dissent = Vec::new();
    for n in cluster.nodes {
        if let Some(d) = &n.divergence {
            dissent.push(format!(
                "{} DIVERGED at lsn {} (its outcome digest {:x}, the leader's {:x}): it applies \
                 nothing until resynced (`wolfscale resync --node {}`, automatic unless \
                 cluster.auto_resync = false)",
                n.node_id, d.lsn, d.own, d.agreed, n.api_address
            ));
        }
        if let Some(e) = &n.resync_error {
            dissent.push(format!("{} resync failed: {e}", n.node_id));
        }
        if let Some(e) = &n.apply_error {
            dissent.push(format!("{} retrying: {e}", n.node_id));
        }
        if n.disagrees_on_leader {
            dissent.push(format!(
                "* {} follows {} (it is cut off, or missed the election)",
                n.node_id,
                n.leader_id.as_deref().unwrap_or("no leader")
            ));
        }
        let marker = if n.disagrees_on_leader { "*" } else { "" };
        lines.push(format!(
            "{:<16} {:>6} {:<22} {:<9} {:<9} {:>6} {:>10} {:>10} {:>8} {:>10}",
            format!("{}{marker}", n.node_id),
            n.node_number,
            n.address,
            name(serde_json::to_value(n.role)),
            name(serde_json::to_value(n.status)),
            n.term,
            n.last_log_lsn,
            n.applied_lsn,
            n.lag,
            n.last_quorum_contact_ms
                .map_or_else(|| "-".to_string(), |ms| ms.to_string())
        ));
    }
    lines.extend(dissent);
    lines
}

/// How long a cluster operation may take end to end (a transfer drains writes, lets the
/// target catch up and waits for the election; a follower passes it to the leader).
const CLUSTER_OP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn cluster(
    out: &mut impl Write,
    path: &Path,
    env: &EnvOverrides,
    ca: Option<&Path>,
    command: ClusterCommand,
) -> CliResult {
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(|e| e.to_string());
    let list = |names: &[String]| {
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    };
    let promote = matches!(command, ClusterCommand::Promote { .. });
    match command {
        ClusterCommand::Remove { node, api } => {
            let client = api_client(path, env, ca, api)?.with_timeout(CLUSTER_OP_TIMEOUT);
            let addr = client.address().to_string();
            let r = runtime()?
                .block_on(client.remove_node(&node))
                .map_err(|e| format!("cannot remove {node} through {addr}: {e}"))?;
            w(
                out,
                format!(
                    "removed {} (number {}) from the cluster at lsn {}",
                    r.removed, r.node_number, r.lsn
                ),
            )?;
            w(out, format!("voters: {}", list(&r.voters)))?;
            w(out, format!("learners: {}", list(&r.learners)))
        }
        ClusterCommand::TransferLeader { node, api } => {
            let client = api_client(path, env, ca, api)?.with_timeout(CLUSTER_OP_TIMEOUT);
            let addr = client.address().to_string();
            let r = runtime()?
                .block_on(client.transfer_leader(&node))
                .map_err(|e| format!("cannot transfer leadership to {node} through {addr}: {e}"))?;
            if r.previous_leader == r.leader_id {
                w(
                    out,
                    format!(
                        "{} (number {}) already leads, term {}",
                        r.leader_id, r.node_number, r.term
                    ),
                )
            } else {
                w(
                    out,
                    format!(
                        "{} (number {}) is now the leader, term {} (was {}, term {})",
                        r.leader_id, r.node_number, r.term, r.previous_leader, r.previous_term
                    ),
                )
            }
        }
        ClusterCommand::Promote { node, api } | ClusterCommand::Demote { node, api } => {
            let client = api_client(path, env, ca, api)?.with_timeout(CLUSTER_OP_TIMEOUT);
            let addr = client.address().to_string();
            let rt = runtime()?;
            let r = if promote {
                rt.block_on(client.promote(&node))
            } else {
                rt.block_on(client.demote(&node))
            }
            .map_err(|e| {
                let verb = if promote { "promote" } else { "demote" };
                format!("cannot {verb} {node} through {addr}: {e}")
            })?;
            let role = if r.voter {
                "a voter"
            } else {
                "a non-voting learner"
            };
            w(
                out,
                format!(
                    "{} (number {}) is {role} as of lsn {}",
                    r.node_id, r.node_number, r.lsn
                ),
            )?;
            w(out, format!("voters: {}", list(&r.voters)))?;
            w(out, format!("learners: {}", list(&r.learners)))
        }
    }
}

fn wal(out: &mut impl Write, path: &Path, env: &EnvOverrides, command: WalCommand) -> CliResult {
    let loaded = load(path, env)?;
    let dir = loaded.config.wal_dir();
    if !dir.is_dir() {
        return Err(format!(
            "no write-ahead log at {} (has this node started yet?)",
            dir.display()
        ));
    }
    let text = match command {
        WalCommand::Inspect => crate::wal::inspect::inspect(&dir).map(|r| {
            let segs: Vec<(String, u64, u64)> = r
                .segments
                .iter()
                .map(|s| (s.file.clone(), s.first_lsn, s.records))
                .collect();
            format!(
                "{r}\n{}",
                crate::node::retention::describe(&loaded.config, &segs)
            )
        }),
        WalCommand::Dump { from, to } => {
            crate::wal::inspect::dump(&dir, from, to, Some(&crate::consensus::codec::describe))
                .map(|r| r.to_string())
        }
    }
    .map_err(|e| e.to_string())?;
    write!(out, "{text}").map_err(|e| e.to_string())
}

/// How long `wolfscale check` waits for the report (a throttled check of a large database
/// takes a while).
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

fn check(
    out: &mut impl Write,
    path: &Path,
    env: &EnvOverrides,
    ca: Option<&Path>,
    node: Option<String>,
    json: bool,
) -> CliResult {
    let client = api_client(path, env, ca, node)?.with_timeout(CHECK_TIMEOUT);
    let report = runtime()?
        .block_on(client.check())
        .map_err(|e| format!("check failed on {}: {e}", client.address()))?;
    let text = if json {
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    } else {
        crate::api::check_text(&report)
    };
    writeln!(out, "{text}").map_err(|e| e.to_string())?;
    if report.identical() {
        return Ok(());
    }
    let differing = report.differing().count();
    Err(format!(
        "replicas differ: {differing} of {} table(s) differ, {} node(s) not compared",
        report.tables.len(),
        report.unchecked.len()
    ))
}

/// `wolfscale resync`: asks the node to resync itself and, while it does, draws its
/// snapshot transfer from its `/status`.
fn resync(
    out: &mut impl Write,
    path: &Path,
    env: &EnvOverrides,
    ca: Option<&Path>,
    node: Option<String>,
) -> CliResult {
    let client =
        api_client(path, env, ca, node.clone())?.with_timeout(crate::consensus::INSTALL_TIMEOUT);
    let poller = api_client(path, env, ca, node)?;
    let mut bar = crate::observe::terminal::RestoreProgress::new();
    let done = runtime()?.block_on(async {
        let call = client.resync();
        tokio::pin!(call);
        loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    if let Ok(Some(p)) = poller.status().await.map(|s| s.sync) {
                        bar.update(&p);
                    }
                }
            }
        }
    });
    bar.finish();
    let d = done.map_err(|e| format!("resync failed on {}: {e}", client.address()))?;
    let cleared = d.divergence.map_or_else(String::new, |v| {
        format!("; cleared the divergence at lsn {}", v.lsn)
    });
    writeln!(
        out,
        "{} resynced from {}: snapshot {} at lsn {}, {} rows in {} tables, {} bytes, {:.1}s{cleared}\n\
         it applies the log from lsn {} on",
        d.node_id,
        d.leader_id,
        d.snapshot_id,
        d.lsn,
        d.rows,
        d.tables,
        d.bytes,
        d.secs,
        d.lsn + 1
    )
    .map_err(|e| e.to_string())
}

fn snapshot(
    out: &mut impl Write,
    path: &Path,
    env: &EnvOverrides,
    ca: Option<&Path>,
    command: SnapshotCommand,
) -> CliResult {
    let w = |out: &mut dyn Write, s: String| writeln!(out, "{s}").map_err(|e| e.to_string());
    match command {
        SnapshotCommand::Create { node, purge } => {
            // A large database takes a while to copy.
            let client =
                api_client(path, env, ca, node)?.with_timeout(crate::consensus::INSTALL_TIMEOUT);
            let spin = crate::observe::terminal::spinner(format!(
                "taking a snapshot on {}{}",
                client.address(),
                if purge { " and purging the WAL" } else { "" }
            ));
            let done = runtime()?.block_on(client.snapshot_create(purge));
            spin.finish_and_clear();
            let done = done.map_err(|e| format!("snapshot failed on {}: {e}", client.address()))?;
            let s = &done.snapshot;
            w(
                out,
                format!(
                    "snapshot {} at lsn {}: {} rows in {} tables, {} bytes\n  file: {}",
                    s.id, s.lsn, s.rows, s.tables, s.bytes, s.path
                ),
            )?;
            if purge {
                w(
                    out,
                    format!(
                        "wal: purged up to {}; first entry kept: {}",
                        done.purged_up_to
                            .map_or_else(|| "nothing".to_string(), |p| p.to_string()),
                        done.wal_first_lsn
                            .map_or_else(|| "-".to_string(), |p| p.to_string())
                    ),
                )?;
            }
            Ok(())
        }
        SnapshotCommand::List { node } => {
            let client = api_client(path, env, ca, node)?;
            let list = runtime()?
                .block_on(client.snapshot_list())
                .map_err(|e| format!("cannot list snapshots on {}: {e}", client.address()))?;
            w(
                out,
                format!(
                    "{:<40} {:>10} {:>12} {:>10} {:>7} {:<9} FILE",
                    "ID", "LSN", "BYTES", "ROWS", "TABLES", "SOURCE"
                ),
            )?;
            for s in &list.snapshots {
                w(
                    out,
                    format!(
                        "{:<40} {:>10} {:>12} {:>10} {:>7} {:<9} {}",
                        s.id, s.lsn, s.bytes, s.rows, s.tables, s.source, s.path
                    ),
                )?;
            }
            if let Some(p) = &list.sync {
                w(out, format!("syncing: {}", p.line()))?;
            }
            w(out, format!("installed since start: {}", list.installs))
        }
        SnapshotCommand::Restore { file } => {
            let loaded = load(path, env)?;
            let mut bar = crate::observe::terminal::RestoreProgress::new();
            let m = runtime()?
                .block_on(crate::node::seed(loaded, &file, |p| bar.update(p)))
                .map_err(|e| e.to_string());
            bar.finish();
            let m = m?;
            w(
                out,
                format!(
                    "loaded snapshot {} (lsn {}, {} rows in {} tables) into the local MariaDB;\n\
                     now run `wolfscale join HOST:PORT`: the node continues from lsn {}",
                    m.id,
                    m.index(),
                    m.rows,
                    m.tables.len(),
                    m.index()
                ),
            )
        }
    }
}

fn tls(out: &mut impl Write, command: TlsCommand) -> CliResult {
    let TlsCommand::Init { dir, nodes, hosts } = command;
    let g = crate::tls::generate(&dir, &nodes, &hosts).map_err(|e| e.to_string())?;
    let w = |e: std::io::Error| e.to_string();
    writeln!(out, "CA certificate: {}", g.ca_file.display()).map_err(w)?;
    for (name, cert, key) in &g.nodes {
        writeln!(
            out,
            "{name}: cert_file = {}  key_file = {}",
            cert.display(),
            key.display()
        )
        .map_err(w)?;
    }
    writeln!(
        out,
        "Add to each node's config:\n[tls]\ncert_file = \"<its cert>\"\nkey_file = \"<its key>\"\nca_file = \"{}\"",
        g.ca_file.display()
    )
    .map_err(w)
}

fn info(out: &mut impl Write, path: &Path, env: &EnvOverrides) -> CliResult {
    let loaded = load(path, env)?;
    let c = &loaded.config;
    let s = &loaded.secrets;
    let mut shown = c.masked();
    shown.node.data_dir = Some(c.data_dir());
    let text =
        toml::to_string_pretty(&shown).map_err(|e| format!("cannot print the config: {e}"))?;
    writeln!(
        out,
        "# config file: {}\n# wal: {}\n# state: {}\n# database password: {}\n# cluster secret: {}\n# api token: {}\n\n{text}",
        path.display(),
        c.wal_dir().display(),
        c.state_dir().display(),
        s.db_password_source,
        s.cluster_secret_source,
        s.api_token_source,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_no_quorum_the_contact_age_and_marks_a_dissenter() {
        use crate::api::{ClusterStatus, NodeState, NodeStatus, Role};
        let node = |name: &str, role, status, leader: Option<&str>, ms, dissent| NodeStatus {
            node_id: name.into(),
            node_number: 1,
            role,
            status,
            term: 2,
            leader_id: leader.map(String::from),
            last_log_lsn: 9,
            commit_lsn: 9,
            applied_lsn: 9,
            address: "127.0.0.2:7654".into(),
            api_address: String::new(),
            lag: 0,
            divergence: None,
            apply_error: None,
            sync: None,
            resyncs: 0,
            resync_error: None,
            last_quorum_contact_ms: ms,
            disagrees_on_leader: dissent,
            last_check: None,
        };
        let lines = status_lines(ClusterStatus {
            leader_id: Some("node-2".into()),
            term: 2,
            nodes: vec![
                node(
                    "node-1",
                    Role::Follower,
                    NodeState::NoQuorum,
                    None,
                    Some(2300),
                    true,
                ),
                node(
                    "node-2",
                    Role::Leader,
                    NodeState::Active,
                    Some("node-2"),
                    Some(40),
                    false,
                ),
                node(
                    "node-3",
                    Role::Follower,
                    NodeState::Offline,
                    None,
                    None,
                    false,
                ),
            ],
        });
        assert_eq!(lines[0], "leader: node-2   term: 2");
        assert!(lines[1].ends_with("QUORUM_MS"), "{}", lines[1]);
        assert!(lines[2].starts_with("node-1* "), "{}", lines[2]);
        assert!(
            lines[2].contains(" NO_QUORUM ") && lines[2].ends_with(" 2300"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].contains(" leader ") && lines[3].ends_with(" 40"),
            "{}",
            lines[3]
        );
        assert!(
            lines[4].contains(" OFFLINE ") && lines[4].ends_with(" -"),
            "{}",
            lines[4]
        );
        let mut diverged = node(
            "node-3",
            Role::Follower,
            NodeState::Diverged,
            Some("node-2"),
            Some(40),
            false,
        );
        diverged.divergence = Some(crate::apply::Divergence {
            lsn: 77,
            own: 0xab,
            agreed: 0xcd,
        });
        diverged.api_address = "127.0.0.3:8080".into();
        diverged.resync_error = Some("no leader is known; retry shortly".into());
        let shown = status_lines(ClusterStatus {
            leader_id: Some("node-2".into()),
            term: 2,
            nodes: vec![diverged],
        });
        assert!(shown[2].contains(" DIVERGED "), "{}", shown[2]);
        assert!(
            shown[3]
                .starts_with("node-3 DIVERGED at lsn 77 (its outcome digest ab, the leader's cd)")
                && shown[3].contains("wolfscale resync --node 127.0.0.3:8080"),
            "{}",
            shown[3]
        );
        assert_eq!(
            shown[4],
            "node-3 resync failed: no leader is known; retry shortly"
        );
        assert_eq!(
            lines[5],
            "* node-1 follows no leader (it is cut off, or missed the election)"
        );
        assert_eq!(lines.len(), 6);
    }

    fn run_in(dir: &Path, args: &[&str]) -> (ExitCode, String) {
        let mut argv = vec![OsString::from("wolfscale")];
        argv.extend(args.iter().map(OsString::from));
        let cli = Cli::try_parse_from(argv).expect("args parse");
        let cfg = dir.join(&cli.config);
        let mut out = Vec::new();
        let r = match cli.command {
            Command::Init {
                node_id,
                output,
                secret,
                force,
            } => init(
                &mut out,
                &output.map(|o| dir.join(o)).unwrap_or(cfg),
                &node_id,
                secret,
                force,
            ),
            Command::Validate { check_db } => {
                validate(&mut out, &cfg, &EnvOverrides::default(), check_db)
            }
            Command::Info => info(&mut out, &cfg, &EnvOverrides::default()),
            Command::Wal { command } => wal(&mut out, &cfg, &EnvOverrides::default(), command),
            other => panic!("not exercised in unit tests: {other:?}"),
        };
        let text = String::from_utf8(out).expect("utf8");
        match r {
            Ok(()) => (ExitCode::SUCCESS, text),
            Err(e) => (ExitCode::FAILURE, e),
        }
    }

    #[test]
    fn init_then_validate_then_info() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (code, _) = run_in(
            dir.path(),
            &["init", "--node-id", "node-1", "--output", "w.toml"],
        );
        assert_eq!(code, ExitCode::SUCCESS);
        let (code, text) = run_in(dir.path(), &["validate", "-c", "w.toml"]);
        assert_eq!(code, ExitCode::SUCCESS, "{text}");
        assert!(text.ends_with("valid\n"), "{text}");
        let written = std::fs::read_to_string(dir.path().join("w.toml")).expect("read");
        let secret = written
            .lines()
            .find_map(|l| l.strip_prefix("secret = "))
            .expect("secret line")
            .trim_matches('"');
        assert_eq!(secret.len(), 32);
        let (code, text) = run_in(dir.path(), &["info", "-c", "w.toml"]);
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(!text.contains(secret), "info leaks the secret: {text}");
        assert!(text.contains("/var/lib/wolfscale/node-1/wal"), "{text}");
    }

    #[test]
    fn init_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = [
            "init",
            "--node-id",
            "n1",
            "--output",
            "w.toml",
            "--secret",
            "0123456789abcdef",
        ];
        assert_eq!(run_in(dir.path(), &args).0, ExitCode::SUCCESS);
        let (code, msg) = run_in(dir.path(), &args);
        assert_eq!(code, ExitCode::FAILURE);
        assert!(msg.contains("--force"), "{msg}");
        let mut forced = args.to_vec();
        forced.push("--force");
        // An existing world-readable file is made private when overwritten.
        use std::os::unix::fs::PermissionsExt;
        let written = dir.path().join("w.toml");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&written), 0o600);
        std::fs::set_permissions(&written, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(run_in(dir.path(), &forced).0, ExitCode::SUCCESS);
        assert_eq!(mode(&written), 0o600);
        let (code, msg) = run_in(dir.path(), &["init", "--node-id", "bad id", "-o", "x.toml"]);
        assert_eq!(code, ExitCode::FAILURE);
        assert!(msg.contains("--node-id"), "{msg}");
        let (code, msg) = run_in(
            dir.path(),
            &[
                "init",
                "--node-id",
                "n",
                "-o",
                "y.toml",
                "--secret",
                "short",
            ],
        );
        assert_eq!(code, ExitCode::FAILURE);
        assert!(msg.contains("16"), "{msg}");
    }

    #[test]
    fn missing_file_explains_how_to_create_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (code, msg) = run_in(dir.path(), &["validate", "-c", "nope.toml"]);
        assert_eq!(code, ExitCode::FAILURE);
        assert!(msg.contains("wolfscale init"), "{msg}");
    }

    const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));

    /// README's configuration reference is exactly what `init` writes.
    #[test]
    fn readme_config_reference_matches_init() {
        let expected = config::template("node-1", "CHANGE-ME-to-one-shared-secret");
        assert!(
            README.contains(&format!("```toml\n{expected}```")),
            "README's configuration reference drifted from `wolfscale init`; regenerate it with\n\
             wolfscale init --node-id node-1 --secret CHANGE-ME-to-one-shared-secret -o /dev/stdout"
        );
    }

    /// Every subcommand and flag appears in README's CLI reference.
    #[test]
    fn readme_cli_reference_names_every_command_and_flag() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let nested: Vec<(String, &clap::Command)> = cmd
            .get_subcommands()
            .flat_map(|s| {
                let top = (s.get_name().to_string(), s);
                let kids = s
                    .get_subcommands()
                    .map(move |k| (format!("{} {}", s.get_name(), k.get_name()), k));
                std::iter::once(top).chain(kids)
            })
            .collect();
        for (name, sub) in nested {
            assert!(
                README.contains(&format!("`wolfscale {name}")),
                "README lacks `wolfscale {name}`"
            );
            for arg in sub.get_arguments() {
                if let Some(long) = arg.get_long() {
                    if long != "config" && long != "help" {
                        assert!(
                            README.contains(&format!("--{long}")),
                            "README lacks {name} --{long}"
                        );
                    }
                }
            }
        }
    }
}
