//! `ddb-master`: the node that takes writes and appends them to the log.

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
    about = "ddb master node: takes writes, appends them to the NATS JetStream log"
)]
struct Args {
    /// Node name: heartbeats and the direct subject <prefix>.node.<name> use it.
    #[arg(long, env = "DDB_NAME", default_value = "master")]
    name: String,
    #[command(flatten)]
    node: NodeArgs,
}

// One thread: a write crosses several tasks (intake, writer, NATS connection), and on a
// small machine hand-overs between threads cost more than they give (README "Performance").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    node_main(Role::Master, &args.name, args.node).await?;
    Ok(())
}
