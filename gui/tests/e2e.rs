//! The GUI's request path against a real local cluster: a real nats-server, the real
//! `ddb-master` and `ddb-slave` binaries, the GUI's own connection worker (the stream its
//! `Subscription::run_with` runs) feeding `App::update`, and the view drawn (and clicked) by
//! iced_test's simulator. Needs `cargo build --bins -p ddb-master -p ddb-slave` first.

use ddb::client::Target;
use ddb_e2e::{within, Cluster};
use ddb_gui::app::{App, Config, Message};
use ddb_gui::connection::{self, Event, Settings};
use ddb_gui::form::{Field, Message as FormMessage, OpKind};
use ddb_gui::results::Outcome;
use futures::stream::{BoxStream, StreamExt};
use iced_test::Simulator;
use std::time::{Duration, Instant};

struct Gui {
    app: App,
    events: BoxStream<'static, Event>,
}

impl Gui {
    fn start(cluster: &Cluster) -> Gui {
        let settings = Settings::new(vec![cluster.nats.url()], "ddb");
        let mut config = Config::new(settings.clone());
        config.nodes = vec!["master".into()];
        Gui {
            app: App::new(config),
            events: connection::worker(&settings).boxed(),
        }
    }

    fn send(&mut self, message: Message) {
        let _ = self.app.update(message);
    }

    /// Feeds worker events (and clock ticks, as the app's timer would) into `update` until
    /// `done` holds.
    async fn pump_until(&mut self, what: &str, secs: u64, done: impl Fn(&App) -> bool) {
        within(secs, what, async {
            loop {
                if done(&self.app) {
                    return;
                }
                if let Ok(Some(event)) =
                    tokio::time::timeout(Duration::from_millis(100), self.events.next()).await
                {
                    self.send(Message::Connection(event));
                }
                self.send(Message::Tick(Instant::now()));
            }
        })
        .await;
    }

    fn edit(&mut self, field: Field, value: &str) {
        self.send(Message::Form(FormMessage::Edited(field, value.into())));
    }

    fn op(&mut self, op: OpKind) {
        self.send(Message::Form(FormMessage::OpSelected(op)));
    }

    fn target(&mut self, target: Target) {
        let (options, _) = self.app.target_options();
        let option = options
            .into_iter()
            .find(|o| o.target == target)
            .unwrap_or_else(|| panic!("{target:?} is not offered"));
        self.send(Message::TargetSelected(option));
    }

    /// Presses Execute and waits for the reply; returns the result summary.
    async fn execute(&mut self) -> String {
        self.send(Message::Execute);
        assert!(
            self.app.outcome.is_pending(),
            "Execute did not send: {:?}",
            self.app.notice
        );
        self.pump_until("the reply", 30, |app| !app.outcome.is_pending())
            .await;
        match &self.app.outcome {
            Outcome::Done(done) => done.summary(),
            other => panic!("{other:?}"),
        }
    }

    fn shows(&self, label: &str) -> bool {
        let mut ui = Simulator::with_size(
            iced::Settings::default(),
            (1400.0, 900.0),
            ddb_gui::view::view(&self.app),
        );
        ui.find(label).is_ok()
    }

    /// Clicks the widget showing `label` and feeds what it produced into `update`.
    fn click(&mut self, label: &str) {
        let messages: Vec<Message> = {
            let mut ui = Simulator::with_size(
                iced::Settings::default(),
                (1400.0, 900.0),
                ddb_gui::view::view(&self.app),
            );
            ui.click(label)
                .unwrap_or_else(|e| panic!("cannot click {label:?}: {e}"));
            ui.into_messages().collect()
        };
        for m in messages {
            self.send(m);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_workflow_through_the_gui_shows_a_search_table() {
    let mut cluster = Cluster::start(2).await;
    let mut gui = Gui::start(&cluster);

    // The nodes panel fills from heartbeats.
    gui.pump_until("connected, three nodes heard", 30, |app| {
        app.is_connected() && app.nodes.alive_count() == 3
    })
    .await;
    let labels: Vec<String> = gui
        .app
        .target_options()
        .0
        .into_iter()
        .map(|o| o.label)
        .collect();
    assert_eq!(
        labels,
        [
            "Writer (ddb.ops)",
            "Any replica (ddb.reads)",
            "Master (master)",
            "Slave 1 (slave1)",
            "Slave 2 (slave2)"
        ]
    );
    assert_eq!(gui.app.nodes.get("slave1").unwrap().mode_label(), "replica");
    assert!(gui.shows("3 of 3 alive"));

    // The seed's workflow, field by field.
    gui.op(OpKind::CreateDb);
    gui.edit(Field::Db, "mydb");
    assert!(gui.execute().await.contains("master"));
    gui.op(OpKind::CreateTable);
    gui.edit(Field::Table, "users");
    assert!(gui.execute().await.contains("seq"));
    gui.op(OpKind::Insert);
    gui.edit(Field::Data, r#"{"id":1,"name":"Alice"}"#);
    let inserted = gui.execute().await;
    assert!(inserted.starts_with("1 row affected · seq"), "{inserted}");
    let seq = gui.app.last_write_seq.expect("a write seq");

    // A write sent to a replica is refused, with where to send it; one click resends it.
    gui.target(Target::Node("slave1".into()));
    gui.edit(Field::Data, r#"{"id":2,"name":"Bob"}"#);
    assert_eq!(gui.execute().await, "read_only · slave1");
    assert!(gui.shows("Send it to Writer (ddb.ops)"));
    let Outcome::Done(done) = &gui.app.outcome else {
        unreachable!()
    };
    let hint = done.hint(&gui.app.nodes, "ddb").unwrap();
    assert!(hint.contains("master (ddb.node.master)"), "{hint}");
    gui.send(Message::ResendToWriter);
    gui.pump_until("the resent write", 30, |app| !app.outcome.is_pending())
        .await;
    let Outcome::Done(done) = &gui.app.outcome else {
        unreachable!()
    };
    assert!(done.is_ok(), "{}", done.summary());
    assert_eq!(gui.app.target, Target::Writer);

    // SEARCH on a slave, reading our writes.
    gui.op(OpKind::Search);
    gui.target(Target::Node("slave2".into()));
    gui.edit(Field::Condition, r#"{"id":1}"#);
    gui.send(Message::UseLastSeq);
    assert!(gui.app.form.value(Field::MinSeq).parse::<u64>().unwrap() > seq);
    assert_eq!(
        gui.app.form.preview().unwrap(),
        serde_json::json!({"op":"SEARCH","db":"mydb","table":"users","condition":{"id":1},"min_seq":gui.app.last_write_seq})
    );
    let found = gui.execute().await;
    assert!(
        found.starts_with("1 row · seq") && found.ends_with("slave2"),
        "{found}"
    );
    for label in ["id", "name", "Alice", "1 row", "answered by slave2"] {
        assert!(gui.shows(label), "the result table shows {label}");
    }
    assert!(!gui.shows("Bob"));
    assert_eq!(gui.app.history_len(), 6);

    // Verify: every node has both rows of mydb.users. Once every heartbeat says the last
    // write is applied (a quiet cluster), the three copies agree.
    let last = gui.app.last_write_seq.unwrap();
    gui.pump_until("every node to report the last write", 30, |app| {
        ["master", "slave1", "slave2"].iter().all(|n| {
            app.nodes
                .get(n)
                .and_then(|n| n.last.as_ref())
                .is_some_and(|hb| hb.applied_seq >= last)
        })
    })
    .await;
    gui.click("Verify");
    assert!(
        matches!(gui.app.outcome, Outcome::Verifying(_)),
        "Verify did not start: {:?}",
        gui.app.notice
    );
    gui.pump_until("the verification", 60, |app| {
        matches!(app.outcome, Outcome::Verified(_))
    })
    .await;
    let Outcome::Verified(v) = &gui.app.outcome else {
        unreachable!()
    };
    assert!(v.all_match(), "{:#?}", v.report);
    assert_eq!(v.report.nodes, ["master", "slave1", "slave2"]);
    let summary = v.summary();
    assert!(
        summary.ends_with(" on 3 nodes") && !summary.contains("mismatch"),
        "{summary}"
    );
    let users = v
        .report
        .rows
        .iter()
        .find(|r| r.db == "mydb" && r.table.as_deref() == Some("users"))
        .expect("a mydb.users row");
    let cell = users.cells[0].to_string();
    assert!(cell.starts_with("2 rows "), "{cell}");
    assert!(users.cells.iter().all(|c| c.to_string() == cell));
    for label in [
        summary.as_str(),
        "mydb.users",
        "slave2",
        cell.as_str(),
        "ok",
    ] {
        assert!(gui.shows(label), "the verification shows {label}");
    }
    assert!(!gui.shows("MISMATCH"));

    // A node that dies turns red within 3 s.
    cluster.kill("slave2");
    let killed = Instant::now();
    gui.pump_until("slave2 to turn red", 10, |app| {
        !app.nodes.get("slave2").unwrap().is_alive(app.nodes.now)
    })
    .await;
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "slave2 turned red after {:?}",
        killed.elapsed()
    );
    assert!(gui.shows("2 of 3 alive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_from_the_editor_applies_all_its_ops_or_none() {
    use ddb_gui::form::TxMessage;
    use serde_json::json;
    let cluster = Cluster::start(0).await;
    let mut gui = Gui::start(&cluster);
    gui.pump_until("connected, the master heard", 30, |app| {
        app.is_connected() && app.nodes.alive_count() == 1
    })
    .await;
    let writer = Target::Writer;
    cluster
        .ok(&writer, json!({"op":"CREATE_DB","db":"bank"}))
        .await;
    cluster
        .ok(
            &writer,
            json!({"op":"CREATE_TABLE","db":"bank","table":"acct","data":{"id":"int","bal":"int"},"primary_key":"id"}),
        )
        .await;
    cluster
        .ok(
            &writer,
            json!({"op":"INSERT","db":"bank","table":"acct","data":[{"id":1,"bal":100},{"id":2,"bal":100}]}),
        )
        .await;

    // Two compare-and-set UPDATEs: move 50 from account 1 to account 2.
    gui.edit(Field::Db, "bank");
    gui.edit(Field::Table, "acct");
    gui.op(OpKind::Transaction);
    gui.send(Message::Form(FormMessage::Tx(TxMessage::Add)));
    let legs = |from_old: i64, to_old: i64| {
        [
            (0, from_old - 50, format!(r#"{{"id":1,"bal":{from_old}}}"#)),
            (1, to_old + 50, format!(r#"{{"id":2,"bal":{to_old}}}"#)),
        ]
    };
    let set = |gui: &mut Gui, legs: [(usize, i64, String); 2]| {
        for (i, bal, condition) in legs {
            let inner = |m| Message::Form(FormMessage::Tx(TxMessage::op(i, m)));
            gui.send(inner(FormMessage::OpSelected(OpKind::Update)));
            gui.send(inner(FormMessage::Edited(
                Field::Data,
                format!(r#"{{"bal":{bal}}}"#),
            )));
            gui.send(inner(FormMessage::Edited(Field::Condition, condition)));
            gui.send(inner(FormMessage::Edited(Field::Expect, "1".into())));
        }
    };
    set(&mut gui, legs(100, 100));
    let done = gui.execute().await;
    assert!(done.starts_with("2 ops · 2 rows affected · seq "), "{done}");
    assert!(gui.shows("1 row affected"));
    let balances = |r: ddb::reply::Reply| serde_json::to_value(r.rows).unwrap();
    let after = json!([{"id":1,"bal":50},{"id":2,"bal":150}]);
    let search = json!({"op":"SEARCH","db":"bank","table":"acct","order_by":"id"});
    assert_eq!(balances(cluster.ok(&writer, search.clone()).await), after);

    // Account 1 read right, account 2 stale: op 1 fails, and op 0 is not applied either.
    set(&mut gui, legs(50, 100));
    assert_eq!(gui.execute().await, "precondition_failed at op 1 · master");
    for label in ["failed: precondition_failed", "not applied"] {
        assert!(gui.shows(label), "the result shows {label}");
    }
    assert_eq!(balances(cluster.ok(&writer, search).await), after);
}
