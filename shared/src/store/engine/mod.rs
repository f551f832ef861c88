//! The part of a store both engines share: ops to SQL, schemas, applied seqs, savepoints,
//! checksums. A [`Backend`] supplies connections and creates or drops physical databases.
//!
//! The write transaction lives in [`txn`], the SEARCH reply page in [`page`].

mod page;
mod snapshot;
mod txn;

use super::checksum::ChecksumBuilder;
use super::{Page, Store, StoreOptions, WriteTxn};
use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::op::{Search, TableSchema};
use crate::reply::TableChecksum;
use crate::snapshot::{ProgressRef, SnapshotInfo, SnapshotSink, SnapshotSource};
use crate::sql::{Dialect, Statement, META_TABLE, TABLES_TABLE};
use crate::value::{ColumnType, Value};
use async_trait::async_trait;
use page::PageBuilder;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use txn::Txn;

/// One open connection to one database.
#[async_trait]
pub(crate) trait SqlConn: Send {
    /// Runs a statement and returns the rows it changed.
    async fn exec(&mut self, st: &Statement) -> Result<u64, DdbError>;
    /// Runs a query; each row comes back typed as `types` says.
    async fn query(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
    ) -> Result<Vec<Vec<Value>>, DdbError>;
    /// Runs a query and hands its rows to `sink` one by one (for results of any size). The
    /// sink returns `Ok(false)` to stop reading (the rest is not read) or an error to stop
    /// with it.
    async fn for_each_row(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
        sink: &mut RowSink<'_>,
    ) -> Result<(), DdbError>;
    /// Runs SQL without parameters or results (DDL, transaction control).
    async fn batch(&mut self, sql: &str) -> Result<(), DdbError>;
    /// Statements started after this point are cancelled (`timeout`) once `deadline` passes.
    fn set_deadline(&mut self, deadline: Option<Instant>);
    /// Whether the transaction this connection began is still open. Some failures make the
    /// engine roll back the whole transaction (SQLite on an interrupted write, SQL Server on
    /// a deadlock or a dropped connection), not just the failing statement.
    fn in_transaction(&mut self) -> bool;
}

/// What [`SqlConn::for_each_row`] feeds: `Ok(true)` to go on.
pub(crate) type RowSink<'a> = dyn for<'r> FnMut(&'r [Value]) -> Result<bool, DdbError> + Send + 'a;

/// The error of a statement cancelled at its deadline.
pub(crate) fn deadline_passed() -> DdbError {
    DdbError::new(
        ErrorCode::Timeout,
        "the statement ran longer than the query timeout (--query-timeout-ms) and was cancelled; nothing of it was applied",
    )
}

#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    type Conn: SqlConn + 'static;

    fn dialect(&self) -> Dialect;
    fn kind(&self) -> &'static str;
    /// Whether a call on a free connection runs without waiting on I/O the runtime drives
    /// (SQLite's calls block; SQL Server's go over the network); see `Store::calls_block`.
    fn calls_block(&self) -> bool {
        false
    }
    /// The exclusive write connection of an existing physical database.
    async fn writer(&self, db: &Name) -> Result<Option<Self::Conn>, DdbError>;
    /// A read connection of an existing physical database.
    async fn reader(&self, db: &Name) -> Result<Option<Self::Conn>, DdbError>;
    /// A read connection for a snapshot, which holds it as long as the database takes to
    /// read: a backend with one cached reader per database gives a connection of its own.
    async fn snapshot_reader(&self, db: &Name) -> Result<Option<Self::Conn>, DdbError> {
        self.reader(db).await
    }
    /// Creates an empty physical database and returns its write connection.
    async fn create(&self, db: &Name) -> Result<Self::Conn, DdbError>;
    /// Removes a physical database; absent is fine.
    async fn remove(&self, db: &Name) -> Result<(), DdbError>;
    /// Physical databases present, complete or not.
    async fn physical(&self) -> Result<Vec<Name>, DdbError>;
    /// The seq of the DROP_DB that last removed `db` (0 if none), from the node catalog.
    async fn tombstone(&self, db: &Name) -> Result<u64, DdbError>;
    async fn set_tombstone(&self, db: &Name, seq: u64) -> Result<(), DdbError>;
    /// The node's log position, kept in the node catalog (see `Store::log_position`).
    async fn position(&self) -> Result<u64, DdbError>;
    async fn set_position(&self, seq: u64) -> Result<(), DdbError>;
    async fn close(&self) -> Result<(), DdbError>;
}

/// Table schemas by (database, table), shared by the store and its transactions.
type SchemaCache = Arc<Mutex<HashMap<(Name, Name), Arc<TableSchema>>>>;

pub(crate) struct SqlStore<B: Backend> {
    backend: Arc<B>,
    schemas: SchemaCache,
    /// How long one read statement may run (see `--query-timeout-ms`).
    read_timeout: Option<Duration>,
    op_id_window: Duration,
    op_id_max: u64,
    /// Commits that recorded op_ids; every so many, old ones are pruned.
    op_id_commits: Arc<AtomicU64>,
    /// Databases checked complete since this process opened them (see `live_writer`).
    verified: Arc<Mutex<HashSet<Name>>>,
    /// Databases a restore is replacing; see `databases`.
    restoring: Arc<Mutex<HashSet<Name>>>,
    /// Databases `databases` could not open.
    unusable: Arc<Mutex<Vec<(Name, DdbError)>>>,
}

impl<B: Backend> Clone for SqlStore<B> {
    fn clone(&self) -> Self {
        SqlStore {
            backend: self.backend.clone(),
            schemas: self.schemas.clone(),
            read_timeout: self.read_timeout,
            op_id_window: self.op_id_window,
            op_id_max: self.op_id_max,
            op_id_commits: self.op_id_commits.clone(),
            verified: self.verified.clone(),
            restoring: self.restoring.clone(),
            unusable: self.unusable.clone(),
        }
    }
}

impl<B: Backend> SqlStore<B> {
    pub(crate) fn new(backend: B, options: &StoreOptions) -> Self {
        SqlStore {
            backend: Arc::new(backend),
            schemas: Arc::default(),
            read_timeout: options.query_timeout,
            op_id_window: options.op_id_window,
            op_id_max: options.op_id_max.max(1),
            op_id_commits: Arc::default(),
            verified: Arc::default(),
            restoring: Arc::default(),
            unusable: Arc::default(),
        }
    }

    fn is_restoring(&self, db: &Name) -> bool {
        self.restoring
            .lock()
            .map(|r| r.contains(db))
            .unwrap_or(false)
    }

    fn is_verified(&self, db: &Name) -> bool {
        self.verified
            .lock()
            .map(|v| v.contains(db))
            .unwrap_or(false)
    }

    /// The write connection of a database that exists; a half-created database (no meta row,
    /// from a crash during CREATE_DB) or a half-dropped one (its DROP_DB seq is newer) is
    /// cleaned up and reported absent.
    async fn live_writer(&self, db: &Name) -> Result<Option<B::Conn>, DdbError> {
        let Some(mut conn) = self.backend.writer(db).await? else {
            return Ok(None);
        };
        if self.is_verified(db) {
            return Ok(Some(conn));
        }
        let seq = read_meta_seq(&mut conn, self.backend.dialect()).await;
        let tomb = self.backend.tombstone(db).await?;
        match seq {
            Some(seq) if seq > tomb || (seq == 0 && tomb == 0) => {
                // Databases made before op_ids were kept in them get the table now (no
                // transaction is open on a connection just taken from the cache).
                conn.batch(&self.backend.dialect().op_ids_ddl()).await?;
                if let Ok(mut v) = self.verified.lock() {
                    v.insert(db.clone());
                }
                Ok(Some(conn))
            }
            _ => {
                drop(conn);
                tracing::warn!(db = %db, "removing an incomplete or dropped database left by a crash");
                self.forget(db);
                self.backend.remove(db).await?;
                Ok(None)
            }
        }
    }

    async fn live_reader(&self, db: &Name) -> Result<B::Conn, DdbError> {
        // Existence is decided by the writer check, which also cleans up after crashes.
        if !self.is_verified(db) && self.live_writer(db).await?.is_none() {
            return Err(DdbError::db_not_found(db.as_str()));
        }
        self.backend
            .reader(db)
            .await?
            .ok_or_else(|| DdbError::db_not_found(db.as_str()))
    }

    fn forget(&self, db: &Name) {
        if let Ok(mut s) = self.schemas.lock() {
            s.retain(|(d, _), _| d != db);
        }
        if let Ok(mut v) = self.verified.lock() {
            v.remove(db);
        }
    }

    /// One SEARCH page; `schema` is the table's cached schema, read from the database when
    /// there is none.
    async fn read_page(
        &self,
        search: &Search,
        budget: usize,
        schema: Option<Arc<TableSchema>>,
    ) -> Result<Page, DdbError> {
        let d = self.backend.dialect();
        let mut conn = self.live_reader(&search.db).await?;
        let schema = match schema {
            Some(s) => s,
            None => load_schema(&mut conn, d, &search.db, &search.table).await?,
        };
        let plan = d.select(&schema, search)?;
        log_statement(&plan.statement);
        conn.set_deadline(self.read_timeout.map(|t| Instant::now() + t));
        let mut page = PageBuilder::new(&plan, budget);
        let r = conn
            .for_each_row(&plan.statement, &plan.types, &mut |row| page.add(row))
            .await;
        conn.set_deadline(None);
        r?;
        Ok(page.finish())
    }

    fn cached_schema(&self, db: &Name, table: &Name) -> Option<Arc<TableSchema>> {
        self.schemas
            .lock()
            .ok()
            .and_then(|s| s.get(&(db.clone(), table.clone())).cloned())
    }
}

async fn read_meta_seq<C: SqlConn>(conn: &mut C, d: Dialect) -> Option<u64> {
    let st = Statement {
        sql: format!(
            "SELECT v FROM {} WHERE k = 'applied_seq'",
            d.quote(META_TABLE)
        ),
        params: vec![],
    };
    match conn.query(&st, &[ColumnType::Int]).await {
        Ok(rows) => rows.first().and_then(|r| match r.first() {
            Some(Value::Int(v)) => Some(*v as u64),
            _ => None,
        }),
        Err(_) => None,
    }
}

async fn load_schema<C: SqlConn>(
    conn: &mut C,
    d: Dialect,
    db: &Name,
    table: &Name,
) -> Result<Arc<TableSchema>, DdbError> {
    let st = Statement {
        sql: format!(
            "SELECT spec FROM {} WHERE name = {}",
            d.quote(TABLES_TABLE),
            match d {
                Dialect::Sqlite => "?1",
                Dialect::Mssql => "@P1",
            }
        ),
        params: vec![Value::Str(table.to_string())],
    };
    let rows = conn.query(&st, &[ColumnType::String]).await?;
    let Some(Value::Str(spec)) = rows.first().and_then(|r| r.first()) else {
        return Err(DdbError::table_not_found(db.as_str(), table.as_str()));
    };
    let spec: serde_json::Value = serde_json::from_str(spec)
        .map_err(|e| DdbError::internal(format!("stored schema of {table} is corrupt: {e}")))?;
    let schema = TableSchema::from_spec(table.clone(), &spec)
        .map_err(|e| DdbError::internal(format!("stored schema of {table} is invalid: {e}")))?;
    Ok(Arc::new(schema))
}

async fn table_names<C: SqlConn>(conn: &mut C, d: Dialect) -> Result<Vec<Name>, DdbError> {
    let st = Statement {
        sql: format!("SELECT name FROM {} ORDER BY name", d.quote(TABLES_TABLE)),
        params: vec![],
    };
    let rows = conn.query(&st, &[ColumnType::String]).await?;
    let mut names: Vec<Name> = rows
        .into_iter()
        .filter_map(|r| match r.into_iter().next() {
            Some(Value::Str(s)) => Name::parse(&s, "table").ok(),
            _ => None,
        })
        .collect();
    names.sort();
    Ok(names)
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    async fn begin(
        &self,
        db: &Name,
        op_timeout: Option<Duration>,
    ) -> Result<Box<dyn WriteTxn>, DdbError> {
        let d = self.backend.dialect();
        let conn = match self.live_writer(db).await? {
            Some(mut conn) => {
                conn.batch(d.begin_sql()).await?;
                Some(conn)
            }
            None => None,
        };
        Ok(Box::new(Txn::new(
            self.clone(),
            db.clone(),
            conn,
            op_timeout,
        )))
    }

    async fn search(&self, search: &Search, budget: usize) -> Result<Page, DdbError> {
        let schema = self.cached_schema(&search.db, &search.table);
        self.read_page(search, budget, schema).await
    }

    fn calls_block(&self) -> bool {
        self.backend.calls_block()
    }

    fn search_at_once(&self, search: &Search, budget: usize) -> Option<Result<Page, DdbError>> {
        if !self.calls_block() || search.after.is_some() || !self.is_verified(&search.db) {
            return None;
        }
        let schema = self.cached_schema(&search.db, &search.table)?;
        if !search.condition.pins_key(&schema.primary_key) {
            return None;
        }
        // Pending only when every read connection is busy: then the caller offloads it.
        futures::FutureExt::now_or_never(self.read_page(search, budget, Some(schema)))
    }

    async fn checksum(
        &self,
        db: &Name,
        table: Option<&Name>,
    ) -> Result<Vec<TableChecksum>, DdbError> {
        let d = self.backend.dialect();
        let mut conn = self.live_reader(db).await?;
        conn.set_deadline(self.read_timeout.map(|t| Instant::now() + t));
        let tables = match table {
            Some(t) => vec![t.clone()],
            None => table_names(&mut conn, d).await?,
        };
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            let schema = load_schema(&mut conn, d, db, &t).await?;
            let types: Vec<ColumnType> = schema.columns.iter().map(|c| c.ty).collect();
            let mut builder = ChecksumBuilder::default();
            let all = Statement {
                sql: d.select_all(&schema),
                params: vec![],
            };
            let r = conn
                .for_each_row(&all, &types, &mut |row| {
                    builder.add_row(row);
                    Ok(true)
                })
                .await;
            if r.is_err() {
                conn.set_deadline(None);
            }
            r?;
            out.push(builder.finish(&schema));
        }
        conn.set_deadline(None);
        Ok(out)
    }

    async fn applied_seq(&self, db: &Name) -> Result<u64, DdbError> {
        let tomb = self.backend.tombstone(db).await?;
        let seq = match self.live_writer(db).await? {
            Some(mut conn) => read_meta_seq(&mut conn, self.backend.dialect())
                .await
                .unwrap_or(0),
            None => 0,
        };
        Ok(seq.max(tomb))
    }

    async fn op_id_seq(&self, db: &Name, op_id: &str) -> Result<Option<u64>, DdbError> {
        let mut conn = match self.live_reader(db).await {
            Ok(c) => c,
            Err(e) if e.code == ErrorCode::DbNotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let rows = conn
            .query(
                &self.backend.dialect().lookup_op_id(op_id),
                &[ColumnType::Int],
            )
            .await?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(Value::Int(seq)) => Some(*seq as u64),
            _ => None,
        })
    }

    async fn databases(&self) -> Result<Vec<Name>, DdbError> {
        let mut out = Vec::new();
        let mut unusable = Vec::new();
        for db in self.backend.physical().await? {
            // A restore holds the writer for as long as it runs: a database it replaces is
            // there (as it was, until the commit), one it creates is not yet.
            if self.is_restoring(&db) {
                if self.is_verified(&db) {
                    out.push(db);
                }
                continue;
            }
            match self.live_writer(&db).await {
                Ok(Some(_)) => out.push(db),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(db = %db, error = %e, "cannot open this database; the others are served");
                    unusable.push((db, e));
                }
            }
        }
        out.sort();
        if let Ok(mut u) = self.unusable.lock() {
            *u = unusable;
        }
        Ok(out)
    }

    fn unusable(&self) -> Vec<(Name, DdbError)> {
        self.unusable.lock().map(|u| u.clone()).unwrap_or_default()
    }

    async fn log_position(&self) -> Result<u64, DdbError> {
        self.backend.position().await
    }

    async fn set_log_position(&self, seq: u64) -> Result<(), DdbError> {
        self.backend.set_position(seq).await
    }

    async fn tables(&self, db: &Name) -> Result<Vec<Name>, DdbError> {
        let mut conn = self.live_reader(db).await?;
        table_names(&mut conn, self.backend.dialect()).await
    }

    async fn snapshot(
        &self,
        db: &Name,
        out: SnapshotSink,
        progress: ProgressRef,
    ) -> Result<SnapshotInfo, DdbError> {
        self.take_snapshot(db, out, progress).await
    }

    async fn restore(
        &self,
        db: &Name,
        input: SnapshotSource,
        progress: ProgressRef,
    ) -> Result<SnapshotInfo, DdbError> {
        self.restore_snapshot(db, input, progress).await
    }

    async fn close(&self) -> Result<(), DdbError> {
        self.backend.close().await
    }
}

fn log_statement(st: &Statement) {
    tracing::debug!(sql = %st.sql, params = ?st.param_types(), "store statement");
    tracing::trace!(params = ?st.params, "store statement values");
}

impl Dialect {
    fn begin_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Mssql => "BEGIN TRANSACTION",
        }
    }
    fn commit_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "COMMIT",
            Dialect::Mssql => "COMMIT TRANSACTION",
        }
    }
    fn rollback_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "ROLLBACK",
            Dialect::Mssql => "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION",
        }
    }
    fn savepoint_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SAVEPOINT ddb_op",
            Dialect::Mssql => "SAVE TRANSACTION ddb_op",
        }
    }
    fn release_sql(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => Some("RELEASE ddb_op"),
            Dialect::Mssql => None,
        }
    }
    fn rollback_to_savepoint_sql(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &["ROLLBACK TO ddb_op", "RELEASE ddb_op"],
            Dialect::Mssql => &["ROLLBACK TRANSACTION ddb_op"],
        }
    }
}
