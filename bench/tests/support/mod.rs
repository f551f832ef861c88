//! What every small bench test does: run the scenarios `cfg` selects against the debug
//! binaries, bounded in time.

use std::time::Duration;

pub async fn run(cfg: &ddb_bench::BenchConfig) -> ddb_bench::Report {
    let mut progress = Vec::new();
    tokio::time::timeout(Duration::from_secs(300), ddb_bench::run(cfg, &mut progress))
        .await
        .unwrap_or_else(|_| panic!("scenarios {:?} did not finish within 5 minutes", cfg.only))
        .unwrap_or_else(|e| panic!("scenarios {:?} failed: {e:#}", cfg.only))
}
