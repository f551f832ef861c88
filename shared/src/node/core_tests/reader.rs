//! The log reader: applying in order, the position it persists (never past a broken
//! database), gaps in delivery, entries ddb did not write, restarts, and a master's catch-up.

use super::super::applier;
use super::super::lifecycle::catch_up_then_open;
use super::super::log_port::LogPort;
use super::super::test_node::{node_on, test_node, test_node_with, TestNode, MAX_PAYLOAD};
use super::*;
use crate::heartbeat::{Mode, Role};
use std::time::Instant;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Reading {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

fn start_reader(node: &NodeRef) -> Reading {
    let stop = CancellationToken::new();
    let task = tokio::spawn(applier::run(node.clone(), stop.clone()));
    Reading { stop, task }
}

impl Reading {
    async fn stop(self) {
        self.stop.cancel();
        within("the reader to stop", self.task).await.unwrap();
    }
}

/// Appends `ops` to `name` as another node's writer would, after its last entry.
async fn append(t: &TestNode, name: &str, ops: &[&str]) -> u64 {
    let d = db(name);
    let prev = t.log.last_seq_of(&d).await.unwrap();
    t.log
        .append(&d, entry("m1", prev, ops), prev, None)
        .await
        .unwrap()
        .seq
}

async fn reach(node: &NodeRef, seq: u64) {
    within("the position", node.wait_position(seq, LIMIT))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_reader_applies_the_log_in_order_and_persists_its_position() {
    let t = test_node(Role::Slave).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    let reader = start_reader(&t.node);
    reach(&t.node, 2).await;
    // Entries that arrive later are applied as they come.
    append(&t, "shop", &[&insert(1), &insert(2)]).await;
    reach(&t.node, 3).await;
    assert_eq!(rows(&t.node, "shop", "t").await, 2);
    assert_eq!(t.node.catalog.databases(), ["shop"]);
    assert_eq!(t.node.progress.log_end(), 3);
    reader.stop().await;
    assert_eq!(t.node.store.log_position().await.unwrap(), 3);
    assert_eq!(t.node.store.applied_seq(&db("shop")).await.unwrap(), 3);
}

#[tokio::test]
async fn op_ids_applied_from_the_log_are_remembered() {
    let t = test_node(Role::Slave).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    append(
        &t,
        "shop",
        &[r#"{"op":"INSERT","db":"shop","table":"t","data":{"id":1},"op_id":"k-1"}"#],
    )
    .await;
    let reader = start_reader(&t.node);
    reach(&t.node, 3).await;
    assert_eq!(t.node.seq_of_op_id("k-1"), Some(3));
    reader.stop().await;
}

#[tokio::test]
async fn the_position_is_never_persisted_past_a_broken_database() {
    let t = test_node(Role::Slave).await;
    append(&t, "a", &[r#"{"op":"CREATE_DB","db":"a"}"#]).await;
    // Fails here: there is no such table.
    append(
        &t,
        "a",
        &[r#"{"op":"INSERT","db":"a","table":"missing","data":{"id":1}}"#],
    )
    .await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    append(
        &t,
        "a",
        &[r#"{"op":"CREATE_TABLE","db":"a","table":"u","data":{"id":"int"}}"#],
    )
    .await;
    let reader = start_reader(&t.node);
    reach(&t.node, 5).await;
    reader.stop().await;
    let broken = t.node.catalog.broken();
    assert_eq!(broken.len(), 1);
    assert_eq!((broken[0].db.as_str(), broken[0].seq), ("a", 2));
    // The other database goes on; the broken one stops at its last good entry.
    assert_eq!(t.node.store.applied_seq(&db("shop")).await.unwrap(), 4);
    assert_eq!(t.node.store.applied_seq(&db("a")).await.unwrap(), 1);
    // A restart replays from the entry that failed.
    assert_eq!(t.node.store.log_position().await.unwrap(), 1);
}

#[tokio::test]
async fn an_entry_lost_in_flight_is_fetched_again_by_reopening_at_the_gap() {
    let t = test_node(Role::Slave).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    append(&t, "shop", &[&insert(1)]).await;
    append(&t, "shop", &[&insert(2)]).await;
    t.log.lose_delivery_of(3);
    let reader = start_reader(&t.node);
    reach(&t.node, 4).await;
    reader.stop().await;
    assert_eq!(rows(&t.node, "shop", "t").await, 2);
    assert_eq!(t.log.consumers_opened(), 2);
}

#[tokio::test]
async fn a_last_entry_lost_in_flight_is_fetched_again_once_the_reader_sees_it_stalled() {
    // No later entry shows the gap: the log's end, ahead of the position with nothing
    // delivered for a while, does (after `delivery::STALLED_AFTER`, real time).
    let t = test_node(Role::Slave).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    append(&t, "shop", &[&insert(1)]).await;
    t.log.lose_delivery_of(3);
    let reader = start_reader(&t.node);
    reach(&t.node, 2).await;
    assert_eq!(t.node.progress.log_end(), 3);
    reach(&t.node, 3).await;
    reader.stop().await;
    assert_eq!(rows(&t.node, "shop", "t").await, 1);
    assert_eq!(t.log.consumers_opened(), 2);
}

#[tokio::test]
async fn an_entry_ddb_did_not_write_is_passed_over_and_recorded() {
    let t = test_node(Role::Slave).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    let foreign = t.log.append_raw("ddb.log.shop", b"not json");
    append(&t, "shop", &[CREATE_T]).await;
    let reader = start_reader(&t.node);
    reach(&t.node, 3).await;
    reader.stop().await;
    assert_eq!(foreign, 2);
    assert!(t.node.catalog.broken().is_empty());
    assert_eq!(t.node.store.applied_seq(&db("shop")).await.unwrap(), 3);
}

#[tokio::test]
async fn an_entry_appended_on_a_state_the_log_had_moved_past_is_passed_over_alike() {
    // What a clustered JetStream 2.9 can take around a change of stream leader: two entries
    // that both expect entry 2. The second was executed without the first's row, so every
    // node passes over it; the entry after it, written on top of it, is applied.
    let t = test_node(Role::Slave).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    let shop = db("shop");
    t.log
        .append(&shop, entry("m1", 2, &[&insert(1)]), 2, None)
        .await
        .unwrap();
    let stale = r#"{"op":"INSERT","db":"shop","table":"t","data":{"id":2},"op_id":"k-2"}"#;
    t.log.skip_next_expected_check();
    let passed_over = t
        .log
        .append(&shop, entry("s1", 2, &[stale]), 2, Some("k-2"))
        .await
        .unwrap();
    assert_eq!(passed_over.seq, 4);
    append(&t, "shop", &[&insert(3)]).await;
    let reader = start_reader(&t.node);
    reach(&t.node, 5).await;
    assert_eq!(rows(&t.node, "shop", "t").await, 2);
    assert_eq!(t.node.store.applied_seq(&shop).await.unwrap(), 5);
    assert!(!t.node.is_broken("shop"));
    // Its op_id is known as never applied, not as applied at 4.
    assert_eq!(t.node.seq_of_op_id("k-2"), None);
    assert!(t.node.op_id_passed_over_at("k-2", 4));
    reader.stop().await;
}

#[tokio::test]
async fn a_restart_resumes_at_the_persisted_position() {
    let t = test_node(Role::Slave).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    let reader = start_reader(&t.node);
    reach(&t.node, 2).await;
    reader.stop().await;
    within("the store to close", t.node.store.close())
        .await
        .unwrap();
    let again = node_on(Role::Slave, &t.dir, &t.log, |_| {}).await;
    assert_eq!(again.position(), 2);
    assert_eq!(again.catalog.databases(), ["shop"]);
}

#[tokio::test]
async fn a_database_file_lost_while_down_is_rebuilt_from_the_log_at_restart() {
    let t = test_node(Role::Slave).await;
    append(&t, "gone", &[r#"{"op":"CREATE_DB","db":"gone"}"#]).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    append(&t, "shop", &[&insert(1)]).await;
    let reader = start_reader(&t.node);
    reach(&t.node, 4).await;
    reader.stop().await;
    within("the store to close", t.node.store.close())
        .await
        .unwrap();
    let file = t.dir.path().join("gone.sqlite");
    assert!(file.exists(), "{}", file.display());
    std::fs::remove_file(&file).unwrap();
    // Its entries are below the saved position: the restart resumes before them.
    let again = node_on(Role::Slave, &t.dir, &t.log, |_| {}).await;
    assert_eq!(again.position(), 0);
    let reader = start_reader(&again);
    reach(&again, 4).await;
    reader.stop().await;
    assert_eq!(again.catalog.databases(), ["gone", "shop"]);
    assert_eq!(again.store.applied_seq(&db("gone")).await.unwrap(), 1);
    // Replayed exactly once: the other database's row is not inserted again.
    assert_eq!(rows(&again, "shop", "t").await, 1);
    assert!(again.catalog.broken().is_empty());
}

#[tokio::test]
async fn a_starting_master_takes_writes_only_once_it_reached_the_logs_end() {
    let t = test_node(Role::Master).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    let mut mode = t.node.watch_mode();
    let opening = tokio::spawn(catch_up_then_open(t.node.clone()));
    assert_eq!(t.node.mode(), Mode::Starting);
    assert!(t.node.write_refusal().is_some());
    let reader = start_reader(&t.node);
    within("master mode", mode.wait_for(|m| *m == Mode::Master))
        .await
        .unwrap();
    assert!(t.node.position() >= 2);
    within("the opening task", opening).await.unwrap();
    reader.stop().await;
}

#[tokio::test]
async fn a_replica_applies_entries_that_keep_coming_together_and_one_after_a_quiet_spell_at_once() {
    let every = Duration::from_millis(1500);
    let t = test_node_with(Role::Slave, MAX_PAYLOAD, |c| c.apply_every = every).await;
    append(&t, "shop", &[CREATE_SHOP]).await;
    append(&t, "shop", &[CREATE_T]).await;
    let reader = start_reader(&t.node);
    reach(&t.node, 2).await;
    // Right behind that apply: these wait for the rest of `every`, then go in together.
    let applied_at = Instant::now();
    append(&t, "shop", &[&insert(1)]).await;
    append(&t, "shop", &[&insert(2)]).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(t.node.position(), 2, "applied before apply_every was out");
    reach(&t.node, 4).await;
    // Less the time the first apply took, which a loaded machine can stretch.
    assert!(applied_at.elapsed() >= Duration::from_millis(1000));
    assert_eq!(rows(&t.node, "shop", "t").await, 2);
    // After a quiet spell longer than `every`, an entry is applied as soon as it comes.
    tokio::time::sleep(every + Duration::from_millis(100)).await;
    let sent = Instant::now();
    append(&t, "shop", &[&insert(3)]).await;
    reach(&t.node, 5).await;
    assert!(
        sent.elapsed() < Duration::from_millis(1000),
        "an entry after a quiet spell waited {:?}",
        sent.elapsed()
    );
    reader.stop().await;
    assert_eq!(t.node.store.applied_seq(&db("shop")).await.unwrap(), 5);
}

#[tokio::test]
async fn a_node_that_takes_writes_applies_entries_without_waiting() {
    // Its clients' reads of their own writes wait for this reader.
    let t = test_node_with(Role::Master, MAX_PAYLOAD, |c| {
        c.apply_every = Duration::from_secs(60)
    })
    .await;
    t.node.set_mode(Mode::Master);
    let reader = start_reader(&t.node);
    for (seq, op) in [CREATE_SHOP, CREATE_T, &insert(1), &insert(2)]
        .iter()
        .enumerate()
    {
        append(&t, "shop", &[op]).await;
        reach(&t.node, seq as u64 + 1).await;
    }
    reader.stop().await;
    assert_eq!(rows(&t.node, "shop", "t").await, 2);
}
