//! Verification: asks every live node for per-table checksums (the read-only `CHECKSUM` op)
//! and compares them side by side: one [`Row`] per table, one [`Cell`] per node. Used by
//! `ddb verify` and by the GUI's Verify button; neither prints anything from here.
//!
//! The nodes are the caller's (usually those whose heartbeats arrive), in the caller's order.
//! Each is asked with `min_seq` set to the furthest applied seq among their heartbeats, so
//! that a node that is merely a little behind catches up before it answers instead of being
//! reported as different. Writes arriving meanwhile can still make nodes answer at different
//! points: verify a quiet cluster.

use crate::client::{DdbClient, Target};
use crate::heartbeat::Heartbeat;
use crate::reply::TableChecksum;
use crate::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What one node said about one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Its tables by name.
    Tables(BTreeMap<String, TableChecksum>),
    /// The node does not have the database.
    Missing,
    /// The node could not answer (timeout, error reply): nothing could be compared.
    Failed(String),
}

/// What one node shows for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// The table's row count and content checksum (hex).
    Table { rows: u64, checksum: String },
    /// The node has the database but not this table.
    NoTable,
    /// The node has the database and no table in it (in the row of a database no node has a
    /// table in).
    NoTables,
    /// The node does not have the database.
    NoDatabase,
    /// The node could not answer.
    Error(String),
}

impl Cell {
    /// "2 rows 0123456789ab" (the checksum cut to 12 hex digits unless `full`), "no table",
    /// "no tables", "no database", "error: …".
    pub fn text(&self, full: bool) -> String {
        match self {
            Cell::Table { rows, checksum } => {
                let shown = if full { checksum } else { short(checksum) };
                format!("{rows} rows {shown}")
            }
            Cell::NoTable => "no table".into(),
            Cell::NoTables => "no tables".into(),
            Cell::NoDatabase => "no database".into(),
            Cell::Error(why) => format!("error: {why}"),
        }
    }
}

impl fmt::Display for Cell {
    /// The short form of [`Cell::text`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text(false))
    }
}

/// The first 12 characters of a checksum (all of it when shorter).
pub fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

/// One table (or one database that has no table anywhere) across the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub db: String,
    /// `None`: the database has no table on any node; the row compares the database itself.
    pub table: Option<String>,
    /// One cell per node, in node order.
    pub cells: Vec<Cell>,
    /// Every node answered with the same rows and checksum (or, for a database without
    /// tables, every node has it).
    pub matches: bool,
}

/// Compares what the nodes answered for `db`, one answer per node in node order: one row per
/// table any node has, sorted by name, or a single row when there is none.
pub fn compare(db: &str, answers: &[Answer]) -> Vec<Row> {
    let mut tables = BTreeSet::new();
    for a in answers {
        if let Answer::Tables(t) = a {
            tables.extend(t.keys().cloned());
        }
    }
    if tables.is_empty() {
        // No table anywhere: the database exists everywhere (empty) or not, or a node failed.
        let cells = answers
            .iter()
            .map(|a| match a {
                Answer::Tables(_) => Cell::NoTables,
                Answer::Missing => Cell::NoDatabase,
                Answer::Failed(why) => Cell::Error(why.clone()),
            })
            .collect();
        return vec![Row {
            db: db.into(),
            table: None,
            cells,
            matches: answers.iter().all(|a| matches!(a, Answer::Tables(_))),
        }];
    }
    tables
        .into_iter()
        .map(|table| {
            let cells: Vec<Cell> = answers
                .iter()
                .map(|a| match a {
                    Answer::Tables(t) => t.get(&table).map_or(Cell::NoTable, |tc| Cell::Table {
                        rows: tc.rows,
                        checksum: tc.checksum.clone(),
                    }),
                    Answer::Missing => Cell::NoDatabase,
                    Answer::Failed(why) => Cell::Error(why.clone()),
                })
                .collect();
            let matches = matches!(cells.first(), Some(Cell::Table { .. }))
                && cells.iter().all(|c| c == &cells[0]);
            Row {
                db: db.into(),
                table: Some(table),
                cells,
                matches,
            }
        })
        .collect()
}

/// Asks one node for the checksums of `db`, after it has applied the log up to `min_seq`.
pub async fn ask(client: &DdbClient, node: &str, db: &str, min_seq: u64) -> Answer {
    let op = serde_json::json!({"op":"CHECKSUM","db":db,"min_seq":min_seq});
    match client.request(&Target::Node(node.to_owned()), &op).await {
        Ok(r) if r.ok => Answer::Tables(
            r.tables
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.table.clone(), t))
                .collect(),
        ),
        Ok(r) => match r.error {
            Some(e) if e.code == ErrorCode::DbNotFound => Answer::Missing,
            Some(e) => Answer::Failed(format!("{}: {}", e.code, e.message)),
            None => Answer::Failed("ok:false without an error".into()),
        },
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// The nodes asked, in column order.
    pub nodes: Vec<String>,
    /// The databases compared, sorted.
    pub dbs: Vec<String>,
    /// The log seq every node was asked to have applied first.
    pub min_seq: u64,
    /// Databases in order, each database's tables in order.
    pub rows: Vec<Row>,
}

impl Report {
    /// How many rows (tables, and databases without tables) were compared.
    pub fn tables(&self) -> usize {
        self.rows.len()
    }

    /// How many rows differ between nodes or could not be compared.
    pub fn mismatches(&self) -> usize {
        self.rows.iter().filter(|r| !r.matches).count()
    }

    /// Every row matches (also when there was nothing to compare).
    pub fn all_match(&self) -> bool {
        self.mismatches() == 0
    }
}

/// What a verification of the nodes that sent `live` would ask: the nodes (in the given
/// order), the databases (`dbs`, or when empty every database any of them reports; sorted,
/// without duplicates) and the `min_seq` (the furthest applied seq among the heartbeats).
pub fn plan(live: &[Heartbeat], dbs: &[String]) -> Report {
    let dbs: BTreeSet<String> = if dbs.is_empty() {
        live.iter()
            .flat_map(|hb| hb.databases.iter().cloned())
            .collect()
    } else {
        dbs.iter().cloned().collect()
    };
    Report {
        nodes: live.iter().map(|hb| hb.node.clone()).collect(),
        dbs: dbs.into_iter().collect(),
        min_seq: live.iter().map(|hb| hb.applied_seq).max().unwrap_or(0),
        rows: Vec::new(),
    }
}

/// Compares every database in `dbs` (empty: every database they report) on the nodes whose
/// latest heartbeats are `live`, one column per node in that order. The nodes are asked in
/// parallel, one database after the other; a node that does not answer gets
/// [`Cell::Error`] cells, never an `Err`.
pub async fn verify(client: &DdbClient, live: &[Heartbeat], dbs: &[String]) -> Report {
    let mut report = plan(live, dbs);
    for db in &report.dbs {
        let answers = futures::future::join_all(
            report
                .nodes
                .iter()
                .map(|n| ask(client, n, db, report.min_seq)),
        )
        .await;
        report.rows.extend(compare(db, &answers));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heartbeat::{Mode, Role};

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

    fn texts(row: &Row) -> Vec<String> {
        row.cells.iter().map(Cell::to_string).collect()
    }

    #[test]
    fn equal_tables_match_and_any_difference_is_flagged() {
        let a = tables(&[("orders", 2, "0123456789abcdef"), ("users", 3, "aaaa")]);
        let b = tables(&[("orders", 2, "0123456789abcdef"), ("users", 3, "bbbb")]);
        let c = tables(&[("orders", 2, "0123456789abcdef")]);
        let rows = compare("mydb", &[a.clone(), b, c]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].table.as_deref(), Some("orders"));
        assert!(rows[0].matches);
        assert_eq!(rows[0].cells[0].text(false), "2 rows 0123456789ab");
        assert_eq!(rows[0].cells[0].text(true), "2 rows 0123456789abcdef");
        assert_eq!(rows[1].table.as_deref(), Some("users"));
        assert!(!rows[1].matches);
        assert_eq!(texts(&rows[1]), ["3 rows aaaa", "3 rows bbbb", "no table"]);
        let rows = compare("mydb", &[a.clone(), Answer::Missing]);
        assert!(rows
            .iter()
            .all(|r| !r.matches && r.cells[1] == Cell::NoDatabase));
        let rows = compare("mydb", &[a, Answer::Failed("timeout".into())]);
        assert!(rows
            .iter()
            .all(|r| !r.matches && r.cells[1].to_string() == "error: timeout"));
    }

    #[test]
    fn same_checksum_with_another_row_count_is_a_mismatch() {
        let rows = compare("d", &[tables(&[("t", 1, "ab")]), tables(&[("t", 2, "ab")])]);
        assert!(!rows[0].matches);
    }

    #[test]
    fn a_single_node_agrees_with_itself_and_no_node_compares_nothing() {
        let rows = compare("d", &[tables(&[("t", 1, "ab")])]);
        assert!(rows[0].matches);
        let rows = compare("d", &[]);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].cells.is_empty());
    }

    #[test]
    fn a_database_without_tables_is_one_row() {
        let empty = Answer::Tables(BTreeMap::new());
        let rows = compare("e", &[empty.clone(), empty.clone()]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].table, None);
        assert!(rows[0].matches);
        assert_eq!(texts(&rows[0]), ["no tables", "no tables"]);
        let rows = compare("e", &[empty.clone(), Answer::Missing]);
        assert!(!rows[0].matches);
        assert_eq!(texts(&rows[0]), ["no tables", "no database"]);
        let rows = compare("e", &[empty, Answer::Failed("timeout: late".into())]);
        assert!(!rows[0].matches);
        assert_eq!(rows[0].cells[1], Cell::Error("timeout: late".into()));
        let rows = compare("gone", &[Answer::Missing, Answer::Missing]);
        assert!(!rows[0].matches, "a database no node has is worth flagging");
    }

    #[test]
    fn short_checksums() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }

    fn hb(node: &str, applied: u64, dbs: &[&str]) -> Heartbeat {
        Heartbeat {
            node: node.into(),
            role: Role::Slave,
            mode: Mode::Replica,
            applied_seq: applied,
            log_seq: 9,
            lag: 9 - applied,
            store: "sqlite".into(),
            databases: dbs.iter().map(|d| d.to_string()).collect(),
            uptime_ms: 1,
            version: "0".into(),
            interval_ms: 1000,
            broken: vec![],
            metrics: None,
            snapshots: Default::default(),
        }
    }

    #[test]
    fn the_plan_keeps_node_order_unites_databases_and_waits_for_the_furthest_seq() {
        let live = [hb("master", 9, &["b", "a"]), hb("slave1", 7, &["a", "c"])];
        let p = plan(&live, &[]);
        assert_eq!(p.nodes, ["master", "slave1"]);
        assert_eq!(p.dbs, ["a", "b", "c"]);
        assert_eq!(p.min_seq, 9);
        assert!(p.rows.is_empty() && p.all_match());
        let p = plan(&live, &["z".into(), "a".into(), "z".into()]);
        assert_eq!(p.dbs, ["a", "z"]);
        assert_eq!(plan(&[], &[]), Report::default());
    }

    #[test]
    fn a_report_counts_its_mismatches() {
        let mut r = Report {
            nodes: vec!["m".into(), "s".into()],
            ..Report::default()
        };
        r.rows.extend(compare(
            "a",
            &[tables(&[("t", 1, "x")]), tables(&[("t", 1, "x")])],
        ));
        assert!(r.all_match());
        r.rows
            .extend(compare("b", &[Answer::Missing, Answer::Missing]));
        assert_eq!((r.tables(), r.mismatches(), r.all_match()), (2, 1, false));
    }
}
