//! What ddb's programs share outside the library: their NATS and node flags (docs/design.md
//! "Command-line contract"), logging set-up, the shutdown signal, and [`node_main`], the
//! whole body of `ddb-master` and `ddb-slave`. The library (`ddb`) stays free of clap,
//! tracing-subscriber and process settings.

mod args;
mod logging;
mod priority;

pub use args::{NatsArgs, NodeArgs};
pub use ddb::node::Role;
pub use logging::{
    init_tracing, init_tracing_as, init_tracing_with, LogFormat, DEFAULT_LOG_FILTER,
};

use clap::{CommandFactory, FromArgMatches};
use ddb::node::{run, NodeError};

/// A node's command line: its name and its settings.
#[derive(Debug, clap::Parser)]
#[command(version)]
struct NodeCli {
    /// Node name: heartbeats and the direct subject <prefix>.node.<name> use it.
    #[arg(long, env = "DDB_NAME")]
    name: String,
    #[command(flatten)]
    node: NodeArgs,
}

/// Parses the command line of the node binary for `role`, sets up logging and the CPU
/// priority, then runs the node until SIGINT or SIGTERM.
pub async fn node_main(role: Role) -> Result<(), NodeError> {
    let (bin, about) = match role {
        Role::Master => (
            "ddb-master",
            "ddb master node: takes writes, appends them to the NATS JetStream log",
        ),
        Role::Slave => (
            "ddb-slave",
            "ddb slave node: applies the log, serves reads, takes writes when the master is gone",
        ),
    };
    let command = NodeCli::command()
        .name(bin)
        .bin_name(bin)
        .about(about)
        // A cluster has one master, so it has a usual name; each slave needs its own.
        .mut_arg("name", |a| match role {
            Role::Master => a.default_value("master").required(false),
            Role::Slave => a.required(true),
        });
    let cli = NodeCli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    init_tracing_as(cli.node.log_format);
    // Before the node starts any thread: those started later inherit the lowered priority.
    let reads = priority::lower_all_but_reads(cli.node.nice_for(role), &cli.name);
    let mut config = cli.node.into_config(&cli.name);
    config.reads_runtime = reads.as_ref().map(|r| r.handle());
    let result = run(role, config, shutdown_signal()).await;
    drop(reads);
    result
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_command_line_is_well_formed() {
        NodeCli::command().debug_assert();
    }
}
