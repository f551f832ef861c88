//! The part of a store both engines share: ops to SQL, schemas, applied seqs, savepoints,
//! checksums. A [`Backend`] supplies connections and creates or drops physical databases.

use super::checksum::ChecksumBuilder;
use super::{Applied, Page, Row, Store, StoreOptions, WriteTxn};
use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::op::{Expect, IndexDef, Search, TableSchema, WriteOp};
use crate::reply::TableChecksum;
use crate::sql::{Cursor, Dialect, SelectPlan, Statement, META_TABLE, TABLES_TABLE};
use crate::value::{ColumnType, Value};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

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
    /// The exclusive write connection of an existing physical database.
    async fn writer(&self, db: &Name) -> Result<Option<Self::Conn>, DdbError>;
    /// A read connection of an existing physical database.
    async fn reader(&self, db: &Name) -> Result<Option<Self::Conn>, DdbError>;
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
            unusable: Arc::default(),
        }
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
        Ok(Box::new(Txn {
            store: self.clone(),
            db: db.clone(),
            conn,
            created: false,
            dropped: false,
            pending: HashMap::new(),
            op_timeout,
            aborted: None,
            op_ids: Vec::new(),
        }))
    }

    async fn search(&self, search: &Search, budget: usize) -> Result<Page, DdbError> {
        let d = self.backend.dialect();
        let mut conn = self.live_reader(&search.db).await?;
        let schema = match self.cached_schema(&search.db, &search.table) {
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

    async fn close(&self) -> Result<(), DdbError> {
        self.backend.close().await
    }
}

struct Txn<B: Backend> {
    store: SqlStore<B>,
    db: Name,
    /// The open connection, inside BEGIN; `None` while the database does not exist.
    conn: Option<B::Conn>,
    created: bool,
    dropped: bool,
    /// Tables created, changed (`Some`) or dropped (`None`) in this transaction; published to
    /// the schema cache on commit, forgotten on rollback.
    pending: HashMap<Name, Option<Arc<TableSchema>>>,
    /// How long one op may run (the writer's `--query-timeout-ms`; none when replaying the log,
    /// which must apply what the writer applied, however long it takes).
    op_timeout: Option<Duration>,
    /// Set when the engine rolled the whole transaction back under us: nothing of it may be
    /// committed or logged, and every op of it fails.
    aborted: Option<DdbError>,
    /// Recorded as applied with the commit.
    op_ids: Vec<String>,
}

impl<B: Backend> Txn<B> {
    fn dialect(&self) -> Dialect {
        self.store.backend.dialect()
    }

    async fn schema(&mut self, table: &Name) -> Result<Arc<TableSchema>, DdbError> {
        if let Some(pending) = self.pending.get(table) {
            return pending
                .clone()
                .ok_or_else(|| DdbError::table_not_found(self.db.as_str(), table.as_str()));
        }
        if let Some(s) = self.store.cached_schema(&self.db, table) {
            return Ok(s);
        }
        let d = self.dialect();
        let db = self.db.clone();
        let conn = self.conn_mut()?;
        let schema = load_schema(conn, d, &db, table).await?;
        if let Ok(mut cache) = self.store.schemas.lock() {
            cache.insert((self.db.clone(), table.clone()), schema.clone());
        }
        Ok(schema)
    }

    fn conn_mut(&mut self) -> Result<&mut B::Conn, DdbError> {
        if self.dropped {
            return Err(DdbError::db_not_found(self.db.as_str()));
        }
        self.conn
            .as_mut()
            .ok_or_else(|| DdbError::db_not_found(self.db.as_str()))
    }

    /// Runs DDL and the statements that go with it, logged.
    async fn run_all(&mut self, ddl: &[String], statements: &[Statement]) -> Result<(), DdbError> {
        let conn = self.conn_mut()?;
        for sql in ddl {
            tracing::debug!(sql = %sql, "store statement");
            conn.batch(sql).await?;
        }
        for st in statements {
            log_statement(st);
            conn.exec(st).await?;
        }
        Ok(())
    }

    /// The index named `name` anywhere in the database (index names are unique per database).
    async fn find_index(&mut self, name: &Name) -> Result<Option<(Name, IndexDef)>, DdbError> {
        let d = self.dialect();
        let tables = table_names(self.conn_mut()?, d).await?;
        for t in tables {
            let schema = self.schema(&t).await?;
            if let Some(ix) = schema.index(name.as_str()) {
                return Ok(Some((t, ix.clone())));
            }
        }
        Ok(None)
    }

    async fn run(&mut self, op: &WriteOp) -> Result<u64, DdbError> {
        let d = self.dialect();
        match op {
            WriteOp::CreateDb { .. } | WriteOp::DropDb { .. } | WriteOp::Transaction { .. } => {
                unreachable!("handled by execute_one")
            }
            WriteOp::CreateTable { schema, .. } => {
                let conn = self.conn_mut()?;
                let existing = table_names(conn, d).await?;
                if existing
                    .iter()
                    .any(|t| t.as_str().eq_ignore_ascii_case(schema.name.as_str()))
                {
                    return Err(DdbError::new(
                        ErrorCode::TableExists,
                        format!(
                            "table {} already exists in database {}",
                            schema.name, self.db
                        ),
                    ));
                }
                self.run_all(&[d.create_table(schema)], &[d.insert_spec(schema)])
                    .await?;
                self.pending
                    .insert(schema.name.clone(), Some(Arc::new(schema.clone())));
                Ok(0)
            }
            WriteOp::Insert(ins) => {
                let schema = self.schema(&ins.table).await?;
                let statements = ins
                    .rows
                    .iter()
                    .map(|row| d.insert(&schema, row))
                    .collect::<Result<Vec<_>, _>>()?;
                let conn = self.conn_mut()?;
                let mut affected = 0;
                for st in &statements {
                    log_statement(st);
                    affected += conn.exec(st).await?;
                }
                Ok(affected)
            }
            WriteOp::Update(u) => {
                let schema = self.schema(&u.table).await?;
                let st = d.update(&schema, &u.set, &u.condition)?;
                log_statement(&st);
                let n = self.conn_mut()?.exec(&st).await?;
                check_expect(u.expect, n, "UPDATE")
            }
            WriteOp::Delete(del) => {
                let schema = self.schema(&del.table).await?;
                let st = d.delete(&schema, &del.condition)?;
                log_statement(&st);
                let n = self.conn_mut()?.exec(&st).await?;
                check_expect(del.expect, n, "DELETE")
            }
            WriteOp::CreateIndex { table, index, .. } => {
                let before = self.schema(table).await?;
                for c in &index.columns {
                    before.require_column(c.as_str())?;
                }
                if let Some((on, _)) = self.find_index(&index.name).await? {
                    return Err(DdbError::new(
                        ErrorCode::IndexExists,
                        format!(
                            "index {} already exists in database {} (on table {on})",
                            index.name, self.db
                        ),
                    ));
                }
                let mut after = (*before).clone();
                after.indexes.push(index.clone());
                if let Some(check) = d.too_long_for_index(&after, index) {
                    log_statement(&check);
                    let rows = self.conn_mut()?.query(&check, &[ColumnType::Int]).await?;
                    if let Some(Value::Int(n @ 1..)) = rows.first().and_then(|r| r.first()) {
                        return Err(DdbError::too_large(format!(
                            "{n} rows of {table} hold strings longer than index {} allows (indexed string columns hold at most 450 characters, shared by the index's string columns)",
                            index.name
                        )));
                    }
                }
                self.run_all(&d.create_index(&before, index), &[d.update_spec(&after)])
                    .await?;
                self.pending.insert(table.clone(), Some(Arc::new(after)));
                Ok(0)
            }
            WriteOp::DropIndex { table, index, .. } => {
                let before = self.schema(table).await?;
                let Some(def) = before.index(index.as_str()).cloned() else {
                    return Err(DdbError::new(
                        ErrorCode::IndexNotFound,
                        format!(
                            "index {index} does not exist on table {table} in database {}",
                            self.db
                        ),
                    ));
                };
                let mut after = (*before).clone();
                after.indexes.retain(|i| i.name != def.name);
                self.run_all(&d.drop_index(&after, &def), &[d.update_spec(&after)])
                    .await?;
                self.pending.insert(table.clone(), Some(Arc::new(after)));
                Ok(0)
            }
            WriteOp::DropTable { table, .. } => {
                let before = self.schema(table).await?;
                self.run_all(
                    &[d.drop_table(&before.name)],
                    &[d.delete_spec(&before.name)],
                )
                .await?;
                self.pending.insert(table.clone(), None);
                Ok(0)
            }
            WriteOp::AddColumn { table, columns, .. } => {
                let before = self.schema(table).await?;
                let spec = TableSchema {
                    name: table.clone(),
                    columns: columns.clone(),
                    primary_key: Vec::new(),
                    indexes: Vec::new(),
                };
                // Checked again here: the parser could not see the table's columns.
                let added = before.parse_new_columns(&spec.columns_json())?;
                let mut after = (*before).clone();
                after.columns.extend(added.iter().cloned());
                self.run_all(
                    &d.add_columns(&before.name, &added),
                    &[d.update_spec(&after)],
                )
                .await?;
                self.pending.insert(table.clone(), Some(Arc::new(after)));
                Ok(0)
            }
        }
    }

    async fn execute_one(&mut self, op: &WriteOp) -> Result<Applied, DdbError> {
        if let Some(e) = &self.aborted {
            return Err(e.clone());
        }
        let result = self.execute_inner(op).await;
        if result.is_err() && !self.created && !self.dropped {
            if let Some(conn) = self.conn.as_mut() {
                if !conn.in_transaction() {
                    tracing::warn!(db = %self.db, op = op.name(), "the engine rolled back the whole transaction; failing every op of it");
                    self.aborted = Some(DdbError::unavailable(format!(
                        "the store rolled back this write's transaction after another op in it failed ({}); nothing was applied: retry",
                        result.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
                    )));
                }
            }
        }
        result
    }

    async fn execute_inner(&mut self, op: &WriteOp) -> Result<Applied, DdbError> {
        if op.db() != &self.db {
            return Err(DdbError::internal(format!(
                "op for database {} in a transaction on {}",
                op.db(),
                self.db
            )));
        }
        let started = Instant::now();
        let d = self.dialect();
        let deadline = self.op_timeout.map(|t| started + t);
        if let Some(conn) = self.conn.as_mut() {
            conn.set_deadline(deadline);
        }
        let result = match op {
            WriteOp::CreateDb { db } => {
                if self.conn.is_some() && !self.dropped {
                    return Err(DdbError::new(
                        ErrorCode::DbExists,
                        format!("database {db} already exists"),
                    ));
                }
                // A physical leftover (crash) is removed by live_writer; create afresh.
                let mut conn = self.store.backend.create(db).await?;
                conn.batch(d.begin_sql()).await?;
                for ddl in d.meta_ddl() {
                    conn.batch(&ddl).await?;
                }
                self.conn = Some(conn);
                self.created = true;
                self.dropped = false;
                Ok(Applied::rows(0))
            }
            WriteOp::DropDb { .. } => {
                self.conn_mut()?;
                self.dropped = true;
                Ok(Applied::rows(0))
            }
            // One statement is atomic on both engines (a failing statement is undone alone,
            // the transaction goes on), so only multi-statement ops, and writes whose
            // expectation is checked after their statement, pay for a savepoint.
            WriteOp::Insert(i) if i.rows.len() == 1 => self.run(op).await.map(Applied::rows),
            WriteOp::Update(u) if u.expect.is_none() => self.run(op).await.map(Applied::rows),
            WriteOp::Delete(del) if del.expect.is_none() => self.run(op).await.map(Applied::rows),
            _ => self.under_savepoint(op).await,
        };
        if let Some(conn) = self.conn.as_mut() {
            conn.set_deadline(None);
        }
        tracing::debug!(db = %self.db, op = op.name(), micros = started.elapsed().as_micros() as u64, ok = result.is_ok(), "store op");
        result
    }

    /// Runs `op` so that, if it fails, nothing of it remains (and the transaction goes on).
    async fn under_savepoint(&mut self, op: &WriteOp) -> Result<Applied, DdbError> {
        let d = self.dialect();
        self.conn_mut()?.batch(d.savepoint_sql()).await?;
        let pending = self.pending.clone();
        let outcome = match op {
            WriteOp::Transaction { ops, .. } => {
                let mut each = Vec::with_capacity(ops.len());
                let mut failed = None;
                for (i, inner) in ops.iter().enumerate() {
                    match self.run(inner).await {
                        Ok(n) => each.push(n),
                        Err(e) => {
                            failed = Some(e.at_op(i, inner.name()));
                            break;
                        }
                    }
                }
                match failed {
                    None => Ok(Applied {
                        affected: each.iter().sum(),
                        each: Some(each),
                    }),
                    Some(e) => Err(e),
                }
            }
            _ => self.run(op).await.map(Applied::rows),
        };
        match outcome {
            Ok(applied) => {
                if let Some(sql) = d.release_sql() {
                    self.conn_mut()?.batch(sql).await?;
                }
                Ok(applied)
            }
            Err(e) => {
                // Schema changes of the undone ops are undone with them.
                self.pending = pending;
                let conn = self.conn_mut()?;
                // The deadline may have passed: the rollback must still run.
                conn.set_deadline(None);
                // If the engine already rolled back the whole transaction, the savepoint is
                // gone with it; `execute_one` notices and fails the transaction.
                if conn.in_transaction() {
                    for sql in d.rollback_to_savepoint_sql() {
                        conn.batch(sql).await?;
                    }
                }
                Err(e)
            }
        }
    }
}

/// An UPDATE or DELETE that touched `n` rows, against its expectation.
fn check_expect(expect: Option<Expect>, n: u64, op: &str) -> Result<u64, DdbError> {
    match expect {
        Some(e) if e.affected != n => Err(DdbError::new(
            ErrorCode::PreconditionFailed,
            format!(
                "{op} expected to affect {} rows and would have affected {n}; nothing was applied",
                e.affected
            ),
        )),
        _ => Ok(n),
    }
}

fn log_statement(st: &Statement) {
    tracing::debug!(sql = %st.sql, params = ?st.param_types(), "store statement");
    tracing::trace!(params = ?st.params, "store statement values");
}

#[async_trait]
impl<B: Backend> WriteTxn for Txn<B> {
    fn remember_op_ids(&mut self, op_ids: Vec<String>) {
        self.op_ids.extend(op_ids);
    }

    async fn execute(&mut self, ops: Vec<Arc<WriteOp>>) -> Vec<Result<Applied, DdbError>> {
        let mut out = Vec::with_capacity(ops.len());
        for op in &ops {
            out.push(self.execute_one(op).await);
        }
        // Ops that succeeded before the engine rolled everything back were undone too.
        if let Some(e) = &self.aborted {
            for r in out.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(e.clone());
            }
        }
        out
    }

    async fn commit(mut self: Box<Self>, seq: u64) -> Result<(), DdbError> {
        if let Some(e) = self.aborted.take() {
            return Err(e);
        }
        let d = self.dialect();
        if self.dropped {
            // The tombstone goes first: if we crash before the files are gone, the next start
            // sees a database older than its DROP_DB and finishes the drop.
            if let Some(mut conn) = self.conn.take() {
                let _ = conn.batch(d.rollback_sql()).await;
            }
            self.store.backend.set_tombstone(&self.db, seq).await?;
            self.store.forget(&self.db);
            return self.store.backend.remove(&self.db).await;
        }
        let Some(conn) = self.conn.as_mut() else {
            // No database to hold the seq (an entry that ran nothing on an absent database):
            // the catalog remembers it, as it does for a dropped one.
            return self.store.backend.set_tombstone(&self.db, seq).await;
        };
        for st in d.set_applied_seq(seq) {
            conn.exec(&st).await?;
        }
        if !self.op_ids.is_empty() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            for id in &self.op_ids {
                for st in d.record_op_id(id, seq, now) {
                    conn.exec(&st).await?;
                }
            }
            // Pruning costs a scan of the index: now and then, not on every commit.
            let n = self.store.op_id_commits.fetch_add(1, Ordering::Relaxed);
            if n.is_multiple_of(256) {
                let before = now.saturating_sub(self.store.op_id_window.as_millis() as u64);
                for st in d.prune_op_ids(before, self.store.op_id_max) {
                    conn.exec(&st).await?;
                }
            }
        }
        conn.batch(d.commit_sql()).await?;
        if self.created {
            if let Ok(mut v) = self.store.verified.lock() {
                v.insert(self.db.clone());
            }
        }
        if let Ok(mut cache) = self.store.schemas.lock() {
            for (name, schema) in self.pending.drain() {
                match schema {
                    Some(s) => cache.insert((self.db.clone(), name), s),
                    None => cache.remove(&(self.db.clone(), name)),
                };
            }
        }
        Ok(())
    }

    async fn rollback(mut self: Box<Self>) -> Result<(), DdbError> {
        let d = self.dialect();
        if let Some(mut conn) = self.conn.take() {
            conn.set_deadline(None);
            if conn.in_transaction() {
                conn.batch(d.rollback_sql()).await?;
            }
        }
        if self.created {
            self.store.forget(&self.db);
            self.store.backend.remove(&self.db).await?;
        }
        Ok(())
    }
}

/// Builds a SEARCH reply page from the rows a plan reads, within the reply budget.
struct PageBuilder<'a> {
    plan: &'a SelectPlan,
    budget: usize,
    bytes: usize,
    rows: Vec<Row>,
    /// Rows equal to the cursor still to pass over (keyless tables).
    to_skip: u64,
    /// The order values of the last row taken, and how many rows in a row had them.
    last: Option<Vec<Value>>,
    run: u64,
    more: bool,
}

/// What a reply carries besides its rows (node, seq, the next cursor, JSON punctuation).
const REPLY_OVERHEAD: usize = 1024;

impl<'a> PageBuilder<'a> {
    fn new(plan: &'a SelectPlan, budget: usize) -> Self {
        let (last, run, to_skip) = match &plan.cursor {
            Some(Cursor { values, skip }) => (Some(values.clone()), *skip, *skip),
            None => (None, 0, 0),
        };
        PageBuilder {
            plan,
            budget,
            bytes: REPLY_OVERHEAD,
            rows: Vec::new(),
            to_skip,
            last,
            run,
            more: false,
        }
    }

    fn key(&self, row: &[Value]) -> Vec<Value> {
        self.plan
            .order_positions
            .iter()
            .map(|&i| row[i].clone())
            .collect()
    }

    fn add(&mut self, row: &[Value]) -> Result<bool, DdbError> {
        if self.to_skip > 0 {
            let equal = self.plan.cursor.as_ref().is_some_and(|c| {
                self.plan
                    .order_positions
                    .iter()
                    .zip(&c.values)
                    .all(|(&i, v)| &row[i] == v)
            });
            if equal {
                self.to_skip -= 1;
                return Ok(true);
            }
            self.to_skip = 0;
        }
        if self.plan.limit.is_some_and(|l| self.rows.len() as u64 >= l) {
            self.more = true;
            return Ok(false);
        }
        let mut out = Row::new();
        let mut size = 2;
        for ((name, _), v) in self.plan.columns.iter().zip(row) {
            size += name.as_str().len() + 4 + json_len(v);
            out.insert(name.to_string(), v.to_json());
        }
        self.bytes += size;
        // The next cursor carries this row's order values (base64 of JSON: 4/3 of them).
        let cursor = if self.plan.limit.is_some() {
            let keys: usize = self
                .plan
                .order_positions
                .iter()
                .map(|&i| json_len(&row[i]) + 1)
                .sum();
            (keys + 64) * 4 / 3
        } else {
            0
        };
        if self.budget > 0 && self.bytes + cursor > self.budget {
            return Err(DdbError::too_large(format!(
                "the SEARCH reply would be larger than the server's max_payload of {} bytes after {} rows; ask for fewer rows with limit and page with after (each reply's next), or narrow it with a condition or columns",
                self.budget,
                self.rows.len()
            )));
        }
        let key = self.key(row);
        if self.last.as_ref() == Some(&key) {
            self.run += 1;
        } else {
            self.last = Some(key);
            self.run = 1;
        }
        self.rows.push(out);
        Ok(true)
    }

    fn finish(self) -> Page {
        let next = match (self.more, self.last) {
            (true, Some(values)) => Some(
                Cursor {
                    values,
                    skip: if self.plan.unique { 0 } else { self.run },
                }
                .encode(&self.plan.fingerprint),
            ),
            _ => None,
        };
        Page {
            rows: self.rows,
            next,
        }
    }
}

/// A value's length in JSON as serde_json writes it (an upper bound for escaped strings).
fn json_len(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Int(i) => {
            let digits = i
                .unsigned_abs()
                .checked_ilog10()
                .map_or(1, |d| d as usize + 1);
            digits + usize::from(*i < 0)
        }
        Value::Float(f) if f.is_finite() => ryu::Buffer::new().format_finite(*f).len(),
        Value::Float(_) => 4,
        Value::Str(s) => {
            2 + s
                .bytes()
                .map(|b| match b {
                    b'"' | b'\\' => 2,
                    0..=0x1f => 6,
                    _ => 1,
                })
                .sum::<usize>()
        }
    }
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
