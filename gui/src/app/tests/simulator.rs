//! The widgets, clicked and typed into through `iced_test`'s simulator.

use super::*;

#[test]
fn picking_an_op_shows_its_fields() {
    let mut app = app();
    for label in [
        "Target",
        "Operation",
        "Database",
        "Op id",
        "CREATE_DB",
        "SEARCH",
        "CHECKSUM",
    ] {
        assert!(shows(&app, label), "{label} should be shown");
    }
    assert!(!shows(&app, "Data"));

    click(&mut app, "INSERT");
    assert_eq!(app.op(), OpKind::Insert);
    assert!(shows(&app, "Data") && shows(&app, "Table"));
    assert!(!shows(&app, "Condition") && !shows(&app, "Limit"));

    click(&mut app, "SEARCH");
    assert_eq!(app.op(), OpKind::Search);
    for label in [
        "Condition",
        "Return columns",
        "Order by",
        "Limit",
        "After (cursor)",
        "Min seq",
    ] {
        assert!(shows(&app, label), "SEARCH shows {label}");
    }
    assert!(!shows(&app, "Data") && !shows(&app, "Op id"));

    click(&mut app, "UPDATE");
    assert!(shows(&app, "Data") && shows(&app, "Condition"));

    click(&mut app, "CREATE_TABLE");
    for label in ["Columns", "Editor", "JSON", "+ column", "key", "not null"] {
        assert!(shows(&app, label), "CREATE_TABLE shows {label}");
    }
    assert!(!shows(&app, "Primary key"));
    click(&mut app, "JSON");
    assert!(shows(&app, "Primary key"));
    assert!(
        shows(&app, r#"{"id":"int","name":"string"}"#),
        "the editor's columns as JSON"
    );
}

#[test]
fn typing_json_and_pressing_execute_sends_the_request() {
    let (mut app, mut rx) = connected();
    click(&mut app, "INSERT");
    type_into(&mut app, Field::Db, "mydb");
    type_into(&mut app, Field::Table, "users");
    type_into(&mut app, Field::Data, r#"{"id":1,"name":"Alice"}"#);
    assert_eq!(app.form.value(Field::Data), r#"{"id":1,"name":"Alice"}"#);
    assert!(
        shows(
            &app,
            r#"nats req ddb.ops '{"op":"INSERT","db":"mydb","table":"users","data":{"id":1,"name":"Alice"}}'"#
        ),
        "the preview shows the request"
    );
    click(&mut app, "Execute  ⏎");
    let cmd = next_command(&mut rx);
    assert_eq!(
        cmd.payload,
        json!({"op":"INSERT","db":"mydb","table":"users","data":{"id":1,"name":"Alice"}})
    );
    assert!(shows(
        &app,
        "INSERT mydb.users → Writer (ddb.ops): waiting for the reply…"
    ));
    respond(
        &mut app,
        cmd.id,
        Ok(reply(
            json!({"ok":true,"node":"master","seq":3,"affected":1}),
        )),
    );
    assert!(shows(&app, "answered by master"));
    assert!(shows(&app, "seq 3"));
}

#[test]
fn enter_in_a_field_executes() {
    let (mut app, mut rx) = connected();
    type_into(&mut app, Field::Db, "mydb");
    let mut ui = ui(&app);
    ui.click(selector::id(view::ids::field(Field::Db))).unwrap();
    let _ = ui.tap_key(Named::Enter);
    let messages: Vec<Message> = ui.into_messages().collect();
    assert!(messages.iter().any(|m| matches!(m, Message::Execute)));
    apply(&mut app, messages);
    assert_eq!(
        next_command(&mut rx).payload,
        json!({"op":"CREATE_DB","db":"mydb"})
    );
}

#[test]
fn invalid_json_shows_the_error_beside_the_field() {
    let (mut app, mut rx) = connected();
    click(&mut app, "SEARCH");
    type_into(&mut app, Field::Condition, r#"{"id":1"#);
    let error = app
        .form
        .error(Field::Condition)
        .expect("an error")
        .to_owned();
    assert!(error.starts_with("incomplete JSON"), "{error}");
    assert!(shows(&app, &error), "the error is shown");
    click(&mut app, "Execute  ⏎");
    no_command(&mut rx);
    type_into(&mut app, Field::Condition, "}");
    assert_eq!(app.form.error(Field::Condition), None);
    assert!(!shows(&app, &error));
}

#[test]
fn search_rows_show_as_a_table_with_the_json_one_click_away() {
    let (mut app, mut rx) = connected();
    op(&mut app, OpKind::Search);
    edit(&mut app, Field::Db, "mydb");
    edit(&mut app, Field::Table, "users");
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    respond(
        &mut app,
        id,
        Ok(reply(json!({"ok":true,"node":"slave1","seq":4,"rows":[
            {"id":1,"name":"Alice","email":null},{"id":2,"name":"Bob","email":"b@x"}
        ]}))),
    );
    for label in [
        "id",
        "name",
        "email",
        "Alice",
        "Bob",
        "NULL",
        "2 rows",
        "answered by slave1",
    ] {
        assert!(shows(&app, label), "table shows {label}");
    }
    click(&mut app, "Raw JSON");
    assert_eq!(app.result_view, ResultView::Json);
    assert!(!shows(&app, "Alice"), "the raw JSON replaces the table");
    let raw = match &app.outcome {
        Outcome::Done(d) => d.raw_json(),
        _ => unreachable!(),
    };
    assert!(shows(&app, &raw));
    click(&mut app, "Rows");
    assert!(shows(&app, "Alice"));
}

#[test]
fn errors_show_in_red_with_their_code_and_where_to_send_writes() {
    let (mut app, mut rx) = connected();
    let _ = app.update(Message::Connection(Event::Heartbeat(
        hb("master", Role::Master, Mode::Master, 1),
        Instant::now(),
    )));
    app.target = Target::Node("slave1".into());
    edit(&mut app, Field::Db, "mydb");
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    respond(
        &mut app,
        id,
        Ok(reply(
            json!({"ok":false,"node":"slave1","error":{"code":"read_only","message":"node slave1 is a read-only replica"}}),
        )),
    );
    assert!(shows(&app, "read_only"));
    assert!(shows(&app, "node slave1 is a read-only replica"));
    let error = match &app.outcome {
        Outcome::Done(d) => d.error().expect("the reply is an error"),
        _ => unreachable!(),
    };
    assert_eq!(
        view::error_texts(&error),
        [
            ("read_only".to_string(), view::style::RED),
            (
                "node slave1 is a read-only replica".to_string(),
                view::style::RED
            ),
        ],
        "the code and the message are shown in red"
    );
    click(&mut app, "Send it to Writer (ddb.ops)");
    assert_eq!(next_command(&mut rx).target, Target::Writer);
}

#[test]
fn the_nodes_panel_shows_mode_seq_and_lag_and_the_history_reloads() {
    let (mut app, mut rx) = connected();
    let mut beat = hb("slave1", Role::Slave, Mode::Failover, 17);
    beat.lag = 4;
    let _ = app.update(Message::Connection(Event::Heartbeat(beat, Instant::now())));
    for label in ["slave1", "failover", "17", "4", "1 of 1 alive"] {
        assert!(shows(&app, label), "nodes panel shows {label}");
    }
    edit(&mut app, Field::Db, "mydb");
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    respond(
        &mut app,
        id,
        Ok(reply(json!({"ok":true,"node":"slave1","seq":18}))),
    );
    op(&mut app, OpKind::Search);
    edit(&mut app, Field::Db, "other");
    click(&mut app, "CREATE_DB mydb");
    assert_eq!(app.op(), OpKind::CreateDb);
    assert_eq!(app.form.value(Field::Db), "mydb");
}

#[test]
fn the_nodes_panel_shows_a_restore_apart_from_catching_up() {
    let (mut app, _rx) = connected();
    let mut behind = hb("slave1", Role::Slave, Mode::Replica, 17);
    behind.lag = 4;
    let mut new = hb("slave2", Role::Slave, Mode::Replica, 0);
    new.snapshots.restoring = Some(Box::new(ddb::heartbeat::RestoreStatus {
        db: "big".into(),
        rows: 250,
        total_rows: 1000,
    }));
    for beat in [behind, new] {
        let _ = app.update(Message::Connection(Event::Heartbeat(beat, Instant::now())));
    }
    assert!(shows(&app, "catching up (4 behind)"));
    assert!(shows(&app, "restoring big 25%"));
}

#[test]
fn the_verify_button_shows_every_table_side_by_side_with_mismatches_flagged() {
    let (mut app, mut rx) = connected_with_three_nodes();
    click(&mut app, "Verify");
    let job = next_verify(&mut rx);
    assert!(shows(
        &app,
        "Verifying every table on 2 nodes: asking each for CHECKSUM…"
    ));
    assert!(shows(&app, "verifying 2 nodes …"), "the spinner line");
    verified(&mut app, job.id, crate::verify::tests::report(false));
    for label in [
        "Verification",
        "all 3 tables agree on 3 nodes",
        "log seq 7",
        "table",
        "master",
        "slave2",
        "status",
        "empty",
        "shop.orders",
        "shop.users",
        "1 rows 0123456789ab",
        "2 rows fedcba987654",
        "no tables",
        "ok",
    ] {
        assert!(shows(&app, label), "the verification shows {label}");
    }
    assert!(!shows(&app, "MISMATCH"));

    click(&mut app, "Verify");
    let job = next_verify(&mut rx);
    verified(&mut app, job.id, crate::verify::tests::report(true));
    for label in [
        "1 mismatch in 3 tables on 3 nodes",
        "MISMATCH",
        "2 rows bad0bad0bad0",
    ] {
        assert!(shows(&app, label), "the verification shows {label}");
    }
    no_command(&mut rx);
}
