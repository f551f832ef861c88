//! Applying log entries of one database to the store, exactly once: what the log reader does
//! with what it is delivered and what a writer does after a sequence conflict with the entries
//! it missed. A database's applied seq is committed in the same transaction as its ops.

use super::cursor::CursorGuard;
use super::state::NodeRef;
use crate::error::DdbError;
use crate::log::{LogEntry, LoggedOp};
use crate::name::Name;
use crate::op::WriteOp;
use std::time::Instant;

/// One log message: its stream seq and its body.
pub(crate) struct Entry {
    pub seq: u64,
    pub payload: bytes::Bytes,
}

/// Applies the entries of `db` that the cursor has not seen, in order; an entry that fails
/// marks the database broken on this node.
pub(crate) async fn apply_entries(
    node: &NodeRef,
    db: &Name,
    cursor: &mut CursorGuard,
    entries: Vec<Entry>,
) {
    let applied = match cursor.applied(node.store.as_ref()).await {
        Ok(s) => s,
        Err(e) => {
            node.mark_broken(db, entries[0].seq, &e);
            return;
        }
    };
    node.snapshots
        .note_entries(db, entries.iter().map(|e| (e.seq, e.payload.len())));
    // Each entry with what it says it follows (its `prev`).
    let mut decoded: Vec<(u64, Option<u64>, Vec<LoggedOp>)> = Vec::with_capacity(entries.len());
    // The entry of this database before the one at hand, whether applied or passed over.
    let mut before = applied;
    for e in entries.into_iter().filter(|e| e.seq > applied) {
        let follows = std::mem::replace(&mut before, e.seq);
        match LogEntry::decode(&e.payload, db) {
            Ok(entry) if entry.prev.is_some_and(|p| p < follows) => {
                // Its writer executed it on data without entry `follows`, yet the log took it
                // (a clustered JetStream can take two appends expecting the same last entry
                // around a change of stream leader). Applying it would order its ops after
                // ops its writer never saw, so every node passes over it alike, as the server
                // should have refused it; its writer finds out and writes the ops again.
                tracing::warn!(node = %node.name(), db = %db, seq = e.seq, prev = ?entry.prev, follows, "log entry was appended on a state the log had moved past; passed over on every node");
                node.passed_over(e.seq, entry.ops.iter().filter_map(|o| o.op_id.as_deref()));
                decoded.push((e.seq, None, Vec::new()));
            }
            Ok(entry) => decoded.push((e.seq, entry.prev, entry.ops)),
            Err(err) => {
                // No writer appends an entry it has not executed, so this was not written by
                // ddb: every node skips it alike (recording its seq, so writers can append
                // after it), and says so.
                tracing::error!(node = %node.name(), db = %db, seq = e.seq, error = %err, "log entry is not a valid ddb entry; skipped on every node");
                decoded.push((e.seq, None, Vec::new()));
            }
        }
    }
    let mut applied = applied;
    while !decoded.is_empty() {
        // A run of entries that follow one another; the next run begins where the log was
        // trimmed between two of them (a purge while they were being read), and a gap in
        // front of a run is closed (a snapshot restored) before it is applied.
        let end = (1..decoded.len())
            .find(|&i| matches!(decoded[i].1, Some(p) if p != decoded[i - 1].0))
            .unwrap_or(decoded.len());
        let rest = decoded.split_off(end);
        let (seq, prev, ops) = (decoded[0].0, decoded[0].1, &decoded[0].2);
        let Some(now) =
            super::snapshots::restore::close_gap(node, db, cursor, applied, seq, prev, ops).await
        else {
            return;
        };
        let run: Vec<(u64, Vec<LoggedOp>)> = decoded
            .into_iter()
            .filter(|(seq, _, _)| *seq > now)
            .map(|(seq, _, ops)| (seq, ops))
            .collect();
        match apply_run(node, db, cursor, &run).await {
            Some(last) => applied = last.max(now),
            None => return,
        }
        decoded = rest;
    }
}

/// Applies entries that follow one another; the seq applied last, or None when one failed
/// (the database is then marked broken).
async fn apply_run(
    node: &NodeRef,
    db: &Name,
    cursor: &mut CursorGuard,
    decoded: &[(u64, Vec<LoggedOp>)],
) -> Option<u64> {
    let mut last = 0;
    // CREATE_DB and DROP_DB begin or end a database: such entries go alone.
    let mut start = 0;
    while start < decoded.len() {
        let alone = touches_db_lifecycle(&decoded[start].1);
        let mut end = start + 1;
        if !alone {
            while end < decoded.len() && !touches_db_lifecycle(&decoded[end].1) {
                end += 1;
            }
        }
        let chunk = &decoded[start..end];
        match apply_chunk(node, db, chunk).await {
            Ok(()) => {
                last = chunk[chunk.len() - 1].0;
                cursor.set_applied(last);
            }
            Err(_) if chunk.len() > 1 => {
                // Find the entry that fails by applying one at a time.
                for one in chunk {
                    match apply_chunk(node, db, std::slice::from_ref(one)).await {
                        Ok(()) => {
                            last = one.0;
                            cursor.set_applied(last);
                        }
                        Err(e) => {
                            node.mark_broken(db, one.0, &e);
                            return None;
                        }
                    }
                }
            }
            Err(e) => {
                node.mark_broken(db, chunk[0].0, &e);
                return None;
            }
        }
        start = end;
    }
    Some(last)
}

fn touches_db_lifecycle(ops: &[LoggedOp]) -> bool {
    ops.iter()
        .any(|o| matches!(*o.op, WriteOp::CreateDb { .. } | WriteOp::DropDb { .. }))
}

async fn apply_chunk(
    node: &NodeRef,
    db: &Name,
    chunk: &[(u64, Vec<LoggedOp>)],
) -> Result<(), DdbError> {
    let started = Instant::now();
    // Replaying the log is never cut short: it applies what a writer already applied.
    let mut txn = node.store.begin(db, None).await?;
    let mut ops = Vec::new();
    // Each op's entry and name, to say which one failed.
    let mut origin = Vec::new();
    for (seq, logged) in chunk {
        for o in logged {
            ops.push(o.op.clone());
            origin.push((*seq, o.op.name()));
        }
    }
    let results = txn.execute(ops).await;
    if let Some(i) = results.iter().position(Result::is_err) {
        let _ = txn.rollback().await;
        let e = results
            .into_iter()
            .nth(i)
            .and_then(Result::err)
            .unwrap_or_else(|| DdbError::internal("unknown failure"));
        return Err(DdbError::new(
            e.code,
            format!(
                "entry {}, {} on {db}: {}",
                origin[i].0, origin[i].1, e.message
            ),
        ));
    }
    let last = chunk[chunk.len() - 1].0;
    txn.remember_op_ids(
        chunk
            .iter()
            .flat_map(|(_, ops)| ops.iter().filter_map(|o| o.op_id.clone()))
            .collect(),
    );
    txn.commit(last).await?;
    metrics::histogram!(super::metrics::STORE_SECONDS, "phase" => "apply")
        .record(started.elapsed().as_secs_f64());
    node.committed(
        db,
        last,
        chunk
            .iter()
            .flat_map(|(seq, ops)| ops.iter().map(move |o| (*seq, &*o.op, o.op_id.as_deref()))),
    );
    tracing::debug!(
        node = %node.name(), db = %db, first = chunk[0].0, last, entries = chunk.len(),
        micros = started.elapsed().as_micros() as u64, "applied"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{parse_request, Limits, Op};

    fn logged(json: &str) -> LoggedOp {
        let request = parse_request(json.as_bytes(), &Limits::default()).expect("valid request");
        let Op::Write(op) = request.op else {
            panic!("not a write: {json}")
        };
        LoggedOp {
            op: std::sync::Arc::new(op),
            op_id: request.op_id,
        }
    }

    const CREATE_DB: &str = r#"{"op":"CREATE_DB","db":"d"}"#;
    const DROP_DB: &str = r#"{"op":"DROP_DB","db":"d"}"#;
    const CREATE_TABLE: &str = r#"{"op":"CREATE_TABLE","db":"d","table":"t","data":{"id":"int"}}"#;
    const INSERT: &str = r#"{"op":"INSERT","db":"d","table":"t","data":{"id":1}}"#;
    const DROP_TABLE: &str = r#"{"op":"DROP_TABLE","db":"d","table":"t"}"#;

    #[test]
    fn creating_or_dropping_a_database_goes_alone() {
        assert!(touches_db_lifecycle(&[logged(CREATE_DB)]));
        assert!(touches_db_lifecycle(&[logged(DROP_DB)]));
        // Anywhere in the entry.
        assert!(touches_db_lifecycle(&[logged(INSERT), logged(DROP_DB)]));
        assert!(touches_db_lifecycle(&[logged(CREATE_DB), logged(INSERT)]));
    }

    #[test]
    fn table_ops_and_rows_share_a_transaction() {
        assert!(!touches_db_lifecycle(&[
            logged(CREATE_TABLE),
            logged(INSERT),
            logged(DROP_TABLE)
        ]));
        let tx = r#"{"op":"TRANSACTION","db":"d","ops":[
            {"op":"INSERT","db":"d","table":"t","data":{"id":2}},
            {"op":"DROP_TABLE","db":"d","table":"t"}]}"#;
        assert!(!touches_db_lifecycle(&[logged(tx)]));
    }

    #[test]
    fn an_entry_without_ops_is_no_lifecycle_change() {
        // What an entry ddb did not write decodes to (skipped on every node).
        assert!(!touches_db_lifecycle(&[]));
    }
}
