//! Prometheus metrics (`--metrics-addr`): what a node counts and the small HTTP endpoint that
//! serves them. The exposition text comes from `metrics-exporter-prometheus`; the endpoint
//! answers `GET /metrics` (anything else is 404) and nothing more, so it needs no HTTP stack.
//!
//! Without `--metrics-addr` no recorder is installed and every `metrics::` call is a no-op.

use crate::error::{DdbError, ErrorCode};
use crate::heartbeat::{Heartbeat, Mode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Requests by op and outcome (`ok` or the error code).
pub const REQUESTS: &str = "ddb_requests_total";
/// Intake to reply, by op.
pub const REQUEST_SECONDS: &str = "ddb_request_duration_seconds";
/// Store time of a write batch (`execute`, `commit`) or of an apply (`apply`).
pub const STORE_SECONDS: &str = "ddb_store_duration_seconds";
/// Appending one entry to the log, until JetStream acknowledged it.
pub const APPEND_SECONDS: &str = "ddb_append_duration_seconds";
/// Writes committed together in one transaction and one log entry.
pub const GROUP_COMMIT_OPS: &str = "ddb_group_commit_ops";
/// Store failures that are not the client's doing (internal, unavailable, timeout).
pub const STORE_ERRORS: &str = "ddb_store_errors_total";
/// NATS connection events (connected, disconnected, ...); counted where connections are made.
pub use crate::connect::NATS_EVENTS;
/// Per database: the last log entry applied here, and the last one seen in the log.
pub const DB_APPLIED_SEQ: &str = "ddb_db_applied_seq";
pub const DB_LOG_SEQ: &str = "ddb_db_log_seq";

/// Binds the endpoint and installs the recorder; `node` labels every series.
pub(crate) async fn start(
    addr: &str,
    node: &str,
) -> Result<(TcpListener, PrometheusHandle), DdbError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| DdbError::bad_request(format!("cannot serve metrics on {addr}: {e}")))?;
    let latency = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0,
    ];
    let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
    let handle = PrometheusBuilder::new()
        .add_global_label("node", node)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(GROUP_COMMIT_OPS.into()), &sizes))
        .map_err(|e| DdbError::internal(format!("metrics buckets: {e}")))?
        .install_recorder()
        .map_err(|e| DdbError::internal(format!("cannot install the metrics recorder: {e}")))?;
    describe();
    Ok((listener, handle))
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REQUESTS,
        "Requests answered, by op and outcome (ok or error code)"
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "From intake to reply, by op"
    );
    describe_histogram!(
        STORE_SECONDS,
        Unit::Seconds,
        "Store time of a write batch or an apply, by phase"
    );
    describe_histogram!(
        APPEND_SECONDS,
        Unit::Seconds,
        "Appending one entry to the log"
    );
    describe_histogram!(
        GROUP_COMMIT_OPS,
        "Writes committed together in one log entry"
    );
    describe_counter!(
        STORE_ERRORS,
        "Store failures that are not the client's doing, by code"
    );
    describe_counter!(NATS_EVENTS, "NATS connection events, by event");
    describe_gauge!(
        DB_APPLIED_SEQ,
        "The last log entry applied to this database here"
    );
    describe_gauge!(
        DB_LOG_SEQ,
        "The last log entry of this database seen in the log"
    );
    describe_gauge!(
        "ddb_applied_seq",
        "Every log entry up to this stream seq is applied here"
    );
    describe_gauge!(
        "ddb_log_seq",
        "The log's last stream seq as this node last saw it"
    );
    describe_gauge!("ddb_lag", "log_seq - applied_seq");
    describe_gauge!(
        "ddb_broken_databases",
        "Databases this node stopped applying"
    );
    describe_gauge!(
        "ddb_mode",
        "1 for the node's current mode (master, replica, failover, starting)"
    );
    describe_gauge!("ddb_uptime_seconds", "Seconds since the node started");
}

/// The series every reply updates (requests by op and outcome, intake to reply by op), each
/// looked up in the recorder once: a lookup builds and hashes the series' key, which took ~4%
/// of the master's CPU at 50k writes/s when done per reply.
#[derive(Default)]
pub(crate) struct RequestSeries {
    by_op: std::sync::Mutex<HashMap<&'static str, OpSeries>>,
}

struct OpSeries {
    seconds: metrics::Histogram,
    by_outcome: HashMap<&'static str, metrics::Counter>,
}

impl RequestSeries {
    pub fn record(&self, op: &'static str, outcome: &'static str, took: Duration) {
        let mut by_op = crate::node::locks::lock(&self.by_op);
        let series = by_op.entry(op).or_insert_with(|| OpSeries {
            seconds: metrics::histogram!(REQUEST_SECONDS, "op" => op),
            by_outcome: HashMap::new(),
        });
        series.seconds.record(took.as_secs_f64());
        series
            .by_outcome
            .entry(outcome)
            .or_insert_with(|| metrics::counter!(REQUESTS, "op" => op, "outcome" => outcome))
            .increment(1);
    }
}

/// A store error worth an operator's attention (not a client mistake).
pub fn store_error(e: &DdbError) {
    if matches!(
        e.code,
        ErrorCode::Internal | ErrorCode::Unavailable | ErrorCode::Timeout
    ) {
        metrics::counter!(STORE_ERRORS, "code" => e.code.as_str()).increment(1);
    }
}

/// The gauges that follow the node's state, from the heartbeat it is about to send.
pub(crate) fn refresh(hb: &Heartbeat) {
    metrics::gauge!("ddb_applied_seq").set(hb.applied_seq as f64);
    metrics::gauge!("ddb_log_seq").set(hb.log_seq as f64);
    metrics::gauge!("ddb_lag").set(hb.lag as f64);
    metrics::gauge!("ddb_broken_databases").set(hb.broken.len() as f64);
    for m in [Mode::Master, Mode::Replica, Mode::Failover, Mode::Starting] {
        let name = format!("{m:?}").to_ascii_lowercase();
        metrics::gauge!("ddb_mode", "mode" => name).set(f64::from(u8::from(m == hb.mode)));
    }
    metrics::gauge!("ddb_uptime_seconds").set(hb.uptime_ms as f64 / 1000.0);
}

/// Serves `GET /metrics` until `stop`.
pub(crate) async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    stop: CancellationToken,
) {
    loop {
        let (mut socket, _) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            // A scrape request fits in one small read; a client that sends nothing is dropped.
            let mut buf = [0u8; 2048];
            let n = match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let response = if head.starts_with("GET ")
                && (path == "/metrics" || path.starts_with("/metrics?"))
            {
                let body = handle.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 23\r\nConnection: close\r\n\r\nmetrics are at /metrics".to_owned()
            };
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// The local address actually bound (a port of 0 picks a free one).
pub(crate) fn bound(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}

#[cfg(test)]
mod tests {
    use super::super::test_node::test_node;
    use super::super::{Mode, Role};
    use super::*;
    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// Series as `name{label=value,...}` with their last value (counters: their total).
    #[derive(Default, Clone)]
    struct Seen(Arc<Mutex<BTreeMap<String, f64>>>);

    struct Series(Seen, String);

    impl Seen {
        fn series(&self, key: &Key) -> Arc<Series> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            Arc::new(Series(
                self.clone(),
                format!("{}{{{}}}", key.name(), labels.join(",")),
            ))
        }

        fn get(&self, series: &str) -> Option<f64> {
            self.0.lock().unwrap().get(series).copied()
        }

        fn names(&self) -> Vec<String> {
            self.0.lock().unwrap().keys().cloned().collect()
        }
    }

    impl CounterFn for Series {
        fn increment(&self, by: u64) {
            *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += by as f64;
        }
        fn absolute(&self, value: u64) {
            self.0
                 .0
                .lock()
                .unwrap()
                .insert(self.1.clone(), value as f64);
        }
    }

    impl GaugeFn for Series {
        fn increment(&self, by: f64) {
            *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += by;
        }
        fn decrement(&self, by: f64) {
            *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() -= by;
        }
        fn set(&self, value: f64) {
            self.0 .0.lock().unwrap().insert(self.1.clone(), value);
        }
    }

    impl Recorder for Seen {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.series(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.series(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn store_errors_count_only_failures_that_are_not_the_clients() {
        let seen = Seen::default();
        metrics::with_local_recorder(&seen, || {
            for code in ErrorCode::ALL {
                store_error(&DdbError::new(code, "x"));
            }
            store_error(&DdbError::internal("again"));
        });
        assert_eq!(
            seen.names(),
            [
                "ddb_store_errors_total{code=internal}",
                "ddb_store_errors_total{code=timeout}",
                "ddb_store_errors_total{code=unavailable}",
            ]
        );
        assert_eq!(seen.get("ddb_store_errors_total{code=internal}"), Some(2.0));
    }

    #[tokio::test]
    async fn refresh_sets_the_lag_and_exactly_one_mode() {
        let t = test_node(Role::Slave).await;
        t.node.progress.advance_to(7);
        t.node.progress.note_log_end(12);
        t.node.set_mode(Mode::Failover);
        let hb = super::super::liveness::heartbeat(&t.node);
        let seen = Seen::default();
        metrics::with_local_recorder(&seen, || refresh(&hb));
        assert_eq!(seen.get("ddb_applied_seq{}"), Some(7.0));
        assert_eq!(seen.get("ddb_log_seq{}"), Some(12.0));
        assert_eq!(seen.get("ddb_lag{}"), Some(5.0));
        assert_eq!(seen.get("ddb_broken_databases{}"), Some(0.0));
        for (mode, on) in [
            ("failover", 1.0),
            ("master", 0.0),
            ("replica", 0.0),
            ("starting", 0.0),
        ] {
            assert_eq!(
                seen.get(&format!("ddb_mode{{mode={mode}}}")),
                Some(on),
                "{mode}"
            );
        }
    }
}
