//! The log as the node uses it: the narrow interface the node declares and the JetStream
//! [`Log`] implements, so that the node's write and apply paths can also run against an
//! in-memory log in unit tests (`fake_log`).

use crate::error::DdbError;
use crate::log::{AppendError, Appended, Log};
use crate::name::Name;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

/// One entry as this node's reader was delivered it.
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    /// The subject it was appended on (`<prefix>.log.<db>`).
    pub subject: String,
    /// Its stream seq.
    pub seq: u64,
    /// Entries after it in the stream when it was delivered.
    pub pending: u64,
    pub payload: Bytes,
}

/// The entries of the whole log after a position, in order, as they arrive.
pub(crate) type Deliveries = BoxStream<'static, Result<Delivered, DdbError>>;

#[async_trait]
pub(crate) trait LogPort: Send + Sync + 'static {
    /// Appends `entry` to `db`'s subject if the last entry there is `expected` (0: none).
    /// `msg_id` deduplicates within the log's duplicate window: an entry appended again with
    /// the same id is not stored twice and its original seq comes back as a duplicate.
    async fn append(
        &self,
        db: &Name,
        entry: Bytes,
        expected: u64,
        msg_id: Option<&str>,
    ) -> Result<Appended, AppendError>;

    /// Whether several servers keep the log. A JetStream 2.9 stream kept by several servers
    /// can take two appends that expect the same last entry (around a change of its leader),
    /// so there a writer checks that its entry follows the one it expected.
    fn replicated(&self) -> bool;

    /// This node's reader: every entry after `position`, in order.
    async fn consumer(&self, node: &str, position: u64) -> Result<Deliveries, DdbError>;

    /// The entries of `db` after stream seq `after`, in order (at most `max`).
    async fn entries_after(
        &self,
        db: &Name,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, Bytes)>, DdbError>;

    /// The stream seq of the last entry of `db`, 0 when it has none.
    async fn last_seq_of(&self, db: &Name) -> Result<u64, DdbError>;

    /// The log's last seq (0 when empty).
    async fn last_seq(&self) -> Result<u64, DdbError>;

    /// Every database that has entries in the log, with the seq of its last entry.
    async fn databases(&self) -> Result<Vec<(Name, u64)>, DdbError>;

    /// Whether the log holds no entry from `from` up to (not including) `to`: a reader that
    /// skipped them was short of nothing, trimming removed them. False when that cannot be
    /// told (then it is a real gap).
    async fn purged(&self, from: u64, to: u64) -> bool;
}

#[async_trait]
impl LogPort for Log {
    async fn append(
        &self,
        db: &Name,
        entry: Bytes,
        expected: u64,
        msg_id: Option<&str>,
    ) -> Result<Appended, AppendError> {
        Log::append(self, db, entry, expected, msg_id).await
    }

    fn replicated(&self) -> bool {
        Log::replicated(self)
    }

    async fn consumer(&self, node: &str, position: u64) -> Result<Deliveries, DdbError> {
        let messages = Log::consumer(self, node, position).await?;
        Ok(messages
            .filter_map(|m| async move {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => return Some(Err(DdbError::unavailable(format!("log consumer: {e}")))),
                };
                // Every message of a JetStream consumer carries its metadata; one that does
                // not cannot be placed in the log, so it is passed over.
                let Ok(info) = m.info() else {
                    tracing::error!(subject = %m.subject, "log message without JetStream metadata; ignored");
                    return None;
                };
                let (seq, pending) = (info.stream_sequence, info.pending);
                Some(Ok(Delivered {
                    subject: m.subject.to_string(),
                    seq,
                    pending,
                    payload: m.payload.clone(),
                }))
            })
            .boxed())
    }

    async fn entries_after(
        &self,
        db: &Name,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, Bytes)>, DdbError> {
        Log::entries_after(self, db, after, max).await
    }

    async fn last_seq_of(&self, db: &Name) -> Result<u64, DdbError> {
        Log::last_seq_of(self, db).await
    }

    async fn last_seq(&self) -> Result<u64, DdbError> {
        Log::last_seq(self).await
    }

    async fn purged(&self, from: u64, to: u64) -> bool {
        Log::purged(self, from, to).await
    }

    async fn databases(&self) -> Result<Vec<(Name, u64)>, DdbError> {
        Log::databases(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subjects::Subjects;
    use futures::FutureExt;
    use std::time::Duration;

    /// Against the installed nats-server: a reader that stays busy past the consumer's
    /// heartbeat window after taking all its pull allows (a bulk load applied on a slow
    /// replica) reads on, without an error that would make it reopen its consumer.
    #[tokio::test]
    async fn a_reader_busy_past_the_heartbeat_window_reads_on() {
        let server = ddb_testsupport::NatsServer::start();
        let client = crate::test_nats::connect(&server).await;
        let log = Log::new(client, Subjects::new("hb"));
        log.ensure_stream(&Default::default()).await.unwrap();
        let db = Name::parse_db("d").unwrap();
        // 300 KB entries: the consumer's 1 MB pull allowance runs out within a few.
        let entry = Bytes::from(vec![b'x'; 300_000]);
        let total = 6;
        let mut last = 0;
        for _ in 0..total {
            let appended = tokio::time::timeout(
                Duration::from_secs(10),
                LogPort::append(&log, &db, entry.clone(), last, None),
            )
            .await
            .expect("append in time")
            .expect("append");
            last = appended.seq;
        }
        let mut deliveries = tokio::time::timeout(
            Duration::from_secs(10),
            LogPort::consumer(&log, "reader", 0),
        )
        .await
        .expect("consumer in time")
        .expect("consumer");
        let mut seen = Vec::new();
        while seen.len() < total {
            // As the applier does: wait for one, take what is buffered, then work on them.
            let first = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
                .await
                .expect("a delivery within 10 s")
                .expect("the deliveries go on");
            seen.push(first.expect("no error").seq);
            while let Some(Some(d)) = deliveries.next().now_or_never() {
                seen.push(d.expect("no error").seq);
            }
            tokio::time::sleep(Duration::from_millis(2_500)).await;
        }
        assert_eq!(seen, (1..=total as u64).collect::<Vec<_>>());
    }
}
