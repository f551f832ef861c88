//! A node's configuration, its defaults (the one place they are spelled out: the binaries'
//! flags read them too) and the errors that stop a node from starting.

use crate::connect::{NatsOptions, DEFAULT_NATS};
use crate::error::DdbError;
use crate::log::StreamSettings;
use crate::op::Limits;
use std::time::Duration;

/// The defaults of [`NodeConfig::new`], in the units the flags take.
pub mod defaults {
    /// Subject prefix shared by every node and client of one deployment.
    pub const PREFIX: &str = "ddb";
    pub const HEARTBEAT_MS: u64 = 1000;
    pub const FAILOVER_AFTER_MS: u64 = 3000;
    pub const WAIT_MS: u64 = 5000;
    pub const MAX_BATCH: usize = 256;
    pub const APPLY_EVERY_MS: u64 = 5;
    pub const QUERY_TIMEOUT_MS: u64 = 30_000;
    pub const OP_ID_WINDOW_S: u64 = 24 * 3600;
    pub const OP_ID_MAX: u64 = 1_000_000;
    /// The CPU nice value a slave runs at: applying the log is background work, and on a
    /// host shared with the master or nats-server it should leave the CPU to the write path.
    pub const SLAVE_NICE: i32 = 10;
    /// What a node logs unless `RUST_LOG` says otherwise: ddb at `info`, the libraries'
    /// connection chatter (tiberius, async-nats) only when it is a warning.
    pub const LOG_FILTER: &str = "info,tiberius=warn,async_nats=warn";
}

/// Everything a node needs; the binaries fill it from flags and env vars.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub nats: NatsOptions,
    /// `sqlite://DIR` or `mssql://...`.
    pub store: String,
    pub prefix: String,
    pub heartbeat: Duration,
    /// A slave takes writes after this long without a master heartbeat.
    pub failover_after: Duration,
    /// How long a read with `min_seq` waits, and how long a writer waits for its own log
    /// reader to catch up after a sequence conflict.
    pub wait_limit: Duration,
    pub stream: StreamSettings,
    pub limits: Limits,
    /// Most ops committed together in one store transaction and one log entry.
    pub max_batch: usize,
    /// While entries keep coming, a node that does not take writes begins applying at most
    /// this often, so that what arrives in between shares one store transaction (zero: each
    /// delivery is applied as soon as it comes).
    pub apply_every: Duration,
    /// Page size of the SQLite files the node creates (see `StoreOptions::sqlite_page_size`).
    pub sqlite_page_size: u32,
    /// Longest a read statement, or one write on the node that takes it, may run.
    pub query_timeout: Option<Duration>,
    /// `HOST:PORT` to serve Prometheus metrics on (`/metrics`); none by default.
    pub metrics_addr: Option<String>,
    /// How long, and how many, applied op_ids each database remembers.
    pub op_id_window: Duration,
    pub op_id_max: u64,
    /// When the master snapshots each database (README "Snapshots, retention and bootstrap").
    pub snapshots: super::snapshot_state::SnapshotSettings,
    /// Where `<prefix>.reads` is served, over a NATS connection of its own; `None` serves it
    /// with the node's other requests. The node binaries give a thread that keeps the
    /// priority the node started with when `--nice` lowers the rest: the replica's apply
    /// work is background work, its answers to readers are not.
    pub reads_runtime: Option<tokio::runtime::Handle>,
}

impl NodeConfig {
    pub fn new(name: &str) -> Self {
        NodeConfig {
            name: name.to_owned(),
            nats: NatsOptions::new(&[DEFAULT_NATS.to_owned()]),
            store: Self::default_store(name),
            prefix: defaults::PREFIX.to_owned(),
            heartbeat: Duration::from_millis(defaults::HEARTBEAT_MS),
            failover_after: Duration::from_millis(defaults::FAILOVER_AFTER_MS),
            wait_limit: Duration::from_millis(defaults::WAIT_MS),
            stream: StreamSettings::default(),
            limits: Limits::default(),
            max_batch: defaults::MAX_BATCH,
            apply_every: Duration::from_millis(defaults::APPLY_EVERY_MS),
            sqlite_page_size: crate::store::SQLITE_PAGE_SIZE,
            query_timeout: Some(Duration::from_millis(defaults::QUERY_TIMEOUT_MS)),
            metrics_addr: None,
            op_id_window: Duration::from_secs(defaults::OP_ID_WINDOW_S),
            op_id_max: defaults::OP_ID_MAX,
            snapshots: Default::default(),
            reads_runtime: None,
        }
    }

    /// Where node `name` keeps its data unless told otherwise.
    pub fn default_store(name: &str) -> String {
        format!("sqlite://./data/{name}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot open the store: {0}")]
    Store(DdbError),
    #[error("cannot reach NATS: {0}")]
    Nats(DdbError),
    #[error("cannot open the log: {0}")]
    Log(DdbError),
}
