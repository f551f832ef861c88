//! Where a write's time went on the master, from its own Prometheus histograms (the bench's
//! master serves them on a free port): read before and after a scenario, the difference is
//! that scenario's. It tells a slow write's cause apart (the store, JetStream's ack, the
//! commit) where the client sees only the total.

use crate::cluster::Cluster;
use ddb_testsupport::prometheus::{http_get, samples, series};
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One stage of the write path, as the master's metrics name it.
struct Stage {
    label: &'static str,
    metric: &'static str,
    /// Label values the series must carry (`name="value"`).
    labels: &'static [&'static str],
}

const STAGES: [Stage; 4] = [
    Stage {
        label: "execute",
        metric: "ddb_store_duration_seconds",
        labels: &[r#"phase="execute""#],
    },
    Stage {
        label: "append (JetStream ack)",
        metric: "ddb_append_duration_seconds",
        labels: &[],
    },
    Stage {
        label: "commit",
        metric: "ddb_store_duration_seconds",
        labels: &[r#"phase="commit""#],
    },
    Stage {
        label: "intake to reply",
        metric: "ddb_request_duration_seconds",
        labels: &[r#"op="INSERT""#],
    },
];

/// Slower than this counts as slow (a bucket bound of the node's histograms).
const SLOW_SECONDS: &str = "0.005";

/// A stage over the scenario: how many, mean, how many over 5 ms.
#[derive(Debug, Clone, Serialize)]
pub struct StageFigures {
    pub stage: &'static str,
    pub count: f64,
    pub mean_us: f64,
    pub over_5ms: f64,
}

/// The master's histogram samples at one moment.
pub struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// Reads the metrics page at `addr` (a node's, from [`metrics_addr`]).
    pub async fn of(addr: &str) -> anyhow::Result<Scrape> {
        let (_, page) = tokio::time::timeout(Duration::from_secs(10), http_get(addr, "/metrics"))
            .await
            .map_err(|_| anyhow::anyhow!("no metrics page from {addr} within 10 s"))??;
        Ok(Scrape(samples(&page)))
    }

    fn value(&self, name: &str, labels: &[&str]) -> f64 {
        series(&self.0, name, labels).sum()
    }

    /// Each stage between `self` (before) and `after`.
    pub fn stages_until(&self, after: &Scrape) -> Vec<StageFigures> {
        STAGES
            .iter()
            .map(|s| {
                let diff = |suffix: &str, extra: &[&str]| {
                    let series = format!("{}{suffix}", s.metric);
                    let labels: Vec<&str> = s
                        .labels
                        .iter()
                        .copied()
                        .chain(extra.iter().copied())
                        .collect();
                    after.value(&series, &labels) - self.value(&series, &labels)
                };
                let count = diff("_count", &[]);
                let sum = diff("_sum", &[]);
                let le = format!(r#"le="{SLOW_SECONDS}""#);
                let fast = diff("_bucket", &[&le]);
                StageFigures {
                    stage: s.label,
                    count,
                    mean_us: if count > 0.0 { sum / count * 1e6 } else { 0.0 },
                    over_5ms: count - fast,
                }
            })
            .collect()
    }
}

/// Where `node` serves its metrics, from its heartbeat.
pub async fn metrics_addr(c: &Cluster, node: &str) -> anyhow::Result<String> {
    let mut beats = c.client.heartbeats().await?;
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(hb) = beats.next().await {
            if hb.node == node {
                return hb.metrics;
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => anyhow::bail!("{node} announces no metrics address"),
        Err(_) => anyhow::bail!("no heartbeat from {node} within 10 s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_the_difference_of_two_scrapes() {
        let page = |count: f64, sum: f64, fast: f64| {
            format!(
                "# TYPE ddb_append_duration_seconds histogram\n\
                 ddb_append_duration_seconds_bucket{{node=\"master\",le=\"0.005\"}} {fast}\n\
                 ddb_append_duration_seconds_sum{{node=\"master\"}} {sum}\n\
                 ddb_append_duration_seconds_count{{node=\"master\"}} {count}\n\
                 ddb_store_duration_seconds_count{{phase=\"commit\",node=\"master\"}} 7\n\
                 ddb_store_duration_seconds_count{{phase=\"execute\",node=\"master\"}} 9\n"
            )
        };
        let before = Scrape(samples(&page(10.0, 0.002, 10.0)));
        let after = Scrape(samples(&page(110.0, 0.052, 107.0)));
        let stages = before.stages_until(&after);
        let append = stages
            .iter()
            .find(|s| s.stage.starts_with("append"))
            .unwrap();
        assert_eq!(append.count, 100.0);
        assert!((append.mean_us - 500.0).abs() < 1e-6, "{append:?}");
        assert_eq!(append.over_5ms, 3.0);
        // A series is matched by its whole name and its labels, not a prefix of either.
        let commit = stages.iter().find(|s| s.stage == "commit").unwrap();
        assert_eq!(commit.count, 0.0);
    }
}
