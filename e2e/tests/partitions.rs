//! Faults a real network makes, end to end: links that stall or slow down while both ends
//! stay up, a client cut off mid-request, processes frozen with SIGSTOP (a VM migration, a
//! swap storm) that resume believing nothing happened, and a frozen nats-server. Each node
//! connects to nats-server through a fault-injecting proxy of its own
//! (`ddb_testsupport::Proxy`), so one node can be cut off alone.
//!
//! Every test runs the history workload (`ddb_e2e::workload`: writes with op_ids, retried
//! when unanswered, and reads with `min_seq` from random nodes) through its rounds and then
//! checks the whole history (`ddb_e2e::history`): (a) every acknowledged write on every
//! node, (b) no op_id applied twice, (c) equal checksums, (d) reads with `min_seq` S see
//! every write acknowledged at or below S, (e) unanswered writes applied at most once and
//! refused ones nowhere.
//!
//! Rounds: 5 per test by default (the file takes about 1.5 minutes on 2 cores, two tests at
//! a time); `DDB_SOAK=1` runs 25, `DDB_CHAOS_ROUNDS=<n>` exactly n. Random choices (timings,
//! which direction) come from a seed printed at the start; repeat a run with
//! `DDB_CHAOS_SEED=<seed>`:
//!
//! ```sh
//! cargo build -p ddb-master -p ddb-slave
//! DDB_SOAK=1 cargo test -p ddb-e2e --test partitions -- --nocapture --test-threads=1
//! ```

use ddb::heartbeat::{Heartbeat, Mode};
use ddb_e2e::workload::{create_history_table, final_states, HistoryLoad};
use ddb_e2e::*;
use ddb_testsupport::{seed_from_env, Direction, Fault};
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `DDB_CHAOS_ROUNDS`, else 25 with `DDB_SOAK=1`, else 5.
fn rounds() -> usize {
    if let Some(n) = std::env::var("DDB_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return n;
    }
    if std::env::var_os("DDB_SOAK").is_some() {
        25
    } else {
        5
    }
}

const ALL3: [&str; 3] = ["master", "slave1", "slave2"];

/// A cluster with a proxy per node and the workload's table; the schedule's seed (printed)
/// and an Rng on it.
async fn setup(what: &str, db: &str) -> (Cluster, Rng, u64) {
    let seed = seed_from_env("DDB_CHAOS_SEED", what);
    let c = Cluster::start_proxied(2).await;
    create_history_table(&c, db).await;
    (c, Rng::new(seed), seed)
}

/// Waits until some slave reports failover; returns its name.
async fn a_slave_in_failover(c: &Cluster) -> &'static str {
    within(30, "a slave to enter failover", async {
        loop {
            for s in ["slave1", "slave2"] {
                if c.heartbeat(s).is_some_and(|h| h.mode == Mode::Failover) {
                    return s;
                }
            }
            tokio::time::sleep(ms(20)).await;
        }
    })
    .await
}

/// Back to normal: the master in master mode, both slaves replicas, all heard from anew.
async fn settled(c: &Cluster) {
    let now = Instant::now();
    c.wait_heard_since(&ALL3, now).await;
    c.wait_mode("master", Mode::Master).await;
    c.wait_mode("slave1", Mode::Replica).await;
    c.wait_mode("slave2", Mode::Replica).await;
}

/// Stops the workload, waits for every node to apply everything acknowledged, and checks
/// the history.
async fn verdict(c: &Cluster, what: &str, db: &str, load: HistoryLoad, started: Instant) {
    let history = load.finish().await;
    let seq = history.max_acked_seq();
    let nodes = final_states(c, &ALL3, db, seq).await;
    history.assert_clean(what, &nodes);
    eprintln!("[{what}] done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_partitioned_from_nats_slaves_take_over_then_it_heals() {
    let what = "master partitioned (blackhole)";
    let started = Instant::now();
    let (c, mut rng, seed) = setup(what, "part_master").await;
    let load = HistoryLoad::start(&c.client, "part_master", seed, &ALL3);
    load.wait_more(30).await;
    let n = rounds();
    for round in 1..=n {
        tokio::time::sleep(ms(rng.range(0, 300))).await;
        let acked = load.acked_count();
        c.proxy("master").partition();
        let cut = Instant::now();
        let taker = a_slave_in_failover(&c).await;
        let failover = cut.elapsed();
        let took = load.wait_more(20).await;
        eprintln!(
            "[{what}] round {round}/{n}: master blackholed with {acked} writes acknowledged; \
             {taker} in failover after {failover:?}; 20 writes acknowledged within {took:?}"
        );
        tokio::time::sleep(ms(rng.range(0, 1000))).await;
        c.proxy("master").heal();
        let healed = Instant::now();
        let outage = cut.elapsed();
        settled(&c).await;
        let back = healed.elapsed();
        let flowing = load.wait_more(20).await;
        eprintln!(
            "[{what}] round {round}/{n}: healed after {outage:?}; master in master mode and slaves \
             replicas {back:?} later; 20 more writes within {flowing:?}"
        );
    }
    verdict(&c, what, "part_master", load, started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_slave_partitioned_then_healed_catches_up() {
    let what = "one slave partitioned";
    let started = Instant::now();
    let (mut c, mut rng, seed) = setup(what, "part_slave").await;
    let load = HistoryLoad::start(&c.client, "part_slave", seed, &ALL3);
    load.wait_more(30).await;
    let n = rounds();
    for round in 1..=n {
        let victim = if rng.below(2) == 0 {
            "slave1"
        } else {
            "slave2"
        };
        c.proxy(victim).partition();
        let outage = ms(rng.range(500, 3000));
        let during = Instant::now();
        while during.elapsed() < outage {
            load.wait_more(5).await;
        }
        c.proxy(victim).heal();
        let healed = Instant::now();
        let target = load.max_acked_seq();
        c.wait_applied(victim, target).await;
        settled(&c).await;
        assert!(c.is_running(victim));
        eprintln!(
            "[{what}] round {round}/{n}: {victim} cut off {outage:?} while the master went on; \
             it applied the log up to {target} {:?} after the heal",
            healed.elapsed()
        );
    }
    verdict(&c, what, "part_slave", load, started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_cut_off_mid_request_retries_without_applying_twice() {
    let what = "client partitioned mid-request";
    let started = Instant::now();
    let (mut c, mut rng, seed) = setup(what, "part_client").await;
    let client = c.proxied_client("client").await;
    let load = HistoryLoad::start(&client, "part_client", seed, &ALL3);
    load.wait_more(30).await;
    let n = rounds();
    for round in 1..=n {
        tokio::time::sleep(ms(rng.range(0, 300))).await;
        let p = c.proxy("client");
        // Requests lost on the way, replies lost on the way back (the write happened and the
        // client does not know: its retry must be answered `duplicate`), or both; then the
        // partition ends, or the connection is cut.
        let how = rng.below(3);
        match how {
            0 => p.set(Direction::Upstream, Fault::Blackhole),
            1 => p.set(Direction::Downstream, Fault::Blackhole),
            _ => p.partition(),
        }
        let outage = ms(rng.range(300, 2500));
        tokio::time::sleep(outage).await;
        let cut = rng.below(2) == 0;
        if cut {
            p.cut();
        }
        p.heal();
        let flowing = load.wait_more(20).await;
        eprintln!(
            "[{what}] round {round}/{n}: {} blackholed for {outage:?}, then {}; 20 more writes within {flowing:?}",
            ["requests", "replies", "both ways"][how],
            if cut { "cut" } else { "healed" }
        );
    }
    verdict(&c, what, "part_client", load, started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_ms_of_latency_on_the_master_link() {
    let what = "200 ms latency on the master's link";
    let started = Instant::now();
    let (c, mut rng, seed) = setup(what, "slow_master").await;
    let load = HistoryLoad::start(&c.client, "slow_master", seed, &ALL3);
    load.wait_more(30).await;
    let n = rounds();
    for round in 1..=n {
        let slow = Fault::Delay {
            fixed: ms(200),
            jitter: ms(rng.range(0, 50)),
        };
        c.proxy("master").set_both(slow);
        let t = Instant::now();
        // Writes with op_ids go to the log one at a time per database, so each waits a
        // round trip of the master's slow link (about 0.9 s): few get through, and some of
        // the 6 writers time out and retry.
        let took = load.wait_more(5).await;
        tokio::time::sleep(ms(rng.range(200, 1500))).await;
        let modes: Vec<_> = ALL3
            .iter()
            .map(|n| c.heartbeat(n).map(|h| h.mode))
            .collect();
        c.proxy("master").set_both(Fault::Pass);
        settled(&c).await;
        eprintln!(
            "[{what}] round {round}/{n}: {slow:?} both ways for {:?}: 5 writes within {took:?}; \
             modes {modes:?}",
            t.elapsed()
        );
    }
    verdict(&c, what, "slow_master", load, started).await;
}

/// Records every heartbeat of `name` from now on.
async fn record_heartbeats(c: &Cluster, name: &str) -> Arc<Mutex<Vec<Heartbeat>>> {
    let seen: Arc<Mutex<Vec<Heartbeat>>> = Arc::default();
    let mut stream = within(10, "subscribe heartbeats", c.client.heartbeats())
        .await
        .expect("heartbeats");
    let (sink, name) = (seen.clone(), name.to_owned());
    tokio::spawn(async move {
        while let Some(hb) = stream.next().await {
            if hb.node == name {
                sink.lock().unwrap().push(hb);
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_frozen_with_sigstop_resumes_without_committing_what_the_log_lacks() {
    let what = "master SIGSTOP 5 s / SIGCONT";
    let started = Instant::now();
    let (c, mut rng, seed) = setup(what, "frozen_master").await;
    let load = HistoryLoad::start(&c.client, "frozen_master", seed, &ALL3);
    load.wait_more(30).await;
    let beats = record_heartbeats(&c, "master").await;
    let n = rounds();
    for round in 1..=n {
        tokio::time::sleep(ms(rng.range(0, 300))).await;
        // Heartbeats sent before the pause may still arrive after it; the master's uptime
        // tells them apart (it jumps by the 5 s of the pause).
        let uptime = c.heartbeat("master").map_or(0, |h| h.uptime_ms);
        c.pause("master");
        let paused = Instant::now();
        let taker = a_slave_in_failover(&c).await;
        load.wait_more(20).await;
        let remaining = Duration::from_secs(5).saturating_sub(paused.elapsed());
        tokio::time::sleep(remaining).await;
        // What the slaves wrote while the master was frozen: it must apply all of it before
        // it calls itself master again.
        let missed = load.max_acked_seq();
        beats.lock().unwrap().clear();
        c.resume("master");
        let resumed = Instant::now();
        settled(&c).await;
        let back = resumed.elapsed();
        load.wait_more(20).await;
        let after: Vec<(Mode, u64)> = beats
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.uptime_ms > uptime + 2500)
            .map(|h| (h.mode, h.applied_seq))
            .collect();
        let early: Vec<_> = after
            .iter()
            .filter(|(mode, applied)| *mode == Mode::Master && *applied < missed)
            .collect();
        eprintln!(
            "[{what}] round {round}/{n}: master frozen {:?} ({taker} took writes up to seq {missed}); \
             settled {back:?} after SIGCONT; heartbeats since: {} ({} in master mode before applying {missed})",
            resumed - paused,
            after.len(),
            early.len()
        );
        assert!(
            early.is_empty(),
            "[{what}] round {round}: the resumed master claimed master mode before applying seq {missed}: {early:?} \
             (replay with DDB_CHAOS_SEED={seed})"
        );
    }
    verdict(&c, what, "frozen_master", load, started).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_server_frozen_with_sigstop_everyone_resumes() {
    let what = "nats-server SIGSTOP / SIGCONT";
    let started = Instant::now();
    let (c, mut rng, seed) = setup(what, "frozen_nats").await;
    let load = HistoryLoad::start(&c.client, "frozen_nats", seed, &ALL3);
    load.wait_more(30).await;
    let n = rounds();
    for round in 1..=n {
        tokio::time::sleep(ms(rng.range(0, 300))).await;
        let acked = load.acked_count();
        // Shorter and longer than the failover window (1.5 s): every node is cut off alike,
        // so slaves may enter failover when it resumes, and must leave it again.
        let pause = ms(rng.range(300, 3000));
        c.nats.pause();
        tokio::time::sleep(pause).await;
        c.nats.resume();
        let back = Instant::now();
        settled(&c).await;
        let back = back.elapsed();
        let flowing = load.wait_more(20).await;
        eprintln!(
            "[{what}] round {round}/{n}: nats-server frozen {pause:?} with {acked} writes acknowledged; \
             cluster settled {back:?} after SIGCONT; 20 more writes within {flowing:?}"
        );
    }
    verdict(&c, what, "frozen_nats", load, started).await;
}
