//! The replicated log: a JetStream stream with one subject per database (`<prefix>.log.<db>`).
//! Writers append with an expected per-subject sequence; every node reads it in order.

use crate::error::{DdbError, ErrorCode};
use crate::name::Name;
use crate::op::{parse_insert_fast, parse_request_json, Limits, Op, WriteOp};
use crate::subjects::Subjects;
use crate::value::Scalar;
use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    context::PublishErrorKind,
    message::PublishMessage,
    stream::{self, LastRawMessageErrorKind, StorageType},
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most entry bytes a consumer pull delivers, and the applier takes before applying them: a
/// replica far behind on large entries (bulk INSERTs) decodes one bounded batch at a time
/// instead of whatever the consumer holds.
pub(crate) const MAX_BATCH_BYTES: usize = 1 << 20;

/// What one log message holds: the ops one writer committed together, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub writer: String,
    /// The seq of the database's previous entry when this one was appended (what the writer
    /// expected to be last): a node whose database is not at `prev` has missed entries, which
    /// a trimmed log may no longer hold (then it restores a snapshot). Absent in entries
    /// written before snapshots existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u64>,
    /// Each op as canonical request JSON (with its `op_id`, when it had one).
    pub ops: Vec<Json>,
}

/// One op decoded from an entry.
#[derive(Debug, Clone)]
pub struct LoggedOp {
    pub op: std::sync::Arc<WriteOp>,
    pub op_id: Option<String>,
}

impl LogEntry {
    pub fn new(writer: &str, prev: u64, ops: &[(WriteOp, Option<String>)]) -> Self {
        LogEntry {
            writer: writer.to_owned(),
            prev: Some(prev),
            ops: ops
                .iter()
                .map(|(op, op_id)| {
                    let mut j = op.to_json();
                    if let (Some(id), Json::Object(m)) = (op_id, &mut j) {
                        m.insert("op_id".into(), Json::String(id.clone()));
                    }
                    j
                })
                .collect(),
        }
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The bytes of `LogEntry::new(writer, prev, ops).encode()`, written straight from the ops:
    /// the write path skips a JSON tree and a copy of every op (INSERT rows in particular).
    pub fn encode_ops(writer: &str, prev: u64, ops: &[(&WriteOp, Option<&str>)]) -> Bytes {
        let entry = EntryOut { writer, prev, ops };
        Bytes::from(serde_json::to_vec(&entry).unwrap_or_default())
    }

    /// Decodes and re-validates an entry; `db` is the database its subject names.
    pub fn decode(bytes: &[u8], db: &Name) -> Result<DecodedEntry, DdbError> {
        let not_ddb =
            |e: serde_json::Error| DdbError::bad_request(format!("log entry is not ddb JSON: {e}"));
        let entry: EntryIn = serde_json::from_slice(bytes).map_err(not_ddb)?;
        // Entries were checked when written; here only size limits are relaxed.
        let limits = Limits {
            max_request_bytes: usize::MAX,
            max_rows_per_insert: usize::MAX,
            max_tx_ops: usize::MAX,
        };
        let mut ops = Vec::with_capacity(entry.ops.len());
        for raw in entry.ops {
            let req = match parse_insert_fast(raw.get(), &limits) {
                Some(req) => req,
                None => {
                    parse_request_json(serde_json::from_str(raw.get()).map_err(not_ddb)?, &limits)?
                }
            };
            let Op::Write(op) = req.op else {
                return Err(DdbError::bad_request("log entry holds a read op"));
            };
            if op.db() != db {
                return Err(DdbError::bad_request(format!(
                    "log entry for database {} on the subject of {db}",
                    op.db()
                )));
            }
            ops.push(LoggedOp {
                op: std::sync::Arc::new(op),
                op_id: req.op_id,
            });
        }
        if ops.is_empty() {
            return Err(DdbError::bad_request("log entry holds no op"));
        }
        Ok(DecodedEntry {
            writer: entry.writer,
            prev: entry.prev,
            ops,
        })
    }
}

/// An entry as [`LogEntry::decode`] returns it.
#[derive(Debug)]
pub struct DecodedEntry {
    pub writer: String,
    pub prev: Option<u64>,
    pub ops: Vec<LoggedOp>,
}

/// A log entry as read: each op kept as its JSON text until it is parsed.
#[derive(Deserialize)]
struct EntryIn<'a> {
    writer: String,
    #[serde(default)]
    prev: Option<u64>,
    #[serde(borrow)]
    ops: Vec<&'a serde_json::value::RawValue>,
}

struct EntryOut<'a> {
    writer: &'a str,
    prev: u64,
    ops: &'a [(&'a WriteOp, Option<&'a str>)],
}

impl Serialize for EntryOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("writer", self.writer)?;
        m.serialize_entry("prev", &self.prev)?;
        m.serialize_entry("ops", &OpsOut(self.ops))?;
        m.end()
    }
}

struct OpsOut<'a>(&'a [(&'a WriteOp, Option<&'a str>)]);

impl Serialize for OpsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(op, op_id)| OpOut(op, *op_id)))
    }
}

/// One op as `WriteOp::to_json` writes it, with its `op_id` last.
struct OpOut<'a>(&'a WriteOp, Option<&'a str>);

impl Serialize for OpOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let WriteOp::Insert(insert) = self.0 else {
            // The other ops are rare and small: their JSON tree costs nothing that matters.
            let mut j = self.0.to_json();
            if let (Some(id), Json::Object(m)) = (self.1, &mut j) {
                m.insert("op_id".into(), Json::String(id.to_owned()));
            }
            return j.serialize(s);
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("op", "INSERT")?;
        m.serialize_entry("db", insert.db.as_str())?;
        m.serialize_entry("table", insert.table.as_str())?;
        match insert.rows.as_slice() {
            [row] if insert.single => m.serialize_entry("data", &RowOut(row))?,
            rows => m.serialize_entry("data", &RowsOut(rows))?,
        }
        if let Some(id) = self.1 {
            m.serialize_entry("op_id", id)?;
        }
        m.end()
    }
}

struct RowsOut<'a>(&'a [Vec<(Name, Scalar)>]);

impl Serialize for RowsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| RowOut(r)))
    }
}

struct RowOut<'a>(&'a [(Name, Scalar)]);

impl Serialize for RowOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k.as_str(), ScalarOut(v))))
    }
}

/// A scalar as `Scalar::to_json` writes it (a non-finite float is null).
struct ScalarOut<'a>(&'a Scalar);

impl Serialize for ScalarOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Scalar::Null => s.serialize_unit(),
            Scalar::Bool(b) => s.serialize_bool(*b),
            Scalar::Int(i) => s.serialize_i64(*i),
            Scalar::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Scalar::Float(_) => s.serialize_unit(),
            Scalar::Str(v) => s.serialize_str(v),
        }
    }
}

/// How the stream is created when it does not exist yet.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub replicas: usize,
    pub duplicate_window: Duration,
    /// Zero keeps entries forever (the default: a new node replays from the start).
    pub max_age: Duration,
    /// Negative keeps entries whatever their total size.
    pub max_bytes: i64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::ZERO,
            max_bytes: -1,
        }
    }
}

/// Why an append did not land.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to this database since our last applied entry.
    #[error("another writer appended first")]
    Conflict,
    #[error("entry is larger than the server accepts")]
    TooLarge,
    #[error("log unavailable: {0}")]
    Unavailable(String),
}

/// The acknowledgement of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// The op_id was already in the log (inside the duplicate window): `seq` is the original.
    pub duplicate: bool,
}

#[derive(Clone)]
pub struct Log {
    js: jetstream::Context,
    /// For trimming: a purge of a big subject may take longer than an append should wait.
    admin: jetstream::Context,
    subjects: Subjects,
    /// Whether the stream has more than one replica, as last read from the server.
    replicated: Arc<AtomicBool>,
}

/// The log's size as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
    /// Age of the oldest entry (zero when the log is empty).
    pub oldest: Duration,
}

impl Log {
    pub fn new(client: async_nats::Client, subjects: Subjects) -> Self {
        let mut js = jetstream::new(client);
        let mut admin = js.clone();
        js.set_timeout(Duration::from_secs(5));
        admin.set_timeout(Duration::from_secs(10));
        Log {
            js,
            admin,
            subjects,
            replicated: Arc::default(),
        }
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// Creates the stream, or checks that the existing one carries the log subjects.
    pub async fn ensure_stream(&self, settings: &StreamSettings) -> Result<(), DdbError> {
        let name = self.subjects.stream();
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![self.subjects.log_all()],
            storage: StorageType::File,
            num_replicas: settings.replicas,
            duplicate_window: settings.duplicate_window,
            // No limits JetStream would enforce by itself: it would drop entries that no
            // snapshot covers. `max_age` and `max_bytes` are enforced by the master, which
            // trims each database below its newest snapshot (node/snapshots/trim.rs).
            ..Default::default()
        };
        let mut stream = self.js.get_or_create_stream(config).await.map_err(|e| {
            DdbError::unavailable(format!("cannot create or open stream {name}: {e}"))
        })?;
        let info = stream
            .info()
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot read stream {name}: {e}")))?;
        if !info.config.subjects.contains(&self.subjects.log_all()) {
            return Err(DdbError::new(
                ErrorCode::Internal,
                format!(
                    "stream {name} exists but does not carry {}; it belongs to something else",
                    self.subjects.log_all()
                ),
            ));
        }
        self.replicated
            .store(info.config.num_replicas > 1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the stream has more than one replica (known once `ensure_stream` ran).
    pub fn replicated(&self) -> bool {
        self.replicated.load(Ordering::Relaxed)
    }

    /// The stream for message gets, without asking the server for its info first (which
    /// `stream` does): a get costs one round trip, not two.
    async fn stream_handle(&self) -> Result<stream::Stream<()>, DdbError> {
        self.js
            .get_stream_no_info(self.subjects.stream())
            .await
            .map_err(|e| DdbError::unavailable(format!("log stream unavailable: {e}")))
    }

    async fn stream(&self) -> Result<stream::Stream, DdbError> {
        self.js
            .get_stream(self.subjects.stream())
            .await
            .map_err(|e| DdbError::unavailable(format!("log stream unavailable: {e}")))
    }

    /// Appends `entry` (an encoded [`LogEntry`]) to `db`'s subject if the last entry there is `expected` (0: none).
    pub async fn append(
        &self,
        db: &Name,
        entry: Bytes,
        expected: u64,
        msg_id: Option<&str>,
    ) -> Result<Appended, AppendError> {
        let mut publish = PublishMessage::build()
            .payload(entry)
            .expected_last_subject_sequence(expected);
        if let Some(id) = msg_id {
            publish = publish.message_id(id);
        }
        let map = |kind: PublishErrorKind, e: String| match kind {
            PublishErrorKind::WrongLastSequence => AppendError::Conflict,
            PublishErrorKind::MaxPayloadExceeded => AppendError::TooLarge,
            _ => AppendError::Unavailable(e),
        };
        let ack = self
            .js
            .send_publish(self.subjects.log(db.as_str()), publish)
            .await
            .map_err(|e| map(e.kind(), e.to_string()))?
            .await
            .map_err(|e| map(e.kind(), e.to_string()))?;
        Ok(Appended {
            seq: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// The stream seq of the last entry of `db`, 0 when it has none.
    pub async fn last_seq_of(&self, db: &Name) -> Result<u64, DdbError> {
        let stream = self.stream_handle().await?;
        let last = stream
            .get_last_raw_message_by_subject(&self.subjects.log(db.as_str()))
            .await;
        Ok(found(last)?.map_or(0, |m| m.sequence))
    }

    /// The entries of `db` after stream seq `after`, in order (at most `max`).
    pub async fn entries_after(
        &self,
        db: &Name,
        after: u64,
        max: usize,
    ) -> Result<Vec<(u64, Bytes)>, DdbError> {
        let stream = self.stream_handle().await?;
        let subject = self.subjects.log(db.as_str());
        let mut out = Vec::new();
        let mut next = after + 1;
        while out.len() < max {
            let Some(m) = found(
                stream
                    .get_first_raw_message_by_subject(&subject, next)
                    .await,
            )?
            else {
                break;
            };
            next = m.sequence + 1;
            out.push((m.sequence, m.payload));
        }
        Ok(out)
    }

    /// Every database that has entries in the log, with the seq of its last entry.
    pub async fn databases(&self) -> Result<Vec<(Name, u64)>, DdbError> {
        use futures::TryStreamExt;
        let stream = self.stream().await?;
        let mut subjects = stream
            .info_with_subjects(self.subjects.log_all())
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot list the log's subjects: {e}")))?;
        let mut names = Vec::new();
        while let Some((subject, _count)) = subjects
            .try_next()
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot list the log's subjects: {e}")))?
        {
            if let Some(db) = self.subjects.db_of_log_subject(&subject) {
                if let Ok(name) = Name::parse_db(db) {
                    if name.as_str() == db {
                        names.push(name);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for db in names {
            let last = self.last_seq_of(&db).await?;
            out.push((db, last));
        }
        Ok(out)
    }

    /// The stream's last seq (0 when empty).
    pub async fn last_seq(&self) -> Result<u64, DdbError> {
        // Looking the stream up already returns its state: one API request, not two (every
        // node asks each heartbeat period).
        let stream = self.stream().await?;
        Ok(stream.cached_info().state.last_sequence)
    }

    /// The node's durable consumer, (re)created to start right after `position`: the store,
    /// not the server, knows what this node has applied (a wiped store replays everything).
    pub async fn consumer(&self, node: &str, position: u64) -> Result<pull::Stream, DdbError> {
        let stream = self.stream().await?;
        let durable = format!("ddb_{node}");
        // Deleting first lets the start sequence follow the store; absent is fine.
        let _ = stream.delete_consumer(&durable).await;
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(durable.clone()),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: position + 1,
                },
                // No acks and no consumer state on disk: the store, not the server, records
                // what this node applied (in the same transaction as the ops), and the reader
                // reopens the consumer at any gap in what it was delivered. Acks cost the
                // server a message and a state update per entry and node (README "Performance").
                ack_policy: AckPolicy::None,
                memory_storage: true,
                filter_subject: self.subjects.log_all(),
                ..Default::default()
            })
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot create consumer {durable}: {e}")))?;
        consumer
            .stream()
            .max_messages_per_batch(1000)
            .max_bytes_per_batch(MAX_BATCH_BYTES)
            // Short pulls notice a lost consumer leader (a NATS cluster server dying) quickly.
            .heartbeat(Duration::from_secs(1))
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot read from consumer {durable}: {e}")))
    }
}

/// Trimming (node/snapshots/trim.rs): the log's size, a database's first and last entries,
/// purges below a snapshot, and telling the holes purges leave from lost entries.
impl Log {
    /// The stream for gets and purges, on the longer timeout, without its info.
    async fn admin_handle(&self) -> Result<stream::Stream<()>, DdbError> {
        self.admin
            .get_stream_no_info(self.subjects.stream())
            .await
            .map_err(|e| DdbError::unavailable(format!("log stream unavailable: {e}")))
    }

    pub async fn usage(&self) -> Result<Usage, DdbError> {
        // Looking the stream up returns its state: one request.
        let stream = self
            .admin
            .get_stream(self.subjects.stream())
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot read the log's state: {e}")))?;
        let state = &stream.cached_info().state;
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
        let stream = self.admin_handle().await?;
        let first = stream
            .get_first_raw_message_by_subject(self.subjects.log(db.as_str()), 1)
            .await;
        Ok(found(first)?.map(|m| m.sequence))
    }

    /// The last entry of `db`: its seq and body.
    pub async fn last_of(&self, db: &Name) -> Result<Option<(u64, bytes::Bytes)>, DdbError> {
        let stream = self.admin_handle().await?;
        let last = stream
            .get_last_raw_message_by_subject(&self.subjects.log(db.as_str()))
            .await;
        Ok(found(last)?.map(|m| (m.sequence, m.payload)))
    }

    /// The seq of the first entry of any database at or after `seq`, if any.
    pub async fn first_seq_from(&self, seq: u64) -> Result<Option<u64>, DdbError> {
        let stream = self.admin_handle().await?;
        let first = stream
            .get_first_raw_message_by_subject(self.subjects.log_all(), seq)
            .await;
        Ok(found(first)?.map(|m| m.sequence))
    }

    /// Removes the entries of `db` below `seq` (the entry at `seq` stays). Returns how many
    /// went.
    pub async fn purge_below(&self, db: &Name, seq: u64) -> Result<u64, DdbError> {
        let stream = self.admin_handle().await?;
        let subject = self.subjects.log(db.as_str());
        let r = stream
            .purge()
            .filter(subject.clone())
            .sequence(seq)
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot purge {subject}: {e}")))?;
        Ok(r.purged)
    }

    /// Whether the log holds no entry from `from` up to (not including) `to`: a consumer that
    /// skipped them was not short of anything, they were trimmed (per-database purges leave
    /// holes in the stream's seqs). False when that cannot be told (then it is a real gap).
    pub async fn purged(&self, from: u64, to: u64) -> bool {
        if self.js.client().connection_state() != async_nats::connection::State::Connected {
            return false;
        }
        let first = tokio::time::timeout(Duration::from_secs(2), self.first_seq_from(from)).await;
        matches!(first, Ok(Ok(Some(seq))) if seq >= to)
    }
}

/// A message get's answer: the entry, or none when the log has no such entry.
fn found(
    got: Result<jetstream::message::StreamMessage, stream::LastRawMessageError>,
) -> Result<Option<jetstream::message::StreamMessage>, DdbError> {
    match got {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(DdbError::unavailable(format!("cannot read the log: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::parse_request;

    #[test]
    fn direct_encoding_is_byte_for_byte_the_entry() {
        let requests = [
            r#"{"op":"INSERT","db":"Shop","table":"t","data":{"id":1,"v":"a \"quoted\" é","f":1.5e300,"b":true,"n":null}}"#,
            r#"{"op":"INSERT","db":"shop","table":"t","data":[{"id":1},{"id":2,"v":"x"}],"op_id":"k-1"}"#,
            r#"{"op":"INSERT","db":"shop","table":"t","data":[{"id":3}]}"#,
            r#"{"op":"UPDATE","db":"shop","table":"t","data":{"v":"y"},"condition":{"id":{"$in":[1,2]}},"op_id":"k-2"}"#,
            r#"{"op":"DELETE","db":"shop","table":"t","condition":{}}"#,
            r#"{"op":"CREATE_TABLE","db":"shop","table":"t","data":{"id":"int"},"primary_key":"id"}"#,
            r#"{"op":"CREATE_DB","db":"shop","op_id":"k-3"}"#,
        ];
        let mut owned = Vec::new();
        for r in requests {
            let req = parse_request(r.as_bytes(), &Limits::default()).expect(r);
            let Op::Write(op) = req.op else {
                panic!("{r} is a write")
            };
            owned.push((op, req.op_id));
        }
        for one in owned.chunks(1).chain([owned.as_slice()]) {
            let borrowed: Vec<_> = one.iter().map(|(o, id)| (o, id.as_deref())).collect();
            assert_eq!(
                LogEntry::encode_ops("master", 41, &borrowed),
                LogEntry::new("master", 41, one).encode()
            );
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
        let log = Log::new(client.clone(), subjects.clone());
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
        let a = Name::parse_db("a").unwrap();
        assert_eq!(log.first_seq_of(&a).await.unwrap(), Some(1));
        assert_eq!(log.purge_below(&a, 5).await.unwrap(), 2);
        assert_eq!(log.first_seq_of(&a).await.unwrap(), Some(5));
        assert_eq!(log.last_of(&a).await.unwrap().map(|l| l.0), Some(5));
        // 2 (b) then 4 (b): 3 was purged, a hole.
        assert!(log.purged(3, 4).await);
        assert!(log.purged(1, 2).await);
        // 4 is there: skipping from 3 to 5 lost it.
        assert!(!log.purged(3, 5).await);
        assert!(!log.purged(2, 3).await);
        let usage = log.usage().await.unwrap();
        assert_eq!(usage.messages, 4);
        assert!(usage.bytes > 0);
    }
}
