//! An in-memory log for unit tests of the node core. It enforces what JetStream enforces and
//! the node relies on: the expected last sequence of a database's subject (conflict), the
//! largest payload (too large), the duplicate window by message id (the original seq comes
//! back, marked duplicate) and delivery in stream order. It can also lose a delivery in
//! flight, as a dying NATS server can, be made unavailable, and purge a database below a seq,
//! leaving holes in the stream's seqs as trimming does. Set as replicated, it can also do what
//! a clustered JetStream 2.9 does around a change of stream leader: store an entry but lose
//! its acknowledgement, and take an append whose expected last entry is no longer the last.

use super::locks::lock;
use super::log_port::{Delivered, Deliveries, LogPort};
use crate::error::DdbError;
use crate::log::{AppendError, Appended};
use crate::name::Name;
use crate::subjects::Subjects;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Clone)]
pub(crate) struct FakeLog {
    shared: Arc<Shared>,
}

struct Shared {
    subjects: Subjects,
    max_payload: usize,
    duplicate_window: Duration,
    state: Mutex<State>,
    /// The last seq, for consumers waiting for more.
    end: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// Entry `i` has seq `i + 1`.
    entries: Vec<Stored>,
    msg_ids: HashMap<String, (u64, Instant)>,
    /// Seqs the next consumer to reach them passes over, once each.
    lose: BTreeSet<u64>,
    unavailable: bool,
    consumers_opened: usize,
    replicated: bool,
    /// The next append is stored but answered as unavailable.
    lose_next_ack: bool,
    /// The next append is taken whatever entry it expects to follow.
    skip_next_expected_check: bool,
}

struct Stored {
    subject: String,
    db: String,
    payload: Bytes,
    /// Removed by a purge: its seq stays taken, a hole.
    purged: bool,
}

impl FakeLog {
    pub fn new(subjects: Subjects, max_payload: usize) -> Self {
        FakeLog {
            shared: Arc::new(Shared {
                subjects,
                max_payload,
                duplicate_window: Duration::from_secs(120),
                state: Mutex::default(),
                end: watch::Sender::new(0),
            }),
        }
    }

    /// Appends on a subject no ddb writer would use (to see it passed over).
    pub fn append_raw(&self, subject: &str, payload: &[u8]) -> u64 {
        let mut s = lock(&self.shared.state);
        s.entries.push(Stored {
            subject: subject.to_owned(),
            db: String::new(),
            payload: Bytes::copy_from_slice(payload),
            purged: false,
        });
        let seq = s.entries.len() as u64;
        self.shared.end.send_replace(seq);
        seq
    }

    /// The next consumer to reach `seq` is not delivered it (lost in flight).
    pub fn lose_delivery_of(&self, seq: u64) {
        lock(&self.shared.state).lose.insert(seq);
    }

    /// Every call fails as unavailable while set.
    pub fn set_unavailable(&self, unavailable: bool) {
        lock(&self.shared.state).unavailable = unavailable;
    }

    /// Says the log is kept by several servers (writers then check what they appended).
    pub fn set_replicated(&self, replicated: bool) {
        lock(&self.shared.state).replicated = replicated;
    }

    /// The next append is stored, but its writer is told the log is unavailable.
    pub fn lose_next_ack(&self) {
        lock(&self.shared.state).lose_next_ack = true;
    }

    /// The next append is stored even if its database's last entry is not the one it expects.
    pub fn skip_next_expected_check(&self) {
        lock(&self.shared.state).skip_next_expected_check = true;
    }

    pub fn consumers_opened(&self) -> usize {
        lock(&self.shared.state).consumers_opened
    }

    /// Removes the entries of `db` below `seq`, as trimming does; returns how many went.
    pub fn purge_below(&self, db: &str, seq: u64) -> u64 {
        let mut s = lock(&self.shared.state);
        let mut purged = 0;
        for e in s.entries.iter_mut().take(seq.saturating_sub(1) as usize) {
            if e.db == db && !e.purged {
                e.purged = true;
                purged += 1;
            }
        }
        purged
    }

    /// Each entry's seq and payload, in order.
    pub fn entries(&self) -> Vec<(u64, Bytes)> {
        lock(&self.shared.state)
            .present()
            .map(|(seq, e)| (seq, e.payload.clone()))
            .collect()
    }

    fn check_available(&self) -> Result<(), DdbError> {
        if lock(&self.shared.state).unavailable {
            return Err(DdbError::unavailable("the fake log is unavailable"));
        }
        Ok(())
    }
}

impl State {
    /// The entries still in the log, with their seqs.
    fn present(&self) -> impl DoubleEndedIterator<Item = (u64, &Stored)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.purged)
            .map(|(i, e)| (i as u64 + 1, e))
    }

    fn last_of(&self, db: &str) -> u64 {
        self.present()
            .rev()
            .find(|(_, e)| e.db == db)
            .map_or(0, |(seq, _)| seq)
    }

    /// The first entry at or after `next` this consumer is delivered.
    fn deliver_from(&mut self, next: u64) -> Option<Delivered> {
        let total = self.entries.len() as u64;
        let mut seq = next.max(1);
        while seq <= total {
            let e = &self.entries[seq as usize - 1];
            if self.lose.remove(&seq) || e.purged {
                seq += 1;
                continue;
            }
            return Some(Delivered {
                subject: e.subject.clone(),
                seq,
                pending: total - seq,
                payload: e.payload.clone(),
            });
        }
        None
    }
}

#[async_trait]
impl LogPort for FakeLog {
    async fn append(
        &self,
        db: &Name,
        entry: Bytes,
        expected: u64,
        msg_id: Option<&str>,
    ) -> Result<Appended, AppendError> {
        // The same order of checks as the server: size before anything, then the duplicate
        // window (a duplicate is acknowledged whatever the expected sequence), then the
        // expected last sequence.
        if entry.len() > self.shared.max_payload {
            return Err(AppendError::TooLarge);
        }
        let mut s = lock(&self.shared.state);
        if s.unavailable {
            return Err(AppendError::Unavailable(
                "the fake log is unavailable".into(),
            ));
        }
        let now = Instant::now();
        let window = self.shared.duplicate_window;
        s.msg_ids
            .retain(|_, (_, at)| now.duration_since(*at) < window);
        if let Some((seq, _)) = msg_id.and_then(|id| s.msg_ids.get(id)) {
            return Ok(Appended {
                seq: *seq,
                duplicate: true,
            });
        }
        if !std::mem::take(&mut s.skip_next_expected_check) && s.last_of(db.as_str()) != expected {
            return Err(AppendError::Conflict);
        }
        s.entries.push(Stored {
            subject: self.shared.subjects.log(db.as_str()),
            db: db.to_string(),
            payload: entry,
            purged: false,
        });
        let seq = s.entries.len() as u64;
        if let Some(id) = msg_id {
            s.msg_ids.insert(id.to_owned(), (seq, now));
        }
        self.shared.end.send_replace(seq);
        if std::mem::take(&mut s.lose_next_ack) {
            return Err(AppendError::Unavailable(
                "the acknowledgement was lost".into(),
            ));
        }
        Ok(Appended {
            seq,
            duplicate: false,
        })
    }

    fn replicated(&self) -> bool {
        lock(&self.shared.state).replicated
    }

    async fn consumer(&self, _node: &str, position: u64) -> Result<Deliveries, DdbError> {
        self.check_available()?;
        lock(&self.shared.state).consumers_opened += 1;
        let shared = self.shared.clone();
        let end = shared.end.subscribe();
        let deliveries = futures::stream::unfold(
            (shared, end, position + 1),
            |(shared, mut end, next)| async move {
                loop {
                    let delivered = lock(&shared.state).deliver_from(next);
                    if let Some(d) = delivered {
                        let after = d.seq + 1;
                        return Some((Ok(d), (shared, end, after)));
                    }
                    end.changed().await.ok()?;
                }
            },
        );
        Ok(deliveries.boxed())
    }

    async fn entries_after(
        &self,
        db: &Name,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, Bytes)>, DdbError> {
        self.check_available()?;
        let s = lock(&self.shared.state);
        Ok(s.present()
            .filter(|(seq, e)| *seq > after && e.db == db.as_str())
            .take(max)
            .map(|(seq, e)| (seq, e.payload.clone()))
            .collect())
    }

    async fn last_seq_of(&self, db: &Name) -> Result<u64, DdbError> {
        self.check_available()?;
        Ok(lock(&self.shared.state).last_of(db.as_str()))
    }

    async fn last_seq(&self) -> Result<u64, DdbError> {
        self.check_available()?;
        Ok(lock(&self.shared.state).entries.len() as u64)
    }

    async fn databases(&self) -> Result<Vec<(Name, u64)>, DdbError> {
        self.check_available()?;
        let s = lock(&self.shared.state);
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for (seq, e) in s.present() {
            if !e.db.is_empty() {
                last.insert(&e.db, seq);
            }
        }
        Ok(last
            .into_iter()
            .filter_map(|(db, seq)| Name::parse_db(db).ok().map(|n| (n, seq)))
            .collect())
    }

    async fn purged(&self, from: u64, to: u64) -> bool {
        let s = lock(&self.shared.state);
        !s.unavailable
            && s.present()
                .find(|(seq, _)| *seq >= from)
                .is_some_and(|(seq, _)| seq >= to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn log() -> FakeLog {
        FakeLog::new(Subjects::new("ddb"), 100)
    }

    fn db(name: &str) -> Name {
        Name::parse_db(name).unwrap()
    }

    fn bytes(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test]
    async fn an_append_lands_only_after_the_expected_last_entry_of_its_database() {
        let l = log();
        let (a, b) = (db("a"), db("b"));
        assert_eq!(l.append(&a, bytes("1"), 0, None).await.unwrap().seq, 1);
        assert_eq!(l.append(&b, bytes("2"), 0, None).await.unwrap().seq, 2);
        assert!(matches!(
            l.append(&a, bytes("3"), 0, None).await,
            Err(AppendError::Conflict)
        ));
        assert_eq!(l.append(&a, bytes("3"), 1, None).await.unwrap().seq, 3);
        assert_eq!(l.last_seq_of(&a).await.unwrap(), 3);
        assert_eq!(l.last_seq_of(&db("c")).await.unwrap(), 0);
        assert_eq!(l.last_seq().await.unwrap(), 3);
        let dbs = l.databases().await.unwrap();
        assert_eq!(dbs, [(a.clone(), 3), (b, 2)]);
        let after = l.entries_after(&a, 1, 10).await.unwrap();
        assert_eq!(after, [(3, bytes("3"))]);
    }

    #[tokio::test]
    async fn an_entry_over_the_max_payload_is_refused() {
        let l = log();
        let big = Bytes::from(vec![b'x'; 101]);
        assert!(matches!(
            l.append(&db("a"), big, 0, None).await,
            Err(AppendError::TooLarge)
        ));
        assert_eq!(l.last_seq().await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_id_seen_in_the_window_returns_the_original_seq() {
        let l = log();
        let a = db("a");
        let first = l.append(&a, bytes("x"), 0, Some("k")).await.unwrap();
        // A duplicate is acknowledged even though the expected sequence is stale.
        let again = l.append(&a, bytes("x"), 0, Some("k")).await.unwrap();
        assert_eq!(
            (first.duplicate, again),
            (
                false,
                Appended {
                    seq: 1,
                    duplicate: true
                }
            )
        );
        assert_eq!(l.last_seq().await.unwrap(), 1);
        tokio::time::advance(Duration::from_secs(121)).await;
        let later = l.append(&a, bytes("x"), 1, Some("k")).await.unwrap();
        assert_eq!(
            later,
            Appended {
                seq: 2,
                duplicate: false
            }
        );
    }

    #[tokio::test]
    async fn a_consumer_delivers_in_order_from_after_its_position_and_waits_for_more() {
        let l = log();
        let a = db("a");
        for (i, body) in ["1", "2", "3"].into_iter().enumerate() {
            l.append(&a, bytes(body), i as u64, None).await.unwrap();
        }
        l.lose_delivery_of(3);
        let mut c = l.consumer("n1", 1).await.unwrap();
        let d = c.next().await.unwrap().unwrap();
        assert_eq!((d.seq, d.pending, d.subject.as_str()), (2, 1, "ddb.log.a"));
        let waiting = tokio::spawn(async move { c.next().await.map(|d| d.unwrap().seq) });
        l.append(&a, bytes("4"), 3, None).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        // Seq 3 was lost in flight: the next delivery is 4.
        assert_eq!(next.unwrap().unwrap(), Some(4));
        let mut again = l.consumer("n1", 2).await.unwrap();
        assert_eq!(again.next().await.unwrap().unwrap().seq, 3);
        assert_eq!(l.consumers_opened(), 2);
    }

    #[tokio::test]
    async fn a_purge_leaves_holes_that_are_told_from_missing_entries() {
        let l = log();
        // a b a b a b: seqs 1..6, a at odd seqs.
        let (mut last_a, mut last_b) = (0, 0);
        for i in 0..6 {
            let (name, last) = if i % 2 == 0 {
                ("a", &mut last_a)
            } else {
                ("b", &mut last_b)
            };
            *last = l
                .append(&db(name), bytes("x"), *last, None)
                .await
                .unwrap()
                .seq;
        }
        assert_eq!(l.purge_below("a", 5), 2);
        assert_eq!(l.last_seq_of(&db("a")).await.unwrap(), 5);
        assert_eq!(l.last_seq().await.unwrap(), 6);
        // 2 (b) then 4 (b): 3 was purged, a hole; 4 is there, so 3 to 5 is a real gap.
        assert!(l.purged(3, 4).await);
        assert!(l.purged(1, 2).await);
        assert!(!l.purged(3, 5).await);
        assert!(!l.purged(2, 3).await);
        let seqs: Vec<u64> = l.entries().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(seqs, [2, 4, 5, 6]);
        // A reader from the start is delivered what is left, in order.
        let mut d = l.consumer("n", 0).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            let next = tokio::time::timeout(Duration::from_secs(5), d.next()).await;
            got.push(next.expect("delivered in time").unwrap().unwrap().seq);
        }
        assert_eq!(got, [2, 4, 5, 6]);
        l.set_unavailable(true);
        assert!(!l.purged(3, 4).await, "cannot be told: a real gap");
    }
}
