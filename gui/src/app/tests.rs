//! `update()` for every message, and the widgets through `iced_test`'s simulator: the
//! shared helpers here, the tests in `update`, `simulator`, (issue 11's schema ops and
//! SEARCH paging) `schema` and (issue 17's TRANSACTION and expect) `tx`.

use super::*;
use crate::connection::{Command, Commands, Event, Link, Request, Settings, VerifyJob};
use crate::form::{ColType, ColumnsMode, Field, Message as FormMessage, OpKind};
use crate::nodes::tests::hb;
use crate::results::{Outcome, ResultView};
use crate::view;
use ddb::heartbeat::{Mode, Role};
use ddb::reply::Reply;
use ddb::{DdbError, ErrorCode};
use futures::channel::mpsc;
use iced::keyboard::key::Named;
use iced_test::{selector, Simulator};
use serde_json::json;

fn settings() -> Settings {
    Settings::new(vec!["nats://127.0.0.1:4222".into()], "ddb")
}

fn app() -> App {
    App::new(Config::new(settings()))
}

/// An app whose worker is replaced by a channel the test reads.
fn connected() -> (App, mpsc::Receiver<Command>) {
    let mut app = app();
    let (commands, rx) = Commands::test_pair();
    let _ = app.update(Message::Connection(Event::Ready(commands)));
    let _ = app.update(Message::Connection(Event::Link(Link::Connected)));
    (app, rx)
}

fn edit(app: &mut App, field: Field, value: &str) {
    let _ = app.update(Message::Form(FormMessage::Edited(field, value.into())));
}

fn op(app: &mut App, op: OpKind) {
    let _ = app.update(Message::Form(FormMessage::OpSelected(op)));
}

fn reply(v: serde_json::Value) -> Reply {
    serde_json::from_value(v).unwrap()
}

fn respond(app: &mut App, id: u64, result: Result<Reply, DdbError>) {
    let _ = app.update(Message::Connection(Event::Response {
        id,
        result,
        elapsed: Duration::from_millis(4),
    }));
}

/// The next command, which must be a request.
fn next_command(rx: &mut mpsc::Receiver<Command>) -> Request {
    match rx.try_recv().expect("a command was sent") {
        Command::Request(r) => r,
        other => panic!("a request was expected: {other:?}"),
    }
}

/// The next command, which must be a verification.
fn next_verify(rx: &mut mpsc::Receiver<Command>) -> VerifyJob {
    match rx.try_recv().expect("a command was sent") {
        Command::Verify(v) => v,
        other => panic!("a verification was expected: {other:?}"),
    }
}

fn verified(app: &mut App, id: u64, report: ddb::verify::Report) {
    let _ = app.update(Message::Connection(Event::Verified {
        id,
        report,
        elapsed: Duration::from_millis(9),
    }));
}

/// An app that hears master, slave1 (alive) and slave2 (silent for 5 s).
fn connected_with_three_nodes() -> (App, mpsc::Receiver<Command>) {
    let (mut app, rx) = connected();
    let now = Instant::now();
    let beats = [
        (
            hb("slave2", Role::Slave, Mode::Replica, 2),
            now - Duration::from_secs(5),
        ),
        (hb("slave1", Role::Slave, Mode::Replica, 6), now),
        (hb("master", Role::Master, Mode::Master, 7), now),
    ];
    for (beat, at) in beats {
        let _ = app.update(Message::Connection(Event::Heartbeat(beat, at)));
    }
    (app, rx)
}

fn no_command(rx: &mut mpsc::Receiver<Command>) {
    assert!(rx.try_recv().is_err(), "no command should have been sent");
}

// ---------------------------------------------------------------- simulator helpers

/// The window size the app opens with.
fn ui(app: &App) -> Simulator<'_, Message> {
    Simulator::with_size(iced::Settings::default(), (1400.0, 900.0), view::view(app))
}

/// Feeds every message the simulated interaction produced back into `update`.
fn apply(app: &mut App, messages: Vec<Message>) {
    for m in messages {
        let _ = app.update(m);
    }
}

fn click(app: &mut App, label: &str) {
    let mut ui = ui(app);
    ui.click(label)
        .unwrap_or_else(|e| panic!("cannot click {label:?}: {e}"));
    let messages: Vec<Message> = ui.into_messages().collect();
    apply(app, messages);
}

fn type_into(app: &mut App, field: Field, value: &str) {
    let mut ui = ui(app);
    ui.click(selector::id(view::ids::field(field)))
        .unwrap_or_else(|e| panic!("cannot click the {field:?} input: {e}"));
    let _ = ui.typewrite(value);
    let messages: Vec<Message> = ui.into_messages().collect();
    apply(app, messages);
}

fn shows(app: &App, label: &str) -> bool {
    ui(app).find(label).is_ok()
}

mod schema;
mod simulator;
mod tx;
mod update;
