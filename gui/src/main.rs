//! `ddb-gui`: the desktop client. See the crate docs and the README's "GUI" section.

use clap::Parser;
use ddb_gui::cli::Args;

fn main() -> anyhow::Result<()> {
    ddb_node_cli::init_tracing();
    let args = Args::parse();
    let config = args.config().map_err(anyhow::Error::msg)?;
    ddb_gui::run(config, args.window())?;
    Ok(())
}
