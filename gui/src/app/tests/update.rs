//! `update()` for every message.

use super::*;

#[test]
fn form_messages_edit_the_form_and_clear_the_notice() {
    let mut app = app();
    app.notice = Some("old".into());
    op(&mut app, OpKind::Insert);
    assert_eq!(app.op(), OpKind::Insert);
    assert_eq!(app.notice, None);
    edit(&mut app, Field::Db, "mydb");
    assert_eq!(app.form.value(Field::Db), "mydb");
    op(&mut app, OpKind::Search);
    assert_eq!(
        app.form.value(Field::Db),
        "mydb",
        "db is remembered between ops"
    );
    let _ = app.update(Message::Form(FormMessage::ColumnsMode(ColumnsMode::Json)));
    assert_eq!(
        app.form.columns.mode,
        ColumnsMode::Editor,
        "SEARCH shows no columns editor to switch"
    );
    op(&mut app, OpKind::CreateTable);
    let _ = app.update(Message::Form(FormMessage::ColumnsMode(ColumnsMode::Json)));
    assert_eq!(app.form.columns.mode, ColumnsMode::Json);
}

#[test]
fn target_selected_sets_the_target() {
    let mut app = app();
    let _ = app.update(Message::Connection(Event::Heartbeat(
        hb("slave1", Role::Slave, Mode::Replica, 3),
        Instant::now(),
    )));
    let (options, selected) = app.target_options();
    assert_eq!(selected.target, Target::Writer);
    assert_eq!(options.len(), 3);
    assert_eq!(options[1].label, "Any replica (ddb.reads)");
    let _ = app.update(Message::TargetSelected(options[2].clone()));
    assert_eq!(app.target, Target::Node("slave1".into()));
    assert_eq!(app.target_options().1.label, "Slave 1 (slave1)");
}

#[test]
fn a_search_to_any_replica_goes_to_the_reads_subject() {
    let (mut app, mut rx) = connected();
    let any = app.target_options().0[1].clone();
    let _ = app.update(Message::TargetSelected(any));
    assert_eq!(app.target, Target::AnyReplica);
    op(&mut app, OpKind::Search);
    edit(&mut app, Field::Db, "mydb");
    edit(&mut app, Field::Table, "users");
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    assert_eq!(cmd.target, Target::AnyReplica);
    assert_eq!(app.subject(&cmd.target), format!("{}.reads", app.prefix()));
    assert_eq!(cmd.payload["op"], "SEARCH");
    assert_eq!(
        app.history.get(0).unwrap().target_label,
        format!("Any replica ({}.reads)", app.prefix())
    );
}

#[test]
fn execute_sends_the_built_request_to_the_target() {
    let (mut app, mut rx) = connected();
    op(&mut app, OpKind::Insert);
    edit(&mut app, Field::Db, "mydb");
    edit(&mut app, Field::Table, "users");
    edit(&mut app, Field::Data, r#"{"id":1,"name":"Alice"}"#);
    let _ = app.update(Message::Execute);
    let cmd = next_command(&mut rx);
    assert_eq!(cmd.target, Target::Writer);
    assert_eq!(
        cmd.payload,
        json!({"op":"INSERT","db":"mydb","table":"users","data":{"id":1,"name":"Alice"}})
    );
    assert_eq!(app.outcome.pending_id(), Some(cmd.id));
    assert!(!app.can_execute());
    assert_eq!(app.history_len(), 1);
    assert_eq!(app.history.get(0).unwrap().title, "INSERT mydb.users");
    // Enter again while waiting does nothing.
    let _ = app.update(Message::Execute);
    no_command(&mut rx);
    assert_eq!(app.history_len(), 1);
}

#[test]
fn execute_with_invalid_fields_sends_nothing_and_says_why() {
    let (mut app, mut rx) = connected();
    op(&mut app, OpKind::Insert);
    edit(&mut app, Field::Db, "mydb");
    edit(&mut app, Field::Table, "users");
    edit(&mut app, Field::Data, r#"{"id":1,"#);
    let _ = app.update(Message::Execute);
    no_command(&mut rx);
    assert!(app.form.error(Field::Data).unwrap().contains("JSON"));
    assert!(app.notice.as_deref().unwrap().contains("Data"));
    assert_eq!(app.outcome, Outcome::Idle);
}

#[test]
fn execute_before_the_worker_is_ready_says_so() {
    let mut app = app();
    edit(&mut app, Field::Db, "mydb");
    let _ = app.update(Message::Execute);
    assert!(app.notice.as_deref().unwrap().contains("not connected"));
    assert_eq!(app.history_len(), 0);
}

#[test]
fn execute_reports_a_closed_worker() {
    let (mut app, rx) = connected();
    drop(rx);
    edit(&mut app, Field::Db, "mydb");
    let _ = app.update(Message::Execute);
    assert!(app
        .notice
        .as_deref()
        .unwrap()
        .contains("not taking requests"));
    assert_eq!(app.outcome, Outcome::Idle);
}

#[test]
fn connection_events_update_link_nodes_and_results() {
    let mut app = app();
    assert_eq!(app.link, Link::Connecting);
    let _ = app.update(Message::Connection(Event::Failed("bad URL".into())));
    assert_eq!(app.link, Link::Disconnected);
    assert_eq!(app.link_error.as_deref(), Some("bad URL"));
    let (commands, mut rx) = Commands::test_pair();
    let _ = app.update(Message::Connection(Event::Ready(commands)));
    assert_eq!(app.link_error, None);
    let _ = app.update(Message::Connection(Event::Link(Link::Connected)));
    assert!(app.is_connected());
    let _ = app.update(Message::Connection(Event::Heartbeat(
        hb("master", Role::Master, Mode::Master, 9),
        Instant::now(),
    )));
    assert_eq!(app.nodes.alive_count(), 1);

    edit(&mut app, Field::Db, "mydb");
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    // A stale reply for another request is ignored.
    respond(&mut app, id + 100, Ok(Reply::ok("master")));
    assert!(app.outcome.is_pending());
    respond(
        &mut app,
        id,
        Ok(reply(json!({"ok":true,"node":"master","seq":12}))),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!("{:?}", app.outcome)
    };
    assert_eq!(done.summary(), "ok · seq 12 · master");
    assert_eq!(app.last_write_seq, Some(12));
    assert_eq!(
        app.history.get(0).unwrap().status(),
        crate::history::Status::Ok
    );

    let _ = app.update(Message::Connection(Event::Link(Link::Disconnected)));
    assert!(!app.is_connected());
}

#[test]
fn reads_do_not_move_the_last_write_seq_and_errors_keep_their_code() {
    let (mut app, mut rx) = connected();
    op(&mut app, OpKind::Search);
    edit(&mut app, Field::Db, "mydb");
    edit(&mut app, Field::Table, "users");
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    respond(
        &mut app,
        id,
        Ok(reply(json!({"ok":true,"node":"slave1","seq":40,"rows":[]}))),
    );
    assert_eq!(app.last_write_seq, None);
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    respond(
        &mut app,
        id,
        Err(DdbError::new(ErrorCode::Timeout, "no reply")),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!()
    };
    assert_eq!(done.error().unwrap().code, ErrorCode::Timeout);
    assert_eq!(
        app.history.get(0).unwrap().status(),
        crate::history::Status::Failed
    );
}

#[test]
fn tick_moves_the_clock_and_the_spinner() {
    let mut app = app();
    let t0 = Instant::now();
    let _ = app.update(Message::Connection(Event::Heartbeat(
        hb("master", Role::Master, Mode::Master, 1),
        t0,
    )));
    assert_eq!(app.nodes.alive_count(), 1);
    let frame = app.spinner;
    let _ = app.update(Message::Tick(t0 + Duration::from_millis(3100)));
    assert_eq!(app.spinner, frame + 1);
    assert_eq!(app.nodes.alive_count(), 0, "red after 3 missed heartbeats");
}

#[test]
fn result_view_and_copy() {
    let (mut app, mut rx) = connected();
    assert_eq!(
        app.update(Message::CopyResult).units(),
        0,
        "nothing to copy yet"
    );
    let _ = app.update(Message::ResultView(ResultView::Json));
    assert_eq!(app.result_view, ResultView::Json);
    edit(&mut app, Field::Db, "mydb");
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    respond(&mut app, id, Ok(Reply::ok("master")));
    assert_eq!(
        app.result_view,
        ResultView::Table,
        "a new result opens on its table"
    );
    let copy = app.update(Message::CopyResult);
    let raw = match &app.outcome {
        Outcome::Done(d) => d.raw_json(),
        _ => unreachable!(),
    };
    assert_eq!(
        copied(copy).as_deref(),
        Some(raw.as_str()),
        "the raw JSON reply goes to the clipboard"
    );
}

/// What a task writes to the clipboard, if it is a clipboard write.
fn copied(task: Task<Message>) -> Option<String> {
    use futures::StreamExt;
    use iced_test::runtime::{clipboard, task, Action};
    let mut actions = task::into_stream(task)?;
    match futures::executor::block_on(actions.next())? {
        Action::Clipboard(clipboard::Action::Write { contents, .. }) => Some(contents),
        _ => None,
    }
}

/// Runs the widget operations of each task, in turn, on one live view of `app` (as the
/// runtime does, following chained operations) and returns the id of the focused widget.
fn focused_after(app: &App, tasks: Vec<Task<Message>>) -> Option<iced::widget::Id> {
    use futures::StreamExt;
    use iced_test::core::renderer::Headless;
    use iced_test::core::widget::operation::{black_box, Outcome as Op};
    use iced_test::core::widget::Operation;
    use iced_test::runtime::{task, user_interface, Action, UserInterface};
    use iced_test::selector::{is_focused, Selector, Target};
    let mut renderer = futures::executor::block_on(<iced::Renderer as Headless>::new(
        iced::Font::with_name("Fira Sans"),
        iced::Pixels(16.0),
        None,
    ))
    .expect("a headless renderer");
    let mut ui = UserInterface::build(
        view::view(app),
        iced::Size::new(1400.0, 900.0),
        user_interface::Cache::default(),
        &mut renderer,
    );
    for t in tasks {
        let mut actions = task::into_stream(t).expect("a task with an action");
        while let Some(action) = futures::executor::block_on(actions.next()) {
            let Action::Widget(mut operation) = action else {
                panic!("only widget operations were expected");
            };
            loop {
                ui.operate(&renderer, operation.as_mut());
                match operation.finish() {
                    Op::Chain(next) => operation = next,
                    _ => break,
                }
            }
        }
    }
    let mut find = is_focused().find();
    ui.operate(&renderer, &mut black_box(&mut find));
    match find.finish() {
        Op::Some(Some(Target::Focusable { id, .. })) => id,
        Op::Some(Some(other)) => panic!("unexpected target {other:?}"),
        _ => None,
    }
}

#[test]
fn a_refused_write_can_be_resent_to_the_writer() {
    let (mut app, mut rx) = connected();
    let _ = app.update(Message::Connection(Event::Heartbeat(
        hb("master", Role::Master, Mode::Master, 1),
        Instant::now(),
    )));
    app.target = Target::Node("slave1".into());
    edit(&mut app, Field::Db, "mydb");
    let _ = app.update(Message::Execute);
    let first = next_command(&mut rx);
    assert_eq!(first.target, Target::Node("slave1".into()));
    respond(
        &mut app,
        first.id,
        Ok(reply(
            json!({"ok":false,"node":"slave1","error":{"code":"read_only","message":"node slave1 is a read-only replica"}}),
        )),
    );
    let Outcome::Done(done) = &app.outcome else {
        panic!()
    };
    let hint = done.hint(&app.nodes, "ddb").unwrap();
    assert!(
        hint.contains("Writer (ddb.ops)") && hint.contains("master"),
        "{hint}"
    );
    let _ = app.update(Message::ResendToWriter);
    let again = next_command(&mut rx);
    assert_eq!(again.target, Target::Writer);
    assert_eq!(again.payload, first.payload);
    assert_eq!(app.target, Target::Writer);
    // Nothing to resend once the last result is not a refusal.
    respond(&mut app, again.id, Ok(Reply::ok("master")));
    let _ = app.update(Message::ResendToWriter);
    no_command(&mut rx);
}

#[test]
fn use_last_seq_fills_min_seq() {
    let mut app = app();
    let _ = app.update(Message::UseLastSeq);
    assert_eq!(app.form.value(Field::MinSeq), "");
    app.last_write_seq = Some(42);
    let _ = app.update(Message::UseLastSeq);
    assert_eq!(app.form.value(Field::MinSeq), "42");
}

#[test]
fn history_selection_reloads_fields_target_and_result() {
    let (mut app, mut rx) = connected();
    op(&mut app, OpKind::Insert);
    edit(&mut app, Field::Db, "mydb");
    edit(&mut app, Field::Table, "users");
    edit(&mut app, Field::Data, r#"{"id":1}"#);
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    respond(
        &mut app,
        id,
        Ok(reply(
            json!({"ok":true,"node":"master","seq":3,"affected":1}),
        )),
    );

    op(&mut app, OpKind::Search);
    app.target = Target::Node("slave2".into());
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    respond(
        &mut app,
        id,
        Ok(reply(json!({"ok":true,"node":"slave2","seq":3,"rows":[]}))),
    );

    let _ = app.update(Message::HistorySelected(1));
    assert_eq!(app.op(), OpKind::Insert);
    assert_eq!(app.form.value(Field::Data), r#"{"id":1}"#);
    assert_eq!(app.target, Target::Writer);
    let Outcome::Done(done) = &app.outcome else {
        panic!()
    };
    assert_eq!(done.summary(), "1 row affected · seq 3 · master");
    let _ = app.update(Message::HistorySelected(99));
    assert_eq!(app.op(), OpKind::Insert);
}

#[test]
fn clear_history_keeps_pending_requests() {
    let (mut app, mut rx) = connected();
    edit(&mut app, Field::Db, "mydb");
    let _ = app.update(Message::Execute);
    let id = next_command(&mut rx).id;
    respond(&mut app, id, Ok(Reply::ok("master")));
    let _ = app.update(Message::Execute);
    let _ = next_command(&mut rx);
    let _ = app.update(Message::ClearHistory);
    assert_eq!(app.history_len(), 1);
    assert!(app.history.get(0).unwrap().done.is_none());
}

#[test]
fn focus_messages_move_the_focus() {
    let mut app = app();
    let focus_db = || iced::widget::operation::focus(view::ids::field(Field::Db));
    let next = app.update(Message::FocusNext);
    assert_eq!(
        focused_after(&app, vec![focus_db(), next]),
        Some(view::ids::field(Field::OpId)),
        "Tab moves from the database to the next input (the op_id)"
    );
    let previous = app.update(Message::FocusPrevious);
    let next = app.update(Message::FocusNext);
    assert_eq!(
        focused_after(&app, vec![focus_db(), next, previous]),
        Some(view::ids::field(Field::Db)),
        "Shift+Tab moves back to the database"
    );
}

#[test]
fn keys_map_to_messages() {
    use iced::keyboard::{Event as K, Key, Location, Modifiers};
    let press = |key: Key, modifiers: Modifiers| K::KeyPressed {
        key: key.clone(),
        modified_key: key,
        physical_key: iced::keyboard::key::Physical::Unidentified(
            iced::keyboard::key::NativeCode::Unidentified,
        ),
        location: Location::Standard,
        modifiers,
        text: None,
        repeat: false,
    };
    assert!(matches!(
        key_message(press(Key::Named(Named::Enter), Modifiers::default())),
        Some(Message::Execute)
    ));
    assert!(matches!(
        key_message(press(Key::Named(Named::Tab), Modifiers::default())),
        Some(Message::FocusNext)
    ));
    assert!(matches!(
        key_message(press(Key::Named(Named::Tab), Modifiers::SHIFT)),
        Some(Message::FocusPrevious)
    ));
    assert!(key_message(press(Key::Character("a".into()), Modifiers::default())).is_none());
}

#[test]
fn a_script_runs_step_by_step_once_its_targets_are_alive() {
    let mut config = Config::new(settings());
    config.script = crate::script::parse(
        "{\"op\":\"CREATE_DB\",\"db\":\"mydb\"}\n@slave1 {\"op\":\"CHECKSUM\",\"db\":\"mydb\",\"min_seq\":\"$seq\"}\n",
    )
    .unwrap();
    let mut app = App::new(config);
    let (commands, mut rx) = Commands::test_pair();
    let _ = app.update(Message::Connection(Event::Ready(commands)));
    let _ = app.update(Message::Connection(Event::Link(Link::Connected)));
    let _ = app.update(Message::Tick(Instant::now()));
    no_command(&mut rx);
    assert_eq!(app.steps_left(), 2);
    let _ = app.update(Message::Connection(Event::Heartbeat(
        hb("master", Role::Master, Mode::Master, 1),
        Instant::now(),
    )));
    let first = next_command(&mut rx);
    assert_eq!(first.payload, json!({"op":"CREATE_DB","db":"mydb"}));
    respond(
        &mut app,
        first.id,
        Ok(reply(json!({"ok":true,"node":"master","seq":5}))),
    );
    // slave1 not heard yet: the step waits.
    no_command(&mut rx);
    let _ = app.update(Message::Connection(Event::Heartbeat(
        hb("slave1", Role::Slave, Mode::Replica, 5),
        Instant::now(),
    )));
    let second = next_command(&mut rx);
    assert_eq!(second.target, Target::Node("slave1".into()));
    assert_eq!(
        second.payload,
        json!({"op":"CHECKSUM","db":"mydb","min_seq":5})
    );
    assert_eq!(app.op(), OpKind::Checksum, "the form shows the step");
    assert_eq!(app.steps_left(), 0);
}

#[test]
fn a_failed_script_step_stops_the_script() {
    let mut config = Config::new(settings());
    config.script = crate::script::parse(
        "{\"op\":\"CREATE_DB\",\"db\":\"mydb\"}\n{\"op\":\"DROP_DB\",\"db\":\"mydb\"}\n",
    )
    .unwrap();
    let mut app = App::new(config);
    let (commands, mut rx) = Commands::test_pair();
    let _ = app.update(Message::Connection(Event::Ready(commands)));
    let _ = app.update(Message::Connection(Event::Link(Link::Connected)));
    let _ = app.update(Message::Connection(Event::Heartbeat(
        hb("master", Role::Master, Mode::Master, 1),
        Instant::now(),
    )));
    let first = next_command(&mut rx);
    respond(
        &mut app,
        first.id,
        Ok(reply(
            json!({"ok":false,"node":"master","error":{"code":"db_exists","message":"database mydb exists"}}),
        )),
    );
    no_command(&mut rx);
    assert_eq!(app.steps_left(), 0);
    assert!(app.notice.as_deref().unwrap().contains("script stopped"));
}

#[test]
fn title_names_the_servers() {
    assert_eq!(app().title(), "ddb — nats://127.0.0.1:4222 (ddb)");
}

#[test]
fn verify_asks_the_worker_about_the_live_nodes_only() {
    let (mut app, mut rx) = connected_with_three_nodes();
    assert!(app.can_verify());
    let _ = app.update(Message::Verify);
    let job = next_verify(&mut rx);
    let asked: Vec<&str> = job.nodes.iter().map(|h| h.node.as_str()).collect();
    assert_eq!(asked, ["master", "slave1"], "masters first; slave2 is red");
    assert_eq!(ddb::verify::plan(&job.nodes, &[]).min_seq, 7);
    let Outcome::Verifying(p) = &app.outcome else {
        panic!("{:?}", app.outcome)
    };
    assert_eq!((p.id, p.nodes.len()), (job.id, 2));
    assert!(!app.can_verify() && !app.can_execute());
    assert_eq!(app.history_len(), 0, "a verification is not a request");
    // Pressing again, or Execute, while it runs does nothing.
    let _ = app.update(Message::Verify);
    let _ = app.update(Message::Execute);
    no_command(&mut rx);
}

#[test]
fn a_verification_result_replaces_the_pending_one_and_stale_ones_are_dropped() {
    let (mut app, mut rx) = connected_with_three_nodes();
    let _ = app.update(Message::Verify);
    let id = next_verify(&mut rx).id;
    verified(&mut app, id + 1, crate::verify::tests::report(false));
    assert!(matches!(app.outcome, Outcome::Verifying(_)));
    verified(&mut app, id, crate::verify::tests::report(true));
    let Outcome::Verified(v) = &app.outcome else {
        panic!("{:?}", app.outcome)
    };
    assert_eq!(v.summary(), "1 mismatch in 3 tables on 3 nodes");
    assert!(app.can_execute() && app.can_verify());
    // A verification result that arrives after a request was sent is ignored.
    edit(&mut app, Field::Db, "mydb");
    let _ = app.update(Message::Execute);
    let request = next_command(&mut rx).id;
    verified(&mut app, id, crate::verify::tests::report(false));
    assert_eq!(app.outcome.pending_id(), Some(request));
    // And a request's reply does not end a verification.
    respond(&mut app, request, Ok(Reply::ok("master")));
    let _ = app.update(Message::Verify);
    let id = next_verify(&mut rx).id;
    respond(&mut app, id, Ok(Reply::ok("master")));
    assert!(matches!(app.outcome, Outcome::Verifying(_)));
}

#[test]
fn verify_says_why_it_cannot_run() {
    let mut app = app();
    let _ = app.update(Message::Verify);
    assert!(app.notice.as_deref().unwrap().contains("not connected"));
    let (mut app, mut rx) = connected();
    let _ = app.update(Message::Verify);
    assert_eq!(
        app.notice.as_deref(),
        Some("no live node to verify: no heartbeat on ddb.hb.* lately")
    );
    assert_eq!(app.outcome, Outcome::Idle);
    no_command(&mut rx);
    let (mut app, rx) = connected_with_three_nodes();
    drop(rx);
    let _ = app.update(Message::Verify);
    assert!(app
        .notice
        .as_deref()
        .unwrap()
        .contains("not taking requests"));
    assert_eq!(app.outcome, Outcome::Idle);
}
