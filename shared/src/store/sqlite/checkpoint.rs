//! WAL checkpoints on a thread of their own, never on a committing writer.
//!
//! SQLite's default copies the WAL back into the database file from inside the commit that
//! pushes the WAL past 1,000 pages, fsyncs included: every few thousand small writes, one
//! commit (and the write a client is waiting on) took that long. Write connections here run
//! with `wal_autocheckpoint=0`, and this thread runs a PASSIVE checkpoint (which never blocks
//! the writer or readers, and never waits for them) on its own connection of each database
//! that committed since its last complete checkpoint. After a complete checkpoint the next
//! commit starts the WAL over from its beginning, so the WAL stays about as small as before.

use crate::name::Name;
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often databases that committed are checkpointed. Between two rounds a busy database
/// adds a few hundred pages to its WAL, under the 1,000 at which SQLite would have done it.
const EVERY: Duration = Duration::from_millis(200);

/// The databases being written, each with the checkpointer's connection and the
/// `data_version` that connection saw at its last complete checkpoint.
#[derive(Default)]
pub(super) struct Checkpoints {
    dbs: Mutex<HashMap<Name, Watched>>,
}

struct Watched {
    conn: Connection,
    checkpointed_at: Option<i64>,
    /// The last round failed: the error was logged once, not every round.
    failing: bool,
}

impl Checkpoints {
    /// Starts the thread; `None` when it cannot be started (write connections then keep
    /// SQLite's own checkpoints). The thread ends soon after the last `Arc` is dropped.
    pub(super) fn start(node_dir: &Path) -> Option<Arc<Checkpoints>> {
        let state = Arc::new(Checkpoints::default());
        let weak: Weak<Checkpoints> = Arc::downgrade(&state);
        let spawned = std::thread::Builder::new()
            .name("ddb-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(EVERY);
                let Some(state) = weak.upgrade() else { return };
                state.round();
            });
        match spawned {
            Ok(_) => Some(state),
            Err(e) => {
                tracing::warn!(
                    "no checkpoint thread for {} ({e}): SQLite checkpoints on commit",
                    node_dir.display()
                );
                None
            }
        }
    }

    /// Checkpoints `db` (at `path`) from now on; its write connection must have
    /// `wal_autocheckpoint=0`.
    pub(super) fn watch(&self, db: &Name, path: &Path) {
        let Ok(mut dbs) = self.dbs.lock() else { return };
        if dbs.contains_key(db) {
            return;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match super::connect(path, flags) {
            Ok(conn) => {
                dbs.insert(
                    db.clone(),
                    Watched {
                        conn,
                        checkpointed_at: None,
                        failing: false,
                    },
                );
            }
            Err(e) => tracing::warn!("cannot open {} to checkpoint it: {e}", path.display()),
        }
    }

    /// Stops checkpointing `db` and closes its connection (before its files are removed).
    pub(super) fn forget(&self, db: &Name) {
        if let Ok(mut dbs) = self.dbs.lock() {
            dbs.remove(db);
        }
    }

    pub(super) fn forget_all(&self) {
        if let Ok(mut dbs) = self.dbs.lock() {
            dbs.clear();
        }
    }

    fn round(&self) {
        let Ok(mut dbs) = self.dbs.lock() else { return };
        for (db, w) in dbs.iter_mut() {
            match checkpoint(w) {
                Ok(()) => w.failing = false,
                Err(e) if !w.failing => {
                    w.failing = true;
                    tracing::warn!("checkpoint of {db}: {e}");
                }
                Err(_) => {}
            }
        }
    }
}

fn checkpoint(w: &mut Watched) -> rusqlite::Result<()> {
    // Changes whenever another connection committed: an idle database costs one cheap
    // pragma per round.
    let version: i64 = w.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
    if w.checkpointed_at == Some(version) {
        return Ok(());
    }
    let complete = w
        .conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            let (busy, frames, copied): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            Ok(busy == 0 && frames == copied)
        })?;
    // Incomplete (a reader still uses older frames): again next round.
    if complete {
        w.checkpointed_at = Some(version);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sqlite");
        // The store's VFS: every connection to a file must use the same one.
        let writer = super::super::connect(&path, OpenFlags::default()).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
            )
            .unwrap();
        let checkpoints = Checkpoints::start(dir.path()).expect("a thread");
        let db = Name::parse_db("d").unwrap();
        checkpoints.watch(&db, &path);
        let file_len = || std::fs::metadata(&path).unwrap().len();
        let before = file_len();
        for chunk in 0..20 {
            writer.execute_batch("BEGIN").unwrap();
            for i in 0..500 {
                writer
                    .execute(
                        "INSERT INTO t (id, v) VALUES (?1, ?2)",
                        rusqlite::params![chunk * 500 + i, "x".repeat(100)],
                    )
                    .unwrap();
            }
            writer.execute_batch("COMMIT").unwrap();
        }
        // 10,000 rows of ~100 bytes: about 1 MiB that only a checkpoint puts in the file.
        let deadline = Instant::now() + Duration::from_secs(20);
        while file_len() < before + 900_000 {
            assert!(
                Instant::now() < deadline,
                "not checkpointed: {} bytes",
                file_len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Once a checkpoint is complete, the next commit starts the WAL over instead of
        // growing it.
        let complete = || {
            checkpoints.dbs.lock().unwrap().get(&db).is_some_and(|w| {
                let now: i64 = w
                    .conn
                    .query_row("PRAGMA data_version", [], |r| r.get(0))
                    .unwrap();
                w.checkpointed_at == Some(now)
            })
        };
        while !complete() {
            assert!(Instant::now() < deadline, "no complete checkpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
        let wal = path.with_extension("sqlite-wal");
        let wal_len = std::fs::metadata(&wal).unwrap().len();
        writer
            .execute("INSERT INTO t (id, v) VALUES (-1, 'y')", [])
            .unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), wal_len);

        checkpoints.forget(&db);
        assert!(checkpoints.dbs.lock().unwrap().is_empty());
    }
}
