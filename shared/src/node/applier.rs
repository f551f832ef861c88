//! The apply path (docs/design.md "Replication" step 5): read the whole log in order through this
//! node's durable consumer and apply each entry exactly once. A database's applied seq is
//! committed in the same transaction as its ops, so a crash anywhere replays nothing twice.
//! While catching up, consecutive entries of one database share one transaction.

use super::delivery::{persistable, Delivery};
use super::state::CursorGuard;
use super::NodeRef;
use crate::error::DdbError;
use crate::log::{LogEntry, LoggedOp, MAX_BATCH_BYTES};
use crate::name::Name;
use crate::op::WriteOp;
use async_nats::jetstream::Message;
use futures::{FutureExt, StreamExt};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Most entries taken from the consumer before applying them.
const MAX_BATCH: usize = 1000;
/// The position is persisted at most this often (it only bounds replay after a restart).
const PERSIST_EVERY: Duration = Duration::from_millis(200);

pub(super) async fn run(node: NodeRef, stop: CancellationToken) {
    let mut persisted_at = Instant::now();
    let mut persisted = node.position();
    let mut delivery = Delivery::new(Instant::now());
    'reconnect: loop {
        let position = node.position();
        let mut messages = tokio::select! {
            _ = stop.cancelled() => break 'reconnect,
            r = node.log.consumer(node.name(), position) => match r {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(node = %node.name(), error = %e, "cannot open the log consumer; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => break 'reconnect,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue 'reconnect,
                    }
                }
            },
        };
        delivery.opened(Instant::now());
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break 'reconnect,
                next = messages.next() => next,
                _ = tokio::time::sleep(PERSIST_EVERY) => {
                    persist(&node, &mut persisted, &mut persisted_at, false).await;
                    let end = node.log_seq.load(Ordering::Relaxed);
                    if delivery.stalled(end, node.position(), Instant::now()) {
                        tracing::warn!(node = %node.name(), position = node.position(), "the log has entries this node was not delivered; reopening the consumer");
                        continue 'reconnect;
                    }
                    continue;
                }
            };
            delivery.delivered(Instant::now());
            let first = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(node = %node.name(), error = %e, "log consumer error; reopening it");
                    continue 'reconnect;
                }
                None => continue 'reconnect,
            };
            let mut bytes = first.payload.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match messages.next().now_or_never() {
                    Some(Some(Ok(m))) => {
                        bytes += m.payload.len();
                        batch.push(m);
                    }
                    _ => break,
                }
            }
            // A later gap means an entry was lost in flight: apply what came before it and
            // reopen the consumer at the gap.
            let seqs = batch
                .iter()
                .map(|m| m.info().ok().map(|i| i.stream_sequence));
            let gap = delivery.check(node.position(), seqs);
            if let Some(g) = gap {
                tracing::warn!(node = %node.name(), expected = g.expected, got = g.got, "gap in the delivered log; reopening the consumer at the gap");
                batch.truncate(g.at);
            }
            apply_batch(&node, &batch).await;
            if gap.is_some() {
                persist(&node, &mut persisted, &mut persisted_at, false).await;
                continue 'reconnect;
            }
            persist(&node, &mut persisted, &mut persisted_at, false).await;
        }
    }
    persist(&node, &mut persisted, &mut persisted_at, true).await;
}

/// Stores the position a restart may resume from: never past an entry a broken database
/// still needs.
async fn persist(node: &NodeRef, persisted: &mut u64, at: &mut Instant, now: bool) {
    if !now && at.elapsed() < PERSIST_EVERY {
        return;
    }
    let position = node.position();
    let safe = match node.broken.lock() {
        Ok(b) => persistable(position, b.values().map(|x| x.seq)),
        Err(_) => position,
    };
    if safe != *persisted {
        match node.store.set_log_position(safe).await {
            Ok(()) => *persisted = safe,
            Err(e) => {
                tracing::warn!(node = %node.name(), error = %e, "cannot persist the log position")
            }
        }
    }
    *at = Instant::now();
}

/// One log message: its stream seq and its body.
pub(super) struct Entry {
    pub seq: u64,
    pub payload: bytes::Bytes,
}

async fn apply_batch(node: &NodeRef, batch: &[Message]) {
    let mut last_seq = node.position();
    // Consecutive entries of one database form one group.
    let mut group: Option<(Name, Vec<Entry>)> = None;
    for msg in batch {
        let Ok(info) = msg.info() else {
            tracing::error!(subject = %msg.subject, "log message without JetStream metadata; ignored");
            continue;
        };
        let seq = info.stream_sequence;
        node.note_log_seq(seq + info.pending);
        if seq <= last_seq {
            continue; // redelivered
        }
        last_seq = seq;
        let Some(db) = node
            .subjects
            .db_of_log_subject(&msg.subject)
            .and_then(|d| Name::parse_db(d).ok())
            .filter(|n| Some(n.as_str()) == node.subjects.db_of_log_subject(&msg.subject))
        else {
            tracing::error!(subject = %msg.subject, seq, "log entry on a subject that names no valid database; ignored");
            continue;
        };
        let entry = Entry {
            seq,
            payload: msg.payload.clone(),
        };
        match &mut group {
            Some((g, entries)) if *g == db => entries.push(entry),
            _ => {
                if let Some((g, entries)) = group.take() {
                    apply_group(node, &g, entries).await;
                }
                group = Some((db, vec![entry]));
            }
        }
    }
    if let Some((g, entries)) = group.take() {
        apply_group(node, &g, entries).await;
    }
    node.position.send_if_modified(|p| {
        if last_seq > *p {
            *p = last_seq;
            true
        } else {
            false
        }
    });
}

async fn apply_group(node: &NodeRef, db: &Name, entries: Vec<Entry>) {
    // Once per group of consecutive entries, not per entry: the label costs an allocation.
    if let Some(last) = entries.last() {
        metrics::gauge!(super::metrics::DB_LOG_SEQ, "db" => db.to_string()).set(last.seq as f64);
    }
    if node.is_broken(db.as_str()) {
        return;
    }
    let mut cursor = node.cursor(db).await;
    apply_entries(node, db, &mut cursor, entries).await;
}

/// Applies the entries of `db` that the cursor has not seen, in order; an entry that fails
/// marks the database broken on this node.
pub(super) async fn apply_entries(
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
    let mut decoded: Vec<(u64, Vec<LoggedOp>)> = Vec::with_capacity(entries.len());
    for e in entries.into_iter().filter(|e| e.seq > applied) {
        match LogEntry::decode(&e.payload, db) {
            Ok(entry) => decoded.push((e.seq, entry.ops)),
            Err(err) => {
                // No writer appends an entry it has not executed, so this was not written by
                // ddb: every node skips it alike (recording its seq, so writers can append
                // after it), and says so.
                tracing::error!(node = %node.name(), db = %db, seq = e.seq, error = %err, "log entry is not a valid ddb entry; skipped on every node");
                decoded.push((e.seq, Vec::new()));
            }
        }
    }
    if decoded.is_empty() {
        return;
    }
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
            Ok(()) => cursor.set_applied(chunk[chunk.len() - 1].0),
            Err(_) if chunk.len() > 1 => {
                // Find the entry that fails by applying one at a time.
                for one in chunk {
                    match apply_chunk(node, db, std::slice::from_ref(one)).await {
                        Ok(()) => cursor.set_applied(one.0),
                        Err(e) => {
                            node.mark_broken(db, one.0, &e);
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                node.mark_broken(db, chunk[0].0, &e);
                return;
            }
        }
        start = end;
    }
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
    for (seq, ops) in chunk {
        for o in ops {
            match &*o.op {
                WriteOp::CreateDb { db } => node.note_database(db, true),
                WriteOp::DropDb { db } => node.note_database(db, false),
                _ => {}
            }
            if let Some(id) = &o.op_id {
                node.remember_op_id(id, *seq);
            }
        }
    }
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
