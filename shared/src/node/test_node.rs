//! A node for unit tests: a real SQLite store in a temporary directory and a NATS client that
//! never connects, so the node's own state can be checked with no server and no process.

use super::state::Node;
use super::{NodeConfig, NodeRef, Role};
use crate::log::Log;
use crate::store::StoreOptions;
use crate::subjects::Subjects;

/// The node and the directory that holds its store (removed when dropped).
pub(super) struct TestNode {
    pub node: NodeRef,
    _dir: tempfile::TempDir,
}

pub(super) async fn test_node(role: Role) -> TestNode {
    let dir = tempfile::tempdir().expect("temporary directory");
    let name = "n1";
    let store = crate::store::open(
        &format!("sqlite://{}", dir.path().display()),
        name,
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
    let subjects = Subjects::new("ddb");
    let log = Log::new(client.clone(), subjects);
    let node = Node::new(role, NodeConfig::new(name), store, client, log, None)
        .await
        .expect("node");
    TestNode { node, _dir: dir }
}
