//! `ddb-slave`: a replica that applies the log, serves reads, and takes writes in failover.

use ddb_node_cli::{node_main, Role};

// Nodes allocate many short-lived buffers per op (JSON, SQL, replies); mimalloc measurably
// beats the system allocator there (see README "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: a write crosses several tasks (intake, writer, NATS connection), and on a
// small machine hand-overs between threads cost more than they give (README "Performance").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    node_main(Role::Slave).await?;
    Ok(())
}
