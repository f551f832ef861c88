//! The heartbeat every node publishes on `<prefix>.hb.<name>`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Slave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The master, taking writes.
    Master,
    /// A slave following the log; refuses writes.
    Replica,
    /// A slave that has not heard the master and takes writes itself.
    Failover,
    /// Starting up: applying the log before taking any request.
    Starting,
}

/// A database this node stopped applying because an entry failed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenDb {
    pub db: String,
    pub seq: u64,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    pub role: Role,
    pub mode: Mode,
    /// Every log entry up to this stream seq has been applied here.
    pub applied_seq: u64,
    /// The log's last stream seq, as this node last saw it.
    pub log_seq: u64,
    pub lag: u64,
    pub store: String,
    pub databases: Vec<String>,
    pub uptime_ms: u64,
    pub version: String,
    /// The heartbeat period, so that watchers know when a node is late.
    pub interval_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broken: Vec<BrokenDb>,
    /// Where this node serves Prometheus metrics (`--metrics-addr`), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// Each database's newest snapshot, and the restore running here, if any.
    #[serde(default, skip_serializing_if = "SnapshotStatus::is_empty")]
    pub snapshots: SnapshotStatus,
}

/// Snapshots as a node sees them: each database's newest complete snapshot, and the restore
/// it is running, if any (a node restoring is not catching up: it loads a whole database).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub newest: Vec<DbSnapshot>,
    /// Boxed: heartbeats travel in GUI messages, and a restore is rare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restoring: Option<Box<RestoreStatus>>,
}

impl SnapshotStatus {
    pub fn is_empty(&self) -> bool {
        self.newest.is_empty() && self.restoring.is_none()
    }
}

/// A database's newest complete snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSnapshot {
    pub db: String,
    /// The log seq it reflects.
    pub seq: u64,
    /// Since its upload completed.
    pub age_ms: u64,
}

/// A restore in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStatus {
    pub db: String,
    pub rows: u64,
    /// Rows in the whole snapshot; 0 until the store has read that far.
    pub total_rows: u64,
}

impl RestoreStatus {
    /// Percent done, once the total is known.
    pub fn percent(&self) -> Option<u8> {
        (self.total_rows > 0)
            .then(|| (self.rows.min(self.total_rows) * 100 / self.total_rows) as u8)
    }
}
