//! Bootstrap: a database whose next entry says it follows an entry this node never applied
//! (its `prev` is above the database's applied seq) has missed entries that a trimmed log no
//! longer holds. The node restores the newest snapshot that covers the gap, then the log
//! after the snapshot's seq applies as usual.

use super::super::cursor::CursorGuard;
use super::super::state::NodeRef;
use super::bridge;
use crate::error::{DdbError, ErrorCode};
use crate::log::LoggedOp;
use crate::name::Name;
use crate::op::WriteOp;
use crate::snapshot::{Progress, SnapshotInfo};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a long restore says how far it is in the node's log.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What the first entry to apply says about the entries before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gap {
    /// It follows what this node applied (or predates `prev`, or begins the database).
    None,
    /// It follows entry `prev`, which this node never applied.
    Missed { prev: u64 },
    /// It drops a database this node never had, whose earlier entries the log no longer
    /// holds: there is nothing to restore, and nothing to drop.
    DropOfUnknown,
}

/// Whether an entry following entry `prev` (None: written before entries said so) may be
/// applied on a database at `applied`.
pub(crate) fn gap(applied: u64, prev: Option<u64>, ops: &[LoggedOp], has_db: bool) -> Gap {
    let Some(prev) = prev.filter(|p| *p > applied) else {
        return Gap::None;
    };
    let creates = matches!(ops.first().map(|o| &*o.op), Some(WriteOp::CreateDb { .. }));
    if creates && !has_db {
        return Gap::None;
    }
    let drops = !ops.is_empty() && ops.iter().all(|o| matches!(*o.op, WriteOp::DropDb { .. }));
    if drops && !has_db {
        return Gap::DropOfUnknown;
    }
    Gap::Missed { prev }
}

/// Before the entries of `db` from `seq` on are applied: closes a gap in front of them.
/// Returns the seq the database is at now (entries at or below it are not applied), or None
/// when the gap cannot be closed (the database is then marked broken, saying why).
pub(crate) async fn close_gap(
    node: &NodeRef,
    db: &Name,
    cursor: &mut CursorGuard,
    applied: u64,
    seq: u64,
    prev: Option<u64>,
    ops: &[LoggedOp],
) -> Option<u64> {
    let has_db = applied > 0 || node.catalog.databases().iter().any(|d| d == db.as_str());
    match gap(applied, prev, ops, has_db) {
        Gap::None => Some(applied),
        Gap::DropOfUnknown => {
            tracing::info!(node = %node.name(), db = %db, seq, "DROP_DB of a database this node never had (its earlier entries were trimmed): nothing to do");
            cursor.set_applied(seq);
            Some(seq)
        }
        Gap::Missed { prev } => match bootstrap(node, db, applied, prev).await {
            Ok(info) if info.seq >= prev => {
                cursor.set_applied(info.seq);
                node.catalog.note_database(db, true);
                Some(info.seq)
            }
            Ok(info) => {
                let e = DdbError::new(
                    ErrorCode::Internal,
                    format!("the snapshot of {db} restored holds seq {}, below entry {prev} that entry {seq} follows", info.seq),
                );
                node.mark_broken(db, seq, &e);
                None
            }
            Err(e) => {
                node.mark_broken(db, seq, &e);
                None
            }
        },
    }
}

/// Restores `db` from the newest snapshot with a seq of at least `prev` (the entry the log
/// no longer holds). Returns the seq the database is at afterwards. An older snapshot that
/// still covers the gap is tried when a newer one is refused (corrupt, truncated, foreign).
pub(crate) async fn bootstrap(
    node: &NodeRef,
    db: &Name,
    applied: u64,
    prev: u64,
) -> Result<SnapshotInfo, DdbError> {
    let gap = format!(
        "log entries of database {db} after seq {applied} up to seq {prev} are no longer in the log"
    );
    let bucket = node
        .snapshots
        .bucket(&node.client, &node.subjects, node.cfg.stream.replicas)
        .await
        .map_err(|e| DdbError::new(e.code, format!("{gap}, and {}", e.message)))?;
    let listing = bucket
        .list()
        .await
        .map_err(|e| DdbError::new(e.code, format!("{gap}, and {}", e.message)))?;
    for why in &listing.invalid {
        node.snapshots.report_invalid(why);
    }
    let all = listing
        .snapshots
        .get(db.as_str())
        .cloned()
        .unwrap_or_default();
    let newest = all.last().map(|s| s.seq);
    let mut candidates: Vec<_> = all.into_iter().filter(|s| s.seq >= prev).collect();
    if candidates.is_empty() {
        let newest = match newest {
            Some(seq) => format!("the newest snapshot of {db} is at seq {seq}"),
            None => format!("there is no snapshot of {db} in bucket {}", bucket.name()),
        };
        return Err(DdbError::new(
            ErrorCode::Internal,
            format!("{gap} and no snapshot covers them: {newest}; restore it from a backup or drop and recreate it"),
        ));
    }
    let mut refused = Vec::new();
    while let Some(snap) = candidates.pop() {
        tracing::info!(node = %node.name(), db = %db, object = %snap.name, seq = snap.seq, bytes = snap.size, "{gap}: restoring the newest snapshot that covers them");
        match restore_one(node, &bucket, db, &snap.name).await {
            Ok(info) => {
                node.snapshots.note_snapshot(snap);
                return Ok(info);
            }
            Err(e) => {
                tracing::error!(node = %node.name(), db = %db, object = %snap.name, error = %e, "snapshot refused; nothing of it was applied");
                refused.push(format!("{} refused: {}", snap.name, e.message));
            }
        }
    }
    Err(DdbError::new(
        ErrorCode::Internal,
        format!(
            "{gap}, and every snapshot that covers them was refused: {}",
            refused.join("; ")
        ),
    ))
}

async fn restore_one(
    node: &NodeRef,
    bucket: &super::super::snapshot_state::Bucket,
    db: &Name,
    object: &str,
) -> Result<SnapshotInfo, DdbError> {
    let started = Instant::now();
    let input = bucket.open(object).await?;
    let size = input.info().size as u64;
    let (source, tx) = bridge::source();
    let progress = Arc::new(Progress::default());
    node.snapshots.start_restore(db, progress.clone());
    let download = tokio::spawn(bridge::feed(input, tx));
    let ticker = {
        let (node, db, progress) = (node.clone(), db.clone(), progress.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let rows = progress.rows.load(Ordering::Relaxed);
                let total = progress.total_rows.load(Ordering::Relaxed);
                let percent = (total > 0).then(|| rows.min(total) * 100 / total);
                tracing::info!(node = %node.name(), db = %db, rows, total_rows = total, percent, "restoring snapshot");
            }
        })
    };
    let result = node
        .store
        .restore(db, Box::new(source), progress.clone())
        .await;
    ticker.abort();
    node.snapshots.end_restore();
    // The download ends with the restore (it stops when nothing reads any more).
    let downloaded = download.await;
    let info = result?;
    if let Ok(Err(e)) = downloaded {
        // The store took what it read as a whole snapshot, but the object did not end as it
        // should (its digest): the checksummed format should make this impossible.
        tracing::warn!(node = %node.name(), db = %db, object, error = %e, "the object's download ended with an error after the restore completed");
    }
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        node = %node.name(), db = %db, object, seq = info.seq, rows = info.rows, tables = info.tables,
        bytes = size, seconds = secs, rows_per_s = (info.rows as f64 / secs.max(1e-6)) as u64,
        "restored snapshot"
    );
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{parse_request, Limits, Op};

    fn ops(json: &[&str]) -> Vec<LoggedOp> {
        json.iter()
            .map(|j| {
                let r = parse_request(j.as_bytes(), &Limits::default()).expect(j);
                let Op::Write(op) = r.op else { panic!("{j}") };
                LoggedOp {
                    op: Arc::new(op),
                    op_id: r.op_id,
                }
            })
            .collect()
    }

    const CREATE_DB: &str = r#"{"op":"CREATE_DB","db":"d"}"#;
    const DROP_DB: &str = r#"{"op":"DROP_DB","db":"d"}"#;
    const INSERT: &str = r#"{"op":"INSERT","db":"d","table":"t","data":{"id":1}}"#;

    #[test]
    fn an_entry_that_follows_what_was_applied_is_no_gap() {
        let insert = ops(&[INSERT]);
        assert_eq!(gap(7, Some(7), &insert, true), Gap::None);
        // Entries written before snapshots existed say nothing.
        assert_eq!(gap(0, None, &insert, false), Gap::None);
        // Below what was applied (a restore went further): applied anyway is filtered later.
        assert_eq!(gap(9, Some(7), &insert, true), Gap::None);
    }

    #[test]
    fn an_entry_after_one_never_applied_is_a_gap() {
        assert_eq!(
            gap(0, Some(41), &ops(&[INSERT]), false),
            Gap::Missed { prev: 41 }
        );
        assert_eq!(
            gap(12, Some(41), &ops(&[INSERT]), true),
            Gap::Missed { prev: 41 }
        );
    }

    #[test]
    fn a_database_created_again_or_dropped_unseen_needs_no_snapshot() {
        // CREATE_DB after a DROP_DB this node never saw: the database starts from nothing.
        assert_eq!(gap(0, Some(30), &ops(&[CREATE_DB]), false), Gap::None);
        // ...but on a database this node has, a missed entry is still missed.
        assert_eq!(
            gap(5, Some(30), &ops(&[CREATE_DB]), true),
            Gap::Missed { prev: 30 }
        );
        assert_eq!(
            gap(0, Some(30), &ops(&[DROP_DB]), false),
            Gap::DropOfUnknown
        );
        assert_eq!(
            gap(3, Some(30), &ops(&[DROP_DB]), true),
            Gap::Missed { prev: 30 }
        );
        // An entry without ops (not a ddb entry) is no drop.
        assert_eq!(gap(0, Some(30), &[], false), Gap::Missed { prev: 30 });
    }
}
