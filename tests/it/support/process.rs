//! Child processes that cannot outlive the test binary, and signals to them. It owns the
//! spawner thread; what the children are and when they stop is the caller's business.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

type Job = (Command, mpsc::Sender<io::Result<Child>>);

/// Sender to the spawner thread, started on first use.
static SPAWNER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

/// A child process that is SIGKILLed and reaped when dropped, so no early return or
/// panic leaves it running.
#[derive(Debug)]
pub struct Tied(pub Child);

impl Drop for Tied {
    fn drop(&mut self) {
        // Errors are ignored: the process may already be gone. After SIGKILL the wait is
        // a few milliseconds, short enough to do even on a runtime thread, and it leaves
        // no zombie behind. `Child` remembers a reaped status, so no stray pid is signalled.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` so that the kernel SIGKILLs it when the test binary dies, even by
/// SIGKILL or a harness timeout, when no `Drop` runs.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, and test
/// threads and tokio's blocking threads come and go; so every child is forked by one
/// spawner thread that lives as long as the process.
///
/// This call blocks for the fork and exec: call it from blocking context.
///
/// # Errors
/// The spawner thread cannot be started, or the spawn fails.
pub fn spawn_tied(mut cmd: Command) -> io::Result<Tied> {
    let parent = libc::pid_t::try_from(std::process::id())
        .map_err(|_| io::Error::other("process id does not fit pid_t"))?;
    // SAFETY: the closure runs between fork and exec and only makes two system calls,
    // which are async-signal-safe; building its error allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()?
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    let child = reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))??;
    Ok(Tied(child))
}

fn spawner() -> io::Result<mpsc::Sender<Job>> {
    let mut guard = SPAWNER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(tx) = guard.as_ref() {
        return Ok(tx.clone());
    }
    let (tx, rx) = mpsc::channel::<Job>();
    thread::Builder::new()
        .name("it-spawner".into())
        .spawn(move || {
            for (mut cmd, reply) in rx {
                // The requester may have given up; nothing to do then.
                let _ = reply.send(cmd.spawn());
            }
        })?;
    *guard = Some(tx.clone());
    Ok(tx)
}

/// Sends `signal` (e.g. `libc::SIGTERM`) to `child` if it has not been reaped yet.
///
/// # Errors
/// The kernel refuses the signal.
pub fn signal(child: &Child, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| io::Error::other("child id does not fit pid_t"))?;
    // SAFETY: `child` has not been waited for (we hold it), so the pid still names it
    // (an unreaped child's pid cannot be reused).
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits without blocking the runtime until `child` exits, or `limit` passes (`None`).
///
/// # Errors
/// `waitpid` fails.
pub async fn wait_exit(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a process with this pid exists (a zombie counts as existing).
pub fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
