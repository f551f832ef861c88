//! Per-database serialisation point between the writer and the log reader, with the
//! database's applied seq once known.

use super::locks::lock;
use crate::error::DdbError;
use crate::name::Name;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub(crate) struct Cursors {
    by_db: Mutex<HashMap<Name, Arc<AsyncMutex<Cursor>>>>,
}

struct Cursor {
    applied: Option<u64>,
}

/// A database held by one writer or the log reader; its applied seq is cached here.
pub(crate) struct CursorGuard {
    guard: OwnedMutexGuard<Cursor>,
    db: Name,
}

impl Cursors {
    /// Waits for `db`'s cursor.
    pub async fn lock(&self, db: &Name) -> CursorGuard {
        let cursor = lock(&self.by_db)
            .entry(db.clone())
            .or_insert_with(|| Arc::new(AsyncMutex::new(Cursor { applied: None })))
            .clone();
        CursorGuard {
            guard: cursor.lock_owned().await,
            db: db.clone(),
        }
    }
}

impl CursorGuard {
    /// The database's applied seq: cached, or asked of the store once.
    pub async fn applied(&mut self, store: &dyn Store) -> Result<u64, DdbError> {
        if let Some(seq) = self.guard.applied {
            return Ok(seq);
        }
        let seq = store.applied_seq(&self.db).await?;
        self.guard.applied = Some(seq);
        Ok(seq)
    }

    pub fn set_applied(&mut self, seq: u64) {
        self.guard.applied = Some(seq);
    }

    /// Forgets the cached seq, so the next reader asks the store (after a failed commit).
    pub fn invalidate(&mut self) {
        self.guard.applied = None;
    }
}
