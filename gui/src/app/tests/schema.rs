//! CREATE_INDEX, DROP_INDEX, DROP_TABLE, ADD_COLUMN and SEARCH paging (Next page), through
//! `update()` and the simulator.

use super::*;

#[test]
fn schema_ops_send_their_requests_to_the_writer() {
    let (mut app, mut rx) = connected();
    edit(&mut app, Field::Db, "mydb");
    edit(&mut app, Field::Table, "users");

    op(&mut app, OpKind::CreateIndex);
    edit(&mut app, Field::Index, "by_email");
    edit(&mut app, Field::IndexColumns, "email, name");
    let _ = app.update(Message::Form(FormMessage::Unique(true)));
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    assert_eq!(cmd.target, Target::Writer);
    assert_eq!(
        cmd.payload,
        json!({"op":"CREATE_INDEX","db":"mydb","table":"users","index":"by_email","columns":["email","name"],"unique":true})
    );
    respond(
        &mut app,
        cmd.id,
        Ok(reply(
            json!({"ok":true,"node":"master","seq":7,"affected":0}),
        )),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!("{:?}", app.outcome)
    };
    assert_eq!(done.summary(), "ok · seq 7 · master", "DDL: no row count");
    assert_eq!(app.last_write_seq, Some(7), "a schema op is a write");

    op(&mut app, OpKind::AddColumn);
    let _ = app.update(Message::Form(FormMessage::ColumnName(0, "age".into())));
    let _ = app.update(Message::Form(FormMessage::ColumnType(0, ColType::Int)));
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    assert_eq!(
        cmd.payload,
        json!({"op":"ADD_COLUMN","db":"mydb","table":"users","data":{"age":"int"}})
    );
    respond(&mut app, cmd.id, Ok(Reply::ok("master")));

    op(&mut app, OpKind::DropIndex);
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    assert_eq!(
        cmd.payload,
        json!({"op":"DROP_INDEX","db":"mydb","table":"users","index":"by_email"})
    );
    respond(
        &mut app,
        cmd.id,
        Ok(reply(
            json!({"ok":false,"node":"master","error":{"code":"index_not_found","message":"index by_email does not exist in database mydb"}}),
        )),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!()
    };
    assert_eq!(done.error().unwrap().code, ErrorCode::IndexNotFound);
    assert!(done.hint(&app.nodes, "ddb").unwrap().contains("No index"));

    op(&mut app, OpKind::DropTable);
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    assert_eq!(
        cmd.payload,
        json!({"op":"DROP_TABLE","db":"mydb","table":"users"})
    );
    assert_eq!(app.history.get(0).unwrap().title, "DROP_TABLE mydb.users");
}

/// Sends a SEARCH for mydb.users with limit 2 to slave1 and answers it with `first`.
fn send_first_page(
    rx: &mut mpsc::Receiver<Command>,
    app: &mut App,
    first: serde_json::Value,
) -> Request {
    app.target = Target::Node("slave1".into());
    op(app, OpKind::Search);
    edit(app, Field::Db, "mydb");
    edit(app, Field::Table, "users");
    edit(app, Field::OrderBy, "name");
    edit(app, Field::Limit, "2");
    let _ = app.update(Message::Execute);
    let cmd = next_command(rx);
    respond(app, cmd.id, Ok(reply(first)));
    cmd
}

#[test]
fn next_page_resends_the_same_search_with_the_cursor_to_the_same_target() {
    let (mut app, mut rx) = connected();
    let first = send_first_page(
        &mut rx,
        &mut app,
        json!({"ok":true,"node":"slave1","seq":4,"rows":[{"id":1,"name":"Al"},{"id":2,"name":"Bo"}],"next":"c1"}),
    );
    assert_eq!(
        first.payload,
        json!({"op":"SEARCH","db":"mydb","table":"users","order_by":"name","limit":2})
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!("{:?}", app.outcome)
    };
    assert_eq!(done.page, Some(1));
    assert_eq!(
        done.summary(),
        "2 rows · page 1, more follow · seq 4 · slave1"
    );

    // What the user does to the form and the target afterwards does not change the pages.
    edit(&mut app, Field::Limit, "50");
    app.target = Target::Writer;
    let _ = app.update(Message::NextPage);
    let second = next_command(&mut rx);
    assert_eq!(second.target, Target::Node("slave1".into()));
    assert_eq!(
        second.payload,
        json!({"op":"SEARCH","db":"mydb","table":"users","order_by":"name","limit":2,"after":"c1"})
    );
    let Outcome::Pending(p) = &app.outcome else {
        panic!("{:?}", app.outcome)
    };
    assert_eq!((p.id, p.page), (second.id, Some(2)));
    assert_eq!(
        app.history.get(0).unwrap().title,
        "SEARCH mydb.users · page 2"
    );
    assert_eq!(
        app.history.get(0).unwrap().form.value(Field::After),
        "c1",
        "the history entry reloads the page it asked for"
    );
    assert_eq!(
        app.form.value(Field::After),
        "",
        "the form still asks for page 1"
    );
    assert_eq!(app.form.value(Field::Limit), "50");
    assert_eq!(app.target, Target::Writer);

    respond(
        &mut app,
        second.id,
        Ok(reply(
            json!({"ok":true,"node":"slave1","seq":4,"rows":[{"id":3,"name":"Cy"},{"id":4,"name":"Di"}],"next":"c2"}),
        )),
    );
    let _ = app.update(Message::NextPage);
    let third = next_command(&mut rx);
    assert_eq!(
        third.payload["after"],
        json!("c2"),
        "the newest cursor replaces the old"
    );
    assert_eq!(third.payload["limit"], json!(2));
    respond(
        &mut app,
        third.id,
        Ok(reply(
            json!({"ok":true,"node":"slave1","seq":4,"rows":[{"id":5,"name":"Ed"}]}),
        )),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!()
    };
    assert_eq!(done.page, Some(3));
    assert_eq!(done.page_label().as_deref(), Some("page 3 (last)"));
    assert_eq!(done.next_cursor(), None);
    // The end was reached: nothing more to ask for.
    let _ = app.update(Message::NextPage);
    no_command(&mut rx);
    assert_eq!(app.history_len(), 3);
}

#[test]
fn next_page_needs_a_search_reply_with_a_cursor() {
    let (mut app, mut rx) = connected();
    let _ = app.update(Message::NextPage);
    no_command(&mut rx);
    // A hand-typed cursor: the page number is unknown, the paging still works.
    op(&mut app, OpKind::Search);
    edit(&mut app, Field::Db, "mydb");
    edit(&mut app, Field::Table, "users");
    edit(&mut app, Field::After, "c7");
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    assert_eq!(cmd.payload["after"], json!("c7"));
    // Pressed while the reply is pending: nothing is sent.
    let _ = app.update(Message::NextPage);
    no_command(&mut rx);
    respond(
        &mut app,
        cmd.id,
        Ok(reply(
            json!({"ok":true,"node":"master","rows":[{"id":8}],"next":"c8"}),
        )),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!()
    };
    assert_eq!(
        (done.page, done.page_label().as_deref()),
        (None, Some("more follow"))
    );
    let _ = app.update(Message::NextPage);
    let next = next_command(&mut rx);
    assert_eq!(next.payload["after"], json!("c8"));
    // An error reply has no next page, whatever it carries.
    respond(
        &mut app,
        next.id,
        Ok(reply(
            json!({"ok":false,"node":"master","next":"c9","error":{"code":"bad_request","message":"cursor does not belong to this SEARCH"}}),
        )),
    );
    let _ = app.update(Message::NextPage);
    no_command(&mut rx);
}

#[test]
fn schema_ops_show_their_fields_and_their_nats_line() {
    let mut app = app();
    for label in ["ADD_COLUMN", "CREATE_INDEX", "DROP_INDEX", "DROP_TABLE"] {
        assert!(shows(&app, label), "the picker offers {label}");
    }
    click(&mut app, "CREATE_INDEX");
    assert_eq!(app.op(), OpKind::CreateIndex);
    let unique_box = "refuse rows that repeat the values of these columns";
    for label in [
        "Database",
        "Table",
        "Index",
        "Index columns",
        "Unique",
        unique_box,
        "Op id",
    ] {
        assert!(shows(&app, label), "CREATE_INDEX shows {label}");
    }
    assert!(!shows(&app, "Data") && !shows(&app, "Columns") && !shows(&app, "Limit"));
    type_into(&mut app, Field::Db, "mydb");
    type_into(&mut app, Field::Table, "users");
    type_into(&mut app, Field::Index, "by_email");
    type_into(&mut app, Field::IndexColumns, "email");
    assert!(!app.form.unique);
    click(&mut app, unique_box);
    assert!(app.form.unique, "the checkbox sets unique");
    assert!(shows(
        &app,
        r#"nats req ddb.ops '{"op":"CREATE_INDEX","db":"mydb","table":"users","index":"by_email","columns":["email"],"unique":true}'"#
    ));

    click(&mut app, "DROP_INDEX");
    assert!(shows(&app, "Index") && !shows(&app, "Index columns") && !shows(&app, "Unique"));
    assert!(shows(
        &app,
        r#"nats req ddb.ops '{"op":"DROP_INDEX","db":"mydb","table":"users","index":"by_email"}'"#
    ));

    click(&mut app, "ADD_COLUMN");
    for label in ["New columns", "Editor", "JSON", "+ column"] {
        assert!(shows(&app, label), "ADD_COLUMN shows {label}");
    }
    // New columns are nullable and outside the key: the editor does not offer either.
    assert!(!shows(&app, "key") && !shows(&app, "not null") && !shows(&app, "Index"));
    let _ = app.update(Message::Form(FormMessage::ColumnName(0, "age".into())));
    let _ = app.update(Message::Form(FormMessage::ColumnType(0, ColType::Int)));
    assert!(shows(
        &app,
        r#"nats req ddb.ops '{"op":"ADD_COLUMN","db":"mydb","table":"users","data":{"age":"int"}}'"#
    ));
    click(&mut app, "JSON");
    assert_eq!(app.form.new_columns.mode, ColumnsMode::Json);
    assert!(
        shows(&app, r#"{"age":"int"}"#),
        "the editor's columns as JSON"
    );
    type_into(&mut app, Field::NewColumns, "x");
    assert!(shows(&app, app.form.error(Field::NewColumns).unwrap()));

    click(&mut app, "DROP_TABLE");
    assert!(!shows(&app, "New columns") && !shows(&app, "Index"));
    assert!(shows(
        &app,
        r#"nats req ddb.ops '{"op":"DROP_TABLE","db":"mydb","table":"users"}'"#
    ));
}

#[test]
fn the_next_page_button_replaces_the_rows_with_the_next_page() {
    let (mut app, mut rx) = connected();
    send_first_page(
        &mut rx,
        &mut app,
        json!({"ok":true,"node":"slave1","seq":4,"rows":[{"id":1,"name":"Al"},{"id":2,"name":"Bo"}],"next":"c1"}),
    );
    for label in ["Al", "Bo", "2 rows", "page 1, more follow", "Next page"] {
        assert!(shows(&app, label), "the first page shows {label}");
    }
    // The button belongs to the reply, not to the table: the raw JSON view has it too.
    click(&mut app, "Raw JSON");
    assert!(!shows(&app, "Al"));
    click(&mut app, "Next page");
    let cmd = next_command(&mut rx);
    assert_eq!(cmd.target, Target::Node("slave1".into()));
    assert_eq!(
        cmd.payload,
        json!({"op":"SEARCH","db":"mydb","table":"users","order_by":"name","limit":2,"after":"c1"})
    );
    assert!(!shows(&app, "Next page"), "no second press while waiting");
    respond(
        &mut app,
        cmd.id,
        Ok(reply(
            json!({"ok":true,"node":"slave1","seq":4,"rows":[{"id":3,"name":"Cy"}]}),
        )),
    );
    for label in ["Cy", "1 row", "page 2 (last)"] {
        assert!(shows(&app, label), "the second page shows {label}");
    }
    assert!(
        !shows(&app, "Al") && !shows(&app, "Bo"),
        "the rows were replaced"
    );
    assert!(!shows(&app, "Next page"), "the last page has no next");
    no_command(&mut rx);
}
