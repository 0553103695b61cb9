//! The snapshot directory `<data_dir>/snapshots/` and everything done with it:
//!
//! - `<id>.snap` is a complete snapshot file, `<id>.json` its manifest (written after the
//!   file is fsync'd and renamed into place, so a manifest always describes a complete
//!   file); only the newest snapshot is kept;
//! - `build-*.part` is a snapshot being taken (removed at start: a crash left it);
//! - `recv-*.part` is a snapshot being received from the leader;
//! - `INSTALLING` names the snapshot being loaded into MariaDB. It is written before the
//!   received file moves into place (and so before the load starts) and removed after the
//!   position is recorded, so a node that stops mid-install redoes the whole load from the
//!   file when it starts again, before it serves. Installs and builds take turns.
//!
//! A snapshot id is `<index>-<term>-<created_ms>-<bytes>`: the log position it reflects,
//! when it was taken, and its size (a receiver shows a percentage from it).

use super::format::{self, TableCount, Verified};
use super::load::load;
use super::progress::{Phase, Progress};
use super::{dump, now_ms, Database, Error, SnapshotFile};
use crate::consensus::{LogId, NodeId, NodeInfo, StoredMembership};
use mysql_async::prelude::Queryable;
use openraft::storage::SnapshotMeta;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MARKER: &str = "INSTALLING";
const SNAP: &str = ".snap";
const JSON: &str = ".json";
const PART: &str = ".part";

/// What a snapshot holds, stored beside it as `<id>.json` and shown by `snapshot list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The snapshot's id (also its file name).
    pub id: String,
    /// File format version.
    pub format: u32,
    /// The last log entry whose effects it holds.
    pub last_log_id: Option<LogId>,
    /// The membership in force at that entry.
    pub membership: StoredMembership,
    /// A DDL entry marked in flight in the copy.
    pub ddl_in_flight: Option<u64>,
    /// The database it was taken from.
    pub database: String,
    /// When it was taken, ms since the Unix epoch.
    pub created_ms: u64,
    /// File size.
    pub bytes: u64,
    /// SHA-256 of the file (hex), as its tail records it.
    pub sha256: String,
    /// Rows in all tables.
    pub rows: u64,
    /// Rows per table.
    pub tables: Vec<TableCount>,
    /// Sequences, views, routines and triggers it holds.
    pub sequences: u64,
    /// Views.
    pub views: u64,
    /// Stored procedures and functions.
    pub routines: u64,
    /// Triggers.
    pub triggers: u64,
    /// `built` here, `received` from a leader, or `restored` from a file by an operator.
    pub source: String,
}

impl Manifest {
    /// openraft's view of it.
    pub fn meta(&self) -> SnapshotMeta<NodeId, NodeInfo> {
        SnapshotMeta {
            last_log_id: self.last_log_id,
            last_membership: self.membership.clone(),
            snapshot_id: self.id.clone(),
        }
    }

    /// The log index it reflects (0 when none).
    pub fn index(&self) -> u64 {
        self.last_log_id.map_or(0, |l| l.index)
    }

    fn from_verified(v: &Verified, id: &str, source: &str) -> Result<Manifest, Error> {
        let membership = if v.header.membership_json.is_empty() {
            StoredMembership::default()
        } else {
            serde_json::from_str(&v.header.membership_json).map_err(|e| {
                Error::Invalid(format!("the snapshot's membership does not parse: {e}"))
            })?
        };
        Ok(Manifest {
            id: id.to_string(),
            format: v.header.version,
            last_log_id: v.header.applied.map(|p| {
                openraft::LogId::new(openraft::CommittedLeaderId::new(p.term, p.node), p.index)
            }),
            membership,
            ddl_in_flight: v.header.ddl_in_flight,
            database: v.header.database.clone(),
            created_ms: v.header.created_ms,
            bytes: v.bytes,
            sha256: format::hex(&v.sha256),
            rows: v.footer.rows,
            tables: v.footer.tables.clone(),
            sequences: v.footer.sequences,
            views: v.footer.views,
            routines: v.footer.routines,
            triggers: v.footer.triggers,
            source: source.to_string(),
        })
    }
}

/// The id a snapshot file gets from its content.
fn make_id(v: &Verified) -> String {
    let (index, term) = v.header.applied.map_or((0, 0), |p| (p.index, p.term));
    format!("{index}-{term}-{}-{}", v.header.created_ms, v.bytes)
}

/// The file size an id announces, if it is one of ours.
pub fn size_from_id(id: &str) -> Option<u64> {
    id.rsplit('-').next()?.parse().ok()
}

/// Ids come from the network (the leader's snapshot meta): they become file names only if
/// they are plain.
fn checked_id(id: &str) -> Result<&str, Error> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id)
    } else {
        Err(Error::Invalid(format!(
            "snapshot id {id:?} is not a plain name"
        )))
    }
}

/// The node's snapshots; clones share one directory.
#[derive(Clone)]
pub struct Snapshots {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    db: Database,
    progress: Progress,
    /// One build at a time.
    build: tokio::sync::Mutex<()>,
    /// Builds finished (successfully or not) since start.
    builds: AtomicU64,
    last_build_error: Mutex<Option<String>>,
    seq: AtomicU64,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(format!("snapshot task failed: {e}"))))?
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

fn read_manifest(path: &Path) -> Option<Manifest> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice::<Manifest>(&text) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable snapshot manifest");
            None
        }
    }
}

impl Snapshots {
    /// Opens (creating) the snapshot directory; removes builds a crash left unfinished.
    /// Blocking.
    ///
    /// # Errors
    /// The directory cannot be created or read.
    pub fn open(dir: &Path, db: Database) -> Result<Snapshots, Error> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with("build-") && name.ends_with(PART) {
                std::fs::remove_file(dir.join(&name))?;
            }
        }
        Ok(Snapshots {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                db,
                progress: Progress::default(),
                build: tokio::sync::Mutex::new(()),
                builds: AtomicU64::new(0),
                last_build_error: Mutex::new(None),
                seq: AtomicU64::new(0),
            }),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Progress of an incoming transfer.
    pub fn progress(&self) -> &Progress {
        &self.inner.progress
    }

    /// Builds finished (successfully or not) since start.
    pub fn builds(&self) -> u64 {
        self.inner.builds.load(Ordering::SeqCst)
    }

    /// Why the last build failed, if it did.
    pub fn last_build_error(&self) -> Option<String> {
        self.inner
            .last_build_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The file of snapshot `id`.
    pub fn file_path(&self, id: &str) -> PathBuf {
        self.inner.dir.join(format!("{id}{SNAP}"))
    }

    fn temp(&self, kind: &str) -> PathBuf {
        let n = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        self.inner
            .dir
            .join(format!("{kind}-{}-{n}{PART}", now_ms()))
    }

    /// Every complete snapshot here, oldest first.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub async fn list(&self) -> Result<Vec<Manifest>, Error> {
        let dir = self.inner.dir.clone();
        blocking(move || {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(JSON) {
                    if dir.join(format!("{id}{SNAP}")).is_file() {
                        if let Some(m) = read_manifest(&dir.join(&name)) {
                            out.push(m);
                        }
                    }
                }
            }
            out.sort_by_key(|m| (m.index(), m.created_ms));
            Ok(out)
        })
        .await
    }

    /// The newest complete snapshot.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub async fn latest(&self) -> Result<Option<Manifest>, Error> {
        Ok(self.list().await?.pop())
    }

    /// Opens the newest snapshot for sending.
    ///
    /// # Errors
    /// The directory or file cannot be read.
    pub async fn open_latest(&self) -> Result<Option<(Manifest, SnapshotFile)>, Error> {
        // A build may prune the one just listed: look again once.
        for _ in 0..2 {
            let Some(m) = self.latest().await? else {
                return Ok(None);
            };
            match SnapshotFile::open(&self.file_path(&m.id)).await {
                Ok(f) => return Ok(Some((m, f))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Takes a snapshot of the database now (one at a time); returns the existing newest
    /// one instead when nothing was applied since it was taken.
    ///
    /// # Errors
    /// MariaDB or the directory failed, or nothing has been applied yet.
    pub async fn build(&self) -> Result<Manifest, Error> {
        let r = self.build_inner().await;
        *self
            .inner
            .last_build_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = r.as_ref().err().map(|e| e.to_string());
        self.inner.builds.fetch_add(1, Ordering::SeqCst);
        r
    }

    async fn build_inner(&self) -> Result<Manifest, Error> {
        let _one = self.inner.build.lock().await;
        let latest = self.latest().await?;
        if let Some(m) = &latest {
            let now: Option<(Option<u64>,)> = {
                let mut conn = self.inner.db.connect().await?;
                let r = conn
                    .query_first("SELECT `applied_index` FROM `_wolfscale` WHERE `id` = 1")
                    .await?;
                let _ = conn.disconnect().await;
                r
            };
            if now.and_then(|(i,)| i) == m.last_log_id.map(|l| l.index) {
                return Ok(m.clone());
            }
        }
        let tmp = self.temp("build");
        let t2 = tmp.clone();
        let file = blocking(move || Ok(std::fs::File::create_new(&t2)?)).await?;
        let started = std::time::Instant::now();
        let dumped = match dump::dump(&self.inner.db, file).await {
            Ok(d) => d,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        if dumped.header.applied.is_none() {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Error::Invalid(
                "nothing has been applied yet: there is nothing to snapshot".into(),
            ));
        }
        let v = Verified {
            header: dumped.header,
            footer: dumped.footer,
            bytes: dumped.written.bytes,
            sha256: dumped.written.sha256,
        };
        let id = make_id(&v);
        let manifest = Manifest::from_verified(&v, &id, "built")?;
        self.commit(tmp, &manifest).await?;
        tracing::info!(
            snapshot = %id,
            log_index = manifest.index(),
            rows = manifest.rows,
            bytes = manifest.bytes,
            raw_bytes = dumped.written.raw_bytes,
            secs = started.elapsed().as_secs_f64(),
            "snapshot built"
        );
        self.prune(&id).await?;
        Ok(manifest)
    }

    /// Moves a complete file into place under its id and writes its manifest.
    async fn commit(&self, from: PathBuf, m: &Manifest) -> Result<(), Error> {
        let to = self.file_path(checked_id(&m.id)?);
        let json = self.inner.dir.join(format!("{}{JSON}", m.id));
        let bytes = serde_json::to_vec_pretty(m)
            .map_err(|e| Error::Invalid(format!("manifest does not encode: {e}")))?;
        let dir = self.inner.dir.clone();
        blocking(move || {
            if from != to {
                std::fs::rename(&from, &to)?;
            }
            fsync_dir(&dir)?;
            write_atomic(&json, &bytes)?;
            Ok(())
        })
        .await
    }

    /// Removes every snapshot but `keep`.
    async fn prune(&self, keep: &str) -> Result<(), Error> {
        let dir = self.inner.dir.clone();
        let keep = keep.to_string();
        blocking(move || {
            for entry in std::fs::read_dir(&dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                let id = name
                    .strip_suffix(SNAP)
                    .or_else(|| name.strip_suffix(JSON));
                if let Some(id) = id {
                    if id != keep {
                        std::fs::remove_file(dir.join(&name))?;
                        tracing::info!(snapshot = %id, file = %name, "removed an old snapshot file");
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Notes a chunk of an incoming snapshot (for progress: the id announces the size).
    pub fn receiving(&self, id: &str) {
        let p = &self.inner.progress;
        // A load in progress keeps its progress; a new stream shows once it is received.
        let replace = match p.report() {
            None => true,
            Some(r) => r.phase == Phase::Receiving && r.snapshot_id != id,
        };
        if replace {
            p.begin(Phase::Receiving, id, size_from_id(id));
        }
    }

    /// The last chunk of `id` was handled: a transfer still shown as receiving it was not
    /// installed (consensus did not need it) and ends.
    pub fn received(&self, id: &str) {
        let p = &self.inner.progress;
        if p.report()
            .is_some_and(|r| r.phase == Phase::Receiving && r.snapshot_id == id)
        {
            p.end(None);
        }
    }

    /// A new file to receive a snapshot into; earlier unfinished receptions are removed.
    ///
    /// # Errors
    /// The file cannot be created.
    pub async fn receive(&self) -> Result<SnapshotFile, Error> {
        let dir = self.inner.dir.clone();
        blocking(move || {
            for entry in std::fs::read_dir(&dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if name.starts_with("recv-") && name.ends_with(PART) {
                    std::fs::remove_file(dir.join(&name))?;
                }
            }
            Ok(())
        })
        .await?;
        if !self.inner.progress.is_active() {
            self.inner.progress.begin(Phase::Receiving, "", None);
        }
        Ok(SnapshotFile::create(&self.temp("recv"), Some(self.inner.progress.clone())).await?)
    }

    /// An empty, already unlinked file: the data of a "no new snapshot" answer.
    ///
    /// # Errors
    /// The file cannot be created.
    pub async fn placeholder(&self) -> Result<SnapshotFile, Error> {
        let path = self.temp("build");
        let f = SnapshotFile::create(&path, None).await?;
        tokio::fs::remove_file(&path).await?;
        Ok(f)
    }

    /// Verifies a received snapshot against the leader's metadata, moves it into place
    /// and loads it into MariaDB (see [`Snapshots::load_marked`]).
    ///
    /// # Errors
    /// The file is damaged or does not match `meta`, or the load failed for good.
    pub async fn install(
        &self,
        file: SnapshotFile,
        meta: &SnapshotMeta<NodeId, NodeInfo>,
    ) -> Result<Manifest, Error> {
        let id = checked_id(&meta.snapshot_id)?.to_string();
        let path = file.finish().await?;
        self.inner
            .progress
            .begin(Phase::Verifying, &id, size_from_id(&id));
        let v = self.verify(&path).await?;
        let mut m = Manifest::from_verified(&v, &id, "received")?;
        if m.last_log_id != meta.last_log_id {
            self.inner.progress.end(None);
            return Err(Error::Invalid(format!(
                "snapshot {id} holds position {:?} but the leader announced {:?}",
                m.last_log_id, meta.last_log_id
            )));
        }
        m.membership = meta.last_membership.clone();
        self.place_and_load(path, &m).await?;
        Ok(m)
    }

    /// Writes the `INSTALLING` marker naming `id` (durably).
    async fn mark(&self, id: &str) -> Result<(), Error> {
        let marker = self.inner.dir.join(MARKER);
        let id = id.to_string();
        blocking(move || Ok(write_atomic(&marker, id.as_bytes())?)).await
    }

    /// Marks `m` as installing, moves its verified file `from` into place, loads it and
    /// removes every other snapshot; one at a time with builds, so a build can neither
    /// copy a half-loaded database nor prune the file being loaded. The marker is written
    /// *before* the file moves: a stop anywhere after it makes [`Snapshots::resume`]
    /// finish the install (from the part file if it had not moved yet).
    async fn place_and_load(&self, from: PathBuf, m: &Manifest) -> Result<(), Error> {
        let _one = self.inner.build.lock().await;
        self.mark(&m.id).await?;
        self.commit(from, m).await?;
        self.load_marked(m).await?;
        self.prune(&m.id).await
    }

    async fn verify(&self, path: &Path) -> Result<Verified, Error> {
        let p = path.to_path_buf();
        let progress = self.inner.progress.clone();
        blocking(move || {
            let mut f = std::fs::File::open(&p)?;
            let v = format::verify(&mut f)?;
            progress.bytes(v.bytes);
            Ok(v)
        })
        .await
    }

    /// Loads snapshot `m` (already marked as installing) into MariaDB, retrying transient
    /// MariaDB failures from scratch (the node is SYNCING meanwhile), then removes the
    /// marker.
    ///
    /// # Errors
    /// A failure that retrying cannot fix (an unsupported definition, a damaged file).
    async fn load_marked(&self, m: &Manifest) -> Result<(), Error> {
        let marker = self.inner.dir.join(MARKER);
        let path = self.file_path(&m.id);
        let progress = &self.inner.progress;
        let mut delay = Duration::from_millis(100);
        let started = std::time::Instant::now();
        loop {
            progress.begin(Phase::Loading, &m.id, Some(m.bytes));
            progress.totals(m.rows, m.bytes);
            match load(&self.inner.db, &path, progress).await {
                Ok(_) => break,
                Err(e) if e.is_transient() => {
                    tracing::warn!(snapshot = %m.id, error = %e, "snapshot load failed; retrying from the start");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    progress.end(None);
                    tracing::error!(snapshot = %m.id, error = %e, "snapshot load failed");
                    return Err(e);
                }
            }
        }
        let dir = self.inner.dir.clone();
        blocking(move || {
            std::fs::remove_file(&marker)?;
            fsync_dir(&dir)?;
            Ok(())
        })
        .await?;
        progress.end(Some(&m.id));
        tracing::info!(
            snapshot = %m.id,
            log_index = m.index(),
            rows = m.rows,
            bytes = m.bytes,
            secs = started.elapsed().as_secs_f64(),
            "snapshot installed"
        );
        Ok(())
    }

    /// Finishes what a stop interrupted, before the node serves: redoes a marked load, or
    /// installs a completely received file newer than `applied` (the node may have
    /// stopped after consensus dropped the log entries the file replaces, before the load
    /// began). Returns whether it loaded something.
    ///
    /// # Errors
    /// The marked snapshot's file is gone or the load fails for good.
    pub async fn resume(&self, applied: Option<LogId>) -> Result<bool, Error> {
        let dir = self.inner.dir.clone();
        let marked = {
            let m = dir.join(MARKER);
            blocking(move || match std::fs::read_to_string(&m) {
                Ok(s) => Ok(Some(s.trim().to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            })
            .await?
        };
        let d2 = dir.clone();
        let parts: Vec<PathBuf> = blocking(move || {
            let mut v = Vec::new();
            for entry in std::fs::read_dir(&d2)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if name.starts_with("recv-") && name.ends_with(PART) {
                    v.push(d2.join(name));
                }
            }
            Ok(v)
        })
        .await?;
        let _one = self.inner.build.lock().await;
        if let Some(id) = marked {
            let id = checked_id(&id)?.to_string();
            let path = self.file_path(&id);
            if !path.is_file() {
                // Stopped between marking and moving the file into place: the load had not
                // begun, and the file is still a part.
                let mut placed = false;
                for part in &parts {
                    let Ok(v) = self.verify(part).await else {
                        continue;
                    };
                    if make_id(&v) == id {
                        let m = Manifest::from_verified(&v, &id, "received")?;
                        self.commit(part.clone(), &m).await?;
                        placed = true;
                        break;
                    }
                }
                self.inner.progress.end(None);
                if !placed {
                    return Err(Error::Invalid(format!(
                        "loading snapshot {id} into MariaDB was interrupted and its file {} is \
                         gone; empty this node's data dir and database and join it again",
                        path.display()
                    )));
                }
            }
            tracing::warn!(snapshot = %id, "a snapshot load was interrupted; loading it again");
            self.inner.progress.begin(Phase::Verifying, &id, None);
            let v = self.verify(&path).await?;
            let known = {
                let j = dir.join(format!("{id}{JSON}"));
                blocking(move || Ok(read_manifest(&j))).await?
            };
            let m = match known {
                Some(m) => m,
                None => Manifest::from_verified(&v, &id, "received")?,
            };
            self.load_marked(&m).await?;
            self.prune(&m.id).await?;
            for part in &parts {
                if let Err(e) = tokio::fs::remove_file(part).await {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(e.into());
                    }
                }
            }
            return Ok(true);
        }
        let mut loaded = false;
        for part in parts {
            let usable = match self.verify(&part).await {
                Ok(v) if !loaded => {
                    let newer = v.header.applied.map(|p| p.index) > applied.map(|l| l.index);
                    newer.then_some(v)
                }
                _ => None,
            };
            self.inner.progress.end(None);
            match usable {
                Some(v) => {
                    let id = make_id(&v);
                    let m = Manifest::from_verified(&v, &id, "received")?;
                    tracing::warn!(snapshot = %id, "installing a snapshot received before a stop");
                    self.mark(&id).await?;
                    self.commit(part, &m).await?;
                    self.load_marked(&m).await?;
                    self.prune(&id).await?;
                    loaded = true;
                }
                None => tokio::fs::remove_file(&part).await?,
            }
        }
        Ok(loaded)
    }

    /// Seeds this node from a snapshot file an operator copied here: verifies it, copies
    /// it into the directory and loads it into MariaDB.
    ///
    /// # Errors
    /// The file is damaged or the load fails.
    pub async fn restore(&self, file: &Path) -> Result<Manifest, Error> {
        let v = {
            let p = file.to_path_buf();
            blocking(move || Ok(format::verify(&mut std::fs::File::open(&p)?)?)).await?
        };
        if v.header.database != self.inner.db.name() {
            tracing::warn!(
                from = %v.header.database,
                into = %self.inner.db.name(),
                "restoring a snapshot taken from another database name"
            );
        }
        let id = make_id(&v);
        let m = Manifest::from_verified(&v, &id, "restored")?;
        // Copied as a received part: a stop before it moves into place leaves it where
        // `resume` looks.
        let tmp = self.temp("recv");
        let (src, t2) = (file.to_path_buf(), tmp.clone());
        blocking(move || {
            std::fs::copy(&src, &t2)?;
            std::fs::File::open(&t2)?.sync_all()?;
            Ok(())
        })
        .await?;
        self.place_and_load(tmp, &m).await?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_size_and_must_be_plain() {
        assert_eq!(size_from_id("120-3-1700000000000-4096"), Some(4096));
        assert_eq!(size_from_id("x"), None);
        assert!(checked_id("120-3-1700000000000-4096").is_ok());
        for bad in ["", "../etc/passwd", "a/b", "a b", &"9".repeat(101)] {
            assert!(checked_id(bad).is_err(), "{bad}");
        }
    }
}
