//! Unit tests that need the real nats-server: a client connected to one within 10 s.

use ddb_testsupport::NatsServer;
use std::time::Duration;

pub(crate) async fn connect(server: &NatsServer) -> async_nats::Client {
    tokio::time::timeout(Duration::from_secs(10), async_nats::connect(server.url()))
        .await
        .expect("connect to nats-server within 10 s")
        .expect("connect to nats-server")
}
