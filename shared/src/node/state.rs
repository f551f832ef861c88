//! The node's shared state and its lifecycle: start the tasks, wait for shutdown, stop them
//! in order.

use super::{applier, intake, liveness, writer, Mode, NodeConfig, Role};
use crate::error::{DdbError, ErrorCode};
use crate::heartbeat::BrokenDb;
use crate::log::Log;
use crate::name::Name;
use crate::store::Store;
use crate::subjects::Subjects;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Mutex as AsyncMutex, OwnedMutexGuard};
use tokio_util::sync::CancellationToken;

/// How many recent op_ids a node remembers (beyond JetStream's duplicate window).
const OP_ID_MEMORY: usize = 100_000;

pub(crate) struct Node {
    pub role: Role,
    pub cfg: NodeConfig,
    pub store: Arc<dyn Store>,
    pub client: async_nats::Client,
    pub log: Log,
    pub subjects: Subjects,
    pub mode: watch::Sender<Mode>,
    /// Every log entry up to this stream seq has been applied (or found already applied).
    pub position: watch::Sender<u64>,
    /// The log's last seq as last seen (from delivered entries or the stream's info).
    pub log_seq: AtomicU64,
    cursors: Mutex<HashMap<Name, Arc<AsyncMutex<Cursor>>>>,
    pub broken: Mutex<BTreeMap<String, BrokenDb>>,
    pub databases: Mutex<BTreeSet<String>>,
    op_ids: Mutex<OpIdMemory>,
    /// The master as last heard: name and when.
    pub master_seen: Mutex<Option<(String, Instant)>>,
    pub started: Instant,
    pub writers: writer::Writers,
    /// The server's largest message, read once at start (replies over it become errors).
    pub max_payload: usize,
    /// Where Prometheus metrics are served, if they are.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Request counts per endpoint for the NATS micro protocol.
    pub micro: super::micro::Stats,
}

/// Per-database serialisation point between the writer and the log reader, with the
/// database's applied seq once known.
pub(crate) struct Cursor {
    applied: Option<u64>,
}

pub(crate) struct CursorGuard {
    db: Name,
    guard: OwnedMutexGuard<Cursor>,
}

impl CursorGuard {
    pub async fn applied(&mut self, store: &dyn Store) -> Result<u64, DdbError> {
        if let Some(seq) = self.guard.applied {
            return Ok(seq);
        }
        let seq = store.applied_seq(&self.db).await?;
        self.guard.applied = Some(seq);
        Ok(seq)
    }

    pub fn set_applied(&mut self, seq: u64) {
        self.guard.applied = Some(seq);
        metrics::gauge!(super::metrics::DB_APPLIED_SEQ, "db" => self.db.to_string())
            .set(seq as f64);
    }

    /// Forgets the cached seq, so the next reader asks the store (after a failed commit).
    pub fn invalidate(&mut self) {
        self.guard.applied = None;
    }
}

#[derive(Default)]
struct OpIdMemory {
    seqs: HashMap<String, u64>,
    order: VecDeque<String>,
}

/// Where this node's log reader resumes: its saved position, or earlier when its store lacks
/// entries below that position (a database file deleted or restored from an older copy), so
/// that those databases are rebuilt from the log. Per-database applied seqs keep the replay
/// exactly-once for everything else.
async fn resume_position(store: &dyn Store, log: &Log) -> Result<u64, DdbError> {
    let saved = store.log_position().await?;
    if saved == 0 {
        return Ok(0);
    }
    let in_log = match log.databases().await {
        Ok(dbs) => dbs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot compare the store with the log; resuming at the saved position");
            return Ok(saved);
        }
    };
    let mut resume = saved;
    for (db, last) in in_log {
        if last > saved {
            continue; // not reached yet: the reader gets there anyway
        }
        // A database that cannot be read is reported broken by the caller; the others go on.
        let Ok(applied) = store.applied_seq(&db).await else {
            continue;
        };
        if applied < last {
            tracing::warn!(db = %db, applied, log_last = last, "the store is behind the log for this database; replaying it");
            resume = resume.min(applied);
        }
    }
    Ok(resume)
}

impl Node {
    pub async fn new(
        role: Role,
        cfg: NodeConfig,
        store: Arc<dyn Store>,
        client: async_nats::Client,
        log: Log,
        metrics_addr: Option<std::net::SocketAddr>,
    ) -> Result<Arc<Node>, DdbError> {
        let databases = store
            .databases()
            .await?
            .into_iter()
            .map(|n| n.to_string())
            .collect();
        // A database that cannot be opened (corrupt file, refused cleanup) stops only itself:
        // it is reported broken and the node serves the rest.
        let broken: BTreeMap<String, BrokenDb> = store
            .unusable()
            .into_iter()
            .map(|(db, e)| {
                let b = BrokenDb {
                    db: db.to_string(),
                    seq: 1,
                    error: format!("cannot open this database at start: {e}"),
                };
                (db.to_string(), b)
            })
            .collect();
        let position = resume_position(store.as_ref(), &log).await?;
        let subjects = log.subjects().clone();
        let max_payload = client.server_info().max_payload;
        let initial_mode = match role {
            Role::Master => Mode::Starting,
            Role::Slave => Mode::Replica,
        };
        Ok(Arc::new(Node {
            role,
            subjects,
            store,
            client,
            log,
            mode: watch::Sender::new(initial_mode),
            position: watch::Sender::new(position),
            log_seq: AtomicU64::new(position),
            cursors: Mutex::default(),
            broken: Mutex::new(broken),
            databases: Mutex::new(databases),
            op_ids: Mutex::default(),
            master_seen: Mutex::new(None),
            started: Instant::now(),
            writers: writer::Writers::default(),
            max_payload,
            metrics_addr,
            micro: Default::default(),
            cfg,
        }))
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    pub fn set_mode(&self, mode: Mode) {
        let old = self.mode.send_replace(mode);
        if old != mode {
            tracing::info!(node = %self.cfg.name, from = ?old, to = ?mode, "mode changed");
        }
    }

    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    pub fn note_log_seq(&self, seq: u64) {
        self.log_seq.fetch_max(seq, Ordering::Relaxed);
    }

    pub async fn cursor(&self, db: &Name) -> CursorGuard {
        let lock = {
            let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
            cursors
                .entry(db.clone())
                .or_insert_with(|| Arc::new(AsyncMutex::new(Cursor { applied: None })))
                .clone()
        };
        CursorGuard {
            db: db.clone(),
            guard: lock.lock_owned().await,
        }
    }

    /// Waits until this node has applied the log up to `seq`; `timeout` after `limit`.
    pub async fn wait_position(&self, seq: u64, limit: Duration) -> Result<(), DdbError> {
        let mut rx = self.position.subscribe();
        let reached = tokio::time::timeout(limit, rx.wait_for(|p| *p >= seq)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(DdbError::new(
                ErrorCode::Timeout,
                format!(
                    "node {} has applied the log up to seq {} and did not reach {seq} within {} ms",
                    self.cfg.name,
                    self.position(),
                    limit.as_millis()
                ),
            )),
        }
    }

    pub fn remember_op_id(&self, op_id: &str, seq: u64) {
        let mut m = self.op_ids.lock().unwrap_or_else(|p| p.into_inner());
        if m.seqs.insert(op_id.to_owned(), seq).is_none() {
            m.order.push_back(op_id.to_owned());
            if m.order.len() > OP_ID_MEMORY {
                if let Some(old) = m.order.pop_front() {
                    m.seqs.remove(&old);
                }
            }
        }
    }

    pub fn seq_of_op_id(&self, op_id: &str) -> Option<u64> {
        let m = self.op_ids.lock().unwrap_or_else(|p| p.into_inner());
        m.seqs.get(op_id).copied()
    }

    pub fn is_broken(&self, db: &str) -> bool {
        self.broken
            .lock()
            .map(|b| b.contains_key(db))
            .unwrap_or(false)
    }

    pub fn mark_broken(&self, db: &Name, seq: u64, error: &DdbError) {
        tracing::error!(
            node = %self.cfg.name, db = %db, seq, error = %error,
            "a log entry cannot be applied here: this database stops replicating on this node until repaired"
        );
        if let Ok(mut b) = self.broken.lock() {
            b.entry(db.to_string()).or_insert(BrokenDb {
                db: db.to_string(),
                seq,
                error: error.to_string(),
            });
        }
    }

    pub fn note_database(&self, db: &Name, exists: bool) {
        if let Ok(mut d) = self.databases.lock() {
            if exists {
                d.insert(db.to_string());
            } else {
                d.remove(db.as_str());
            }
        }
    }

    /// Whether this node takes writes now, and if not, why.
    pub fn write_refusal(&self) -> Option<DdbError> {
        match self.mode() {
            Mode::Master | Mode::Failover => None,
            Mode::Starting => Some(DdbError::unavailable(format!(
                "node {} is starting and still applying the log; retry shortly",
                self.cfg.name
            ))),
            Mode::Replica => {
                let master = self
                    .master_seen
                    .lock()
                    .ok()
                    .and_then(|m| m.as_ref().map(|(n, _)| n.clone()))
                    .unwrap_or_else(|| "master".to_owned());
                Some(DdbError::new(
                    ErrorCode::ReadOnly,
                    format!(
                        "node {} is a read-only replica while master {master} is alive; send writes to {} or {}",
                        self.cfg.name,
                        self.subjects.ops(),
                        self.subjects.node(&master)
                    ),
                ))
            }
        }
    }

    /// Runs every task until `shutdown`, then stops them in order.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl Future<Output = ()> + Send,
        metrics: Option<(
            tokio::net::TcpListener,
            metrics_exporter_prometheus::PrometheusHandle,
        )>,
    ) {
        let stop = CancellationToken::new();
        let stop_intake = CancellationToken::new();
        let applier = tokio::spawn(applier::run(self.clone(), stop.clone()));
        let liveness = tokio::spawn(liveness::run(self.clone(), stop.clone()));
        let micro = tokio::spawn(super::micro::run(self.clone(), stop_intake.clone()));
        if let Some((listener, handle)) = metrics {
            tokio::spawn(super::metrics::serve(listener, handle, stop.clone()));
        }
        let intake = tokio::spawn(intake::run(self.clone(), stop_intake.clone()));
        tracing::info!(node = %self.cfg.name, role = ?self.role, store = self.store.kind(), position = self.position(), "node started");

        if self.role == Role::Master {
            let node = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                node.catch_up_then_open().await;
                drop(stop);
            });
        }

        shutdown.await;
        tracing::info!(node = %self.cfg.name, "shutting down: stopping intake");
        stop_intake.cancel();
        let _ = intake.await;
        let _ = micro.await;
        self.writers.drain(Duration::from_secs(10)).await;
        stop.cancel();
        let _ = applier.await;
        let _ = liveness.await;
        if let Err(e) = self.client.drain().await {
            tracing::warn!(error = %e, "draining the NATS connection failed");
        }
        if let Err(e) = self.store.close().await {
            tracing::warn!(error = %e, "closing the store failed");
        }
        tracing::info!(node = %self.cfg.name, position = self.position(), "node stopped");
    }

    /// A (re)starting master applies the log to its end before it takes writes.
    async fn catch_up_then_open(&self) {
        loop {
            match self.log.last_seq().await {
                Ok(target) => {
                    self.note_log_seq(target);
                    let mut rx = self.position.subscribe();
                    if rx.wait_for(|p| *p >= target).await.is_ok() {
                        break;
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the log's end; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        self.set_mode(Mode::Master);
    }
}
