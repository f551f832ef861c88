//! A node for unit tests: a real SQLite store in a temporary directory, the in-memory log and
//! a NATS client that never connects, so the node core can be driven with no server and no
//! process.

use super::config::NodeConfig;
use super::fake_log::FakeLog;
use super::state::{Node, NodeRef};
use crate::heartbeat::Role;
use crate::store::StoreOptions;
use crate::subjects::Subjects;
use std::sync::Arc;

/// The node, its log, and the directory that holds its store (removed when dropped).
pub(super) struct TestNode {
    pub node: NodeRef,
    pub log: FakeLog,
    pub dir: tempfile::TempDir,
}

/// The largest entry the test log accepts unless a test says otherwise.
pub(super) const MAX_PAYLOAD: usize = 1 << 20;

pub(super) async fn test_node(role: Role) -> TestNode {
    test_node_with(role, MAX_PAYLOAD, |_| {}).await
}

/// A test node on a log that takes entries up to `max_payload` bytes, with the configuration
/// `adjust` changes.
pub(super) async fn test_node_with(
    role: Role,
    max_payload: usize,
    adjust: impl FnOnce(&mut NodeConfig),
) -> TestNode {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = FakeLog::new(Subjects::new("ddb"), max_payload);
    let node = node_on(role, &dir, &log, adjust).await;
    TestNode { node, log, dir }
}

/// A node on the store in `dir` and on `log`: a second one on the same log is another
/// writer; a new one on the same directory is a restart.
pub(super) async fn node_on(
    role: Role,
    dir: &tempfile::TempDir,
    log: &FakeLog,
    adjust: impl FnOnce(&mut NodeConfig),
) -> NodeRef {
    let mut cfg = NodeConfig::new("n1");
    adjust(&mut cfg);
    let store = crate::store::open(
        &format!("sqlite://{}", dir.path().display()),
        &cfg.name,
        &StoreOptions::default(),
    )
    .await
    .expect("sqlite store");
    // Retrying the first connection hands back the client at once, and no reconnects means
    // that first attempt gives up before it dials: nothing is sent anywhere.
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(0)
        .connect("127.0.0.1:4222")
        .await
        .expect("a client that does not connect");
    Node::new(role, cfg, store, client, Arc::new(log.clone()), None)
        .await
        .expect("node")
}
