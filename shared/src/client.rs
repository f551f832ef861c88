//! The client side of the wire protocol, for the GUI, the CLI and tests: send an op to the
//! intake or to one node and read the typed reply; watch heartbeats.

use crate::connect::NatsOptions;
use crate::error::DdbError;
use crate::heartbeat::Heartbeat;
use crate::reply::Reply;
use crate::subjects::Subjects;
use futures::StreamExt;
use std::time::Duration;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `<prefix>.ops`: whichever writer is taking writes.
    Writer,
    /// `<prefix>.node.<name>`.
    Node(String),
    /// `<prefix>.reads`: reads (SEARCH, CHECKSUM) from whichever node NATS picks out of the
    /// queue group of every serving node; writes sent there get `bad_request`.
    AnyReplica,
}

#[derive(Clone)]
pub struct DdbClient {
    nats: async_nats::Client,
    subjects: Subjects,
    timeout: Duration,
}

impl DdbClient {
    pub async fn connect(opts: &NatsOptions, prefix: &str) -> Result<Self, DdbError> {
        Ok(Self::from_client(opts.connect().await?, prefix))
    }

    pub fn from_client(nats: async_nats::Client, prefix: &str) -> Self {
        DdbClient {
            nats,
            subjects: Subjects::new(prefix),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Whether the NATS connection is up right now; a lost one is re-established on its own.
    pub fn is_connected(&self) -> bool {
        self.nats.connection_state() == async_nats::connection::State::Connected
    }

    fn subject(&self, target: &Target) -> String {
        match target {
            Target::Writer => self.subjects.ops().to_owned(),
            Target::Node(name) => self.subjects.node(name),
            Target::AnyReplica => self.subjects.reads().to_owned(),
        }
    }

    /// Sends raw bytes (any JSON, valid or not) and parses the reply.
    pub async fn request_raw(&self, target: &Target, payload: Vec<u8>) -> Result<Reply, DdbError> {
        let subject = self.subject(target);
        // async-nats times the request itself: one timer per request, not two.
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(self.timeout));
        let msg = self
            .nats
            .send_request(subject.clone(), request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::TimedOut => DdbError::new(
                    crate::ErrorCode::Timeout,
                    format!("no reply on {subject} within {:?}", self.timeout),
                ),
                _ => DdbError::unavailable(format!("request on {subject} failed: {e}")),
            })?;
        Reply::from_bytes(&msg.payload)
    }

    pub async fn request(
        &self,
        target: &Target,
        op: &serde_json::Value,
    ) -> Result<Reply, DdbError> {
        self.request_raw(target, serde_json::to_vec(op).unwrap_or_default())
            .await
    }

    /// Fire-and-forget, like `nats pub`.
    pub async fn publish(&self, target: &Target, op: &serde_json::Value) -> Result<(), DdbError> {
        let subject = self.subject(target);
        self.nats
            .publish(subject, serde_json::to_vec(op).unwrap_or_default().into())
            .await
            .map_err(|e| DdbError::unavailable(format!("publish failed: {e}")))?;
        self.nats
            .flush()
            .await
            .map_err(|e| DdbError::unavailable(format!("flush failed: {e}")))
    }

    /// Every heartbeat from every node, as it arrives; malformed ones are skipped.
    pub async fn heartbeats(
        &self,
    ) -> Result<futures::stream::BoxStream<'static, Heartbeat>, DdbError> {
        let sub = self
            .nats
            .subscribe(self.subjects.heartbeat_all())
            .await
            .map_err(|e| DdbError::unavailable(format!("cannot subscribe to heartbeats: {e}")))?;
        Ok(sub
            .filter_map(|m| async move { serde_json::from_slice::<Heartbeat>(&m.payload).ok() })
            .boxed())
    }
}
