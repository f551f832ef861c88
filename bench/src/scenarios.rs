//! What ddb does, measured on a live cluster.

use crate::cluster::Cluster;
use crate::stats::{per_second, Samples, Summary};
use ddb::client::Target;
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
    Ok(Throughput {
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
    pub clients: usize,
    pub per_s: f64,
    pub latency: Summary,
}

/// Point queries by primary key on slave1.
pub async fn reads(c: &Cluster, clients: usize, window: Duration) -> anyhow::Result<Reads> {
    let started = Instant::now();
    let end = started + window;
    let results = futures::future::join_all((0..clients).map(|i| {
        let client = c.client.clone();
        async move {
            let mut lat = Samples::default();
            let mut id = i as i64;
            while Instant::now() < end {
                let op = json!({"op":"SEARCH","db":"catchup","table":"t","condition":{"id":id % 100_000}});
                let t = Instant::now();
                if let Ok(r) = client.request(&Target::Node("slave1".into()), &op).await {
                    if r.ok {
                        lat.push(t.elapsed());
                    }
                }
                id += 7919;
            }
            lat
        }
    }))
    .await;
    let took = started.elapsed();
    let mut lat = Samples::default();
    for l in results {
        lat.extend(l);
    }
    Ok(Reads {
        clients,
        per_s: per_second(lat.len() as u64, took),
        latency: lat.summary(),
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
