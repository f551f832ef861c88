//! The `bulk`, `scan` and `tail` scenarios: loading many rows in big INSERTs, paging them back
//! out of a slave, and the latency tail of one client writing for a long time.

use crate::cluster::Cluster;
use crate::cpu::cpu_time;
use crate::stages::{metrics_addr, Scrape, StageFigures};
use crate::stats::{per_second, Samples, Summary};
use ddb::client::Target;
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

/// Requests in flight while loading: enough that the master always has the next INSERT
/// waiting when it commits one, few enough that replies do not queue behind each other.
const BULK_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone, Serialize)]
pub struct Bulk {
    pub rows: u64,
    pub rows_per_insert: u64,
    pub inserts: u64,
    /// Rows acknowledged by the master per second.
    pub acked_rows_per_s: f64,
    /// Rows per second counted until both slaves had applied the last INSERT.
    pub replicated_rows_per_s: f64,
    pub seconds_acked: f64,
    pub seconds_replicated: f64,
    /// Latency of one INSERT of `rows_per_insert` rows, with `BULK_IN_FLIGHT` in flight.
    pub latency: Summary,
    /// CPU time per row (user + system, all threads) of the master and of each slave, from
    /// the load's start until both slaves had applied it: steadier than the rates on a
    /// shared machine, since it does not count time spent waiting for the CPU.
    pub master_cpu_us_per_row: Option<f64>,
    pub slave_cpu_us_per_row: Option<f64>,
}

fn cpu_times(c: &Cluster) -> [Option<Duration>; 3] {
    ["master", "slave1", "slave2"].map(|n| cpu_time(c.pid(n)))
}

async fn create_table(c: &Cluster, db: &str) -> anyhow::Result<()> {
    let w = Target::Writer;
    c.ok(&w, json!({"op":"CREATE_DB","db":db})).await?;
    c.ok(&w, json!({"op":"CREATE_TABLE","db":db,"table":"t","data":{"id":"int","v":"string"},"primary_key":["id"]}))
        .await?;
    Ok(())
}

/// The INSERT requests of rows `0..rows`, `per` rows each, as the bytes a client sends. Built
/// before the clock starts: the load generator shares the two cores with what it measures.
fn insert_bodies(db: &str, rows: i64, per: i64) -> Vec<Vec<u8>> {
    (0..rows)
        .step_by(per.max(1) as usize)
        .map(|from| {
            let mut body = format!(r#"{{"op":"INSERT","db":"{db}","table":"t","data":["#);
            for id in from..(from + per).min(rows) {
                if id > from {
                    body.push(',');
                }
                body.push_str(&format!(r#"{{"id":{id},"v":"value-{id}"}}"#));
            }
            body.push_str("]}");
            body.into_bytes()
        })
        .collect()
}

/// Creates `db` and loads `rows` rows in INSERTs of `per` rows, a few in flight; times the
/// acknowledgements and the moment both slaves have applied them all.
pub async fn bulk(c: &Cluster, db: &str, rows: i64, per: i64) -> anyhow::Result<Bulk> {
    create_table(c, db).await?;
    let bodies = insert_bodies(db, rows, per);
    let inserts = bodies.len() as u64;
    let loader = c.client.clone().with_timeout(Duration::from_secs(120));
    let cpu_before = cpu_times(c);
    let started = Instant::now();
    let mut pending = futures::stream::iter(bodies.into_iter().map(|body| {
        let loader = loader.clone();
        async move {
            let t = Instant::now();
            let r = loader.request_raw(&Target::Writer, body).await;
            (t.elapsed(), r)
        }
    }))
    .buffer_unordered(BULK_IN_FLIGHT);
    let (mut seq, mut lat) = (0u64, Samples::default());
    while let Some((took, r)) = pending.next().await {
        let r = r?;
        anyhow::ensure!(r.ok, "a bulk INSERT failed: {:?}", r.error);
        lat.push(took);
        seq = seq.max(r.seq.unwrap_or(0));
    }
    let acked = started.elapsed();
    let (a, b) = tokio::join!(c.wait_applied("slave1", seq), c.wait_applied("slave2", seq));
    let replicated = a?.max(b?) - started;
    let cpu_after = cpu_times(c);
    let used = |i: usize| -> Option<f64> {
        let d = cpu_after[i]?.checked_sub(cpu_before[i]?)?;
        Some(d.as_secs_f64() * 1e6 / rows.max(1) as f64)
    };
    let slaves = used(1).zip(used(2)).map(|(a, b)| (a + b) / 2.0);
    Ok(Bulk {
        master_cpu_us_per_row: used(0),
        slave_cpu_us_per_row: slaves,
        rows: rows as u64,
        rows_per_insert: per as u64,
        inserts,
        acked_rows_per_s: per_second(rows as u64, acked),
        replicated_rows_per_s: per_second(rows as u64, replicated),
        seconds_acked: acked.as_secs_f64(),
        seconds_replicated: replicated.as_secs_f64(),
        latency: lat.summary(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    pub rows: u64,
    pub page: u64,
    pub pages: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// The same rows read straight from slave1's SQLite file in this run, one `SELECT` in key
    /// order, each value read: what the store can give.
    pub raw_sqlite_rows_per_s: f64,
}

/// Pages through table `t` of `db` (which holds `rows` rows) on slave1 with `limit` = `page`
/// and `after`, then reads the same rows from the slave's SQLite file directly.
pub async fn scan(c: &Cluster, db: &str, rows: i64, page: i64) -> anyhow::Result<Scan> {
    let slave = Target::Node("slave1".into());
    let reader = c.client.clone().with_timeout(Duration::from_secs(60));
    let started = Instant::now();
    let (mut pages, mut scanned) = (0u64, 0u64);
    let mut after: Option<String> = None;
    let mut last_id = -1i64;
    loop {
        let mut op = json!({"op":"SEARCH","db":db,"table":"t","limit":page});
        if let Some(a) = after.take() {
            op["after"] = json!(a);
        }
        let r = reader.request(&slave, &op).await?;
        anyhow::ensure!(r.ok, "page {pages} failed: {:?}", r.error);
        pages += 1;
        for row in r.rows.as_deref().unwrap_or_default() {
            // Rows come back in key order, each once: a cheap check that paging is right.
            let id = row.get("id").and_then(serde_json::Value::as_i64);
            anyhow::ensure!(
                id == Some(last_id + 1),
                "page {pages}: row {row:?} after id {last_id}"
            );
            last_id += 1;
            scanned += 1;
        }
        match r.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let took = started.elapsed();
    anyhow::ensure!(
        scanned == rows as u64,
        "paging returned {scanned} rows of {rows}"
    );
    let raw = raw_scan(&c.dir.path().join("slave1").join(format!("{db}.sqlite")))?;
    anyhow::ensure!(
        raw.0 == scanned,
        "the raw read found {} rows, paging {scanned}",
        raw.0
    );
    Ok(Scan {
        rows: scanned,
        page: page as u64,
        pages,
        seconds: took.as_secs_f64(),
        rows_per_s: per_second(scanned, took),
        raw_sqlite_rows_per_s: per_second(raw.0, raw.1),
    })
}

/// Every row of `t` from a database file, in key order: (rows, time taken).
fn raw_scan(path: &std::path::Path) -> anyhow::Result<(u64, Duration)> {
    // The node holds its files locked for itself (SQLite's unix-excl VFS): read a copy of
    // the file and its WAL (nothing writes to it during the scan), then time the read alone.
    let copy = tempfile::tempdir()?;
    let file = copy.path().join("scan.sqlite");
    std::fs::copy(path, &file)?;
    let wal = path.with_extension("sqlite-wal");
    if wal.exists() {
        std::fs::copy(&wal, file.with_extension("sqlite-wal"))?;
    }
    let conn = rusqlite::Connection::open(&file)?;
    // The first read of the copy replays its WAL: not part of the scan.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    let started = Instant::now();
    let mut st = conn.prepare("SELECT id, v FROM t ORDER BY id")?;
    let mut rows = st.query([])?;
    let (mut n, mut bytes) = (0u64, 0usize);
    while let Some(row) = rows.next()? {
        let _: i64 = row.get(0)?;
        bytes += row.get_ref(1)?.as_str()?.len();
        n += 1;
    }
    anyhow::ensure!(bytes > 0 || n == 0, "rows without values");
    Ok((n, started.elapsed()))
}

#[derive(Debug, Clone, Serialize)]
pub struct Tail {
    pub seconds: f64,
    pub latency: Summary,
    /// Writes slower than 5 ms and than 20 ms.
    pub over_5ms: u64,
    pub over_20ms: u64,
    /// The slowest writes: (seconds into the run, latency in µs), slowest first.
    pub slowest: Vec<(f64, u64)>,
    /// The same writes on the master, stage by stage (from its metrics).
    pub stages: Vec<StageFigures>,
    /// Rows the table held before the client began (`--tail-rows`).
    pub rows_before: u64,
    /// The master's CPU over the run, in percent of one core (snapshots of a big table show
    /// here).
    pub master_cpu_percent: Option<f64>,
}

/// One client sending single-row INSERTs one at a time for `window`, into a table that first
/// gets `rows_before` rows (as the `bulk` scenario loads them, applied on both slaves).
pub async fn tail(c: &Cluster, window: Duration, rows_before: i64) -> anyhow::Result<Tail> {
    if rows_before > 0 {
        bulk(c, "tail", rows_before, 5_000).await?;
    } else {
        create_table(c, "tail").await?;
    }
    let master_metrics = metrics_addr(c, "master").await?;
    let before = Scrape::of(&master_metrics).await?;
    let master_cpu_before = cpu_time(c.pid("master"));
    let started = Instant::now();
    let end = started + window;
    let mut lat = Samples::default();
    let mut slowest: Vec<(f64, u64)> = Vec::new();
    let mut id = rows_before.max(0);
    while Instant::now() < end {
        let body = format!(
            r#"{{"op":"INSERT","db":"tail","table":"t","data":{{"id":{id},"v":"value"}}}}"#
        );
        id += 1;
        let t = Instant::now();
        let r = c
            .client
            .request_raw(&Target::Writer, body.into_bytes())
            .await?;
        let took = t.elapsed();
        anyhow::ensure!(r.ok, "INSERT {id} failed: {:?}", r.error);
        lat.push(took);
        let us = took.as_micros() as u64;
        if slowest.len() < 10 || us > slowest.last().map_or(0, |s| s.1) {
            slowest.push(((t - started).as_secs_f64(), us));
            slowest.sort_by_key(|s| std::cmp::Reverse(s.1));
            slowest.truncate(10);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let master_cpu_percent = master_cpu_before
        .zip(cpu_time(c.pid("master")))
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64() * 100.0 / seconds);
    let stages = before.stages_until(&Scrape::of(&master_metrics).await?);
    let summary = lat.summary();
    let count = |over: u64| lat.iter().filter(|d| d.as_micros() as u64 > over).count() as u64;
    Ok(Tail {
        seconds,
        over_5ms: count(5_000),
        over_20ms: count(20_000),
        latency: summary,
        slowest,
        stages,
        rows_before: rows_before.max(0) as u64,
        master_cpu_percent,
    })
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// The report's rows for these scenarios: (measure, ddb, limit in the same run).
pub fn rows(r: &crate::Report) -> Vec<(String, String, String)> {
    let l = &r.limits;
    let mut out = Vec::new();
    if let Some(t) = &r.tail {
        let s = &t.latency;
        out.push((
            format!(
                "tail: 1 client, {:.0} s, {} INSERTs{}: p50 / p99 / p99.9 / max",
                t.seconds,
                s.count,
                if t.rows_before > 0 {
                    format!(" into {} rows", t.rows_before)
                } else {
                    String::new()
                }
            ),
            format!(
                "{} / {} / {} / {}",
                ms(s.p50_us),
                ms(s.p99_us),
                ms(s.p999_us),
                ms(s.max_us)
            ),
            format!(
                "raw req-reply p99.9 {} max {}; raw JetStream ack p99.9 {} max {}",
                ms(l.nats_req_1.p999_us),
                ms(l.nats_req_1.max_us),
                ms(l.js_pub_1.p999_us),
                ms(l.js_pub_1.max_us)
            ),
        ));
        let slowest: Vec<String> = t
            .slowest
            .iter()
            .take(5)
            .map(|(at, us)| format!("{} at {at:.1} s", ms(*us)))
            .collect();
        out.push((
            "tail: writes over 5 ms / over 20 ms; the slowest".into(),
            format!("{} / {}", t.over_5ms, t.over_20ms),
            slowest.join(", "),
        ));
        let stages: Vec<String> = t
            .stages
            .iter()
            .map(|s| format!("{} {:.0} µs / {:.0}", s.stage, s.mean_us, s.over_5ms))
            .collect();
        out.push((
            "tail: on the master, mean / over 5 ms".into(),
            stages.join("; "),
            "from the master's own histograms (the client's time adds NATS both ways)".into(),
        ));
        if let Some(cpu) = t.master_cpu_percent {
            out.push((
                "tail: the master's CPU over the run".into(),
                format!("{cpu:.0}% of a core"),
                "snapshots of the table are part of it".into(),
            ));
        }
    }
    if let Some(b) = &r.bulk {
        out.push((
            format!(
                "bulk: {} rows as {} INSERTs of {}: rows/s acked / applied on both slaves",
                b.rows, b.inserts, b.rows_per_insert
            ),
            format!(
                "{:.0} / {:.0} ({:.2} s)",
                b.acked_rows_per_s, b.replicated_rows_per_s, b.seconds_replicated
            ),
            format!(
                "raw SQLite batched {:.0}/s ({:.2}×)",
                l.sqlite_batched_per_s,
                b.replicated_rows_per_s / l.sqlite_batched_per_s.max(1.0)
            ),
        ));
        let us = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.2} µs"));
        out.push((
            format!(
                "bulk: one {}-row INSERT, {BULK_IN_FLIGHT} in flight: p50 / p99",
                b.rows_per_insert
            ),
            format!("{} / {}", ms(b.latency.p50_us), ms(b.latency.p99_us)),
            format!(
                "CPU per row: master {}, each slave {}",
                us(b.master_cpu_us_per_row),
                us(b.slave_cpu_us_per_row)
            ),
        ));
    }
    if let Some(s) = &r.scan {
        out.push((
            format!("scan: {} rows paged from a slave, limit {}", s.rows, s.page),
            format!(
                "{:.0} rows/s ({} pages, {:.2} s)",
                s.rows_per_s, s.pages, s.seconds
            ),
            format!(
                "raw SQLite read of the slave's file {:.0} rows/s ({:.2}×)",
                s.raw_sqlite_rows_per_s,
                s.rows_per_s / s.raw_sqlite_rows_per_s.max(1.0)
            ),
        ));
    }
    out
}
