//! Trimming the log under its limits, driven by snapshots: a database's subject is purged
//! only below its newest complete snapshot's seq, and the entry AT that seq (then the
//! subject's oldest) is kept, so that the subject's last entry is never removed (writers'
//! expected-last-sequence checks need it) and an idle database still reaches a new node.

use crate::error::DdbError;
use crate::name::Name;
use crate::subjects::Subjects;
use async_nats::jetstream::{self, stream::LastRawMessageErrorKind};
use std::time::Duration;

/// The log's size as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
    /// Age of the oldest entry (zero when the log is empty).
    pub oldest: Duration,
}

/// Whether the log is over the operator's limits (`--log-max-bytes`, `--log-max-age-s`;
/// negative or zero: no limit).
pub fn over_limits(usage: &Usage, max_bytes: i64, max_age: Duration) -> bool {
    (max_bytes > 0 && usage.bytes > max_bytes as u64)
        || (!max_age.is_zero() && usage.messages > 0 && usage.oldest > max_age)
}

#[derive(Clone)]
pub struct Trim {
    js: jetstream::Context,
    subjects: Subjects,
}

impl Trim {
    pub fn new(client: async_nats::Client, subjects: Subjects) -> Self {
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(10));
        Trim { js, subjects }
    }

    async fn stream(&self) -> Result<jetstream::stream::Stream, DdbError> {
        self.js
            .get_stream(self.subjects.stream())
            .await
            .map_err(|e| DdbError::unavailable(format!("log stream unavailable: {e}")))
    }

    pub async fn usage(&self) -> Result<Usage, DdbError> {
        let mut stream = self.stream().await?;
        let info = stream
            .info()
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot read the log's state: {e}")))?;
        let state = &info.state;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i128;
        let first = state.first_timestamp.unix_timestamp_nanos();
        let oldest = if state.messages == 0 || first <= 0 || first > now {
            Duration::ZERO
        } else {
            Duration::from_nanos((now - first) as u64)
        };
        Ok(Usage {
            bytes: state.bytes,
            messages: state.messages,
            oldest,
        })
    }

    /// The seq of the oldest entry of `db` still in the log, if any.
    pub async fn first_seq_of(&self, db: &Name) -> Result<Option<u64>, DdbError> {
        let stream = self.stream().await?;
        match stream
            .get_first_raw_message_by_subject(self.subjects.log(db.as_str()), 1)
            .await
        {
            Ok(m) => Ok(Some(m.sequence)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(DdbError::unavailable(format!("cannot read the log: {e}"))),
        }
    }

    /// The last entry of `db`: its seq and body.
    pub async fn last_of(&self, db: &Name) -> Result<Option<(u64, bytes::Bytes)>, DdbError> {
        let stream = self.stream().await?;
        match stream
            .get_last_raw_message_by_subject(&self.subjects.log(db.as_str()))
            .await
        {
            Ok(m) => Ok(Some((m.sequence, m.payload))),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(DdbError::unavailable(format!("cannot read the log: {e}"))),
        }
    }

    /// The seq of the first entry of any database at or after `seq`, if any.
    pub async fn first_seq_from(&self, seq: u64) -> Result<Option<u64>, DdbError> {
        let stream = self.stream().await?;
        match stream
            .get_first_raw_message_by_subject(self.subjects.log_all(), seq)
            .await
        {
            Ok(m) => Ok(Some(m.sequence)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(DdbError::unavailable(format!("cannot read the log: {e}"))),
        }
    }

    /// Removes the entries of `db` below `seq` (the entry at `seq` stays). Returns how many
    /// went.
    pub async fn purge_below(&self, db: &Name, seq: u64) -> Result<u64, DdbError> {
        let stream = self.stream().await?;
        let subject = self.subjects.log(db.as_str());
        let r = stream
            .purge()
            .filter(subject.clone())
            .sequence(seq)
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot purge {subject}: {e}")))?;
        Ok(r.purged)
    }
}

/// Whether the log holds no entry from `from` up to (not including) `to`: a consumer that
/// skipped them was not short of anything, they were trimmed (per-database purges leave
/// holes in the stream's seqs). False when that cannot be told (then it is a real gap).
pub(crate) async fn purged(
    client: &async_nats::Client,
    subjects: &Subjects,
    from: u64,
    to: u64,
) -> bool {
    if client.connection_state() != async_nats::connection::State::Connected {
        return false;
    }
    let trim = Trim::new(client.clone(), subjects.clone());
    let first = tokio::time::timeout(Duration::from_secs(2), trim.first_seq_from(from)).await;
    matches!(first, Ok(Ok(Some(seq))) if seq >= to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(bytes: u64, messages: u64, oldest_s: u64) -> Usage {
        Usage {
            bytes,
            messages,
            oldest: Duration::from_secs(oldest_s),
        }
    }

    /// Against the installed nats-server: purging one database below a seq leaves holes in
    /// the stream that `purged` tells apart from entries that are there, and keeps the entry
    /// at the seq.
    #[tokio::test]
    async fn purges_leave_holes_that_are_told_from_missing_entries() {
        let server = ddb_testsupport::NatsServer::start();
        let client = crate::test_nats::connect(&server).await;
        let subjects = Subjects::new("h");
        let log = crate::log::Log::new(client.clone(), subjects.clone());
        log.ensure_stream(&Default::default()).await.unwrap();
        let js = jetstream::new(client.clone());
        // a b a b a b: seqs 1..6, a at odd seqs.
        for i in 0..6 {
            let db = if i % 2 == 0 { "a" } else { "b" };
            js.publish(subjects.log(db), "x".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let trim = Trim::new(client.clone(), subjects.clone());
        let a = Name::parse_db("a").unwrap();
        assert_eq!(trim.first_seq_of(&a).await.unwrap(), Some(1));
        assert_eq!(trim.purge_below(&a, 5).await.unwrap(), 2);
        assert_eq!(trim.first_seq_of(&a).await.unwrap(), Some(5));
        assert_eq!(trim.last_of(&a).await.unwrap().map(|l| l.0), Some(5));
        // 2 (b) then 4 (b): 3 was purged, a hole.
        assert!(purged(&client, &subjects, 3, 4).await);
        assert!(purged(&client, &subjects, 1, 2).await);
        // 4 is there: skipping from 3 to 5 lost it.
        assert!(!purged(&client, &subjects, 3, 5).await);
        assert!(!purged(&client, &subjects, 2, 3).await);
        let usage = trim.usage().await.unwrap();
        assert_eq!(usage.messages, 4);
        assert!(usage.bytes > 0);
    }

    #[test]
    fn no_limit_is_never_over() {
        assert!(!over_limits(
            &usage(u64::MAX, 10, 1 << 30),
            -1,
            Duration::ZERO
        ));
        assert!(!over_limits(
            &usage(u64::MAX, 10, 1 << 30),
            0,
            Duration::ZERO
        ));
    }

    #[test]
    fn either_limit_passed_is_over() {
        let age = Duration::from_secs(60);
        assert!(!over_limits(&usage(1000, 10, 59), 1000, age));
        assert!(over_limits(&usage(1001, 10, 0), 1000, age));
        assert!(over_limits(&usage(10, 10, 61), 1000, age));
        // An empty log has no age.
        assert!(!over_limits(&usage(0, 0, 61), 1000, age));
    }
}
