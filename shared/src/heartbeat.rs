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
}
