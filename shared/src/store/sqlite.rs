//! SQLite backend, the zero-setup default: one file per database under the node's data dir
//! (`<db>.sqlite`, WAL, `synchronous=NORMAL`), and `ddb-node.meta` for the node catalog.
//!
//! rusqlite is synchronous: the store runs on its own threads (see `offload`), so a
//! statement blocks only the store thread it runs on. Reads use their own connections, which
//! WAL lets run beside the writer.

use super::engine::{deadline_passed, Backend, RowSink, SqlConn, SqlStore};
use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::sql::{Dialect, Statement};
use crate::value::{ColumnType, Value};
use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

mod checkpoint;

const CATALOG_FILE: &str = "ddb-node.meta";
const DB_SUFFIX: &str = ".sqlite";

/// Opens (creating if needed) a SQLite store rooted at `dir`.
pub fn open(dir: &Path, options: &super::StoreOptions) -> Result<impl super::Store, DdbError> {
    Ok(SqlStore::new(
        SqliteBackend::open(dir, options.sqlite_page_size)?,
        options,
    ))
}

type Pool = Mutex<HashMap<Name, Arc<AsyncMutex<Handle>>>>;

/// Read connections per database: reads run on several threads at once, and one connection
/// serves one read at a time.
type ReadPool = Mutex<HashMap<Name, Vec<Arc<AsyncMutex<Handle>>>>>;

/// Most read connections one database keeps open (the store runs at most a few reads at once).
const MAX_READERS_PER_DB: usize = 8;

pub struct SqliteBackend {
    dir: PathBuf,
    catalog: Mutex<Connection>,
    writers: Pool,
    readers: ReadPool,
    /// The thread that checkpoints the databases' WALs (see `checkpoint`).
    checkpoints: Option<Arc<checkpoint::Checkpoints>>,
    /// Of the database files it creates (see `StoreOptions::sqlite_page_size`).
    page_size: u32,
}

impl SqliteBackend {
    /// The backend of the store rooted at `dir`, whose new files get pages of `page_size`.
    fn open(dir: &Path, page_size: u32) -> Result<SqliteBackend, DdbError> {
        if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
            return Err(DdbError::bad_request(format!(
                "SQLite page size {page_size} is not a power of two from 512 to 65536"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            DdbError::unavailable(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let catalog = open_conn(&dir.join(CATALOG_FILE), Some(page_size))?.conn;
        catalog
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS dropped (db TEXT PRIMARY KEY, seq INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS node (k TEXT PRIMARY KEY, v INTEGER NOT NULL);",
            )
            .map_err(sqlite_err)?;
        Ok(SqliteBackend {
            dir: dir.to_owned(),
            catalog: Mutex::new(catalog),
            writers: Mutex::default(),
            readers: Mutex::default(),
            checkpoints: checkpoint::Checkpoints::start(dir),
            page_size,
        })
    }
}

/// A connection and the deadline its progress handler checks.
pub struct Handle {
    conn: Connection,
    /// Nanoseconds after [`epoch`] at which running statements are interrupted; 0 for none.
    deadline: Arc<AtomicU64>,
}

/// The clock deadlines are measured on (an `Instant` cannot live in an atomic).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_nanos().max(1) as u64
}

impl SqliteBackend {
    fn path(&self, db: &Name) -> PathBuf {
        self.dir.join(format!("{db}{DB_SUFFIX}"))
    }

    /// A free read connection of `db`, opening another while fewer than the maximum exist.
    async fn pooled_reader(&self, db: &Name) -> Result<Option<SqliteConn>, DdbError> {
        let path = self.path(db);
        let busy = {
            let mut pools = self.readers.lock().map_err(poisoned)?;
            let pool = pools.entry(db.clone()).or_default();
            for h in pool.iter() {
                if let Ok(guard) = h.clone().try_lock_owned() {
                    return Ok(Some(SqliteConn(guard)));
                }
            }
            if pool.len() < MAX_READERS_PER_DB {
                None
            } else {
                Some(pool[0].clone())
            }
        };
        if let Some(h) = busy {
            return Ok(Some(SqliteConn(h.lock_owned().await)));
        }
        if !path.exists() {
            return Ok(None);
        }
        let h = Arc::new(AsyncMutex::new(open_conn(&path, None)?));
        let guard = h
            .clone()
            .try_lock_owned()
            .map_err(|_| DdbError::internal("a read connection just opened is in use elsewhere"))?;
        self.readers
            .lock()
            .map_err(poisoned)?
            .entry(db.clone())
            .or_default()
            .push(h);
        Ok(Some(SqliteConn(guard)))
    }

    /// A write connection of `db`: checkpoints are the checkpoint thread's, not its commits'.
    fn open_writer(&self, db: &Name, create: bool) -> Result<Handle, DdbError> {
        let path = self.path(db);
        let h = open_conn(&path, create.then_some(self.page_size))?;
        if let Some(c) = &self.checkpoints {
            h.conn
                .execute_batch("PRAGMA wal_autocheckpoint=0;")
                .map_err(sqlite_err)?;
            c.watch(db, &path);
        }
        Ok(h)
    }

    async fn cached(&self, pool: &Pool, db: &Name) -> Result<Option<SqliteConn>, DdbError> {
        let existing = pool.lock().map_err(poisoned)?.get(db).cloned();
        let handle = match existing {
            Some(h) => h,
            None => {
                let path = self.path(db);
                if !path.exists() {
                    return Ok(None);
                }
                let conn = self.open_writer(db, false)?;
                let h = Arc::new(AsyncMutex::new(conn));
                pool.lock()
                    .map_err(poisoned)?
                    .entry(db.clone())
                    .or_insert(h)
                    .clone()
            }
        };
        Ok(Some(SqliteConn(handle.lock_owned().await)))
    }
}

/// The VFS every connection of the store opens its files with. `unix-excl` takes one
/// process-wide exclusive lock on a database file and keeps the WAL index in the process's
/// heap, so the many read transactions of a point-read load (and every write transaction)
/// take their WAL locks in memory: with the default VFS each one made several `fcntl` calls
/// on the `-shm` file, a fifth of a replica's CPU under point reads. The node is the only
/// process that opens its files; another process (the `sqlite3` shell, a second node on the
/// same data dir) gets "database is locked" until the node stops. Every connection to a file
/// must use the same VFS: a default-VFS connection would keep a WAL index of its own.
const VFS: &str = "unix-excl";

/// Opens a connection to one of the store's files (see [`VFS`]).
fn connect(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    Connection::open_with_flags_and_vfs(path, flags, VFS)
}

/// Opens a connection to `path`; with `page_size`, creates the file if it is missing and gives
/// it pages of that size.
fn open_conn(path: &Path, page_size: Option<u32>) -> Result<Handle, DdbError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if page_size.is_some() {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = connect(path, flags).map_err(sqlite_err)?;
    if let Some(size) = page_size {
        // Only a file that has no page yet takes it; WAL mode fixes it from then on.
        conn.execute_batch(&format!("PRAGMA page_size={size};"))
            .map_err(sqlite_err)?;
    }
    // WAL with NORMAL sync: a commit survives a process crash; a power cut may lose the last
    // commits, which the log then replays (the applied seq sits in the same transaction).
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA case_sensitive_like=ON;",
    )
    .map_err(sqlite_err)?;
    // Checked every few thousand VM steps: a statement past its deadline is interrupted
    // (SQLITE_INTERRUPT) and undone, whatever it is doing.
    let deadline = Arc::new(AtomicU64::new(0));
    let seen = deadline.clone();
    conn.progress_handler(
        4096,
        Some(move || {
            let d = seen.load(Ordering::Relaxed);
            d != 0 && nanos_since_epoch(Instant::now()) > d
        }),
    );
    Ok(Handle { conn, deadline })
}

#[async_trait]
impl Backend for SqliteBackend {
    type Conn = SqliteConn;

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn calls_block(&self) -> bool {
        true
    }

    async fn writer(&self, db: &Name) -> Result<Option<SqliteConn>, DdbError> {
        self.cached(&self.writers, db).await
    }

    async fn reader(&self, db: &Name) -> Result<Option<SqliteConn>, DdbError> {
        self.pooled_reader(db).await
    }

    async fn create(&self, db: &Name) -> Result<SqliteConn, DdbError> {
        self.remove(db).await?;
        let conn = self.open_writer(db, true)?;
        let h = Arc::new(AsyncMutex::new(conn));
        self.writers
            .lock()
            .map_err(poisoned)?
            .insert(db.clone(), h.clone());
        Ok(SqliteConn(h.lock_owned().await))
    }

    async fn remove(&self, db: &Name) -> Result<(), DdbError> {
        self.writers.lock().map_err(poisoned)?.remove(db);
        self.readers.lock().map_err(poisoned)?.remove(db);
        if let Some(c) = &self.checkpoints {
            c.forget(db);
        }
        let base = self.path(db);
        for suffix in ["", "-wal", "-shm"] {
            let mut p = base.clone().into_os_string();
            p.push(suffix);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DdbError::internal(format!(
                        "cannot remove {}: {e}",
                        Path::new(&p).display()
                    )))
                }
            }
        }
        Ok(())
    }

    async fn physical(&self) -> Result<Vec<Name>, DdbError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| DdbError::internal(format!("cannot list {}: {e}", self.dir.display())))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            if let Some(stem) = file.strip_suffix(DB_SUFFIX) {
                if let Ok(name) = Name::parse_db(stem) {
                    if name.as_str() == stem {
                        out.push(name);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn tombstone(&self, db: &Name) -> Result<u64, DdbError> {
        let cat = self.catalog.lock().map_err(poisoned)?;
        let seq: Option<i64> = cat
            .query_row(
                "SELECT seq FROM dropped WHERE db = ?1",
                [db.as_str()],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(sqlite_err)?;
        Ok(seq.unwrap_or(0) as u64)
    }

    async fn set_tombstone(&self, db: &Name, seq: u64) -> Result<(), DdbError> {
        let cat = self.catalog.lock().map_err(poisoned)?;
        cat.execute(
            "INSERT INTO dropped (db, seq) VALUES (?1, ?2) ON CONFLICT(db) DO UPDATE SET seq = excluded.seq",
            rusqlite::params![db.as_str(), seq as i64],
        )
        .map_err(sqlite_err)?;
        Ok(())
    }

    async fn position(&self) -> Result<u64, DdbError> {
        let cat = self.catalog.lock().map_err(poisoned)?;
        let v: Option<i64> = cat
            .query_row("SELECT v FROM node WHERE k = 'log_position'", [], |r| {
                r.get(0)
            })
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(sqlite_err)?;
        Ok(v.unwrap_or(0) as u64)
    }

    async fn set_position(&self, seq: u64) -> Result<(), DdbError> {
        let cat = self.catalog.lock().map_err(poisoned)?;
        cat.execute(
            "INSERT INTO node (k, v) VALUES ('log_position', ?1) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            [seq as i64],
        )
        .map_err(sqlite_err)?;
        Ok(())
    }

    async fn close(&self) -> Result<(), DdbError> {
        // Dropping the connections checkpoints the WAL of each database.
        if let Some(c) = &self.checkpoints {
            c.forget_all();
        }
        let writers: Vec<_> = self.writers.lock().map_err(poisoned)?.drain().collect();
        let readers: Vec<_> = self
            .readers
            .lock()
            .map_err(poisoned)?
            .drain()
            .flat_map(|(db, pool)| pool.into_iter().map(move |h| (db.clone(), h)))
            .collect();
        for (_, h) in writers.into_iter().chain(readers) {
            drop(h.lock().await);
        }
        Ok(())
    }
}

pub struct SqliteConn(OwnedMutexGuard<Handle>);

/// A ddb value bound as a SQLite parameter (bools as 0/1), as the store binds it.
pub struct Param<'a>(pub &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Str(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
        })
    }
}

fn read_value(v: ValueRef<'_>, ty: ColumnType) -> Result<Value, DdbError> {
    Ok(match (v, ty) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(i), ColumnType::Int) => Value::Int(i),
        (ValueRef::Integer(i), ColumnType::Bool) => Value::Bool(i != 0),
        (ValueRef::Integer(i), ColumnType::Float) => Value::Float(i as f64),
        (ValueRef::Real(f), ColumnType::Float) => Value::Float(f),
        (ValueRef::Text(t), ColumnType::String) => Value::Str(
            std::str::from_utf8(t)
                .map_err(|e| DdbError::internal(format!("stored text is not UTF-8: {e}")))?
                .to_owned(),
        ),
        (other, ty) => {
            return Err(DdbError::internal(format!(
                "stored value of type {:?} in a {} column",
                other.data_type(),
                ty.as_str()
            )))
        }
    })
}

#[async_trait]
impl SqlConn for SqliteConn {
    async fn exec(&mut self, st: &Statement) -> Result<u64, DdbError> {
        let mut stmt = self.0.conn.prepare_cached(&st.sql).map_err(sqlite_err)?;
        let params: Vec<Param<'_>> = st.params.iter().map(Param).collect();
        let n = stmt
            .execute(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite_err)?;
        Ok(n as u64)
    }

    async fn query(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
    ) -> Result<Vec<Vec<Value>>, DdbError> {
        let mut out = Vec::new();
        let params: Vec<Param<'_>> = st.params.iter().map(Param).collect();
        let mut stmt = self.0.conn.prepare_cached(&st.sql).map_err(sqlite_err)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite_err)?;
        while let Some(row) = rows.next().map_err(sqlite_err)? {
            let mut values = Vec::with_capacity(types.len());
            for (i, ty) in types.iter().enumerate() {
                values.push(read_value(row.get_ref(i).map_err(sqlite_err)?, *ty)?);
            }
            out.push(values);
        }
        Ok(out)
    }

    async fn for_each_row(
        &mut self,
        st: &Statement,
        types: &[ColumnType],
        sink: &mut RowSink<'_>,
    ) -> Result<(), DdbError> {
        let params: Vec<Param<'_>> = st.params.iter().map(Param).collect();
        let mut stmt = self.0.conn.prepare_cached(&st.sql).map_err(sqlite_err)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(sqlite_err)?;
        let mut values = Vec::with_capacity(types.len());
        while let Some(row) = rows.next().map_err(sqlite_err)? {
            values.clear();
            for (i, ty) in types.iter().enumerate() {
                values.push(read_value(row.get_ref(i).map_err(sqlite_err)?, *ty)?);
            }
            if !sink(&values)? {
                break;
            }
        }
        Ok(())
    }

    fn in_transaction(&mut self) -> bool {
        !self.0.conn.is_autocommit()
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        let at = deadline.map_or(0, nanos_since_epoch);
        self.0.deadline.store(at, Ordering::Relaxed);
    }

    async fn batch(&mut self, sql: &str) -> Result<(), DdbError> {
        self.0.conn.execute_batch(sql).map_err(sqlite_err)
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        // A transaction abandoned mid-way (a cancelled task) must not leak into the next user.
        if !self.0.conn.is_autocommit() {
            let _ = self.0.conn.execute_batch("ROLLBACK");
        }
    }
}

fn poisoned<T>(_: T) -> DdbError {
    DdbError::internal("store lock poisoned by an earlier panic")
}

fn sqlite_err(e: rusqlite::Error) -> DdbError {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let message = msg.clone().unwrap_or_else(|| e.to_string());
            match f.code {
                C::ConstraintViolation => DdbError::new(ErrorCode::Constraint, message),
                C::DatabaseBusy | C::DatabaseLocked => DdbError::unavailable(message),
                C::TooBig => DdbError::too_large(message),
                C::OperationInterrupted => deadline_passed(),
                _ => DdbError::internal(message),
            }
        }
        _ => DdbError::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_size(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn a_database_the_store_creates_has_the_configured_page_size() {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(dir.path(), 2048).unwrap();
        let db = Name::parse_db("shop").unwrap();
        let conn = backend.create(&db).await.unwrap();
        // Pages are sized by the first write; a table makes one.
        conn.0
            .conn
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        assert_eq!(page_size(&conn.0.conn), 2048);
        assert_eq!(page_size(&backend.catalog.lock().unwrap()), 2048);
    }

    #[test]
    fn a_file_keeps_the_page_size_it_was_made_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sqlite");
        let made = open_conn(&path, Some(1024)).unwrap();
        made.conn
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap();
        drop(made);
        let reopened = open_conn(&path, Some(8192)).unwrap();
        assert_eq!(page_size(&reopened.conn), 1024);
    }

    #[test]
    fn a_page_size_sqlite_cannot_use_is_refused_before_anything_is_made() {
        for bad in [0, 256, 1000, 131_072] {
            let dir = tempfile::tempdir().unwrap();
            let at = dir.path().join("node");
            let e = SqliteBackend::open(&at, bad).err().expect("refused");
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad}: {e:?}");
            assert!(e.message.contains(&bad.to_string()), "{}", e.message);
            assert!(!at.exists(), "{bad}: the data dir was made");
        }
    }
}
