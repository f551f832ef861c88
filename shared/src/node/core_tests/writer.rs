//! The write path: group commit, the too-large split, conflict retry, the stale-writer check,
//! duplicates, and the refusals.

use super::super::job::Job;
use super::super::log_port::LogPort;
use super::super::reply_to::ReplyTo;
use super::super::test_node::{node_on, test_node, test_node_with, TestNode, MAX_PAYLOAD};
use super::super::writer::Writers;
use super::*;
use crate::error::ErrorCode;
use crate::heartbeat::{Mode, Role};
use crate::reply::Reply;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// A node in master mode with its writers.
struct Writing {
    t: TestNode,
    writers: Arc<Writers>,
}

impl Writing {
    async fn new() -> Self {
        Self::on(test_node(Role::Master).await).await
    }

    async fn on(t: TestNode) -> Self {
        t.node.set_mode(Mode::Master);
        Writing {
            t,
            writers: Arc::new(Writers::default()),
        }
    }

    /// Hands `json` to the writer as intake would; the reply comes through the receiver.
    fn submit(&self, json: &str) -> oneshot::Receiver<Reply> {
        let (op, op_id) = write_op(json);
        let (reply, rx) = ReplyTo::local(self.t.node.subjects.ops());
        self.writers.submit(
            &self.t.node,
            Job {
                op: Arc::new(op),
                op_id,
                reply,
            },
        );
        rx
    }

    async fn write(&self, json: &str) -> Reply {
        answer(self.submit(json)).await
    }

    /// The shop database with its table t (log entries 1 and 2).
    async fn with_shop(self) -> Self {
        for json in [CREATE_SHOP, CREATE_T] {
            let r = self.write(json).await;
            assert!(r.ok, "{json}: {:?}", r.error);
        }
        self
    }
}

async fn answer(rx: oneshot::Receiver<Reply>) -> Reply {
    within("a reply", rx).await.expect("the writer answers")
}

fn code(r: &Reply) -> Option<ErrorCode> {
    r.error.as_ref().map(|e| e.code)
}

#[tokio::test]
async fn writes_waiting_together_become_one_entry() {
    let w = Writing::new().await.with_shop().await;
    // The test runs on one thread: all five are queued before the writer runs.
    let pending: Vec<_> = (1..=5).map(|i| w.submit(&insert(i))).collect();
    let mut seqs = Vec::new();
    for rx in pending {
        let r = answer(rx).await;
        assert!(r.ok, "{:?}", r.error);
        assert_eq!(r.affected, Some(1));
        seqs.push(r.seq.expect("a seq"));
    }
    assert_eq!(seqs, [3; 5]);
    let entries = w.t.log.entries();
    assert_eq!(entries.len(), 3);
    assert_eq!(ops_in(&entries[2].1, "shop"), 5);
    assert_eq!(rows(&w.t.node, "shop", "t").await, 5);
    assert_eq!(w.t.node.store.applied_seq(&db("shop")).await.unwrap(), 3);
    assert_eq!(w.t.node.catalog.databases(), ["shop"]);
}

#[tokio::test]
async fn a_group_commit_never_holds_more_than_max_batch() {
    let t = test_node_with(Role::Master, MAX_PAYLOAD, |c| c.max_batch = 2).await;
    let w = Writing::on(t).await.with_shop().await;
    let pending: Vec<_> = (1..=5).map(|i| w.submit(&insert(i))).collect();
    let mut seqs = Vec::new();
    for rx in pending {
        seqs.push(answer(rx).await.seq.expect("a seq"));
    }
    assert_eq!(seqs, [3, 3, 4, 4, 5]);
}

#[tokio::test]
async fn an_entry_over_the_max_payload_is_split_and_each_part_lands() {
    // Each insert alone fits; the five together do not.
    let t = test_node_with(Role::Master, 700, |_| {}).await;
    let w = Writing::on(t).await.with_shop().await;
    let big = |id: u64| {
        format!(
            r#"{{"op":"INSERT","db":"shop","table":"t","data":{{"id":{id},"v":"{}"}}}}"#,
            "y".repeat(300)
        )
    };
    let pending: Vec<_> = (1..=5).map(|i| w.submit(&big(i))).collect();
    let mut seqs = Vec::new();
    for rx in pending {
        let r = answer(rx).await;
        assert!(r.ok, "{:?}", r.error);
        seqs.push(r.seq.unwrap());
    }
    assert_eq!(seqs, [3, 4, 5, 6, 7]);
    let entries = w.t.log.entries();
    assert!(entries[2..].iter().all(|(_, p)| ops_in(p, "shop") == 1));
    assert_eq!(rows(&w.t.node, "shop", "t").await, 5);
}

#[tokio::test]
async fn a_single_op_over_the_max_payload_is_refused_and_nothing_is_committed() {
    let t = test_node_with(Role::Master, 700, |_| {}).await;
    let w = Writing::on(t).await.with_shop().await;
    let json = format!(
        r#"{{"op":"INSERT","db":"shop","table":"t","data":{{"id":1,"v":"{}"}}}}"#,
        "z".repeat(1000)
    );
    let r = w.write(&json).await;
    assert_eq!(code(&r), Some(ErrorCode::TooLarge), "{:?}", r.error);
    assert_eq!(w.t.log.entries().len(), 2);
    assert_eq!(rows(&w.t.node, "shop", "t").await, 0);
    assert_eq!(w.t.node.store.applied_seq(&db("shop")).await.unwrap(), 2);
}

#[tokio::test]
async fn after_another_writer_appended_first_the_writer_catches_up_and_retries() {
    let w = Writing::new().await.with_shop().await;
    let shop = db("shop");
    let theirs = entry("other", 2, &[&insert(100)]);
    w.t.log.append(&shop, theirs, 2, None).await.unwrap();
    let r = w.write(&insert(1)).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.seq, Some(4));
    assert_eq!(rows(&w.t.node, "shop", "t").await, 2);
    assert_eq!(w.t.node.store.applied_seq(&shop).await.unwrap(), 4);
    // The entry says which seq it was appended after.
    let mine = &w.t.log.entries()[3].1;
    assert_eq!(LogEntry::decode(mine, &shop).unwrap().prev, Some(3));
}

#[tokio::test]
async fn a_write_that_fails_on_stale_data_catches_up_and_succeeds() {
    // Another writer created the table this insert needs: failing here would answer from data
    // that is out of date.
    let w = Writing::new().await;
    assert!(w.write(CREATE_SHOP).await.ok);
    let shop = db("shop");
    w.t.log
        .append(&shop, entry("other", 1, &[CREATE_T]), 1, None)
        .await
        .unwrap();
    let r = w.write(&insert(1)).await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.seq, Some(3));
    assert_eq!(rows(&w.t.node, "shop", "t").await, 1);
}

#[tokio::test]
async fn a_write_that_fails_on_current_data_is_answered_and_appends_nothing() {
    let w = Writing::new().await.with_shop().await;
    let r = w
        .write(r#"{"op":"INSERT","db":"shop","table":"missing","data":{"id":1}}"#)
        .await;
    assert!(!r.ok);
    assert_ne!(code(&r), Some(ErrorCode::Conflict), "{:?}", r.error);
    assert_eq!(w.t.log.entries().len(), 2);
}

#[tokio::test]
async fn a_failed_op_in_a_group_fails_alone() {
    let w = Writing::new().await.with_shop().await;
    let a = w.submit(&insert(1));
    let dup = w.submit(&insert(1));
    let b = w.submit(&insert(2));
    let (a, dup, b) = (answer(a).await, answer(dup).await, answer(b).await);
    assert!(a.ok && b.ok, "{:?} {:?}", a.error, b.error);
    assert!(!dup.ok);
    assert_eq!((a.seq, b.seq), (Some(3), Some(3)));
    assert_eq!(ops_in(&w.t.log.entries()[2].1, "shop"), 2);
}

#[tokio::test]
async fn a_retried_op_id_is_answered_with_the_original_seq() {
    let w = Writing::new().await.with_shop().await;
    let json = r#"{"op":"INSERT","db":"shop","table":"t","data":{"id":1},"op_id":"k-1"}"#;
    let first = w.write(json).await;
    assert_eq!(
        (first.ok, first.seq, first.duplicate),
        (true, Some(3), false)
    );
    let again = w.write(json).await;
    assert_eq!(
        (again.ok, again.seq, again.duplicate),
        (true, Some(3), true)
    );
    assert_eq!(w.t.log.entries().len(), 3);
    assert_eq!(rows(&w.t.node, "shop", "t").await, 1);
}

#[tokio::test]
async fn an_op_id_another_writer_appended_is_a_duplicate_once_applied_here() {
    // JetStream's duplicate window answers before this node has applied the other entry:
    // the writer waits for its reader to get there, then answers with the original seq.
    let w = Writing::new().await.with_shop().await;
    let shop = db("shop");
    let json = r#"{"op":"INSERT","db":"shop","table":"t","data":{"id":7},"op_id":"k-7"}"#;
    let theirs = entry("other", 2, &[json]);
    w.t.log.append(&shop, theirs, 2, Some("k-7")).await.unwrap();
    let stop = CancellationToken::new();
    let reader = tokio::spawn(super::super::applier::run(w.t.node.clone(), stop.clone()));
    let r = w.write(json).await;
    assert_eq!(
        (r.ok, r.seq, r.duplicate),
        (true, Some(3), true),
        "{:?}",
        r.error
    );
    assert_eq!(rows(&w.t.node, "shop", "t").await, 1);
    stop.cancel();
    within("the reader to stop", reader).await.unwrap();
}

#[tokio::test]
async fn a_log_that_does_not_confirm_commits_nothing() {
    let w = Writing::new().await.with_shop().await;
    w.t.log.set_unavailable(true);
    let r = w.write(&insert(1)).await;
    assert_eq!(code(&r), Some(ErrorCode::Unavailable), "{:?}", r.error);
    assert!(r.error.unwrap().message.contains("nothing was committed"));
    w.t.log.set_unavailable(false);
    assert_eq!(rows(&w.t.node, "shop", "t").await, 0);
    let r = w.write(&insert(1)).await;
    assert_eq!(r.seq, Some(3), "{:?}", r.error);
}

/// A writer on a replicated log whose first append after the shop was stored but not
/// acknowledged, and whose next append the log takes although it expects the same entry.
async fn after_a_lost_ack_the_log_takes_a_stale_append() -> Writing {
    let w = Writing::new().await.with_shop().await;
    w.t.log.set_replicated(true);
    w.t.log.lose_next_ack();
    let r = w.write(&insert(1)).await;
    assert_eq!(code(&r), Some(ErrorCode::Unavailable), "{:?}", r.error);
    assert_eq!(w.t.log.entries().len(), 3, "stored though unacknowledged");
    w.t.log.skip_next_expected_check();
    w
}

#[tokio::test]
async fn an_entry_the_log_took_after_one_it_does_not_follow_is_written_again() {
    let w = after_a_lost_ack_the_log_takes_a_stale_append().await;
    let shop = db("shop");
    let r = w.write(&insert(2)).await;
    // Entry 4 expected entry 2 but came after 3: the writer sees that, commits nothing of it,
    // applies 3, passes over 4, and writes the op again after 4.
    assert_eq!((r.ok, r.seq), (true, Some(5)), "{:?}", r.error);
    assert_eq!(rows(&w.t.node, "shop", "t").await, 2);
    assert_eq!(w.t.node.store.applied_seq(&shop).await.unwrap(), 5);
    let entries = w.t.log.entries();
    assert_eq!(
        LogEntry::decode(&entries[3].1, &shop).unwrap().prev,
        Some(2)
    );
    assert_eq!(
        LogEntry::decode(&entries[4].1, &shop).unwrap().prev,
        Some(4)
    );
    // A replica that reads the whole log holds the same rows.
    let dir = tempfile::tempdir().unwrap();
    let replica = node_on(Role::Slave, &dir, &w.t.log, |_| {}).await;
    let stop = CancellationToken::new();
    let reader = tokio::spawn(super::super::applier::run(replica.clone(), stop.clone()));
    within("the replica's position", replica.wait_position(5, LIMIT))
        .await
        .unwrap();
    assert_eq!(rows(&replica, "shop", "t").await, 2);
    assert_eq!(
        replica.store.checksum(&shop, None).await.unwrap(),
        w.t.node.store.checksum(&shop, None).await.unwrap()
    );
    stop.cancel();
    within("the reader to stop", reader).await.unwrap();
}

#[tokio::test]
async fn an_op_id_whose_entry_was_passed_over_is_written_again_not_answered_as_a_duplicate() {
    let w = after_a_lost_ack_the_log_takes_a_stale_append().await;
    let json = r#"{"op":"INSERT","db":"shop","table":"t","data":{"id":2},"op_id":"k-2"}"#;
    // Entry 4 carries k-2 as its msg id and is passed over: the write again must not be
    // taken for it by the duplicate window.
    let r = w.write(json).await;
    assert_eq!(
        (r.ok, r.seq, r.duplicate),
        (true, Some(5), false),
        "{:?}",
        r.error
    );
    let again = w.write(json).await;
    assert_eq!(
        (again.ok, again.seq, again.duplicate),
        (true, Some(5), true)
    );
    assert_eq!(rows(&w.t.node, "shop", "t").await, 2);
    assert_eq!(w.t.log.entries().len(), 5);
}

const K7: &str = r#"{"op":"INSERT","db":"shop","table":"t","data":{"id":7},"op_id":"k-7"}"#;

/// Another writer's entries 3 and 4 of the shop, both after entry 2 (the log took the second
/// although it expected 2): this node's reader applied 3 and passed over 4, which holds K7
/// and is the entry JetStream's duplicate window names for k-7.
async fn k7_passed_over_by(w: Writing) -> Writing {
    let shop = db("shop");
    w.t.log
        .append(&shop, entry("other", 2, &[&insert(100)]), 2, None)
        .await
        .unwrap();
    w.t.log.skip_next_expected_check();
    w.t.log
        .append(&shop, entry("other", 2, &[K7]), 2, Some("k-7"))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let reader = tokio::spawn(super::super::applier::run(w.t.node.clone(), stop.clone()));
    within("the position", w.t.node.wait_position(4, LIMIT))
        .await
        .unwrap();
    stop.cancel();
    within("the reader to stop", reader).await.unwrap();
    w
}

/// The client retries k-7 here: its append is answered as a duplicate of 4, which never took
/// effect, so the op is written again as entry 5.
async fn k7_is_written_again(w: &Writing) {
    let r = w.write(K7).await;
    assert_eq!(
        (r.ok, r.seq, r.duplicate),
        (true, Some(5), false),
        "{:?}",
        r.error
    );
    assert_eq!(rows(&w.t.node, "shop", "t").await, 2);
}

#[tokio::test]
async fn a_retry_the_duplicate_window_answers_with_a_passed_over_entry_is_written_again() {
    let w = k7_passed_over_by(Writing::new().await.with_shop().await).await;
    k7_is_written_again(&w).await;
}

#[tokio::test]
async fn after_a_restart_the_log_shows_that_the_duplicate_windows_entry_was_passed_over() {
    // The node that passed over entry 4 restarted since: it no longer remembers, so it reads
    // the log to tell.
    let t = test_node(Role::Master).await;
    t.log.set_replicated(true);
    let Writing { t, .. } = k7_passed_over_by(Writing::on(t).await.with_shop().await).await;
    let restarted = node_on(Role::Master, &t.dir, &t.log, |_| {}).await;
    assert!(!restarted.op_id_passed_over_at("k-7", 4));
    let w = Writing::on(TestNode {
        node: restarted,
        log: t.log.clone(),
        dir: t.dir,
    })
    .await;
    k7_is_written_again(&w).await;
}

#[tokio::test]
async fn a_replica_refuses_writes() {
    let w = Writing::new().await;
    w.t.node.set_mode(Mode::Replica);
    let r = w.write(CREATE_SHOP).await;
    assert_eq!(code(&r), Some(ErrorCode::Unavailable), "{:?}", r.error);
    assert!(r.error.unwrap().message.contains("stopped taking writes"));
    assert!(w.t.log.entries().is_empty());
}

#[tokio::test]
async fn writes_queued_when_failover_ends_are_told_to_retry_elsewhere() {
    let t = test_node(Role::Slave).await;
    let w = Writing::on(t).await;
    w.t.node.set_mode(Mode::Failover);
    let rx = w.submit(CREATE_SHOP);
    // The master is back before the writer runs.
    w.t.node.set_mode(Mode::Replica);
    let r = answer(rx).await;
    assert_eq!(code(&r), Some(ErrorCode::Unavailable), "{:?}", r.error);
    assert!(w.t.log.entries().is_empty());
}

#[tokio::test]
async fn a_broken_database_takes_no_writes_here() {
    let w = Writing::new().await.with_shop().await;
    w.t.node
        .mark_broken(&db("shop"), 2, &crate::error::DdbError::internal("disk"));
    let r = w.write(&insert(1)).await;
    assert_eq!(code(&r), Some(ErrorCode::Unavailable), "{:?}", r.error);
    assert!(r.error.unwrap().message.contains("stopped replicating"));
    assert_eq!(w.t.log.entries().len(), 2);
}

#[tokio::test]
async fn draining_lets_queued_writes_finish() {
    let w = Writing::new().await.with_shop().await;
    let pending: Vec<_> = (1..=3).map(|i| w.submit(&insert(i))).collect();
    within("drain", w.writers.drain(LIMIT)).await;
    for rx in pending {
        assert!(answer(rx).await.ok);
    }
    assert_eq!(rows(&w.t.node, "shop", "t").await, 3);
}
