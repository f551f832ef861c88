//! The `bootstrap` scenario at a small size, against the debug binaries: checks that it runs,
//! that the log was trimmed and that the figures are sane (the real measurement is
//! `ddb-bench --only bootstrap` on release builds).

mod support;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_scenario_runs_on_a_small_database() {
    let cfg = ddb_bench::BenchConfig {
        window: Duration::from_secs(1),
        catch_up_ops: 0,
        lag_rate: 0,
        memory_rows: 0,
        index_rows: 0,
        index_reads: 0,
        clients: Vec::new(),
        bootstrap_rows: 30_000,
        only: vec!["bootstrap".into()],
        ..Default::default()
    };
    let report = support::run(&cfg).await;
    let b = report.bootstrap.as_ref().expect("bootstrap figures");
    assert_eq!(b.rows, 30_000);
    assert!(b.log_trimmed);
    assert!(b.snapshot_bytes > 0 && b.snapshot_seq > 0, "{b:?}");
    assert!(b.join_s > 0.0 && b.restored_rows_per_s > 0.0, "{b:?}");
    let table = ddb_bench::render(&report);
    eprintln!("{table}");
    assert!(
        table.contains("bootstrap: a new node joins 30000 rows"),
        "{table}"
    );
}
