//! Scratch directories on the disk under test (not tmpfs: durable figures need the real
//! disk), removed when dropped, and free loopback ports.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// `<parent>/<name>-<pid>`, created empty and removed with its contents on drop.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(parent: &Path, name: &str) -> anyhow::Result<Scratch> {
        let path = parent.join(format!("{name}-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("remove stale {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        // Absolute: the servers and nodes started in it do not share our working dir.
        let path = path
            .canonicalize()
            .with_context(|| format!("resolve {}", path.display()))?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port that was free a moment ago (the caller binds it soon after).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}
