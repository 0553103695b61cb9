//! The WAL's error type: what went wrong, named by what the caller must decide.

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in the WAL; variants name what the caller must decide.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A file system call failed; the WAL is poisoned if this happened while writing.
    #[error("wal i/o error during {op} on {}: {source}", path.display())]
    Io {
        /// The operation.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The disk (or quota) is full: free space, then reopen the WAL.
    #[error("wal disk full during {op} on {}: free space and reopen the wal ({source})", path.display())]
    Full {
        /// The operation.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error (ENOSPC or EDQUOT).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Damaged data that recovery may not cut; the node must not start on it.
    #[error("wal corruption in {} at byte {offset}: {reason}", file.display())]
    Corruption {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An append does not start right after the last record.
    #[error("append must start at lsn {expected}, got lsn {got}")]
    Gap {
        /// The LSN the append had to start with.
        expected: u64,
        /// The LSN it started with.
        got: u64,
    },
    /// The records of one append do not have consecutive LSNs.
    #[error("records of one append must have consecutive lsns: lsn {got} follows lsn {prev}")]
    NotContiguous {
        /// The previous record's LSN.
        prev: u64,
        /// The LSN that followed it.
        got: u64,
    },
    /// A payload is larger than the format allows.
    #[error("record payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A truncation point lies in the purged prefix.
    #[error("cannot truncate after lsn {lsn}: the log starts at lsn {first}")]
    BeforeStart {
        /// The requested LSN.
        lsn: u64,
        /// The first LSN held.
        first: u64,
    },
    /// An earlier write or sync failed; the WAL refuses all changes until reopened.
    #[error("wal refuses writes after an earlier failure ({reason}); close and reopen it")]
    Poisoned {
        /// The original failure.
        reason: String,
    },
    /// The WAL was closed.
    #[error("wal is closed")]
    Closed,
    /// Another handle (this or another process) has the directory open.
    #[error("wal directory {} is already in use by another wal handle", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// Options that cannot work.
    #[error("invalid wal options: {0}")]
    InvalidOptions(String),
}
