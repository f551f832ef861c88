//! Engine-neutral snapshots of one database: its schema (tables, columns, keys, indexes), its
//! rows in key order, its remembered op_ids and the log seq it reflects. A node that needs
//! log entries the log no longer holds restores the newest snapshot, then replays after it.
//!
//! The store writes and reads the encoded bytes on its own threads (`Store::snapshot`,
//! `Store::restore`); the node moves them to and from the snapshot bucket.

pub mod format;

pub use format::{read_header, Header, TableHeader};

use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Where a store writes a snapshot's encoded (compressed, checksummed) bytes.
pub type SnapshotSink = Box<dyn std::io::Write + Send>;
/// Where a store reads a snapshot's encoded bytes from.
pub type SnapshotSource = Box<dyn std::io::Read + Send>;

/// What a snapshot holds, as written or as restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub db: Name,
    /// The log seq of the last entry the snapshot reflects (the database's applied seq).
    pub seq: u64,
    pub tables: u64,
    pub rows: u64,
    /// Encoded bytes written or read.
    pub bytes: u64,
}

/// Counters a long restore or snapshot updates as it goes, for progress bars and heartbeats.
#[derive(Debug, Default)]
pub struct Progress {
    pub rows: AtomicU64,
    /// Rows in the whole snapshot, once known (0 until then).
    pub total_rows: AtomicU64,
}

pub type ProgressRef = Arc<Progress>;

/// Why a snapshot could not be written or read. Every variant but the I/O ones means the bytes
/// are not a usable snapshot of the database asked for: nothing of them was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a ddb snapshot (it does not start with ddb's snapshot magic)")]
    Foreign,
    #[error("snapshot format version {0} is not one this ddb reads (it reads version {v})", v = format::VERSION)]
    UnknownVersion(u16),
    #[error("the snapshot is truncated: {0}")]
    Truncated(String),
    #[error("the snapshot is corrupt: {0}")]
    Corrupt(String),
    #[error("the snapshot is of database {found}, not {expected}")]
    OtherDb { expected: String, found: String },
    #[error("the snapshot holds an invalid name: {0}")]
    InvalidName(String),
    /// The source failed (a network or disk error): the snapshot may be fine.
    #[error("cannot read the snapshot: {0}")]
    Read(String),
    /// The sink failed, or the store's read did not agree with itself.
    #[error("cannot write the snapshot: {0}")]
    Write(String),
}

impl SnapshotError {
    /// Whether the bytes themselves are bad (as opposed to the source or sink failing).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, SnapshotError::Read(_) | SnapshotError::Write(_))
    }
}

impl From<SnapshotError> for DdbError {
    fn from(e: SnapshotError) -> Self {
        let code = match &e {
            SnapshotError::InvalidName(_) => ErrorCode::InvalidName,
            SnapshotError::Read(_) | SnapshotError::Write(_) => ErrorCode::Unavailable,
            _ => ErrorCode::BadRequest,
        };
        DdbError::new(code, e.to_string())
    }
}
