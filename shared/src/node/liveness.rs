//! Heartbeats out, the master's heartbeats in, and the failover decisions they drive
//! (docs/design.md "Failover").

use super::failover::Failover;
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
/// them back when the master is heard again in master mode (decided in `failover`).
async fn watch_master(node: NodeRef, stop: CancellationToken) {
    let mut failover = Failover::new(node.cfg.failover_after, Instant::now());
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
                    let now = Instant::now();
                    if !failover.observe(&hb, now) {
                        continue;
                    }
                    if let Ok(mut seen) = node.master_seen.lock() {
                        *seen = Some((hb.node.clone(), now));
                    }
                }
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            match failover.tick(now) {
                Some(Mode::Failover) => {
                    let silent_for = failover.silent_for(now);
                    tracing::warn!(node = %node.name(), silent_ms = silent_for.as_millis() as u64, "no master heartbeat: entering failover, taking writes");
                    node.set_mode(Mode::Failover);
                }
                Some(mode) => {
                    tracing::info!(node = %node.name(), "master is back: leaving failover");
                    node.set_mode(mode);
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_node::test_node;
    use super::*;
    use crate::name::Name;

    #[tokio::test]
    async fn heartbeat_reports_lag_behind_the_log_end() {
        let t = test_node(Role::Slave).await;
        t.node.position.send_replace(4);
        t.node.note_log_seq(10);
        let hb = heartbeat(&t.node);
        assert_eq!(
            (hb.node.as_str(), hb.role, hb.mode),
            ("n1", Role::Slave, Mode::Replica)
        );
        assert_eq!((hb.applied_seq, hb.log_seq, hb.lag), (4, 10, 6));
        assert_eq!(hb.interval_ms, 1000);
    }

    #[tokio::test]
    async fn heartbeat_never_reports_the_log_end_behind_the_position() {
        // The log end seen may trail what the reader applied (it is refreshed every period).
        let t = test_node(Role::Master).await;
        t.node.position.send_replace(8);
        t.node.note_log_seq(3);
        let hb = heartbeat(&t.node);
        assert_eq!((hb.applied_seq, hb.log_seq, hb.lag), (8, 8, 0));
    }

    #[tokio::test]
    async fn heartbeat_lists_databases_and_broken_ones() {
        let t = test_node(Role::Slave).await;
        let shop = Name::parse_db("shop").unwrap();
        let hr = Name::parse_db("hr").unwrap();
        t.node.note_database(&shop, true);
        t.node.note_database(&hr, true);
        t.node
            .mark_broken(&hr, 5, &crate::error::DdbError::internal("disk"));
        let hb = heartbeat(&t.node);
        assert_eq!(hb.databases, ["hr", "shop"]);
        assert_eq!(hb.broken.len(), 1);
        assert_eq!((hb.broken[0].db.as_str(), hb.broken[0].seq), ("hr", 5));
        assert_eq!(hb.metrics, None);
    }
}
