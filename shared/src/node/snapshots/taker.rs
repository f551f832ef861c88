//! The snapshot taker. Every node keeps its view of the bucket fresh (for heartbeats); the
//! node in mode `master`, and only it, takes snapshots: on schedule, on request
//! (`ddb snapshot`), and when the log is over its limits, after which it trims the log below
//! each database's newest snapshot.

use super::super::locks::lock;
use super::super::snapshot_state::{
    now_ms, request_subject, SnapshotObject, SnapshotProgress, SnapshotReply, SnapshotRequest,
    TakenSnapshot,
};
use super::super::state::NodeRef;
use super::bridge;
use super::trim::over_limits;
use crate::error::{DdbError, ErrorCode};
use crate::heartbeat::Mode;
use crate::log::Log;
use crate::log::LogEntry;
use crate::name::Name;
use crate::op::WriteOp;
use crate::snapshot::Progress;
use futures::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often the schedule and the log's limits are checked.
const TICK: Duration = Duration::from_secs(1);
/// How often every node re-reads the bucket's listing.
const REFRESH: Duration = Duration::from_secs(5);
/// How often a snapshot in progress reports to whoever asked for it.
const PROGRESS_EVERY: Duration = Duration::from_millis(300);

pub(crate) async fn run(node: NodeRef, stop: CancellationToken) {
    let subject = request_subject(&node.subjects);
    let mut requests = loop {
        match node.client.subscribe(subject.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, %subject, "cannot subscribe; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    };
    let log = Log::new(node.client.clone(), node.subjects.clone());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refreshed: Option<Instant> = None;
    let mut scheduled: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            msg = requests.next() => {
                let Some(msg) = msg else { break };
                // Every node hears the request; the master answers it.
                if node.mode() == Mode::Master {
                    tokio::spawn(answer(node.clone(), msg));
                }
            }
            _ = tick.tick() => {
                if refreshed.is_none_or(|t| t.elapsed() >= REFRESH) {
                    refreshed = Some(Instant::now());
                    let n = node.clone();
                    // In its own task: a slow listing never holds up requests.
                    tokio::spawn(async move {
                        if let Err(e) = refresh(&n).await {
                            tracing::debug!(error = %e, "cannot list the snapshot bucket");
                        }
                    });
                }
                let idle = scheduled.as_ref().is_none_or(|h| h.is_finished());
                if node.mode() == Mode::Master && idle {
                    scheduled = Some(tokio::spawn(scheduled_work(node.clone(), log.clone())));
                }
            }
        }
    }
}

/// Re-reads which snapshots are complete (another node may have taken them).
async fn refresh(node: &NodeRef) -> Result<(), DdbError> {
    let bucket = node
        .snapshots
        .bucket(&node.client, &node.subjects, node.cfg.stream.replicas)
        .await?;
    let listing = tokio::time::timeout(REFRESH, bucket.list())
        .await
        .map_err(|_| DdbError::unavailable("listing the snapshot bucket timed out"))??;
    for why in &listing.invalid {
        node.snapshots.report_invalid(why);
    }
    for snaps in listing.snapshots.into_values() {
        if let Some(newest) = snaps.into_iter().last() {
            node.snapshots.note_snapshot(newest);
        }
    }
    Ok(())
}

fn usable_databases(node: &NodeRef) -> Vec<Name> {
    node.catalog
        .databases()
        .into_iter()
        .filter(|d| !node.is_broken(d))
        .filter_map(|d| Name::parse_db(&d).ok())
        .collect()
}

/// One pass of the schedule, then of the log's limits.
async fn scheduled_work(node: NodeRef, log: Log) {
    let settings = node.cfg.snapshots;
    for db in usable_databases(&node) {
        let due = |node: &NodeRef| node.snapshots.due(db.as_str(), &settings, Instant::now());
        if let Err(e) = take_if_wanted(&node, &db, due).await {
            tracing::warn!(node = %node.name(), db = %db, error = %e, "scheduled snapshot failed");
        }
    }
    let (max_bytes, max_age) = (node.cfg.stream.max_bytes, node.cfg.stream.max_age);
    if max_bytes <= 0 && max_age.is_zero() {
        return;
    }
    match log.usage().await {
        Ok(usage) if over_limits(&usage, max_bytes, max_age) => {
            // Debug only: once trimmed, an idle database's last entry (always kept) stays
            // older than --log-max-age-s, and this runs each second with nothing to do.
            tracing::debug!(node = %node.name(), bytes = usage.bytes, entries = usage.messages, oldest_s = usage.oldest.as_secs(), "the log is over its limits: snapshotting and trimming");
            if let Err(e) = trim_log(&node, &log).await {
                tracing::warn!(node = %node.name(), error = %e, "trimming the log failed; retrying next tick");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(node = %node.name(), error = %e, "cannot read the log's size"),
    }
}

/// Brings every database's snapshot up to its last entry and purges its subject below it;
/// a dropped database keeps only its DROP_DB entry and loses its snapshots.
async fn trim_log(node: &NodeRef, log: &Log) -> Result<(), DdbError> {
    for db in usable_databases(node) {
        let Some(last) = log.last_of(&db).await? else {
            continue;
        };
        // A snapshot can only be at or below the database's last entry: one named above it
        // was not taken by ddb, and trusting it would purge entries nothing covers.
        let at_last = |node: &NodeRef| {
            node.snapshots
                .newest(db.as_str())
                .is_some_and(|s| s.seq == last.0)
        };
        let covered = match take_if_wanted(node, &db, |node| !at_last(node)).await? {
            Some(taken) => taken.seq,
            None => last.0,
        };
        if covered > last.0 {
            continue;
        }
        if log.first_seq_of(&db).await?.is_some_and(|f| f < covered) {
            let purged = log.purge_below(&db, covered).await?;
            tracing::info!(node = %node.name(), db = %db, below = covered, purged, "trimmed the log below the newest snapshot");
        }
    }
    // Databases with snapshots that this node no longer has: dropped ones.
    let known: Vec<String> = lock(&node.snapshots.newest).keys().cloned().collect();
    for name in known {
        if node.catalog.databases().contains(&name) {
            continue;
        }
        let Ok(db) = Name::parse_db(&name) else {
            continue;
        };
        let Some((last, payload)) = log.last_of(&db).await? else {
            continue;
        };
        let dropped = LogEntry::decode(&payload, &db).is_ok_and(|e| {
            e.ops
                .last()
                .is_some_and(|o| matches!(*o.op, WriteOp::DropDb { .. }))
        });
        if !dropped {
            continue;
        }
        log.purge_below(&db, last).await?;
        let _one = node.snapshots.taking.lock().await;
        delete_older(node, &db, u64::MAX).await?;
        node.snapshots.forget(&name);
        tracing::info!(node = %node.name(), db = %db, "dropped database: its snapshots deleted and its log kept to the DROP_DB entry");
    }
    Ok(())
}

/// Deletes the snapshots of `db` older than `seq`, uploads of it left unfinished and chunks
/// no object refers to. Only with the taker's lock held (no upload of this node running).
async fn delete_older(node: &NodeRef, db: &Name, seq: u64) -> Result<(), DdbError> {
    let bucket = node
        .snapshots
        .bucket(&node.client, &node.subjects, node.cfg.stream.replicas)
        .await?;
    let listing = bucket.list().await?;
    let old = listing
        .snapshots
        .get(db.as_str())
        .into_iter()
        .flatten()
        .filter(|s| s.seq < seq)
        .map(|s| s.name.clone());
    let partial = listing
        .partial
        .iter()
        .filter(|(d, _)| d == db)
        .map(|(_, n)| n.clone());
    for name in old.chain(partial).collect::<Vec<_>>() {
        bucket.delete(&name).await?;
        tracing::debug!(node = %node.name(), db = %db, object = %name, "deleted an older snapshot");
    }
    // Callers hold the taker's lock: no upload of this node is in flight.
    let orphans = bucket.purge_orphan_chunks().await?;
    if orphans > 0 {
        tracing::info!(node = %node.name(), chunks = orphans, "purged chunks of uploads cut short");
    }
    Ok(())
}

/// Takes a snapshot of `db` now and streams it to the bucket; once it is complete, older
/// ones are deleted. One at a time on this node.
pub(super) async fn take(
    node: &NodeRef,
    db: &Name,
    progress_to: Option<String>,
) -> Result<TakenSnapshot, DdbError> {
    let _one = node.snapshots.taking.lock().await;
    take_in_turn(node, db, progress_to).await
}

/// Takes a snapshot of `db` if `wanted` says one is, asked again once it is this caller's
/// turn: a snapshot another caller took meanwhile (`ddb snapshot`, the schedule, the trim)
/// may be the one wanted, and another of the same seq would only replace it under its name.
async fn take_if_wanted(
    node: &NodeRef,
    db: &Name,
    wanted: impl Fn(&NodeRef) -> bool,
) -> Result<Option<TakenSnapshot>, DdbError> {
    if !wanted(node) {
        return Ok(None);
    }
    let _one = node.snapshots.taking.lock().await;
    if !wanted(node) {
        return Ok(None);
    }
    take_in_turn(node, db, None).await.map(Some)
}

/// [`take`] once the caller holds `node.snapshots.taking`.
async fn take_in_turn(
    node: &NodeRef,
    db: &Name,
    progress_to: Option<String>,
) -> Result<TakenSnapshot, DdbError> {
    let started = Instant::now();
    let bucket = node
        .snapshots
        .bucket(&node.client, &node.subjects, node.cfg.stream.replicas)
        .await?;
    let (sink, tx, rx) = bridge::sink();
    let upload = {
        let (bucket, db) = (bucket.clone(), db.clone());
        tokio::spawn(async move { bucket.upload(&db, &mut bridge::reader(rx)).await })
    };
    let progress = Arc::new(Progress::default());
    let reporter = progress_to.map(|to| {
        let (client, progress, db) = (node.client.clone(), progress.clone(), db.to_string());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            loop {
                tick.tick().await;
                let p = SnapshotProgress {
                    db: db.clone(),
                    rows: progress.rows.load(Ordering::Relaxed),
                    total_rows: progress.total_rows.load(Ordering::Relaxed),
                };
                let body = serde_json::to_vec(&p).unwrap_or_default();
                let _ = client.publish(to.clone(), body.into()).await;
            }
        })
    });
    let result = node
        .store
        .snapshot(db, Box::new(sink), progress.clone())
        .await;
    if let Some(r) = reporter {
        r.abort();
    }
    let info = match result {
        Ok(info) => {
            drop(tx);
            info
        }
        Err(e) => {
            // Fail the upload rather than let it end as if the bytes were whole.
            let _ = tx.send(Err(std::io::Error::other(e.message.clone()))).await;
            drop(tx);
            if let Ok(Ok(partial)) = upload.await {
                let _ = bucket.delete(&partial).await;
            }
            return Err(e);
        }
    };
    let partial = upload
        .await
        .map_err(|e| DdbError::internal(format!("snapshot upload task failed: {e}")))??;
    let object = bucket.complete(&partial, db, info.seq, info.rows).await?;
    let taken = TakenSnapshot {
        db: db.to_string(),
        bucket: bucket.name().to_owned(),
        object: object.clone(),
        seq: info.seq,
        bytes: info.bytes,
        rows: info.rows,
        tables: info.tables,
        millis: started.elapsed().as_millis() as u64,
    };
    node.snapshots.note_snapshot(SnapshotObject {
        name: object,
        db: db.clone(),
        seq: info.seq,
        size: info.bytes,
        modified_ms: now_ms(),
    });
    if let Err(e) = delete_older(node, db, info.seq).await {
        tracing::warn!(node = %node.name(), db = %db, error = %e, "cannot delete older snapshots; retrying after the next one");
    }
    tracing::info!(
        node = %node.name(), db = %db, seq = taken.seq, rows = taken.rows, bytes = taken.bytes,
        millis = taken.millis, object = %taken.object, "snapshot taken"
    );
    Ok(taken)
}

/// Answers `ddb snapshot`.
async fn answer(node: NodeRef, msg: async_nats::Message) {
    let Some(reply) = msg.reply.clone() else {
        return;
    };
    let result = take_requested(&node, &msg.payload).await;
    let body = match result {
        Ok(snapshots) => SnapshotReply {
            ok: true,
            node: node.name().to_owned(),
            snapshots,
            error: None,
        },
        Err(e) => SnapshotReply {
            ok: false,
            node: node.name().to_owned(),
            snapshots: Vec::new(),
            error: Some(crate::reply::ReplyError {
                code: e.code,
                message: e.message,
                op_index: None,
            }),
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    if let Err(e) = node.client.publish(reply, bytes.into()).await {
        tracing::warn!(error = %e, "cannot answer a snapshot request");
    }
}

async fn take_requested(node: &NodeRef, payload: &[u8]) -> Result<Vec<TakenSnapshot>, DdbError> {
    let request: SnapshotRequest = if payload.is_empty() {
        SnapshotRequest::default()
    } else {
        serde_json::from_slice(payload)
            .map_err(|e| DdbError::bad_request(format!("bad snapshot request: {e}")))?
    };
    let dbs = match &request.db {
        Some(raw) => {
            let db = Name::parse_db(raw)?;
            if !usable_databases(node).contains(&db) {
                let why = if node.is_broken(db.as_str()) {
                    "is broken on this node"
                } else {
                    "does not exist"
                };
                return Err(DdbError::new(
                    ErrorCode::DbNotFound,
                    format!("database {db} {why}; no snapshot taken"),
                ));
            }
            vec![db]
        }
        None => usable_databases(node),
    };
    let mut out = Vec::with_capacity(dbs.len());
    for db in dbs {
        out.push(take(node, &db, request.progress.clone()).await?);
    }
    Ok(out)
}
