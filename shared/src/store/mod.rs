//! Where a node keeps its data. The node runtime is the user of this trait and declares only
//! what it needs: run write ops in a transaction it commits with the log seq, read, compare.
//!
//! Both backends share one engine ([`engine::SqlStore`]) that turns ops into SQL through
//! [`crate::sql`]; a backend only knows how to reach its databases ([`engine::Backend`]).

mod checksum;
mod engine;
pub mod mssql;
mod offload;
pub mod sqlite;

pub use checksum::table_checksum;

use crate::error::DdbError;
use crate::name::Name;
use crate::op::{Search, WriteOp};
use crate::reply::{EncodedRows, TableChecksum};
use crate::snapshot::{ProgressRef, SnapshotInfo, SnapshotSink, SnapshotSource};
use async_trait::async_trait;
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use std::time::Duration;

pub type Row = Map<String, Json>;

/// What one write op did: rows affected, and for a TRANSACTION each op's count in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub affected: u64,
    pub each: Option<Vec<u64>>,
}

impl Applied {
    pub fn rows(affected: u64) -> Self {
        Applied {
            affected,
            each: None,
        }
    }
}

/// One SEARCH reply's rows and, when more may follow, the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The rows as the reply carries them (`EncodedRows::decode` reads them back).
    pub rows: EncodedRows,
    pub next: Option<String>,
}

/// Settings a store is opened with.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long one read statement (SEARCH, CHECKSUM) may run before it is cancelled.
    pub query_timeout: Option<Duration>,
    /// Threads that run reads at once (writes have their own); see `offload`.
    pub read_threads: usize,
    /// How long applied op_ids are remembered, and how many at most per database.
    pub op_id_window: Duration,
    pub op_id_max: u64,
    /// Page size of the SQLite files the store creates (a power of two, 512 to 65536; files
    /// that exist keep theirs). Every commit writes each page it touched to the WAL whole, so
    /// small pages make a small write cost the disk less.
    pub sqlite_page_size: u32,
}

/// 1 KiB rather than SQLite's 4 KiB: a one-row commit writes two pages (the table's and the
/// applied seq's), and at 4 KiB the WAL traffic of single writes made the disk, shared by
/// every node, stall commits now and then (DESIGN-NOTES "Performance, round two").
pub const SQLITE_PAGE_SIZE: u32 = 1024;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            query_timeout: Some(Duration::from_secs(30)),
            read_threads: 2,
            op_id_window: Duration::from_secs(24 * 3600),
            op_id_max: 1_000_000,
            sqlite_page_size: SQLITE_PAGE_SIZE,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `mssql`, for heartbeats and logs.
    fn kind(&self) -> &'static str;

    /// Starts a write transaction on `db`. The database need not exist: CREATE_DB is run in
    /// such a transaction, and any other op in it fails with `db_not_found`. With
    /// `op_timeout`, an op that runs longer is cancelled and fails with `timeout`.
    async fn begin(
        &self,
        db: &Name,
        op_timeout: Option<Duration>,
    ) -> Result<Box<dyn WriteTxn>, DdbError>;

    /// One page of a SEARCH. Reading stops as soon as the reply would pass `budget` bytes
    /// (`too_large`; 0 means no budget).
    async fn search(&self, search: &Search, budget: usize) -> Result<Page, DdbError>;

    /// The same page as [`Store::search`], answered on the caller's thread when that is sure
    /// to take only microseconds (a lookup by the whole primary key on an embedded engine);
    /// `None` when it is not, and the caller uses `search`. Handing such a read to another
    /// thread and back costs more than the read, and splits the replies a node would
    /// otherwise send to NATS together into one write each.
    fn search_at_once(&self, _search: &Search, _budget: usize) -> Option<Result<Page, DdbError>> {
        None
    }

    /// Whether a call on a free connection finishes without waiting on I/O that a runtime
    /// drives (an embedded engine: its calls block, then return). Small calls of such a store
    /// may run on the caller's thread.
    fn calls_block(&self) -> bool {
        false
    }

    /// Per-table checksums of `db` (one table, or all in name order).
    async fn checksum(
        &self,
        db: &Name,
        table: Option<&Name>,
    ) -> Result<Vec<TableChecksum>, DdbError>;

    /// The stream seq of the last log entry applied to `db`; 0 when never touched. A dropped
    /// database remembers the seq of its DROP_DB, so a replayed log does not apply it twice.
    async fn applied_seq(&self, db: &Name) -> Result<u64, DdbError>;

    /// The databases present and usable. One that cannot be opened or cleaned up is left out
    /// (and reported by [`Store::unusable`]) rather than failing the whole store.
    async fn databases(&self) -> Result<Vec<Name>, DdbError>;

    /// Databases the last [`Store::databases`] found but could not open, with why.
    fn unusable(&self) -> Vec<(Name, DdbError)>;

    /// The seq at which `op_id` was applied to `db`, if it still is in the op_id window.
    async fn op_id_seq(&self, db: &Name, op_id: &str) -> Result<Option<u64>, DdbError>;

    /// The log stream seq up to which this node had applied every entry when it last said so;
    /// where its log reader resumes. 0 for a new (or wiped) store: replay from the start.
    async fn log_position(&self) -> Result<u64, DdbError>;

    async fn set_log_position(&self, seq: u64) -> Result<(), DdbError>;

    async fn tables(&self, db: &Name) -> Result<Vec<Name>, DdbError>;

    /// Writes an engine-neutral snapshot of `db` to `out` from one consistent read that never
    /// blocks writes, on a thread of its own (not the read threads); see [`crate::snapshot`].
    /// The snapshot's seq is the database's applied seq in that read.
    async fn snapshot(
        &self,
        db: &Name,
        out: SnapshotSink,
        progress: ProgressRef,
    ) -> Result<SnapshotInfo, DdbError>;

    /// Replaces `db` (existing or not) with the snapshot read from `input`: schema, rows,
    /// op_ids, and the applied seq becomes the snapshot's. Atomic: until it completes, and
    /// after a crash part-way, the old database (or none) is what counts. Bytes that are not
    /// a whole, unchanged snapshot of `db` are refused ([`crate::snapshot::SnapshotError`] as
    /// `bad_request` or `invalid_name`; a failing source is `unavailable`) and change nothing.
    async fn restore(
        &self,
        db: &Name,
        input: SnapshotSource,
        progress: ProgressRef,
    ) -> Result<SnapshotInfo, DdbError>;

    /// Flushes and closes every connection; later calls may fail.
    async fn close(&self) -> Result<(), DdbError>;
}

/// One database's write transaction. Every op is atomic on its own (a failing op leaves no
/// trace and the transaction stays usable), and nothing is visible until `commit`.
#[async_trait]
pub trait WriteTxn: Send {
    /// Runs ops in order; returns each one's rows affected or error. One call for many ops:
    /// a call crosses to the store's threads and back.
    async fn execute(&mut self, ops: Vec<Arc<WriteOp>>) -> Vec<Result<Applied, DdbError>>;

    /// Runs one op.
    async fn execute_one(&mut self, op: WriteOp) -> Result<Applied, DdbError> {
        self.execute(vec![Arc::new(op)])
            .await
            .pop()
            .unwrap_or_else(|| Err(DdbError::internal("the store returned no result")))
    }
    /// Notes op_ids applied by this transaction: recorded with its commit.
    fn remember_op_ids(&mut self, op_ids: Vec<String>);
    /// Records `seq` as the database's applied log seq and commits, atomically.
    async fn commit(self: Box<Self>, seq: u64) -> Result<(), DdbError>;
    async fn rollback(self: Box<Self>) -> Result<(), DdbError>;
}

/// Opens the store named by a `--store` URL: `sqlite://DIR` or `mssql://...` / `mssql:ADO`.
/// Every call into it runs on threads the store owns (see `offload`), never on the caller's.
pub async fn open(
    url: &str,
    node: &str,
    options: &StoreOptions,
) -> Result<Arc<dyn Store>, DdbError> {
    let threads = offload::Threads::new(node, options.read_threads)?;
    if let Some(dir) = url.strip_prefix("sqlite://") {
        let dir = std::path::PathBuf::from(dir);
        let opts = options.clone();
        let store = threads
            .run_write(
                async move { sqlite::open(&dir, &opts).map(|s| Arc::new(s) as Arc<dyn Store>) },
            )
            .await?;
        Ok(Arc::new(offload::Offloaded::new(store, threads)))
    } else if url.starts_with("mssql:") {
        let (url, node, opts) = (url.to_owned(), node.to_owned(), options.clone());
        let store = threads
            .run_write(async move {
                mssql::open(&url, &node, &opts)
                    .await
                    .map(|s| Arc::new(s) as Arc<dyn Store>)
            })
            .await?;
        Ok(Arc::new(offload::Offloaded::new(store, threads)))
    } else {
        Err(DdbError::bad_request(format!(
            "unknown store {url:?}: use sqlite://DIR or mssql://user:password@host:1433"
        )))
    }
}
