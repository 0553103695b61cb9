//! Datadirs of private servers: the template made once with `mariadb-install-db` (kept in
//! cargo's per-target temp dir, keyed by server version, so later runs and concurrent test
//! binaries reuse it), the per-server copies in temp dirs, and the sweeping of copies that
//! dead test binaries left behind. It does not run servers.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::pid_exists;
use super::{Error, Result};
use wolfscale::testing::mariadbd;

/// Bump when the install flags below change, so stale templates are not reused.
const REVISION: u32 = 1;

/// Per-server dirs are `<base>/wolfscale-mariadb-<test process id>-<random>`.
const DIR_PREFIX: &str = "wolfscale-mariadb-";

/// Where per-server dirs go: the tmpfs `/dev/shm` when there is one, since copying the
/// template there is ~5x faster than to disk (kill -9 keeps data either way: it lives in
/// the page cache); otherwise the system temp dir.
fn base_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// InnoDB sizes given both to `mariadb-install-db` and to every server: a small redo log
/// keeps the copied datadir at ~25 MB instead of ~110 MB.
pub const INNODB_SIZES: [&str; 2] = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"];

/// A ready datadir template and the server binary it was made with.
#[derive(Debug)]
pub struct Template {
    /// Initialised datadir; never written to, only copied.
    pub datadir: PathBuf,
    /// The `mariadbd` binary to run copies with.
    pub mariadbd: PathBuf,
}

static TEMPLATE: OnceLock<Template> = OnceLock::new();
static BUILDING: Mutex<()> = Mutex::new(());

/// Returns the template, making it on first use. Blocks: call from blocking context.
///
/// # Errors
/// A MariaDB program is missing, or `mariadb-install-db` or file operations fail. A
/// failure is not cached: the next caller tries again and reports its own error.
pub fn get() -> Result<&'static Template> {
    if let Some(template) = TEMPLATE.get() {
        return Ok(template);
    }
    let _building = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(template) = TEMPLATE.get() {
        return Ok(template);
    }
    let started = Instant::now();
    let mariadbd = find_tool("mariadbd")?;
    let install_db = find_tool("mariadb-install-db")?;
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mariadb-templates");
    fs::create_dir_all(&root).map_err(|e| Error::io(format!("create {}", root.display()), e))?;
    let key = format!("r{REVISION}-{}", server_version(&mariadbd)?);
    let datadir = root.join(&key);
    let ready_marker = root.join(format!("{key}.ready"));

    // Serialises test binaries that share the target dir; released when `lock` closes.
    let lock = lock_file(&root.join("lock"))?;
    if !(ready_marker.exists() && datadir.is_dir()) {
        let _ = fs::remove_file(&ready_marker);
        build(&install_db, &root, &key, &datadir)?;
        File::create(&ready_marker)
            .map_err(|e| Error::io(format!("create {}", ready_marker.display()), e))?;
    }
    drop(lock);

    tracing::info!(datadir = %datadir.display(), elapsed_ms = started.elapsed().as_millis(), "mariadb template ready");
    Ok(TEMPLATE.get_or_init(|| Template { datadir, mariadbd }))
}

/// Runs `mariadb-install-db` into a scratch dir, then renames it into place so a
/// half-made template is never used.
fn build(install_db: &Path, root: &Path, key: &str, datadir: &Path) -> Result<()> {
    let scratch = root.join(format!("{key}.building"));
    for stale in [&scratch, datadir] {
        if stale.exists() {
            fs::remove_dir_all(stale)
                .map_err(|e| Error::io(format!("remove {}", stale.display()), e))?;
        }
    }
    let log_path = root.join(format!("{key}.install.log"));
    let log = File::create(&log_path)
        .map_err(|e| Error::io(format!("create {}", log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| Error::io("duplicate log handle", e))?;
    // Root gets a passwordless account usable over TCP (root@127.0.0.1), not only
    // through the unix socket: tests and later WolfScale nodes connect over TCP.
    let mut cmd = mariadbd::install_db_command(install_db, &scratch);
    cmd.args(INNODB_SIZES)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| Error::io(format!("run {}", install_db.display()), e))?;
    if !status.success() {
        return Err(Error::InstallDb {
            status: status.to_string(),
            log_tail: tail_of_file(&log_path, 0, 30),
        });
    }
    fs::rename(&scratch, datadir)
        .map_err(|e| Error::io(format!("rename {}", scratch.display()), e))?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis(),
        "mariadb-install-db done"
    );
    Ok(())
}

/// Finds a MariaDB program in PATH or the sbin dirs (which a non-root PATH often lacks).
///
/// # Errors
/// [`Error::MissingTool`], whose message says how to install it.
pub fn find_tool(name: &str) -> Result<PathBuf> {
    Ok(mariadbd::find_tool(name)?)
}

/// The version word of `mariadbd --version`, made safe for a directory name.
fn server_version(mariadbd: &Path) -> Result<String> {
    let out = Command::new(mariadbd)
        .arg("--version")
        .output()
        .map_err(|e| Error::io(format!("run {} --version", mariadbd.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .skip_while(|word| *word != "Ver")
        .nth(1)
        .unwrap_or("unknown");
    Ok(version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect())
}

fn lock_file(path: &Path) -> Result<File> {
    let file =
        File::create(path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    // SAFETY: flock on a descriptor we own; the lock goes away when `file` is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::io(format!("lock {}", path.display()), e));
    }
    Ok(file)
}

/// The last `lines` lines of a text file from byte `from` on; a note instead if unreadable.
/// Never fails: it only feeds error messages.
pub fn tail_of_file(path: &Path, from: u64, lines: usize) -> String {
    mariadbd::tail_of_file(path, from, lines)
}

/// Makes a server's own dir: `data/` (a copy of the template) and `tmp/`. Returns it with
/// the time the copy took. Blocks: call from blocking context.
///
/// # Errors
/// Any file operation fails.
pub fn new_instance(template: &Template) -> Result<(TempDir, Duration)> {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(sweep_orphaned_dirs);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(base_dir())
        .map_err(|e| Error::io("create server dir", e))?;
    let started = Instant::now();
    let data = dir.path().join("data");
    copy_dir(&template.datadir, &data).map_err(|e| {
        Error::io(
            format!(
                "copy datadir {} to {}",
                template.datadir.display(),
                data.display()
            ),
            e,
        )
    })?;
    fs::create_dir(dir.path().join("tmp")).map_err(|e| Error::io("create server tmp dir", e))?;
    Ok((dir, started.elapsed()))
}

/// Removes server dirs left by test binaries that died without running `Drop` (their
/// servers died with them, see [`super::process::spawn_tied`]). Best effort: it only tidies.
fn sweep_orphaned_dirs() {
    let Ok(entries) = fs::read_dir(base_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let owner = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = owner {
            if pid != std::process::id() && !pid_exists(pid) {
                tracing::info!(dir = %entry.path().display(), "removing orphaned mariadb dir");
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn copy_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    fs::create_dir(dest)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let target = dest.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
