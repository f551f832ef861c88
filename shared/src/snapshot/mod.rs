//! Engine-neutral snapshots of one database: its schema (tables, columns, keys, indexes), its
//! rows in key order, its remembered op_ids and the log seq it reflects. A node that needs
//! log entries the log no longer holds restores the newest snapshot, then replays after it.
//!
//! The store writes and reads the encoded bytes on its own threads (`Store::snapshot`,
//! `Store::restore`); the node moves them to and from the snapshot bucket.

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
