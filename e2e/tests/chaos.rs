//! Fault injection under load, end to end: real nats-server(s), real `ddb-master` and
//! `ddb-slave` binaries, `kill -9` of nodes and servers, wiped stores. Every test keeps a
//! steady write load running, then checks that every acknowledged write is on every node,
//! that no row exists that was never sent, and that table checksums are equal; each prints
//! what it did and what it found.
//!
//! Bounded: each test stops by itself (every wait has a timeout) and runs in well under
//! 90 s on a 2-core machine. Random choices come from a seed printed at the start; repeat a
//! run with `DDB_CHAOS_SEED=<seed>`, and ask for more with `DDB_CHAOS_ROUNDS=<n>`:
//!
//! ```sh
//! cargo build --bins -p ddb-master -p ddb-slave
//! DDB_CHAOS_ROUNDS=30 cargo test -p ddb-e2e --test chaos -- --nocapture --test-threads=1
//! ```

use ddb::heartbeat::Mode;
use ddb::ErrorCode;
use ddb_e2e::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How many rounds a test runs: `DDB_CHAOS_ROUNDS`, else `default`.
fn rounds(default: usize) -> usize {
    std::env::var("DDB_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

const ALL3: [&str; 3] = ["master", "slave1", "slave2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_killed_ten_times_under_load_loses_no_acknowledged_write() {
    let what = "master kill -9 x rounds";
    let started = Instant::now();
    let mut rng = Rng::from_env("DDB_CHAOS_SEED", what);
    let mut c = Cluster::start(2).await;
    create_table(&c, "kill_master").await;
    let load = Load::start(&c, writer(), "kill_master", 0);
    load.wait_acked(50).await;
    let n = rounds(10);
    let mut failovers = 0;
    for round in 1..=n {
        // Kill at a random moment while writes are in flight.
        tokio::time::sleep(ms(rng.range(0, 400))).await;
        let acked_before = load.acked_count();
        c.kill("master");
        let killed = Instant::now();
        // Every third round the master stays down until a slave has taken writes;
        // otherwise it comes straight back (a crash loop).
        let failover = round % 3 == 0;
        if failover {
            failovers += 1;
            let took = load.wait_more(20).await;
            eprintln!("[{what}] round {round}: slaves took 20 writes within {took:?}");
        }
        c.start_node("master", true);
        c.wait_mode("master", Mode::Master).await;
        let back = killed.elapsed();
        let flowing = load.wait_more(30).await;
        eprintln!(
            "[{what}] round {round}/{n}: kill -9 master with {acked_before} writes acknowledged; \
             master back in master mode after {back:?}; 30 more writes acknowledged within {flowing:?}"
        );
    }
    c.wait_mode("slave1", Mode::Replica).await;
    c.wait_mode("slave2", Mode::Replica).await;
    let report = load.finish().await;
    verify_load(&c, what, &ALL3, "kill_master", &report).await;
    let by_node = report.by_node();
    assert!(by_node.contains_key("master"), "{by_node:?}");
    if failovers > 0 {
        assert!(
            by_node.len() > 1,
            "slaves took writes in failover: {by_node:?}"
        );
    }
    eprintln!(
        "[{what}] {n} rounds ({failovers} with failover) in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slaves_killed_and_restarted_at_random_each_catch_up() {
    let what = "random slave kill -9 / restart";
    let started = Instant::now();
    let mut rng = Rng::from_env("DDB_CHAOS_SEED", what);
    let mut c = Cluster::start(3).await;
    create_table(&c, "kill_slaves").await;
    let load = Load::start(&c, writer(), "kill_slaves", 0);
    load.wait_acked(50).await;
    let mut down: BTreeSet<String> = BTreeSet::new();
    let (mut kills, mut restarts) = (0, 0);
    for event in 1..=rounds(12) {
        tokio::time::sleep(ms(rng.range(100, 600))).await;
        let name = format!("slave{}", rng.range(1, 3));
        if down.remove(&name) {
            let target = load.max_seq();
            let t = Instant::now();
            c.start_node(&name, false);
            c.wait_applied(&name, target).await;
            restarts += 1;
            eprintln!(
                "[{what}] event {event}: restarted {name}; it applied the log up to {target} (the last acknowledged seq) in {:?}",
                t.elapsed()
            );
        } else {
            c.kill(&name);
            down.insert(name.clone());
            kills += 1;
            eprintln!(
                "[{what}] event {event}: kill -9 {name} ({} writes acknowledged so far)",
                load.acked_count()
            );
        }
    }
    for name in std::mem::take(&mut down) {
        c.start_node(&name, false);
        restarts += 1;
    }
    load.wait_more(50).await;
    let report = load.finish().await;
    for n in ["slave1", "slave2", "slave3"] {
        c.wait_applied(n, report.max_seq()).await;
        c.wait_mode(n, Mode::Replica).await;
    }
    verify_load(
        &c,
        what,
        &["master", "slave1", "slave2", "slave3"],
        "kill_slaves",
        &report,
    )
    .await;
    eprintln!(
        "[{what}] {kills} kills, {restarts} restarts in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_server_killed_repeatedly_nodes_reconnect_by_themselves() {
    let what = "nats-server kill -9 / restart";
    let started = Instant::now();
    let mut c = Cluster::start(2).await;
    create_table(&c, "natskill").await;
    let load = Load::start(&c, writer(), "natskill", 0);
    load.wait_acked(50).await;
    // Outages shorter and longer than the failover window (1.5 s here): after the long
    // one the slaves may have entered failover while cut off, and must leave it again.
    for (round, outage) in [300u64, 2500, 1000].into_iter().enumerate() {
        let acked_before = load.acked_count();
        c.nats.kill();
        tokio::time::sleep(ms(outage)).await;
        c.nats.restart();
        let back = Instant::now();
        c.wait_heard_since(&ALL3, back).await;
        let heard = back.elapsed();
        let flowing = load.wait_more(100).await;
        eprintln!(
            "[{what}] round {}: nats-server down {outage} ms with {acked_before} writes acknowledged; \
             every node heartbeating again {heard:?} after the restart; 100 more writes within {flowing:?}",
            round + 1
        );
        for n in ALL3 {
            assert!(c.is_running(n), "{n} survived the outage");
        }
    }
    c.wait_mode("master", Mode::Master).await;
    c.wait_mode("slave1", Mode::Replica).await;
    c.wait_mode("slave2", Mode::Replica).await;
    let report = load.finish().await;
    verify_load(&c, what, &ALL3, "natskill", &report).await;
    eprintln!("[{what}] 3 outages in {:?}", started.elapsed());
}

/// The stream's RAFT leader and whether every replica is current, as the cluster reports it.
async fn stream_replicas(c: &Cluster) -> Option<(String, Vec<(String, bool, bool, u64)>)> {
    let js = async_nats::jetstream::new(c.client.nats().clone());
    let mut stream = tokio::time::timeout(ms(3000), js.get_stream("DDB_LOG"))
        .await
        .ok()?
        .ok()?;
    let info = tokio::time::timeout(ms(3000), stream.info())
        .await
        .ok()?
        .ok()?;
    let cluster = info.cluster.clone()?;
    Some((
        cluster.leader?,
        cluster
            .replicas
            .iter()
            .map(|p| (p.name.clone(), p.current, p.offline, p.lag.unwrap_or(0)))
            .collect(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_server_nats_cluster_loses_a_server_under_load() {
    let what = "3-server NATS cluster";
    let started = Instant::now();
    let mut c = Cluster::start_on_three_servers(2).await;
    let urls: Vec<String> = c.nats_servers().iter().map(|s| s.url()).collect();
    eprintln!("[{what}] servers {urls:?}; nodes started with --log-replicas 3 and all three URLs");
    create_table(&c, "nclus").await;
    let load = Load::start(&c, writer(), "nclus", 0);
    load.wait_acked(100).await;
    let (leader, peers) = within(30, "stream cluster info", async {
        loop {
            if let Some(r) = stream_replicas(&c).await {
                return r;
            }
            tokio::time::sleep(ms(200)).await;
        }
    })
    .await;
    eprintln!("[{what}] stream DDB_LOG: leader {leader}, followers {peers:?}");
    assert_eq!(peers.len(), 2, "the log has 3 replicas");
    // Lose the stream's leader: the hardest case (a new leader must be elected).
    let mut order: Vec<String> = vec![leader.clone()];
    order.extend(peers.iter().map(|p| p.0.clone()));
    for (round, victim) in order.iter().take(2).enumerate() {
        let acked_before = load.acked_count();
        let killed = Instant::now();
        {
            let mut servers = c.nats_servers();
            let s = servers
                .iter_mut()
                .find(|s| s.server_name() == Some(victim.as_str()))
                .expect("victim server");
            s.kill();
        }
        let took = load.wait_more(200).await;
        eprintln!(
            "[{what}] round {}: killed nats-server {victim} with {acked_before} writes acknowledged; \
             200 more acknowledged within {took:?} ({:?} after the kill)",
            round + 1,
            killed.elapsed()
        );
        {
            let mut servers = c.nats_servers();
            let s = servers
                .iter_mut()
                .find(|s| s.server_name() == Some(victim.as_str()))
                .expect("victim server");
            s.restart();
        }
        let back = Instant::now();
        // It catches up: the cluster reports every replica current, none offline, no lag.
        let replicas = within(60, &format!("{victim} to catch up"), async {
            loop {
                if let Some((l, peers)) = stream_replicas(&c).await {
                    if peers.len() == 2
                        && peers
                            .iter()
                            .all(|(_, current, offline, lag)| *current && !*offline && *lag == 0)
                    {
                        return (l, peers);
                    }
                }
                tokio::time::sleep(ms(200)).await;
            }
        })
        .await;
        eprintln!(
            "[{what}] round {}: {victim} restarted and current again after {:?} (leader {}, followers {:?})",
            round + 1,
            back.elapsed(),
            replicas.0,
            replicas.1
        );
        load.wait_more(100).await;
    }
    // The second round killed another server while the first one's replica was needed for
    // the quorum: writes went on, so the returned server had caught up.
    let report = load.finish().await;
    // A node whose consumer lived on the killed server resumes once its client notices
    // (reconnect, or the pull consumer's missed heartbeats): say how long that took.
    let done = Instant::now();
    for n in ALL3 {
        c.wait_applied(n, report.max_seq()).await;
        eprintln!(
            "[{what}] {n} applied the log up to {} {:?} after the load stopped",
            report.max_seq(),
            done.elapsed()
        );
    }
    verify_load(&c, what, &ALL3, "nclus", &report).await;
    eprintln!("[{what}] done in {:?}", started.elapsed());
}

fn remove_store(c: &Cluster, name: &str) {
    let dir = c.store_dir(name);
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_store_was_deleted_while_down_rebuilds_from_the_log() {
    let what = "store deleted while down";
    let started = Instant::now();
    let mut c = Cluster::start(2).await;
    create_table(&c, "wipe").await;
    // A second database with an UPDATE and a DELETE, and a third that was dropped: the
    // rebuilt node must replay all of them, and the dropped one must stay dropped.
    create_table(&c, "wipe_other").await;
    for id in 0..20 {
        c.ok(
            &writer(),
            json!({"op":"INSERT","db":"wipe_other","table":"t","data":{"id":id,"v":"x","n":id}}),
        )
        .await;
    }
    c.ok(&writer(), json!({"op":"UPDATE","db":"wipe_other","table":"t","data":{"v":"y"},"condition":{"n":{"$gte":10}}}))
        .await;
    c.ok(
        &writer(),
        json!({"op":"DELETE","db":"wipe_other","table":"t","condition":{"n":{"$lt":5}}}),
    )
    .await;
    create_table(&c, "wipe_gone").await;
    c.ok(
        &writer(),
        json!({"op":"INSERT","db":"wipe_gone","table":"t","data":{"id":1}}),
    )
    .await;
    c.ok(&writer(), json!({"op":"DROP_DB","db":"wipe_gone"}))
        .await;
    let load = Load::start(&c, writer(), "wipe", 0);
    load.wait_acked(100).await;

    // A slave: kill -9, delete its whole store, write on, start it.
    c.kill("slave1");
    remove_store(&c, "slave1");
    load.wait_more(200).await;
    let target = load.max_seq();
    let t = Instant::now();
    c.start_node("slave1", false);
    c.wait_applied("slave1", target).await;
    eprintln!(
        "[{what}] slave1: kill -9, store deleted, 200 writes later started: replayed the log up to {target} in {:?}",
        t.elapsed()
    );

    // The master: kill -9, delete its store, start it; it replays the log before taking
    // writes again (meanwhile the slaves may take them in failover).
    c.kill("master");
    remove_store(&c, "master");
    let t = Instant::now();
    c.start_node("master", true);
    c.wait_mode("master", Mode::Master).await;
    eprintln!(
        "[{what}] master: kill -9, store deleted, started: back in master mode after {:?}",
        t.elapsed()
    );
    load.wait_more(100).await;
    c.wait_mode("slave1", Mode::Replica).await;
    c.wait_mode("slave2", Mode::Replica).await;
    let report = load.finish().await;
    verify_load(&c, what, &ALL3, "wipe", &report).await;
    let seq = report.max_seq();
    let other = c.assert_converged(&ALL3, "wipe_other", seq).await;
    assert_eq!(other[0]["rows"], 15, "{other}");
    for n in ALL3 {
        let r = c
            .req(
                &node(n),
                json!({"op":"CHECKSUM","db":"wipe_gone","min_seq":seq}),
            )
            .await;
        assert_eq!(
            r.error.map(|e| e.code),
            Some(ErrorCode::DbNotFound),
            "on {n}"
        );
    }
    eprintln!(
        "[{what}] wipe_other equal on every node ({other}); wipe_gone stays dropped; done in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_deleted_database_file_is_rebuilt_from_the_log() {
    // README, Troubleshooting: "delete that database's file (<data>/<db>.sqlite) ... start
    // it: it rebuilds from the log".
    let what = "one database file deleted while down";
    let mut c = Cluster::start(1).await;
    create_table(&c, "keep").await;
    create_table(&c, "lost").await;
    let a = insert_many(&c, &writer(), "keep", 0, 50, 8).await;
    let b = insert_many(&c, &writer(), "lost", 0, 50, 8).await;
    let seq = a
        .values()
        .chain(b.values())
        .filter_map(|r| r.seq)
        .max()
        .unwrap();
    c.wait_applied("slave1", seq).await;
    assert!(c.stop("slave1"));
    let dir = c.store_dir("slave1");
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("store dir") {
        let path = entry.expect("entry").path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        if file.starts_with("lost.") {
            std::fs::remove_file(&path).expect("remove");
            removed.push(file);
        }
    }
    eprintln!("[{what}] slave1 stopped; removed {removed:?}");
    assert!(!removed.is_empty());
    c.start_node("slave1", false);
    c.wait_mode("slave1", Mode::Replica).await;
    let w = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"lost","table":"t","data":{"id":1000}}),
        )
        .await;
    let seq = w.seq.unwrap();
    c.assert_converged(&["master", "slave1"], "keep", seq).await;
    let lost = c.assert_converged(&["master", "slave1"], "lost", seq).await;
    eprintln!("[{what}] slave1 rebuilt database lost: {lost}");
}
