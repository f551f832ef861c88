//! `ddb-bench`: spawns its own nats-server, master and two slaves (release binaries), measures
//! ddb and, in the same run, the raw limits it is built on, and prints them side by side.

pub mod cluster;
pub mod limits;
pub mod scenarios;
pub mod stats;
pub mod tx;

use serde::Serialize;
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub window: Duration,
    pub catch_up_ops: i64,
    pub lag_rate: u64,
    pub memory_rows: i64,
    /// Rows of the `index` scenario's table, and point SEARCHes of each kind it times.
    pub index_rows: i64,
    pub index_reads: usize,
    pub clients: Vec<usize>,
    /// Scenarios to run (all when empty): limits, throughput, lag, catchup, reads, memory,
    /// index, tx, failover.
    pub only: Vec<String>,
}

impl BenchConfig {
    fn wants(&self, what: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == what)
    }
}

#[derive(Debug, Serialize, Default)]
pub struct Report {
    pub limits: limits::Limits,
    pub throughput: Vec<scenarios::Throughput>,
    pub lag: Option<scenarios::Lag>,
    pub catch_up: Option<scenarios::CatchUp>,
    pub reads: Vec<scenarios::Reads>,
    pub memory: Option<scenarios::Memory>,
    pub index: Option<scenarios::Index>,
    pub failover: Option<scenarios::Failover>,
    pub tx: Option<tx::Tx>,
}

pub async fn run(cfg: &BenchConfig, progress: &mut dyn Write) -> anyhow::Result<Report> {
    let mut c = cluster::Cluster::start().await?;
    let say = |p: &mut dyn Write, s: &str| {
        let _ = writeln!(p, "» {s}");
    };
    let mut r = Report::default();
    if cfg.wants("limits") || cfg.wants("tx") {
        say(progress, "limits: raw NATS, JetStream, SQLite");
        r.limits = limits::measure(&c.nats.url(), c.dir.path(), cfg.window).await?;
    }
    if cfg.wants("throughput") {
        for &n in &cfg.clients {
            say(progress, &format!("replicated INSERT, {n} clients"));
            r.throughput
                .push(scenarios::throughput(&c, n, cfg.window).await?);
        }
    }
    if cfg.wants("lag") {
        say(
            progress,
            &format!("replication lag at {} ops/s offered", cfg.lag_rate),
        );
        r.lag = Some(scenarios::lag(&c, cfg.lag_rate, cfg.window).await?);
    }
    if cfg.wants("catchup") || cfg.wants("reads") {
        say(
            progress,
            &format!("catch-up after {} writes", cfg.catch_up_ops),
        );
        r.catch_up = Some(scenarios::catch_up(&mut c, cfg.catch_up_ops).await?);
    }
    if cfg.wants("reads") {
        for n in [1, 64] {
            say(progress, &format!("point SEARCH on a slave, {n} clients"));
            r.reads.push(scenarios::reads(&c, n, cfg.window).await?);
        }
    }
    if cfg.wants("memory") {
        say(
            progress,
            &format!("memory after {} rows replicated", cfg.memory_rows),
        );
        r.memory = Some(scenarios::memory(&c, cfg.memory_rows).await?);
    }
    if cfg.wants("index") {
        say(
            progress,
            &format!(
                "index: {} rows, point SEARCH by key vs by an indexed column, {} each; scan",
                cfg.index_rows, cfg.index_reads
            ),
        );
        r.index = Some(scenarios::index(&c, cfg.index_rows, cfg.index_reads).await?);
    }
    if cfg.wants("tx") {
        say(progress, "TRANSACTIONs of 10 writes, 1 and 64 clients");
        r.tx = Some(tx::run(&c, cfg.window, &r.throughput).await?);
    }
    if cfg.wants("failover") {
        say(progress, "failover: kill -9 of the master");
        r.failover = Some(scenarios::failover(&mut c).await?);
    }
    Ok(r)
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// The report as a Markdown table, each ddb figure beside its limit.
pub fn render(r: &Report) -> String {
    let l = &r.limits;
    let mut out = String::new();
    let mut row = |a: &str, b: String, c: String| {
        out.push_str(&format!("| {a} | {b} | {c} |\n"));
    };
    row(
        "measure",
        "ddb".into(),
        "limit in the same run (ratio)".into(),
    );
    row("---", "---".into(), "---".into());
    for t in &r.throughput {
        row(
            &format!("INSERT, {} clients: acked/s", t.clients),
            format!("{:.0}", t.acked_per_s),
            format!(
                "JetStream pipelined {:.0}/s ({:.2}); NATS req-reply 64 in flight {:.0}/s",
                l.js_pub_pipelined_per_s,
                t.acked_per_s / l.js_pub_pipelined_per_s.max(1.0),
                l.nats_req_64_per_s
            ),
        );
        row(
            &format!("INSERT, {} clients: ops per log entry", t.clients),
            format!("{:.1}", t.ops_per_entry),
            String::new(),
        );
        row(
            &format!("INSERT, {} clients: applied on both slaves/s", t.clients),
            format!("{:.0}", t.replicated_per_s),
            format!("SQLite batched {:.0}/s", l.sqlite_batched_per_s),
        );
        row(
            &format!("INSERT, {} clients: latency p50 / p99 / max", t.clients),
            format!(
                "{} / {} / {}",
                ms(t.latency.p50_us),
                ms(t.latency.p99_us),
                ms(t.latency.max_us)
            ),
            if t.clients == 1 {
                let floor = l.nats_req_1.p50_us + l.js_pub_1.p50_us;
                format!(
                    "req-reply p50 {} + JetStream ack p50 {} = {} ({:.2}×)",
                    ms(l.nats_req_1.p50_us),
                    ms(l.js_pub_1.p50_us),
                    ms(floor),
                    t.latency.p50_us as f64 / floor.max(1) as f64
                )
            } else {
                String::new()
            },
        );
    }
    if let Some(lag) = &r.lag {
        row(
            &format!("lag ack→applied at {} ops/s: p50 / p99", lag.offered_per_s),
            format!("{} / {}", ms(lag.lag.p50_us), ms(lag.lag.p99_us)),
            format!("includes one req-reply (p50 {})", ms(l.nats_req_1.p50_us)),
        );
    }
    if let Some(cu) = &r.catch_up {
        row(
            &format!("catch-up of {} writes", cu.ops),
            format!("{:.0} ops/s ({:.2} s)", cu.ops_per_s, cu.seconds),
            format!("SQLite batched {:.0}/s", l.sqlite_batched_per_s),
        );
    }
    for rd in &r.reads {
        row(
            &format!("point SEARCH on a slave, {} clients", rd.clients),
            format!("{:.0}/s (p50 {})", rd.per_s, ms(rd.latency.p50_us)),
            format!("NATS req-reply 1 in flight p50 {}", ms(l.nats_req_1.p50_us)),
        );
    }
    let mib = |m: Option<f64>| m.map_or("?".into(), |v| format!("{v:.0}"));
    if let Some(m) = &r.memory {
        row(
            &format!("peak RSS after {} rows (MiB)", m.rows),
            format!(
                "master {} / slave1 {} / slave2 {}",
                mib(m.master_mib),
                mib(m.slave1_mib),
                mib(m.slave2_mib)
            ),
            String::new(),
        );
    }
    if let Some(ix) = &r.index {
        let raw = if l.sqlite_point_read.count > 0 {
            format!(
                "raw SQLite point read by key p50 {} µs, NATS req-reply p50 {} µs",
                l.sqlite_point_read.p50_us, l.nats_req_1.p50_us
            )
        } else {
            "raw SQLite point read: run with limits".into()
        };
        row(
            &format!(
                "{} rows: SEARCH by key / by indexed column, 1 client, p50",
                ix.rows
            ),
            format!("{} / {}", ms(ix.by_key.p50_us), ms(ix.by_index.p50_us)),
            format!(
                "indexed/key {:.2}× ({} target ≤ 3×); {raw}",
                ix.ratio_p50,
                if ix.ratio_p50 <= 3.0 {
                    "meets"
                } else {
                    "MISSES"
                }
            ),
        );
        row(
            &format!(
                "{} rows: SEARCH by key / by indexed column, 1 client, p99",
                ix.rows
            ),
            format!("{} / {}", ms(ix.by_key.p99_us), ms(ix.by_index.p99_us)),
            format!(
                "{} requests each; same column without its index p50 {}",
                ix.by_key.count,
                ms(ix.unindexed.p50_us)
            ),
        );
        row(
            &format!("CREATE_INDEX on {} rows: master / both slaves", ix.rows),
            format!(
                "{:.2} s / {:.2} s",
                ix.create_index_s, ix.create_index_replicated_s
            ),
            format!("loaded at {:.0} rows/s", ix.load_rows_per_s),
        );
        row(
            "scan: paging a slave, limit 10000",
            format!(
                "{:.0} rows/s ({} pages, {:.2} s)",
                ix.scan_rows_per_s, ix.scan_pages, ix.scan_s
            ),
            String::new(),
        );
    }
    for (a, b, c) in r.tx.as_ref().map(|t| tx::rows(t, l)).unwrap_or_default() {
        row(&a, b, c);
    }
    if let Some(f) = &r.failover {
        row(
            "failover: kill -9 → first write via a slave",
            format!("{} ms ({})", f.first_write_through_slave_ms, f.slave),
            "default settings: heartbeat 1 s, failover after 3 s".into(),
        );
    }
    if l.sqlite_point_read.count > 0 {
        row(
            "raw SQLite point read by key: p50 / p99",
            format!(
                "{} µs / {} µs",
                l.sqlite_point_read.p50_us, l.sqlite_point_read.p99_us
            ),
            String::new(),
        );
    }
    row(
        "raw SQLite insert (autocommit / batched 1000)",
        format!(
            "{:.0}/s / {:.0}/s",
            l.sqlite_autocommit_per_s, l.sqlite_batched_per_s
        ),
        String::new(),
    );
    row(
        "raw JetStream publish-with-ack (1 in flight / pipelined)",
        format!(
            "{:.0}/s / {:.0}/s",
            l.js_pub_1_per_s, l.js_pub_pipelined_per_s
        ),
        String::new(),
    );
    out
}
