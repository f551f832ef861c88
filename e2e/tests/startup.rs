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

/// The page size a SQLite file was made with, from its header (offset 16, big-endian; 1
/// stands for 65536).
fn page_size_of(file: &std::path::Path) -> u32 {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        n => u32::from(n),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_with_other_page_sizes_hold_the_same_data_and_a_size_sqlite_cannot_use_stops_a_node_at_start(
) {
    let mut c = Cluster::start(0).await;
    c.start_node_with("slave1", false, &["--sqlite-page-size", "8192"]);
    c.wait_mode("slave1", Mode::Replica).await;
    create_table(&c, "pages").await;
    // Rows up to ~4 KiB: at 1 KiB pages the longer ones overflow onto pages of their own.
    let seq = insert_rows(
        &c,
        "pages",
        0..3000,
        100,
        |id| json!({"id": id, "v": "x".repeat((id % 40) as usize * 100), "n": id}),
    )
    .await;
    c.wait_applied("slave1", seq).await;
    let tables = c
        .assert_converged(&["master", "slave1"], "pages", seq)
        .await;
    assert_eq!(tables[0]["rows"], 3000, "{tables}");
    // A clean stop checkpoints the WAL, so the header in the file is the one in force.
    assert!(c.stop("master") && c.stop("slave1"));
    let file = |n: &str| c.store_dir(n).join("pages.sqlite");
    assert_eq!(
        page_size_of(&file("master")),
        ddb::store::SQLITE_PAGE_SIZE,
        "the default"
    );
    assert_eq!(page_size_of(&file("slave1")), 8192);

    c.capture_node_logs();
    c.start_node_with("slave2", false, &["--sqlite-page-size", "1000"]);
    within(20, "slave2 to exit", async {
        while c.is_running("slave2") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let log = c.node_log("slave2");
    assert!(log.contains("page size 1000"), "{log}");
    assert!(!c.store_dir("slave2").exists(), "nothing was made: {log}");
}
