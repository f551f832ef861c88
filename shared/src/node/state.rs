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

#[cfg(test)]
mod tests {
    use super::super::test_node::test_node;
    use super::*;

    #[tokio::test]
    async fn a_node_starts_in_its_roles_mode() {
        assert_eq!(test_node(Role::Master).await.node.mode(), Mode::Starting);
        assert_eq!(test_node(Role::Slave).await.node.mode(), Mode::Replica);
    }

    #[tokio::test]
    async fn op_ids_are_remembered_with_their_seq() {
        let t = test_node(Role::Slave).await;
        assert_eq!(t.node.seq_of_op_id("a"), None);
        t.node.remember_op_id("a", 7);
        t.node.remember_op_id("b", 9);
        assert_eq!(t.node.seq_of_op_id("a"), Some(7));
        assert_eq!(t.node.seq_of_op_id("b"), Some(9));
        assert_eq!(t.node.seq_of_op_id("c"), None);
    }

    #[tokio::test]
    async fn op_id_memory_forgets_the_oldest_past_its_size() {
        let t = test_node(Role::Slave).await;
        let id = |i: usize| format!("op-{i}");
        for i in 0..OP_ID_MEMORY {
            t.node.remember_op_id(&id(i), i as u64 + 1);
        }
        assert_eq!(t.node.seq_of_op_id(&id(0)), Some(1));
        t.node.remember_op_id(&id(OP_ID_MEMORY), 0);
        assert_eq!(t.node.seq_of_op_id(&id(0)), None);
        assert_eq!(t.node.seq_of_op_id(&id(1)), Some(2));
        // Oldest first, one per new op_id.
        for i in OP_ID_MEMORY + 1..OP_ID_MEMORY + 5 {
            t.node.remember_op_id(&id(i), i as u64 + 1);
        }
        for i in 1..5 {
            assert_eq!(t.node.seq_of_op_id(&id(i)), None, "{}", id(i));
        }
        assert_eq!(t.node.seq_of_op_id(&id(5)), Some(6));
        assert_eq!(
            t.node.seq_of_op_id(&id(OP_ID_MEMORY + 4)),
            Some(OP_ID_MEMORY as u64 + 5)
        );
        let m = t.node.op_ids.lock().unwrap();
        assert_eq!((m.seqs.len(), m.order.len()), (OP_ID_MEMORY, OP_ID_MEMORY));
    }

    #[tokio::test]
    async fn an_op_id_remembered_again_keeps_its_first_place() {
        // Its seq is updated, but eviction follows when it was first seen: the memory holds
        // each op_id once, so its size stays bounded.
        let t = test_node(Role::Slave).await;
        t.node.remember_op_id("again", 1);
        for i in 1..OP_ID_MEMORY {
            t.node.remember_op_id(&format!("op-{i}"), i as u64 + 1);
        }
        t.node.remember_op_id("again", 500_000);
        assert_eq!(t.node.seq_of_op_id("again"), Some(500_000));
        t.node.remember_op_id("one-more", 500_001);
        assert_eq!(t.node.seq_of_op_id("again"), None);
        assert_eq!(t.node.seq_of_op_id("op-1"), Some(2));
    }

    #[tokio::test]
    async fn writes_are_taken_in_master_and_failover_modes_only() {
        let t = test_node(Role::Slave).await;
        for mode in [Mode::Master, Mode::Failover] {
            t.node.set_mode(mode);
            assert!(t.node.write_refusal().is_none(), "{mode:?}");
        }
        t.node.set_mode(Mode::Starting);
        let e = t.node.write_refusal().expect("refused while starting");
        assert_eq!(e.code, ErrorCode::Unavailable);
    }

    #[tokio::test]
    async fn a_replica_refuses_writes_naming_the_master_it_heard() {
        let t = test_node(Role::Slave).await;
        let e = t.node.write_refusal().expect("refused");
        assert_eq!(e.code, ErrorCode::ReadOnly);
        assert!(
            e.message.contains("master master is alive"),
            "{}",
            e.message
        );
        *t.node.master_seen.lock().unwrap() = Some(("m7".to_owned(), Instant::now()));
        let e = t.node.write_refusal().expect("refused");
        assert!(e.message.contains("master m7 is alive"), "{}", e.message);
        assert!(e.message.contains("ddb.node.m7"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_broken_database_keeps_its_first_failure() {
        // The first entry that failed is the one a repair must start from.
        let t = test_node(Role::Slave).await;
        let db = Name::parse_db("shop").unwrap();
        assert!(!t.node.is_broken("shop"));
        t.node.mark_broken(&db, 12, &DdbError::internal("disk"));
        t.node.mark_broken(&db, 15, &DdbError::internal("again"));
        assert!(t.node.is_broken("shop"));
        assert!(!t.node.is_broken("other"));
        let b = t.node.broken.lock().unwrap()["shop"].clone();
        assert_eq!(b.seq, 12);
        assert!(b.error.contains("disk"), "{}", b.error);
    }

    #[tokio::test]
    async fn databases_follow_create_and_drop() {
        let t = test_node(Role::Slave).await;
        let db = Name::parse_db("shop").unwrap();
        t.node.note_database(&db, true);
        t.node.note_database(&db, true);
        assert_eq!(
            t.node.databases.lock().unwrap().iter().collect::<Vec<_>>(),
            ["shop"]
        );
        t.node.note_database(&db, false);
        assert!(t.node.databases.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_log_end_seen_only_moves_forward() {
        let t = test_node(Role::Slave).await;
        t.node.note_log_seq(10);
        t.node.note_log_seq(4);
        assert_eq!(t.node.log_seq.load(Ordering::Relaxed), 10);
    }

    #[tokio::test]
    async fn waiting_for_a_position_already_reached_returns_at_once() {
        let t = test_node(Role::Slave).await;
        t.node.position.send_replace(5);
        t.node.wait_position(5, Duration::ZERO).await.unwrap();
        t.node.wait_position(3, Duration::ZERO).await.unwrap();
        let e = t
            .node
            .wait_position(6, Duration::ZERO)
            .await
            .expect_err("not reached");
        assert_eq!(e.code, ErrorCode::Timeout);
        assert!(e.message.contains("up to seq 5"), "{}", e.message);
    }
}
