//! The log reader (docs/design.md "Replication" step 5): read the whole log in order through
//! this node's consumer and apply each entry exactly once (`apply`). While catching up,
//! consecutive entries of one database share one transaction.

use super::apply::{apply_entries, Entry};
use super::delivery::{Delivery, Gap};
use super::log_port::Delivered;
use super::state::NodeRef;
use crate::log::MAX_BATCH_BYTES;
use crate::name::Name;
use futures::{FutureExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Most entries taken from the consumer before applying them.
const MAX_BATCH: usize = 1000;
/// The position is persisted at most this often (it only bounds replay after a restart).
const PERSIST_EVERY: Duration = Duration::from_millis(200);

pub(crate) async fn run(node: NodeRef, stop: CancellationToken) {
    let mut persisted_at = Instant::now();
    let mut persisted = node.position();
    let mut delivery = Delivery::new(Instant::now());
    'reconnect: loop {
        let position = node.position();
        let mut deliveries = tokio::select! {
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
                next = deliveries.next() => next,
                _ = tokio::time::sleep(PERSIST_EVERY) => {
                    persist(&node, &mut persisted, &mut persisted_at, false).await;
                    let end = node.progress.log_end();
                    if delivery.stalled(end, node.position(), Instant::now()) {
                        tracing::warn!(node = %node.name(), position = node.position(), "the log has entries this node was not delivered; reopening the consumer");
                        continue 'reconnect;
                    }
                    continue;
                }
            };
            delivery.delivered(Instant::now());
            let first = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(node = %node.name(), error = %e, "log consumer error; reopening it");
                    continue 'reconnect;
                }
                None => continue 'reconnect,
            };
            let mut bytes = first.payload.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match deliveries.next().now_or_never() {
                    Some(Some(Ok(d))) => {
                        bytes += d.payload.len();
                        batch.push(d);
                    }
                    _ => break,
                }
            }
            // A later gap means an entry was lost in flight: apply what came before it and
            // reopen the consumer at the gap.
            let mut gap = delivery.check(node.position(), batch.iter().map(|d| Some(d.seq)));
            // Trimming (snapshots) purges each database below its own snapshot, which leaves
            // holes in the stream's seqs: a hole the stream itself has is nothing lost.
            while let Some(g) = gap {
                if !node.log.purged(g.expected, g.got).await {
                    break;
                }
                let rest = batch[g.at..].iter().map(|d| Some(d.seq));
                gap = delivery.check(g.got - 1, rest).map(|n| Gap {
                    at: n.at + g.at,
                    ..n
                });
            }
            if let Some(g) = gap {
                tracing::warn!(node = %node.name(), expected = g.expected, got = g.got, "gap in the delivered log; reopening the consumer at the gap");
                batch.truncate(g.at);
            }
            apply_batch(&node, batch).await;
            persist(&node, &mut persisted, &mut persisted_at, false).await;
            if gap.is_some() {
                continue 'reconnect;
            }
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
    let safe = node.catalog.persistable(node.position());
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

async fn apply_batch(node: &NodeRef, batch: Vec<Delivered>) {
    let mut last_seq = node.position();
    // Consecutive entries of one database form one group.
    let mut group: Option<(Name, Vec<Entry>)> = None;
    for d in batch {
        let seq = d.seq;
        node.progress.note_log_end(seq + d.pending);
        if seq <= last_seq {
            continue; // redelivered
        }
        last_seq = seq;
        let Some(db) = node
            .subjects
            .db_of_log_subject(&d.subject)
            .and_then(|name| Name::parse_db(name).ok())
            .filter(|n| Some(n.as_str()) == node.subjects.db_of_log_subject(&d.subject))
        else {
            tracing::error!(subject = %d.subject, seq, "log entry on a subject that names no valid database; ignored");
            continue;
        };
        let entry = Entry {
            seq,
            payload: d.payload,
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
    node.progress.advance_to(last_seq);
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
