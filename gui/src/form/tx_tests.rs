//! TRANSACTION's editor and `expect`, without a window.

use super::*;
use serde_json::{json, Value as Json};

fn tx(m: TxMessage) -> Message {
    Message::Tx(m)
}

fn on(i: usize, m: Message) -> Message {
    Message::Tx(TxMessage::op(i, m))
}

fn edit(i: usize, field: Field, v: &str) -> Message {
    on(i, Message::Edited(field, v.to_owned()))
}

/// A TRANSACTION on mydb whose first op (added on picking it) is an INSERT into users.
fn transaction() -> Form {
    let mut f = Form::default();
    f.update(Message::Edited(Field::Db, "mydb".into()));
    f.update(Message::Edited(Field::Table, "users".into()));
    f.update(Message::OpSelected(OpKind::Transaction));
    f
}

#[test]
fn expect_is_sent_as_affected_on_update_and_delete() {
    let mut f = Form::default();
    for (field, v) in [
        (Field::Db, "mydb"),
        (Field::Table, "users"),
        (Field::Data, r#"{"name":"Alicia"}"#),
        (Field::Condition, r#"{"id":1,"name":"Alice"}"#),
        (Field::Expect, " 1 "),
    ] {
        f.update(Message::Edited(field, v.into()));
    }
    f.update(Message::OpSelected(OpKind::Update));
    assert!(f.visible_fields().contains(&Field::Expect));
    assert_eq!(
        f.build_request().unwrap(),
        json!({"op":"UPDATE","db":"mydb","table":"users","data":{"name":"Alicia"},"condition":{"id":1,"name":"Alice"},"expect":{"affected":1}})
    );
    f.update(Message::OpSelected(OpKind::Delete));
    f.update(Message::Edited(Field::Expect, "0".into()));
    assert_eq!(
        f.build_request().unwrap(),
        json!({"op":"DELETE","db":"mydb","table":"users","condition":{"id":1,"name":"Alice"},"expect":{"affected":0}})
    );
    f.update(Message::Edited(Field::Expect, "-1".into()));
    assert!(f.error(Field::Expect).unwrap().contains("number of rows"));
    f.update(Message::Edited(Field::Expect, String::new()));
    assert_eq!(f.error(Field::Expect), None, "empty: any number of rows");
    assert!(f.build_request().unwrap().get("expect").is_none());
    // Only UPDATE and DELETE take it.
    f.update(Message::Edited(Field::Expect, "2".into()));
    f.update(Message::OpSelected(OpKind::Insert));
    assert!(!f.visible_fields().contains(&Field::Expect));
    // Loaded back from the wire, and refused in another shape.
    let req =
        json!({"op":"DELETE","db":"mydb","table":"users","condition":{},"expect":{"affected":3}});
    let mut g = Form::from_request(&req).unwrap();
    assert_eq!(g.value(Field::Expect), "3");
    assert_eq!(g.build_request().unwrap(), req);
    for bad in [json!({"rows":1}), json!({"affected":-1}), json!(1)] {
        let e = Form::from_request(
            &json!({"op":"DELETE","db":"d","table":"t","condition":{},"expect":bad}),
        )
        .unwrap_err();
        assert!(e.starts_with("expect must be {\"affected\":N}"), "{e}");
    }
}

#[test]
fn a_transaction_builds_its_exact_json() {
    let mut f = transaction();
    assert_eq!(f.tx.len(), 1, "picking TRANSACTION starts with one op");
    assert_eq!(
        (f.tx[0].op, f.tx[0].value(Field::Table)),
        (OpKind::Insert, "users")
    );
    assert_eq!(f.visible_fields(), [Field::Db, Field::Ops, Field::OpId]);
    assert_eq!(f.tx[0].inner_fields(), [Field::Table, Field::Data]);
    f.update(edit(0, Field::Data, r#"{"id":2,"name":"Bob"}"#));
    f.update(tx(TxMessage::Add));
    assert_eq!(
        (f.tx[1].op, f.tx[1].value(Field::Table)),
        (OpKind::Insert, "users"),
        "a new op is like the last"
    );
    f.update(on(1, Message::OpSelected(OpKind::Update)));
    assert_eq!(
        f.tx[1].inner_fields(),
        [Field::Table, Field::Data, Field::Condition, Field::Expect]
    );
    f.update(edit(1, Field::Data, r#"{"name":"Alicia"}"#));
    f.update(edit(1, Field::Condition, r#"{"id":1,"name":"Alice"}"#));
    f.update(edit(1, Field::Expect, "1"));
    f.update(tx(TxMessage::Add));
    f.update(on(2, Message::OpSelected(OpKind::CreateIndex)));
    f.update(edit(2, Field::Index, "by_name"));
    f.update(edit(2, Field::IndexColumns, "name"));
    f.update(on(2, Message::Unique(true)));
    f.update(Message::Edited(Field::OpId, "tx-1".into()));
    let built = f.build_request().unwrap();
    assert_eq!(
        built.to_string(),
        r#"{"op":"TRANSACTION","db":"mydb","ops":[{"op":"INSERT","table":"users","data":{"id":2,"name":"Bob"}},{"op":"UPDATE","table":"users","data":{"name":"Alicia"},"condition":{"id":1,"name":"Alice"},"expect":{"affected":1}},{"op":"CREATE_INDEX","table":"users","index":"by_name","columns":["name"],"unique":true}],"op_id":"tx-1"}"#
    );
    assert_eq!(f.preview(), Some(built.clone()));
    assert_eq!(f.title(), "TRANSACTION mydb · 3 ops");
    // It loads back into the same editor.
    let mut g = Form::from_request(&built).unwrap();
    assert_eq!(g.tx.len(), 3);
    assert!(g.tx[2].unique);
    assert_eq!(g.build_request().unwrap(), built);
    // The schema ops build as in their own forms: the columns editor of each op is its own.
    f.update(on(2, Message::OpSelected(OpKind::CreateTable)));
    f.update(edit(2, Field::Table, "pets"));
    f.update(on(2, Message::ColumnName(1, "kind".into())));
    f.update(tx(TxMessage::Add));
    f.update(on(3, Message::OpSelected(OpKind::AddColumn)));
    f.update(on(3, Message::ColumnName(0, "age".into())));
    f.update(on(3, Message::ColumnType(0, ColType::Int)));
    let ops = f.build_request().unwrap()["ops"].clone();
    assert_eq!(
        ops[2],
        json!({"op":"CREATE_TABLE","table":"pets","data":{"id":"int","kind":"string"},"primary_key":"id"})
    );
    assert_eq!(
        ops[3],
        json!({"op":"ADD_COLUMN","table":"pets","data":{"age":"int"}})
    );
    assert_eq!(
        f.columns.rows[1].name, "name",
        "the form's own editor is untouched"
    );
}

fn three_deletes() -> Form {
    let mut f = transaction();
    f.update(on(0, Message::OpSelected(OpKind::Delete)));
    f.update(edit(0, Field::Condition, r#"{"id":0}"#));
    for i in 1..3 {
        f.update(tx(TxMessage::Add));
        f.update(edit(i, Field::Condition, &format!(r#"{{"id":{i}}}"#)));
    }
    f
}

fn ids(f: &mut Form) -> Vec<i64> {
    f.build_request().unwrap()["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["condition"]["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn ops_move_up_and_down_and_are_removed() {
    let mut f = three_deletes();
    assert_eq!(ids(&mut f), [0, 1, 2]);
    f.update(tx(TxMessage::MoveDown(0)));
    assert_eq!(ids(&mut f), [1, 0, 2]);
    f.update(tx(TxMessage::MoveUp(2)));
    assert_eq!(ids(&mut f), [1, 2, 0]);
    // At the ends, and past them, nothing moves.
    f.update(tx(TxMessage::MoveUp(0)));
    f.update(tx(TxMessage::MoveDown(2)));
    f.update(tx(TxMessage::MoveDown(7)));
    f.update(tx(TxMessage::Remove(9)));
    assert_eq!(ids(&mut f), [1, 2, 0]);
    f.update(tx(TxMessage::Remove(1)));
    assert_eq!(ids(&mut f), [1, 0]);
    // Messages for an op that is gone do nothing.
    f.update(edit(5, Field::Condition, "{}"));
    f.update(tx(TxMessage::Remove(0)));
    f.update(tx(TxMessage::Remove(0)));
    assert!(f.tx.is_empty());
    match f.build_request() {
        Err(BuildError::Fields(e)) => assert_eq!(e[&Field::Ops], "add at least one op (+ op)"),
        other => panic!("{other:?}"),
    }
    f.update(tx(TxMessage::Add));
    assert_eq!(f.error(Field::Ops), None, "the error goes with its cause");
    assert_eq!(f.tx[0].op, OpKind::Insert);
}

#[test]
fn errors_show_beside_the_fields_of_their_op() {
    let mut f = three_deletes();
    f.update(edit(1, Field::Condition, r#"{"id":1"#));
    assert!(
        f.tx[1].error(Field::Condition).unwrap().contains("JSON"),
        "checked as typed, beside op 1's condition"
    );
    assert_eq!(f.tx[0].error(Field::Condition), None);
    f.update(edit(2, Field::Table, ""));
    f.update(edit(2, Field::Expect, "x"));
    match f.build_request() {
        Err(BuildError::Fields(e)) => {
            assert_eq!(e[&Field::Ops], "fix ops 1 (DELETE), 2 (DELETE) below")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.tx[2].error(Field::Table),
        Some("Table is required for DELETE")
    );
    assert!(f.tx[2].error(Field::Expect).is_some());
    assert!(f.tx[0].errors.is_empty());
    assert!(f.preview().is_none());
    // Fixed one by one, the list's error follows.
    f.update(edit(1, Field::Condition, r#"{"id":1}"#));
    assert_eq!(f.error(Field::Ops), Some("fix op 2 (DELETE) below"));
    f.update(edit(2, Field::Table, "users"));
    f.update(edit(2, Field::Expect, "1"));
    assert_eq!(f.error(Field::Ops), None);
    assert!(f.build_request().is_ok());
    // Valid field by field, refused by the node's parser: the verdict goes under the op.
    f.update(edit(1, Field::Condition, r#"{"id":{"$between":[1,2]}}"#));
    assert_eq!(f.tx[1].error(Field::Condition), None);
    match f.build_request() {
        Err(BuildError::Fields(e)) => assert_eq!(e[&Field::Ops], "fix op 1 (DELETE) below"),
        other => panic!("{other:?}"),
    }
    assert!(
        f.tx[1]
            .op_error
            .as_deref()
            .unwrap()
            .starts_with("bad_request"),
        "{:?}",
        f.tx[1].op_error
    );
    f.update(edit(1, Field::Condition, r#"{"id":1}"#));
    assert_eq!(f.tx[1].op_error, None, "an edit clears the old verdict");
}

#[test]
fn inner_ops_offer_writes_of_the_form_database_only() {
    let mut f = transaction();
    for op in [
        OpKind::Search,
        OpKind::CreateDb,
        OpKind::Transaction,
        OpKind::Checksum,
    ] {
        f.update(on(0, Message::OpSelected(op)));
        assert_eq!(f.tx[0].op, OpKind::Insert, "{op} is not offered inside");
        assert!(!op.in_transaction());
    }
    assert!(TX_KINDS.iter().all(|k| k.is_write()));
    // Loading: an op of the transaction's db may say so; another db, an envelope field or
    // an op a transaction cannot hold is refused, naming the op.
    let ok = json!({"op":"TRANSACTION","db":"mydb","ops":[{"op":"DELETE","db":"mydb","table":"t","condition":{}}]});
    let mut g = Form::from_request(&ok).unwrap();
    assert_eq!(
        g.build_request().unwrap(),
        json!({"op":"TRANSACTION","db":"mydb","ops":[{"op":"DELETE","table":"t","condition":{}}]})
    );
    let refused = |ops: Json| {
        Form::from_request(&json!({"op":"TRANSACTION","db":"mydb","ops":ops})).unwrap_err()
    };
    let e = refused(
        json!([{"op":"DELETE","table":"t","condition":{}},{"op":"DELETE","db":"other","table":"t","condition":{}}]),
    );
    assert!(
        e.starts_with("op 1: db \"other\" is not the transaction's"),
        "{e}"
    );
    let e = refused(json!([{"op":"DELETE","table":"t","condition":{},"op_id":"x"}]));
    assert_eq!(
        e,
        "op 0: op_id belongs on the TRANSACTION, not on an op inside it"
    );
    let e = refused(json!([{"op":"SEARCH","table":"t"}]));
    assert_eq!(e, "op 0: SEARCH cannot be inside a TRANSACTION");
    let e = refused(json!([{"op":"INSERT","table":"t","data":{"a":1},"limit":3}]));
    assert_eq!(e, "op 0: INSERT takes no \"limit\"");
    assert!(refused(json!({})).contains("list"));
    assert!(refused(json!([1])).contains("op 0"));
}

#[test]
fn the_selected_op_follows_its_op_and_the_first_to_fix_is_shown() {
    let mut f = three_deletes();
    assert_eq!(f.tx_selected, 2, "an added op is selected");
    f.update(tx(TxMessage::Select(0)));
    assert_eq!(f.tx_selected, 0);
    f.update(tx(TxMessage::Select(3)));
    assert_eq!(f.tx_selected, 0, "no such op");
    f.update(tx(TxMessage::MoveDown(0)));
    assert_eq!(f.tx_selected, 1, "moved down with its op");
    f.update(tx(TxMessage::MoveUp(2)));
    assert_eq!(f.tx_selected, 2, "pushed down by the op moved above it");
    assert_eq!(f.tx[2].value(Field::Condition), r#"{"id":0}"#);
    f.update(tx(TxMessage::Remove(0)));
    assert_eq!(f.tx_selected, 1, "still on its op");
    f.update(tx(TxMessage::Remove(1)));
    assert_eq!(f.tx_selected, 0, "the last op removed: the one before it");
    // Execute with a wrong op shows it.
    f.update(tx(TxMessage::Add));
    f.update(tx(TxMessage::Add));
    f.update(edit(2, Field::Condition, r#"{"id":5}"#));
    f.update(tx(TxMessage::Select(2)));
    assert!(f.build_request().is_err());
    assert_eq!(f.tx_selected, 1);
    // One line per op, for the list.
    assert_eq!(f.tx[0].op_line(110), r#"DELETE users · condition {"id":2}"#);
    f.update(edit(0, Field::Expect, "1"));
    assert_eq!(f.tx[0].op_line(24), "DELETE users · condition…");
    assert!(f.tx[1].has_errors() && !f.tx[0].has_errors());
    // A failure the node reports marks the op in the form that sent it, not in another.
    f.update(edit(1, Field::Condition, "{}"));
    let sent = f.build_request().unwrap();
    f.mark_failed_op(&sent, 2, "failed on master: constraint: x");
    assert_eq!((f.tx_selected, f.tx[2].op_error.is_some()), (2, true));
    f.update(edit(2, Field::Condition, "{\"id\":9}"));
    assert_eq!(f.tx[2].op_error, None);
    f.mark_failed_op(&sent, 1, "failed on master: constraint: x");
    assert_eq!(f.tx[1].op_error, None, "the form changed since");
}
