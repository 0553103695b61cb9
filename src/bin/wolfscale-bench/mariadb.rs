//! Private `mariadbd` servers for the benchmarks: one datadir template made with
//! `mariadb-install-db` per run, copied for every server, each server on its own loopback
//! port with its datadir on the disk under test. Servers are SIGKILLed when their handle
//! drops, and by the kernel if the benchmark itself dies. The machine's own server on
//! 3306 is never used.

use crate::scratch::free_port;
use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wolfscale::testing::mariadbd::{self, Layout};

/// Every benchmark server listens on loopback only.
const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Server settings every benchmark server shares (the bare baseline and the cluster's
/// servers alike), apart from `innodb_flush_log_at_trx_commit`, which is per server.
const FLAGS: &[&str] = &[
    "--skip-log-bin",
    "--skip-name-resolve",
    "--performance-schema=OFF",
    "--innodb-buffer-pool-size=256M",
    "--innodb-log-file-size=256M",
    "--max-connections=1000",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
];

/// The settings as one line, for the benchmark's output.
pub fn describe_flags() -> String {
    FLAGS
        .iter()
        .map(|f| f.trim_start_matches("--"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A datadir made by `mariadb-install-db`, copied for each server.
pub struct Template {
    datadir: PathBuf,
}

impl Template {
    /// Runs `mariadb-install-db` into `<dir>/template`.
    pub async fn make(dir: &Path) -> anyhow::Result<Template> {
        let datadir = dir.join("template");
        let mut cmd =
            mariadbd::install_db_command(&mariadbd::find_tool("mariadb-install-db")?, &datadir);
        cmd.arg("--innodb-log-file-size=256M")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = tokio::process::Command::from(cmd)
            .status()
            .await
            .context("run mariadb-install-db")?;
        if !status.success() {
            bail!("mariadb-install-db failed: {status}");
        }
        Ok(Template { datadir })
    }
}

/// One private server with root (no password) over TCP on 127.0.0.1.
pub struct Server {
    child: Child,
    port: u16,
    flush: u8,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Copies the template to `<dir>/<name>` and starts a server on it with
    /// `innodb_flush_log_at_trx_commit = flush`. Call from the thread that runs the
    /// benchmark's main future: the server is tied to that thread's life.
    pub async fn start(
        template: &Template,
        dir: &Path,
        name: &str,
        flush: u8,
    ) -> anyhow::Result<Server> {
        Server::start_with(template, dir, name, flush, |_| Vec::new()).await
    }

    /// As [`Server::start`], with more server options: `extra(port)` gives them for the
    /// port the server is about to get (a Galera node names its own address, say). A
    /// `--log-bin` among them replaces the default `--skip-log-bin`.
    pub async fn start_with(
        template: &Template,
        dir: &Path,
        name: &str,
        flush: u8,
        extra: impl Fn(u16) -> Vec<String>,
    ) -> anyhow::Result<Server> {
        let home = dir.join(name);
        let data = home.join("data");
        std::fs::create_dir_all(home.join("tmp"))?;
        let status = tokio::process::Command::new("cp")
            .arg("-a")
            .arg(&template.datadir)
            .arg(&data)
            .status()
            .await
            .context("copy the datadir template")?;
        if !status.success() {
            bail!("copying the datadir template failed: {status}");
        }
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let child = spawn(&home, port, flush, &extra(port))?;
            let mut server = Server {
                child,
                port,
                flush,
                dir: home.clone(),
            };
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("mariadbd did not start")))
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let layout = Layout::new(&self.dir);
        let limit = Duration::from_secs(90);
        mariadbd::wait_ready(&mut self.child, &layout, LOCALHOST, self.port, 0, limit).await?;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `innodb_flush_log_at_trx_commit` it was started with.
    pub fn flush(&self) -> u8 {
        self.flush
    }

    /// Root over TCP, no default database.
    pub fn opts(&self) -> mysql_async::OptsBuilder {
        mariadbd::root_opts(LOCALHOST, self.port)
    }

    /// Changes `innodb_flush_log_at_trx_commit` (a dynamic global variable).
    pub async fn set_flush(&mut self, flush: u8) -> anyhow::Result<()> {
        let mut conn = mysql_async::Conn::new(self.opts()).await?;
        conn.query_drop(format!(
            "SET GLOBAL innodb_flush_log_at_trx_commit = {flush}"
        ))
        .await?;
        conn.disconnect().await?;
        self.flush = flush;
        Ok(())
    }
}

fn spawn(home: &Path, port: u16, flush: u8, extra: &[String]) -> anyhow::Result<Child> {
    let log_bin = extra.iter().any(|a| a.starts_with("--log-bin"));
    let flags = [format!("--innodb-flush-log-at-trx-commit={flush}")]
        .into_iter()
        .chain(
            FLAGS
                .iter()
                .filter(|f| !(log_bin && **f == "--skip-log-bin"))
                .map(|f| f.to_string()),
        )
        .chain(extra.iter().cloned());
    let program = mariadbd::find_tool("mariadbd")?;
    let mut cmd = mariadbd::server_command(&program, &Layout::new(home), LOCALHOST, port, flags);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    tie_to_parent(&mut cmd);
    cmd.spawn().context("spawn mariadbd")
}

/// Makes the kernel SIGKILL the child when the thread that spawned it dies, so an
/// interrupted benchmark leaves no server behind.
pub fn tie_to_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
