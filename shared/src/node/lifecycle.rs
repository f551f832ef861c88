//! A node's life: open the store, NATS and the log, start the tasks (log reader, intake,
//! writers, liveness, micro protocol, metrics), wait for shutdown, then stop them in order.

use super::applier;
use super::config::{NodeConfig, NodeError};
use super::intake;
use super::liveness;
use super::log_port::LogPort;
use super::metrics;
use super::micro;
use super::state::{Node, NodeRef};
use super::writer::Writers;
use crate::heartbeat::{Mode, Role};
use crate::log::Log;
use crate::subjects::{validate_node_name, Subjects};
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs a node until `shutdown` resolves, then stops intake, finishes the ops in hand, drains
/// NATS and closes the store.
pub async fn run(
    role: Role,
    cfg: NodeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), NodeError> {
    validate_node_name(&cfg.name).map_err(NodeError::Config)?;
    if cfg.max_batch == 0 {
        return Err(NodeError::Config("max batch must be at least 1".into()));
    }
    // Bound first: a port already taken is a configuration error, reported before anything runs.
    let served = match &cfg.metrics_addr {
        Some(addr) => Some(
            metrics::start(addr, &cfg.name)
                .await
                .map_err(|e| NodeError::Config(e.message))?,
        ),
        None => None,
    };
    let store_options = crate::store::StoreOptions {
        query_timeout: cfg.query_timeout,
        op_id_window: cfg.op_id_window,
        op_id_max: cfg.op_id_max,
        sqlite_page_size: cfg.sqlite_page_size,
        ..Default::default()
    };
    let store = crate::store::open(&cfg.store, &cfg.name, &store_options)
        .await
        .map_err(NodeError::Store)?;
    let mut nats_opts = cfg.nats.clone();
    nats_opts
        .name
        .get_or_insert_with(|| format!("ddb-{}", cfg.name));
    let client = nats_opts.connect().await.map_err(NodeError::Nats)?;
    let log = Log::new(client.clone(), Subjects::new(&cfg.prefix));
    // The stream may not be reachable yet (JetStream starting, cluster electing): retry.
    let mut attempt = 0u32;
    loop {
        match log.ensure_stream(&cfg.stream).await {
            Ok(()) => break,
            Err(e) if attempt < 30 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "log stream not ready; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(NodeError::Log(e)),
        }
    }
    let metrics_addr = served.as_ref().and_then(|(l, _)| metrics::bound(l));
    let log: Arc<dyn LogPort> = Arc::new(log);
    let node = Node::new(role, cfg, store, client, log, metrics_addr)
        .await
        .map_err(NodeError::Store)?;
    if let Some(addr) = metrics_addr {
        tracing::info!(node = %node.name(), %addr, "serving Prometheus metrics at /metrics");
    }
    serve(node, shutdown, served).await;
    Ok(())
}

/// Runs every task until `shutdown`, then stops them in order.
async fn serve(
    node: NodeRef,
    shutdown: impl Future<Output = ()> + Send,
    metrics: Option<(TcpListener, PrometheusHandle)>,
) {
    let stop = CancellationToken::new();
    let stop_intake = CancellationToken::new();
    let writers = Arc::new(Writers::default());
    let applier = tokio::spawn(applier::run(node.clone(), stop.clone()));
    let liveness = tokio::spawn(liveness::run(node.clone(), stop.clone()));
    let snapshots = tokio::spawn(super::snapshots::run(node.clone(), stop.clone()));
    let micro = tokio::spawn(micro::run(node.clone(), stop_intake.clone()));
    if let Some((listener, handle)) = metrics {
        tokio::spawn(metrics::serve(listener, handle, stop.clone()));
    }
    let intake = tokio::spawn(intake::run(
        node.clone(),
        writers.clone(),
        stop_intake.clone(),
    ));
    tracing::info!(node = %node.name(), role = ?node.role, store = node.store.kind(), position = node.position(), "node started");

    if node.role == Role::Master {
        tokio::spawn(catch_up_then_open(node.clone()));
    }

    shutdown.await;
    tracing::info!(node = %node.name(), "shutting down: stopping intake");
    stop_intake.cancel();
    let _ = intake.await;
    let _ = micro.await;
    writers.drain(Duration::from_secs(10)).await;
    stop.cancel();
    let _ = applier.await;
    let _ = liveness.await;
    let _ = snapshots.await;
    if let Err(e) = node.client.drain().await {
        tracing::warn!(error = %e, "draining the NATS connection failed");
    }
    if let Err(e) = node.store.close().await {
        tracing::warn!(error = %e, "closing the store failed");
    }
    tracing::info!(node = %node.name(), position = node.position(), "node stopped");
}

/// A (re)starting master applies the log to its end before it takes writes.
pub(crate) async fn catch_up_then_open(node: NodeRef) {
    loop {
        match node.log.last_seq().await {
            Ok(target) => {
                node.progress.note_log_end(target);
                let mut rx = node.progress.subscribe();
                if rx.wait_for(|p| *p >= target).await.is_ok() {
                    break;
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the log's end; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    node.set_mode(Mode::Master);
}
