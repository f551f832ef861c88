//! Big tables end to end: real nats-server, real `ddb-master` and `ddb-slave` binaries, a
//! table of hundreds of thousands of rows.
//!
//! - A master answering whole-table SEARCHes back to back keeps its heartbeat rhythm and its
//!   write latency: store calls run on the store's own threads, and a SEARCH whose reply
//!   would pass max_payload stops reading at once (`too_large`).
//! - Paging with `limit` + `after` (each reply's `next`) visits every row once, on the master
//!   and on a slave, while a writer inserts rows before and after the cursor.
//! - The schema ops (CREATE_INDEX, DROP_INDEX, ADD_COLUMN, DROP_TABLE) replicate, and their
//!   errors come back typed.
//! - `--query-timeout-ms` cancels long reads and writes (answered `timeout`, nothing logged,
//!   nothing else in the same batch lost) but never cuts the replay of the log short.
//!
//! `DDB_BIG_ROWS` sets the big table's size (default [`DEFAULT_ROWS`], the full million;
//! `DDB_BIG_ROWS=300000` for a quicker run); `DDB_BIG_SEED` repeats a run's random row ids.

use ddb::heartbeat::Mode;
use ddb::ErrorCode;
use ddb_e2e::*;
use futures::StreamExt;
use serde_json::{json, Value as Json};
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rows of the big table unless `DDB_BIG_ROWS` says otherwise: a million, as real use sees.
/// Debug binaries on a 2-core machine load 50,000-70,000 rows/s and the slaves apply them
/// about as fast: the whole test takes ~100 s (300,000 rows: ~30 s). A million rows are 40
/// times what one whole-table SEARCH may return under the default 1 MiB max_payload
/// (~25,000 rows), and 100 pages of 10,000.
const DEFAULT_ROWS: i64 = 1_000_000;
/// Rows per INSERT while loading.
const CHUNK: i64 = 10_000;
/// Rows per page when paging.
const PAGE: u64 = 10_000;

fn big_rows() -> i64 {
    std::env::var("DDB_BIG_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n: &i64| *n > 0)
        .unwrap_or(DEFAULT_ROWS)
}

/// Every row of `db.t` has `v = "v<id>"` and `n = id % 7`, whoever wrote it.
fn row_json(id: i64) -> String {
    format!(r#"{{"id":{id},"v":"v{id}","n":{}}}"#, id % 7)
}

fn check_row(row: &serde_json::Map<String, Json>) -> i64 {
    let id = row["id"].as_i64().expect("id");
    assert_eq!(row["v"], json!(format!("v{id}")), "row {row:?}");
    assert_eq!(row["n"], json!(id % 7), "row {row:?}");
    id
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Loads `rows` rows with the even ids `0, 2, ..., 2 * (rows - 1)` in INSERTs of [`CHUNK`]
/// rows, three in flight, and waits until `slaves` applied them; returns the last seq.
async fn load_big_table(c: &Cluster, db: &str, rows: i64, slaves: &[&str]) -> u64 {
    create_table(c, db).await;
    let client = c.client.clone().with_timeout(Duration::from_secs(120));
    let chunks = (rows + CHUNK - 1) / CHUNK;
    let started = Instant::now();
    let replies: Vec<_> = within(
        1800,
        "loading the big table",
        futures::stream::iter(0..chunks)
            .map(|k| {
                let client = client.clone();
                let from = k * CHUNK;
                let to = ((k + 1) * CHUNK).min(rows);
                let data: Vec<String> = (from..to).map(|i| row_json(2 * i)).collect();
                let body = format!(
                    r#"{{"op":"INSERT","db":"{db}","table":"t","data":[{}]}}"#,
                    data.join(",")
                );
                async move {
                    (
                        to - from,
                        client.request_raw(&writer(), body.into_bytes()).await,
                    )
                }
            })
            .buffer_unordered(3)
            .collect(),
    )
    .await;
    let mut seq = 0;
    for (n, r) in replies {
        let r = r.unwrap_or_else(|e| panic!("a {n}-row INSERT failed: {e}"));
        assert!(r.ok, "a {n}-row INSERT was refused: {:?}", r.error);
        assert_eq!(r.affected, Some(n as u64));
        seq = seq.max(r.seq.expect("seq"));
    }
    let took = started.elapsed();
    eprintln!(
        "[big] loaded {rows} rows in {chunks} INSERTs of {CHUNK} on the master in {:.1} s ({:.0} rows/s), last seq {seq}",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );
    let started = Instant::now();
    for n in slaves {
        c.wait_applied(n, seq).await;
    }
    eprintln!(
        "[big] {slaves:?} applied it {:.1} s later",
        started.elapsed().as_secs_f64()
    );
    seq
}

/// One heartbeat as it arrived: node, mode, its announced interval, arrival time.
type Beat = (String, Mode, u64, Instant);

/// Every heartbeat that arrives.
struct Beats {
    seen: Arc<Mutex<Vec<Beat>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Beats {
    async fn record(c: &Cluster) -> Beats {
        let mut stream = within(10, "subscribe to ddb.hb.>", c.client.heartbeats())
            .await
            .expect("heartbeats");
        let seen: Arc<Mutex<Vec<Beat>>> = Arc::default();
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(hb) = stream.next().await {
                let at = Instant::now();
                sink.lock()
                    .unwrap()
                    .push((hb.node, hb.mode, hb.interval_ms, at));
            }
        });
        Beats { seen, task }
    }

    fn count_after(&self, node: &str, since: Instant) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _, _, at)| n == node && *at > since)
            .count()
    }

    /// Waits until every node sent a heartbeat after `since`.
    async fn wait_after(&self, nodes: &[&str], since: Instant) {
        within(30, "heartbeats after the window", async {
            while nodes.iter().any(|n| self.count_after(n, since) == 0) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Arrival times of `node`'s heartbeats, its modes and its announced interval.
    fn of(&self, node: &str) -> (Vec<Instant>, BTreeSet<String>, u64) {
        let seen = self.seen.lock().unwrap();
        let mine: Vec<_> = seen.iter().filter(|(n, ..)| n == node).collect();
        let modes = mine.iter().map(|(_, m, ..)| format!("{m:?}")).collect();
        let interval = mine.iter().map(|(_, _, i, _)| *i).max().unwrap_or(0);
        (mine.iter().map(|(.., at)| *at).collect(), modes, interval)
    }

    fn stop(self) {
        self.task.abort();
    }
}

fn max_gap(times: &[Instant]) -> Duration {
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::MAX)
}

/// What one whole-table SEARCH got.
#[derive(Debug)]
enum Answer {
    Rows(usize),
    TooLarge(String),
    Other(String),
}

/// One client INSERTs one row every `every` through `ddb.ops` until `stop`; returns the
/// latency of each write and the failures.
async fn steady_writer(
    client: DdbClient,
    db: String,
    ids: impl Iterator<Item = i64>,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> (Vec<Duration>, Vec<String>, BTreeSet<i64>, u64) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut lat, mut failed, mut acked, mut seq) = (Vec::new(), Vec::new(), BTreeSet::new(), 0);
    for id in ids {
        tick.tick().await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let body = format!(
            r#"{{"op":"INSERT","db":"{db}","table":"t","data":{}}}"#,
            row_json(id)
        );
        let t = Instant::now();
        match tokio::time::timeout(
            Duration::from_secs(5),
            client.request_raw(&writer(), body.into_bytes()),
        )
        .await
        {
            Ok(Ok(r)) if r.ok => {
                lat.push(t.elapsed());
                acked.insert(id);
                seq = seq.max(r.seq.unwrap_or(0));
            }
            Ok(Ok(r)) => failed.push(format!("insert {id}: {:?}", r.error)),
            Ok(Err(e)) => failed.push(format!("insert {id}: {e}")),
            Err(_) => failed.push(format!("insert {id}: no reply within 5 s")),
        }
    }
    (lat, failed, acked, seq)
}

/// Phase a: 10 s of whole-table SEARCHes on the master, back to back, while one client
/// writes a row every 20 ms and every heartbeat is recorded. Returns the writer's ids and
/// its last seq.
async fn busy_master(c: &Cluster, db: &str) -> (BTreeSet<i64>, u64) {
    const WINDOW: Duration = Duration::from_secs(10);
    let beats = Beats::record(c).await;
    let nodes = ["master", "slave1", "slave2"];
    let armed = Instant::now();
    beats.wait_after(&nodes, armed).await;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writes = tokio::spawn(steady_writer(
        c.client.clone(),
        db.to_owned(),
        (1..).map(|k| -k),
        Duration::from_millis(20),
        stop.clone(),
    ));
    // A second client scans the whole table for rows that do not exist, back to back: the
    // long statements a master must run without missing a beat.
    let scans = {
        let (client, stop, db) = (c.client.clone(), stop.clone(), db.to_owned());
        tokio::spawn(async move {
            let scan =
                json!({"op":"SEARCH","db":db,"table":"t","condition":{"v":{"$like":"%none%"}}});
            let mut took = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let r = tokio::time::timeout(
                    Duration::from_secs(30),
                    client.request(&node("master"), &scan),
                )
                .await;
                match r {
                    Ok(Ok(r)) if r.ok && r.rows.as_ref().is_some_and(Vec::is_empty) => {
                        took.push(t.elapsed())
                    }
                    other => panic!("a full scan failed: {other:?}"),
                }
            }
            took
        })
    };
    let whole = json!({"op":"SEARCH","db":db,"table":"t","condition":{}});
    let mut searches: Vec<(Duration, Answer)> = Vec::new();
    while started.elapsed() < WINDOW {
        let t = Instant::now();
        let answer = match tokio::time::timeout(
            Duration::from_secs(5),
            c.client.request(&node("master"), &whole),
        )
        .await
        {
            Ok(Ok(r)) if r.ok => Answer::Rows(r.rows.map_or(0, |rows| rows.len())),
            Ok(Ok(r)) => match r.error {
                Some(e) if e.code == ErrorCode::TooLarge => Answer::TooLarge(e.message),
                other => Answer::Other(format!("{other:?}")),
            },
            Ok(Err(e)) => Answer::Other(e.to_string()),
            Err(_) => Answer::Other("no reply within 5 s".into()),
        };
        searches.push((t.elapsed(), answer));
    }
    stop.store(true, Ordering::SeqCst);
    let (mut lat, failed, acked, seq) = within(30, "the writer to stop", writes)
        .await
        .expect("writer task");
    let mut scans = within(60, "the scans to stop", scans)
        .await
        .expect("scan task");
    let ended = Instant::now();
    beats.wait_after(&nodes, ended).await;

    // Heartbeats: nobody changed mode; the master's never paused.
    let mut report = Vec::new();
    for n in nodes {
        let (times, modes, interval) = beats.of(n);
        let want = if n == "master" { "Master" } else { "Replica" };
        assert_eq!(
            modes,
            BTreeSet::from([want.to_owned()]),
            "{n} changed mode while the master was busy"
        );
        let gap = max_gap(&times);
        report.push(format!(
            "{n}: {} heartbeats, every one {want}, longest gap {gap:?} (interval {interval} ms)",
            times.len()
        ));
        if n == "master" {
            assert!(
                times.len() >= 10,
                "too few master heartbeats: {}",
                times.len()
            );
            assert!(
                gap <= Duration::from_millis(2 * interval),
                "the master's heartbeats paused for {gap:?} (interval {interval} ms)"
            );
        }
    }
    beats.stop();

    // The writer: every write acknowledged, p99 within 250 ms.
    let writes = lat.len();
    let (p50, p99, max) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99), pct(&mut lat, 1.0));
    // The SEARCHes: each answered, rows or too_large naming limit and after, within 1 s.
    let mut took: Vec<Duration> = searches.iter().map(|(d, _)| *d).collect();
    let too_large = searches
        .iter()
        .filter(|(_, a)| matches!(a, Answer::TooLarge(_)))
        .count();
    let most_rows = searches
        .iter()
        .filter_map(|(_, a)| match a {
            Answer::Rows(n) => Some(*n),
            _ => None,
        })
        .max();
    eprintln!(
        "[big] busy master, {WINDOW:?}: {} whole-table SEARCHes ({too_large} too_large, the others up to {most_rows:?} rows), latency p50 {:?} max {:?}; writer {writes} INSERTs every 20 ms, latency p50 {p50:?} p99 {p99:?} max {max:?}, {} failed\n[big]   {}",
        searches.len(),
        pct(&mut took, 0.5),
        pct(&mut took, 1.0),
        failed.len(),
        report.join("\n[big]   ")
    );
    eprintln!(
        "[big]   meanwhile {} full scans matching nothing, p50 {:?} max {:?}",
        scans.len(),
        pct(&mut scans, 0.5),
        pct(&mut scans, 1.0)
    );
    assert!(failed.is_empty(), "writes failed: {failed:?}");
    assert!(writes >= 100, "only {writes} writes in {WINDOW:?}");
    assert!(
        p99 <= Duration::from_millis(250),
        "writer p99 {p99:?} (p50 {p50:?}, max {max:?})"
    );
    assert!(searches.len() >= 5, "only {} SEARCHes", searches.len());
    for (d, a) in &searches {
        match a {
            Answer::Rows(_) => {}
            Answer::TooLarge(m) => assert!(
                m.contains("limit") && m.contains("after"),
                "too_large does not name limit and after: {m}"
            ),
            Answer::Other(e) => panic!("a whole-table SEARCH failed: {e}"),
        }
        assert!(
            *d <= Duration::from_secs(1),
            "a whole-table SEARCH took {d:?} ({a:?})"
        );
    }
    (acked, seq)
}

/// One SEARCH paged to the end with `limit` [`PAGE`] and `after`, on `node_name`.
struct Paged {
    ids: Vec<i64>,
    pages: usize,
    took: Duration,
    slowest: Duration,
}

async fn page_through(client: DdbClient, node_name: &str, db: &str, min_seq: u64) -> Paged {
    let started = Instant::now();
    let (mut ids, mut pages, mut slowest) = (Vec::new(), 0usize, Duration::ZERO);
    let mut after: Option<String> = None;
    loop {
        let mut req = json!({"op":"SEARCH","db":db,"table":"t","limit":PAGE,"min_seq":min_seq});
        if let Some(a) = &after {
            req["after"] = json!(a);
        }
        let t = Instant::now();
        let r = within(
            30,
            &format!("page {pages} on {node_name}"),
            client.request(&node(node_name), &req),
        )
        .await
        .unwrap_or_else(|e| panic!("page {pages} on {node_name}: {e}"));
        slowest = slowest.max(t.elapsed());
        assert!(r.ok, "page {pages} on {node_name}: {:?}", r.error);
        let rows = r.rows.expect("rows");
        assert!(rows.len() as u64 <= PAGE, "a page of {} rows", rows.len());
        pages += 1;
        ids.extend(rows.iter().map(check_row));
        match r.next {
            Some(next) => {
                assert_eq!(
                    rows.len() as u64,
                    PAGE,
                    "page {pages} on {node_name}: a short page with a next"
                );
                after = Some(next);
            }
            None => break,
        }
        assert!(pages < 10_000, "paging on {node_name} does not end");
    }
    Paged {
        ids,
        pages,
        took: started.elapsed(),
        slowest,
    }
}

/// Phase b: page through the table on the master and on slave1 at once while a writer
/// inserts rows with odd ids all over the key range (before and after the cursors).
async fn paging_while_writing(c: &Cluster, db: &str, originals: &BTreeSet<i64>, seq: u64) -> u64 {
    let span = *originals.last().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let writer_task = {
        let (client, db, stop, sent) =
            (c.client.clone(), db.to_owned(), stop.clone(), sent.clone());
        let mut rng = Rng::from_env("DDB_BIG_SEED", "big_tables");
        tokio::spawn(async move {
            let (mut acked, mut failed, mut seq) = (0u64, Vec::new(), 0u64);
            while !stop.load(Ordering::SeqCst) {
                // Ten new rows per INSERT, odd ids anywhere in the range.
                let mut batch = Vec::new();
                {
                    let mut sent = sent.lock().unwrap();
                    while batch.len() < 10 {
                        let id = 2 * rng.range(0, (span / 2) as u64) as i64 + 1;
                        if sent.insert(id) {
                            batch.push(row_json(id));
                        }
                    }
                }
                let body = format!(
                    r#"{{"op":"INSERT","db":"{db}","table":"t","data":[{}]}}"#,
                    batch.join(",")
                );
                match client.request_raw(&writer(), body.into_bytes()).await {
                    Ok(r) if r.ok => {
                        acked += 10;
                        seq = seq.max(r.seq.unwrap_or(0));
                    }
                    other => failed.push(format!("{other:?}")),
                }
            }
            (acked, failed, seq)
        })
    };
    let (on_master, on_slave) = tokio::join!(
        page_through(c.client.clone(), "master", db, seq),
        page_through(c.client.clone(), "slave1", db, seq),
    );
    stop.store(true, Ordering::SeqCst);
    let (acked, failed, last_seq) = within(60, "the paging writer to stop", writer_task)
        .await
        .expect("writer task");
    assert!(failed.is_empty(), "writes failed while paging: {failed:?}");
    let sent = sent.lock().unwrap().clone();
    for (name, p) in [("master", &on_master), ("slave1", &on_slave)] {
        // Keyset order on the key: strictly increasing means no row came twice.
        if let Some(w) = p.ids.windows(2).find(|w| w[0] >= w[1]) {
            panic!(
                "paging on {name} went back or repeated: {} then {}",
                w[0], w[1]
            );
        }
        let seen: BTreeSet<i64> = p.ids.iter().copied().collect();
        let missing: Vec<_> = originals.difference(&seen).take(10).collect();
        assert!(
            missing.is_empty(),
            "paging on {name} missed {} original rows, e.g. {missing:?}",
            originals.difference(&seen).count()
        );
        let new = seen.len() - originals.len();
        assert!(
            seen.iter()
                .all(|id| originals.contains(id) || sent.contains(id)),
            "paging on {name} returned a row nobody wrote"
        );
        eprintln!(
            "[big] paging on {name}: {} pages of up to {PAGE} in {:.1} s ({:.0} rows/s, slowest page {:?}): every one of {} original rows once, {new} rows written meanwhile seen, none twice",
            p.pages,
            p.took.as_secs_f64(),
            p.ids.len() as f64 / p.took.as_secs_f64(),
            p.slowest,
            originals.len()
        );
    }
    eprintln!("[big] the writer inserted {acked} rows while paging");
    assert!(acked > 0, "the writer inserted nothing while paging");
    last_seq.max(seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_master_keeps_its_rhythm_then_paging_visits_every_row_once_on_master_and_slave() {
    let started = Instant::now();
    let rows = big_rows();
    let c = Cluster::start(2).await;
    let db = "big";
    let seq = load_big_table(&c, db, rows, &["slave1", "slave2"]).await;

    // a_busy_master_keeps_its_rhythm
    let (written, wseq) = busy_master(&c, db).await;

    // paging_visits_every_row_once_on_master_and_slave: every row there now is an original.
    let mut originals: BTreeSet<i64> = (0..rows).map(|i| 2 * i).collect();
    originals.extend(&written);
    let seq = paging_while_writing(&c, db, &originals, seq.max(wseq)).await;

    // And the three nodes hold the same table.
    let t = Instant::now();
    let sums = c
        .assert_converged(&["master", "slave1", "slave2"], db, seq)
        .await;
    eprintln!(
        "[big] checksums equal on the three nodes ({:.1} s): {sums}; test took {:.1} s",
        t.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Asserts a reply is the typed error `code`.
#[track_caller]
fn assert_code(r: &ddb::Reply, code: ErrorCode, what: &str) {
    assert_eq!(
        r.error.as_ref().map(|e| e.code),
        Some(code),
        "{what}: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_ops_replicate() {
    let mut c = Cluster::start(2).await;
    let all = ["master", "slave1", "slave2"];
    create_table(&c, "sch").await;
    c.ok(&writer(), json!({"op":"CREATE_TABLE","db":"sch","table":"other","data":{"k":"string","x":"int"},"primary_key":"k"}))
        .await;
    let rows: Vec<Json> = (1..=50)
        .map(|i| json!({"id":i,"v":format!("v{}", i % 10),"n":i}))
        .collect();
    let mut seq = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"sch","table":"t","data":rows}),
        )
        .await
        .seq
        .unwrap();
    let before = c.assert_converged(&all, "sch", seq).await;
    // slave2 is down for half of the schema ops: it catches up through the log.
    assert!(c.stop("slave2"));

    let ops = [
        json!({"op":"CREATE_INDEX","db":"sch","table":"t","index":"by_v","columns":["v"]}),
        json!({"op":"CREATE_INDEX","db":"sch","table":"t","index":"by_n_v","columns":["n","v"],"unique":true}),
        json!({"op":"CREATE_INDEX","db":"sch","table":"other","index":"by_x","columns":["x"],"unique":false}),
        json!({"op":"ADD_COLUMN","db":"sch","table":"t","data":{"age":"int","email":{"type":"string"}}}),
        json!({"op":"INSERT","db":"sch","table":"t","data":{"id":51,"v":"new","n":51,"age":30,"email":"a@b"}}),
        json!({"op":"CREATE_INDEX","db":"sch","table":"t","index":"by_email","columns":["email","age"]}),
        json!({"op":"DROP_INDEX","db":"sch","table":"t","index":"by_v"}),
        json!({"op":"DROP_TABLE","db":"sch","table":"other"}),
        // The dropped table's index name is free again.
        json!({"op":"CREATE_INDEX","db":"sch","table":"t","index":"by_x","columns":["age"]}),
    ];
    for (i, op) in ops.iter().enumerate() {
        let r = c.ok(&writer(), op.clone()).await;
        assert_eq!(r.node, "master");
        if op["op"] != "INSERT" {
            assert_eq!(r.affected, Some(0), "{op}");
        }
        assert!(r.seq.unwrap() > seq, "{op}: seq {:?} after {seq}", r.seq);
        seq = r.seq.unwrap();
        if i == 3 {
            c.start_node("slave2", false);
        }
    }
    c.wait_mode("slave2", Mode::Replica).await;
    let after = c.assert_converged(&all, "sch", seq).await;
    eprintln!("[schema] checksums before {before}\n[schema] and after the schema ops, equal on {all:?}: {after}");
    assert_ne!(before, after);
    assert_eq!(
        after.as_array().unwrap().len(),
        1,
        "other was dropped: {after}"
    );

    // Every node reads the new columns, in table order, and no longer knows `other`.
    for n in all {
        let r = c
            .ok(&node(n), json!({"op":"SEARCH","db":"sch","table":"t","condition":{"id":{"$in":[1,51]}},"min_seq":seq}))
            .await;
        assert_eq!(
            serde_json::to_value(r.rows).unwrap(),
            json!([{"id":1,"v":"v1","n":1,"age":null,"email":null},{"id":51,"v":"new","n":51,"age":30,"email":"a@b"}]),
            "on {n}"
        );
        let r = c
            .req(
                &node(n),
                json!({"op":"SEARCH","db":"sch","table":"other","min_seq":seq}),
            )
            .await;
        assert_code(
            &r,
            ErrorCode::TableNotFound,
            &format!("SEARCH of the dropped table on {n}"),
        );
    }

    // An index alone changes the checksum (a node missing one would show).
    let r = c
        .ok(&writer(), json!({"op":"CREATE_INDEX","db":"sch","table":"t","index":"by_age_n","columns":["age","n"]}))
        .await;
    let with_index = c.assert_converged(&all, "sch", r.seq.unwrap()).await;
    assert_ne!(with_index, after, "an index changed no checksum");
    let r = c
        .ok(
            &writer(),
            json!({"op":"DROP_INDEX","db":"sch","table":"t","index":"by_age_n"}),
        )
        .await;
    seq = r.seq.unwrap();
    assert_eq!(c.assert_converged(&all, "sch", seq).await, after);

    // Typed errors, from the writer; the log does not move.
    let refused = [
        (
            json!({"op":"CREATE_INDEX","db":"sch","table":"t","index":"by_n_v","columns":["id"]}),
            ErrorCode::IndexExists,
        ),
        (
            json!({"op":"CREATE_INDEX","db":"sch","table":"t","index":"BY_N_V","columns":["id"]}),
            ErrorCode::IndexExists,
        ),
        (
            json!({"op":"DROP_INDEX","db":"sch","table":"t","index":"by_v"}),
            ErrorCode::IndexNotFound,
        ),
        (
            json!({"op":"DROP_INDEX","db":"sch","table":"t","index":"nosuch"}),
            ErrorCode::IndexNotFound,
        ),
        (
            json!({"op":"DROP_TABLE","db":"sch","table":"other"}),
            ErrorCode::TableNotFound,
        ),
        (
            json!({"op":"CREATE_INDEX","db":"sch","table":"other","index":"ix","columns":["x"]}),
            ErrorCode::TableNotFound,
        ),
        (
            json!({"op":"ADD_COLUMN","db":"sch","table":"other","data":{"y":"int"}}),
            ErrorCode::TableNotFound,
        ),
        (
            json!({"op":"DROP_INDEX","db":"sch","table":"other","index":"by_x"}),
            ErrorCode::TableNotFound,
        ),
        (
            json!({"op":"CREATE_INDEX","db":"sch","table":"t","index":"ix","columns":["nosuch"]}),
            ErrorCode::ColumnNotFound,
        ),
        (
            json!({"op":"CREATE_INDEX","db":"sch","table":"t","index":"u_v","columns":["v"],"unique":true}),
            ErrorCode::Constraint,
        ),
        (
            json!({"op":"ADD_COLUMN","db":"sch","table":"t","data":{"age":"int"}}),
            ErrorCode::BadRequest,
        ),
        (
            json!({"op":"ADD_COLUMN","db":"sch","table":"t","data":{"AGE":"float"}}),
            ErrorCode::BadRequest,
        ),
        (
            json!({"op":"ADD_COLUMN","db":"sch","table":"t","data":{"z":{"type":"int","not_null":true}}}),
            ErrorCode::BadRequest,
        ),
        (
            json!({"op":"DROP_TABLE","db":"nodb","table":"t"}),
            ErrorCode::DbNotFound,
        ),
    ];
    for (op, code) in refused {
        let r = c.req(&writer(), op.clone()).await;
        assert_code(&r, code, &op.to_string());
        let message = &r.error.as_ref().unwrap().message;
        if code == ErrorCode::BadRequest && op["data"].get("z").is_none() {
            assert!(message.contains("already exists"), "{op}: {message}");
        }
        if code == ErrorCode::BadRequest && op["data"].get("z").is_some() {
            assert!(message.contains("nullable"), "{op}: {message}");
        }
        // A slave refuses a well-formed write before running it; a malformed one is refused
        // by the parser on every node alike.
        let parsed = ddb::parse_request(op.to_string().as_bytes(), &ddb::Limits::default());
        let on_slave = parsed.map_or(code, |_| ErrorCode::ReadOnly);
        let r = c.req(&node("slave1"), op.clone()).await;
        assert_code(&r, on_slave, &format!("{op} on slave1"));
    }
    assert_eq!(c.assert_converged(&all, "sch", seq).await, after);
    for n in all {
        assert!(c.is_running(n), "{n} is running");
        assert!(
            c.heartbeat(n).unwrap().broken.is_empty(),
            "{n} reports a broken database"
        );
    }
}

/// Rows for the query-timeout tests: a full scan or an index build takes tens of milliseconds
/// even in release builds, far past a 5 ms limit; a point read takes well under it.
const TIMEOUT_ROWS: i64 = 100_000;
const TIGHT: &[&str] = &["--query-timeout-ms", "5"];

/// A master (default limit) and slave1 (`--query-timeout-ms 5`) with [`TIMEOUT_ROWS`] rows
/// in `qt.t`; returns the last seq.
async fn timeout_cluster() -> (Cluster, u64) {
    let mut c = Cluster::empty(ddb_testsupport::NatsServer::start()).await;
    c.start_node("master", true);
    c.start_node_with("slave1", false, TIGHT);
    c.wait_mode("master", Mode::Master).await;
    c.wait_mode("slave1", Mode::Replica).await;
    let seq = load_big_table(&c, "qt", TIMEOUT_ROWS, &["slave1"]).await;
    (c, seq)
}

/// Restarts the master with `--query-timeout-ms 5` (the rows are loaded: 10,000-row INSERTs
/// would not fit in 5 ms).
async fn tighten_master(c: &mut Cluster) {
    assert!(c.stop("master"));
    c.start_node_with("master", true, TIGHT);
    c.wait_mode("master", Mode::Master).await;
}

fn full_scan() -> Json {
    json!({"op":"SEARCH","db":"qt","table":"t","condition":{"v":{"$like":"%none%"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_past_the_query_timeout_are_cancelled_but_replay_is_not() {
    let (mut c, _) = timeout_cluster().await;
    let point = json!({"op":"SEARCH","db":"qt","table":"t","condition":{"id":4242}});

    // A slave with a tight limit cancels a long read, answers timeout, and still serves.
    let t = Instant::now();
    let r = c.req(&node("slave1"), full_scan()).await;
    assert_code(
        &r,
        ErrorCode::Timeout,
        "full scan on slave1 with --query-timeout-ms 5",
    );
    eprintln!(
        "[timeout] full scan of {TIMEOUT_ROWS} rows on slave1 (limit 5 ms): timeout after {:?}: {}",
        t.elapsed(),
        r.error.as_ref().unwrap().message
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "cancelled late: {:?}",
        t.elapsed()
    );
    let r = c.ok(&node("slave1"), point.clone()).await;
    assert_eq!(r.rows.map(|rows| rows.len()), Some(1));

    // The master (default limit) builds an index for much longer than 5 ms; slave1 replays
    // it from the log all the same.
    let t = Instant::now();
    let ix = c
        .ok(
            &writer(),
            json!({"op":"CREATE_INDEX","db":"qt","table":"t","index":"by_v","columns":["v"]}),
        )
        .await;
    eprintln!(
        "[timeout] CREATE_INDEX on {TIMEOUT_ROWS} rows took {:?} on the master",
        t.elapsed()
    );
    c.wait_applied("slave1", ix.seq.unwrap()).await;
    let hb = c.heartbeat("slave1").unwrap();
    assert!(
        hb.broken.is_empty(),
        "slave1 did not replay CREATE_INDEX: {:?}",
        hb.broken
    );
    let r = c
        .ok(
            &node("slave1"),
            json!({"op":"SEARCH","db":"qt","table":"t","condition":{"v":"v4242"},"columns":["id"]}),
        )
        .await;
    assert_eq!(serde_json::to_value(r.rows).unwrap(), json!([{"id":4242}]));

    // The master with a tight limit cancels long reads too.
    tighten_master(&mut c).await;
    let r = c.req(&node("master"), full_scan()).await;
    assert_code(&r, ErrorCode::Timeout, "full scan on the master");
    c.ok(&node("master"), point).await;
    for n in ["master", "slave1"] {
        assert!(c.is_running(n), "{n} is running");
        assert!(
            c.heartbeat(n).unwrap().broken.is_empty(),
            "{n} reports a broken database"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_past_the_query_timeout_is_cancelled_alone() {
    let (mut c, _) = timeout_cluster().await;
    tighten_master(&mut c).await;

    // In a batch: quick INSERTs committed together with a long UPDATE the limit cancels. Each
    // INSERT acknowledged must be on both nodes; the UPDATE on neither.
    let client = c.client.clone().with_timeout(Duration::from_secs(30));
    let update =
        json!({"op":"UPDATE","db":"qt","table":"t","data":{"v":"x"},"condition":{"n":{"$gt":-1}}});
    let mut acked = Vec::new();
    let mut last = 0;
    for round in 0..5i64 {
        let ops: Vec<Json> = (1..=4)
            .map(|k| {
                let id = -(round * 10 + k) - 1;
                json!({"op":"INSERT","db":"qt","table":"t","data":{"id":id,"v":format!("v{id}"),"n":id % 7}})
            })
            .chain([update.clone()])
            .collect();
        let replies = within(
            60,
            "a batch with a cancelled UPDATE",
            futures::future::join_all(ops.iter().map(|op| client.request(&Target::Writer, op))),
        )
        .await;
        for (op, r) in ops.iter().zip(replies) {
            let r = r.expect("a reply");
            if op["op"] == "UPDATE" {
                assert_code(&r, ErrorCode::Timeout, "the long UPDATE in a batch");
            } else {
                assert!(r.ok, "{op}: {r:?}");
                acked.push(op["data"]["id"].as_i64().unwrap());
                last = last.max(r.seq.unwrap());
            }
        }
    }
    for n in ["master", "slave1"] {
        let r = c
            .ok(&node(n), json!({"op":"SEARCH","db":"qt","table":"t","condition":{"id":{"$lt":-1}},"columns":["id"],"min_seq":last}))
            .await;
        let have: BTreeSet<i64> = r
            .rows
            .unwrap()
            .iter()
            .map(|row| row["id"].as_i64().unwrap())
            .collect();
        let missing: Vec<_> = acked.iter().filter(|id| !have.contains(id)).collect();
        assert!(
            missing.is_empty(),
            "{n} lost acknowledged INSERTs batched with a cancelled UPDATE: {missing:?} (has {have:?})"
        );
        // (A whole-table check would itself pass the 5 ms limit: a few rows by key.)
        let r = c
            .ok(&node(n), json!({"op":"SEARCH","db":"qt","table":"t","condition":{"id":{"$in":[0,2,4242]}},"columns":["v"],"min_seq":last}))
            .await;
        assert_eq!(
            serde_json::to_value(r.rows).unwrap(),
            json!([{"v":"v0"},{"v":"v2"},{"v":"v4242"}]),
            "{n} holds rows of a cancelled UPDATE"
        );
    }
    // Alone: answered timeout, nothing logged.
    let r = c
        .req(&writer(), json!({"op":"UPDATE","db":"qt","table":"t","data":{"v":"x"},"condition":{"n":{"$gt":-1}}}))
        .await;
    assert_code(&r, ErrorCode::Timeout, "UPDATE of every row on the master");
    let r = c
        .req(
            &writer(),
            json!({"op":"CREATE_INDEX","db":"qt","table":"t","index":"by_n","columns":["n","v"]}),
        )
        .await;
    assert_code(
        &r,
        ErrorCode::Timeout,
        "CREATE_INDEX on the master with --query-timeout-ms 5",
    );
    let r = c
        .req(
            &writer(),
            json!({"op":"DROP_INDEX","db":"qt","table":"t","index":"by_n"}),
        )
        .await;
    assert_code(&r, ErrorCode::IndexNotFound, "the cancelled index");
    let w = c
        .ok(
            &writer(),
            json!({"op":"INSERT","db":"qt","table":"t","data":{"id":-1,"v":"v-1","n":-1}}),
        )
        .await;
    assert_eq!(w.seq, Some(last + 1), "a cancelled write reached the log");
    c.ok(
        &writer(),
        json!({"op":"DELETE","db":"qt","table":"t","condition":{"id":-1}}),
    )
    .await;

    for n in ["master", "slave1"] {
        assert!(
            c.heartbeat(n).unwrap().broken.is_empty(),
            "{n} reports a broken database"
        );
    }
}
