//! The log reader (docs/design.md "Replication" step 5): read the whole log in order through
//! this node's consumer and apply each entry exactly once (`apply`). While catching up,
//! consecutive entries of one database share one transaction.

use super::apply::{apply_entries, Entry};
use super::delivery::{Delivery, Gap};
use super::log_port::{Delivered, Deliveries};
use super::state::NodeRef;
use crate::heartbeat::Mode;
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
    // When the last apply began.
    let mut began: Option<Instant> = None;
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
            let mut batch = Batch::of(first);
            batch.take_ready(&mut deliveries, node.name());
            // A replica's entries that keep coming wait out the rest of `apply_every` since
            // its last apply began, and what arrives meanwhile shares their transaction. Each
            // commit writes whole pages to the store's WAL (two for a single-row write):
            // committing every entry alone, each replica wrote ~18 MB/s at 2,000 writes/s,
            // and the master's write latency showed it (DESIGN-NOTES "Performance, round
            // two"). A node that takes writes never waits (reads of its own writes wait for
            // this reader); nor does an entry after a quiet spell, or a full batch (catch-up).
            let wait = match began {
                Some(at) if !batch.is_complete() && node.mode() == Mode::Replica => {
                    node.cfg.apply_every.saturating_sub(at.elapsed())
                }
                _ => Duration::ZERO,
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(wait) => batch.take_ready(&mut deliveries, node.name()),
                }
            }
            began = Some(Instant::now());
            let Batch {
                entries: mut batch,
                lost_consumer,
                ..
            } = batch;
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
            if gap.is_some() || lost_consumer {
                continue 'reconnect;
            }
        }
    }
    persist(&node, &mut persisted, &mut persisted_at, true).await;
}

/// Deliveries taken from the consumer to apply together.
struct Batch {
    entries: Vec<Delivered>,
    bytes: usize,
    /// The consumer failed or ended while the batch was taken: reopen it after applying.
    lost_consumer: bool,
}

impl Batch {
    fn of(first: Delivered) -> Self {
        Batch {
            bytes: first.payload.len(),
            entries: vec![first],
            lost_consumer: false,
        }
    }

    /// Nothing more can be taken: the batch is full, or its consumer is gone.
    fn is_complete(&self) -> bool {
        self.lost_consumer || self.entries.len() >= MAX_BATCH || self.bytes >= MAX_BATCH_BYTES
    }

    /// Adds what the consumer already holds, up to a full batch, without waiting.
    fn take_ready(&mut self, deliveries: &mut Deliveries, node: &str) {
        while !self.is_complete() {
            match deliveries.next().now_or_never() {
                Some(Some(Ok(d))) => {
                    self.bytes += d.payload.len();
                    self.entries.push(d);
                }
                Some(Some(Err(e))) => {
                    tracing::warn!(node, error = %e, "log consumer error; reopening it");
                    self.lost_consumer = true;
                    break;
                }
                Some(None) => {
                    self.lost_consumer = true;
                    break;
                }
                None => break,
            }
        }
    }
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
