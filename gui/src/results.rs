//! The outcome of the last request (or verification): waiting, a reply, or the reason there
//! is none; and how a reply is shown (SEARCH rows as a table, or the raw JSON).

use crate::form::OpKind;
use crate::nodes::Nodes;
use crate::verify::{Verified, VerifyPending};
use ddb::client::Target;
use ddb::reply::Reply;
use ddb::{DdbError, ErrorCode};
use serde_json::{Map, Value as Json};
use std::time::{Duration, Instant};

/// A request sent and not answered yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: u64,
    pub op: OpKind,
    pub title: String,
    pub target: Target,
    pub target_label: String,
    pub request: Json,
    /// Which page of a SEARCH this asks for; `None` when not known (a cursor typed by
    /// hand) or not a SEARCH.
    pub page: Option<u32>,
    pub started: Instant,
}

/// The page a SEARCH sent from the form asks for: the first, unless it carries a cursor
/// (typed by hand, so its page is unknown).
pub fn first_page(op: OpKind, request: &Json) -> Option<u32> {
    (op == OpKind::Search && request.get("after").is_none()).then_some(1)
}

/// A request and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub id: u64,
    pub op: OpKind,
    pub title: String,
    pub target: Target,
    pub target_label: String,
    pub request: Json,
    /// See [`Pending::page`].
    pub page: Option<u32>,
    /// The node's reply (which may be an error reply), or why there was none.
    pub result: Result<Reply, DdbError>,
    pub elapsed: Duration,
}

impl Done {
    pub fn from_pending(p: Pending, result: Result<Reply, DdbError>, elapsed: Duration) -> Self {
        Done {
            id: p.id,
            op: p.op,
            title: p.title,
            target: p.target,
            target_label: p.target_label,
            request: p.request,
            page: p.page,
            result,
            elapsed,
        }
    }

    pub fn is_ok(&self) -> bool {
        matches!(&self.result, Ok(r) if r.ok)
    }

    /// The error, from the node's reply or from the transport.
    pub fn error(&self) -> Option<DdbError> {
        match &self.result {
            Ok(r) if r.ok => None,
            Ok(r) => Some(r.as_error().unwrap_or_else(|| {
                DdbError::internal("the node replied ok:false without an error")
            })),
            Err(e) => Some(e.clone()),
        }
    }

    pub fn reply(&self) -> Option<&Reply> {
        self.result.as_ref().ok()
    }

    /// The node that answered, when one did.
    pub fn node(&self) -> Option<&str> {
        self.reply()
            .map(|r| r.node.as_str())
            .filter(|n| !n.is_empty())
    }

    /// A one-line summary: "1 row · seq 4 · master", "table_not_found · slave1".
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        match self.error() {
            Some(e) => parts.push(match e.op_index {
                Some(i) => format!("{} at op {i}", e.code),
                None => e.code.to_string(),
            }),
            None => {
                let r = self.reply().cloned().unwrap_or_default();
                if let Some(results) = &r.results {
                    parts.push(plural(results.len() as u64, "op"));
                }
                if let Some(rows) = &r.rows {
                    parts.push(plural(rows.len() as u64, "row"));
                    parts.extend(self.page_label());
                } else if let Some(tables) = &r.tables {
                    parts.push(plural(tables.len() as u64, "table"));
                } else if let Some(n) = r.affected.filter(|_| self.counts_rows()) {
                    parts.push(format!("{} affected", plural(n, "row")));
                } else {
                    parts.push("ok".to_owned());
                }
                if r.duplicate {
                    parts.push("duplicate".to_owned());
                }
                if let Some(seq) = r.seq {
                    parts.push(format!("seq {seq}"));
                }
            }
        }
        if let Some(node) = self.node() {
            parts.push(node.to_owned());
        }
        parts.join(" · ")
    }

    /// The cursor of the page after this one, when a SEARCH reply says more rows follow.
    pub fn next_cursor(&self) -> Option<&str> {
        self.reply()
            .filter(|r| r.ok && self.op == OpKind::Search)
            .and_then(|r| r.next.as_deref())
    }

    /// The same SEARCH again, asking for the rows after this page: the cursor only
    /// belongs to the request it came from, so nothing else may change.
    pub fn next_page_request(&self) -> Option<Json> {
        let cursor = self.next_cursor()?;
        let mut request = self.request.clone();
        request
            .as_object_mut()?
            .insert("after".into(), Json::String(cursor.to_owned()));
        Some(request)
    }

    /// "page 2, more follow", "page 3 (last)"; nothing for a SEARCH that came back whole.
    pub fn page_label(&self) -> Option<String> {
        let more = self.next_cursor().is_some();
        match self.page {
            Some(1) if !more => None,
            Some(n) if more => Some(format!("page {n}, more follow")),
            Some(n) => Some(format!("page {n} (last)")),
            None if more => Some("more follow".to_owned()),
            None => None,
        }
    }

    /// Whether `affected` means something for this op (row writes, not DDL; for a
    /// TRANSACTION, the sum over its ops).
    pub fn counts_rows(&self) -> bool {
        matches!(
            self.op,
            OpKind::Insert | OpKind::Update | OpKind::Delete | OpKind::Transaction
        )
    }

    /// A TRANSACTION's ops with what became of each: rows affected, or which one failed
    /// (`error.op_index`) while the others were not applied. `None` for other ops, and
    /// when no node answered (then nobody knows).
    pub fn tx_lines(&self) -> Option<Vec<TxLine>> {
        if self.op != OpKind::Transaction {
            return None;
        }
        let reply = self.reply()?;
        let ops = self.request.get("ops")?.as_array()?;
        let error = self.error();
        Some(
            ops.iter()
                .enumerate()
                .map(|(i, op)| {
                    let name = op.get("op").and_then(Json::as_str).unwrap_or("?");
                    let kind = OpKind::from_name(name);
                    let (outcome, failed) = match &error {
                        Some(e) if e.op_index == Some(i) => (format!("failed: {}", e.code), true),
                        Some(_) => ("not applied".to_owned(), false),
                        None => {
                            let affected = reply
                                .results
                                .as_ref()
                                .and_then(|r| r.get(i))
                                .map(|r| r.affected);
                            let rows = matches!(
                                kind,
                                Some(OpKind::Insert | OpKind::Update | OpKind::Delete)
                            );
                            match affected {
                                Some(n) if rows => {
                                    (format!("{} affected", plural(n, "row")), false)
                                }
                                _ => ("ok".to_owned(), false),
                            }
                        }
                    };
                    TxLine {
                        index: i,
                        op: describe_op(op),
                        outcome,
                        failed,
                    }
                })
                .collect(),
        )
    }

    /// The reply (or the transport error) as pretty JSON, for the raw view and the clipboard.
    pub fn raw_json(&self) -> String {
        let value = match &self.result {
            Ok(r) => serde_json::to_value(r).unwrap_or(Json::Null),
            Err(e) => {
                serde_json::json!({"ok": false, "error": {"code": e.code, "message": e.message}, "transport": true})
            }
        };
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }

    /// Advice for errors a person can act on: where to send a refused write, and so on.
    pub fn hint(&self, nodes: &Nodes, prefix: &str) -> Option<String> {
        let e = self.error()?;
        let advice = self.advice(&e, nodes, prefix);
        // A TRANSACTION that failed in one op: say which, and that the others did not land.
        let failed_op = e
            .op_index
            .filter(|_| self.op == OpKind::Transaction)
            .map(|i| {
                let op = self
                    .request
                    .get("ops")
                    .and_then(|ops| ops.get(i))
                    .map(describe_op)
                    .unwrap_or_default();
                format!("Op {i} ({op}) failed, so nothing of the transaction was applied.")
            });
        match (failed_op, advice) {
            (Some(op), Some(advice)) => Some(format!("{op} {advice}")),
            (op, advice) => op.or(advice),
        }
    }

    fn advice(&self, e: &DdbError, nodes: &Nodes, prefix: &str) -> Option<String> {
        match e.code {
            ErrorCode::ReadOnly => {
                let writers: Vec<String> = nodes
                    .writers()
                    .iter()
                    .map(|n| format!("{} ({prefix}.node.{})", n.name, n.name))
                    .collect();
                let node = self.node().unwrap_or("this node");
                Some(if writers.is_empty() {
                    format!(
                        "{node} is a read-only replica. Send writes to Writer ({prefix}.ops): whichever node takes writes answers there."
                    )
                } else {
                    format!(
                        "{node} is a read-only replica. Send writes to Writer ({prefix}.ops), or directly to {}.",
                        writers.join(" or ")
                    )
                })
            }
            ErrorCode::Timeout if self.reply().is_none() => Some(match &self.target {
                Target::Writer => format!(
                    "No writer answered on {prefix}.ops. Is the master up? Slaves take over after their failover delay."
                ),
                Target::Node(n) => format!("Node {n} did not answer. Is it running? Check the Nodes panel."),
                Target::AnyReplica => format!(
                    "No node answered on {prefix}.reads. Is any node up? Check the Nodes panel."
                ),
            }),
            ErrorCode::BadRequest if self.refused_by_reads() => Some(format!(
                "Any replica ({prefix}.reads) serves reads only (SEARCH, CHECKSUM). Send writes to Writer ({prefix}.ops)."
            )),
            ErrorCode::Unavailable if self.reply().is_none() => {
                Some("The request could not be sent: check the NATS connection in the header.".into())
            }
            ErrorCode::DbNotFound => Some("Create it first with CREATE_DB.".into()),
            ErrorCode::TableNotFound if self.op != OpKind::DropTable => {
                Some("Create it first with CREATE_TABLE.".into())
            }
            ErrorCode::IndexExists => Some(
                "Index names are unique within a database: pick another name, or DROP_INDEX the old one first.".into(),
            ),
            ErrorCode::IndexNotFound => Some(
                "No index of that name in this database: check the name it was created with.".into(),
            ),
            ErrorCode::TooLarge if self.op == OpKind::Search => Some(
                "Too many rows for one reply: set a limit, then use Next page for the rest.".into(),
            ),
            ErrorCode::Timeout if self.request.get("min_seq").is_some() => Some(
                "The node has not applied the log up to min_seq yet; is it lagging or broken?".into(),
            ),
            ErrorCode::PreconditionFailed => Some(
                "The op touched another number of rows than its expect: the rows changed since they were read? Read them again and retry.".into(),
            ),
            _ => None,
        }
    }

    /// Whether a "send it to the writer" button makes sense.
    pub fn can_resend_to_writer(&self) -> bool {
        (self.error().is_some_and(|e| e.code == ErrorCode::ReadOnly)
            && self.target != Target::Writer)
            || self.refused_by_reads()
    }

    /// A write sent to Any replica, refused there with `bad_request` (reads only).
    fn refused_by_reads(&self) -> bool {
        self.target == Target::AnyReplica
            && self.op.is_write()
            && self
                .error()
                .is_some_and(|e| e.code == ErrorCode::BadRequest)
    }
}

/// One op of a TRANSACTION in its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxLine {
    pub index: usize,
    /// `UPDATE users`, `CREATE_INDEX users.by_name`.
    pub op: String,
    /// `1 row affected`, `ok`, `failed: precondition_failed`, `not applied`.
    pub outcome: String,
    pub failed: bool,
}

/// An op of a TRANSACTION request, for people: its name and its table (and index).
fn describe_op(op: &Json) -> String {
    let name = op.get("op").and_then(Json::as_str).unwrap_or("?");
    let table = op.get("table").and_then(Json::as_str);
    let index = op.get("index").and_then(Json::as_str);
    match (table, index) {
        (Some(t), Some(i)) => format!("{name} {t}.{i}"),
        (Some(t), None) => format!("{name} {t}"),
        _ => name.to_owned(),
    }
}

/// The results area.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Outcome {
    #[default]
    Idle,
    Pending(Pending),
    /// Boxed: a reply is much larger than the other variants.
    Done(Box<Done>),
    /// The Verify button was pressed; the worker is asking the nodes.
    Verifying(VerifyPending),
    Verified(Verified),
}

impl Outcome {
    pub fn pending_id(&self) -> Option<u64> {
        match self {
            Outcome::Pending(p) => Some(p.id),
            _ => None,
        }
    }

    /// A request or a verification is running: Execute and Verify wait for it.
    pub fn is_pending(&self) -> bool {
        matches!(self, Outcome::Pending(_) | Outcome::Verifying(_))
    }
}

/// How a reply with rows is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultView {
    #[default]
    Table,
    Json,
}

/// A table to draw: header and cell texts, in the reply's column order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grid {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub null: bool,
    pub numeric: bool,
}

/// The rows of a SEARCH reply as a grid: columns in the order the reply gives them (the
/// table's order), extra keys of later rows appended.
pub fn rows_grid(rows: &[Map<String, Json>]) -> Grid {
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !columns.iter().any(|c| c == key) {
                columns.push(key.clone());
            }
        }
    }
    let rows = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| cell(row.get(c).unwrap_or(&Json::Null)))
                .collect()
        })
        .collect();
    Grid { columns, rows }
}

/// CHECKSUM's tables as a grid.
pub fn checksum_grid(reply: &Reply) -> Option<Grid> {
    let tables = reply.tables.as_ref()?;
    Some(Grid {
        columns: vec!["table".into(), "rows".into(), "checksum".into()],
        rows: tables
            .iter()
            .map(|t| {
                vec![
                    cell(&Json::String(t.table.clone())),
                    cell(&Json::from(t.rows)),
                    cell(&Json::String(t.checksum.clone())),
                ]
            })
            .collect(),
    })
}

pub fn cell(v: &Json) -> Cell {
    match v {
        Json::Null => Cell {
            text: "NULL".into(),
            null: true,
            numeric: false,
        },
        Json::String(s) => Cell {
            text: s.clone(),
            null: false,
            numeric: false,
        },
        Json::Number(n) => Cell {
            text: n.to_string(),
            null: false,
            numeric: true,
        },
        other => Cell {
            text: other.to_string(),
            null: false,
            numeric: false,
        },
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::tests::hb;
    use ddb::heartbeat::{Mode, Role};
    use ddb::reply::TableChecksum;
    use serde_json::json;

    fn done(target: Target, result: Result<Reply, DdbError>) -> Done {
        Done {
            id: 1,
            op: OpKind::Search,
            title: "SEARCH mydb.users".into(),
            target,
            target_label: "x".into(),
            request: json!({"op":"SEARCH","db":"mydb","table":"users"}),
            page: Some(1),
            result,
            elapsed: Duration::from_millis(3),
        }
    }

    fn reply(v: Json) -> Reply {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn grids_keep_the_reply_column_order() {
        let r = reply(json!({"ok":true,"node":"m","seq":4,"rows":[
            {"id":1,"name":"Alice","score":null},
            {"id":2,"name":"Bob","score":1.5,"extra":true}
        ]}));
        let g = rows_grid(r.rows.as_ref().unwrap());
        assert_eq!(g.columns, ["id", "name", "score", "extra"]);
        assert_eq!(g.rows[0][1].text, "Alice");
        assert!(g.rows[0][2].null && g.rows[0][2].text == "NULL");
        assert!(g.rows[0][3].null);
        assert!(g.rows[1][2].numeric && g.rows[1][2].text == "1.5");
        assert_eq!(g.rows[1][3].text, "true");
        assert_eq!(rows_grid(&[]), Grid::default());
    }

    #[test]
    fn checksum_replies_become_a_grid() {
        let mut r = Reply::ok("slave1");
        r.tables = Some(vec![TableChecksum {
            table: "users".into(),
            rows: 3,
            checksum: "ab12".into(),
        }]);
        let g = checksum_grid(&r).unwrap();
        assert_eq!(g.columns, ["table", "rows", "checksum"]);
        assert_eq!(g.rows[0][1].text, "3");
        assert!(checksum_grid(&Reply::ok("x")).is_none());
    }

    #[test]
    fn summaries() {
        let ok = done(
            Target::Writer,
            Ok(reply(
                json!({"ok":true,"node":"master","seq":4,"rows":[{"id":1}]}),
            )),
        );
        assert_eq!(ok.summary(), "1 row · seq 4 · master");
        assert!(ok.is_ok() && ok.error().is_none());
        let mut w = done(
            Target::Writer,
            Ok(reply(
                json!({"ok":true,"node":"master","seq":5,"affected":2,"duplicate":true}),
            )),
        );
        w.op = OpKind::Update;
        assert_eq!(w.summary(), "2 rows affected · duplicate · seq 5 · master");
        let mut ddl = done(
            Target::Writer,
            Ok(reply(
                json!({"ok":true,"node":"master","seq":1,"affected":0}),
            )),
        );
        ddl.op = OpKind::CreateDb;
        assert_eq!(ddl.summary(), "ok · seq 1 · master");
        let bare = done(
            Target::Writer,
            Ok(reply(json!({"ok":true,"node":"master","seq":6}))),
        );
        assert_eq!(bare.summary(), "ok · seq 6 · master");
        let err = done(
            Target::Node("slave1".into()),
            Ok(reply(
                json!({"ok":false,"node":"slave1","error":{"code":"table_not_found","message":"table users does not exist in database mydb"}}),
            )),
        );
        assert_eq!(err.summary(), "table_not_found · slave1");
        assert_eq!(
            err.hint(&Nodes::default(), "ddb").unwrap(),
            "Create it first with CREATE_TABLE."
        );
        let t = done(
            Target::Node("slave1".into()),
            Err(DdbError::new(ErrorCode::Timeout, "no reply")),
        );
        assert_eq!(t.summary(), "timeout");
        assert!(t
            .hint(&Nodes::default(), "ddb")
            .unwrap()
            .contains("slave1 did not answer"));
        assert!(t.raw_json().contains("\"transport\": true"));
        assert!(err.raw_json().contains("table_not_found"));
        let broken = done(Target::Writer, Ok(reply(json!({"ok":false,"node":"m"}))));
        assert_eq!(broken.error().unwrap().code, ErrorCode::Internal);
    }

    #[test]
    fn search_pages_know_their_number_and_the_request_for_the_next() {
        let mut first = done(
            Target::Node("slave1".into()),
            Ok(reply(
                json!({"ok":true,"node":"slave1","rows":[{"id":1}],"next":"c1"}),
            )),
        );
        assert_eq!(first.next_cursor(), Some("c1"));
        assert_eq!(
            first.next_page_request().unwrap(),
            json!({"op":"SEARCH","db":"mydb","table":"users","after":"c1"})
        );
        assert_eq!(first.summary(), "1 row · page 1, more follow · slave1");
        first.page = Some(4);
        assert_eq!(first.page_label().as_deref(), Some("page 4, more follow"));
        let mut whole = done(
            Target::Writer,
            Ok(reply(json!({"ok":true,"node":"m","rows":[]}))),
        );
        assert_eq!(
            (whole.page_label(), whole.next_page_request()),
            (None, None)
        );
        assert_eq!(whole.summary(), "0 rows · m");
        whole.page = Some(2);
        assert_eq!(whole.page_label().as_deref(), Some("page 2 (last)"));
        // Only a SEARCH pages; `next` on anything else is not a cursor.
        let mut checksum = first.clone();
        checksum.op = OpKind::Checksum;
        assert_eq!(checksum.next_cursor(), None);
        assert_eq!(first_page(OpKind::Search, &json!({"op":"SEARCH"})), Some(1));
        assert_eq!(
            first_page(OpKind::Search, &json!({"op":"SEARCH","after":"c"})),
            None
        );
        assert_eq!(first_page(OpKind::Insert, &json!({"op":"INSERT"})), None);
    }

    #[test]
    fn schema_errors_and_too_large_searches_get_hints() {
        let hint = |op: OpKind, code: &str| {
            let mut d = done(
                Target::Writer,
                Ok(reply(
                    json!({"ok":false,"node":"master","error":{"code":code,"message":"m"}}),
                )),
            );
            d.op = op;
            d.hint(&Nodes::default(), "ddb")
        };
        assert!(hint(OpKind::CreateIndex, "index_exists")
            .unwrap()
            .contains("DROP_INDEX"));
        assert!(hint(OpKind::DropIndex, "index_not_found")
            .unwrap()
            .contains("No index"));
        assert!(hint(OpKind::Search, "too_large")
            .unwrap()
            .contains("Next page"));
        assert_eq!(hint(OpKind::DropTable, "table_not_found"), None);
        assert!(hint(OpKind::AddColumn, "table_not_found")
            .unwrap()
            .contains("CREATE_TABLE"));
    }

    #[test]
    fn read_only_refusals_say_where_to_send_the_write() {
        let refused = done(
            Target::Node("slave1".into()),
            Ok(reply(
                json!({"ok":false,"node":"slave1","error":{"code":"read_only","message":"node slave1 is a read-only replica"}}),
            )),
        );
        let hint = refused.hint(&Nodes::default(), "ddb").unwrap();
        assert!(hint.contains("Writer (ddb.ops)"), "{hint}");
        let mut nodes = Nodes::default();
        nodes.heartbeat(hb("master", Role::Master, Mode::Master, 1), Instant::now());
        nodes.heartbeat(hb("slave1", Role::Slave, Mode::Replica, 1), Instant::now());
        let hint = refused.hint(&nodes, "ddb").unwrap();
        assert!(hint.contains("slave1 is a read-only replica"), "{hint}");
        assert!(hint.contains("master (ddb.node.master)"), "{hint}");
        assert!(!hint.contains("slave1 (ddb.node.slave1)"), "{hint}");
        assert!(refused.can_resend_to_writer());
        let mut to_writer = refused.clone();
        to_writer.target = Target::Writer;
        assert!(!to_writer.can_resend_to_writer());
    }

    #[test]
    fn writes_refused_by_any_replica_say_where_to_send_them() {
        let mut refused = done(
            Target::AnyReplica,
            Ok(reply(
                json!({"ok":false,"node":"slave2","error":{"code":"bad_request","message":"ddb.reads serves reads only: send INSERT to ddb.ops"}}),
            )),
        );
        refused.op = OpKind::Insert;
        let hint = refused.hint(&Nodes::default(), "ddb").unwrap();
        assert!(hint.contains("Writer (ddb.ops)"), "{hint}");
        assert!(refused.can_resend_to_writer());
        let mut search = refused.clone();
        search.op = OpKind::Search;
        assert!(
            !search.can_resend_to_writer(),
            "a bad SEARCH is not a write"
        );
    }
}
