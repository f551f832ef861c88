//! Exactly-once across restarts and failover: op_ids are remembered in each database, in the
//! same transaction as the op, on every node that applies it, long after JetStream's own
//! duplicate window has passed.

use ddb::heartbeat::Mode;
use ddb_e2e::*;
use ddb_testsupport::NatsServer;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_the_duplicate_window_and_a_restart_is_answered_duplicate_everywhere() {
    let nats = NatsServer::start();
    let opts = ddb::connect::NatsOptions::new(&[nats.url()]);
    // JetStream forgets a Nats-Msg-Id after half a second here: only ddb's own record can
    // recognise the retries below.
    let mut c = Cluster::start_with(
        2,
        nats,
        Vec::new(),
        opts,
        &["--log-duplicate-window-ms", "500"],
    )
    .await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"once"})).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":"once","table":"t","data":{"id":"int"},"primary_key":"id"}),
    )
    .await;
    let insert = json!({"op":"INSERT","db":"once","table":"t","data":{"id":1},"op_id":"pay-42"});
    let first = c.ok(&writer(), insert.clone()).await;
    assert!(!first.duplicate);
    let seq = first.seq.unwrap();
    let tx = json!({"op":"TRANSACTION","db":"once","op_id":"tx-7","ops":[
        {"op":"INSERT","table":"t","data":{"id":2}},{"op":"INSERT","table":"t","data":{"id":3}}]});
    let tx_seq = c.ok(&writer(), tx.clone()).await.seq.unwrap();
    c.wait_applied("slave1", tx_seq).await;
    c.wait_applied("slave2", tx_seq).await;
    // Past JetStream's window (time must pass: nothing else to wait for), and a restart that
    // empties the master's memory of recent op_ids.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(c.stop("master"), "master stops cleanly");
    c.start_node("master", true);
    c.wait_mode("master", Mode::Master).await;

    let again = c.ok(&writer(), insert.clone()).await;
    assert_eq!(
        (again.node.as_str(), again.duplicate, again.seq),
        ("master", true, Some(seq))
    );
    let again = c.ok(&writer(), tx.clone()).await;
    assert_eq!((again.duplicate, again.seq), (true, Some(tx_seq)));
    // The same row under another op_id is a new write, and the key refuses it.
    let other = c
        .req(
            &writer(),
            json!({"op":"INSERT","db":"once","table":"t","data":{"id":1},"op_id":"pay-43"}),
        )
        .await;
    assert_eq!(other.error.unwrap().code, ddb::ErrorCode::Constraint);

    // The master dies; a slave takes writes and recognises the retries from what it applied.
    c.kill("master");
    let taker = within(30, "a slave to enter failover", async {
        loop {
            for s in ["slave1", "slave2"] {
                if c.heartbeat(s).is_some_and(|h| h.mode == Mode::Failover) {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let again = c.ok(&node(taker), insert.clone()).await;
    assert_eq!(
        (again.node.as_str(), again.duplicate, again.seq),
        (taker, true, Some(seq))
    );
    let again = c.ok(&writer(), tx).await;
    assert_eq!((again.duplicate, again.seq), (true, Some(tx_seq)));
    for s in ["slave1", "slave2"] {
        let rows = c
            .ok(
                &node(s),
                json!({"op":"SEARCH","db":"once","table":"t","min_seq":tx_seq}),
            )
            .await
            .rows
            .unwrap();
        assert_eq!(rows.len(), 3, "each op applied once on {s}");
    }
}
