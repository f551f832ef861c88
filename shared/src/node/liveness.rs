//! Heartbeats out, the master's heartbeats in, and the failover decisions they drive
//! (docs/design.md "Failover").

use super::failover::Failover;
use super::state::NodeRef;
use crate::heartbeat::{Heartbeat, Mode, Role};
use futures::StreamExt;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(node: NodeRef, stop: CancellationToken) {
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
    let log_seq = node.progress.log_end();
    Heartbeat {
        node: node.name().to_owned(),
        role: node.role,
        mode: node.mode(),
        applied_seq: applied,
        log_seq,
        lag: log_seq - applied,
        store: node.store.kind().to_owned(),
        databases: node.catalog.databases(),
        uptime_ms: node.started.elapsed().as_millis() as u64,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        interval_ms: node.cfg.heartbeat.as_millis() as u64,
        broken: node.catalog.broken(),
        metrics: node.metrics_addr.map(|a| a.to_string()),
        snapshots: node.snapshots.status(),
    }
}

async fn publish_heartbeats(node: NodeRef, stop: CancellationToken) {
    let mut tick = tokio::time::interval(node.cfg.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let subject = node.subjects.heartbeat(node.name());
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        if node.role == Role::Master
            && node.mode() == Mode::Master
            && now.duration_since(last) >= node.cfg.failover_after
        {
            // Frozen (SIGSTOP, a paused VM) or starved for longer than the slaves wait: they
            // may have taken writes meanwhile. Stop taking writes until the log is applied
            // to its end, as at start, so this node never says `master` (which sends the
            // slaves back to replica) with what it missed unapplied.
            tracing::warn!(node = %node.name(), silent_ms = now.duration_since(last).as_millis() as u64, "master was silent past the failover window: catching up before taking writes again");
            node.set_mode(Mode::Starting);
            tokio::spawn(super::lifecycle::catch_up_then_open(node.clone()));
        }
        last = now;
        let hb = heartbeat(&node);
        super::metrics::refresh(&hb);
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
            node.progress.note_log_end(seq);
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
                    heard(&node, &mut failover, &hb, Instant::now());
                }
                _ = tick.tick() => {}
            }
            decide(&node, &mut failover, Instant::now());
        }
    }
}

/// Counts a heartbeat heard at `now`; a master's is remembered as the master alive.
fn heard(node: &NodeRef, failover: &mut Failover, hb: &Heartbeat, now: Instant) {
    if failover.observe(hb, now) {
        node.heard_master(&hb.node, now);
    }
}

/// Applies the failover decision at `now` to the node's mode.
fn decide(node: &NodeRef, failover: &mut Failover, now: Instant) {
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

#[cfg(test)]
mod tests {
    use super::super::test_node::test_node;
    use super::*;
    use crate::name::Name;

    #[tokio::test]
    async fn heartbeat_reports_lag_behind_the_log_end() {
        let t = test_node(Role::Slave).await;
        t.node.progress.advance_to(4);
        t.node.progress.note_log_end(10);
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
        t.node.progress.advance_to(8);
        t.node.progress.note_log_end(3);
        let hb = heartbeat(&t.node);
        assert_eq!((hb.applied_seq, hb.log_seq, hb.lag), (8, 8, 0));
    }

    #[tokio::test]
    async fn heartbeat_lists_databases_and_broken_ones() {
        let t = test_node(Role::Slave).await;
        let shop = Name::parse_db("shop").unwrap();
        let hr = Name::parse_db("hr").unwrap();
        t.node.catalog.note_database(&shop, true);
        t.node.catalog.note_database(&hr, true);
        t.node
            .mark_broken(&hr, 5, &crate::error::DdbError::internal("disk"));
        let hb = heartbeat(&t.node);
        assert_eq!(hb.databases, ["hr", "shop"]);
        assert_eq!(hb.broken.len(), 1);
        assert_eq!((hb.broken[0].db.as_str(), hb.broken[0].seq), ("hr", 5));
        assert_eq!(hb.metrics, None);
    }

    fn master_heartbeat(node: &NodeRef, mode: Mode) -> Heartbeat {
        let mut hb = heartbeat(node);
        hb.node = "m1".to_owned();
        hb.role = Role::Master;
        hb.mode = mode;
        hb
    }

    #[tokio::test]
    async fn a_slave_takes_writes_after_the_masters_silence_and_gives_them_back() {
        let t = test_node(Role::Slave).await;
        let t0 = Instant::now();
        let after = t.node.cfg.failover_after;
        let mut f = Failover::new(after, t0);
        let mode = t.node.watch_mode();
        decide(&t.node, &mut f, t0 + after - Duration::from_millis(1));
        assert_eq!(t.node.mode(), Mode::Replica);
        assert!(t.node.write_refusal().is_some());
        decide(&t.node, &mut f, t0 + after);
        assert_eq!(t.node.mode(), Mode::Failover);
        assert!(mode.has_changed().unwrap());
        assert!(t.node.write_refusal().is_none());
        // A starting master is alive but takes no writes yet: the slave keeps them.
        let starting = master_heartbeat(&t.node, Mode::Starting);
        heard(&t.node, &mut f, &starting, t0 + after * 2);
        decide(&t.node, &mut f, t0 + after * 2);
        assert_eq!(t.node.mode(), Mode::Failover);
        let open = master_heartbeat(&t.node, Mode::Master);
        heard(&t.node, &mut f, &open, t0 + after * 3);
        decide(&t.node, &mut f, t0 + after * 3);
        assert_eq!(t.node.mode(), Mode::Replica);
        let e = t.node.write_refusal().expect("a replica again");
        assert!(e.message.contains("master m1 is alive"), "{}", e.message);
    }

    #[tokio::test]
    async fn another_slaves_heartbeat_is_not_a_master_alive() {
        let t = test_node(Role::Slave).await;
        let t0 = Instant::now();
        let after = t.node.cfg.failover_after;
        let mut f = Failover::new(after, t0);
        let mut other = heartbeat(&t.node);
        other.node = "s2".to_owned();
        other.mode = Mode::Failover;
        heard(&t.node, &mut f, &other, t0 + after / 2);
        decide(&t.node, &mut f, t0 + after);
        assert_eq!(t.node.mode(), Mode::Failover);
        let e = {
            t.node.set_mode(Mode::Replica);
            t.node.write_refusal().expect("refused")
        };
        assert!(!e.message.contains("s2"), "{}", e.message);
    }
}
