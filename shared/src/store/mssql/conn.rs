//! Connections: [`MssqlConn`] runs statements on one cached connection, tracks its transaction
//! and discards it when its state is unknown; parameters and result values.

use super::errors::{breaks_connection, mssql_err};
use super::TdsClient;
use crate::error::DdbError;
use crate::sql::Statement;
use crate::store::engine::{deadline_passed, RowSink, SqlConn};
use crate::value::{ColumnType, Value};
use async_trait::async_trait;
use futures::TryStreamExt;
use std::borrow::Cow;
use std::future::Future;
use std::time::Instant;
use tiberius::{ColumnData, ToSql};
use tokio::sync::OwnedMutexGuard;

/// One cached connection, held exclusively. Dropped inside a transaction, in the middle of a
/// request (a cancelled task) or after an I/O error, it closes its TCP connection instead of
/// going back to the cache.
pub struct MssqlConn {
    pub(super) slot: OwnedMutexGuard<Option<TdsClient>>,
    /// Between a `BEGIN TRANSACTION` and its successful COMMIT or ROLLBACK.
    in_txn: bool,
    /// A request was sent and its reply not read to the end (still true if the call was
    /// cancelled): the wire is in an unknown state.
    pub(super) in_flight: bool,
    /// The connection is unusable (I/O error, half-read result) or its transaction was ended
    /// by the server: every later statement fails, and it is never reused.
    broken: bool,
    /// Requests still running at this instant are abandoned (see `bounded`).
    deadline: Option<Instant>,
}

impl MssqlConn {
    pub(super) fn new(slot: OwnedMutexGuard<Option<TdsClient>>) -> Self {
        MssqlConn {
            slot,
            in_txn: false,
            in_flight: false,
            broken: false,
            deadline: None,
        }
    }

    fn client(&mut self) -> tiberius::Result<&mut TdsClient> {
        if self.broken {
            return Err(lost(
                "this SQL Server connection failed earlier and is being discarded",
            ));
        }
        self.slot
            .as_mut()
            .ok_or_else(|| lost("the SQL Server connection is closed"))
    }

    /// Notes the end of a request: the reply is read, and the error (if any) may have left
    /// the connection unusable.
    pub(super) fn finished<T>(&mut self, r: tiberius::Result<T>) -> tiberius::Result<T> {
        self.in_flight = false;
        if let Err(e) = &r {
            if breaks_connection(e) {
                self.broken = true;
            }
        }
        r
    }

    /// Maps a request's error. Inside a transaction, also checks that the transaction survived:
    /// a few errors (a deadlock, a doomed transaction) make SQL Server roll it back, and the
    /// statements after it must not run on their own, outside any transaction.
    async fn settle<T>(&mut self, r: tiberius::Result<T>) -> Result<T, DdbError> {
        let e = match r {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if self.in_txn && !self.broken {
            tracing::debug!(sql = TRANCOUNT_SQL, params = ?Vec::<&str>::new(), "mssql statement");
            self.in_flight = true;
            let count = self.trancount_raw().await;
            match self.finished(count) {
                Ok(n) if n > 0 => {}
                _ => {
                    tracing::warn!(error = %e, "SQL Server ended the transaction after an error; discarding the connection");
                    self.broken = true;
                }
            }
        }
        Err(mssql_err(e))
    }

    async fn trancount_raw(&mut self) -> tiberius::Result<i64> {
        let row = self
            .client()?
            .simple_query(TRANCOUNT_SQL)
            .await?
            .into_row()
            .await?;
        Ok(row
            .and_then(|r| r.try_get::<i64, usize>(0).ok().flatten())
            .unwrap_or(0))
    }

    pub(super) async fn batch_raw(&mut self, sql: &str) -> tiberius::Result<()> {
        drain(self.client()?.simple_query(sql).await).await
    }

    async fn exec_raw(&mut self, st: &Statement) -> tiberius::Result<u64> {
        let params = bind(st)?;
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let result = self.client()?.execute(st.sql.as_str(), &refs).await?;
        Ok(result.rows_affected().iter().sum())
    }

    async fn query_raw(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
    ) -> tiberius::Result<Vec<Vec<Value>>> {
        let params = bind(st)?;
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let mut rows = self
            .client()?
            .query(st.sql.as_str(), &refs)
            .await?
            .into_row_stream();
        let mut out = Vec::new();
        while let Some(row) = rows.try_next().await? {
            out.push(row_values(row, types)?);
        }
        Ok(out)
    }

    async fn for_each_row_raw(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
        sink: &mut RowSink<'_>,
    ) -> tiberius::Result<Result<(), DdbError>> {
        let params = bind(st)?;
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
        let mut rows = self
            .client()?
            .query(st.sql.as_str(), &refs)
            .await?
            .into_row_stream();
        while let Some(row) = rows.try_next().await? {
            match sink(&row_values(row, types)?) {
                Ok(true) => {}
                // The rest of the result is not read: this connection cannot be reused.
                stop => {
                    drop(rows);
                    self.broken = true;
                    return Ok(stop.map(|_| ()));
                }
            }
        }
        Ok(Ok(()))
    }
}

const TRANCOUNT_SQL: &str = "SELECT CAST(@@TRANCOUNT AS BIGINT)";

fn log_statement(st: &Statement) {
    tracing::debug!(sql = %st.sql, params = ?st.param_types(), "mssql statement");
    tracing::trace!(params = ?st.params, "mssql statement values");
}

pub(super) fn log_sql(sql: &str) {
    tracing::debug!(sql = %sql, params = ?Vec::<&str>::new(), "mssql statement");
}

#[async_trait]
impl SqlConn for MssqlConn {
    async fn exec(&mut self, st: &Statement) -> Result<u64, DdbError> {
        log_statement(st);
        self.in_flight = true;
        let r = self.bounded_exec(st).await?;
        let r = self.finished(r);
        self.settle(r).await
    }

    async fn query(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
    ) -> Result<Vec<Vec<Value>>, DdbError> {
        log_statement(st);
        self.in_flight = true;
        let r = self.bounded_query(st, types).await?;
        let r = self.finished(r);
        self.settle(r).await
    }

    async fn for_each_row(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
        sink: &mut RowSink<'_>,
    ) -> Result<(), DdbError> {
        log_statement(st);
        self.in_flight = true;
        let r = self.bounded_rows(st, types, sink).await?;
        let r = self.finished(r);
        self.settle(r).await?
    }

    async fn batch(&mut self, sql: &str) -> Result<(), DdbError> {
        log_sql(sql);
        let effect = txn_effect(sql);
        if effect == Some(TxnEffect::Begin) {
            // Set before sending: a BEGIN whose reply is lost leaves the state unknown.
            self.in_txn = true;
        }
        self.in_flight = true;
        let r = self.bounded_batch(sql).await?;
        let r = self.finished(r);
        if r.is_ok() && effect == Some(TxnEffect::End) {
            self.in_txn = false;
        }
        self.settle(r).await
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    fn in_transaction(&mut self) -> bool {
        // `settle` checks @@TRANCOUNT after every failed statement inside a transaction and
        // marks the connection broken when the server ended it.
        self.in_txn && !self.broken
    }
}

impl MssqlConn {
    // One wrapper per request kind: `bounded` needs the request future while `self` is
    // borrowed for the deadline, so the request is built from a fresh borrow inside.
    async fn bounded_exec(&mut self, st: &Statement) -> Result<tiberius::Result<u64>, DdbError> {
        let deadline = self.deadline;
        let r = with_deadline(deadline, self.exec_raw(st)).await;
        self.after_deadline(r)
    }

    async fn bounded_query(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
    ) -> Result<tiberius::Result<Vec<Vec<Value>>>, DdbError> {
        let deadline = self.deadline;
        let r = with_deadline(deadline, self.query_raw(st, types)).await;
        self.after_deadline(r)
    }

    async fn bounded_rows(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
        sink: &mut RowSink<'_>,
    ) -> Result<tiberius::Result<Result<(), DdbError>>, DdbError> {
        let deadline = self.deadline;
        let r = with_deadline(deadline, self.for_each_row_raw(st, types, sink)).await;
        self.after_deadline(r)
    }

    async fn bounded_batch(&mut self, sql: &str) -> Result<tiberius::Result<()>, DdbError> {
        let deadline = self.deadline;
        let r = with_deadline(deadline, self.batch_raw(sql)).await;
        self.after_deadline(r)
    }

    fn after_deadline<T>(&mut self, r: Option<T>) -> Result<T, DdbError> {
        r.ok_or_else(|| {
            self.broken = true;
            deadline_passed()
        })
    }
}

/// `None` when the deadline passed first. tiberius cannot send an attention to cancel a
/// request, so one that overruns is abandoned with its connection (marked broken by the
/// caller): closing the TCP connection makes SQL Server stop it and roll back its transaction.
async fn with_deadline<T>(
    deadline: Option<Instant>,
    request: impl Future<Output = T>,
) -> Option<T> {
    match deadline {
        None => Some(request.await),
        Some(at) => tokio::time::timeout_at(at.into(), request).await.ok(),
    }
}

impl Drop for MssqlConn {
    fn drop(&mut self) {
        if self.in_txn || self.in_flight || self.broken {
            if let Some(client) = self.slot.take() {
                // Closing the TCP connection makes the server roll back; the next user of
                // this cache slot connects afresh.
                drop(client);
                tracing::debug!(
                    in_transaction = self.in_txn,
                    in_flight = self.in_flight,
                    broken = self.broken,
                    "discarded a SQL Server connection"
                );
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxnEffect {
    Begin,
    End,
}

/// What a batch does to the connection's transaction: `BEGIN TRAN[SACTION]` opens it; `COMMIT`
/// and a `ROLLBACK` of the whole transaction (not `ROLLBACK TRANSACTION savepoint`) end it.
pub(super) fn txn_effect(sql: &str) -> Option<TxnEffect> {
    let upper = sql.trim().trim_end_matches(';').to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let is_tran = |w: &&str| *w == "TRAN" || *w == "TRANSACTION";
    match words.as_slice() {
        ["BEGIN", t, ..] if is_tran(t) => Some(TxnEffect::Begin),
        ["COMMIT", ..] => Some(TxnEffect::End),
        [.., "ROLLBACK"] => Some(TxnEffect::End),
        [.., "ROLLBACK", t] if is_tran(t) => Some(TxnEffect::End),
        _ => None,
    }
}

/// Reads a query stream to its end, so that its errors surface and the connection is ready.
pub(super) async fn drain(
    stream: tiberius::Result<tiberius::QueryStream<'_>>,
) -> tiberius::Result<()> {
    stream?.into_results().await.map(|_| ())
}

fn lost(message: &str) -> tiberius::error::Error {
    tiberius::error::Error::Io {
        kind: std::io::ErrorKind::NotConnected,
        message: message.to_owned(),
    }
}

/// A value bound as a parameter: BIGINT, FLOAT, NVARCHAR or BIT.
pub(super) struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> ColumnData<'_> {
        match self.0 {
            Value::Int(i) => ColumnData::I64(Some(*i)),
            Value::Float(f) => ColumnData::F64(Some(*f)),
            Value::Str(s) => ColumnData::String(Some(Cow::Borrowed(s.as_str()))),
            Value::Bool(b) => ColumnData::Bit(Some(*b)),
            // Refused by `bind`: SQL Server has no typeless NULL parameter.
            Value::Null => ColumnData::I64(None),
        }
    }
}

pub(super) fn bind(st: &Statement) -> tiberius::Result<Vec<Param<'_>>> {
    if st.params.iter().any(Value::is_null) {
        return Err(tiberius::error::Error::Conversion(
            "NULL must be written into the SQL text, not bound (sql/mod.rs does this)".into(),
        ));
    }
    Ok(st.params.iter().map(Param).collect())
}

fn row_values(row: tiberius::Row, types: &[ColumnType]) -> tiberius::Result<Vec<Value>> {
    if row.len() < types.len() {
        return Err(tiberius::error::Error::Conversion(
            format!(
                "expected {} columns, the row has {}",
                types.len(),
                row.len()
            )
            .into(),
        ));
    }
    row.into_iter()
        .zip(types)
        .map(|(data, ty)| read_value(data, *ty))
        .collect()
}

pub(super) fn read_value(data: ColumnData<'static>, ty: ColumnType) -> tiberius::Result<Value> {
    Ok(match (data, ty) {
        (ColumnData::I64(Some(i)), ColumnType::Int) => Value::Int(i),
        (ColumnData::I32(Some(i)), ColumnType::Int) => Value::Int(i64::from(i)),
        (ColumnData::I16(Some(i)), ColumnType::Int) => Value::Int(i64::from(i)),
        (ColumnData::U8(Some(i)), ColumnType::Int) => Value::Int(i64::from(i)),
        (ColumnData::F64(Some(f)), ColumnType::Float) => Value::Float(f),
        (ColumnData::F32(Some(f)), ColumnType::Float) => Value::Float(f64::from(f)),
        (ColumnData::String(Some(s)), ColumnType::String) => Value::Str(s.into_owned()),
        (ColumnData::Bit(Some(b)), ColumnType::Bool) => Value::Bool(b),
        (ColumnData::I64(None), _)
        | (ColumnData::I32(None), _)
        | (ColumnData::I16(None), _)
        | (ColumnData::U8(None), _)
        | (ColumnData::F64(None), _)
        | (ColumnData::F32(None), _)
        | (ColumnData::String(None), _)
        | (ColumnData::Bit(None), _) => Value::Null,
        (other, ty) => {
            return Err(tiberius::error::Error::Conversion(
                format!(
                    "stored value of SQL type {} in a {} column",
                    data_kind(&other),
                    ty.as_str()
                )
                .into(),
            ))
        }
    })
}

/// The SQL type of a value, for messages (never the value itself, which may be huge).
fn data_kind(data: &ColumnData<'_>) -> &'static str {
    match data {
        ColumnData::U8(_) => "tinyint",
        ColumnData::I16(_) => "smallint",
        ColumnData::I32(_) => "int",
        ColumnData::I64(_) => "bigint",
        ColumnData::F32(_) => "real",
        ColumnData::F64(_) => "float",
        ColumnData::Bit(_) => "bit",
        ColumnData::String(_) => "nvarchar",
        ColumnData::Guid(_) => "uniqueidentifier",
        ColumnData::Binary(_) => "varbinary",
        ColumnData::Numeric(_) => "numeric",
        ColumnData::Xml(_) => "xml",
        _ => "date/time",
    }
}
