//! Heartbeats out, the master's heartbeats in, and the failover decisions they drive
//! (docs/design.md "Failover").

use super::{Mode, NodeRef, Role};
use crate::heartbeat::Heartbeat;
use futures::StreamExt;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub(super) async fn run(node: NodeRef, stop: CancellationToken) {
    let beats = tokio::spawn(publish_heartbeats(node.clone(), stop.clone()));
    let ends = tokio::spawn(watch_log_end(node.clone(), stop.clone()));
    if node.role == Role::Slave {
        watch_master(node.clone(), stop.clone()).await;
    }
    stop.cancelled().await;
    let _ = beats.await;
    let _ = ends.await;
}

pub(crate) fn heartbeat(node: &NodeRef) -> Heartbeat {
    let applied = node.position();
    let log_seq = node
        .log_seq
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(applied);
    Heartbeat {
        node: node.name().to_owned(),
        role: node.role,
        mode: node.mode(),
        applied_seq: applied,
        log_seq,
        lag: log_seq - applied,
        store: node.store.kind().to_owned(),
        databases: node
            .databases
            .lock()
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default(),
        uptime_ms: node.started.elapsed().as_millis() as u64,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        interval_ms: node.cfg.heartbeat.as_millis() as u64,
        broken: node
            .broken
            .lock()
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default(),
        metrics: node.metrics_addr.map(|a| a.to_string()),
    }
}

async fn publish_heartbeats(node: NodeRef, stop: CancellationToken) {
    let mut tick = tokio::time::interval(node.cfg.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let subject = node.subjects.heartbeat(node.name());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let hb = heartbeat(&node);
        super::metrics::refresh(&node);
        let bytes = serde_json::to_vec(&hb).unwrap_or_default();
        if let Err(e) = node.client.publish(subject.clone(), bytes.into()).await {
            tracing::debug!(error = %e, "heartbeat not sent");
        }
    }
}

/// Keeps the log's end fresh for the heartbeat's lag while no entries arrive.
async fn watch_log_end(node: NodeRef, stop: CancellationToken) {
    let period = node.cfg.heartbeat.max(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        if let Ok(Ok(seq)) = tokio::time::timeout(period, node.log.last_seq()).await {
            node.note_log_seq(seq);
        }
    }
}

/// A slave takes writes when the master has been silent for `failover_after`, and gives
/// them back when the master is heard again in master mode.
async fn watch_master(node: NodeRef, stop: CancellationToken) {
    let started = Instant::now();
    // Silence is measured from our own start until a first heartbeat is heard.
    let mut last_master: Option<Instant> = None;
    let mut last_master_open: Option<Instant> = None;
    let check_every =
        (node.cfg.failover_after / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
    loop {
        let mut sub = loop {
            match node.client.subscribe(node.subjects.heartbeat_all()).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch heartbeats; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        };
        let mut tick = tokio::time::interval(check_every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                m = sub.next() => {
                    let Some(m) = m else { break };
                    let Ok(hb) = serde_json::from_slice::<Heartbeat>(&m.payload) else { continue };
                    if hb.role != Role::Master {
                        continue;
                    }
                    let now = Instant::now();
                    last_master = Some(now);
                    if hb.mode == Mode::Master {
                        last_master_open = Some(now);
                    }
                    if let Ok(mut seen) = node.master_seen.lock() {
                        *seen = Some((hb.node.clone(), now));
                    }
                }
                _ = tick.tick() => {}
            }
            let silent_for = last_master.unwrap_or(started).elapsed();
            match node.mode() {
                Mode::Replica if silent_for >= node.cfg.failover_after => {
                    tracing::warn!(node = %node.name(), silent_ms = silent_for.as_millis() as u64, "no master heartbeat: entering failover, taking writes");
                    node.set_mode(Mode::Failover);
                }
                Mode::Failover
                    if last_master_open.is_some_and(|t| t.elapsed() < node.cfg.failover_after) =>
                {
                    tracing::info!(node = %node.name(), "master is back: leaving failover");
                    node.set_mode(Mode::Replica);
                }
                _ => {}
            }
        }
    }
}
