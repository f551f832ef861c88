//! The node's shared state: its handles (config, store, NATS client, log) and small owned
//! parts with their own methods: `progress` (position and log end), `catalog` (databases
//! and broken ones), op_id memory, per-database cursors, the mode. Tasks that run the node
//! (lifecycle, applier, writer, intake, liveness) use it; it uses none of them.

use super::catalog::Catalog;
use super::config::NodeConfig;
use super::cursor::{CursorGuard, Cursors};
use super::endpoint_stats::Stats;
use super::locks::lock;
use super::log_port::LogPort;
use super::op_ids::OpIds;
use crate::error::{DdbError, ErrorCode};
use crate::heartbeat::{BrokenDb, Mode, Role};
use crate::name::Name;
use crate::op::WriteOp;
use crate::store::Store;
use crate::subjects::Subjects;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub(crate) type NodeRef = Arc<Node>;

pub(crate) struct Node {
    pub role: Role,
    pub cfg: NodeConfig,
    pub store: Arc<dyn Store>,
    pub client: async_nats::Client,
    pub log: Arc<dyn LogPort>,
    pub subjects: Subjects,
    mode: watch::Sender<Mode>,
    pub progress: super::progress::Progress,
    pub catalog: Catalog,
    op_ids: OpIds,
    cursors: Cursors,
    /// The master as last heard: name and when.
    master_seen: Mutex<Option<(String, Instant)>>,
    pub started: Instant,
    /// The server's largest message, read once at start (replies over it become errors).
    pub max_payload: usize,
    /// Where Prometheus metrics are served, if they are.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Request counts per endpoint for the NATS micro protocol.
    pub micro: Stats,
    /// Requests by op and outcome, for Prometheus.
    pub(crate) request_series: super::metrics::RequestSeries,
    /// Snapshots as this node knows them, and the restore it runs (`snapshots`).
    pub snapshots: super::snapshot_state::Snapshots,
}

/// Where this node's log reader resumes: its saved position, or earlier when its store lacks
/// entries below that position (a database file deleted or restored from an older copy), so
/// that those databases are rebuilt from the log. Per-database applied seqs keep the replay
/// exactly-once for everything else.
async fn resume_position(store: &dyn Store, log: &dyn LogPort) -> Result<u64, DdbError> {
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
        log: Arc<dyn LogPort>,
        metrics_addr: Option<std::net::SocketAddr>,
    ) -> Result<NodeRef, DdbError> {
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
        let position = resume_position(store.as_ref(), log.as_ref()).await?;
        let max_payload = client.server_info().max_payload;
        let initial_mode = match role {
            Role::Master => Mode::Starting,
            Role::Slave => Mode::Replica,
        };
        Ok(Arc::new(Node {
            role,
            subjects: Subjects::new(&cfg.prefix),
            store,
            client,
            log,
            mode: watch::Sender::new(initial_mode),
            progress: super::progress::Progress::new(position),
            catalog: Catalog::new(databases, broken),
            op_ids: OpIds::default(),
            cursors: Cursors::default(),
            master_seen: Mutex::new(None),
            started: Instant::now(),
            max_payload,
            metrics_addr,
            micro: Stats::default(),
            request_series: Default::default(),
            snapshots: Default::default(),
            cfg,
        }))
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    pub fn watch_mode(&self) -> watch::Receiver<Mode> {
        self.mode.subscribe()
    }

    pub fn set_mode(&self, mode: Mode) {
        let old = self.mode.send_replace(mode);
        if old != mode {
            tracing::info!(node = %self.cfg.name, from = ?old, to = ?mode, "mode changed");
        }
    }

    /// Every log entry up to this stream seq has been applied here.
    pub fn position(&self) -> u64 {
        self.progress.position()
    }

    /// Holds `db` against the other writer or the log reader.
    pub async fn cursor(&self, db: &Name) -> CursorGuard {
        self.cursors.lock(db).await
    }

    /// Waits until this node has applied the log up to `seq`; `timeout` after `limit`.
    pub async fn wait_position(&self, seq: u64, limit: Duration) -> Result<(), DdbError> {
        self.progress.wait_for(seq, limit).await.map_err(|reached| {
            DdbError::new(
                ErrorCode::Timeout,
                format!(
                    "node {} has applied the log up to seq {reached} and did not reach {seq} within {} ms",
                    self.cfg.name,
                    limit.as_millis()
                ),
            )
        })
    }

    /// The seq of the entry that holds `op_id`, if this node saw it recently.
    pub fn seq_of_op_id(&self, op_id: &str) -> Option<u64> {
        self.op_ids.seq_of(op_id)
    }

    /// Notes the op_ids of the entry at `seq` that every node passes over.
    pub fn passed_over<'a>(&self, seq: u64, op_ids: impl IntoIterator<Item = &'a str>) {
        for id in op_ids {
            self.op_ids.remember_passed_over(id, seq);
        }
    }

    /// Whether this node passed over the entry at `seq` holding `op_id` (recently).
    pub fn op_id_passed_over_at(&self, op_id: &str, seq: u64) -> bool {
        self.op_ids.passed_over_at(op_id, seq)
    }

    /// The bookkeeping after ops of `db` were committed here, by the writer or the log
    /// reader alike: each op with the seq of its entry; `last` is the last entry's seq.
    pub fn committed<'a>(
        &self,
        db: &Name,
        last: u64,
        ops: impl IntoIterator<Item = (u64, &'a WriteOp, Option<&'a str>)>,
    ) {
        for (seq, op, op_id) in ops {
            match op {
                WriteOp::CreateDb { db } => self.catalog.note_database(db, true),
                WriteOp::DropDb { db } => self.catalog.note_database(db, false),
                _ => {}
            }
            if let Some(id) = op_id {
                self.op_ids.remember(id, seq);
            }
        }
        // Once per commit, not per entry: the label costs an allocation.
        metrics::gauge!(super::metrics::DB_APPLIED_SEQ, "db" => db.to_string()).set(last as f64);
    }

    pub fn is_broken(&self, db: &str) -> bool {
        self.catalog.is_broken(db)
    }

    /// `db` stops replicating on this node: the entry at `seq` cannot be applied here.
    pub fn mark_broken(&self, db: &Name, seq: u64, error: &DdbError) {
        if self.catalog.mark_broken(db, seq, error) {
            tracing::error!(
                node = %self.cfg.name, db = %db, seq, error = %error,
                "a log entry cannot be applied here: this database stops replicating on this node until repaired"
            );
        }
    }

    /// Notes a heartbeat from master `name`, heard at `at`.
    pub fn heard_master(&self, name: &str, at: Instant) {
        *lock(&self.master_seen) = Some((name.to_owned(), at));
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
                let master = lock(&self.master_seen)
                    .as_ref()
                    .map(|(n, _)| n.clone())
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
}

#[cfg(test)]
mod tests {
    use super::super::test_node::test_node;
    use super::*;
    use crate::op::{parse_request, Limits, Op};

    fn write(json: &str) -> (WriteOp, Option<String>) {
        let request = parse_request(json.as_bytes(), &Limits::default()).expect("valid request");
        let Op::Write(op) = request.op else {
            panic!("not a write: {json}")
        };
        (op, request.op_id)
    }

    #[tokio::test]
    async fn a_node_starts_in_its_roles_mode() {
        assert_eq!(test_node(Role::Master).await.node.mode(), Mode::Starting);
        assert_eq!(test_node(Role::Slave).await.node.mode(), Mode::Replica);
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
        t.node.heard_master("m7", Instant::now());
        let e = t.node.write_refusal().expect("refused");
        assert!(e.message.contains("master m7 is alive"), "{}", e.message);
        assert!(e.message.contains("ddb.node.m7"), "{}", e.message);
    }

    #[tokio::test]
    async fn committing_notes_databases_and_op_ids_at_their_entries_seq() {
        let t = test_node(Role::Slave).await;
        let shop = Name::parse_db("shop").unwrap();
        let (create, create_id) = write(r#"{"op":"CREATE_DB","db":"shop","op_id":"c-1"}"#);
        let (insert, insert_id) =
            write(r#"{"op":"INSERT","db":"shop","table":"t","data":{"id":1},"op_id":"i-1"}"#);
        t.node.committed(
            &shop,
            4,
            [
                (3, &create, create_id.as_deref()),
                (4, &insert, insert_id.as_deref()),
            ],
        );
        assert_eq!(t.node.catalog.databases(), ["shop"]);
        assert_eq!(t.node.seq_of_op_id("c-1"), Some(3));
        assert_eq!(t.node.seq_of_op_id("i-1"), Some(4));
        let (drop, _) = write(r#"{"op":"DROP_DB","db":"shop"}"#);
        t.node.committed(&shop, 5, [(5, &drop, None)]);
        assert!(t.node.catalog.databases().is_empty());
    }

    #[tokio::test]
    async fn marking_a_database_broken_keeps_the_first_failure() {
        let t = test_node(Role::Slave).await;
        let db = Name::parse_db("shop").unwrap();
        t.node.mark_broken(&db, 12, &DdbError::internal("disk"));
        t.node.mark_broken(&db, 15, &DdbError::internal("again"));
        assert!(t.node.is_broken("shop"));
        assert_eq!(t.node.catalog.broken()[0].seq, 12);
    }

    #[tokio::test]
    async fn a_wait_past_the_position_times_out_saying_how_far_it_got() {
        let t = test_node(Role::Slave).await;
        t.node.progress.advance_to(5);
        t.node.wait_position(5, Duration::ZERO).await.unwrap();
        let e = t
            .node
            .wait_position(6, Duration::ZERO)
            .await
            .expect_err("not reached");
        assert_eq!(e.code, ErrorCode::Timeout);
        assert!(e.message.contains("up to seq 5"), "{}", e.message);
    }
}
