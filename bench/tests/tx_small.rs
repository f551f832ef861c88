//! The `tx` scenario in brief (1-second windows), against the debug binaries: checks that it
//! runs and reports sane figures (the real measurement is `ddb-bench --only tx` on release
//! builds).

mod support;

use ddb_bench::tx::{Kind, CLIENTS, OPS_PER_TX};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tx_scenario_runs_briefly() {
    let cfg = ddb_bench::BenchConfig {
        window: Duration::from_secs(1),
        catch_up_ops: 0,
        lag_rate: 0,
        memory_rows: 0,
        index_rows: 0,
        index_reads: 0,
        clients: Vec::new(),
        bootstrap_rows: 0,
        only: vec!["tx".into()],
        ..Default::default()
    };
    let report = support::run(&cfg).await;
    let tx = report.tx.as_ref().expect("tx figures");
    assert_eq!(tx.ops_per_tx, OPS_PER_TX);
    assert_eq!(
        tx.single.iter().map(|s| s.clients).collect::<Vec<_>>(),
        CLIENTS,
        "single-row INSERTs measured beside, same client counts"
    );
    assert!(tx.single.iter().all(|s| s.acked > 0), "{tx:?}");
    for s in &tx.single {
        let us = s
            .machine_cpu_us_per_write
            .expect("CPU per write read from /proc");
        // Debug builds cost far more than release ones; this only checks it is a measurement.
        assert!(us > 0.0 && us < 1e6, "{s:?}");
        let by_process = s.cpu_per_write.expect("CPU per write, process by process");
        assert!((by_process.total_us() - us).abs() < 1e-6, "{s:?}");
    }
    assert_eq!(tx.runs.len(), CLIENTS.len() * 2, "{tx:?}");
    for run in &tx.runs {
        assert!(run.tx > 0, "{run:?}");
        assert_eq!(run.failed, 0, "every TRANSACTION acknowledged: {run:?}");
        assert!(
            (run.rows_per_s / run.tx_per_s - OPS_PER_TX as f64).abs() < 1e-6,
            "{run:?}"
        );
        assert!(run.replicated_rows_per_s > 0.0, "{run:?}");
        assert!(run.tx_per_entry >= 1.0 - 1e-9, "{run:?}");
    }
    assert!(tx.runs.iter().any(|r| r.kind == Kind::UpdateExpect));
    // The raw limits are measured with it, for the table.
    assert!(report.limits.js_pub_1_per_s > 0.0, "{:?}", report.limits);
    let table = ddb_bench::render(&report);
    eprintln!("{table}");
    assert!(
        table.contains("TRANSACTION of 10 INSERTs, 64 clients"),
        "{table}"
    );
    assert!(
        table.contains("TRANSACTION of 10 UPDATEs with expect, 1 client"),
        "{table}"
    );
    assert!(
        table.contains("single-row INSERT, 64 clients, same run"),
        "{table}"
    );
}
