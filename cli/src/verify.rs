//! `ddb verify`: asks every live node for per-table checksums (the read-only `CHECKSUM` op)
//! and prints one row per table with the nodes side by side, flagging every difference.
//!
//! The nodes are those heard on the heartbeat subject (masters first); the databases are the
//! union of the databases they report, or `--db`. Gathering and comparing is
//! [`ddb::verify`] (shared with the GUI's Verify button); this module finds the nodes and
//! prints the table. Writes arriving while `verify` runs can make nodes answer at different
//! points: verify a quiet cluster.

use crate::table::Table;
use crate::ConnectArgs;
use anyhow::bail;
use ddb::heartbeat::Heartbeat;
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Only this database (repeat for several); default: every database any node reports.
    #[arg(long = "db")]
    pub dbs: Vec<String>,
    /// Listen to heartbeats for at most this long to find the nodes, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub wait_ms: u64,
    /// Show whole checksums instead of their first 12 hex digits.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Compares every database on every live node; returns whether all tables match.
pub async fn verify(args: &VerifyArgs, out: &mut dyn Write) -> anyhow::Result<bool> {
    let client = args.connect.connect().await?;
    let wait = Duration::from_millis(args.wait_ms);
    let heard = crate::status::collect(&client, wait).await?;
    if heard.is_empty() {
        bail!(
            "no heartbeat on {} within {wait:?}: no node is running (start a cluster with `ddb up`)",
            client.subjects().heartbeat_all()
        );
    }
    let mut nodes: Vec<crate::status::NodeStatus> = heard
        .into_values()
        .map(|hb| crate::status::NodeStatus {
            name: hb.node.clone(),
            heartbeat: Some(hb),
            alive: true,
        })
        .collect();
    nodes.sort_by(crate::status::order);
    let live: Vec<Heartbeat> = nodes.into_iter().filter_map(|n| n.heartbeat).collect();
    let report = ddb::verify::verify(&client, &live, &args.dbs).await;
    if report.dbs.is_empty() {
        writeln!(
            out,
            "no database on any of the {} nodes ({}): nothing to compare",
            report.nodes.len(),
            report.nodes.join(", ")
        )?;
        return Ok(true);
    }
    let mut header = vec!["db".to_owned(), "table".to_owned()];
    header.extend(report.nodes.iter().cloned());
    header.push("status".to_owned());
    let mut t = Table::new(header);
    for row in &report.rows {
        let mut cells = vec![row.db.clone(), row.table.clone().unwrap_or("-".into())];
        cells.extend(row.cells.iter().map(|c| c.text(args.full)));
        cells.push(if row.matches { "ok" } else { "MISMATCH" }.to_owned());
        t.push(cells);
    }
    write!(out, "{}", t.render())?;
    let (tables, bad, min_seq) = (report.tables(), report.mismatches(), report.min_seq);
    if bad == 0 {
        writeln!(
            out,
            "all {tables} table{} in {} database{} match on {} nodes (log seq {min_seq})",
            plural(tables),
            report.dbs.len(),
            plural(report.dbs.len()),
            report.nodes.len()
        )?;
    } else {
        writeln!(
            out,
            "MISMATCH: {bad} of {tables} table{} differ between nodes or could not be compared (log seq {min_seq})",
            plural(tables)
        )?;
    }
    Ok(bad == 0)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
