//! SQL Server runs leave nothing behind, pass or fail: whatever the test body did (even a
//! panic halfway), every database of the run's node name (its ddb databases and its catalog)
//! is dropped before the outcome is reported.

use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio_util::compat::TokioAsyncWriteCompatExt;

/// Runs `body`, then drops every SQL Server database the node `node` of `url` may have
/// created, then re-raises `body`'s panic, if any.
pub async fn run_then_drop(url: &str, node: &str, body: impl Future<Output = ()>) {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    match tokio::time::timeout(Duration::from_secs(120), drop_node_databases(url, node)).await {
        Ok(Ok(dropped)) => eprintln!("cleanup: dropped {dropped:?}"),
        Ok(Err(e)) => eprintln!("cleanup of {node}'s databases failed: {e}"),
        Err(_) => eprintln!("cleanup of {node}'s databases timed out"),
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The databases of node `node` on the server: its catalog, and those its physical pattern
/// names (prefix and suffix around `{db}`, `{node}` filled in).
fn is_ours(name: &str, node: &str, pattern: &str) -> bool {
    if name == format!("{node}{}", ddb::store::mssql::CATALOG_SUFFIX) {
        return true;
    }
    let filled = pattern.replace("{node}", node);
    let Some((prefix, suffix)) = filled.split_once("{db}") else {
        return false;
    };
    name.len() > prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
}

async fn drop_node_databases(url: &str, node: &str) -> Result<Vec<String>, String> {
    let config = ddb::store::mssql::parse_url(url).map_err(|e| e.to_string())?;
    let tds = config.tiberius(None).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(tds.get_addr())
        .await
        .map_err(|e| e.to_string())?;
    let mut client = tiberius::Client::connect(tds, tcp.compat_write())
        .await
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = client
        .simple_query("SELECT name FROM sys.databases WHERE database_id > 4")
        .await
        .map_err(|e| e.to_string())?
        .into_first_result()
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|r| r.get::<&str, _>(0).map(str::to_owned))
        .filter(|n| is_ours(n, node, &config.physical))
        .collect();
    let mut dropped = Vec::new();
    let mut failed = Vec::new();
    for name in names {
        let q = format!("[{}]", name.replace(']', "]]"));
        let single = format!(
            "ALTER DATABASE {q} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE {q}"
        );
        let plain = format!("DROP DATABASE {q}");
        let mut done = false;
        for sql in [single.as_str(), plain.as_str(), plain.as_str()] {
            match client.simple_query(sql).await {
                Ok(s) => {
                    if s.into_results().await.is_ok() {
                        done = true;
                        break;
                    }
                }
                Err(e) => eprintln!("cleanup: {sql}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if done {
            dropped.push(name);
        } else {
            failed.push(name);
        }
    }
    if failed.is_empty() {
        Ok(dropped)
    } else {
        Err(format!("could not drop {failed:?} (dropped {dropped:?})"))
    }
}

#[test]
fn names_of_a_node() {
    let p = ddb::store::mssql::DEFAULT_PHYSICAL;
    assert!(is_ours("ddbtest7__ddbcatalog", "ddbtest7", p));
    assert!(is_ours("ddbtest7_shop", "ddbtest7", p));
    assert!(!is_ours("ddbtest77_shop", "ddbtest7", p));
    assert!(!is_ours("ddbtest7qt_shop", "ddbtest7", p));
    assert!(!is_ours("other_shop", "ddbtest7", p));
    assert!(is_ours("x_ddbtest7_shop_y", "ddbtest7", "x_{node}_{db}_y"));
}
