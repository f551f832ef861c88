//! The store: [`MssqlBackend`] creates, lists, opens and drops SQL Server databases, keeps the
//! node catalog, and caches one writer and one reader connection per database.

use super::conn::{drain, log_sql, MssqlConn};
use super::errors::{mssql_err, poisoned};
use super::naming::{nstring, quote_ident, Naming};
use super::{MssqlConfig, Slot, TdsClient};
use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::sql::{Dialect, Statement};
use crate::store::engine::{Backend, SqlConn};
use crate::value::{ColumnType, Value};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tiberius::Client;
use tokio::net::TcpStream;
use tokio::sync::Mutex as AsyncMutex;
use tokio_util::compat::TokioAsyncWriteCompatExt;

/// How often `remove` tries when another session still holds the database.
const DROP_ATTEMPTS: u32 = 3;
/// How often a plain `DROP DATABASE` (when `SET SINGLE_USER` was refused) tries while other
/// sessions close, waiting 200 ms more each time, at most 1 s: about 8 s in all.
const PLAIN_DROP_ATTEMPTS: u32 = 10;

/// Session settings every connection starts with, whatever the server or login defaults:
/// statement errors leave the transaction usable (savepoints rely on it), row counts are
/// reported, truncation is an error rather than silent, columns declared without NOT NULL are
/// nullable, and long strings come back whole.
const SESSION_SETUP: &str = "SET XACT_ABORT OFF; SET IMPLICIT_TRANSACTIONS OFF; SET NOCOUNT OFF; \
     SET ANSI_WARNINGS ON; SET ANSI_NULLS ON; SET ANSI_PADDING ON; SET ANSI_NULL_DFLT_ON ON; \
     SET CONCAT_NULL_YIELDS_NULL ON; SET QUOTED_IDENTIFIER ON; SET TEXTSIZE 2147483647";

pub struct MssqlBackend {
    pub(super) config: MssqlConfig,
    pub(super) naming: Naming,
    /// The catalog connection; also runs CREATE/DROP DATABASE and lists databases.
    pub(super) admin: Slot,
    pub(super) writers: Mutex<HashMap<Name, Slot>>,
    pub(super) readers: Mutex<HashMap<Name, Slot>>,
}

impl MssqlBackend {
    async fn connect(&self, database: Option<&str>) -> Result<TdsClient, DdbError> {
        let config = self.config.tiberius(database)?;
        let attempt = connect_following_redirects(config);
        let mut client = match self.config.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, attempt).await.map_err(|_| {
                DdbError::unavailable(format!(
                    "timed out after {}s connecting to SQL Server at {}:{}",
                    limit.as_secs(),
                    self.config.host,
                    self.config.port
                ))
            })??,
            None => attempt.await?,
        };
        tracing::debug!(host = %self.config.host, port = self.config.port, database = ?database, "SQL Server connection open");
        log_sql(SESSION_SETUP);
        drain(client.simple_query(SESSION_SETUP).await)
            .await
            .map_err(mssql_err)?;
        Ok(client)
    }

    /// Creates the catalog database and its table if missing, and keeps the connection.
    pub(super) async fn init_catalog(&self) -> Result<(), DdbError> {
        let mut conn = MssqlConn::new(self.admin.clone().lock_owned().await);
        *conn.slot = Some(self.connect(None).await?);
        let cat = &self.naming.catalog;
        match conn
            .batch(&format!(
                "IF DB_ID({}) IS NULL CREATE DATABASE {}",
                nstring(cat),
                quote_ident(cat)
            ))
            .await
        {
            // Another process made it between the check and the CREATE.
            Err(e) if e.code == ErrorCode::DbExists => {}
            other => other?,
        }
        conn.batch(&format!("USE {}", quote_ident(cat))).await?;
        conn.batch(
            "IF OBJECT_ID(N'dropped', N'U') IS NULL \
             CREATE TABLE dropped (db NVARCHAR(128) COLLATE Latin1_General_100_BIN2 PRIMARY KEY, seq BIGINT NOT NULL); \
             IF OBJECT_ID(N'node', N'U') IS NULL \
             CREATE TABLE node (k NVARCHAR(128) COLLATE Latin1_General_100_BIN2 PRIMARY KEY, v BIGINT NOT NULL); \
             IF OBJECT_ID(N'owned', N'U') IS NULL \
             CREATE TABLE owned (db NVARCHAR(128) COLLATE Latin1_General_100_BIN2 PRIMARY KEY)",
        )
        .await
    }

    /// The catalog connection, reconnecting if it was discarded.
    async fn admin(&self) -> Result<MssqlConn, DdbError> {
        let mut guard = self.admin.clone().lock_owned().await;
        if guard.is_none() {
            *guard = Some(self.connect(Some(&self.naming.catalog)).await?);
        }
        Ok(MssqlConn::new(guard))
    }

    /// Whether `db`'s physical database exists and is this node's.
    async fn exists(&self, db: &Name, physical: &str) -> Result<bool, DdbError> {
        let st = Statement {
            sql: "SELECT COUNT_BIG(*) FROM sys.databases WHERE name = @P1 \
                  AND EXISTS (SELECT 1 FROM owned WHERE db = @P2)"
                .to_owned(),
            params: vec![Value::Str(physical.to_owned()), Value::Str(db.to_string())],
        };
        let rows = self.admin().await?.query(&st, &[ColumnType::Int]).await?;
        Ok(count(&rows) > 0)
    }

    async fn owned(&self, admin: &mut MssqlConn) -> Result<HashSet<String>, DdbError> {
        let st = Statement {
            sql: "SELECT db FROM owned".to_owned(),
            params: vec![],
        };
        let rows = admin.query(&st, &[ColumnType::String]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.into_iter().next() {
                Some(Value::Str(db)) => Some(db),
                _ => None,
            })
            .collect())
    }

    async fn cached(
        &self,
        pool: &Mutex<HashMap<Name, Slot>>,
        db: &Name,
    ) -> Result<Option<MssqlConn>, DdbError> {
        let physical = self.naming.physical(db)?;
        let existing = pool.lock().map_err(poisoned)?.get(db).cloned();
        let handle = match existing {
            Some(h) => h,
            None => {
                if !self.exists(db, &physical).await? {
                    return Ok(None);
                }
                let h = Slot::default();
                pool.lock()
                    .map_err(poisoned)?
                    .entry(db.clone())
                    .or_insert(h)
                    .clone()
            }
        };
        let mut guard = handle.clone().lock_owned().await;
        if guard.is_none() {
            match self.connect(Some(&physical)).await {
                Ok(client) => *guard = Some(client),
                // Dropped since it was cached (error 4060: cannot open database).
                Err(e) if e.code == ErrorCode::DbNotFound => {
                    drop(guard);
                    let mut map = pool.lock().map_err(poisoned)?;
                    if map.get(db).is_some_and(|h| Arc::ptr_eq(h, &handle)) {
                        map.remove(db);
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(MssqlConn::new(guard)))
    }
}

const OWN: &str =
    "IF NOT EXISTS (SELECT 1 FROM owned WHERE db = @P1) INSERT INTO owned (db) VALUES (@P1)";
const DISOWN: &str = "DELETE FROM owned WHERE db = @P1";

fn owned_statement(sql: &str, db: &Name) -> Statement {
    Statement {
        sql: sql.to_owned(),
        params: vec![Value::Str(db.to_string())],
    }
}

/// Runs a DROP batch, again while SQL Server says the database is in use (3702), up to
/// `attempts` times; a database already gone (3701) counts as dropped.
async fn drop_retrying(
    admin: &mut MssqlConn,
    db: &Name,
    sql: &str,
    attempts: u32,
) -> Result<(), tiberius::error::Error> {
    let mut attempt = 1;
    loop {
        log_sql(sql);
        admin.in_flight = true;
        let result = admin.batch_raw(sql).await;
        match admin.finished(result) {
            Ok(()) => return Ok(()),
            Err(e) if e.code() == Some(3701) => return Ok(()),
            Err(e) if e.code() == Some(3702) && attempt < attempts => {
                tracing::debug!(db = %db, attempt, "database still in use; dropping again");
                let wait = (200 * u64::from(attempt)).min(1_000);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn count(rows: &[Vec<Value>]) -> i64 {
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n,
        _ => 0,
    }
}

async fn connect_following_redirects(mut config: tiberius::Config) -> Result<TdsClient, DdbError> {
    // Azure SQL and availability groups may send the client to another address, once.
    for _ in 0..2 {
        let addr = config.get_addr();
        let tcp = TcpStream::connect(&addr).await.map_err(|e| {
            DdbError::unavailable(format!("cannot reach SQL Server at {addr}: {e}"))
        })?;
        let _ = tcp.set_nodelay(true);
        match Client::connect(config.clone(), tcp.compat_write()).await {
            Ok(client) => return Ok(client),
            Err(tiberius::error::Error::Routing { host, port }) => {
                tracing::debug!(%host, port, "SQL Server redirected the connection");
                config.host(host);
                config.port(port);
            }
            Err(e) => return Err(mssql_err(e)),
        }
    }
    Err(DdbError::unavailable(
        "SQL Server redirected the connection more than once",
    ))
}

#[async_trait]
impl Backend for MssqlBackend {
    type Conn = MssqlConn;

    fn dialect(&self) -> Dialect {
        Dialect::Mssql
    }

    fn kind(&self) -> &'static str {
        "mssql"
    }

    async fn writer(&self, db: &Name) -> Result<Option<MssqlConn>, DdbError> {
        self.cached(&self.writers, db).await
    }

    async fn reader(&self, db: &Name) -> Result<Option<MssqlConn>, DdbError> {
        self.cached(&self.readers, db).await
    }

    /// A connection of its own, not the cached reader: a snapshot holds it for as long as the
    /// database takes to read, and SEARCHes must not wait for it.
    async fn snapshot_reader(&self, db: &Name) -> Result<Option<MssqlConn>, DdbError> {
        let physical = self.naming.physical(db)?;
        if !self.exists(db, &physical).await? {
            return Ok(None);
        }
        let client = self.connect(Some(&physical)).await?;
        let slot: Slot = Arc::new(AsyncMutex::new(Some(client)));
        Ok(Some(MssqlConn::new(slot.lock_owned().await)))
    }

    async fn create(&self, db: &Name) -> Result<MssqlConn, DdbError> {
        self.remove(db).await?;
        let physical = self.naming.physical(db)?;
        let q = quote_ident(&physical);
        {
            // CREATE DATABASE cannot run inside a transaction: it runs on the catalog
            // connection, which never opens one. The claim goes first, so that a crash right
            // after the CREATE leaves a database this node knows to clean up.
            let mut admin = self.admin().await?;
            admin.exec(&owned_statement(OWN, db)).await?;
            if let Err(e) = admin.batch(&format!("CREATE DATABASE {q}")).await {
                if e.code != ErrorCode::DbExists {
                    return Err(e);
                }
                // Not ours: remove() above leaves other people's databases alone.
                admin.exec(&owned_statement(DISOWN, db)).await?;
                return Err(DdbError::new(
                    ErrorCode::DbExists,
                    format!(
                        "SQL Server already has a database named {physical} that this node did not create; \
                         ddb leaves it alone (drop or rename it, or choose another physical pattern)"
                    ),
                ));
            }
            // Readers see the last committed state instead of waiting for the writer's locks,
            // as SQLite readers do under WAL. Nobody else is connected yet, so this is instant.
            if let Err(e) = admin
                .batch(&format!(
                    "ALTER DATABASE {q} SET READ_COMMITTED_SNAPSHOT ON"
                ))
                .await
            {
                tracing::warn!(db = %db, error = %e, "READ_COMMITTED_SNAPSHOT is off: reads will wait for writes");
            }
        }
        let client = match self.connect(Some(&physical)).await {
            Ok(c) => c,
            Err(e) => {
                let _ = self.remove(db).await;
                return Err(e);
            }
        };
        let h: Slot = Arc::new(AsyncMutex::new(Some(client)));
        self.writers
            .lock()
            .map_err(poisoned)?
            .insert(db.clone(), h.clone());
        Ok(MssqlConn::new(h.lock_owned().await))
    }

    async fn remove(&self, db: &Name) -> Result<(), DdbError> {
        self.writers.lock().map_err(poisoned)?.remove(db);
        self.readers.lock().map_err(poisoned)?.remove(db);
        let physical = self.naming.physical(db)?;
        let q = quote_ident(&physical);
        let exists = format!("IF DB_ID({}) IS NOT NULL", nstring(&physical));
        let mut admin = self.admin().await?;
        if !self.owned(&mut admin).await?.contains(db.as_str()) {
            // Somebody else's database, or none: nothing of ours to remove.
            return Ok(());
        }
        // SINGLE_USER WITH ROLLBACK IMMEDIATE ends every other session in the database (a
        // cached connection still held somewhere), which DROP DATABASE would wait for.
        let single = format!(
            "{exists} BEGIN ALTER DATABASE {q} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE {q} END"
        );
        if let Err(first) = drop_retrying(&mut admin, db, &single, DROP_ATTEMPTS).await {
            if first.code().is_none() {
                // The connection failed, not the statement: nothing else to try on it.
                return Err(mssql_err(first));
            }
            // Refused (no ALTER permission, or a server without SET SINGLE_USER, such as
            // Azure SQL Database): a plain DROP, retried while the other sessions close.
            tracing::warn!(db = %db, error = %first, "SET SINGLE_USER refused; dropping without it");
            let plain = format!("{exists} DROP DATABASE {q}");
            drop_retrying(&mut admin, db, &plain, PLAIN_DROP_ATTEMPTS)
                .await
                .map_err(|e| {
                    let mut err = mssql_err(e);
                    err.message = format!(
                        "{} (after ALTER DATABASE ... SET SINGLE_USER was refused: {first})",
                        err.message
                    );
                    err
                })?;
        }
        admin.exec(&owned_statement(DISOWN, db)).await.map(|_| ())
    }

    async fn physical(&self) -> Result<Vec<Name>, DdbError> {
        let st = Statement {
            // database_id 1 to 4 are master, tempdb, model and msdb.
            sql: "SELECT name FROM sys.databases WHERE database_id > 4".to_owned(),
            params: vec![],
        };
        let mut admin = self.admin().await?;
        let owned = self.owned(&mut admin).await?;
        let rows = admin.query(&st, &[ColumnType::String]).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.into_iter().next() {
                Some(Value::Str(name)) => self.naming.db_of(&name),
                _ => None,
            })
            .filter(|db| owned.contains(db.as_str()))
            .collect())
    }

    async fn tombstone(&self, db: &Name) -> Result<u64, DdbError> {
        let st = Statement {
            sql: "SELECT seq FROM dropped WHERE db = @P1".to_owned(),
            params: vec![Value::Str(db.to_string())],
        };
        let rows = self.admin().await?.query(&st, &[ColumnType::Int]).await?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(Value::Int(seq)) => *seq as u64,
            _ => 0,
        })
    }

    async fn set_tombstone(&self, db: &Name, seq: u64) -> Result<(), DdbError> {
        // Update-then-insert, no MERGE (docs/design.md "Stores"); the catalog connection is this
        // node's only writer of the table.
        let st = Statement {
            sql: "UPDATE dropped SET seq = @P2 WHERE db = @P1; \
                  IF @@ROWCOUNT = 0 INSERT INTO dropped (db, seq) VALUES (@P1, @P2)"
                .to_owned(),
            params: vec![Value::Str(db.to_string()), Value::Int(seq as i64)],
        };
        self.admin().await?.exec(&st).await.map(|_| ())
    }

    async fn position(&self) -> Result<u64, DdbError> {
        let st = Statement {
            sql: "SELECT v FROM node WHERE k = 'log_position'".to_owned(),
            params: vec![],
        };
        let rows = self.admin().await?.query(&st, &[ColumnType::Int]).await?;
        Ok(match rows.first().and_then(|r| r.first()) {
            Some(Value::Int(v)) => *v as u64,
            _ => 0,
        })
    }

    async fn set_position(&self, seq: u64) -> Result<(), DdbError> {
        let st = Statement {
            sql: "UPDATE node SET v = @P1 WHERE k = 'log_position'; \
                  IF @@ROWCOUNT = 0 INSERT INTO node (k, v) VALUES ('log_position', @P1)"
                .to_owned(),
            params: vec![Value::Int(seq as i64)],
        };
        self.admin().await?.exec(&st).await.map(|_| ())
    }

    async fn close(&self) -> Result<(), DdbError> {
        let writers: Vec<_> = self.writers.lock().map_err(poisoned)?.drain().collect();
        let readers: Vec<_> = self.readers.lock().map_err(poisoned)?.drain().collect();
        let slots = writers
            .into_iter()
            .chain(readers)
            .map(|(_, h)| h)
            .chain([self.admin.clone()]);
        for h in slots {
            if let Some(client) = h.lock().await.take() {
                if let Err(e) = client.close().await {
                    tracing::debug!(error = %e, "closing a SQL Server connection");
                }
            }
        }
        Ok(())
    }
}
