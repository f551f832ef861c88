//! The Verify button: `ddb verify` in the result area. The worker runs
//! [`ddb::verify::verify`] on the nodes that are alive when the button is pressed, over every
//! database they report; this module holds what is waited for and what came back, and turns
//! a [`Report`] into the lines and the grid the view draws.

use ddb::verify::Report;
use std::time::{Duration, Instant};

/// A verification sent to the worker and not finished yet.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyPending {
    pub id: u64,
    /// The nodes asked, in column order.
    pub nodes: Vec<String>,
    pub started: Instant,
}

impl VerifyPending {
    /// "Verifying every table on 3 nodes: asking each for CHECKSUM…"
    pub fn waiting(&self) -> String {
        format!(
            "Verifying every table on {}: asking each for CHECKSUM…",
            nodes(self.nodes.len())
        )
    }
}

/// A finished verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub id: u64,
    pub report: Report,
    pub elapsed: Duration,
}

impl Verified {
    pub fn all_match(&self) -> bool {
        self.report.all_match()
    }

    /// "all 3 tables agree on 3 nodes" ("1 table agrees on 3 nodes"), "1 mismatch in 3 tables
    /// on 3 nodes", or why there was nothing to compare.
    pub fn summary(&self) -> String {
        let r = &self.report;
        let on = nodes(r.nodes.len());
        if r.dbs.is_empty() {
            return format!("no database on the {on}: nothing to compare");
        }
        match (r.tables(), r.mismatches()) {
            (1, 0) => format!("1 table agrees on {on}"),
            (n, 0) => format!("all {n} tables agree on {on}"),
            (n, 1) => format!("1 mismatch in {} on {on}", tables(n)),
            (n, k) => format!("{k} mismatches in {} on {on}", tables(n)),
        }
    }

    /// The grid: one row per `db.table` (a database without tables is its name alone), one
    /// column per node with the rows and the short checksum, then the status.
    pub fn grid(&self) -> VerifyGrid {
        let mut columns = vec!["table".to_owned()];
        columns.extend(self.report.nodes.iter().cloned());
        columns.push("status".to_owned());
        let rows = self
            .report
            .rows
            .iter()
            .map(|row| {
                let label = match &row.table {
                    Some(t) => format!("{}.{t}", row.db),
                    None => row.db.clone(),
                };
                let mut cells = vec![label];
                cells.extend(row.cells.iter().map(|c| c.to_string()));
                cells.push(if row.matches { "ok" } else { "MISMATCH" }.to_owned());
                VerifyRow {
                    cells,
                    mismatch: !row.matches,
                }
            })
            .collect();
        VerifyGrid { columns, rows }
    }
}

/// What the result area draws for a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyGrid {
    pub columns: Vec<String>,
    pub rows: Vec<VerifyRow>,
}

/// One row of the grid; a mismatch is drawn in red.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRow {
    pub cells: Vec<String>,
    pub mismatch: bool,
}

fn nodes(n: usize) -> String {
    if n == 1 {
        "1 node".to_owned()
    } else {
        format!("{n} nodes")
    }
}

fn tables(n: usize) -> String {
    if n == 1 {
        "1 table".to_owned()
    } else {
        format!("{n} tables")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ddb::reply::TableChecksum;
    use ddb::verify::{compare, Answer};

    /// A report over master, slave1 and slave2: `shop.users` differs on slave1 when
    /// `tampered`, `shop.orders` agrees, `empty` has no table.
    pub(crate) fn report(tampered: bool) -> Report {
        let answer = |users: &str| {
            Answer::Tables(
                [("orders", 1, "0123456789abcdef"), ("users", 2, users)]
                    .into_iter()
                    .map(|(t, rows, sum)| {
                        (
                            t.to_owned(),
                            TableChecksum {
                                table: t.to_owned(),
                                rows,
                                checksum: sum.to_owned(),
                            },
                        )
                    })
                    .collect(),
            )
        };
        let empty = Answer::Tables(Default::default());
        let slave1 = if tampered {
            "bad0bad0bad0bad0"
        } else {
            "fedcba9876543210"
        };
        let mut rows = compare("empty", &[empty.clone(), empty.clone(), empty]);
        rows.extend(compare(
            "shop",
            &[
                answer("fedcba9876543210"),
                answer(slave1),
                answer("fedcba9876543210"),
            ],
        ));
        Report {
            nodes: vec!["master".into(), "slave1".into(), "slave2".into()],
            dbs: vec!["empty".into(), "shop".into()],
            min_seq: 7,
            rows,
        }
    }

    fn verified(report: Report) -> Verified {
        Verified {
            id: 1,
            report,
            elapsed: Duration::from_millis(12),
        }
    }

    #[test]
    fn summaries_count_tables_nodes_and_mismatches() {
        assert_eq!(
            verified(report(false)).summary(),
            "all 3 tables agree on 3 nodes"
        );
        assert_eq!(
            verified(report(true)).summary(),
            "1 mismatch in 3 tables on 3 nodes"
        );
        let mut r = report(true);
        r.rows.iter_mut().for_each(|row| row.matches = false);
        assert_eq!(verified(r).summary(), "3 mismatches in 3 tables on 3 nodes");
        let mut r = report(false);
        r.rows.truncate(1);
        assert_eq!(verified(r).summary(), "1 table agrees on 3 nodes");
        let none = Report {
            nodes: vec!["master".into()],
            ..Report::default()
        };
        assert_eq!(
            verified(none).summary(),
            "no database on the 1 node: nothing to compare"
        );
    }

    #[test]
    fn the_grid_has_a_row_per_table_and_a_column_per_node() {
        let g = verified(report(true)).grid();
        assert_eq!(g.columns, ["table", "master", "slave1", "slave2", "status"]);
        let labels: Vec<&str> = g.rows.iter().map(|r| r.cells[0].as_str()).collect();
        assert_eq!(labels, ["empty", "shop.orders", "shop.users"]);
        assert_eq!(
            g.rows[0].cells,
            ["empty", "no tables", "no tables", "no tables", "ok"]
        );
        assert_eq!(g.rows[1].cells[1], "1 rows 0123456789ab");
        assert!(!g.rows[1].mismatch);
        assert_eq!(
            g.rows[2].cells,
            [
                "shop.users",
                "2 rows fedcba987654",
                "2 rows bad0bad0bad0",
                "2 rows fedcba987654",
                "MISMATCH"
            ]
        );
        assert!(g.rows[2].mismatch);
    }

    #[test]
    fn waiting_names_the_node_count() {
        let p = VerifyPending {
            id: 1,
            nodes: vec!["master".into(), "slave1".into()],
            started: Instant::now(),
        };
        assert_eq!(
            p.waiting(),
            "Verifying every table on 2 nodes: asking each for CHECKSUM…"
        );
    }
}
