//! Where a node keeps its data. The node runtime is the user of this trait and declares only
//! what it needs: run write ops in a transaction it commits with the log seq, read, compare.
//!
//! Both backends share one engine ([`engine::SqlStore`]) that turns ops into SQL through
//! [`crate::sql`]; a backend only knows how to reach its databases ([`engine::Backend`]).

mod checksum;
mod engine;
pub mod mssql;
pub mod sqlite;

pub use checksum::table_checksum;

use crate::error::DdbError;
use crate::name::Name;
use crate::op::{Search, WriteOp};
use crate::reply::TableChecksum;
use async_trait::async_trait;
use serde_json::{Map, Value as Json};
use std::sync::Arc;

pub type Row = Map<String, Json>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `mssql`, for heartbeats and logs.
    fn kind(&self) -> &'static str;

    /// Starts a write transaction on `db`. The database need not exist: CREATE_DB is run in
    /// such a transaction, and any other op in it fails with `db_not_found`.
    async fn begin(&self, db: &Name) -> Result<Box<dyn WriteTxn>, DdbError>;

    async fn search(&self, search: &Search) -> Result<Vec<Row>, DdbError>;

    /// Per-table checksums of `db` (one table, or all in name order).
    async fn checksum(
        &self,
        db: &Name,
        table: Option<&Name>,
    ) -> Result<Vec<TableChecksum>, DdbError>;

    /// The stream seq of the last log entry applied to `db`; 0 when never touched. A dropped
    /// database remembers the seq of its DROP_DB, so a replayed log does not apply it twice.
    async fn applied_seq(&self, db: &Name) -> Result<u64, DdbError>;

    async fn databases(&self) -> Result<Vec<Name>, DdbError>;

    /// The log stream seq up to which this node had applied every entry when it last said so;
    /// where its log reader resumes. 0 for a new (or wiped) store: replay from the start.
    async fn log_position(&self) -> Result<u64, DdbError>;

    async fn set_log_position(&self, seq: u64) -> Result<(), DdbError>;

    async fn tables(&self, db: &Name) -> Result<Vec<Name>, DdbError>;

    /// Flushes and closes every connection; later calls may fail.
    async fn close(&self) -> Result<(), DdbError>;
}

/// One database's write transaction. Every `execute` is atomic on its own (a failing op leaves
/// no trace and the transaction stays usable), and nothing is visible until `commit`.
#[async_trait]
pub trait WriteTxn: Send {
    /// Runs one op; returns the rows affected.
    async fn execute(&mut self, op: &WriteOp) -> Result<u64, DdbError>;
    /// Records `seq` as the database's applied log seq and commits, atomically.
    async fn commit(self: Box<Self>, seq: u64) -> Result<(), DdbError>;
    async fn rollback(self: Box<Self>) -> Result<(), DdbError>;
}

/// Opens the store named by a `--store` URL: `sqlite://DIR` or `mssql://...` / `mssql:ADO`.
pub async fn open(url: &str, node: &str) -> Result<Arc<dyn Store>, DdbError> {
    if let Some(dir) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(sqlite::open(dir.as_ref())?))
    } else if url.starts_with("mssql:") {
        Ok(Arc::new(mssql::open(url, node).await?))
    } else {
        Err(DdbError::bad_request(format!(
            "unknown store {url:?}: use sqlite://DIR or mssql://user:password@host:1433"
        )))
    }
}
