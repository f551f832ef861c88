//! The `index` scenario at a small size, against the debug binaries: checks that it runs and
//! reports sane figures (the real measurement is `ddb-bench --only index` on release builds).

mod support;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_scenario_runs_on_a_small_table() {
    let cfg = ddb_bench::BenchConfig {
        window: Duration::from_secs(1),
        catch_up_ops: 0,
        lag_rate: 0,
        memory_rows: 0,
        index_rows: 25_000,
        index_reads: 200,
        clients: Vec::new(),
        bootstrap_rows: 0,
        only: vec!["index".into()],
        ..Default::default()
    };
    let report = support::run(&cfg).await;
    let ix = report.index.as_ref().expect("index figures");
    assert_eq!(ix.rows, 25_000);
    assert_eq!(ix.scan_rows, 25_000);
    assert_eq!(ix.scan_pages, 3, "25,000 rows in pages of 10,000");
    assert_eq!(ix.by_key.count, 200);
    assert_eq!(ix.by_index.count, 200);
    assert!(ix.ratio_p50 > 0.0 && ix.ratio_p50.is_finite(), "{ix:?}");
    let table = ddb_bench::render(&report);
    eprintln!("{table}");
    assert!(
        table.contains("SEARCH by key / by indexed column"),
        "{table}"
    );
    assert!(table.contains("scan: paging a slave"), "{table}");
}
