//! The `tx` scenario: TRANSACTIONs of 10 writes each (10 single-row INSERTs; 10 UPDATEs by key
//! with `"expect":{"affected":1}`) at 1 and 64 clients, beside single-row INSERTs of the same
//! run and the raw limits.

use crate::cluster::Cluster;
use crate::limits::Limits;
use crate::scenarios::{self, Throughput};
use crate::stats::{per_second, Samples, Summary};
use ddb::client::Target;
use serde::Serialize;
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes per transaction.
pub const OPS_PER_TX: usize = 10;
/// Client counts measured.
pub const CLIENTS: [usize; 2] = [1, 64];

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 10 single-row INSERTs of new keys.
    Insert,
    /// 10 UPDATEs by primary key, each with `"expect":{"affected":1}` (a client's own rows).
    UpdateExpect,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Insert => "10 INSERTs",
            Kind::UpdateExpect => "10 UPDATEs with expect",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TxRun {
    pub kind: Kind,
    pub clients: usize,
    /// Transactions acknowledged.
    pub tx: u64,
    pub tx_per_s: f64,
    /// Rows written per second (10 per transaction).
    pub rows_per_s: f64,
    /// Rows per second counted until both slaves had applied the last acknowledged one.
    pub replicated_rows_per_s: f64,
    pub latency: Summary,
    /// Average transactions per log entry (group commit).
    pub tx_per_entry: f64,
    /// Replies that were not ok (none expected).
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Tx {
    pub ops_per_tx: usize,
    /// Single-row INSERTs at the same client counts, same run: the `throughput` scenario's
    /// figures when it ran, else measured here.
    pub single: Vec<Throughput>,
    pub runs: Vec<TxRun>,
}

/// Runs the scenario; `throughput` holds what the `throughput` scenario measured in this run.
pub async fn run(c: &Cluster, window: Duration, throughput: &[Throughput]) -> anyhow::Result<Tx> {
    let mut out = Tx {
        ops_per_tx: OPS_PER_TX,
        ..Tx::default()
    };
    for n in CLIENTS {
        let single = match throughput.iter().find(|t| t.clients == n) {
            Some(t) => t.clone(),
            None => scenarios::throughput(c, n, window).await?,
        };
        out.single.push(single);
        for kind in [Kind::Insert, Kind::UpdateExpect] {
            out.runs.push(transactions(c, kind, n, window).await?);
        }
    }
    Ok(out)
}

/// One TRANSACTION as the bytes a client sends (built with `format!`: the load generator
/// shares the cores with what it measures). `first` is the first key it writes.
fn request(db: &str, kind: Kind, first: i64, round: u64) -> Vec<u8> {
    let ops: Vec<String> = (first..first + OPS_PER_TX as i64)
        .map(|id| match kind {
            Kind::Insert => {
                format!(r#"{{"op":"INSERT","table":"t","data":{{"id":{id},"v":"value"}}}}"#)
            }
            Kind::UpdateExpect => format!(
                r#"{{"op":"UPDATE","table":"t","data":{{"v":"r{round}"}},"condition":{{"id":{id}}},"expect":{{"affected":1}}}}"#
            ),
        })
        .collect();
    format!(
        r#"{{"op":"TRANSACTION","db":"{db}","ops":[{}]}}"#,
        ops.join(",")
    )
    .into_bytes()
}

/// `clients` tasks, each sending one TRANSACTION at a time for `window`.
pub async fn transactions(
    c: &Cluster,
    kind: Kind,
    clients: usize,
    window: Duration,
) -> anyhow::Result<TxRun> {
    let db = format!(
        "tx_{}{clients}",
        match kind {
            Kind::Insert => "ins",
            Kind::UpdateExpect => "upd",
        }
    );
    let w = Target::Writer;
    c.ok(&w, json!({"op":"CREATE_DB","db":db})).await?;
    c.ok(&w, json!({"op":"CREATE_TABLE","db":db,"table":"t","data":{"id":"int","v":"string"},"primary_key":["id"]}))
        .await?;
    if kind == Kind::UpdateExpect {
        // Each client updates its own 10 rows: no two transactions compete for a row.
        let rows: Vec<_> = (0..(clients * OPS_PER_TX) as i64)
            .map(|id| json!({"id":id,"v":"start"}))
            .collect();
        c.ok(&w, json!({"op":"INSERT","db":db,"table":"t","data":rows}))
            .await?;
    }
    let next = Arc::new(AtomicI64::new(0));
    let started = Instant::now();
    let end = started + window;
    let results = futures::future::join_all((0..clients).map(|i| {
        let client = c.client.clone();
        let next = next.clone();
        let db = db.clone();
        async move {
            let mut lat = Samples::default();
            let (mut max_seq, mut min_seq, mut failed) = (0u64, u64::MAX, 0u64);
            let mut round = 0u64;
            while Instant::now() < end {
                let first = match kind {
                    Kind::Insert => next.fetch_add(OPS_PER_TX as i64, Ordering::Relaxed),
                    Kind::UpdateExpect => (i * OPS_PER_TX) as i64,
                };
                round += 1;
                let op = request(&db, kind, first, round);
                let t = Instant::now();
                match client.request_raw(&Target::Writer, op).await {
                    Ok(r) if r.ok && r.affected == Some(OPS_PER_TX as u64) => {
                        lat.push(t.elapsed());
                        let seq = r.seq.unwrap_or(0);
                        max_seq = max_seq.max(seq);
                        min_seq = min_seq.min(seq);
                    }
                    _ => failed += 1,
                }
            }
            (lat, max_seq, min_seq, failed)
        }
    }))
    .await;
    let took = started.elapsed();
    let mut lat = Samples::default();
    let (mut seq, mut first, mut failed) = (0, u64::MAX, 0);
    for (l, s, f, n) in results {
        lat.extend(l);
        seq = seq.max(s);
        first = first.min(f);
        failed += n;
    }
    let tx = lat.len() as u64;
    anyhow::ensure!(
        tx > 0,
        "no TRANSACTION of {} was acknowledged",
        kind.label()
    );
    let (a, b) = tokio::join!(c.wait_applied("slave1", seq), c.wait_applied("slave2", seq));
    let replicated_at = a?.max(b?);
    let rows = tx * OPS_PER_TX as u64;
    Ok(TxRun {
        kind,
        clients,
        tx,
        tx_per_s: per_second(tx, took),
        rows_per_s: per_second(rows, took),
        replicated_rows_per_s: per_second(rows, replicated_at - started),
        latency: lat.summary(),
        tx_per_entry: tx as f64 / (seq.saturating_sub(first) + 1) as f64,
        failed,
    })
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// The scenario's rows of the report table: (measure, ddb, beside it).
pub fn rows(t: &Tx, l: &Limits) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for run in &t.runs {
        let single = t.single.iter().find(|s| s.clients == run.clients);
        let name = format!(
            "TRANSACTION of {}, {} client{}",
            run.kind.label(),
            run.clients,
            if run.clients == 1 { "" } else { "s" }
        );
        let beside = match single {
            Some(s) => format!(
                "single-row INSERT, {} client{}, same run: {:.0}/s (rows/s ratio {:.2}×)",
                s.clients,
                if s.clients == 1 { "" } else { "s" },
                s.acked_per_s,
                run.rows_per_s / s.acked_per_s.max(1.0)
            ),
            None => String::new(),
        };
        out.push((
            format!("{name}: tx/s / rows/s (tx per log entry)"),
            format!(
                "{:.0} / {:.0} ({:.1})",
                run.tx_per_s, run.rows_per_s, run.tx_per_entry
            ),
            beside,
        ));
        let limit = if run.clients == 1 {
            format!(
                "JetStream publish-with-ack 1 in flight {:.0}/s; req-reply p50 {} + JetStream ack p50 {}",
                l.js_pub_1_per_s,
                ms(l.nats_req_1.p50_us),
                ms(l.js_pub_1.p50_us)
            )
        } else {
            format!(
                "JetStream pipelined {:.0}/s; SQLite batched {:.0} rows/s",
                l.js_pub_pipelined_per_s, l.sqlite_batched_per_s
            )
        };
        out.push((
            format!("{name}: rows applied on both slaves/s"),
            format!("{:.0}", run.replicated_rows_per_s),
            limit,
        ));
        out.push((
            format!("{name}: latency p50 / p99 / max"),
            format!(
                "{} / {} / {}",
                ms(run.latency.p50_us),
                ms(run.latency.p99_us),
                ms(run.latency.max_us)
            ),
            match single {
                Some(s) => format!(
                    "single-row INSERT p50 / p99: {} / {}{}",
                    ms(s.latency.p50_us),
                    ms(s.latency.p99_us),
                    if run.failed > 0 {
                        format!("; {} TRANSACTIONs not acknowledged", run.failed)
                    } else {
                        String::new()
                    }
                ),
                None => String::new(),
            },
        ));
    }
    out
}
