//! `ddb`: run a local ddb cluster with one command, and talk to any ddb cluster.

use clap::{Parser, Subcommand};
use ddb_cli::{ctl, export, import, load, req, snapshot, status, tx, up, verify};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ddb",
    version,
    about = "ddb, a replicated SQL database: run a local cluster (`ddb up`) and talk to it",
    after_help = "Exit codes: 0 success; 1 the cluster answered with a failure (ok:false, a failed line, \
                  a mismatch, a node down); 2 the command could not run (bad input, NATS unreachable)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start nats-server, the master, N slaves and the GUI; restart a node that crashes;
    /// Ctrl-C stops them all.
    Up(up::UpArgs),
    /// Stop nodes of the running `ddb up` on purpose: they stay down (no restart) until
    /// `ddb start`, e.g. to show failover.
    Stop(ctl::NodeCtlArgs),
    /// Start again nodes that `ddb stop` stopped (or that exited) in the running `ddb up`.
    Start(ctl::NodeCtlArgs),
    /// Send one op and print the reply (like `nats req ddb.ops '<op>'`); `--all` pages through
    /// a SEARCH to the end.
    Req(req::ReqArgs),
    /// Publish one op without waiting for a reply (like `nats pub ddb.ops '<op>'`).
    Pub(req::PubArgs),
    /// One line per node, from the heartbeats: role, mode, seq, lag, alive; `--check` is a
    /// health check (exit 1 when a node is down, broken or lagging).
    Status(status::StatusArgs),
    /// Send the ops of a JSONL file (one op per line) with a progress bar.
    Load(load::LoadArgs),
    /// Send the write ops of a JSONL file (one op per line) as one TRANSACTION: all or none.
    Tx(tx::TxArgs),
    /// Compare every table's checksum across every live node.
    Verify(verify::VerifyArgs),
    /// Write every row of a table as JSON lines, page by page, with a progress bar.
    Export(export::ExportArgs),
    /// Load rows (one JSON object per line) into DB.TABLE as big multi-row INSERTs, with a
    /// progress bar; resumable: run it again and batches already applied are skipped.
    Import(import::ImportArgs),
    /// Ask the master for a snapshot of one database (--db) or each, now, with a progress
    /// bar; prints where it is, its seq, size and time.
    Snapshot(snapshot::SnapshotArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command-line tool prints its own output: only warnings go to stderr by default.
    ddb_node_cli::init_tracing_with("warn", ddb_node_cli::LogFormat::Text);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ddb: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ddb: {e:#}");
            ExitCode::from(ddb_cli::exit_code(&e))
        }
    }
}

async fn run(command: Command) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout();
    let mut stdin = std::io::stdin();
    match command {
        Command::Up(args) => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let console = up::Console::new(std::io::stdout(), color);
            // The first SIGINT/SIGTERM stops the cluster cleanly, a second one kills it.
            let (tx, rx) = tokio::sync::watch::channel(0u32);
            tokio::spawn(async move {
                loop {
                    ddb_node_cli::shutdown_signal().await;
                    tx.send_modify(|n| *n += 1);
                }
            });
            let signals = |n: u32| {
                let mut rx = rx.clone();
                async move {
                    let _ = rx.wait_for(|c| *c >= n).await;
                }
            };
            up::up(&args, console, signals(1), signals(2)).await?;
            Ok(true)
        }
        Command::Stop(args) => {
            ctl::stop_or_start(&args, true, &mut stdout, &mut std::io::stderr()).await
        }
        Command::Start(args) => {
            ctl::stop_or_start(&args, false, &mut stdout, &mut std::io::stderr()).await
        }
        Command::Req(args) => req::req(&args, &mut stdin, &mut stdout).await,
        Command::Pub(args) => {
            req::publish(&args, &mut stdin, &mut std::io::stderr()).await?;
            Ok(true)
        }
        Command::Status(args) => status::status(&args, &mut stdout).await,
        Command::Load(args) => {
            let report = load::load(
                &args,
                &mut stdin,
                indicatif::ProgressDrawTarget::stderr(),
                &mut stdout,
            )
            .await?;
            Ok(report.failures.is_empty())
        }
        Command::Import(args) => {
            let stdin = Box::new(std::io::BufReader::new(std::io::stdin()));
            let report = import::import(
                &args,
                stdin,
                indicatif::ProgressDrawTarget::stderr(),
                &mut stdout,
            )
            .await?;
            Ok(report.failures.is_empty())
        }
        Command::Tx(args) => tx::tx(&args, &mut stdin, &mut stdout).await,
        Command::Verify(args) => verify::verify(&args, &mut stdout).await,
        Command::Snapshot(args) => {
            snapshot::snapshot(&args, indicatif::ProgressDrawTarget::stderr(), &mut stdout).await
        }
        Command::Export(args) => {
            // Rows printed to the terminal would be torn up by the bar's redraws.
            let to_stdout = args.file.as_deref().is_none_or(|f| f.as_os_str() == "-");
            let progress = if to_stdout && std::io::stdout().is_terminal() {
                indicatif::ProgressDrawTarget::hidden()
            } else {
                indicatif::ProgressDrawTarget::stderr()
            };
            let report = export::export(&args, progress, &mut stdout).await?;
            eprintln!("{}", report.summary(&args.table));
            Ok(true)
        }
    }
}
