//! The write path (docs/design.md "Replication" steps 1–4): per database, a queue in arrival order;
//! a worker takes what is waiting, executes it in one store transaction, appends it to the
//! log as one entry with the expected last sequence, and commits with the entry's seq.
//! Nothing is committed that the log does not hold.

use super::apply::{apply_entries, Entry};
use super::cursor::CursorGuard;
use super::job::Job;
use super::locks::lock;
use super::state::NodeRef;
use crate::error::{DdbError, ErrorCode};
use crate::log::{AppendError, LogEntry};
use crate::name::Name;
use crate::op::WriteOp;
use crate::reply::{OpResult, Reply};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A database's worker exits after this long without writes.
const IDLE_EXIT: Duration = Duration::from_secs(60);

type Queue = mpsc::UnboundedSender<Job>;

/// A database's queue, its worker, and the worker's id (to retire the right one).
type Worker = (Queue, JoinHandle<()>, u64);

#[derive(Default)]
pub(crate) struct Writers {
    queues: Mutex<HashMap<Name, Worker>>,
    next_id: AtomicU64,
}

impl Writers {
    /// Queues `job` for its database's worker, starting one if there is none.
    pub fn submit(self: &Arc<Self>, node: &NodeRef, job: Job) {
        let db = job.op.db().clone();
        let mut job = job;
        loop {
            let tx = {
                let mut queues = lock(&self.queues);
                let entry = queues.entry(db.clone()).or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let handle =
                        tokio::spawn(worker(node.clone(), self.clone(), db.clone(), rx, id));
                    (tx, handle, id)
                });
                entry.0.clone()
            };
            match tx.send(job) {
                Ok(()) => return,
                // The worker retired between our lookup and the send: start a new one.
                Err(mpsc::error::SendError(back)) => {
                    job = back;
                    let mut queues = lock(&self.queues);
                    if queues.get(&db).is_some_and(|(q, _, _)| q.same_channel(&tx)) {
                        queues.remove(&db);
                    }
                }
            }
        }
    }

    /// Lets every queued write finish (bounded), for a clean shutdown.
    pub async fn drain(&self, limit: Duration) {
        let all: Vec<_> = {
            let mut queues = lock(&self.queues);
            queues.drain().map(|(_, (_, h, _))| h).collect()
        };
        let _ = tokio::time::timeout(limit, futures::future::join_all(all)).await;
    }

    /// Removes worker `id` from the map if it is still the one serving `db`.
    fn retire(&self, db: &Name, id: u64) -> bool {
        let mut queues = lock(&self.queues);
        match queues.get(db) {
            Some((_, _, current)) if *current == id => {
                queues.remove(db);
                true
            }
            _ => false,
        }
    }
}

async fn worker(
    node: NodeRef,
    writers: Arc<Writers>,
    db: Name,
    mut rx: mpsc::UnboundedReceiver<Job>,
    id: u64,
) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match tokio::time::timeout(IDLE_EXIT, rx.recv()).await {
                Ok(Some(j)) => j,
                Ok(None) => return,
                Err(_) => {
                    if writers.retire(&db, id) {
                        rx.close();
                        while let Ok(j) = rx.try_recv() {
                            process(&node, &db, vec![j]).await;
                        }
                        return;
                    }
                    continue;
                }
            },
        };
        let mut batch = vec![first];
        if batch[0].batchable() {
            while batch.len() < node.cfg.max_batch {
                match rx.try_recv() {
                    Ok(j) if j.batchable() => batch.push(j),
                    Ok(j) => {
                        carry = Some(j);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        process(&node, &db, batch).await;
    }
}

async fn answer(node: &NodeRef, job: Job, result: Result<Reply, DdbError>) {
    let db = job.op.db().to_string();
    job.reply.send(node, job.op.name(), &db, result).await;
}

fn ok_reply(node: &NodeRef, seq: u64, affected: Option<u64>, duplicate: bool) -> Reply {
    let mut r = Reply::ok(node.name());
    r.seq = Some(seq);
    r.affected = affected;
    r.duplicate = duplicate;
    r
}

async fn process(node: &NodeRef, db: &Name, jobs: Vec<Job>) {
    process_with(node, db, jobs, Dedup::ByOpId).await
}

/// Whether an entry of a lone op with an op_id carries it as its `Nats-Msg-Id`.
#[derive(Clone, Copy, PartialEq)]
enum Dedup {
    ByOpId,
    /// The duplicate window names an entry with this op_id that every node passed over:
    /// another with the same id would be taken for it.
    Off,
}

async fn process_with(node: &NodeRef, db: &Name, mut jobs: Vec<Job>, mut dedup: Dedup) {
    // A retry of an op this node has already seen in the log: answer with the original seq.
    let mut fresh = Vec::with_capacity(jobs.len());
    for job in jobs.drain(..) {
        match job.op_id.as_deref().and_then(|id| node.seq_of_op_id(id)) {
            Some(seq) => answer(node, job, Ok(ok_reply(node, seq, None, true))).await,
            None => fresh.push(job),
        }
    }
    if fresh.is_empty() {
        return;
    }
    if node.write_refusal().is_some() {
        for job in fresh {
            let refusal = job
                .reply
                .write_refusal(node)
                .unwrap_or_else(|| DdbError::unavailable("this node stopped taking writes; retry"));
            answer(node, job, Err(refusal)).await;
        }
        return;
    }
    let jobs = fresh;
    if node.is_broken(db.as_str()) {
        let e = DdbError::unavailable(format!(
            "database {db} stopped replicating on node {} (see its heartbeat); write through another node",
            node.name()
        ));
        for job in jobs {
            answer(node, job, Err(e.clone())).await;
        }
        return;
    }
    // Concurrent writers (slaves in failover) each win some appends. A loser reads the
    // entries it missed straight from the log and applies them while it keeps the database
    // locked, then tries again at once, until its time runs out.
    let deadline = Instant::now() + node.cfg.wait_limit * 2;
    let mut cursor = node.cursor(db).await;
    // A retry whose original was applied before this process started (or by another writer,
    // its entry replayed here) is found in the database's own op_id record. Looked up under
    // the database's lock, so no commit of it can be in flight.
    let mut jobs = jobs;
    if jobs.iter().any(|j| j.op_id.is_some()) {
        let mut fresh = Vec::with_capacity(jobs.len());
        for job in jobs {
            let known = match job.op_id.as_deref() {
                Some(id) => node.store.op_id_seq(db, id).await,
                None => Ok(None),
            };
            match known {
                Ok(Some(seq)) => answer(node, job, Ok(ok_reply(node, seq, None, true))).await,
                Ok(None) => fresh.push(job),
                Err(e) => answer(node, job, Err(e)).await,
            }
        }
        if fresh.is_empty() {
            return;
        }
        jobs = fresh;
    }
    while Instant::now() < deadline {
        match try_once(node, db, &mut cursor, &jobs, dedup).await {
            Attempt::Done(results) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    answer(node, job, r).await;
                }
                return;
            }
            Attempt::Duplicate(seq) => {
                drop(cursor);
                let r = node.wait_position(seq, node.cfg.wait_limit).await;
                let op_id = jobs.first().and_then(|j| j.op_id.as_deref());
                if r.is_ok() && was_passed_over(node, db, op_id, seq).await {
                    // That entry never took effect: write the op again, under no msg id.
                    Box::pin(process_with(node, db, jobs, Dedup::Off)).await;
                    return;
                }
                let r = r.map(|()| ok_reply(node, seq, None, true));
                for job in jobs {
                    answer(node, job, r.clone()).await;
                }
                return;
            }
            attempt @ (Attempt::Conflict | Attempt::PassedOver) => {
                if matches!(attempt, Attempt::PassedOver) {
                    tracing::warn!(node = %node.name(), db = %db, "the log took this writer's entry after another that it did not follow; reading the log and writing again");
                    dedup = Dedup::Off;
                } else {
                    tracing::debug!(node = %node.name(), db = %db, "sequence conflict; reading the log");
                }
                if let Err(e) = sync_from_log(node, db, &mut cursor).await {
                    for job in jobs {
                        answer(node, job, Err(e.clone())).await;
                    }
                    return;
                }
                // What the other writer appended may be these very requests, sent again.
                let mut remaining = Vec::with_capacity(jobs.len());
                for job in jobs {
                    match job.op_id.as_deref().and_then(|id| node.seq_of_op_id(id)) {
                        Some(seq) => answer(node, job, Ok(ok_reply(node, seq, None, true))).await,
                        None => remaining.push(job),
                    }
                }
                if remaining.is_empty() {
                    return;
                }
                jobs = remaining;
            }
            Attempt::Split => {
                drop(cursor);
                for job in jobs {
                    Box::pin(process_with(node, db, vec![job], dedup)).await;
                }
                return;
            }
        }
    }
    let e = DdbError::new(
        ErrorCode::Conflict,
        format!("database {db} kept changing under concurrent writers; retry"),
    );
    for job in jobs {
        answer(node, job, Err(e.clone())).await;
    }
}

enum Attempt {
    Done(Vec<Result<Reply, DdbError>>),
    /// The op_id is already in the log at this seq.
    Duplicate(u64),
    Conflict,
    /// The log took the entry, but after another entry of the database than the one it
    /// follows: every node passes over it (see `apply`), so nothing was written.
    PassedOver,
    /// The entry was too large for one message: write the ops one by one.
    Split,
}

async fn try_once(
    node: &NodeRef,
    db: &Name,
    cursor: &mut CursorGuard,
    jobs: &[Job],
    dedup: Dedup,
) -> Attempt {
    let all_fail = |e: DdbError| Attempt::Done(jobs.iter().map(|_| Err(e.clone())).collect());
    let expected = match cursor.applied(node.store.as_ref()).await {
        Ok(s) => s,
        Err(e) => return all_fail(e),
    };
    let t_begin = Instant::now();
    let mut txn = match node.store.begin(db, node.cfg.query_timeout).await {
        Ok(t) => t,
        Err(e) => return all_fail(e),
    };
    let outcomes = txn
        .execute(jobs.iter().map(|j| j.op.clone()).collect())
        .await;
    for e in outcomes.iter().filter_map(|r| r.as_ref().err()) {
        super::metrics::store_error(e);
    }
    // An op cut off at the query timeout can take the whole store transaction with it
    // (SQLite rolls back the transaction of an interrupted write): run the batch's ops one
    // by one, so that only the slow one fails.
    if jobs.len() > 1
        && outcomes
            .iter()
            .any(|r| r.as_ref().is_err_and(|e| e.code == ErrorCode::Timeout))
    {
        let _ = txn.rollback().await;
        return Attempt::Split;
    }
    let logged: Vec<(&WriteOp, Option<&str>)> = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, r)| r.is_ok())
        .map(|(job, _)| (&*job.op, job.op_id.as_deref()))
        .collect();
    txn.remember_op_ids(
        logged
            .iter()
            .filter_map(|(_, id)| id.map(str::to_owned))
            .collect(),
    );
    if logged.is_empty() {
        let _ = txn.rollback().await;
        // Every op failed against this node's data. If another writer (failover) appended
        // since, that data is stale: catch up and try again rather than answer from it (a
        // compare-and-set would fail spuriously, a retried op_id would not be recognised).
        if node
            .log
            .last_seq_of(db)
            .await
            .is_ok_and(|last| last > expected)
        {
            return Attempt::Conflict;
        }
        return Attempt::Done(
            outcomes
                .into_iter()
                .map(|r| r.map(|_| Reply::default()))
                .collect(),
        );
    }
    let entry = LogEntry::encode_ops(node.name(), expected, &logged);
    let msg_id = match jobs {
        [only] if dedup == Dedup::ByOpId => only.op_id.as_deref(),
        _ => None,
    };
    let t_append = Instant::now();
    metrics::histogram!(super::metrics::STORE_SECONDS, "phase" => "execute")
        .record((t_append - t_begin).as_secs_f64());
    metrics::histogram!(super::metrics::GROUP_COMMIT_OPS).record(logged.len() as f64);
    let appended = node.log.append(db, entry, expected, msg_id).await;
    metrics::histogram!(super::metrics::APPEND_SECONDS).record(t_append.elapsed().as_secs_f64());
    tracing::debug!(
        db = %db, ops = logged.len(),
        execute_us = (t_append - t_begin).as_micros() as u64,
        append_us = t_append.elapsed().as_micros() as u64,
        "batch appended"
    );
    match appended {
        Ok(appended) if !appended.duplicate => {
            let seq = appended.seq;
            if node.log.replicated() {
                match follows_directly(node, db, expected, seq).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = txn.rollback().await;
                        return Attempt::PassedOver;
                    }
                    Err(e) => {
                        let _ = txn.rollback().await;
                        return all_fail(DdbError::unavailable(format!(
                            "the log took the write at seq {seq} but could not show that it directly follows entry {expected}, so nothing was committed here ({}); retry with the same op_id to be safe",
                            e.message
                        )));
                    }
                }
            }
            node.progress.note_log_end(seq);
            let t_commit = Instant::now();
            let committed = txn.commit(seq).await;
            metrics::histogram!(super::metrics::STORE_SECONDS, "phase" => "commit")
                .record(t_commit.elapsed().as_secs_f64());
            match committed {
                Ok(()) => {
                    cursor.set_applied(seq);
                    node.committed(db, seq, logged.iter().map(|(op, id)| (seq, *op, *id)));
                }
                Err(e) => {
                    // The log holds the entry; the log reader (or the next writer's catch-up)
                    // applies it here, and does the bookkeeping then.
                    tracing::error!(node = %node.name(), db = %db, seq, error = %e, "commit after append failed; the log reader will apply the entry");
                    cursor.invalidate();
                }
            }
            Attempt::Done(
                outcomes
                    .into_iter()
                    .map(|r| {
                        r.map(|applied| {
                            let mut reply = ok_reply(node, seq, Some(applied.affected), false);
                            reply.results = applied.each.map(|each| {
                                each.into_iter()
                                    .map(|affected| OpResult { affected })
                                    .collect()
                            });
                            reply
                        })
                    })
                    .collect(),
            )
        }
        Ok(appended) => {
            // The op_id is already in the log: never apply it twice.
            let _ = txn.rollback().await;
            Attempt::Duplicate(appended.seq)
        }
        Err(AppendError::Conflict) => {
            let _ = txn.rollback().await;
            Attempt::Conflict
        }
        Err(AppendError::TooLarge) => {
            let _ = txn.rollback().await;
            if jobs.len() > 1 {
                Attempt::Split
            } else {
                all_fail(DdbError::too_large(
                    "the op is larger than the NATS server's max_payload",
                ))
            }
        }
        Err(AppendError::Unavailable(e)) => {
            let _ = txn.rollback().await;
            all_fail(DdbError::unavailable(format!(
                "the log did not confirm the write, so nothing was committed ({e}); retry with the same op_id to be safe"
            )))
        }
    }
}

/// Whether the entry the log took at `seq` is the first of `db` after `expected`. A single
/// JetStream server refuses an append whose expected last entry is not the last; a stream kept
/// by several servers (2.9) can take two appends that expect the same entry around a change of
/// its leader, and then the later one is passed over by every node.
async fn follows_directly(
    node: &NodeRef,
    db: &Name,
    expected: u64,
    seq: u64,
) -> Result<bool, DdbError> {
    // A leader elected a moment ago may not have stored what it acknowledged yet.
    let mut seen = None;
    for _ in 0..3 {
        let first = node.log.entries_after(db, expected, 1).await?;
        seen = match first.first().map(|(s, _)| *s) {
            Some(first) if first == seq => return Ok(true),
            Some(first) if first < seq => return Ok(false),
            other => other,
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(DdbError::unavailable(format!(
        "the log's first entry of {db} after {expected} reads as {seen:?}"
    )))
}

/// Whether the entry at `seq` that JetStream's duplicate window names for `op_id` was passed
/// over: this node remembers so, or, when it does not (it restarted since, or that was long
/// ago), its op_id is recorded at no seq here and the log shows another entry between the one
/// it follows and it. Only a replicated log holds such entries.
async fn was_passed_over(node: &NodeRef, db: &Name, op_id: Option<&str>, seq: u64) -> bool {
    let Some(id) = op_id else {
        return false;
    };
    if node.op_id_passed_over_at(id, seq) {
        return true;
    }
    if !node.log.replicated() || node.seq_of_op_id(id) == Some(seq) {
        return false;
    }
    if matches!(node.store.op_id_seq(db, id).await, Ok(Some(s)) if s == seq) {
        return false;
    }
    let Ok(entry) = node.log.entries_after(db, seq - 1, 1).await else {
        return false;
    };
    let prev = match entry.first() {
        Some((s, payload)) if *s == seq => LogEntry::decode(payload, db).ok().and_then(|e| e.prev),
        _ => None,
    };
    match prev {
        Some(prev) => matches!(follows_directly(node, db, prev, seq).await, Ok(false)),
        None => false,
    }
}

/// After a conflict: apply the entries of `db` this node has not applied yet, read straight
/// from the log, so that the next attempt appends after them.
async fn sync_from_log(
    node: &NodeRef,
    db: &Name,
    cursor: &mut CursorGuard,
) -> Result<(), DdbError> {
    let applied = cursor.applied(node.store.as_ref()).await?;
    let missed = node.log.entries_after(db, applied, 10_000).await?;
    if let Some((last, _)) = missed.last() {
        node.progress.note_log_end(*last);
    }
    let entries = missed
        .into_iter()
        .map(|(seq, payload)| Entry { seq, payload })
        .collect();
    apply_entries(node, db, cursor, entries).await;
    if node.is_broken(db.as_str()) {
        return Err(DdbError::unavailable(format!(
            "database {db} stopped replicating on node {} (see its heartbeat)",
            node.name()
        )));
    }
    Ok(())
}
