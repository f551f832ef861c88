//! The flags: how to reach NATS (every program) and a node's settings. Every default comes
//! from the library (`ddb::node::defaults`, `StreamSettings::default()`, `Limits::default()`),
//! the same values `NodeConfig::new` starts from.

use crate::logging::LogFormat;
use ddb::connect::{NatsOptions, DEFAULT_NATS};
use ddb::log::StreamSettings;
use ddb::node::{defaults, NodeConfig, Role};
use ddb::op::Limits;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach NATS: the flags every ddb program shares (nodes, GUI, CLI), each also read
/// from an environment variable (docs/design.md "Command-line contract").
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated for a cluster.
    #[arg(long, env = "DDB_NATS", default_value = DEFAULT_NATS)]
    pub nats: String,
    /// Subject prefix shared by every node and client of one deployment.
    #[arg(long, env = "DDB_PREFIX", default_value = defaults::PREFIX)]
    pub prefix: String,
    #[arg(long, env = "DDB_NATS_USER")]
    pub nats_user: Option<String>,
    #[arg(long, env = "DDB_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS credentials file (JWT + NKey).
    #[arg(long, env = "DDB_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate that signed the NATS server's TLS certificate; turns TLS on.
    #[arg(long, env = "DDB_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
}

impl NatsArgs {
    /// Plain defaults pointing at `url`, for tests and embedding.
    pub fn new(url: &str) -> Self {
        NatsArgs {
            nats: url.to_owned(),
            prefix: defaults::PREFIX.to_owned(),
            nats_user: None,
            nats_password: None,
            nats_creds: None,
            nats_tls_ca: None,
        }
    }

    /// Connection options; `client_name` is what the server's monitoring shows.
    pub fn options(&self, client_name: Option<&str>) -> NatsOptions {
        NatsOptions {
            urls: NatsOptions::parse_urls(&self.nats),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            creds_file: self.nats_creds.clone(),
            tls_ca: self.nats_tls_ca.clone(),
            name: client_name.map(str::to_owned),
        }
    }
}

/// Flags every node takes; each also reads an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub link: NatsArgs,
    /// Store: sqlite://DIR (default ./data/<name>) or mssql://user:password@host:1433.
    #[arg(long, env = "DDB_STORE")]
    pub store: Option<String>,
    /// Heartbeat period.
    #[arg(long, env = "DDB_HEARTBEAT_MS", default_value_t = defaults::HEARTBEAT_MS)]
    pub heartbeat_ms: u64,
    /// A slave takes writes after this long without a master heartbeat.
    #[arg(long, env = "DDB_FAILOVER_AFTER_MS", default_value_t = defaults::FAILOVER_AFTER_MS)]
    pub failover_after_ms: u64,
    /// How long a read with min_seq waits for this node to catch up.
    #[arg(long, env = "DDB_WAIT_MS", default_value_t = defaults::WAIT_MS)]
    pub wait_ms: u64,
    /// Replicas of the log stream when this node creates it (3 on a 3-server cluster).
    #[arg(long, env = "DDB_LOG_REPLICAS", default_value_t = StreamSettings::default().replicas)]
    pub log_replicas: usize,
    /// Trim log entries older than this many seconds, below each database's newest snapshot
    /// (0: keep all; README "Snapshots, retention and bootstrap").
    #[arg(long, env = "DDB_LOG_MAX_AGE_S", default_value_t = StreamSettings::default().max_age.as_secs())]
    pub log_max_age_s: u64,
    /// Bound the log's size in bytes by trimming below snapshots (-1: no bound).
    #[arg(
        long,
        env = "DDB_LOG_MAX_BYTES",
        default_value_t = StreamSettings::default().max_bytes,
        allow_negative_numbers = true
    )]
    pub log_max_bytes: i64,
    /// The master snapshots a database after this many new entries (0: never by count).
    #[arg(long, env = "DDB_SNAPSHOT_EVERY_ENTRIES", default_value_t = ddb::node::snapshots::DEFAULT_EVERY_ENTRIES)]
    pub snapshot_every_entries: u64,
    /// ...or this many seconds after the first entry its newest snapshot does not cover
    /// (0: never by time).
    #[arg(long, env = "DDB_SNAPSHOT_EVERY_S", default_value_t = ddb::node::snapshots::DEFAULT_EVERY_S)]
    pub snapshot_every_s: u64,
    /// Largest request accepted, in bytes.
    #[arg(long, env = "DDB_MAX_REQUEST_BYTES", default_value_t = Limits::default().max_request_bytes)]
    pub max_request_bytes: usize,
    /// Most rows one INSERT may carry.
    #[arg(long, env = "DDB_MAX_ROWS", default_value_t = Limits::default().max_rows_per_insert)]
    pub max_rows_per_insert: usize,
    /// Seconds each database remembers the op_ids it applied (a retry within it is answered
    /// `duplicate`, after any restart, on any node).
    #[arg(long, env = "DDB_OP_ID_WINDOW", default_value_t = defaults::OP_ID_WINDOW_S)]
    pub op_id_window: u64,
    /// At most this many op_ids are remembered per database (the oldest go first).
    #[arg(long, env = "DDB_OP_ID_WINDOW_IDS", default_value_t = defaults::OP_ID_MAX)]
    pub op_id_window_ids: u64,
    /// JetStream's own duplicate window when this node creates the log stream (ms).
    #[arg(
        long,
        env = "DDB_LOG_DUPLICATE_WINDOW_MS",
        default_value_t = StreamSettings::default().duplicate_window.as_millis() as u64
    )]
    pub log_duplicate_window_ms: u64,
    /// Most ops one TRANSACTION may hold.
    #[arg(long, env = "DDB_MAX_TX_OPS", default_value_t = Limits::default().max_tx_ops)]
    pub max_tx_ops: usize,
    /// Most waiting writes committed together (one transaction, one log entry).
    #[arg(long, env = "DDB_MAX_BATCH", default_value_t = defaults::MAX_BATCH)]
    pub max_batch: usize,
    /// While the log keeps bringing entries, a replica applies them at most this often, all
    /// that came in between in one store transaction (0: each as it comes).
    #[arg(long, env = "DDB_APPLY_EVERY_MS", default_value_t = defaults::APPLY_EVERY_MS)]
    pub apply_every_ms: u64,
    /// Page size in bytes of the SQLite database files the node creates (a power of two, 512
    /// to 65536; a file keeps the size it was made with). Small pages make small writes
    /// cheap on the disk; rows of several KiB read faster from bigger ones.
    #[arg(long, env = "DDB_SQLITE_PAGE_SIZE", default_value_t = ddb::store::SQLITE_PAGE_SIZE)]
    pub sqlite_page_size: u32,
    /// A SEARCH or CHECKSUM statement, or a write's statements on the node that takes it,
    /// running longer than this is cancelled and answered `timeout` (0: no limit). Replaying
    /// the log is never cut short.
    #[arg(long, env = "DDB_QUERY_TIMEOUT_MS", default_value_t = defaults::QUERY_TIMEOUT_MS)]
    pub query_timeout_ms: u64,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (off unless given; port 0 picks a
    /// free one, shown in the heartbeat and `ddb status`).
    #[arg(long, env = "DDB_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Log lines as plain text or as JSON objects (one per line, for log shippers).
    #[arg(long, env = "DDB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// CPU priority (Unix nice value) this node lowers itself to at start, all but the thread
    /// that answers `<prefix>.reads`; 0 leaves it as started. Slaves default to 10: applying
    /// the log is background work, and on a host shared with the master or nats-server it
    /// should leave the CPU to the write path; answering readers is not background work.
    #[arg(long, env = "DDB_NICE", allow_negative_numbers = true)]
    pub nice: Option<i32>,
}

impl NodeArgs {
    /// `--nice`, or the role's default.
    pub fn nice_for(&self, role: Role) -> i32 {
        self.nice.unwrap_or(match role {
            Role::Master => 0,
            Role::Slave => defaults::SLAVE_NICE,
        })
    }

    pub fn into_config(self, name: &str) -> NodeConfig {
        let mut cfg = NodeConfig::new(name);
        cfg.nats = self.link.options(None);
        if let Some(store) = &self.store {
            cfg.store = store.clone();
        }
        cfg.prefix = self.link.prefix;
        cfg.heartbeat = Duration::from_millis(self.heartbeat_ms.max(10));
        cfg.failover_after = Duration::from_millis(self.failover_after_ms.max(10));
        cfg.wait_limit = Duration::from_millis(self.wait_ms);
        cfg.stream.replicas = self.log_replicas.max(1);
        cfg.stream.max_age = Duration::from_secs(self.log_max_age_s);
        cfg.stream.max_bytes = self.log_max_bytes;
        cfg.snapshots = ddb::node::snapshots::SnapshotSettings {
            every_entries: self.snapshot_every_entries,
            every: Duration::from_secs(self.snapshot_every_s),
        };
        cfg.limits.max_request_bytes = self.max_request_bytes;
        cfg.limits.max_rows_per_insert = self.max_rows_per_insert;
        cfg.limits.max_tx_ops = self.max_tx_ops.max(1);
        cfg.max_batch = self.max_batch;
        cfg.apply_every = Duration::from_millis(self.apply_every_ms);
        cfg.sqlite_page_size = self.sqlite_page_size;
        cfg.query_timeout =
            (self.query_timeout_ms > 0).then(|| Duration::from_millis(self.query_timeout_ms));
        cfg.metrics_addr = self.metrics_addr.filter(|a| !a.is_empty());
        cfg.op_id_window = Duration::from_secs(self.op_id_window);
        cfg.op_id_max = self.op_id_window_ids.max(1);
        cfg.stream.duplicate_window = Duration::from_millis(self.log_duplicate_window_ms.max(100));
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        node: NodeArgs,
    }

    #[test]
    fn no_flags_give_the_librarys_defaults() {
        let flags = Flags::try_parse_from(["node"]).expect("defaults parse");
        let from_flags = format!("{:?}", flags.node.into_config("n1"));
        let defaults = format!("{:?}", NodeConfig::new("n1"));
        assert_eq!(
            from_flags, defaults,
            "(a DDB_* environment variable changes the flags)"
        );
    }
}
