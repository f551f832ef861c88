//! Operating a node: Prometheus metrics, the NATS micro protocol, JSON logs.

use ddb_e2e::*;
use ddb_testsupport::prometheus::{self, samples};
use ddb_testsupport::NatsServer;
use futures::StreamExt;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::time::Duration;

/// A cluster whose nodes serve metrics on free ports and log JSON with the default filter.
async fn observed_cluster() -> Cluster {
    let nats = NatsServer::start();
    let opts = ddb::connect::NatsOptions::new(&[nats.url()]);
    let mut c = Cluster::empty_with(
        nats,
        Vec::new(),
        opts,
        &["--metrics-addr", "127.0.0.1:0", "--log-format", "json"],
    )
    .await;
    c.capture_node_logs();
    c.set_node_log_filter(ddb::node::defaults::LOG_FILTER);
    c.start_all(2).await;
    c
}

/// `GET path` on `addr`; the status line and the body.
async fn http_get(addr: &str, path: &str) -> (String, String) {
    within(
        10,
        &format!("GET {path} from {addr}"),
        prometheus::http_get(addr, path),
    )
    .await
    .expect("an HTTP response")
}

fn value(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> Option<f64> {
    prometheus::series(samples, name, labels).next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_what_a_node_does() {
    let c = observed_cluster().await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"m"})).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":"m","table":"t","data":{"id":"int"},"primary_key":"id"}),
    )
    .await;
    let mut last = 0;
    for i in 0..20 {
        last = c
            .ok(
                &writer(),
                json!({"op":"INSERT","db":"m","table":"t","data":{"id":i}}),
            )
            .await
            .seq
            .unwrap();
    }
    let dup = c
        .req(
            &writer(),
            json!({"op":"INSERT","db":"m","table":"t","data":{"id":1}}),
        )
        .await;
    assert!(!dup.ok);
    c.ok(
        &node("slave1"),
        json!({"op":"SEARCH","db":"m","table":"t","min_seq":last}),
    )
    .await;
    // Gauges follow the heartbeat: wait for one more.
    let since = std::time::Instant::now();
    c.wait_heard_since(&["master", "slave1"], since).await;
    c.wait_heard_since(&["master", "slave1"], std::time::Instant::now())
        .await;

    let addr = c
        .heartbeat("master")
        .unwrap()
        .metrics
        .expect("the master announces its metrics address");
    let (status, page) = http_get(&addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let m = samples(&page);
    assert_eq!(
        value(
            &m,
            "ddb_requests_total",
            &["op=\"INSERT\"", "outcome=\"ok\"", "node=\"master\""]
        ),
        Some(20.0),
        "{page}"
    );
    assert_eq!(
        value(
            &m,
            "ddb_requests_total",
            &["op=\"INSERT\"", "outcome=\"constraint\""]
        ),
        Some(1.0)
    );
    for family in [
        "ddb_request_duration_seconds_bucket",
        "ddb_store_duration_seconds_bucket",
        "ddb_append_duration_seconds_bucket",
        "ddb_group_commit_ops_bucket",
    ] {
        assert!(
            value(&m, family, &[]).is_some(),
            "{family} missing:\n{page}"
        );
    }
    assert_eq!(
        value(&m, "ddb_append_duration_seconds_count", &[]),
        Some(22.0),
        "every successful write appended once"
    );
    assert!(value(&m, "ddb_applied_seq", &[]).unwrap() >= last as f64);
    assert_eq!(value(&m, "ddb_lag", &[]), Some(0.0));
    assert_eq!(value(&m, "ddb_broken_databases", &[]), Some(0.0));
    assert_eq!(value(&m, "ddb_mode", &["mode=\"master\""]), Some(1.0));
    assert_eq!(
        value(&m, "ddb_db_applied_seq", &["db=\"m\""]),
        Some(last as f64)
    );
    assert!(value(&m, "ddb_nats_events_total", &["event=\"connected\""]).unwrap() >= 1.0);
    let (status, _) = http_get(&addr, "/other").await;
    assert!(status.contains("404"), "{status}");

    // A replica counts what it applied and the reads it served.
    let addr = c.heartbeat("slave1").unwrap().metrics.unwrap();
    let m = samples(&http_get(&addr, "/metrics").await.1);
    assert_eq!(
        value(
            &m,
            "ddb_requests_total",
            &["op=\"SEARCH\"", "node=\"slave1\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "ddb_db_applied_seq", &["db=\"m\""]),
        Some(last as f64)
    );
    assert_eq!(value(&m, "ddb_mode", &["mode=\"replica\""]), Some(1.0));
    assert!(value(&m, "ddb_store_duration_seconds_count", &["phase=\"apply\""]).unwrap() >= 1.0);
}

/// Every reply to a request sent to `subject` within `wait`.
async fn gather(c: &Cluster, subject: &str, wait: Duration) -> Vec<Json> {
    let nats = c.client.nats().clone();
    let inbox = nats.new_inbox();
    let mut sub = within(5, "subscribe inbox", nats.subscribe(inbox.clone()))
        .await
        .unwrap();
    within(
        5,
        "publish",
        nats.publish_with_reply(subject.to_owned(), inbox, "".into()),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        out.push(serde_json::from_slice(&m.payload).expect("micro replies are JSON"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_answers_the_micro_protocol() {
    let c = Cluster::start(2).await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"mi"})).await;
    for subject in ["$SRV.PING", "$SRV.PING.ddb"] {
        let mut ids: Vec<String> = gather(&c, subject, Duration::from_millis(1500))
            .await
            .iter()
            .map(|r| {
                assert_eq!(r["type"], "io.nats.micro.v1.ping_response");
                assert_eq!(r["name"], "ddb");
                assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
                r["id"].as_str().unwrap().to_owned()
            })
            .collect();
        ids.sort();
        assert_eq!(ids, ["master", "slave1", "slave2"], "{subject}");
    }
    let info = gather(&c, "$SRV.INFO.ddb.slave1", Duration::from_millis(800)).await;
    assert_eq!(info.len(), 1);
    assert_eq!(info[0]["type"], "io.nats.micro.v1.info_response");
    assert_eq!(info[0]["metadata"]["mode"], "replica");
    let subjects: Vec<&str> = info[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["ddb.ops", "ddb.node.slave1", "ddb.reads"]);
    let stats = gather(&c, "$SRV.STATS.ddb.master", Duration::from_millis(800)).await;
    assert_eq!(stats.len(), 1);
    let ops = &stats[0]["endpoints"][0];
    assert_eq!(ops["name"], "ops");
    assert_eq!(ops["queue_group"], "writers");
    assert!(ops["num_requests"].as_u64().unwrap() >= 1, "{ops}");
    assert!(stats[0]["started"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_logs_are_one_object_per_line() {
    let mut c = observed_cluster().await;
    let bad = c
        .req(
            &writer(),
            json!({"op":"INSERT","db":"nope","table":"t","data":{"id":1}}),
        )
        .await;
    assert!(!bad.ok);
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"fine"})).await;
    assert!(c.stop("slave2"), "slave2 stops cleanly");
    let parse = |name: &str| -> Vec<Json> {
        c.node_log(name)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {l}"))
            })
            .collect()
    };
    let master = parse("master");
    assert!(master
        .iter()
        .all(|v| v.get("level").is_some() && v.get("timestamp").is_some()));
    // One line per failed request, with its outcome; none for the request that succeeded.
    let failed: Vec<&Json> = master
        .iter()
        .filter(|v| v["message"] == "request failed")
        .collect();
    assert_eq!(failed.len(), 1, "{master:?}");
    assert_eq!(failed[0]["outcome"], "db_not_found");
    assert_eq!(failed[0]["op"], "INSERT");
    assert_eq!(failed[0]["error"], "database nope does not exist");
    assert!(
        !master.iter().any(|v| v["message"] == "request"),
        "no info line per successful request"
    );
    assert!(
        !master.iter().any(|v| v["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("async_nats"))),
        "the NATS client's connection chatter stays below info: {master:?}"
    );
    let slave2 = parse("slave2");
    assert!(
        slave2.iter().any(|v| v["message"] == "node stopped"),
        "{slave2:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_spread_over_every_node_and_keep_read_your_writes() {
    let c = Cluster::start(2).await;
    c.ok(&writer(), json!({"op":"CREATE_DB","db":"rd"})).await;
    c.ok(
        &writer(),
        json!({"op":"CREATE_TABLE","db":"rd","table":"t","data":{"id":"int"},"primary_key":"id"}),
    )
    .await;
    let nats = c.client.nats().clone();
    let ask = |body: Json| {
        let nats = nats.clone();
        async move {
            let m = within(
                15,
                "request on ddb.reads",
                nats.request("ddb.reads", body.to_string().into()),
            )
            .await
            .expect("an answer on ddb.reads");
            serde_json::from_slice::<Json>(&m.payload).unwrap()
        }
    };
    let mut answered_by = std::collections::BTreeSet::new();
    let mut last = 0;
    for i in 0..60 {
        let seq = c
            .ok(
                &writer(),
                json!({"op":"INSERT","db":"rd","table":"t","data":{"id":i}}),
            )
            .await
            .seq
            .unwrap();
        // Whichever node answers has applied the write first.
        let r =
            ask(json!({"op":"SEARCH","db":"rd","table":"t","condition":{"id":i},"min_seq":seq}))
                .await;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["rows"], json!([{"id":i}]), "{r}");
        assert!(r["seq"].as_u64().unwrap() >= seq);
        answered_by.insert(r["node"].as_str().unwrap().to_owned());
        last = seq;
    }
    assert!(
        answered_by.len() >= 2,
        "reads spread over the nodes: {answered_by:?}"
    );
    let r = ask(json!({"op":"INSERT","db":"rd","table":"t","data":{"id":1000}})).await;
    assert_eq!(r["error"]["code"], "bad_request");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("ddb.ops"),
        "{r}"
    );
    // Without `min_seq` a replica may answer before it has applied the last write.
    let r = ask(json!({"op":"CHECKSUM","db":"rd","min_seq":last})).await;
    assert_eq!(r["tables"][0]["rows"], 60, "{r}");
    #[cfg(target_os = "linux")]
    {
        // A slave lowers its priority (`--nice`, 10 by default) for everything but the thread
        // that answers readers; the master lowers nothing.
        // (Linux shows the first 15 bytes of a thread's name.)
        let reads_thread = |name: &String| name.starts_with("ddb-reads-");
        let slave = thread_priorities(c.pid("slave1").expect("slave1 runs"));
        let started = slave
            .iter()
            .find(|(name, _)| reads_thread(name))
            .map(|(_, nice)| *nice)
            .unwrap_or_else(|| panic!("slave1 has a reads thread: {slave:?}"));
        assert!(
            slave
                .iter()
                .all(|(name, nice)| reads_thread(name) || *nice >= started + 10),
            "{slave:?}"
        );
        let master = thread_priorities(c.pid("master").expect("the master runs"));
        assert!(
            !master.iter().any(|(name, _)| reads_thread(name)),
            "{master:?}"
        );
    }
}

/// Each thread's name and nice value, from /proc.
#[cfg(target_os = "linux")]
fn thread_priorities(pid: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        // A thread may end while this reads.
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        // The fields after the parenthesised name: the 19th field of stat is nice.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let nice = after_name.split(' ').nth(16).unwrap().parse().unwrap();
        out.push((comm.trim().to_owned(), nice));
    }
    out
}
