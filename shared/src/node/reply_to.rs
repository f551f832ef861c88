//! Answering one request: [`ReplyTo`] is where the reply goes and what it is counted as. Intake
//! makes one per request; the read task or the writer that serves it sends the reply.

use super::state::NodeRef;
use crate::error::DdbError;
use crate::reply::Reply;
use async_nats::Subject;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// Where and how to answer one request; holds its in-flight permit until answered.
pub(crate) struct ReplyTo {
    to: Destination,
    /// The subject the request came in on.
    pub(super) origin: Subject,
    received: Instant,
    _permit: OwnedSemaphorePermit,
}

enum Destination {
    /// The message's reply subject (`None` for a message sent without one: `nats pub`), and
    /// the connection it came in on, which answers it: `None` for the node's own.
    Nats(Option<Subject>, Option<Arc<async_nats::Client>>),
    /// Handed back in the process: how unit tests drive the writer without a server.
    #[cfg(test)]
    Local(tokio::sync::oneshot::Sender<Reply>),
}

impl ReplyTo {
    /// The reply to a message that came in on `origin` over `via` (`None`: the node's own
    /// connection) at `received`, holding its permit.
    pub fn new(
        via: Option<Arc<async_nats::Client>>,
        subject: Option<Subject>,
        origin: Subject,
        received: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        ReplyTo {
            to: Destination::Nats(subject, via),
            origin,
            received,
            _permit: permit,
        }
    }

    /// A reply handed back through the receiver, as if the request came in on `origin`.
    #[cfg(test)]
    pub fn local(origin: &str) -> (Self, tokio::sync::oneshot::Receiver<Reply>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let permit = std::sync::Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .expect("a fresh semaphore has a permit");
        let reply = ReplyTo {
            to: Destination::Local(tx),
            origin: origin.into(),
            received: Instant::now(),
            _permit: permit,
        };
        (reply, rx)
    }

    /// Why this node will not take this write now, if it will not.
    pub fn write_refusal(&self, node: &NodeRef) -> Option<DdbError> {
        let refusal = node.write_refusal()?;
        if self.origin.as_str() == node.subjects.ops() {
            // Delivered through the intake just as this node stopped taking writes (leaving
            // failover): the writer is elsewhere now, so "retry" is the answer.
            return Some(DdbError::unavailable(format!(
                "node {} stopped taking writes as this request arrived; retry on {}",
                node.name(),
                node.subjects.ops()
            )));
        }
        Some(refusal)
    }

    /// Sends the reply (reads and failures are logged here; writes log in the writer, with
    /// their seq). A message without a reply subject that failed is logged as a rejection.
    pub async fn send(
        self,
        node: &NodeRef,
        op: &'static str,
        db: &str,
        result: Result<Reply, DdbError>,
    ) {
        let reply = match result {
            Ok(r) => r,
            Err(e) => Reply::error(node.name(), &e),
        };
        let took = self.received.elapsed();
        let outcome = reply.error.as_ref().map_or("ok", |e| e.code.as_str());
        // One line per failed request at info; successes only at debug (they are counted).
        match &reply.error {
            Some(e) => tracing::info!(
                node = %node.name(), op, db, micros = took.as_micros() as u64,
                outcome, error = %e.message, "request failed"
            ),
            None => tracing::debug!(
                node = %node.name(), op, db, seq = reply.seq,
                micros = took.as_micros() as u64, "request"
            ),
        }
        node.request_series.record(op, outcome, took);
        let endpoint = if self.origin.as_str() == node.subjects.ops() {
            super::endpoint_stats::Endpoint::Ops
        } else if self.origin.as_str() == node.subjects.reads() {
            super::endpoint_stats::Endpoint::Reads
        } else {
            super::endpoint_stats::Endpoint::Node
        };
        let error_text = reply
            .error
            .as_ref()
            .map(|e| format!("{}: {}", e.code, e.message));
        node.micro.record(endpoint, took, error_text.as_deref());
        // Outside tests the match has one arm.
        #[allow(clippy::infallible_destructuring_match)]
        let (to, via) = match self.to {
            Destination::Nats(to, via) => (to, via),
            #[cfg(test)]
            Destination::Local(tx) => {
                let _ = tx.send(reply);
                return;
            }
        };
        let Some(to) = to else {
            if let Some(e) = &reply.error {
                tracing::warn!(node = %node.name(), subject = %self.origin, code = %e.code, message = %e.message, "rejected a message that has no reply subject");
            }
            return;
        };
        let mut bytes = reply.to_bytes();
        let max = node.max_payload;
        if max > 0 && bytes.len() > max {
            let e = DdbError::too_large(format!(
                "the reply is {} bytes, more than the server's max_payload of {max}; ask for fewer rows with limit and page with after (each reply's next), or narrow the SEARCH with a condition or columns",
                bytes.len()
            ));
            bytes = Reply::error(node.name(), &e).to_bytes();
        }
        let via = via.as_deref().unwrap_or(&node.client);
        if let Err(e) = via.publish(to, bytes.into()).await {
            tracing::warn!(node = %node.name(), error = %e, "cannot send a reply");
        }
    }
}
