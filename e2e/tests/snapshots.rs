//! Snapshots end to end (README "Snapshots, retention and bootstrap"): real nats-server, real
//! node binaries, each cluster under a `--prefix` of its own with a log limited in size.
//!
//! - A log limited to 1 MB that 40,000 rows in 400 INSERTs and 200 UPDATEs went through has
//!   lost its early entries; a new slave with an empty store restores the newest snapshot and
//!   replays the rest: its CHECKSUM equals the master's within 10 s. `ddb snapshot` prints
//!   where the snapshot is, its seq, size and time.
//! - A node killed (-9) while it restores starts again and converges.
//! - A corrupt object in the bucket is refused, nothing of it applied: an older valid
//!   snapshot is used when one covers the gap, else the database is marked broken saying
//!   why. An object whose name names an invalid database is ignored with an error.
//! - With `DDB_TEST_MSSQL` set, the new slave joins on SQL Server from a snapshot an SQLite
//!   master took.

use ddb::heartbeat::Mode;
use ddb::node::snapshots::{bucket_name, Bucket};
use ddb::subjects::Subjects;
use ddb_e2e::*;
use ddb_testsupport::NatsServer;
use serde_json::{json, Value as Json};
use std::time::{Duration, Instant};

const DB: &str = "shop";

async fn cluster(prefix: &str, max_bytes: &str, slaves: usize) -> Cluster {
    let nats = NatsServer::start();
    let opts = ddb::connect::NatsOptions::new(&[nats.url()]);
    let mut c = Cluster::empty_prefixed(
        nats,
        Vec::new(),
        opts,
        prefix,
        &["--prefix", prefix, "--log-max-bytes", max_bytes],
    )
    .await;
    c.capture_node_logs();
    c.start_all(slaves).await;
    c
}

/// Creates `DB` with table `t` (id, v, n); returns the CREATE_TABLE's seq.
async fn create(c: &Cluster) -> u64 {
    c.ok(&writer(), json!({"op":"CREATE_DB","db":DB})).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":DB,"table":"t",
               "data":{"id":"int","v":"string","n":"int"},"primary_key":["id"]}),
    )
    .await
    .seq
    .expect("seq")
}

/// `inserts` INSERTs of `per` rows each, from id `first`; returns the last seq.
async fn insert_rows(c: &Cluster, first: i64, inserts: i64, per: i64) -> u64 {
    insert_into(c, DB, first, inserts, per).await
}

async fn insert_into(c: &Cluster, db: &str, first: i64, inserts: i64, per: i64) -> u64 {
    ddb_e2e::insert_rows(
        c,
        db,
        first..first + inserts * per,
        per as usize,
        |id| json!({"id": id, "v": format!("row {id} of the snapshot test"), "n": id % 13}),
    )
    .await
}

/// The seq of the oldest entry of `db` still in the log of `prefix`.
async fn first_seq_of(c: &Cluster, prefix: &str, db: &str) -> Option<u64> {
    let js = async_nats::jetstream::new(c.client.nats().clone());
    let subjects = Subjects::new(prefix);
    let stream = js.get_stream(subjects.stream()).await.expect("log stream");
    stream
        .get_first_raw_message_by_subject(subjects.log(db), 1)
        .await
        .ok()
        .map(|m| m.sequence)
}

async fn wait_trimmed_past(c: &Cluster, prefix: &str, seq: u64) -> u64 {
    within(60, "the log to be trimmed by snapshots", async {
        loop {
            if let Some(first) = first_seq_of(c, prefix, DB).await {
                if first > seq {
                    return first;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
}

async fn bucket(c: &Cluster, prefix: &str) -> Bucket {
    let js = async_nats::jetstream::new(c.client.nats().clone());
    Bucket::ensure(&js, &Subjects::new(prefix), 1)
        .await
        .expect("bucket")
}

/// The CHECKSUM of `DB` on `node` once it has applied `seq` (None while it cannot answer).
async fn checksum_on(c: &Cluster, node: &str, seq: u64) -> Option<Json> {
    let r = c
        .client
        .request(
            &ddb::client::Target::Node(node.to_owned()),
            &json!({"op":"CHECKSUM","db":DB,"min_seq":seq}),
        )
        .await
        .ok()?;
    r.ok.then(|| serde_json::to_value(r.tables?).ok())?
}

/// Waits up to `secs` for `node`'s CHECKSUM to equal the master's; returns how long it took.
/// On a timeout the panic shows both CHECKSUMs, the node's last heartbeat and its log.
async fn wait_same_as_master(c: &Cluster, node: &str, seq: u64, secs: u64) -> Duration {
    let want = checksum_on(c, "master", seq)
        .await
        .expect("master checksum");
    let started = Instant::now();
    let converged = tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            if checksum_on(c, node, seq).await.as_ref() == Some(&want) {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    match converged {
        Ok(took) => took,
        Err(_) => {
            let has = tokio::time::timeout(Duration::from_secs(10), checksum_on(c, node, seq))
                .await
                .ok()
                .flatten();
            panic!(
                "timed out after {secs} s: {node} to hold what the master holds (seq {seq})\n\
                 master: {want}\n{node}: {has:?}\nlast heartbeat: {:?}\n--- {node} log ---\n{}",
                c.heartbeat(node),
                c.node_log(node)
            )
        }
    }
}

fn ddb_cli(c: &Cluster, prefix: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(ddb_testsupport::workspace_bin("ddb"))
        .args(args)
        .args(["--nats", &c.nats.url(), "--prefix", prefix])
        .output()
        .expect("run ddb");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_slave_joins_a_trimmed_log_from_a_snapshot_within_10_s() {
    let prefix = "ret";
    let mut c = cluster(prefix, "1000000", 1).await;
    let table_seq = create(&c).await;
    let mut last = insert_rows(&c, 0, 400, 100).await;
    for i in 0..200i64 {
        let r = c
            .ok(
                &writer(),
                json!({"op":"UPDATE","db":DB,"table":"t","data":{"n":i},
                       "condition":{"id":{"$gte":i * 200,"$lt":i * 200 + 50}}}),
            )
            .await;
        last = last.max(r.seq.unwrap_or(0));
    }
    let first = wait_trimmed_past(&c, prefix, table_seq).await;
    assert!(
        first > table_seq,
        "CREATE_DB and CREATE_TABLE are gone from the log"
    );

    // `ddb snapshot` says where, which seq, how big and how long.
    let (ok, out, err) = ddb_cli(&c, prefix, &["snapshot", "--db", DB]);
    assert!(ok, "ddb snapshot failed: {out}{err}");
    eprint!("ddb snapshot: {out}");
    assert!(out.starts_with("shop: seq "), "{out}");
    for word in [
        "rows in 1 tables",
        "took",
        "in bucket RET_SNAPSHOTS as shop/",
    ] {
        assert!(out.contains(word), "{word:?} missing from {out}");
    }

    c.start_node("slave2", false);
    let took = wait_same_as_master(&c, "slave2", last, 10).await;
    eprintln!("slave2 joined from a snapshot in {took:?}");
    c.assert_converged(&["master", "slave1", "slave2"], DB, last)
        .await;
    let log = c.node_log("slave2");
    assert!(!log.contains("ERROR"), "slave2 logged errors: {log}");

    // The heartbeats tell the newest snapshot's seq and age.
    let hb = c.heartbeat("master").expect("master heartbeat");
    let snap = hb
        .snapshots
        .newest
        .iter()
        .find(|s| s.db == DB)
        .expect("newest snapshot in the heartbeat");
    assert!(snap.seq >= first, "{snap:?}");
    // Writes after the join reach the new slave through the log.
    let more = insert_rows(&c, 1_000_000, 3, 10).await;
    c.assert_converged(&["master", "slave2"], DB, more).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_while_it_restores_starts_again_and_converges() {
    let prefix = "kill9";
    let mut c = cluster(prefix, "1000000", 0).await;
    c.set_node_log_filter("warn,ddb=info");
    let table_seq = create(&c).await;
    let last = insert_rows(&c, 0, 30, 10_000).await;
    wait_trimmed_past(&c, prefix, table_seq).await;

    c.start_node("slave1", false);
    let restoring = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if c.heartbeat("slave1")
                .is_some_and(|h| h.snapshots.restoring.is_some())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        restoring.is_ok(),
        "timed out after 60 s: slave1 to report a restore in progress\nlast heartbeat: {:?}\n--- slave1 log ---\n{}",
        c.heartbeat("slave1"),
        c.node_log("slave1")
    );
    c.kill("slave1");
    c.start_node("slave1", false);
    wait_same_as_master(&c, "slave1", last, 120).await;
    c.wait_mode("slave1", Mode::Replica).await;
    let log = c.node_log("slave1");
    let restores = log.matches("restoring the newest snapshot").count();
    assert_eq!(restores, 2, "restored once, killed, restored again: {log}");
    assert_eq!(log.matches("restored snapshot").count(), 1, "{log}");
    assert!(
        c.heartbeat("slave1").is_some_and(|h| h.broken.is_empty()),
        "{:?}",
        c.heartbeat("slave1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_in_the_bucket_are_refused_and_nothing_half_applied() {
    let prefix = "bad";
    let mut c = cluster(prefix, "200000", 0).await;
    let table_seq = create(&c).await;
    let last = insert_rows(&c, 0, 40, 100).await;
    wait_trimmed_past(&c, prefix, table_seq).await;
    let b = bucket(&c, prefix).await;
    let listing = b.list().await.expect("list");
    let good = listing.snapshots[DB].last().expect("a snapshot").clone();

    // A name whose database is not valid is ignored (and said so); a newer corrupt snapshot
    // is refused, and the older valid one that covers the gap is used.
    b.put_raw("Not A Db/00000000000000000001", b"whatever")
        .await
        .unwrap();
    let newer = format!("{DB}/{:020}", good.seq + 1_000_000);
    let mut corrupt = vec![0u8; 4096];
    corrupt[..4].copy_from_slice(b"ddb?");
    b.put_raw(&newer, &corrupt).await.unwrap();
    c.start_node("slave1", false);
    wait_same_as_master(&c, "slave1", last, 60).await;
    let log = c.node_log("slave1");
    assert!(log.contains("snapshot refused"), "{log}");
    assert!(log.contains("not a ddb snapshot"), "{log}");

    // Only corrupt snapshots left: a new node marks the database broken, saying why, and
    // holds nothing of it.
    b.delete(&good.name).await.unwrap();
    c.start_node("slave2", false);
    let broken = within(60, "slave2 to mark the database broken", async {
        loop {
            if let Some(b) = c
                .heartbeat("slave2")
                .and_then(|h| h.broken.into_iter().find(|b| b.db == DB))
            {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for word in ["no longer in the log", "refused", &newer] {
        assert!(
            broken.error.contains(word),
            "{word:?} not in {}",
            broken.error
        );
    }
    let r = c
        .req(&node("slave2"), json!({"op":"CHECKSUM","db":DB}))
        .await;
    assert!(!r.ok, "slave2 holds none of {DB}: {r:?}");
    assert_eq!(bucket_name(&Subjects::new(prefix)), b.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_slave_on_sql_server_joins_from_an_sqlite_snapshot() {
    let Ok(url) = std::env::var("DDB_TEST_MSSQL") else {
        eprintln!("skipped: DDB_TEST_MSSQL not set (set it to mssql://user:password@host:1433?trust_cert=true to run the SQL Server join)");
        return;
    };
    let prefix = "mssqljoin";
    let mut c = cluster(prefix, "1000000", 0).await;
    let table_seq = create(&c).await;
    let last = insert_rows(&c, 0, 400, 100).await;
    wait_trimmed_past(&c, prefix, table_seq).await;
    c.start_node_on("mssqlslave", false, &url, &[]);
    let took = wait_same_as_master(&c, "mssqlslave", last, 10).await;
    eprintln!("the SQL Server slave joined from a snapshot in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_trimmed_apart_leave_holes_a_new_node_reads_through() {
    // Each database is purged below its own snapshot, so the log keeps every other entry
    // of a stretch where two databases were written in turn: a new node's consumer skips
    // those seqs, and that is no loss.
    let prefix = "two";
    let mut c = cluster(prefix, "150000", 0).await;
    let table_seq = create(&c).await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"audit"}))
        .await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":"audit","table":"t",
               "data":{"id":"int","v":"string","n":"int"},"primary_key":["id"]}),
    )
    .await;
    // Two writers at once, so that entries of both interleave while the master trims.
    let (a, b) = tokio::join!(
        insert_into(&c, DB, 0, 80, 40),
        insert_into(&c, "audit", 0, 80, 40)
    );
    let last = a.max(b);
    wait_trimmed_past(&c, prefix, table_seq).await;
    c.set_node_log_filter("warn,ddb=info");
    c.start_node("slave1", false);
    wait_same_as_master(&c, "slave1", last, 30).await;
    c.assert_converged(&["master", "slave1"], "audit", last)
        .await;
    let log = c.node_log("slave1");
    assert!(!log.contains("gap in the delivered log"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}
