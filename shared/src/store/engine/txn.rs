//! The write transaction of a [`SqlStore`]: runs ops under savepoints, commits with the
//! applied seq and op_ids, or rolls back.

use super::{load_schema, log_statement, table_names, Backend, SqlConn, SqlStore};
use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::op::{Expect, IndexDef, Insert, TableSchema, WriteOp};
use crate::sql::{Dialect, Statement};
use crate::store::{Applied, WriteTxn};
use crate::value::{ColumnType, Value};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) struct Txn<B: Backend> {
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
    /// A transaction on `db`; `conn` is inside BEGIN, or `None` if the database is absent.
    pub(super) fn new(
        store: SqlStore<B>,
        db: Name,
        conn: Option<B::Conn>,
        op_timeout: Option<Duration>,
    ) -> Self {
        Txn {
            store,
            db,
            conn,
            created: false,
            dropped: false,
            pending: HashMap::new(),
            op_timeout,
            aborted: None,
            op_ids: Vec::new(),
        }
    }

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
                let statements = d.insert_rows(&schema, &ins.rows)?;
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
        if let Err(e) = &result {
            self.note_if_rolled_back(op.name(), e);
        }
        result
    }

    /// After a failure: if the engine rolled back the whole transaction, every op of it fails.
    fn note_if_rolled_back(&mut self, op: &str, e: &DdbError) {
        if self.created || self.dropped {
            return;
        }
        if let Some(conn) = self.conn.as_mut() {
            if !conn.in_transaction() {
                tracing::warn!(db = %self.db, op, "the engine rolled back the whole transaction; failing every op of it");
                self.aborted = Some(DdbError::unavailable(format!(
                    "the store rolled back this write's transaction after another op in it failed ({e}); nothing was applied: retry"
                )));
            }
        }
    }

    /// Single-row INSERTs into one table, as a group commit gathers them, run as one multi-row
    /// INSERT (under its savepoint, as any multi-row INSERT): one statement text, one cached
    /// program and one execution per up to 100 rows instead of per op. False (nothing of them
    /// applied) when it fails; the caller then runs them one by one, so each gets its own
    /// result.
    async fn insert_together(&mut self, inserts: &[&Insert]) -> bool {
        let together = WriteOp::Insert(Insert {
            db: inserts[0].db.clone(),
            table: inserts[0].table.clone(),
            rows: inserts
                .iter()
                .flat_map(|i| i.rows.iter().cloned())
                .collect(),
            single: false,
        });
        self.execute_one(&together).await.is_ok()
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

/// The single-row INSERTs at the start of `ops` that go into the same table as the first.
fn single_row_inserts_into_one_table(ops: &[Arc<WriteOp>]) -> Vec<&Insert> {
    let mut out: Vec<&Insert> = Vec::new();
    for op in ops {
        match &**op {
            WriteOp::Insert(i)
                if i.rows.len() == 1
                    && out
                        .first()
                        .is_none_or(|f| f.db == i.db && f.table == i.table) =>
            {
                out.push(i)
            }
            _ => break,
        }
    }
    out
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

#[async_trait]
impl<B: Backend> WriteTxn for Txn<B> {
    fn remember_op_ids(&mut self, op_ids: Vec<String>) {
        self.op_ids.extend(op_ids);
    }

    async fn execute(&mut self, ops: Vec<Arc<WriteOp>>) -> Vec<Result<Applied, DdbError>> {
        let mut out = Vec::with_capacity(ops.len());
        let mut rest = &ops[..];
        while !rest.is_empty() {
            let inserts = single_row_inserts_into_one_table(rest);
            if inserts.len() > 1 && self.insert_together(&inserts).await {
                out.extend(inserts.iter().map(|_| Ok(Applied::rows(1))));
                rest = &rest[inserts.len()..];
                continue;
            }
            for op in &rest[..inserts.len().max(1)] {
                out.push(self.execute_one(op).await);
            }
            rest = &rest[inserts.len().max(1)..];
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
