//! `ddb-slave`: a replica that applies the log, serves reads, and takes writes in failover.

use clap::Parser;
use ddb::cli::{node_main, NodeArgs};
use ddb::node::Role;

// Nodes allocate many short-lived buffers per op (JSON, SQL, replies); mimalloc measurably
// beats the system allocator there (see README "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "ddb slave node: applies the log, serves reads, takes writes when the master is gone"
)]
struct Args {
    /// Node name (e.g. slave1): heartbeats and the direct subject <prefix>.node.<name> use it.
    #[arg(long, env = "DDB_NAME")]
    name: String,
    #[command(flatten)]
    node: NodeArgs,
}

// One thread: a write crosses several tasks (intake, writer, NATS connection), and on a
// small machine hand-overs between threads cost more than they give (README "Performance").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    node_main(Role::Slave, &args.name, args.node).await?;
    Ok(())
}
