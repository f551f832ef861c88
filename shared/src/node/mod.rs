//! The node runtime that `ddb-master` and `ddb-slave` run (docs/design.md "Replication", "Failover",
//! "Reads"): the log reader that applies entries, the writer that appends them, the intake
//! that answers requests, and the heartbeats that drive failover.

mod applier;
mod delivery;
mod failover;
mod intake;
mod liveness;
pub mod metrics;
mod micro;
mod reply_to;
mod state;
#[cfg(test)]
mod test_node;
mod writer;

pub use crate::heartbeat::{Mode, Role};

use crate::connect::NatsOptions;
use crate::error::DdbError;
use crate::log::{Log, StreamSettings};
use crate::op::Limits;
use crate::subjects::{validate_node_name, Subjects};
use state::Node;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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
    /// Longest a read statement, or one write on the node that takes it, may run.
    pub query_timeout: Option<Duration>,
    /// `HOST:PORT` to serve Prometheus metrics on (`/metrics`); none by default.
    pub metrics_addr: Option<String>,
    /// How long, and how many, applied op_ids each database remembers.
    pub op_id_window: Duration,
    pub op_id_max: u64,
}

impl NodeConfig {
    pub fn new(name: &str) -> Self {
        NodeConfig {
            name: name.to_owned(),
            nats: NatsOptions::new(&["nats://127.0.0.1:4222".to_owned()]),
            store: format!("sqlite://./data/{name}"),
            prefix: "ddb".to_owned(),
            heartbeat: Duration::from_millis(1000),
            failover_after: Duration::from_millis(3000),
            wait_limit: Duration::from_secs(5),
            stream: StreamSettings::default(),
            limits: Limits::default(),
            max_batch: 256,
            query_timeout: Some(Duration::from_secs(30)),
            metrics_addr: None,
            op_id_window: Duration::from_secs(24 * 3600),
            op_id_max: 1_000_000,
        }
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

/// Runs a node until `shutdown` resolves, then stops intake, finishes the ops in hand, drains
/// NATS and closes the store.
pub async fn run(
    role: Role,
    cfg: NodeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), NodeError> {
    validate_node_name(&cfg.name).map_err(NodeError::Config)?;
    if cfg.max_batch == 0 {
        return Err(NodeError::Config("max batch must be at least 1".into()));
    }
    // Bound first: a port already taken is a configuration error, reported before anything runs.
    let metrics = match &cfg.metrics_addr {
        Some(addr) => Some(
            metrics::start(addr, &cfg.name)
                .await
                .map_err(|e| NodeError::Config(e.message))?,
        ),
        None => None,
    };
    let store_options = crate::store::StoreOptions {
        query_timeout: cfg.query_timeout,
        op_id_window: cfg.op_id_window,
        op_id_max: cfg.op_id_max,
        ..Default::default()
    };
    let store = crate::store::open(&cfg.store, &cfg.name, &store_options)
        .await
        .map_err(NodeError::Store)?;
    let mut nats_opts = cfg.nats.clone();
    nats_opts
        .name
        .get_or_insert_with(|| format!("ddb-{}", cfg.name));
    let client = nats_opts.connect().await.map_err(NodeError::Nats)?;
    let subjects = Subjects::new(&cfg.prefix);
    let log = Log::new(client.clone(), subjects.clone());
    // The stream may not be reachable yet (JetStream starting, cluster electing): retry.
    let mut attempt = 0u32;
    loop {
        match log.ensure_stream(&cfg.stream).await {
            Ok(()) => break,
            Err(e) if attempt < 30 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "log stream not ready; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(NodeError::Log(e)),
        }
    }
    let metrics_addr = metrics.as_ref().and_then(|(l, _)| metrics::bound(l));
    let node = Node::new(role, cfg, store, client, log, metrics_addr)
        .await
        .map_err(NodeError::Store)?;
    if let Some(addr) = metrics_addr {
        tracing::info!(node = %node.name(), %addr, "serving Prometheus metrics at /metrics");
    }
    node.run(shutdown, metrics).await;
    Ok(())
}

pub(crate) type NodeRef = Arc<Node>;
