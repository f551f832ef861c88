//! TRANSACTION (issue 17): its editor through `update()` and the simulator, what is sent,
//! and how its results and failures are shown.

use super::*;
use crate::form::TxMessage;

fn tx(app: &mut App, m: TxMessage) {
    let _ = app.update(Message::Form(FormMessage::Tx(m)));
}

fn inner(app: &mut App, i: usize, m: FormMessage) {
    tx(app, TxMessage::op(i, m));
}

fn inner_edit(app: &mut App, i: usize, field: Field, value: &str) {
    inner(app, i, FormMessage::Edited(field, value.into()));
}

/// A transfer of 50 from account 1 to account 2 of bank.acct, compare-and-set.
fn transfer(app: &mut App) {
    edit(app, Field::Db, "bank");
    edit(app, Field::Table, "acct");
    op(app, OpKind::Transaction);
    tx(app, TxMessage::Add);
    for (i, bal, old) in [(0, 50, 100), (1, 150, 100)] {
        inner(app, i, FormMessage::OpSelected(OpKind::Update));
        inner_edit(app, i, Field::Data, &format!(r#"{{"bal":{bal}}}"#));
        inner_edit(
            app,
            i,
            Field::Condition,
            &format!(r#"{{"id":{},"bal":{old}}}"#, i + 1),
        );
        inner_edit(app, i, Field::Expect, "1");
    }
}

const TRANSFER: &str = r#"{"op":"TRANSACTION","db":"bank","ops":[{"op":"UPDATE","table":"acct","data":{"bal":50},"condition":{"id":1,"bal":100},"expect":{"affected":1}},{"op":"UPDATE","table":"acct","data":{"bal":150},"condition":{"id":2,"bal":100},"expect":{"affected":1}}],"op_id":"transfer-42"}"#;

#[test]
fn a_transaction_is_sent_whole_and_its_results_are_shown_per_op() {
    let (mut app, mut rx) = connected();
    transfer(&mut app);
    edit(&mut app, Field::OpId, "transfer-42");
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    assert_eq!(cmd.target, Target::Writer);
    assert_eq!(
        cmd.payload.to_string(),
        TRANSFER,
        "the exact JSON, in order"
    );
    assert_eq!(
        app.history.get(0).unwrap().title,
        "TRANSACTION bank · 2 ops"
    );
    respond(
        &mut app,
        cmd.id,
        Ok(reply(
            json!({"ok":true,"node":"master","seq":42,"affected":2,"results":[{"affected":1},{"affected":1}]}),
        )),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!("{:?}", app.outcome)
    };
    assert_eq!(done.summary(), "2 ops · 2 rows affected · seq 42 · master");
    let lines = done.tx_lines().unwrap();
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.op.as_str(), l.outcome.as_str(), l.failed))
            .collect::<Vec<_>>(),
        [
            ("UPDATE acct", "1 row affected", false),
            ("UPDATE acct", "1 row affected", false)
        ]
    );
    assert_eq!(app.last_write_seq, Some(42), "a TRANSACTION is a write");
    // The history entry reloads the whole editor.
    let _ = app.update(Message::HistorySelected(0));
    assert_eq!(app.form.tx.len(), 2);
    assert_eq!(app.form.clone().build_request().unwrap(), cmd.payload);
}

#[test]
fn moving_ops_changes_the_order_they_are_sent_in() {
    let (mut app, mut rx) = connected();
    transfer(&mut app);
    tx(&mut app, TxMessage::Add);
    inner(&mut app, 2, FormMessage::OpSelected(OpKind::Insert));
    inner_edit(&mut app, 2, Field::Table, "log");
    inner_edit(&mut app, 2, Field::Data, r#"{"id":7,"what":"transfer"}"#);
    tx(&mut app, TxMessage::MoveUp(2));
    tx(&mut app, TxMessage::MoveUp(1));
    tx(&mut app, TxMessage::MoveDown(1));
    let _ = app.update(Message::Execute);
    let ops = next_command(&mut rx).payload["ops"].clone();
    let order: Vec<(&str, &Json)> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|op| (op["op"].as_str().unwrap(), &op["data"]))
        .collect();
    assert_eq!(
        order,
        [
            ("INSERT", &json!({"id":7,"what":"transfer"})),
            ("UPDATE", &json!({"bal":150})),
            ("UPDATE", &json!({"bal":50})),
        ]
    );
    // Removing the insert sends the two updates only.
    respond(&mut app, 1, Ok(Reply::ok("master")));
    tx(&mut app, TxMessage::Remove(0));
    let _ = app.update(Message::Execute);
    assert_eq!(
        next_command(&mut rx).payload["ops"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

use serde_json::Value as Json;

#[test]
fn errors_show_per_inner_op_and_a_failed_op_is_named() {
    let (mut app, mut rx) = connected();
    transfer(&mut app);
    inner_edit(&mut app, 1, Field::Condition, "");
    inner_edit(&mut app, 0, Field::Expect, "one");
    let _ = app.update(Message::Execute);
    no_command(&mut rx);
    let notice = app.notice.clone().unwrap();
    assert!(
        notice.contains("Ops: fix ops 0 (UPDATE), 1 (UPDATE) below"),
        "{notice}"
    );
    assert!(app.form.tx[0].error(Field::Expect).is_some());
    assert_eq!(app.form.tx[0].error(Field::Condition), None);
    assert!(app.form.tx[1]
        .error(Field::Condition)
        .unwrap()
        .contains("UPDATE needs a condition"));
    inner_edit(&mut app, 0, Field::Expect, "1");
    inner_edit(&mut app, 1, Field::Condition, r#"{"id":2,"bal":100}"#);
    assert_eq!(app.form.error(Field::Ops), None);

    // The node refuses op 1: the result names it, the others were not applied.
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    respond(
        &mut app,
        cmd.id,
        Ok(reply(
            json!({"ok":false,"node":"master","error":{"code":"precondition_failed","message":"op 1 (UPDATE): expected 1 affected row, 0 were","op_index":1}}),
        )),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!("{:?}", app.outcome)
    };
    assert_eq!(done.summary(), "precondition_failed at op 1 · master");
    assert_eq!(done.error().unwrap().op_index, Some(1));
    let outcomes: Vec<(String, bool)> = done
        .tx_lines()
        .unwrap()
        .into_iter()
        .map(|l| (l.outcome, l.failed))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("not applied".to_owned(), false),
            ("failed: precondition_failed".to_owned(), true)
        ]
    );
    let hint = done.hint(&app.nodes, "ddb").unwrap();
    assert!(
        hint.starts_with("Op 1 (UPDATE acct) failed, so nothing of the transaction was applied. The op touched another number of rows than its expect"),
        "{hint}"
    );
    assert_eq!(app.last_write_seq, None);
    // The form that sent it shows the failed op, with why under its fields.
    assert_eq!(app.form.tx_selected, 1);
    assert_eq!(
        app.form.tx[1].op_error.as_deref(),
        Some(
            "failed on master: precondition_failed: op 1 (UPDATE): expected 1 affected row, 0 were"
        )
    );
    assert_eq!(app.form.tx[0].op_error, None);
    // No answer at all: nobody knows what happened to each op.
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    respond(
        &mut app,
        cmd.id,
        Err(DdbError::new(ErrorCode::Timeout, "no reply")),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!()
    };
    assert_eq!(done.tx_lines(), None);
}

// ---------------------------------------------------------------- simulator

fn click_id(app: &mut App, id: iced::widget::Id) {
    let mut ui = ui(app);
    ui.click(selector::id(id.clone()))
        .unwrap_or_else(|e| panic!("cannot click {id:?}: {e}"));
    let messages: Vec<Message> = ui.into_messages().collect();
    apply(app, messages);
}

fn type_into_op(app: &mut App, i: usize, field: Field, value: &str) {
    let mut ui = ui(app);
    ui.click(selector::id(view::ids::op_field(i, field)))
        .unwrap_or_else(|e| panic!("cannot click op {i}'s {field:?}: {e}"));
    let _ = ui.typewrite(value);
    let messages: Vec<Message> = ui.into_messages().collect();
    apply(app, messages);
}

#[test]
fn the_editor_adds_moves_and_removes_ops_and_shows_the_nats_line() {
    let (mut app, mut rx) = connected();
    assert!(shows(&app, "TRANSACTION"), "the picker offers it");
    type_into(&mut app, Field::Db, "mydb");
    edit(&mut app, Field::Table, "users");
    click(&mut app, "TRANSACTION");
    assert_eq!(app.op(), OpKind::Transaction);
    for label in ["Ops", "op 0", "+ op", "Table", "Data", "Op id"] {
        assert!(shows(&app, label), "TRANSACTION shows {label}");
    }
    assert!(!shows(&app, "op 1") && !shows(&app, "Condition"));
    type_into_op(&mut app, 0, Field::Data, r#"{"id":1}"#);
    click(&mut app, "+ op");
    assert!(shows(&app, "op 1"));
    type_into_op(&mut app, 1, Field::Data, r#"{"id":2}"#);
    assert!(shows(
        &app,
        r#"nats req ddb.ops '{"op":"TRANSACTION","db":"mydb","ops":[{"op":"INSERT","table":"users","data":{"id":1}},{"op":"INSERT","table":"users","data":{"id":2}}]}'"#
    ));
    click_id(&mut app, view::ids::op_button(0, "down"));
    assert!(shows(
        &app,
        r#"nats req ddb.ops '{"op":"TRANSACTION","db":"mydb","ops":[{"op":"INSERT","table":"users","data":{"id":2}},{"op":"INSERT","table":"users","data":{"id":1}}]}'"#
    ));
    // The first op cannot go up, nor the last down: those presses do nothing.
    click_id(&mut app, view::ids::op_button(0, "up"));
    click_id(&mut app, view::ids::op_button(1, "down"));
    click_id(&mut app, view::ids::op_button(1, "up"));
    assert_eq!(app.form.tx[0].value(Field::Data), r#"{"id":1}"#);
    click_id(&mut app, view::ids::op_button(0, "remove"));
    assert!(!shows(&app, "op 1"));
    assert_eq!(app.form.tx[0].value(Field::Data), r#"{"id":2}"#);

    // An inner op switched to UPDATE shows its own fields, expect included; an error
    // shows beside the field of that op.
    click(&mut app, "+ op");
    inner(&mut app, 1, FormMessage::OpSelected(OpKind::Update));
    for label in ["Condition", "Expect affected"] {
        assert!(shows(&app, label), "an UPDATE inside shows {label}");
    }
    type_into_op(&mut app, 1, Field::Expect, "x");
    let error = app.form.tx[1].error(Field::Expect).unwrap().to_owned();
    assert!(shows(&app, &error));
    let mut sim = ui(&app);
    sim.click(selector::id(view::ids::op_field(1, Field::Expect)))
        .unwrap();
    let _ = sim.tap_key(Named::Backspace);
    let _ = sim.typewrite("1");
    let messages: Vec<Message> = sim.into_messages().collect();
    apply(&mut app, messages);
    assert_eq!(app.form.tx[1].error(Field::Expect), None);
    type_into_op(&mut app, 1, Field::Data, r#"{"name":"Al"}"#);
    type_into_op(&mut app, 1, Field::Condition, r#"{"id":2}"#);
    click(&mut app, "Execute  ⏎");
    let cmd = next_command(&mut rx);
    assert_eq!(
        cmd.payload.to_string(),
        r#"{"op":"TRANSACTION","db":"mydb","ops":[{"op":"INSERT","table":"users","data":{"id":2}},{"op":"UPDATE","table":"users","data":{"name":"Al"},"condition":{"id":2},"expect":{"affected":1}}]}"#
    );
    respond(
        &mut app,
        cmd.id,
        Ok(reply(
            json!({"ok":false,"node":"master","error":{"code":"precondition_failed","message":"op 1 (UPDATE): 0 rows","op_index":1}}),
        )),
    );
    for label in [
        "precondition_failed",
        "op 1 (UPDATE): 0 rows",
        "not applied",
        "failed: precondition_failed",
        "UPDATE users",
        "failed on master: precondition_failed: op 1 (UPDATE): 0 rows",
    ] {
        assert!(shows(&app, label), "the failure shows {label}");
    }
    // The list shows every op on one line; clicking one shows its fields.
    let line = r#"INSERT users · data {"id":2}"#;
    assert!(shows(&app, line), "{:?}", app.form.tx[0].op_line(110));
    click(&mut app, line);
    assert_eq!(app.form.tx_selected, 0);
    assert!(!shows(&app, "Expect affected"));
    click(&mut app, "op 1");
    assert!(shows(&app, "Expect affected"));
}
