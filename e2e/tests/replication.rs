//! Replication end to end: real nats-server, real `ddb-master` and `ddb-slave` binaries.

use ddb::heartbeat::Mode;
use ddb::ErrorCode;
use ddb_e2e::*;
use futures::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_workflow_reads_the_same_rows_on_every_slave() {
    let c = Cluster::start(2).await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"mydb"})).await;
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":"mydb","table":"users","data":{"id":"int","name":"string"}}))
        .await;
    let ins = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"mydb","table":"users","data":{"id":1,"name":"Alice"}}),
        )
        .await;
    assert_eq!(ins.node, "master");
    assert_eq!(ins.affected, Some(1));
    let seq = ins.seq.expect("seq");
    for n in ["master", "slave1", "slave2"] {
        let r = c
            .ok(&node(n), json!({"op":"SEARCH","db":"mydb","table":"users","condition":{"id":1},"min_seq":seq}))
            .await;
        assert_eq!(r.node, n);
        assert!(r.seq.unwrap() >= seq);
        assert_eq!(
            serde_json::to_value(r.rows).unwrap(),
            json!([{"id":1,"name":"Alice"}]),
            "on {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_op_replicates_and_a_mixed_workload_converges() {
    let c = Cluster::start(2).await;
    create_table(&c, "mix").await;
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":"mix","table":"kv","data":{"k":"string","f":"float","b":"bool"}}))
        .await;
    // Thousands of ops of every kind, 16 in flight, in an order that makes them interfere.
    let mut ops = Vec::new();
    for i in 0..3000i64 {
        ops.push(match i % 10 {
            0..=4 => json!({"op":"INSERT","db":"mix","table":"t","data":{"id":i,"v":format!("v{i}"),"n":i % 13}}),
            5 => json!({"op":"INSERT","db":"mix","table":"t","data":[{"id":100_000+i,"n":1},{"id":200_000+i,"v":null,"n":2}]}),
            6 => json!({"op":"UPDATE","db":"mix","table":"t","data":{"v":format!("u{i}")},"condition":{"n":{"$in":[i % 13, (i + 1) % 13]}}}),
            7 => json!({"op":"DELETE","db":"mix","table":"t","condition":{"id":{"$gte":i - 50,"$lt":i - 45}}}),
            8 => json!({"op":"INSERT","db":"mix","table":"kv","data":{"k":format!("k{}", i % 97),"f":i as f64 / 3.0,"b":i % 2 == 0}}),
            _ => json!({"op":"UPDATE","db":"mix","table":"kv","data":{"b":true},"condition":{"f":{"$gt":i as f64 / 6.0}}}),
        });
    }
    let client = c.client.clone();
    let replies: Vec<_> = within(300, "mixed workload", async {
        futures::stream::iter(ops)
            .map(|op| {
                let client = client.clone();
                async move { client.request(&writer(), &op).await }
            })
            .buffer_unordered(16)
            .collect()
            .await
    })
    .await;
    let replies: Vec<_> = replies.into_iter().map(|r| r.expect("reply")).collect();
    let failed: Vec<_> = replies.iter().filter(|r| !r.ok).collect();
    assert!(
        failed.is_empty(),
        "{} ops failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let seq = Cluster::max_seq(&replies);
    let sums = c
        .assert_converged(&["master", "slave1", "slave2"], "mix", seq)
        .await;
    assert_eq!(sums.as_array().unwrap().len(), 2, "{sums}");
    // DROP_DB replicates too.
    let drop = c.ok(&writer(), json!({"op":"DROP_DB","db":"mix"})).await;
    for n in ["master", "slave1", "slave2"] {
        let r = c
            .req(
                &node(n),
                json!({"op":"SEARCH","db":"mix","table":"t","min_seq":drop.seq.unwrap()}),
            )
            .await;
        assert_eq!(
            r.error.map(|e| e.code),
            Some(ErrorCode::DbNotFound),
            "on {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_slave_catches_up_after_10k_writes() {
    let mut c = Cluster::start(2).await;
    create_table(&c, "catchup").await;
    assert!(c.stop("slave2"), "slave2 exits cleanly on SIGTERM");
    let acked = within(
        600,
        "10k writes",
        insert_many(&c, &writer(), "catchup", 0, 10_000, 64),
    )
    .await;
    assert_eq!(acked.len(), 10_000);
    let seq = acked.values().filter_map(|r| r.seq).max().unwrap();
    let started = Instant::now();
    c.start_node("slave2", false);
    c.wait_applied("slave2", seq).await;
    eprintln!("slave2 caught up on 10k entries in {:?}", started.elapsed());
    let ids = ids_on(&c, "slave2", "catchup", seq).await;
    assert_eq!(ids.len(), 10_000);
    c.assert_converged(&["master", "slave1", "slave2"], "catchup", seq)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_crash_loses_no_acknowledged_write_and_a_slave_takes_over() {
    let mut c = Cluster::start(2).await;
    create_table(&c, "crash").await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":"crash","table":"probe","data":{"id":"int"}}),
    )
    .await;
    let load = Load::start(&c, writer(), "crash", 0);
    load.wait_acked(300).await;
    c.kill("master");
    let killed_at = Instant::now();
    // A slave takes writes within the failover window (plus detection slack): probe with
    // short requests, as a client that retries would.
    let probe = c.client.clone().with_timeout(Duration::from_millis(500));
    let mut probe_id = 1_000_000i64;
    let took = within(30, "a write acknowledged by a slave", async {
        loop {
            probe_id += 1;
            let op = json!({"op":"INSERT","db":"crash","table":"probe","data":{"id":probe_id}});
            if let Ok(r) = probe.request(&writer(), &op).await {
                if r.ok && r.node != "master" {
                    return killed_at.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    eprintln!("first write through a slave {took:?} after kill -9 of the master");
    assert!(
        took < Duration::from_millis(FAILOVER_AFTER_MS + 3000),
        "failover took {took:?}"
    );
    load.wait_more(300).await;
    // The master comes back, catches up, and takes writes again.
    c.start_node("master", true);
    c.wait_mode("master", Mode::Master).await;
    c.wait_mode("slave1", Mode::Replica).await;
    c.wait_mode("slave2", Mode::Replica).await;
    load.wait_more(100).await;
    let report = load.finish().await;
    verify_load(
        &c,
        "master crash",
        &["master", "slave1", "slave2"],
        "crash",
        &report,
    )
    .await;
    assert!(
        report.by_node().contains_key("master"),
        "the returned master took writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_slaves_in_failover_writing_at_once_do_not_diverge() {
    two_slaves_write_at_once(Cluster::start(2).await).await;
}

/// On a log kept by three NATS servers, JetStream 2.9 takes some appends whose expected last
/// entry is no longer the last when two writers append to one database at once (hundreds in a
/// few thousand): the entries every node passes over, and their writers write again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_slaves_in_failover_writing_at_once_on_a_three_server_log_do_not_diverge() {
    two_slaves_write_at_once(Cluster::start_on_three_servers(2).await).await;
}

/// Stops the master; both slaves then take writes to the same table at once, and every node
/// ends with the same rows.
async fn two_slaves_write_at_once(mut c: Cluster) {
    create_table(&c, "split").await;
    c.kill("master");
    c.wait_mode("slave1", Mode::Failover).await;
    c.wait_mode("slave2", Mode::Failover).await;
    // Both slaves write to the same table at once, directly and through the intake.
    let (s1, s2, wr) = (node("slave1"), node("slave2"), writer());
    let (a, b, w) = tokio::join!(
        insert_many(&c, &s1, "split", 0, 400, 8),
        insert_many(&c, &s2, "split", 1000, 400, 8),
        insert_many(&c, &wr, "split", 2000, 400, 8),
    );
    assert_eq!(
        a.len() + b.len() + w.len(),
        1200,
        "every write was acknowledged"
    );
    // Concurrent updates of the same rows from both writers.
    let (u1, u2) = tokio::join!(
        c.req(&s1, json!({"op":"UPDATE","db":"split","table":"t","data":{"v":"one"},"condition":{"id":{"$lt":500}}})),
        c.req(&s2, json!({"op":"UPDATE","db":"split","table":"t","data":{"v":"two"},"condition":{"id":{"$lt":500}}})),
    );
    assert!(u1.ok && u2.ok, "{u1:?} {u2:?}");
    let seq = [&a, &b, &w]
        .iter()
        .flat_map(|m| m.values())
        .chain([&u1, &u2])
        .filter_map(|r| r.seq)
        .max()
        .unwrap();
    c.assert_converged(&["slave1", "slave2"], "split", seq)
        .await;
    c.start_node("master", true);
    c.wait_mode("master", Mode::Master).await;
    c.assert_converged(&["master", "slave1", "slave2"], "split", seq)
        .await;
    assert_eq!(ids_on(&c, "master", "split", seq).await.len(), 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_op_id_is_applied_once() {
    let mut c = Cluster::start(1).await;
    create_table(&c, "idem").await;
    let op = json!({"op":"INSERT","db":"idem","table":"t","data":{"id":1,"v":"once","n":0},"op_id":"client-42"});
    let first = c.ok(&writer(), op.clone()).await;
    let again = c.ok(&writer(), op.clone()).await;
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.seq, first.seq);
    // An UPDATE that would change things again if applied twice.
    let bump = json!({"op":"UPDATE","db":"idem","table":"t","data":{"n":7},"condition":{"id":1},"op_id":"client-43"});
    let b1 = c.ok(&writer(), bump.clone()).await;
    // After a master restart the node's memory is gone; the log's duplicate window answers.
    assert!(c.stop("master"));
    c.start_node("master", true);
    c.wait_mode("master", Mode::Master).await;
    let b2 = c.ok(&writer(), bump).await;
    assert!(b2.duplicate, "{b2:?}");
    assert_eq!(b2.seq, b1.seq);
    let seq = b1.seq.unwrap();
    let r = c
        .ok(
            &node("slave1"),
            json!({"op":"SEARCH","db":"idem","table":"t","min_seq":seq}),
        )
        .await;
    assert_eq!(
        serde_json::to_value(r.rows).unwrap(),
        json!([{"id":1,"v":"once","n":7}])
    );
    c.assert_converged(&["master", "slave1"], "idem", seq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_server_restart_during_writes_loses_no_acknowledged_write() {
    let mut c = Cluster::start(2).await;
    create_table(&c, "natsdown").await;
    let load = Load::start(&c, writer(), "natsdown", 0);
    load.wait_acked(200).await;
    c.nats.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.nats.restart();
    load.wait_more(300).await;
    let report = load.finish().await;
    for n in ["master", "slave1", "slave2"] {
        assert!(c.is_running(n), "{n} survived the NATS restart");
    }
    verify_load(
        &c,
        "nats restart",
        &["master", "slave1", "slave2"],
        "natsdown",
        &report,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slaves_refuse_writes_while_the_master_lives() {
    let c = Cluster::start(1).await;
    let seq = create_table(&c, "ro").await;
    let r = c
        .req(
            &node("slave1"),
            json!({"op":"INSERT","db":"ro","table":"t","data":{"id":1}}),
        )
        .await;
    let e = r.error.expect("refused");
    assert_eq!(e.code, ErrorCode::ReadOnly);
    assert!(e.message.contains("master"), "{}", e.message);
    assert!(e.message.contains("ddb.ops"), "{}", e.message);
    // Reads work on the slave (once it has applied the table: a slave may be behind).
    c.ok(
        &node("slave1"),
        json!({"op":"SEARCH","db":"ro","table":"t","min_seq":seq}),
    )
    .await;
}

/// The nice value of a process's main thread, from `/proc/<pid>/stat` (field 19).
#[cfg(target_os = "linux")]
fn nice_of(pid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let after_name = &stat[stat.rfind(')').expect("stat has a name") + 1..];
    after_name
        .split_whitespace()
        .nth(16)
        .and_then(|n| n.parse().ok())
        .expect("nice field")
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slaves_apply_at_background_cpu_priority_unless_told_otherwise() {
    let mut c = Cluster::start(1).await;
    c.start_node_with("slave2", false, &["--nice", "0"]);
    c.wait_heard_since(&["slave2"], Instant::now()).await;
    let pid = |n: &str| c.pid(n).expect("running");
    assert_eq!(nice_of(pid("master")), 0, "the master keeps its priority");
    assert_eq!(nice_of(pid("slave1")), ddb::node::defaults::SLAVE_NICE);
    assert_eq!(nice_of(pid("slave2")), 0, "--nice 0 leaves it as started");
    // The lowered priority still replicates and answers.
    let seq = create_table(&c, "nice").await;
    c.assert_converged(&["master", "slave1", "slave2"], "nice", seq)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_on_the_log_and_heartbeat_subjects_changes_nothing() {
    let mut c = Cluster::start(2).await;
    let seq = create_table(&c, "rogue").await;
    c.ok(
        &writer(),
        json!({"op":"INSERT","db":"rogue","table":"t","data":{"id":1,"v":"a","n":1}}),
    )
    .await;
    let before = c
        .assert_converged(&["master", "slave1", "slave2"], "rogue", seq)
        .await;
    let nats = c.client.nats().clone();
    let js = async_nats::jetstream::new(nats.clone());
    // Entries no ddb writer would append: each node skips them alike and says so in its log.
    let rogue: Vec<&[u8]> = vec![
        b"not json",
        b"{}",
        br#"{"writer":"x","ops":[]}"#,
        br#"{"writer":"x","ops":[{"op":"SEARCH","db":"rogue","table":"t"}]}"#,
        br#"{"writer":"x","ops":[{"op":"INSERT","db":"other","table":"t","data":{"id":9}}]}"#,
        br#"{"writer":"x","ops":[{"op":"INSERT","db":"rogue","table":"t; DROP TABLE t","data":{"id":9}}]}"#,
    ];
    let mut last = 0;
    for body in &rogue {
        let ack = within(10, "rogue append", async {
            js.publish("ddb.log.rogue", body.to_vec().into())
                .await
                .unwrap()
                .await
                .unwrap()
        })
        .await;
        last = ack.sequence;
    }
    // A subject that names no valid database, and garbage heartbeats.
    for subject in ["ddb.log.bad-name", "ddb.log.a.b"] {
        within(10, "rogue append", async {
            js.publish(subject, b"{}".to_vec().into())
                .await
                .unwrap()
                .await
                .unwrap()
        })
        .await;
    }
    for subject in ["ddb.hb.master", "ddb.hb.slave1", "ddb.hb.x"] {
        nats.publish(subject, b"{\"node\":".to_vec().into())
            .await
            .unwrap();
        nats.publish(subject, vec![0xff, 0x00].into())
            .await
            .unwrap();
    }
    nats.flush().await.unwrap();
    let after = c
        .assert_converged(&["master", "slave1", "slave2"], "rogue", last)
        .await;
    assert_eq!(before, after, "rogue entries changed data");
    // Writers append after the rogue entries as usual.
    let w = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"rogue","table":"t","data":{"id":2,"v":"b","n":2}}),
        )
        .await;
    assert!(w.seq.unwrap() > last);
    c.assert_converged(&["master", "slave1", "slave2"], "rogue", w.seq.unwrap())
        .await;
    for n in ["master", "slave1", "slave2"] {
        assert!(c.is_running(n), "{n} is still running");
        assert!(
            c.heartbeat(n).unwrap().broken.is_empty(),
            "{n} reports a broken database"
        );
    }
    // The same holds after a restart (the skipped entries are remembered as applied).
    assert!(c.stop("master"));
    c.start_node("master", true);
    c.wait_mode("master", Mode::Master).await;
    let w2 = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"rogue","table":"t","data":{"id":3,"v":"c","n":3}}),
        )
        .await;
    c.assert_converged(&["master", "slave1", "slave2"], "rogue", w2.seq.unwrap())
        .await;
}
