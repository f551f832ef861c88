//! A node always starts: one database it cannot open stops only that database.

use ddb::heartbeat::Mode;
use ddb_e2e::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_that_cannot_be_opened_is_reported_broken_and_the_rest_is_served() {
    let mut c = Cluster::start(1).await;
    for db in ["good", "bad"] {
        c.ok(&writer(), json!({"op":"CREATE_DB","db":db})).await;
        c.ok(
            &writer(),
            json!({"op":"CREATE_TABLE","db":db,"table":"t","data":{"id":"int"},"primary_key":"id"}),
        )
        .await;
    }
    let seq = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"good","table":"t","data":{"id":1}}),
        )
        .await
        .seq
        .unwrap();
    c.wait_applied("slave1", seq).await;
    assert!(c.stop("slave1"));
    // The file is no database any more (a disk error, a bad restore): SQLite cannot open it.
    let file = c.store_dir("slave1").join("bad.sqlite");
    assert!(file.exists(), "{}", file.display());
    std::fs::write(&file, vec![b'x'; 8192]).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    c.start_node("slave1", false);
    c.wait_mode("slave1", Mode::Replica).await;
    let hb = within(10, "a heartbeat reporting bad broken", async {
        loop {
            if let Some(hb) = c.heartbeat("slave1").filter(|h| !h.broken.is_empty()) {
                return hb;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(hb.broken.len(), 1, "{hb:?}");
    assert_eq!(hb.broken[0].db, "bad");
    assert!(hb.broken[0].error.contains("cannot open"), "{hb:?}");
    // The other database is served and keeps replicating.
    let seq = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"good","table":"t","data":{"id":2}}),
        )
        .await
        .seq
        .unwrap();
    let rows = c
        .ok(
            &node("slave1"),
            json!({"op":"SEARCH","db":"good","table":"t","min_seq":seq}),
        )
        .await
        .rows
        .unwrap();
    assert_eq!(rows.len(), 2);
    // Writes to the broken database still land on the master; the slave does not apply them.
    c.ok(
        &writer(),
        json!({"op":"INSERT","db":"bad","table":"t","data":{"id":1}}),
    )
    .await;
    let r = c
        .req(
            &node("slave1"),
            json!({"op":"SEARCH","db":"bad","table":"t"}),
        )
        .await;
    assert!(!r.ok, "{r:?}");
    assert!(c.is_running("slave1"));
}
