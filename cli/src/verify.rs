//! `ddb verify`: asks every live node for per-table checksums (the read-only `CHECKSUM` op)
//! and prints one row per table with the nodes side by side, flagging every difference.
//!
//! The nodes are those heard on the heartbeat subject; the databases are the union of the
//! databases they report, or `--db`. Each node is asked with `min_seq` set to the furthest
//! applied seq among the heartbeats, so that a node that is merely a little behind catches up
//! before it answers instead of being reported as different. Writes arriving while `verify`
//! runs can still make nodes answer at different points: verify a quiet cluster.

use crate::table::Table;
use crate::ConnectArgs;
use anyhow::bail;
use ddb::client::{DdbClient, Target};
use ddb::reply::TableChecksum;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
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

/// What one node said about one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Tables(BTreeMap<String, TableChecksum>),
    /// The node does not have the database.
    Missing,
    /// The node could not answer (timeout, error reply): nothing could be compared.
    Failed(String),
}

/// The outcome of comparing one table (or one database, when it has no table) across nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub db: String,
    pub table: String,
    /// One cell per node, in node order.
    pub cells: Vec<String>,
    pub matches: bool,
}

/// Compares what `nodes` answered for `db` (same order as `answers`).
pub fn compare(db: &str, answers: &[Answer], full: bool) -> Vec<Row> {
    let mut tables = BTreeSet::new();
    for a in answers {
        if let Answer::Tables(t) = a {
            tables.extend(t.keys().cloned());
        }
    }
    let failed = |a: &Answer| match a {
        Answer::Failed(why) => Some(format!("error: {why}")),
        _ => None,
    };
    if tables.is_empty() {
        // No table anywhere: the database exists everywhere (empty) or nowhere, or differs.
        let cells: Vec<String> = answers
            .iter()
            .map(|a| {
                failed(a).unwrap_or_else(|| match a {
                    Answer::Missing => "no database".into(),
                    _ => "no tables".into(),
                })
            })
            .collect();
        let matches = answers.iter().all(|a| matches!(a, Answer::Tables(_)));
        return vec![Row {
            db: db.into(),
            table: "-".into(),
            cells,
            matches,
        }];
    }
    tables
        .into_iter()
        .map(|table| {
            let mut sums = BTreeSet::new();
            let mut complete = true;
            let cells = answers
                .iter()
                .map(|a| {
                    if let Some(e) = failed(a) {
                        complete = false;
                        return e;
                    }
                    match a {
                        Answer::Tables(t) => match t.get(&table) {
                            Some(tc) => {
                                sums.insert(tc.checksum.clone());
                                let shown = if full {
                                    &tc.checksum[..]
                                } else {
                                    short(&tc.checksum)
                                };
                                format!("{} rows {shown}", tc.rows)
                            }
                            None => {
                                complete = false;
                                "no table".into()
                            }
                        },
                        _ => {
                            complete = false;
                            "no database".into()
                        }
                    }
                })
                .collect();
            Row {
                db: db.into(),
                table,
                cells,
                matches: complete && sums.len() == 1,
            }
        })
        .collect()
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// Asks one node for the checksums of `db`.
pub async fn ask(client: &DdbClient, node: &str, db: &str, min_seq: u64) -> Answer {
    let op = json!({"op":"CHECKSUM","db":db,"min_seq":min_seq});
    match client.request(&Target::Node(node.to_owned()), &op).await {
        Ok(r) if r.ok => Answer::Tables(
            r.tables
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.table.clone(), t))
                .collect(),
        ),
        Ok(r) => match r.error {
            Some(e) if e.code == ddb::ErrorCode::DbNotFound => Answer::Missing,
            Some(e) => Answer::Failed(format!("{}: {}", e.code, e.message)),
            None => Answer::Failed("ok:false without an error".into()),
        },
        Err(e) => Answer::Failed(e.to_string()),
    }
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
        .values()
        .map(|hb| crate::status::NodeStatus {
            name: hb.node.clone(),
            heartbeat: Some(hb.clone()),
            alive: true,
        })
        .collect();
    nodes.sort_by(crate::status::order);
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let dbs: BTreeSet<String> = if args.dbs.is_empty() {
        heard
            .values()
            .flat_map(|hb| hb.databases.iter().cloned())
            .collect()
    } else {
        args.dbs.iter().cloned().collect()
    };
    let min_seq = heard.values().map(|hb| hb.applied_seq).max().unwrap_or(0);
    if dbs.is_empty() {
        writeln!(
            out,
            "no database on any of the {} nodes ({}): nothing to compare",
            names.len(),
            names.join(", ")
        )?;
        return Ok(true);
    }
    let mut header = vec!["db".to_owned(), "table".to_owned()];
    header.extend(names.iter().cloned());
    header.push("status".to_owned());
    let mut t = Table::new(header);
    let (mut tables, mut bad) = (0usize, 0usize);
    for db in &dbs {
        let answers =
            futures::future::join_all(names.iter().map(|n| ask(&client, n, db, min_seq))).await;
        for row in compare(db, &answers, args.full) {
            tables += 1;
            if !row.matches {
                bad += 1;
            }
            let mut cells = vec![row.db, row.table];
            cells.extend(row.cells);
            cells.push(if row.matches { "ok" } else { "MISMATCH" }.to_owned());
            t.push(cells);
        }
    }
    write!(out, "{}", t.render())?;
    if bad == 0 {
        writeln!(
            out,
            "all {tables} table{} in {} database{} match on {} nodes (log seq {min_seq})",
            plural(tables),
            dbs.len(),
            plural(dbs.len()),
            names.len()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(list: &[(&str, u64, &str)]) -> Answer {
        Answer::Tables(
            list.iter()
                .map(|(t, rows, sum)| {
                    (
                        t.to_string(),
                        TableChecksum {
                            table: t.to_string(),
                            rows: *rows,
                            checksum: sum.to_string(),
                        },
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn equal_tables_match_and_any_difference_is_flagged() {
        let a = tables(&[("orders", 2, "0123456789abcdef"), ("users", 3, "aaaa")]);
        let b = tables(&[("orders", 2, "0123456789abcdef"), ("users", 3, "bbbb")]);
        let c = tables(&[("orders", 2, "0123456789abcdef")]);
        let rows = compare("mydb", &[a.clone(), b, c], false);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].table, "orders");
        assert!(rows[0].matches);
        assert_eq!(rows[0].cells[0], "2 rows 0123456789ab");
        assert_eq!(rows[1].table, "users");
        assert!(!rows[1].matches);
        assert_eq!(rows[1].cells, ["3 rows aaaa", "3 rows bbbb", "no table"]);
        let rows = compare("mydb", &[a.clone(), Answer::Missing], true);
        assert!(rows
            .iter()
            .all(|r| !r.matches && r.cells[1] == "no database"));
        let rows = compare("mydb", &[a, Answer::Failed("timeout".into())], false);
        assert!(rows
            .iter()
            .all(|r| !r.matches && r.cells[1] == "error: timeout"));
    }

    #[test]
    fn a_database_without_tables_is_one_row() {
        let empty = Answer::Tables(BTreeMap::new());
        let rows = compare("e", &[empty.clone(), empty.clone()], false);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].matches);
        assert_eq!(rows[0].cells, ["no tables", "no tables"]);
        let rows = compare("e", &[empty, Answer::Missing], false);
        assert!(!rows[0].matches);
        let rows = compare("gone", &[Answer::Missing, Answer::Missing], false);
        assert!(!rows[0].matches, "a database no node has is worth flagging");
    }
}
