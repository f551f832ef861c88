//! `ddb-bench`: spawns its own nats-server, master and two slaves (release binaries), measures
//! ddb and, in the same run, the raw limits it is built on, and prints them side by side.

pub mod bootstrap;
pub mod cluster;
pub mod cpu;
pub mod limits;
pub mod perf;
pub mod scenarios;
pub mod stages;
pub mod stats;
pub mod tx;

use ddb::client::Target;
use serde::Serialize;
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct BenchConfig {
    pub window: Duration,
    pub catch_up_ops: i64,
    pub lag_rate: u64,
    pub memory_rows: i64,
    /// Rows of the `index` scenario's table, and point SEARCHes of each kind it times.
    pub index_rows: i64,
    pub index_reads: usize,
    pub clients: Vec<usize>,
    /// Rows of the `bootstrap` scenario's database.
    pub bootstrap_rows: i64,
    /// Rows the `bulk` scenario loads, and rows per INSERT.
    pub bulk_rows: i64,
    pub bulk_rows_per_insert: i64,
    /// Rows the `scan` scenario pages through (the `bulk` table when it has as many), and
    /// its page size (`limit`).
    pub scan_rows: i64,
    pub scan_page: i64,
    /// How long the `tail` scenario's client writes.
    pub tail_window: Duration,
    /// Rows the `tail` scenario's table holds before its client begins.
    pub tail_rows: i64,
    /// Scenarios to run (all when empty): limits, throughput, lag, catchup, reads, memory,
    /// index, tx, failover, bootstrap, bulk, scan, tail.
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
    pub bootstrap: Option<bootstrap::Bootstrap>,
    pub tail: Option<perf::Tail>,
    pub bulk: Option<perf::Bulk>,
    pub scan: Option<perf::Scan>,
}

pub async fn run(cfg: &BenchConfig, progress: &mut dyn Write) -> anyhow::Result<Report> {
    let say = |p: &mut dyn Write, s: &str| {
        let _ = writeln!(p, "» {s}");
    };
    let mut r = Report::default();
    // On a cluster of its own (a log limited in size, another prefix).
    if cfg.wants("bootstrap") {
        say(
            progress,
            &format!(
                "bootstrap: a new node joins {} rows from a snapshot",
                cfg.bootstrap_rows
            ),
        );
        r.bootstrap = Some(bootstrap::bootstrap(cfg.bootstrap_rows).await?);
    }
    if !cfg.only.is_empty() && cfg.only.iter().all(|o| o == "bootstrap") {
        return Ok(r);
    }
    let mut c = cluster::Cluster::start().await?;
    let needs_limits = ["limits", "tx", "reads", "bulk", "tail"];
    if needs_limits.iter().any(|s| cfg.wants(s)) {
        say(progress, "limits: raw NATS, JetStream, SQLite");
        r.limits = limits::measure(&c.nats.url(), c.nats.pid(), c.dir.path(), cfg.window).await?;
    }
    // Before anything else loads the machine or the cluster: one client alone.
    if cfg.wants("tail") {
        say(
            progress,
            &format!(
                "tail: 1 client writing for {} s",
                cfg.tail_window.as_secs_f64()
            ),
        );
        r.tail = Some(perf::tail(&c, cfg.tail_window, cfg.tail_rows).await?);
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
        let caught_up = scenarios::catch_up(&mut c, cfg.catch_up_ops).await?;
        // Reads go to slave1 too: under load it can still be applying the table's rows,
        // and a read of a database it has not seen yet is an error, not a measurement.
        c.wait_applied("slave1", caught_up.entries_behind).await?;
        r.catch_up = Some(caught_up);
    }
    if cfg.wants("reads") {
        for target in [Target::Node("slave1".into()), Target::AnyReplica] {
            for n in [1, 64] {
                let via = match &target {
                    Target::AnyReplica => "any replica",
                    _ => "slave1",
                };
                say(
                    progress,
                    &format!("point SEARCH by key, {via}, {n} clients"),
                );
                r.reads
                    .push(scenarios::reads(&c, &target, cfg.catch_up_ops, n, cfg.window).await?);
            }
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
    if cfg.wants("bulk") {
        say(
            progress,
            &format!(
                "bulk: {} rows as {}-row INSERTs, applied on both slaves",
                cfg.bulk_rows, cfg.bulk_rows_per_insert
            ),
        );
        r.bulk = Some(perf::bulk(&c, "bulkdb", cfg.bulk_rows, cfg.bulk_rows_per_insert).await?);
    }
    if cfg.wants("scan") {
        let db = if r.bulk.is_some() && cfg.bulk_rows == cfg.scan_rows {
            "bulkdb"
        } else {
            say(progress, &format!("scan: loading {} rows", cfg.scan_rows));
            perf::bulk(&c, "scandb", cfg.scan_rows, 5_000).await?;
            "scandb"
        };
        say(
            progress,
            &format!(
                "scan: paging through {} rows on a slave, limit {}",
                cfg.scan_rows, cfg.scan_page
            ),
        );
        r.scan = Some(perf::scan(&c, db, cfg.scan_rows, cfg.scan_page).await?);
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
    let raw_cpu = |c: Option<cpu::CpuPerOp>| {
        c.map_or_else(
            || "n/a".to_owned(),
            |c| {
                format!(
                    "nats-server {:.1} + benchmark {:.1} = {:.1} µs",
                    c.nats_server_us,
                    c.clients_us,
                    c.total_us()
                )
            },
        )
    };
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
            &format!(
                "INSERT, {} clients: CPU per acknowledged write, all processes",
                t.clients
            ),
            t.machine_cpu_us_per_write
                .map_or_else(|| "n/a".into(), |us| format!("{us:.1} µs")),
            t.cpu_per_write.map_or_else(
                || "nats-server, master, slaves and clients together".into(),
                |c| {
                    format!(
                        "nats-server {:.1}, master {:.1}, both slaves {:.1}, clients {:.1} µs",
                        c.nats_server_us, c.master_us, c.slaves_us, c.clients_us
                    )
                },
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
            &format!("point SEARCH by key, {}, {} clients", rd.via, rd.clients),
            format!("{:.0}/s (p50 {})", rd.per_s, ms(rd.latency.p50_us)),
            if rd.clients == 1 {
                format!(
                    "NATS req-reply 1 in flight p50 {} ({:.2}× the p50)",
                    ms(l.nats_req_1.p50_us),
                    rd.latency.p50_us as f64 / l.nats_req_1.p50_us.max(1) as f64
                )
            } else {
                format!(
                    "NATS req-reply 64 in flight {:.0}/s ({:.2}); to 3 responders in a queue group {:.0}/s ({:.2})",
                    l.nats_req_64_per_s,
                    rd.per_s / l.nats_req_64_per_s.max(1.0),
                    l.nats_req_64_queue_of_3_per_s,
                    rd.per_s / l.nats_req_64_queue_of_3_per_s.max(1.0)
                )
            },
        );
    }
    for rd in r.reads.iter().filter(|rd| rd.clients > 1) {
        let Some(c) = rd.cpu_per_read else { continue };
        row(
            &format!(
                "point SEARCH by key, {}, {} clients: CPU per read",
                rd.via, rd.clients
            ),
            format!(
                "nats-server {:.1} + nodes {:.1} + clients {:.1} = {:.1} µs",
                c.nats_server_us,
                c.nodes_us(),
                c.clients_us,
                c.total_us()
            ),
            format!(
                "raw req-reply 64 in flight: {}; to 3 responders: {}",
                raw_cpu(l.nats_req_64_cpu),
                raw_cpu(l.nats_req_64_queue_of_3_cpu)
            ),
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
    for (a, b, c) in r
        .bootstrap
        .as_ref()
        .map(bootstrap::rows)
        .unwrap_or_default()
    {
        row(&a, b, c);
    }
    for (a, b, c) in perf::rows(r) {
        row(&a, b, c);
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
    let ack = |s: &stats::Summary| {
        format!(
            "{:.2} / {:.2} / {:.2} ms",
            s.p50_us as f64 / 1000.0,
            s.p999_us as f64 / 1000.0,
            s.max_us as f64 / 1000.0
        )
    };
    row(
        "raw JetStream ack, 1 in flight: p50 / p99.9 / max",
        ack(&l.js_pub_1),
        format!(
            "while 2 pull consumers read each message: {}",
            ack(&l.js_pub_1_read_by_2)
        ),
    );
    row(
        "raw CPU per message, 1 in flight: request-reply / JetStream ack",
        format!(
            "{} / {}",
            raw_cpu(l.nats_req_1_cpu),
            raw_cpu(l.js_pub_1_cpu)
        ),
        format!(
            "JetStream ack while 2 pull consumers read: {}",
            raw_cpu(l.js_pub_1_read_by_2_cpu)
        ),
    );
    out
}
