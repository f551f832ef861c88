//! A write waiting for its database's writer: what intake hands over and the writer answers.

use super::reply_to::ReplyTo;
use crate::op::WriteOp;
use std::sync::Arc;

pub(crate) struct Job {
    pub op: Arc<WriteOp>,
    pub op_id: Option<String>,
    pub reply: ReplyTo,
}

impl Job {
    /// Ops that can share a transaction and a log entry with others: those without an op_id
    /// (which needs an entry of its own to be the entry's `Nats-Msg-Id`) and not CREATE_DB or
    /// DROP_DB (which start or end a database).
    pub fn batchable(&self) -> bool {
        self.op_id.is_none()
            && !matches!(*self.op, WriteOp::CreateDb { .. } | WriteOp::DropDb { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{parse_request, Limits, Op};

    fn job(json: &str) -> Job {
        let request = parse_request(json.as_bytes(), &Limits::default()).expect("valid request");
        let Op::Write(op) = request.op else {
            panic!("not a write: {json}")
        };
        Job {
            op: Arc::new(op),
            op_id: request.op_id,
            reply: ReplyTo::local("ddb.ops").0,
        }
    }

    #[test]
    fn writes_without_an_op_id_share_a_batch() {
        for json in [
            r#"{"op":"INSERT","db":"d","table":"t","data":{"id":1}}"#,
            r#"{"op":"UPDATE","db":"d","table":"t","data":{"v":2},"condition":{"id":1}}"#,
            r#"{"op":"DELETE","db":"d","table":"t","condition":{"id":1}}"#,
            r#"{"op":"CREATE_TABLE","db":"d","table":"t","data":{"id":"int"}}"#,
            r#"{"op":"DROP_TABLE","db":"d","table":"t"}"#,
            r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"INSERT","db":"d","table":"t","data":{"id":1}}]}"#,
        ] {
            assert!(job(json).batchable(), "{json}");
        }
    }

    #[test]
    fn a_write_with_an_op_id_goes_alone() {
        // Its entry carries the op_id as its Nats-Msg-Id: one op_id per entry.
        let json = r#"{"op":"INSERT","db":"d","table":"t","data":{"id":1},"op_id":"k-1"}"#;
        assert!(!job(json).batchable());
    }

    #[test]
    fn creating_or_dropping_a_database_goes_alone() {
        assert!(!job(r#"{"op":"CREATE_DB","db":"d"}"#).batchable());
        assert!(!job(r#"{"op":"DROP_DB","db":"d"}"#).batchable());
        assert!(!job(r#"{"op":"CREATE_DB","db":"d","op_id":"k-2"}"#).batchable());
    }
}
