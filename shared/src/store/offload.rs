//! Every store call runs on threads the store owns, never on the node's event loop: a
//! statement that runs for a minute (a whole-table SEARCH, a CREATE_INDEX on millions of rows)
//! delays nothing but itself, and heartbeats, intake and the log reader keep their rhythm.
//!
//! The store gets its own tokio runtime (SQL Server's I/O is driven by its worker) and threads
//! that run the backend's futures to completion (`block_on`), so SQLite's synchronous calls
//! block only them:
//! - each database has a writer thread fed by a bounded channel: its write transactions and
//!   applies, one after another as the node sends them. A thread that is already awake and
//!   waiting on its channel takes the next call in microseconds, where a pool hand-off per call
//!   (`spawn_blocking`) measured about twice the 1-client write latency;
//! - reads go to one queue that `read_threads` reader threads pull from, each on its own WAL
//!   connection, beside the writers. A reader takes the next read itself as soon as it is
//!   done: handing reads out one at a time from the event loop (a permit, then a pool thread)
//!   made 64 concurrent point reads a ping-pong between the two and cost ~3/4 of their rate.
//!
//! A write transaction costs two crossings: its first `execute` also begins it, and `commit`.
//! On SQLite, whose calls block and return, two kinds of call cost none, because they take
//! less time than the hand-over and are sure to stay small: a lookup by the whole primary key
//! (`Store::search_at_once`), and a write transaction whose batches are INSERTs of at most
//! [`AT_ONCE_ROWS`] rows (the single-row writes and their group commits), which begins,
//! executes and commits on the caller's thread. Anything else crosses.

use super::{Applied, Page, Store, WriteTxn};
use crate::error::DdbError;
use crate::name::Name;
use crate::op::{Search, WriteOp};
use crate::reply::TableChecksum;
use crate::snapshot::{ProgressRef, SnapshotInfo, SnapshotSink, SnapshotSource};
use async_trait::async_trait;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::runtime::{Handle, Runtime};

/// The store's runtime, its writer threads and the bound on concurrent reads.
#[derive(Clone)]
pub(crate) struct Threads {
    /// Held, not read: the last `Threads` dropped shuts the runtime down.
    _runtime: Arc<OwnedRuntime>,
    handle: Handle,
    /// The reads' queue; its reader threads end when every sender is gone.
    reads: mpsc::Sender<Call>,
    /// Writer threads by database name; "" (no database is named so) is the catalog's.
    writers: Arc<Mutex<HashMap<String, mpsc::SyncSender<Call>>>>,
    node: Arc<str>,
}

/// One call for a writer or reader thread.
type Call = Box<dyn FnOnce() + Send>;

/// Most queued reads one reader thread takes at once.
const READ_BATCH: usize = 8;

/// Calls queued for one writer thread before the node waits (the node sends one at a time per
/// database, so this only bounds a burst of catalog calls).
const WRITER_QUEUE: usize = 64;

/// Shut down without waiting when the store goes: dropping a runtime blocks, which tokio
/// refuses inside the node's own runtime; a statement still running finishes on its thread.
struct OwnedRuntime(Mutex<Option<Runtime>>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        let rt = self
            .0
            .get_mut()
            .map(Option::take)
            .unwrap_or_else(|p| p.into_inner().take());
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
    }
}

impl Threads {
    pub fn new(node: &str, read_threads: usize) -> Result<Threads, DdbError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(256)
            .thread_name(format!("ddb-store-{node}"))
            .enable_all()
            .build()
            .map_err(|e| DdbError::internal(format!("cannot start the store's threads: {e}")))?;
        let handle = runtime.handle().clone();
        let (reads, queue) = mpsc::channel::<Call>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..read_threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("ddb-read-{node}-{i}"))
                .spawn(move || loop {
                    // One reader waits on the queue while the others wait for the lock. Under
                    // load it takes a few queued reads at once: one wake-up and one lock for
                    // several reads, while the other readers take the rest.
                    let batch: Vec<Call> = {
                        let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
                        let Ok(first) = queue.recv() else { return };
                        std::iter::once(first)
                            .chain(
                                std::iter::from_fn(|| queue.try_recv().ok()).take(READ_BATCH - 1),
                            )
                            .collect()
                    };
                    for call in batch {
                        call();
                    }
                })
                .map_err(|e| DdbError::internal(format!("cannot start a read thread: {e}")))?;
        }
        Ok(Threads {
            _runtime: Arc::new(OwnedRuntime(Mutex::new(Some(runtime)))),
            handle,
            reads,
            writers: Arc::default(),
            node: node.into(),
        })
    }

    /// The writer thread of `db` (`None`: the node catalog's), started on first use.
    fn writer(&self, db: Option<&Name>) -> Result<mpsc::SyncSender<Call>, DdbError> {
        let key = db.map_or("", Name::as_str);
        let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = writers.get(key) {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::sync_channel::<Call>(WRITER_QUEUE);
        let name = match db {
            Some(db) => format!("ddb-store-{}-{db}", self.node),
            None => format!("ddb-store-{}", self.node),
        };
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                // Ends when the store (every sender) is gone.
                while let Ok(call) = rx.recv() {
                    call();
                }
            })
            .map_err(|e| DdbError::internal(format!("cannot start a store thread: {e}")))?;
        writers.insert(key.to_owned(), tx.clone());
        Ok(tx)
    }

    /// Runs `fut` to completion on the writer thread of `db` (`None`: the catalog's).
    pub async fn run_on<T, F>(&self, db: Option<&Name>, fut: F) -> Result<T, DdbError>
    where
        F: Future<Output = Result<T, DdbError>> + Send + 'static,
        T: Send + 'static,
    {
        let (call, result) = self.call(fut);
        let tx = self.writer(db)?;
        // The queue is bounded and almost always empty; a full one waits off the event loop.
        let call = match tx.try_send(call) {
            Ok(()) => None,
            Err(mpsc::TrySendError::Full(call)) => Some(call),
            Err(mpsc::TrySendError::Disconnected(_)) => {
                return Err(DdbError::unavailable("the store is closing"))
            }
        };
        if let Some(call) = call {
            tokio::task::spawn_blocking(move || tx.send(call))
                .await
                .map_err(|e| DdbError::internal(format!("a store thread failed: {e}")))?
                .map_err(|_| DdbError::unavailable("the store is closing"))?;
        }
        answer(result).await
    }

    /// `fut` as a call for a store thread, and where its result will come.
    fn call<T, F>(&self, fut: F) -> (Call, tokio::sync::oneshot::Receiver<Result<T, DdbError>>)
    where
        F: Future<Output = Result<T, DdbError>> + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let handle = self.handle.clone();
        let call: Call = Box::new(move || {
            let _ = done.send(handle.block_on(fut));
        });
        (call, result)
    }

    /// Runs `fut` on the catalog's writer thread.
    pub async fn run_write<T, F>(&self, fut: F) -> Result<T, DdbError>
    where
        F: Future<Output = Result<T, DdbError>> + Send + 'static,
        T: Send + 'static,
    {
        self.run_on(None, fut).await
    }

    /// Runs `fut` on a thread of its own, for calls that take as long as a whole database
    /// (snapshots, restores): the read threads stay free for point reads, and the writer
    /// threads for the transactions the call may wait for.
    pub async fn run_alone<T, F>(&self, what: &str, fut: F) -> Result<T, DdbError>
    where
        F: Future<Output = Result<T, DdbError>> + Send + 'static,
        T: Send + 'static,
    {
        let (call, result) = self.call(fut);
        std::thread::Builder::new()
            .name(format!("ddb-{what}-{}", self.node))
            .spawn(call)
            .map_err(|e| DdbError::internal(format!("cannot start a {what} thread: {e}")))?;
        answer(result).await
    }

    /// Runs `fut` on one of the read threads.
    pub async fn run_read<T, F>(&self, fut: F) -> Result<T, DdbError>
    where
        F: Future<Output = Result<T, DdbError>> + Send + 'static,
        T: Send + 'static,
    {
        let (call, result) = self.call(fut);
        self.reads
            .send(call)
            .map_err(|_| DdbError::unavailable("the store is closing"))?;
        answer(result).await
    }
}

/// The result of a call, once its store thread has sent it.
async fn answer<T>(
    result: tokio::sync::oneshot::Receiver<Result<T, DdbError>>,
) -> Result<T, DdbError> {
    result
        .await
        .map_err(|_| DdbError::internal("a store thread stopped before answering"))?
}

/// A store whose every call runs on its [`Threads`].
pub(crate) struct Offloaded {
    inner: Arc<dyn Store>,
    threads: Threads,
}

impl Offloaded {
    pub fn new(inner: Arc<dyn Store>, threads: Threads) -> Self {
        Offloaded { inner, threads }
    }
}

#[async_trait]
impl Store for Offloaded {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn begin(
        &self,
        db: &Name,
        op_timeout: Option<Duration>,
    ) -> Result<Box<dyn WriteTxn>, DdbError> {
        Ok(Box::new(OffloadedTxn {
            store: self.inner.clone(),
            threads: self.threads.clone(),
            db: db.clone(),
            state: TxnState::NotBegun(db.clone(), op_timeout),
            op_ids: Vec::new(),
            at_once: self.inner.calls_block(),
        }))
    }

    async fn search(&self, search: &Search, budget: usize) -> Result<Page, DdbError> {
        if let Some(page) = self.search_at_once(search, budget) {
            return page;
        }
        let (store, search) = (self.inner.clone(), search.clone());
        self.threads
            .run_read(async move { store.search(&search, budget).await })
            .await
    }

    fn search_at_once(&self, search: &Search, budget: usize) -> Option<Result<Page, DdbError>> {
        self.inner.search_at_once(search, budget)
    }

    fn calls_block(&self) -> bool {
        self.inner.calls_block()
    }

    async fn checksum(
        &self,
        db: &Name,
        table: Option<&Name>,
    ) -> Result<Vec<TableChecksum>, DdbError> {
        let (store, db, table) = (self.inner.clone(), db.clone(), table.cloned());
        self.threads
            .run_read(async move { store.checksum(&db, table.as_ref()).await })
            .await
    }

    async fn applied_seq(&self, db: &Name) -> Result<u64, DdbError> {
        let (store, name) = (self.inner.clone(), db.clone());
        self.threads
            .run_on(Some(db), async move { store.applied_seq(&name).await })
            .await
    }

    async fn op_id_seq(&self, db: &Name, op_id: &str) -> Result<Option<u64>, DdbError> {
        let (store, db, op_id) = (self.inner.clone(), db.clone(), op_id.to_owned());
        self.threads
            .run_read(async move { store.op_id_seq(&db, &op_id).await })
            .await
    }

    fn unusable(&self) -> Vec<(Name, DdbError)> {
        self.inner.unusable()
    }

    async fn databases(&self) -> Result<Vec<Name>, DdbError> {
        let store = self.inner.clone();
        self.threads
            .run_write(async move { store.databases().await })
            .await
    }

    async fn log_position(&self) -> Result<u64, DdbError> {
        let store = self.inner.clone();
        self.threads
            .run_write(async move { store.log_position().await })
            .await
    }

    async fn set_log_position(&self, seq: u64) -> Result<(), DdbError> {
        let store = self.inner.clone();
        self.threads
            .run_write(async move { store.set_log_position(seq).await })
            .await
    }

    async fn tables(&self, db: &Name) -> Result<Vec<Name>, DdbError> {
        let (store, db) = (self.inner.clone(), db.clone());
        self.threads
            .run_read(async move { store.tables(&db).await })
            .await
    }

    async fn snapshot(
        &self,
        db: &Name,
        out: SnapshotSink,
        progress: ProgressRef,
    ) -> Result<SnapshotInfo, DdbError> {
        let (store, db) = (self.inner.clone(), db.clone());
        self.threads
            .run_alone("snapshot", async move {
                store.snapshot(&db, out, progress).await
            })
            .await
    }

    async fn restore(
        &self,
        db: &Name,
        input: SnapshotSource,
        progress: ProgressRef,
    ) -> Result<SnapshotInfo, DdbError> {
        let (store, db) = (self.inner.clone(), db.clone());
        self.threads
            .run_alone("restore", async move {
                store.restore(&db, input, progress).await
            })
            .await
    }

    async fn close(&self) -> Result<(), DdbError> {
        let store = self.inner.clone();
        self.threads
            .run_write(async move { store.close().await })
            .await
    }
}

enum TxnState {
    NotBegun(Name, Option<Duration>),
    Open(Box<dyn WriteTxn>),
    /// Lost to a failed crossing (a panicked store thread).
    Gone,
}

struct OffloadedTxn {
    store: Arc<dyn Store>,
    threads: Threads,
    db: Name,
    state: TxnState,
    /// Handed to the store's transaction with the commit (no crossing of their own).
    op_ids: Vec<String>,
    /// Whether this transaction still runs on the caller's thread: the store's calls block
    /// (SQLite) and everything executed so far was small (see [`small_inserts`]). Cleared by
    /// the first batch that is not; from then on it crosses like any other.
    at_once: bool,
}

/// Most rows a batch of INSERTs may carry and still run on the caller's thread: a few hundred
/// microseconds of SQLite, less than the four thread wake-ups of executing and committing on
/// a store thread, which were most of a single write's latency.
const AT_ONCE_ROWS: usize = 256;

fn small_inserts(ops: &[Arc<WriteOp>]) -> bool {
    let mut rows = 0;
    ops.iter().all(|op| match op.as_ref() {
        WriteOp::Insert(i) => {
            rows += i.rows.len();
            rows <= AT_ONCE_ROWS
        }
        _ => false,
    })
}

impl OffloadedTxn {
    /// Runs `ops` here and now; `None` when that cannot be done without waiting (the
    /// database's connection is busy), and nothing has run.
    fn execute_at_once(&mut self, ops: &[Arc<WriteOp>]) -> Option<Vec<Result<Applied, DdbError>>> {
        use futures::FutureExt;
        if let TxnState::NotBegun(db, timeout) = &self.state {
            // Pending only while waiting for the connection: nothing has begun.
            match self.store.begin(db, *timeout).now_or_never()? {
                Ok(t) => self.state = TxnState::Open(t),
                Err(e) => return Some(ops.iter().map(|_| Err(e.clone())).collect()),
            }
        }
        let TxnState::Open(txn) = &mut self.state else {
            return None;
        };
        match txn.execute(ops.to_vec()).now_or_never() {
            Some(results) => Some(results),
            // Statements of a blocking store do not wait; if one ever did, what ran of the
            // batch is unknown, so the transaction is given up rather than run twice.
            None => {
                self.state = TxnState::Gone;
                let e = DdbError::internal("a store call meant to run at once had to wait");
                Some(ops.iter().map(|_| Err(e.clone())).collect())
            }
        }
    }
}

#[async_trait]
impl WriteTxn for OffloadedTxn {
    async fn execute(&mut self, ops: Vec<Arc<WriteOp>>) -> Vec<Result<Applied, DdbError>> {
        if self.at_once && small_inserts(&ops) {
            if let Some(results) = self.execute_at_once(&ops) {
                return results;
            }
        }
        self.at_once = false;
        let state = std::mem::replace(&mut self.state, TxnState::Gone);
        let store = self.store.clone();
        let n = ops.len();
        let db = self.db.clone();
        let crossed = self
            .threads
            .run_on(Some(&db), async move {
                let mut txn = match state {
                    TxnState::Open(t) => t,
                    TxnState::NotBegun(db, timeout) => match store.begin(&db, timeout).await {
                        Ok(t) => t,
                        Err(e) => return Ok((None, ops.iter().map(|_| Err(e.clone())).collect())),
                    },
                    TxnState::Gone => {
                        let e = DdbError::internal("the store transaction was lost");
                        return Ok((None, ops.iter().map(|_| Err(e.clone())).collect()));
                    }
                };
                let results = txn.execute(ops).await;
                Ok((Some(txn), results))
            })
            .await;
        match crossed {
            Ok((txn, results)) => {
                if let Some(t) = txn {
                    self.state = TxnState::Open(t);
                }
                results
            }
            Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
        }
    }

    fn remember_op_ids(&mut self, op_ids: Vec<String>) {
        self.op_ids.extend(op_ids);
    }

    async fn commit(self: Box<Self>, seq: u64) -> Result<(), DdbError> {
        let this = *self;
        let op_ids = this.op_ids;
        let state = match this.state {
            // The connection is held by the transaction, so its commit does not wait.
            TxnState::Open(mut t) if this.at_once => {
                t.remember_op_ids(op_ids);
                return futures::FutureExt::now_or_never(t.commit(seq)).unwrap_or_else(|| {
                    Err(DdbError::internal(
                        "a store commit meant to run at once had to wait",
                    ))
                });
            }
            state => state,
        };
        let store = this.store.clone();
        this.threads
            .run_on(Some(&this.db), async move {
                match state {
                    TxnState::Open(mut t) => {
                        t.remember_op_ids(op_ids);
                        t.commit(seq).await
                    }
                    // Nothing ran: the seq still has to be recorded.
                    TxnState::NotBegun(db, timeout) => {
                        let mut t = store.begin(&db, timeout).await?;
                        t.remember_op_ids(op_ids);
                        t.commit(seq).await
                    }
                    TxnState::Gone => Err(DdbError::internal("the store transaction was lost")),
                }
            })
            .await
    }

    async fn rollback(self: Box<Self>) -> Result<(), DdbError> {
        let this = *self;
        match this.state {
            TxnState::Open(t) => {
                this.threads
                    .run_write(async move { t.rollback().await })
                    .await
            }
            TxnState::NotBegun(..) | TxnState::Gone => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{parse_request, Limits, Op};

    fn write(json: &str) -> Arc<WriteOp> {
        match parse_request(json.as_bytes(), &Limits::default())
            .unwrap()
            .op
        {
            Op::Write(op) => Arc::new(op),
            other => panic!("not a write: {other:?}"),
        }
    }

    fn insert(rows: usize) -> Arc<WriteOp> {
        let rows: Vec<String> = (0..rows).map(|i| format!(r#"{{"id":{i}}}"#)).collect();
        write(&format!(
            r#"{{"op":"INSERT","db":"d","table":"t","data":[{}]}}"#,
            rows.join(",")
        ))
    }

    #[test]
    fn only_batches_of_few_inserted_rows_run_at_once() {
        assert!(small_inserts(&[insert(1)]));
        assert!(small_inserts(&vec![insert(1); AT_ONCE_ROWS]));
        assert!(small_inserts(&[insert(AT_ONCE_ROWS - 10), insert(10)]));
        assert!(!small_inserts(&[insert(AT_ONCE_ROWS - 10), insert(11)]));
        assert!(!small_inserts(&[insert(AT_ONCE_ROWS + 1)]));
        // An UPDATE or DELETE may touch any number of rows; DDL may rebuild a table.
        let update =
            write(r#"{"op":"UPDATE","db":"d","table":"t","data":{"v":1},"condition":{"id":1}}"#);
        assert!(!small_inserts(&[insert(1), update]));
        assert!(!small_inserts(&[write(r#"{"op":"CREATE_DB","db":"d"}"#)]));
    }
}
