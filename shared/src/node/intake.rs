//! Requests in: `<prefix>.node.<name>` always, `<prefix>.ops` (queue group `writers`) while
//! this node takes writes, `<prefix>.reads` (queue group `readers`, reads only) once it has
//! started, with the other requests or, when the configuration gives a runtime of its own,
//! there over a connection of its own. Every request gets a typed reply; a message without a
//! reply subject (`nats pub`) that fails is logged instead.

use super::job::Job;
use super::reply_to::ReplyTo;
use super::state::NodeRef;
use super::writer::Writers;
use crate::error::DdbError;
use crate::heartbeat::Mode;
use crate::op::{parse_request, Op, ReadOp};
use crate::reply::Reply;
use crate::subjects::{READERS_QUEUE, WRITERS_QUEUE};
use async_nats::{Client, Message, Subscriber};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Requests handled at once; past this, intake waits (backpressure on the subscription).
const MAX_IN_FLIGHT: usize = 8192;

pub(crate) async fn run(node: NodeRef, writers: Arc<Writers>, stop: CancellationToken) {
    let client = &node.client;
    let Some(mut direct) = subscribe(&node, client, &stop, None).await else {
        return;
    };
    let reads_elsewhere = node.cfg.reads_runtime.clone().map(|rt| {
        rt.spawn(reads_on_own_connection(
            node.clone(),
            writers.clone(),
            stop.clone(),
        ))
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ops: Option<Subscriber> = None;
    let mut reads: Option<Subscriber> = None;
    let mut mode = node.watch_mode();
    loop {
        let current = *mode.borrow_and_update();
        // Served here unless elsewhere, and as there only once the node has started.
        if reads_elsewhere.is_none() && current != Mode::Starting && reads.is_none() {
            reads = subscribe_to(
                client,
                &node,
                &stop,
                node.subjects.reads(),
                Some(READERS_QUEUE),
            )
            .await;
        }
        let takes_writes = matches!(current, Mode::Master | Mode::Failover);
        if takes_writes && ops.is_none() {
            ops = subscribe(&node, client, &stop, Some(WRITERS_QUEUE)).await;
            tracing::info!(node = %node.name(), subject = %node.subjects.ops(), "intake open");
        } else if !takes_writes {
            if let Some(mut sub) = ops.take() {
                let _ = sub.unsubscribe().await;
                // What was already delivered to us is still answered.
                while let Some(Some(m)) = futures::FutureExt::now_or_never(sub.next()) {
                    handle(&node, None, &writers, &in_flight, m).await;
                }
                tracing::info!(node = %node.name(), subject = %node.subjects.ops(), "intake closed");
            }
        }
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            _ = mode.changed() => continue,
            m = direct.next() => m,
            m = next_or_pending(&mut ops) => m,
            m = next_or_pending(&mut reads) => m,
        };
        match msg {
            Some(m) => handle(&node, None, &writers, &in_flight, m).await,
            None => {
                tracing::warn!(node = %node.name(), "subscription ended; resubscribing");
                match subscribe(&node, client, &stop, None).await {
                    Some(s) => direct = s,
                    None => break,
                }
                ops = None;
                reads = None;
            }
        }
    }
    let _ = direct.unsubscribe().await;
    for mut sub in [ops, reads].into_iter().flatten() {
        let _ = sub.unsubscribe().await;
    }
    answered_in_hand(&in_flight).await;
    if let Some(reads) = reads_elsewhere {
        let _ = reads.await;
    }
}

/// `<prefix>.reads` on the runtime it was given, over a connection of its own: readers are
/// answered by a thread that neither waits behind the log's traffic on the node's connection
/// nor shares the priority of the apply work. A master still replaying the log would only
/// make reads wait: it joins when it is done. Replicas serve reads at once (a read's min_seq
/// waits for what it needs).
async fn reads_on_own_connection(node: NodeRef, writers: Arc<Writers>, stop: CancellationToken) {
    let mut options = node.cfg.nats.clone();
    options.name = Some(format!("ddb-{}-reads", node.name()));
    let connected = tokio::select! {
        _ = stop.cancelled() => return,
        c = options.connect() => c,
    };
    let client = match connected {
        Ok(c) => Arc::new(c),
        Err(e) => {
            // Reads still reach this node through its direct subject.
            tracing::warn!(node = %node.name(), error = %e, "cannot open the reads connection; not serving {}", node.subjects.reads());
            return;
        }
    };
    let mut mode = node.watch_mode();
    while *mode.borrow_and_update() == Mode::Starting {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let subscribe = || {
        subscribe_to(
            &client,
            &node,
            &stop,
            node.subjects.reads(),
            Some(READERS_QUEUE),
        )
    };
    let Some(mut reads) = subscribe().await else {
        return;
    };
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            m = reads.next() => m,
        };
        match msg {
            Some(m) => handle(&node, Some(&client), &writers, &in_flight, m).await,
            None => {
                tracing::warn!(node = %node.name(), "reads subscription ended; resubscribing");
                match subscribe().await {
                    Some(s) => reads = s,
                    None => break,
                }
            }
        }
    }
    let _ = reads.unsubscribe().await;
    answered_in_hand(&in_flight).await;
    if let Err(e) = client.drain().await {
        tracing::warn!(node = %node.name(), error = %e, "draining the reads connection failed");
    }
}

/// Waits for the requests in hand to be answered.
async fn answered_in_hand(in_flight: &Semaphore) {
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        in_flight.acquire_many(MAX_IN_FLIGHT as u32),
    )
    .await;
}

async fn next_or_pending(sub: &mut Option<Subscriber>) -> Option<Message> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn subscribe(
    node: &NodeRef,
    client: &Client,
    stop: &CancellationToken,
    queue: Option<&str>,
) -> Option<Subscriber> {
    let subject = match queue {
        None => node.subjects.node(node.name()),
        Some(_) => node.subjects.ops().to_owned(),
    };
    subscribe_to(client, node, stop, &subject, queue).await
}

async fn subscribe_to(
    client: &Client,
    node: &NodeRef,
    stop: &CancellationToken,
    subject: &str,
    queue: Option<&str>,
) -> Option<Subscriber> {
    loop {
        let r = match queue {
            None => client.subscribe(subject.to_owned()).await,
            Some(q) => {
                client
                    .queue_subscribe(subject.to_owned(), q.to_owned())
                    .await
            }
        };
        match r {
            Ok(s) => return Some(s),
            Err(e) => {
                tracing::warn!(node = %node.name(), error = %e, "cannot subscribe; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// Answers `msg`, which came in over `via` (`None`: the node's own connection).
async fn handle(
    node: &NodeRef,
    via: Option<&Arc<Client>>,
    writers: &Arc<Writers>,
    in_flight: &Arc<Semaphore>,
    msg: Message,
) {
    let received = Instant::now();
    let Ok(permit) = in_flight.clone().acquire_owned().await else {
        return;
    };
    let to = ReplyTo::new(via.cloned(), msg.reply, msg.subject, received, permit);
    let request = match parse_request(&msg.payload, &node.cfg.limits) {
        Ok(r) => r,
        Err(e) => return to.send(node, "?", "?", Err(e)).await,
    };
    match request.op {
        Op::Write(op) if to.origin.as_str() == node.subjects.reads() => {
            let e = DdbError::bad_request(format!(
                "{} serves reads (SEARCH, CHECKSUM) only; send writes to {}",
                node.subjects.reads(),
                node.subjects.ops()
            ));
            let db = op.db().to_string();
            to.send(node, op.name(), &db, Err(e)).await
        }
        Op::Write(op) => {
            if let Some(refusal) = to.write_refusal(node) {
                let db = op.db().to_string();
                return to.send(node, op.name(), &db, Err(refusal)).await;
            }
            // The writer answers: no task and no hand-over on the way back.
            writers.submit(
                node,
                Job {
                    op: Arc::new(op),
                    op_id: request.op_id,
                    reply: to,
                },
            );
        }
        Op::Read(read) => {
            let node = node.clone();
            let mut answer = Box::pin(async move {
                let db = read.db().to_string();
                let op = read.name();
                let result = serve_read(&node, read, request.min_seq).await;
                to.send(&node, op, &db, result).await;
            });
            // A point read on SQLite with nothing to wait for is answered within its first
            // poll: answered here, it costs no task. Anything that waits goes on in a task.
            if futures::FutureExt::now_or_never(answer.as_mut()).is_none() {
                tokio::spawn(answer);
            }
        }
    }
}

async fn serve_read(node: &NodeRef, read: ReadOp, min_seq: Option<u64>) -> Result<Reply, DdbError> {
    if let Some(seq) = min_seq {
        node.wait_position(seq, node.cfg.wait_limit).await?;
    }
    let mut reply = Reply::ok(node.name());
    reply.seq = Some(node.position());
    match read {
        ReadOp::Search(s) => {
            // The reply may be no larger than the server carries; the store stops reading
            // as soon as it would be.
            let page = node.store.search(&s, node.max_payload).await?;
            reply.encoded_rows = Some(Box::new(page.rows));
            reply.next = page.next;
        }
        ReadOp::Checksum { db, table } => {
            reply.tables = Some(node.store.checksum(&db, table.as_ref()).await?);
        }
    }
    Ok(reply)
}
