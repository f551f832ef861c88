//! Snapshots of a database and restores from them, for both engines (the format is in
//! [`crate::snapshot::format`]).
//!
//! A snapshot is one read transaction: SQLite's on a WAL read connection (writers go on
//! beside it), SQL Server's under SNAPSHOT isolation (row versions, no shared locks). The
//! applied seq, the schema, the row counts, the rows and the op_ids all come from that one
//! read, so the snapshot is the database exactly as of its seq.
//!
//! A restore is one write transaction on the database's writer connection: the old tables go,
//! the snapshot's are created, filled, indexed, the op_ids and the seq are written, and the
//! commit comes only after the trailer's SHA-256 has matched. A crash or a bad stream before
//! that leaves the old database as it was (both engines undo an uncommitted transaction, DDL
//! included); a restore into a database that did not exist makes it the way CREATE_DB does,
//! so a crash leaves a physical database without a committed meta row, which the next start
//! removes (see [`super::SqlStore::live_writer`]).

use super::{load_schema, table_names, Backend, SqlConn, SqlStore};
use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::op::TableSchema;
use crate::snapshot::format::{Counts, Item, OpIdRecord, Reader, Writer};
use crate::snapshot::{
    Header, ProgressRef, SnapshotError, SnapshotInfo, SnapshotSink, SnapshotSource, TableHeader,
};
use crate::sql::{Dialect, Statement, META_TABLE, OP_IDS_TABLE, TABLES_TABLE};
use crate::value::{ColumnType, Value};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

/// Rows between two progress updates while a snapshot is written.
const PROGRESS_EVERY: u64 = 4096;

impl Dialect {
    /// Run once a restore committed, outside its transaction.
    fn after_restore(self) -> Option<&'static str> {
        match self {
            // The restore went through the WAL, which is now as big as the database: hand the
            // space back. A reader still in the WAL (a snapshot running) makes TRUNCATE wait,
            // so briefly: what it leaves, the checkpoint thread does later.
            Dialect::Sqlite => Some(
                "PRAGMA busy_timeout=100; PRAGMA wal_checkpoint(TRUNCATE); PRAGMA busy_timeout=5000;",
            ),
            Dialect::Mssql => None,
        }
    }

    /// Starts the snapshot's read transaction.
    fn begin_snapshot_read(self) -> &'static [&'static str] {
        match self {
            // Deferred: the read snapshot is fixed by the first SELECT, and writers go on.
            Dialect::Sqlite => &["BEGIN"],
            // Databases made before snapshots existed get row-versioned snapshots now; SQL
            // Server waits for transactions already running, not for later ones.
            Dialect::Mssql => &[
                "IF (SELECT snapshot_isolation_state FROM sys.databases WHERE database_id = DB_ID()) = 0 \
                 ALTER DATABASE CURRENT SET ALLOW_SNAPSHOT_ISOLATION ON",
                "SET TRANSACTION ISOLATION LEVEL SNAPSHOT",
                "BEGIN TRANSACTION",
            ],
        }
    }

    /// Ends it (nothing was written: a rollback is a commit) and restores the session.
    fn end_snapshot_read(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &["ROLLBACK"],
            Dialect::Mssql => &[
                "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION",
                "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            ],
        }
    }

    fn count_rows(self, table: &Name) -> Statement {
        let count = match self {
            Dialect::Sqlite => "COUNT(*)",
            Dialect::Mssql => "COUNT_BIG(*)",
        };
        Statement {
            sql: format!("SELECT {count} FROM {}", self.quote(table.as_str())),
            params: vec![],
        }
    }

    /// Every row in key order; a keyless table by every column, an order that does not
    /// depend on how the rows are stored.
    fn select_in_key_order(self, schema: &TableSchema) -> Statement {
        let cols: Vec<String> = schema
            .columns
            .iter()
            .map(|c| self.quote(c.name.as_str()))
            .collect();
        let order = if schema.primary_key.is_empty() {
            cols.clone()
        } else {
            schema
                .primary_key
                .iter()
                .map(|k| self.quote(k.as_str()))
                .collect()
        };
        Statement {
            sql: format!(
                "SELECT {} FROM {} ORDER BY {}",
                cols.join(", "),
                self.quote(schema.name.as_str()),
                order.join(", ")
            ),
            params: vec![],
        }
    }

    /// Most rows one INSERT of `columns` columns carries: SQLite binds up to 32766 values,
    /// SQL Server 2100 parameters and 1000 rows per VALUES list.
    fn rows_per_insert(self, columns: usize) -> usize {
        let columns = columns.max(1);
        match self {
            Dialect::Sqlite => (32_000 / columns).clamp(1, 256),
            Dialect::Mssql => (2_000 / columns).clamp(1, 1000),
        }
    }

    /// The text of one INSERT of `values.len() / columns.len()` rows. SQLite binds NULL like
    /// any value, so its text depends only on the row count and is prepared once; SQL Server
    /// has no typeless NULL parameter, so NULLs are written into the text.
    fn insert_rows_sql(self, table: &str, columns: &[String], values: &[Value]) -> String {
        let mut sql = String::with_capacity(64 + values.len() * 7);
        sql.push_str("INSERT INTO ");
        sql.push_str(&self.quote(table));
        sql.push_str(" (");
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&self.quote(c));
        }
        sql.push_str(") VALUES ");
        let mut bound = 0usize;
        for (r, row) in values.chunks(columns.len().max(1)).enumerate() {
            sql.push_str(if r > 0 { ", (" } else { "(" });
            for (i, v) in row.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                match self {
                    Dialect::Sqlite => sql.push('?'),
                    Dialect::Mssql if v.is_null() => sql.push_str("NULL"),
                    Dialect::Mssql => {
                        bound += 1;
                        sql.push_str("@P");
                        sql.push_str(&bound.to_string());
                    }
                }
            }
            sql.push(')');
        }
        sql
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Marks a database as being restored for as long as it lives.
struct Restoring<'a, B: Backend> {
    store: &'a SqlStore<B>,
    db: Name,
}

impl<'a, B: Backend> Restoring<'a, B> {
    fn mark(store: &'a SqlStore<B>, db: &Name) -> Result<Self, DdbError> {
        let mut r = store
            .restoring
            .lock()
            .map_err(|_| DdbError::internal("store lock poisoned by an earlier panic"))?;
        if !r.insert(db.clone()) {
            return Err(DdbError::unavailable(format!(
                "database {db} is being restored already"
            )));
        }
        Ok(Restoring {
            store,
            db: db.clone(),
        })
    }
}

impl<B: Backend> Drop for Restoring<'_, B> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.store.restoring.lock() {
            r.remove(&self.db);
        }
    }
}

/// Rows waiting to be inserted into one table, sent a full INSERT at a time.
struct Batch {
    table: String,
    columns: Vec<String>,
    /// The waiting rows' values, row after row.
    values: Vec<Value>,
    rows: usize,
    per_insert: usize,
    /// SQLite's text for a full INSERT, built once.
    full_sql: Option<String>,
}

impl Batch {
    fn new(d: Dialect, table: &str, columns: Vec<String>) -> Self {
        let per_insert = d.rows_per_insert(columns.len());
        Batch {
            table: table.to_owned(),
            values: Vec::with_capacity(per_insert * columns.len()),
            columns,
            rows: 0,
            per_insert,
            full_sql: None,
        }
    }

    async fn add<C: SqlConn>(
        &mut self,
        conn: &mut C,
        d: Dialect,
        row: Vec<Value>,
    ) -> Result<u64, DdbError> {
        self.values.extend(row);
        self.rows += 1;
        if self.rows >= self.per_insert {
            return self.flush(conn, d).await;
        }
        Ok(0)
    }

    async fn flush<C: SqlConn>(&mut self, conn: &mut C, d: Dialect) -> Result<u64, DdbError> {
        if self.rows == 0 {
            return Ok(0);
        }
        let sql = match (d, &self.full_sql) {
            (Dialect::Sqlite, Some(sql)) if self.rows == self.per_insert => sql.clone(),
            _ => {
                let sql = d.insert_rows_sql(&self.table, &self.columns, &self.values);
                if d == Dialect::Sqlite && self.rows == self.per_insert {
                    self.full_sql = Some(sql.clone());
                }
                sql
            }
        };
        let values = std::mem::replace(
            &mut self.values,
            Vec::with_capacity(self.per_insert * self.columns.len()),
        );
        let params = match d {
            Dialect::Sqlite => values,
            Dialect::Mssql => values.into_iter().filter(|v| !v.is_null()).collect(),
        };
        conn.exec(&Statement { sql, params }).await?;
        let n = self.rows as u64;
        self.rows = 0;
        Ok(n)
    }
}

impl<B: Backend> SqlStore<B> {
    /// See [`crate::store::Store::snapshot`].
    pub(super) async fn take_snapshot(
        &self,
        db: &Name,
        out: SnapshotSink,
        progress: ProgressRef,
    ) -> Result<SnapshotInfo, DdbError> {
        // Existence is decided by the writer check, which also cleans up after crashes.
        if !self.is_verified(db) && self.live_writer(db).await?.is_none() {
            return Err(DdbError::db_not_found(db.as_str()));
        }
        let d = self.backend.dialect();
        let mut conn = self
            .backend
            .snapshot_reader(db)
            .await?
            .ok_or_else(|| DdbError::db_not_found(db.as_str()))?;
        // A snapshot takes as long as the database is big: no query timeout.
        conn.set_deadline(None);
        let mut began = Ok(());
        for sql in d.begin_snapshot_read() {
            began = conn.batch(sql).await;
            if began.is_err() {
                break;
            }
        }
        let result = match began {
            Ok(()) => self.write_snapshot(&mut conn, db, out, &progress).await,
            Err(e) => Err(e),
        };
        for sql in d.end_snapshot_read() {
            if let Err(e) = conn.batch(sql).await {
                tracing::debug!(db = %db, error = %e, "ending a snapshot's read transaction");
            }
        }
        result
    }

    async fn write_snapshot(
        &self,
        conn: &mut B::Conn,
        db: &Name,
        out: SnapshotSink,
        progress: &ProgressRef,
    ) -> Result<SnapshotInfo, DdbError> {
        let d = self.backend.dialect();
        // Read here (not with `read_meta_seq`, which takes any failure for "no seq"): this is
        // the read that fixes the snapshot, and its errors must show.
        let st = Statement {
            sql: format!(
                "SELECT v FROM {} WHERE k = 'applied_seq'",
                d.quote(META_TABLE)
            ),
            params: vec![],
        };
        let seq = match conn.query(&st, &[ColumnType::Int]).await?[..] {
            [ref row] => match row.first() {
                Some(Value::Int(seq)) => *seq as u64,
                _ => 0,
            },
            _ => {
                return Err(DdbError::internal(format!(
                    "database {db} has no applied seq to snapshot"
                )))
            }
        };
        let mut tables = Vec::new();
        for t in table_names(conn, d).await? {
            let schema = load_schema(conn, d, db, &t).await?;
            let rows = match conn.query(&d.count_rows(&t), &[ColumnType::Int]).await?[..] {
                [ref row] => match row.first() {
                    Some(Value::Int(n)) => *n as u64,
                    _ => 0,
                },
                _ => 0,
            };
            tables.push(TableHeader {
                schema: (*schema).clone(),
                rows,
            });
        }
        let header = Header {
            db: db.clone(),
            seq,
            engine: self.backend.kind().to_owned(),
            created_ms: now_ms(),
            tables,
        };
        progress.rows.store(0, Ordering::Relaxed);
        progress
            .total_rows
            .store(header.total_rows(), Ordering::Relaxed);
        let mut writer = Writer::new(out, &header)?;
        let mut done = 0u64;
        for (i, t) in header.tables.iter().enumerate() {
            writer.begin_table(i)?;
            let types: Vec<ColumnType> = t.schema.columns.iter().map(|c| c.ty).collect();
            let st = d.select_in_key_order(&t.schema);
            conn.for_each_row(&st, &types, &mut |row| {
                writer.row(row)?;
                done += 1;
                if done.is_multiple_of(PROGRESS_EVERY) {
                    progress.rows.store(done, Ordering::Relaxed);
                }
                Ok(true)
            })
            .await?;
        }
        let st = Statement {
            sql: format!(
                "SELECT op_id, seq, at FROM {} ORDER BY op_id",
                d.quote(OP_IDS_TABLE)
            ),
            params: vec![],
        };
        let types = [ColumnType::String, ColumnType::Int, ColumnType::Int];
        conn.for_each_row(&st, &types, &mut |row| {
            if let [Value::Str(op_id), Value::Int(seq), Value::Int(at)] = row {
                writer.op_id(&OpIdRecord {
                    op_id: op_id.clone(),
                    seq: *seq as u64,
                    at_ms: *at as u64,
                })?;
            }
            Ok(true)
        })
        .await?;
        let (counts, bytes) = writer.finish()?;
        progress.rows.store(done, Ordering::Relaxed);
        Ok(SnapshotInfo {
            db: db.clone(),
            seq,
            tables: counts.tables,
            rows: counts.rows,
            bytes,
        })
    }

    /// See [`crate::store::Store::restore`].
    pub(super) async fn restore_snapshot(
        &self,
        db: &Name,
        input: SnapshotSource,
        progress: ProgressRef,
    ) -> Result<SnapshotInfo, DdbError> {
        // Everything the header can tell is checked before the database is touched.
        let (mut reader, header) = Reader::open(input)?;
        if &header.db != db {
            return Err(SnapshotError::OtherDb {
                expected: db.to_string(),
                found: header.db.to_string(),
            }
            .into());
        }
        progress.rows.store(0, Ordering::Relaxed);
        progress
            .total_rows
            .store(header.total_rows(), Ordering::Relaxed);
        let _restoring = Restoring::mark(self, db)?;
        let d = self.backend.dialect();
        let existing = self.live_writer(db).await?;
        let fresh = existing.is_none();
        let mut conn = match existing {
            Some(conn) => conn,
            None => self.backend.create(db).await?,
        };
        conn.set_deadline(None);
        let loaded = self
            .load(&mut conn, &mut reader, &header, fresh, &progress)
            .await;
        let counts = match loaded {
            Ok(counts) => counts,
            Err(e) => {
                if conn.in_transaction() {
                    if let Err(e) = conn.batch(d.rollback_sql()).await {
                        tracing::warn!(db = %db, error = %e, "rolling back a failed restore");
                    }
                }
                drop(conn);
                if fresh {
                    self.forget(db);
                    self.backend.remove(db).await?;
                }
                // Rows that break their own key or unique index are a bad snapshot, not a
                // write that lost a race.
                if e.code == ErrorCode::Constraint {
                    return Err(SnapshotError::Corrupt(format!(
                        "its rows break their table's key or a unique index: {}",
                        e.message
                    ))
                    .into());
                }
                return Err(e);
            }
        };
        if let Some(sql) = d.after_restore() {
            if let Err(e) = conn.batch(sql).await {
                tracing::debug!(db = %db, error = %e, "after a restore");
            }
        }
        drop(conn);
        self.forget(db);
        // A DROP_DB at or after the snapshot's seq would have the next start remove the
        // restored database: the snapshot now stands for the database. Cleared after the
        // commit: a crash between the two leaves the dropped state, not a half-restored one.
        let tomb = self.backend.tombstone(db).await?;
        if tomb > 0 && tomb >= header.seq {
            self.backend.set_tombstone(db, 0).await?;
        }
        if let Ok(mut v) = self.verified.lock() {
            v.insert(db.clone());
        }
        progress.rows.store(counts.rows, Ordering::Relaxed);
        Ok(SnapshotInfo {
            db: db.clone(),
            seq: header.seq,
            tables: counts.tables,
            rows: counts.rows,
            bytes: reader.bytes_read(),
        })
    }

    /// Replaces the database's content inside one transaction and commits it once the whole
    /// stream checked out.
    async fn load<R: std::io::Read>(
        &self,
        conn: &mut B::Conn,
        reader: &mut Reader<R>,
        header: &Header,
        fresh: bool,
        progress: &ProgressRef,
    ) -> Result<Counts, DdbError> {
        let d = self.backend.dialect();
        conn.batch(d.begin_sql()).await?;
        if fresh {
            for ddl in d.meta_ddl() {
                conn.batch(&ddl).await?;
            }
        } else {
            for t in table_names(conn, d).await? {
                conn.batch(&d.drop_table(&t)).await?;
            }
            for t in [TABLES_TABLE, OP_IDS_TABLE, META_TABLE] {
                conn.batch(&format!("DELETE FROM {}", d.quote(t))).await?;
            }
        }
        // Tables and their rows first, indexes once the rows are in (one sort each instead of
        // an index update per row).
        for t in &header.tables {
            let bare = TableSchema {
                indexes: Vec::new(),
                ..t.schema.clone()
            };
            conn.batch(&d.create_table(&bare)).await?;
            conn.exec(&d.insert_spec(&t.schema)).await?;
        }
        let mut batch: Option<(usize, Batch)> = None;
        let mut op_ids = Batch::new(
            d,
            OP_IDS_TABLE,
            vec!["op_id".into(), "seq".into(), "at".into()],
        );
        let mut done = 0u64;
        let counts = loop {
            match reader.next_item()? {
                Item::Rows { table, rows } => {
                    if batch.as_ref().is_none_or(|(i, _)| *i != table) {
                        if let Some((_, mut b)) = batch.take() {
                            done += b.flush(conn, d).await?;
                        }
                        let schema = &header.tables[table].schema;
                        let columns = schema.columns.iter().map(|c| c.name.to_string()).collect();
                        batch = Some((table, Batch::new(d, schema.name.as_str(), columns)));
                    }
                    if let Some((_, b)) = batch.as_mut() {
                        for row in rows {
                            done += b.add(conn, d, row).await?;
                        }
                    }
                    progress.rows.store(done, Ordering::Relaxed);
                }
                Item::OpIds(records) => {
                    if let Some((_, mut b)) = batch.take() {
                        done += b.flush(conn, d).await?;
                    }
                    for r in records {
                        let row = vec![
                            Value::Str(r.op_id),
                            Value::Int(r.seq as i64),
                            Value::Int(r.at_ms as i64),
                        ];
                        op_ids.add(conn, d, row).await?;
                    }
                }
                Item::End(counts) => {
                    if let Some((_, mut b)) = batch.take() {
                        done += b.flush(conn, d).await?;
                    }
                    op_ids.flush(conn, d).await?;
                    break counts;
                }
            }
        };
        progress.rows.store(done, Ordering::Relaxed);
        for t in &header.tables {
            let mut current = TableSchema {
                indexes: Vec::new(),
                ..t.schema.clone()
            };
            for ix in &t.schema.indexes {
                for sql in d.create_index(&current, ix) {
                    conn.batch(&sql).await?;
                }
                current.indexes.push(ix.clone());
            }
        }
        for st in d.set_applied_seq(header.seq) {
            conn.exec(&st).await?;
        }
        conn.batch(d.commit_sql()).await?;
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(spec: serde_json::Value) -> TableSchema {
        TableSchema::from_spec(Name::parse("t", "table").unwrap(), &spec).unwrap()
    }

    #[test]
    fn multi_row_inserts_bind_values_and_write_sql_server_nulls_as_text() {
        let cols = vec!["a".to_owned(), "b".to_owned()];
        let values = [
            Value::Int(1),
            Value::Null,
            Value::Null,
            Value::Str("x".into()),
        ];
        assert_eq!(
            Dialect::Sqlite.insert_rows_sql("t", &cols, &values),
            "INSERT INTO \"t\" (\"a\", \"b\") VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            Dialect::Mssql.insert_rows_sql("t", &cols, &values),
            "INSERT INTO [t] ([a], [b]) VALUES (@P1, NULL), (NULL, @P2)"
        );
    }

    #[test]
    fn inserts_stay_within_each_engines_limits() {
        for columns in 1..=crate::op::MAX_COLUMNS {
            let sqlite = Dialect::Sqlite.rows_per_insert(columns);
            assert!(sqlite >= 1 && sqlite * columns <= 32_766, "{columns}");
            let mssql = Dialect::Mssql.rows_per_insert(columns);
            assert!(
                (1..=1000).contains(&mssql) && mssql * columns < 2100,
                "{columns}"
            );
        }
    }

    #[test]
    fn rows_are_read_in_key_order_or_by_every_column() {
        let keyed = schema(json!({"data":{"a":"int","b":"string"},"primary_key":["b","a"]}));
        assert_eq!(
            Dialect::Mssql.select_in_key_order(&keyed).sql,
            "SELECT [a], [b] FROM [t] ORDER BY [b], [a]"
        );
        let keyless = schema(json!({"data":{"a":"int","b":"string"}}));
        assert_eq!(
            Dialect::Sqlite.select_in_key_order(&keyless).sql,
            "SELECT \"a\", \"b\" FROM \"t\" ORDER BY \"a\", \"b\""
        );
    }
}
