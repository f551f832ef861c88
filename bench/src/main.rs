//! `ddb-bench`: see the README's "Performance" section.

use clap::Parser;
use std::time::Duration;

// The nodes' allocator: the load generator (and the raw limits, measured from this process)
// should not be the part that is slow at allocating.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    about = "Benchmarks ddb on its own local cluster, beside the raw NATS/JetStream/SQLite limits"
)]
struct Args {
    /// Seconds each timed measurement runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Writes made while a slave is down, for the catch-up figure.
    #[arg(long, default_value_t = 100_000)]
    catch_up_ops: i64,
    /// Offered load for the lag figure, ops/s.
    #[arg(long, default_value_t = 10_000)]
    lag_rate: u64,
    /// Rows replicated before reading peak memory.
    #[arg(long, default_value_t = 1_000_000)]
    memory_rows: i64,
    /// Rows of the `index` scenario's table (a small number for a quick correctness run).
    #[arg(long, default_value_t = 1_000_000)]
    index_rows: i64,
    /// Point SEARCHes of each kind (by key, by indexed column) the `index` scenario times.
    #[arg(long, default_value_t = 3000)]
    index_reads: usize,
    /// Client counts for the write throughput figures.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Rows of the `bootstrap` scenario's database (a new node joins it from a snapshot).
    #[arg(long, default_value_t = 1_000_000)]
    bootstrap_rows: i64,
    /// Rows the `bulk` scenario loads (counted when applied on both slaves).
    #[arg(long, default_value_t = 1_000_000)]
    bulk_rows: i64,
    /// Rows per INSERT in the `bulk` scenario (at most 10,000, ddb's limit).
    #[arg(long, default_value_t = 5_000)]
    bulk_rows_per_insert: i64,
    /// Rows the `scan` scenario pages through (it reuses the `bulk` table when that has as many).
    #[arg(long, default_value_t = 1_000_000)]
    scan_rows: i64,
    /// Page size (`limit`) of the `scan` scenario.
    #[arg(long, default_value_t = 10_000)]
    scan_page: i64,
    /// Seconds the `tail` scenario's single client writes.
    #[arg(long, default_value_t = 60)]
    tail_seconds: u64,
    /// Rows the `tail` scenario's table holds before its client begins (loaded as `bulk`
    /// loads): single writes into a big table, with its snapshots.
    #[arg(long, default_value_t = 0)]
    tail_rows: i64,
    /// Run only these scenarios (comma-separated): limits, throughput, lag, catchup, reads,
    /// memory, index, tx, failover, bootstrap, bulk, scan, tail. Default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench-report.json")]
    out: std::path::PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    ddb_node_cli::init_tracing();
    let args = Args::parse();
    let cfg = ddb_bench::BenchConfig {
        window: Duration::from_secs(args.seconds),
        catch_up_ops: args.catch_up_ops,
        lag_rate: args.lag_rate,
        memory_rows: args.memory_rows,
        index_rows: args.index_rows,
        index_reads: args.index_reads,
        clients: args.clients,
        bootstrap_rows: args.bootstrap_rows,
        bulk_rows: args.bulk_rows,
        bulk_rows_per_insert: args.bulk_rows_per_insert,
        scan_rows: args.scan_rows,
        scan_page: args.scan_page,
        tail_window: Duration::from_secs(args.tail_seconds),
        tail_rows: args.tail_rows,
        only: args.only,
    };
    let report = ddb_bench::run(&cfg, &mut std::io::stderr()).await?;
    println!("{}", ddb_bench::render(&report));
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)?;
    eprintln!("JSON report written to {}", args.out.display());
    Ok(())
}
