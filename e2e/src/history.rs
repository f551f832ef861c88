//! A history of every request a fault test made and every reply it got, and a checker that
//! decides, after the run, whether the cluster kept its promises:
//!
//! - (a) every acknowledged write (answered `ok`, or `duplicate` with the original seq) is
//!   on every node;
//! - (b) no op_id is applied twice: a node holds at most one row per op_id, only rows of
//!   writes that were sent, and every answer for one op_id names the same seq;
//! - (c) every node's CHECKSUM of the table is equal;
//! - (d) a read with `min_seq` S reflects every write acknowledged with a seq <= S;
//! - (e) a write answered `unavailable`/`timeout` (or not answered) is applied at most once,
//!   and a write refused with a definite error (`read_only`, `conflict`, ...) and never
//!   acknowledged is applied nowhere.
//!
//! The workload ([`crate::workload`]) makes these checkable: each write inserts one row
//! into a table without a key, holding a key of its own and its op_id, so a write applied
//! twice shows up as two rows. A failing check names the seed of the run's schedule so it can
//! be replayed.

use ddb::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// The answer to one write attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `ok` with the seq of the log entry.
    Ok { node: String, seq: u64 },
    /// `ok` + `duplicate: true`: the op_id was applied before, at `seq`.
    Duplicate { node: String, seq: u64 },
    /// An error reply from a node.
    Refused { node: String, code: ErrorCode },
    /// No reply (the client timed out or lost its connection).
    NoReply { detail: String },
}

impl Answer {
    /// The seq of an acknowledgement.
    pub fn acked_seq(&self) -> Option<u64> {
        match self {
            Answer::Ok { seq, .. } | Answer::Duplicate { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    /// Whether the write may or may not have been applied: the writer could not tell
    /// (`unavailable`: no acknowledgement from the log; `timeout`; `internal`: a commit that
    /// failed after the append) or no answer came at all.
    pub fn indeterminate(&self) -> bool {
        match self {
            Answer::NoReply { .. } => true,
            Answer::Refused { code, .. } => matches!(
                code,
                ErrorCode::Unavailable | ErrorCode::Timeout | ErrorCode::Internal
            ),
            _ => false,
        }
    }
}

/// One write attempt: the row `(key, op_id)` sent to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    pub op_id: String,
    pub key: i64,
    pub target: String,
    /// Since the start of the history.
    pub start: Duration,
    pub end: Duration,
    pub answer: Answer,
}

/// One row of the workload's table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub key: i64,
    pub op_id: String,
}

/// One read of the whole table with `min_seq`; `rows` is `None` when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    pub node: String,
    pub min_seq: u64,
    pub start: Duration,
    pub end: Duration,
    pub rows: Result<Vec<Row>, String>,
}

/// What one node holds after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub node: String,
    pub rows: Vec<Row>,
    /// The table's CHECKSUM reply, as text.
    pub checksum: String,
}

#[derive(Debug, Clone, Default)]
pub struct History {
    /// The seed of the schedule that produced this history.
    pub seed: u64,
    pub writes: Vec<WriteRecord>,
    pub reads: Vec<ReadRecord>,
}

/// A broken promise: the property's letter and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub property: char,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}) {}", self.property, self.detail)
    }
}

/// Per op_id: its key and every answer it got.
struct Op<'a> {
    key: i64,
    answers: Vec<&'a Answer>,
}

impl Op<'_> {
    fn acked(&self) -> Option<u64> {
        self.answers.iter().find_map(|a| a.acked_seq())
    }
}

impl History {
    pub fn new(seed: u64) -> History {
        History {
            seed,
            ..Default::default()
        }
    }

    /// The highest seq any write was acknowledged with.
    pub fn max_acked_seq(&self) -> u64 {
        self.writes
            .iter()
            .filter_map(|w| w.answer.acked_seq())
            .max()
            .unwrap_or(0)
    }

    /// Counts of answers by kind (`ok`, `duplicate`, error code, `no_reply`).
    pub fn summary(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for w in &self.writes {
            let k = match &w.answer {
                Answer::Ok { .. } => "ok".to_owned(),
                Answer::Duplicate { .. } => "duplicate".to_owned(),
                Answer::Refused { code, .. } => code.as_str().to_owned(),
                Answer::NoReply { .. } => "no_reply".to_owned(),
            };
            *m.entry(k).or_insert(0) += 1;
        }
        let ok = self.reads.iter().filter(|r| r.rows.is_ok()).count() as u64;
        m.insert("reads_ok".into(), ok);
        m.insert("reads_failed".into(), self.reads.len() as u64 - ok);
        m
    }

    fn ops(&self) -> BTreeMap<&str, Op<'_>> {
        let mut ops: BTreeMap<&str, Op<'_>> = BTreeMap::new();
        for w in &self.writes {
            ops.entry(w.op_id.as_str())
                .or_insert(Op {
                    key: w.key,
                    answers: Vec::new(),
                })
                .answers
                .push(&w.answer);
        }
        ops
    }

    /// Checks (a)–(e) against the final state of every node; empty when all hold.
    pub fn check(&self, nodes: &[NodeState]) -> Vec<Violation> {
        let ops = self.ops();
        let mut v = Vec::new();
        let mut bad = |property: char, detail: String| v.push(Violation { property, detail });
        if nodes.is_empty() {
            bad('c', "no node state to check".into());
        }
        let counts: Vec<BTreeMap<&str, usize>> = nodes
            .iter()
            .map(|n| {
                let mut m = BTreeMap::new();
                for r in &n.rows {
                    *m.entry(r.op_id.as_str()).or_insert(0) += 1;
                }
                m
            })
            .collect();

        // (a) acknowledged writes everywhere.
        for (op_id, op) in &ops {
            if let Some(seq) = op.acked() {
                for (n, count) in nodes.iter().zip(&counts) {
                    if !count.contains_key(op_id) {
                        bad(
                            'a',
                            format!("{op_id} acknowledged at seq {seq} is missing on {}", n.node),
                        );
                    }
                }
            }
        }

        // (b) applied at most once, only what was sent, one seq per op_id.
        for (n, count) in nodes.iter().zip(&counts) {
            for (op_id, c) in count {
                if *c > 1 {
                    bad('b', format!("{op_id} applied {c} times on {}", n.node));
                }
            }
            for r in &n.rows {
                match ops.get(r.op_id.as_str()) {
                    None => bad(
                        'b',
                        format!(
                            "{} holds row {} of op_id {}, never sent",
                            n.node, r.key, r.op_id
                        ),
                    ),
                    Some(op) if op.key != r.key => bad(
                        'b',
                        format!(
                            "{} holds key {} for {}, which sent key {}",
                            n.node, r.key, r.op_id, op.key
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        for (op_id, op) in &ops {
            let seqs: BTreeSet<u64> = op.answers.iter().filter_map(|a| a.acked_seq()).collect();
            if seqs.len() > 1 {
                bad(
                    'b',
                    format!("{op_id} acknowledged with different seqs {seqs:?}"),
                );
            }
        }

        // (c) equal checksums.
        if let Some(first) = nodes.first() {
            for n in &nodes[1..] {
                if n.checksum != first.checksum {
                    bad(
                        'c',
                        format!(
                            "checksum on {} ({}) differs from {} ({})",
                            n.node, n.checksum, first.node, first.checksum
                        ),
                    );
                }
            }
        }

        // (d) reads with min_seq see every write acknowledged at or below it.
        for r in &self.reads {
            let Ok(rows) = &r.rows else { continue };
            let seen: BTreeSet<&str> = rows.iter().map(|row| row.op_id.as_str()).collect();
            for (op_id, op) in &ops {
                if let Some(seq) = op.acked() {
                    if seq <= r.min_seq && !seen.contains(op_id) {
                        bad(
                            'd',
                            format!(
                                "read on {} with min_seq {} (at {:?}) lacks {op_id}, acknowledged at seq {seq}",
                                r.node, r.min_seq, r.start
                            ),
                        );
                    }
                }
            }
        }

        // (e) unanswered writes at most once; refused ones nowhere.
        for (op_id, op) in &ops {
            if op.acked().is_some() {
                continue;
            }
            let maybe = op.answers.iter().any(|a| a.indeterminate());
            for (n, count) in nodes.iter().zip(&counts) {
                let c = count.get(op_id).copied().unwrap_or(0);
                if maybe && c > 1 {
                    bad(
                        'e',
                        format!(
                            "{op_id}, never acknowledged, applied {c} times on {}",
                            n.node
                        ),
                    );
                } else if !maybe && c > 0 {
                    let answers: Vec<_> = op.answers.iter().collect();
                    bad(
                        'e',
                        format!("{op_id}, refused ({answers:?}), is applied on {}", n.node),
                    );
                }
            }
        }
        v
    }

    /// Panics with the violations (the first 30) and the seed to replay, if any; else prints
    /// a summary.
    pub fn assert_clean(&self, what: &str, nodes: &[NodeState]) {
        let v = self.check(nodes);
        let rows: Vec<_> = nodes.iter().map(|n| (&n.node, n.rows.len())).collect();
        eprintln!(
            "[{what}] history: {} write attempts, {} reads, answers {:?}; rows per node {rows:?}; {} violations",
            self.writes.len(),
            self.reads.len(),
            self.summary(),
            v.len()
        );
        if !v.is_empty() {
            let shown: Vec<String> = v.iter().take(30).map(Violation::to_string).collect();
            panic!(
                "[{what}] {} violations (replay with DDB_CHAOS_SEED={}):\n{}",
                v.len(),
                self.seed,
                shown.join("\n")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn write(op_id: &str, key: i64, answer: Answer) -> WriteRecord {
        WriteRecord {
            op_id: op_id.into(),
            key,
            target: "writer".into(),
            start: ms(0),
            end: ms(1),
            answer,
        }
    }

    fn ok(seq: u64) -> Answer {
        Answer::Ok {
            node: "master".into(),
            seq,
        }
    }

    fn refused(code: ErrorCode) -> Answer {
        Answer::Refused {
            node: "master".into(),
            code,
        }
    }

    fn row(key: i64, op_id: &str) -> Row {
        Row {
            key,
            op_id: op_id.into(),
        }
    }

    fn node(name: &str, rows: Vec<Row>, checksum: &str) -> NodeState {
        NodeState {
            node: name.into(),
            rows,
            checksum: checksum.into(),
        }
    }

    /// Three writes: one acknowledged, one retried after a timeout and then answered
    /// duplicate, one refused; one unanswered write that did land; two nodes alike.
    fn good() -> (History, Vec<NodeState>) {
        let mut h = History::new(42);
        h.writes.push(write("w1", 1, ok(10)));
        h.writes.push(write(
            "w2",
            2,
            Answer::NoReply {
                detail: "timed out".into(),
            },
        ));
        h.writes.push(write(
            "w2",
            2,
            Answer::Duplicate {
                node: "slave1".into(),
                seq: 11,
            },
        ));
        h.writes.push(write("w3", 3, refused(ErrorCode::ReadOnly)));
        h.writes
            .push(write("w4", 4, refused(ErrorCode::Unavailable)));
        h.reads.push(ReadRecord {
            node: "slave1".into(),
            min_seq: 11,
            start: ms(5),
            end: ms(6),
            rows: Ok(vec![row(1, "w1"), row(2, "w2")]),
        });
        h.reads.push(ReadRecord {
            node: "slave2".into(),
            min_seq: 11,
            start: ms(5),
            end: ms(6),
            rows: Err("timeout".into()),
        });
        let rows = vec![row(1, "w1"), row(2, "w2"), row(4, "w4")];
        let nodes = vec![
            node("master", rows.clone(), "abc"),
            node("slave1", rows, "abc"),
        ];
        (h, nodes)
    }

    fn properties(v: &[Violation]) -> BTreeSet<char> {
        v.iter().map(|v| v.property).collect()
    }

    #[test]
    fn a_good_history_passes() {
        let (h, nodes) = good();
        assert_eq!(h.check(&nodes), vec![]);
        h.assert_clean("good", &nodes);
        assert_eq!(h.max_acked_seq(), 11);
    }

    #[test]
    fn a_missing_acknowledged_write_fails_a() {
        let (h, mut nodes) = good();
        nodes[1].rows.retain(|r| r.op_id != "w1");
        let v = h.check(&nodes);
        assert!(properties(&v).contains(&'a'), "{v:?}");
        assert!(v[0].detail.contains("w1") && v[0].detail.contains("slave1"));
        // A write acknowledged only as a duplicate counts as acknowledged too.
        let (h, mut nodes) = good();
        nodes[0].rows.retain(|r| r.op_id != "w2");
        assert_eq!(properties(&h.check(&nodes)), BTreeSet::from(['a']));
    }

    #[test]
    fn an_op_id_applied_twice_fails_b() {
        let (h, mut nodes) = good();
        for n in &mut nodes {
            n.rows.push(row(1, "w1"));
        }
        let v = h.check(&nodes);
        assert_eq!(properties(&v), BTreeSet::from(['b']), "{v:?}");
        // Rows nobody sent, or with another key than sent, are not from this workload.
        let (h, mut nodes) = good();
        nodes[0].rows.push(row(9, "ghost"));
        nodes[1].rows.push(row(9, "ghost"));
        assert_eq!(properties(&h.check(&nodes)), BTreeSet::from(['b']));
        let (h, mut nodes) = good();
        for n in &mut nodes {
            n.rows[0].key = 99;
        }
        assert!(properties(&h.check(&nodes)).contains(&'b'));
        // Two different seqs for one op_id: it was logged twice.
        let (mut h, nodes) = good();
        h.writes.push(write("w1", 1, ok(12)));
        assert_eq!(properties(&h.check(&nodes)), BTreeSet::from(['b']));
    }

    #[test]
    fn different_checksums_fail_c() {
        let (h, mut nodes) = good();
        nodes[1].checksum = "abd".into();
        assert_eq!(properties(&h.check(&nodes)), BTreeSet::from(['c']));
        assert_eq!(properties(&h.check(&[])), BTreeSet::from(['c']));
    }

    #[test]
    fn a_stale_read_fails_d() {
        let (mut h, nodes) = good();
        // w2 was acknowledged at 11: a read with min_seq 11 must show it, one with 10 need not.
        h.reads.push(ReadRecord {
            node: "slave2".into(),
            min_seq: 11,
            start: ms(7),
            end: ms(8),
            rows: Ok(vec![row(1, "w1")]),
        });
        let v = h.check(&nodes);
        assert_eq!(properties(&v), BTreeSet::from(['d']), "{v:?}");
        assert!(v[0].detail.contains("w2"));
        let (mut h, nodes) = good();
        h.reads.push(ReadRecord {
            node: "slave2".into(),
            min_seq: 10,
            start: ms(7),
            end: ms(8),
            rows: Ok(vec![row(1, "w1")]),
        });
        assert_eq!(h.check(&nodes), vec![]);
    }

    #[test]
    fn an_unanswered_write_applied_twice_or_a_refused_one_applied_fails_e() {
        let (h, mut nodes) = good();
        nodes[0].rows.push(row(4, "w4"));
        let v = h.check(&nodes);
        assert!(properties(&v).contains(&'e'), "{v:?}");
        assert!(v
            .iter()
            .any(|v| v.property == 'e' && v.detail.contains("w4")));
        // read_only is a definite answer: the write must be nowhere.
        let (h, mut nodes) = good();
        for n in &mut nodes {
            n.rows.push(row(3, "w3"));
        }
        let v = h.check(&nodes);
        assert_eq!(properties(&v), BTreeSet::from(['e']), "{v:?}");
    }

    #[test]
    #[should_panic(expected = "DDB_CHAOS_SEED=42")]
    fn a_violation_names_the_seed() {
        let (h, mut nodes) = good();
        nodes[1].checksum = "x".into();
        h.assert_clean("bad", &nodes);
    }
}
