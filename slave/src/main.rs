//! `ddb-slave`: a replica that applies the log, serves reads, and takes writes in failover.

use clap::Parser;
use ddb::cli::{init_tracing_as, shutdown_signal, NodeArgs};
use ddb::node::{run, Role};

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
    init_tracing_as(args.node.log_format);
    args.node.set_cpu_priority(Role::Slave);
    let config = args.node.into_config(&args.name);
    run(Role::Slave, config, shutdown_signal()).await?;
    Ok(())
}
