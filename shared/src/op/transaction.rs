//! TRANSACTION: writes of one database that every node applies all together or not at all.
//! One log entry carries the whole transaction, so atomicity on the writer is atomicity
//! everywhere.

use super::{parse_op_fields, Fields, Op, WriteOp};
use crate::error::DdbError;
use crate::value::json_kind;
use crate::Limits;
use serde_json::Value as Json;

pub(super) fn parse(f: &mut Fields, limits: &Limits) -> Result<WriteOp, DdbError> {
    let db = f.name("db")?;
    let items = match f.require("ops")? {
        Json::Array(items) => items,
        other => {
            return Err(DdbError::bad_request(format!(
                "TRANSACTION ops must be a list of write ops, got {}",
                json_kind(&other)
            )))
        }
    };
    if items.is_empty() {
        return Err(DdbError::bad_request("TRANSACTION ops is an empty list"));
    }
    if items.len() > limits.max_tx_ops {
        return Err(DdbError::too_large(format!(
            "TRANSACTION has {} ops; the limit is {} (--max-tx-ops)",
            items.len(),
            limits.max_tx_ops
        )));
    }
    let mut ops = Vec::with_capacity(items.len());
    let mut rows = 0usize;
    for (i, item) in items.into_iter().enumerate() {
        let op = parse_inner(item, &db, limits).map_err(|e| {
            let mut e = DdbError::new(e.code, format!("op {i}: {}", e.message));
            e.op_index = Some(i);
            e
        })?;
        if let WriteOp::Insert(ins) = &op {
            rows += ins.rows.len();
            if rows > limits.max_rows_per_insert {
                return Err(DdbError::too_large(format!(
                    "the INSERTs of this TRANSACTION carry more than {} rows together",
                    limits.max_rows_per_insert
                )));
            }
        }
        ops.push(op);
    }
    Ok(WriteOp::Transaction { db, ops })
}

fn parse_inner(item: Json, db: &crate::Name, limits: &Limits) -> Result<WriteOp, DdbError> {
    let Json::Object(mut map) = item else {
        return Err(DdbError::bad_request(format!(
            "must be a JSON object with an \"op\" field, got {}",
            json_kind(&item)
        )));
    };
    for envelope in ["op_id", "min_seq"] {
        if map.contains_key(envelope) {
            return Err(DdbError::bad_request(format!(
                "{envelope} belongs on the TRANSACTION, not on the ops inside it"
            )));
        }
    }
    // The database may be left out inside; if given, it must be the transaction's.
    if !map.contains_key("db") {
        map.insert("db".to_owned(), Json::String(db.to_string()));
    }
    let mut fields = Fields::new(map);
    let op = parse_op_fields(&mut fields, limits)?;
    fields.finish(op.name())?;
    let op = match op {
        Op::Read(r) => {
            return Err(DdbError::bad_request(format!(
                "{} is a read; reads inside a TRANSACTION are refused (read before it, and use expect to check what you read)",
                r.name()
            )))
        }
        Op::Write(w) => w,
    };
    match &op {
        WriteOp::CreateDb { .. } | WriteOp::DropDb { .. } | WriteOp::Transaction { .. } => {
            return Err(DdbError::bad_request(format!(
                "{} cannot be part of a TRANSACTION",
                op.name()
            )))
        }
        _ => {}
    }
    if op.db() != db {
        return Err(DdbError::bad_request(format!(
            "is on database {}; every op of a TRANSACTION is on its database {db}",
            op.db()
        )));
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorCode;
    use crate::op::{parse_request, Limits, Op, WriteOp};

    fn parse(json: &str) -> Result<WriteOp, crate::DdbError> {
        parse_request(json.as_bytes(), &Limits::default()).map(|r| match r.op {
            Op::Write(w) => w,
            other => panic!("not a write: {other:?}"),
        })
    }

    #[test]
    fn a_transaction_round_trips_through_its_log_form() {
        let op = parse(
            r#"{"op":"TRANSACTION","db":"Bank","ops":[
                {"op":"UPDATE","table":"a","data":{"b":1},"condition":{"id":1,"b":2},"expect":{"affected":1}},
                {"op":"INSERT","db":"bank","table":"a","data":[{"id":3}]},
                {"op":"DELETE","table":"a","condition":{"id":4},"expect":{"affected":0}}]}"#,
        )
        .unwrap();
        let WriteOp::Transaction { db, ops } = &op else {
            panic!("{op:?}")
        };
        assert_eq!(db.as_str(), "bank");
        assert_eq!(ops.len(), 3);
        assert!(ops.iter().all(|o| o.db().as_str() == "bank"));
        let again = parse(&op.to_json().to_string()).unwrap();
        assert_eq!(again, op);
    }

    #[test]
    fn bad_transactions_are_typed_errors() {
        let cases = [
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[]}"#,
                ErrorCode::BadRequest,
                "empty",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":{}}"#,
                ErrorCode::BadRequest,
                "list",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d"}"#,
                ErrorCode::BadRequest,
                "ops",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[1]}"#,
                ErrorCode::BadRequest,
                "op 0",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"INSERT","db":"e","table":"t","data":{"a":1}}]}"#,
                ErrorCode::BadRequest,
                "database e",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"CREATE_DB"}]}"#,
                ErrorCode::BadRequest,
                "cannot be part",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DROP_DB"}]}"#,
                ErrorCode::BadRequest,
                "cannot be part",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"TRANSACTION","ops":[{"op":"DELETE","table":"t","condition":{}}]}]}"#,
                ErrorCode::BadRequest,
                "cannot be part",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"SEARCH","table":"t"}]}"#,
                ErrorCode::BadRequest,
                "reads inside",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DELETE","table":"t","condition":{},"op_id":"x"}]}"#,
                ErrorCode::BadRequest,
                "op_id belongs",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DELETE","table":"t","condition":{},"min_seq":1}]}"#,
                ErrorCode::BadRequest,
                "min_seq belongs",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DELETE","table":"t","condition":{},"bogus":1}]}"#,
                ErrorCode::BadRequest,
                "unknown field",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DELETE","table":"t","condition":{},"expect":{"affected":-1}}]}"#,
                ErrorCode::BadRequest,
                "expect",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DELETE","table":"t","condition":{},"expect":{"rows":1}}]}"#,
                ErrorCode::BadRequest,
                "expect",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DELETE","table":"t","condition":{},"expect":{"affected":1,"x":2}}]}"#,
                ErrorCode::BadRequest,
                "expect",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DELETE","table":"1t","condition":{}}]}"#,
                ErrorCode::InvalidName,
                "op 0",
            ),
            (
                r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DELETE","table":"t","condition":{}}],"min_seq":3}"#,
                ErrorCode::BadRequest,
                "min_seq",
            ),
        ];
        for (json, code, needle) in cases {
            let e = parse(json).unwrap_err();
            assert_eq!(e.code, code, "{json}: {e}");
            assert!(e.message.contains(needle), "{json}: {e}");
        }
        let e = parse(r#"{"op":"TRANSACTION","db":"d","ops":[{"op":"DELETE","table":"t","condition":{}},{"op":"FLY"}]}"#).unwrap_err();
        assert_eq!(e.op_index, Some(1));
    }

    #[test]
    fn transactions_are_bounded_in_ops_and_rows() {
        let limits = Limits {
            max_tx_ops: 2,
            max_rows_per_insert: 3,
            ..Limits::default()
        };
        let parse = |json: &str| parse_request(json.as_bytes(), &limits);
        let del = r#"{"op":"DELETE","table":"t","condition":{}}"#;
        let e = parse(&format!(
            r#"{{"op":"TRANSACTION","db":"d","ops":[{del},{del},{del}]}}"#
        ))
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        let ins = r#"{"op":"INSERT","table":"t","data":[{"a":1},{"a":2}]}"#;
        let e = parse(&format!(
            r#"{{"op":"TRANSACTION","db":"d","ops":[{ins},{ins}]}}"#
        ))
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        assert!(parse(&format!(
            r#"{{"op":"TRANSACTION","db":"d","ops":[{ins},{del}]}}"#
        ))
        .is_ok());
    }
}
