//! What ddb does, measured on a live cluster.

use crate::cluster::Cluster;
use crate::cpu::{per_op, CpuPerOp};
use crate::stats::{per_second, Samples, Summary};
use ddb::client::Target;
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub clients: usize,
    pub acked: u64,
    pub acked_per_s: f64,
    /// Rate counted until both slaves had applied the last acknowledged write.
    pub replicated_per_s: f64,
    pub latency: Summary,
    /// Average ops per log entry (group commit).
    pub ops_per_entry: f64,
    /// CPU time of every process (nats-server, the three nodes, the clients) per
    /// acknowledged write, from the start until both slaves had applied the last one.
    pub machine_cpu_us_per_write: Option<f64>,
    /// The same, process by process.
    pub cpu_per_write: Option<CpuPerOp>,
}

async fn table(c: &Cluster, db: &str) -> anyhow::Result<()> {
    let w = Target::Writer;
    c.ok(&w, json!({"op":"CREATE_DB","db":db})).await?;
    c.ok(&w, json!({"op":"CREATE_TABLE","db":db,"table":"t","data":{"id":"int","v":"string"},"primary_key":["id"]}))
        .await?;
    Ok(())
}

/// A single-row INSERT as the bytes a client sends. Built with `format!` rather than a JSON
/// tree: the load generator shares the two cores with what it measures.
fn insert_request(db: &str, id: i64) -> Vec<u8> {
    format!(r#"{{"op":"INSERT","db":"{db}","table":"t","data":{{"id":{id},"v":"value"}}}}"#)
        .into_bytes()
}

/// `clients` tasks, each sending one single-row INSERT at a time for `window`.
pub async fn throughput(
    c: &Cluster,
    clients: usize,
    window: Duration,
) -> anyhow::Result<Throughput> {
    let db = format!("tp{clients}");
    table(c, &db).await?;
    let next = Arc::new(AtomicI64::new(0));
    let cpu_before = c.cpu_times();
    let started = Instant::now();
    let end = started + window;
    let results = futures::future::join_all((0..clients).map(|_| {
        let client = c.client.clone();
        let next = next.clone();
        let db = db.clone();
        async move {
            let mut lat = Samples::default();
            let mut max_seq = 0u64;
            let mut min_seq = u64::MAX;
            while Instant::now() < end {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let op = insert_request(&db, id);
                let t = Instant::now();
                if let Ok(r) = client.request_raw(&Target::Writer, op).await {
                    if r.ok {
                        lat.push(t.elapsed());
                        max_seq = max_seq.max(r.seq.unwrap_or(0));
                        min_seq = min_seq.min(r.seq.unwrap_or(u64::MAX));
                    }
                }
            }
            (lat, max_seq, min_seq)
        }
    }))
    .await;
    let took = started.elapsed();
    let mut lat = Samples::default();
    let mut seq = 0;
    let mut first = u64::MAX;
    for (l, s, f) in results {
        lat.extend(l);
        seq = seq.max(s);
        first = first.min(f);
    }
    let acked = lat.len() as u64;
    let (a, b) = tokio::join!(c.wait_applied("slave1", seq), c.wait_applied("slave2", seq));
    let replicated_at = a?.max(b?);
    let cpu_per_write = per_op(cpu_before, c.cpu_times(), acked);
    Ok(Throughput {
        machine_cpu_us_per_write: cpu_per_write.map(|c| c.total_us()),
        cpu_per_write,
        clients,
        acked,
        acked_per_s: per_second(acked, took),
        replicated_per_s: per_second(acked, replicated_at - started),
        latency: lat.summary(),
        ops_per_entry: acked as f64 / (seq.saturating_sub(first) + 1) as f64,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Lag {
    pub offered_per_s: u64,
    pub acked: u64,
    /// Acknowledged → applied on a slave (measured by a `min_seq` read issued at the ack;
    /// includes that read's round trip, so it is an upper bound).
    pub lag: Summary,
}

/// Writes at a fixed rate (open loop) and samples how long after each ack the slaves have it.
pub async fn lag(c: &Cluster, rate: u64, window: Duration) -> anyhow::Result<Lag> {
    table(c, "lag").await?;
    let lag = Arc::new(std::sync::Mutex::new(Samples::default()));
    let acked = Arc::new(AtomicI64::new(0));
    let started = Instant::now();
    let total = (rate as f64 * window.as_secs_f64()) as i64;
    let mut tasks = Vec::with_capacity(total as usize);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0i64;
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as i64).min(total);
        while sent < due {
            let id = sent;
            sent += 1;
            let client = c.client.clone();
            let (lag, acked) = (lag.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let op = insert_request("lag", id);
                let Ok(r) = client.request_raw(&Target::Writer, op).await else {
                    return;
                };
                if !r.ok {
                    return;
                }
                acked.fetch_add(1, Ordering::Relaxed);
                if id % 20 != 0 {
                    return;
                }
                let at = Instant::now();
                let seq = r.seq.unwrap_or(0);
                let probe = json!({"op":"CHECKSUM","db":"none","min_seq":seq});
                for slave in ["slave1", "slave2"] {
                    if client
                        .request(&Target::Node(slave.into()), &probe)
                        .await
                        .is_ok()
                    {
                        if let Ok(mut l) = lag.lock() {
                            l.push(at.elapsed());
                        }
                    }
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let summary = lag.lock().map(|l| l.summary()).unwrap_or_default();
    Ok(Lag {
        offered_per_s: rate,
        acked: acked.load(Ordering::Relaxed) as u64,
        lag: summary,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct CatchUp {
    pub entries_behind: u64,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_s: f64,
}

/// Stops slave2, writes `ops` single-row INSERTs, starts it, times its catch-up.
pub async fn catch_up(c: &mut Cluster, ops: i64) -> anyhow::Result<CatchUp> {
    table(c, "catchup").await?;
    c.stop("slave2");
    let next = Arc::new(AtomicI64::new(0));
    let results = futures::future::join_all((0..64).map(|_| {
        let client = c.client.clone();
        let next = next.clone();
        async move {
            let mut max = 0u64;
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= ops {
                    return max;
                }
                let op = insert_request("catchup", id);
                if let Ok(r) = client.request_raw(&Target::Writer, op).await {
                    max = max.max(r.seq.unwrap_or(0));
                }
            }
        }
    }))
    .await;
    let seq = results.into_iter().max().unwrap_or(0);
    let started = Instant::now();
    c.start_node("slave2");
    let done = c.wait_applied("slave2", seq).await?;
    let took = done - started;
    Ok(CatchUp {
        entries_behind: seq,
        ops: ops as u64,
        seconds: took.as_secs_f64(),
        ops_per_s: per_second(ops as u64, took),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Reads {
    /// Where the reads went: "slave1" or "any replica" (`<prefix>.reads`).
    pub via: String,
    pub clients: usize,
    pub per_s: f64,
    pub latency: Summary,
    /// Requests that timed out or were refused (not counted in `per_s`).
    pub failed: u64,
    /// CPU per answered read, process by process.
    pub cpu_per_read: Option<CpuPerOp>,
}

/// Point queries by primary key on the `catchup` table (`rows` rows), sent to `target`.
pub async fn reads(
    c: &Cluster,
    target: &Target,
    rows: i64,
    clients: usize,
    window: Duration,
) -> anyhow::Result<Reads> {
    let via = match target {
        Target::AnyReplica => "any replica".to_owned(),
        Target::Node(n) => n.clone(),
        Target::Writer => "the writer".to_owned(),
    };
    let rows = rows.max(1);
    let cpu_before = c.cpu_times();
    let started = Instant::now();
    let end = started + window;
    let results = futures::future::join_all((0..clients).map(|i| {
        let client = c.client.clone();
        async move {
            let mut lat = Samples::default();
            let mut failed = 0u64;
            let mut id = i as i64;
            while Instant::now() < end {
                // Built with `format!`, as the writes are: the client shares the two cores.
                let op = format!(
                    r#"{{"op":"SEARCH","db":"catchup","table":"t","condition":{{"id":{}}}}}"#,
                    id % rows
                );
                let t = Instant::now();
                match client.request_raw(target, op.into_bytes()).await {
                    Ok(r) if r.ok => lat.push(t.elapsed()),
                    _ => failed += 1,
                }
                id += 7919;
            }
            (lat, failed)
        }
    }))
    .await;
    let took = started.elapsed();
    let cpu_after = c.cpu_times();
    let mut lat = Samples::default();
    let mut failed = 0;
    for (l, f) in results {
        lat.extend(l);
        failed += f;
    }
    Ok(Reads {
        via,
        clients,
        per_s: per_second(lat.len() as u64, took),
        cpu_per_read: per_op(cpu_before, cpu_after, lat.len() as u64),
        latency: lat.summary(),
        failed,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub rows: u64,
    pub master_mib: Option<f64>,
    pub slave1_mib: Option<f64>,
    pub slave2_mib: Option<f64>,
}

/// Replicates `rows` rows (1000-row INSERTs), then reads each node's peak RSS.
pub async fn memory(c: &Cluster, rows: i64) -> anyhow::Result<Memory> {
    table(c, "mem").await?;
    let next = Arc::new(AtomicI64::new(0));
    let seqs = futures::future::join_all((0..8).map(|_| {
        let client = c.client.clone();
        let next = next.clone();
        async move {
            let mut max = 0u64;
            loop {
                let start = next.fetch_add(1000, Ordering::Relaxed);
                if start >= rows {
                    return max;
                }
                let data: Vec<_> = (start..(start + 1000).min(rows))
                    .map(|id| json!({"id":id,"v":format!("row-{id}")}))
                    .collect();
                let op = json!({"op":"INSERT","db":"mem","table":"t","data":data});
                if let Ok(r) = client.request(&Target::Writer, &op).await {
                    max = max.max(r.seq.unwrap_or(0));
                }
            }
        }
    }))
    .await;
    let seq = seqs.into_iter().max().unwrap_or(0);
    c.wait_applied("slave1", seq).await?;
    c.wait_applied("slave2", seq).await?;
    Ok(Memory {
        rows: rows as u64,
        master_mib: c.peak_rss_mib("master"),
        slave1_mib: c.peak_rss_mib("slave1"),
        slave2_mib: c.peak_rss_mib("slave2"),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    pub first_write_through_slave_ms: u64,
    pub slave: String,
}

/// `kill -9` of the master; time until a write is acknowledged through a slave.
pub async fn failover(c: &mut Cluster) -> anyhow::Result<Failover> {
    table(c, "fo").await?;
    let probe = c.client.clone().with_timeout(Duration::from_millis(300));
    c.kill("master");
    let killed = Instant::now();
    let mut id = 0i64;
    loop {
        id += 1;
        let op = json!({"op":"INSERT","db":"fo","table":"t","data":{"id":id,"v":"x"}});
        if let Ok(r) = probe.request(&Target::Writer, &op).await {
            if r.ok && r.node != "master" {
                return Ok(Failover {
                    first_write_through_slave_ms: killed.elapsed().as_millis() as u64,
                    slave: r.node,
                });
            }
        }
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(60),
            "no slave took over"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Index {
    pub rows: u64,
    /// Loading the rows (INSERTs of 10,000 rows, 3 in flight), rows/s.
    pub load_rows_per_s: f64,
    /// CREATE_INDEX on the loaded table, acknowledged by the master.
    pub create_index_s: f64,
    /// ... and applied on both slaves.
    pub create_index_replicated_s: f64,
    /// SEARCH by the non-key column before it had an index (a full scan), a few requests.
    pub unindexed: Summary,
    /// Point SEARCH by primary key on slave1, 1 client.
    pub by_key: Summary,
    /// Point SEARCH by the indexed non-key column (unique values) on slave1, 1 client.
    pub by_index: Summary,
    /// `by_index` p50 / `by_key` p50 (target: at most 3).
    pub ratio_p50: f64,
    /// Paging through the whole table on slave1 with limit 10,000.
    pub scan_pages: u64,
    pub scan_rows: u64,
    pub scan_s: f64,
    pub scan_rows_per_s: f64,
}

/// The indexed column's value of row `id`: unique per row.
fn email(id: i64) -> String {
    format!("user{id:08}@example.com")
}

/// `rows` rows with a string column `email` (unique values), CREATE_INDEX on it, then point
/// SEARCHes on slave1 by primary key and by `email`, alternating, `reads` of each at one
/// client; then a scan paging through the table on slave1.
pub async fn index(c: &Cluster, rows: i64, reads: usize) -> anyhow::Result<Index> {
    const CHUNK: i64 = 10_000;
    let (w, db) = (Target::Writer, "ix");
    let slave = Target::Node("slave1".into());
    c.ok(&w, json!({"op":"CREATE_DB","db":db})).await?;
    c.ok(&w, json!({"op":"CREATE_TABLE","db":db,"table":"t","data":{"id":"int","email":"string","v":"string"},"primary_key":["id"]}))
        .await?;
    let loader = c.client.clone().with_timeout(Duration::from_secs(120));
    let started = Instant::now();
    let chunks: Vec<i64> = (0..rows).step_by(CHUNK as usize).collect();
    let mut seq = 0u64;
    let mut pending = futures::stream::iter(chunks.into_iter().map(|from| {
        let loader = loader.clone();
        async move {
            let to = (from + CHUNK).min(rows);
            let data: Vec<String> = (from..to)
                .map(|id| format!(r#"{{"id":{id},"email":"{}","v":"row-{id}"}}"#, email(id)))
                .collect();
            let body = format!(
                r#"{{"op":"INSERT","db":"ix","table":"t","data":[{}]}}"#,
                data.join(",")
            );
            loader.request_raw(&Target::Writer, body.into_bytes()).await
        }
    }))
    .buffer_unordered(3);
    while let Some(r) = pending.next().await {
        let r = r?;
        anyhow::ensure!(r.ok, "loading failed: {:?}", r.error);
        seq = seq.max(r.seq.unwrap_or(0));
    }
    let load_rows_per_s = per_second(rows as u64, started.elapsed());
    c.wait_applied("slave1", seq).await?;
    c.wait_applied("slave2", seq).await?;

    let mut rng = ddb_testsupport::Rng::new(0x1d3);
    let mut pick = move || rng.below(rows.max(1) as usize) as i64;
    let one_row = |r: &ddb::reply::Reply, what: &str| -> anyhow::Result<()> {
        anyhow::ensure!(r.ok, "{what} failed: {:?}", r.error);
        let n = r.rows.as_ref().map_or(0, Vec::len);
        anyhow::ensure!(n == 1, "{what} returned {n} rows");
        Ok(())
    };
    // Before the index: a full scan per request; a few suffice.
    let slow = c.client.clone().with_timeout(Duration::from_secs(60));
    let mut unindexed = Samples::default();
    for _ in 0..5 {
        let op = json!({"op":"SEARCH","db":db,"table":"t","condition":{"email":email(pick())}});
        let t = Instant::now();
        let r = slow.request(&slave, &op).await?;
        unindexed.push(t.elapsed());
        one_row(&r, "SEARCH by email without an index")?;
    }

    let t = Instant::now();
    let r = slow
        .request(&w, &json!({"op":"CREATE_INDEX","db":db,"table":"t","index":"by_email","columns":["email"],"unique":true}))
        .await?;
    anyhow::ensure!(r.ok, "CREATE_INDEX failed: {:?}", r.error);
    let create_index_s = t.elapsed().as_secs_f64();
    let seq = r.seq.unwrap_or(0);
    let (a, b) = tokio::join!(c.wait_applied("slave1", seq), c.wait_applied("slave2", seq));
    let create_index_replicated_s = (a?.max(b?) - t).as_secs_f64();

    let (mut by_key, mut by_index) = (Samples::default(), Samples::default());
    for _ in 0..reads {
        let op = json!({"op":"SEARCH","db":db,"table":"t","condition":{"id":pick()}});
        let t = Instant::now();
        let r = c.client.request(&slave, &op).await?;
        by_key.push(t.elapsed());
        one_row(&r, "SEARCH by key")?;
        let op = json!({"op":"SEARCH","db":db,"table":"t","condition":{"email":email(pick())}});
        let t = Instant::now();
        let r = c.client.request(&slave, &op).await?;
        by_index.push(t.elapsed());
        one_row(&r, "SEARCH by the indexed column")?;
    }
    let (by_key, by_index) = (by_key.summary(), by_index.summary());

    // Scan: every row, a page of 10,000 at a time.
    let started = Instant::now();
    let (mut pages, mut scanned) = (0u64, 0u64);
    let mut after: Option<String> = None;
    loop {
        let mut op = json!({"op":"SEARCH","db":db,"table":"t","limit":CHUNK});
        if let Some(a) = after.take() {
            op["after"] = json!(a);
        }
        let r = slow.request(&slave, &op).await?;
        anyhow::ensure!(r.ok, "page {pages} failed: {:?}", r.error);
        pages += 1;
        scanned += r.rows.map_or(0, |rows| rows.len() as u64);
        match r.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let scan = started.elapsed();
    anyhow::ensure!(
        scanned == rows as u64,
        "paging returned {scanned} rows of {rows}"
    );
    Ok(Index {
        rows: rows as u64,
        load_rows_per_s,
        create_index_s,
        create_index_replicated_s,
        unindexed: unindexed.summary(),
        ratio_p50: by_index.p50_us as f64 / by_key.p50_us.max(1) as f64,
        by_key,
        by_index,
        scan_pages: pages,
        scan_rows: scanned,
        scan_s: scan.as_secs_f64(),
        scan_rows_per_s: per_second(scanned, scan),
    })
}
