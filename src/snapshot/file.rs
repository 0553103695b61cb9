//! The snapshot data openraft moves around: an open snapshot file that remembers its path
//! (so a received file can be verified and renamed) and, while receiving, reports how far
//! it has been written.

use super::progress::Progress;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// An open snapshot file: read by the sender in chunks, written by the receiver.
#[derive(Debug)]
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
    /// Where the next write lands (only tracked while receiving).
    pos: u64,
    progress: Option<Progress>,
}

impl SnapshotFile {
    /// Opens `path` for reading.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub async fn open(path: &Path) -> std::io::Result<SnapshotFile> {
        Ok(SnapshotFile {
            file: tokio::fs::File::open(path).await?,
            path: path.to_path_buf(),
            pos: 0,
            progress: None,
        })
    }

    /// Creates `path` (which must not exist) for receiving; writes advance `progress`.
    ///
    /// # Errors
    /// The file cannot be created.
    pub async fn create(path: &Path, progress: Option<Progress>) -> std::io::Result<SnapshotFile> {
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .await?;
        Ok(SnapshotFile {
            file,
            path: path.to_path_buf(),
            pos: 0,
            progress,
        })
    }

    /// An empty snapshot file that exists nowhere on disk: the data of a snapshot that
    /// only records a position. Created in the system's temporary directory and unlinked
    /// at once.
    ///
    /// # Errors
    /// The temporary file cannot be created or unlinked.
    pub async fn empty() -> std::io::Result<SnapshotFile> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "wolfscale-empty-snapshot-{}-{n}",
            std::process::id()
        ));
        let f = SnapshotFile::create(&path, None).await?;
        tokio::fs::remove_file(&path).await?;
        Ok(f)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and fsyncs what was written, then closes the file; returns its path.
    ///
    /// # Errors
    /// The flush or sync fails.
    pub async fn finish(mut self) -> std::io::Result<PathBuf> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(self.path)
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = &mut *self;
        let r = Pin::new(&mut me.file).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            me.pos += *n as u64;
            if let Some(p) = &me.progress {
                p.bytes(me.pos);
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        Pin::new(&mut self.file).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        let me = &mut *self;
        let r = Pin::new(&mut me.file).poll_complete(cx);
        if let Poll::Ready(Ok(at)) = &r {
            me.pos = *at;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_seeks_and_reports_progress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.part");
        let progress = Progress::default();
        progress.begin(super::super::progress::Phase::Receiving, "id", Some(10));
        let mut f = SnapshotFile::create(&path, Some(progress.clone()))
            .await
            .expect("create");
        f.write_all(b"hello").await.expect("write");
        f.seek(SeekFrom::Start(2)).await.expect("seek");
        f.write_all(b"LLO world").await.expect("write");
        assert_eq!(progress.report().expect("active").bytes_done, 11);
        assert!(
            SnapshotFile::create(&path, None).await.is_err(),
            "never overwrites"
        );
        let p = f.finish().await.expect("finish");
        let mut r = SnapshotFile::open(&p).await.expect("open");
        let mut s = String::new();
        r.read_to_string(&mut s).await.expect("read");
        assert_eq!(s, "heLLO world");
        assert_eq!(r.path(), path);
    }
}
