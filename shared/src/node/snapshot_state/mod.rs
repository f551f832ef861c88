//! What a node knows about snapshots (DESIGN-NOTES.md "Snapshots"): the bucket they live in,
//! each database's newest one, the entries since, the restore in progress, when one is due,
//! and the messages of `ddb snapshot`. The tasks that take, trim and restore are in
//! `node::snapshots`; `Node` holds this part, so it uses nothing of the node's own.

pub mod bucket;

pub use bucket::{bucket_name, Bucket, SnapshotObject};

use super::locks::lock;
use crate::heartbeat::{DbSnapshot, RestoreStatus, SnapshotStatus};
use crate::name::Name;
use crate::snapshot::ProgressRef;
use crate::subjects::Subjects;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

/// A database is snapshotted after this many new entries...
pub const DEFAULT_EVERY_ENTRIES: u64 = 10_000;
/// ...or this long after its newest snapshot, if it has new entries.
pub const DEFAULT_EVERY_S: u64 = 3600;

/// When the snapshot-taking node takes them (0 turns a criterion off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSettings {
    pub every_entries: u64,
    pub every: Duration,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        SnapshotSettings {
            every_entries: DEFAULT_EVERY_ENTRIES,
            every: Duration::from_secs(DEFAULT_EVERY_S),
        }
    }
}

/// Where `ddb snapshot` asks for a snapshot now; the node in mode `master` answers.
pub fn request_subject(subjects: &Subjects) -> String {
    format!("{}.snapshot", subjects.prefix())
}

/// `ddb snapshot`'s request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRequest {
    /// One database; absent: every database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// A subject to publish [`SnapshotProgress`] on while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// Progress of a snapshot being taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    pub db: String,
    pub rows: u64,
    pub total_rows: u64,
}

/// One snapshot taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakenSnapshot {
    pub db: String,
    pub bucket: String,
    pub object: String,
    pub seq: u64,
    pub bytes: u64,
    pub rows: u64,
    pub tables: u64,
    pub millis: u64,
}

/// The answer to a [`SnapshotRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReply {
    pub ok: bool,
    pub node: String,
    #[serde(default)]
    pub snapshots: Vec<TakenSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::reply::ReplyError>,
}

/// What this node knows about snapshots: the newest complete one of each database, what it
/// is restoring, and the entries seen since each database's newest snapshot.
#[derive(Default)]
pub(crate) struct Snapshots {
    bucket: tokio::sync::OnceCell<Bucket>,
    pub(in crate::node) newest: Mutex<BTreeMap<String, SnapshotObject>>,
    since: Mutex<HashMap<String, Since>>,
    restoring: Mutex<Option<(String, ProgressRef)>>,
    /// One snapshot at a time on this node.
    pub(in crate::node) taking: tokio::sync::Mutex<()>,
    /// Bad object names already reported (each is logged once, not every refresh).
    reported: Mutex<HashSet<String>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Since {
    /// The last entry counted (entries are delivered again after a reconnect).
    last: u64,
    count: u64,
    /// Their payloads' bytes, against the newest snapshot's size.
    bytes: u64,
    /// When the first entry not covered by a snapshot was counted, for `--snapshot-every-s`.
    first_at: Option<std::time::Instant>,
}

pub(in crate::node) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl Snapshots {
    /// Counts the entries of `db` above its newest snapshot, each given as its seq and its
    /// payload's size, for `--snapshot-every-entries`.
    pub fn note_entries(&self, db: &Name, entries: impl Iterator<Item = (u64, usize)>) {
        let floor = lock(&self.newest).get(db.as_str()).map_or(0, |s| s.seq);
        let mut since = lock(&self.since);
        let s = since.entry(db.to_string()).or_default();
        for (seq, bytes) in entries {
            if seq > s.last && seq > floor {
                s.count += 1;
                s.bytes += bytes as u64;
                s.first_at.get_or_insert_with(std::time::Instant::now);
            }
            s.last = s.last.max(seq);
        }
    }

    #[cfg(test)]
    fn entries_since(&self, db: &str) -> u64 {
        lock(&self.since).get(db).map_or(0, |s| s.count)
    }

    /// Whether `db` is due a snapshot at `now`: `every_entries` entries since its newest
    /// snapshot that add up to at least its size, or `every` since the first of them.
    pub fn due(&self, db: &str, settings: &SnapshotSettings, now: std::time::Instant) -> bool {
        let Some(s) = lock(&self.since).get(db).copied() else {
            return false;
        };
        // A database's snapshot is all of it, its log since then only what changed: by
        // count, a big database is due only once that log is as big as its newest snapshot,
        // so writing snapshots never costs more than the log itself does (a database of a
        // few GB under steady writes would otherwise be snapshotted back to back), and a
        // node that bootstraps replays at most about a snapshot's worth of log.
        let newest_size = lock(&self.newest).get(db).map_or(0, |n| n.size);
        let by_entries = settings.every_entries > 0
            && s.count >= settings.every_entries
            && s.bytes >= newest_size;
        let by_time = !settings.every.is_zero()
            && s.count > 0
            && s.first_at
                .is_some_and(|t| now.saturating_duration_since(t) >= settings.every);
        by_entries || by_time
    }

    pub fn newest(&self, db: &str) -> Option<SnapshotObject> {
        lock(&self.newest).get(db).cloned()
    }

    /// Records a snapshot known complete (taken here, or listed in the bucket).
    pub(in crate::node) fn note_snapshot(&self, s: SnapshotObject) {
        let db = s.db.to_string();
        let mut newest = lock(&self.newest);
        if newest.get(&db).is_some_and(|old| old.seq >= s.seq) {
            return;
        }
        let seq = s.seq;
        newest.insert(db.clone(), s);
        drop(newest);
        if let Some(since) = lock(&self.since).get_mut(&db) {
            // Under steady writes entries keep arriving while a snapshot is taken, so some are
            // always above it: the count restarts anyway (from one when there are such
            // entries; how many is not kept, and a snapshot's worth of writes is a small
            // undercount), or the next snapshot would be due at once, every time.
            let above = since.last > seq;
            since.count = u64::from(above);
            since.bytes = 0;
            since.first_at = above.then(std::time::Instant::now);
        }
    }

    pub(in crate::node) fn forget(&self, db: &str) {
        lock(&self.newest).remove(db);
        lock(&self.since).remove(db);
    }

    pub fn start_restore(&self, db: &Name, progress: ProgressRef) {
        *lock(&self.restoring) = Some((db.to_string(), progress));
    }

    pub fn end_restore(&self) {
        *lock(&self.restoring) = None;
    }

    /// For the heartbeat.
    pub fn status(&self) -> SnapshotStatus {
        let now = now_ms();
        let newest = lock(&self.newest)
            .values()
            .map(|s| DbSnapshot {
                db: s.db.to_string(),
                seq: s.seq,
                age_ms: now.saturating_sub(s.modified_ms),
            })
            .collect();
        let restoring = lock(&self.restoring).as_ref().map(|(db, p)| {
            Box::new(RestoreStatus {
                db: db.clone(),
                rows: p.rows.load(Ordering::Relaxed),
                total_rows: p.total_rows.load(Ordering::Relaxed),
            })
        });
        SnapshotStatus { newest, restoring }
    }

    /// The bucket, created on first use (a node whose NATS refuses it still replicates; only
    /// snapshots and restores fail, saying why).
    pub async fn bucket(
        &self,
        client: &async_nats::Client,
        subjects: &Subjects,
        replicas: usize,
    ) -> Result<Bucket, crate::error::DdbError> {
        self.bucket
            .get_or_try_init(|| async {
                let mut js = async_nats::jetstream::new(client.clone());
                js.set_timeout(Duration::from_secs(10));
                Bucket::ensure(&js, subjects, replicas).await
            })
            .await
            .cloned()
    }

    /// Reports a bad object once.
    pub(in crate::node) fn report_invalid(&self, why: &str) {
        if lock(&self.reported).insert(why.to_owned()) {
            tracing::error!(error = %why, "object in the snapshot bucket ignored: it is not a ddb snapshot");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(db: &str, seq: u64, modified_ms: u64) -> SnapshotObject {
        let db = Name::parse_db(db).unwrap();
        SnapshotObject {
            name: bucket::object_name(&db, seq),
            db,
            seq,
            size: 10,
            modified_ms,
        }
    }

    fn three_entries_or_a_minute() -> SnapshotSettings {
        SnapshotSettings {
            every_entries: 3,
            every: Duration::from_secs(60),
        }
    }

    /// Entries of 100 bytes each (the test snapshots are 10 bytes).
    fn sized(seqs: impl IntoIterator<Item = u64>) -> impl Iterator<Item = (u64, usize)> {
        seqs.into_iter().map(|seq| (seq, 100))
    }

    #[test]
    fn a_big_database_is_due_by_count_only_once_its_log_is_as_big_as_its_snapshot() {
        let s = Snapshots::default();
        let db = Name::parse_db("big").unwrap();
        let settings = three_entries_or_a_minute();
        let now = std::time::Instant::now();
        let mut snapshot = object("big", 2, now_ms());
        snapshot.size = 1_000;
        s.note_snapshot(snapshot);
        s.note_entries(&db, [(3, 300), (4, 300), (5, 300)].into_iter());
        assert!(!s.due("big", &settings, now), "3 entries, 900 bytes");
        s.note_entries(&db, [(6, 99)].into_iter());
        assert!(!s.due("big", &settings, now), "999 bytes");
        s.note_entries(&db, [(6, 1)].into_iter());
        assert!(!s.due("big", &settings, now), "a redelivery adds nothing");
        s.note_entries(&db, [(7, 1)].into_iter());
        assert!(s.due("big", &settings, now), "1,000 bytes");
        // The time criterion does not wait for the bytes.
        let mut bigger = object("big", 7, now_ms());
        bigger.size = 1_000_000;
        s.note_snapshot(bigger);
        s.note_entries(&db, [(8, 10), (9, 10), (10, 10)].into_iter());
        assert!(!s.due("big", &settings, now), "3 entries, 30 bytes");
        assert!(s.due("big", &settings, now + Duration::from_secs(61)));
    }

    #[test]
    fn entries_are_counted_once_and_only_above_the_newest_snapshot() {
        let s = Snapshots::default();
        let db = Name::parse_db("shop").unwrap();
        s.note_entries(&db, sized([3, 4, 5]));
        s.note_entries(&db, sized([4, 5, 6])); // redelivered
        assert_eq!(s.entries_since("shop"), 4);
        s.note_snapshot(object("shop", 6, now_ms()));
        assert_eq!(s.entries_since("shop"), 0);
        s.note_entries(&db, sized([6, 7]));
        assert_eq!(s.entries_since("shop"), 1);
        // An older snapshot listed later changes nothing.
        s.note_snapshot(object("shop", 2, now_ms()));
        assert_eq!(s.newest("shop").unwrap().seq, 6);
        assert_eq!(s.entries_since("shop"), 1);
        // Entries that arrived while a snapshot was taken do not make the next one due at
        // once: the count restarts.
        s.note_entries(&db, sized(8..=20));
        assert_eq!(s.entries_since("shop"), 14);
        s.note_snapshot(object("shop", 15, now_ms()));
        assert_eq!(s.entries_since("shop"), 1);
    }

    #[test]
    fn a_database_is_due_after_its_entries_or_its_time() {
        let s = Snapshots::default();
        let db = Name::parse_db("shop").unwrap();
        let settings = three_entries_or_a_minute();
        let now = std::time::Instant::now();
        assert!(!s.due("shop", &settings, now), "nothing written");
        s.note_entries(&db, sized([1, 2]));
        assert!(!s.due("shop", &settings, now));
        assert!(s.due("shop", &settings, now + Duration::from_secs(61)));
        s.note_entries(&db, sized([3]));
        assert!(s.due("shop", &settings, now));
        s.note_snapshot(object("shop", 3, now_ms()));
        assert!(!s.due("shop", &settings, now + Duration::from_secs(3600)));
        let off = SnapshotSettings {
            every_entries: 0,
            every: Duration::ZERO,
        };
        s.note_entries(&db, sized(4..100));
        assert!(!s.due("shop", &off, now + Duration::from_secs(3600)));
    }

    #[test]
    fn status_shows_newest_snapshots_and_a_restore() {
        let s = Snapshots::default();
        s.note_snapshot(object("shop", 9, now_ms() - 5_000));
        let st = s.status();
        assert_eq!(st.newest.len(), 1);
        assert_eq!(st.newest[0].seq, 9);
        assert!(st.newest[0].age_ms >= 5_000, "{:?}", st.newest);
        assert!(st.restoring.is_none());
        let p = std::sync::Arc::new(crate::snapshot::Progress::default());
        p.total_rows.store(200, Ordering::Relaxed);
        p.rows.store(50, Ordering::Relaxed);
        s.start_restore(&Name::parse_db("big").unwrap(), p);
        let r = s.status().restoring.expect("restoring");
        assert_eq!((r.db.as_str(), r.percent()), ("big", Some(25)));
        s.end_restore();
        assert!(s.status().restoring.is_none());
        s.forget("shop");
        assert!(s.status().newest.is_empty());
    }
}
