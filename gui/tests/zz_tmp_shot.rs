use ddb_gui::app::{App, Config, Message};
use ddb_gui::connection::Settings;
use ddb_gui::form::{Field, Message as FormMessage, OpKind, TxMessage};
use iced_test::Simulator;

fn send(app: &mut App, m: FormMessage) {
    let _ = app.update(Message::Form(m));
}

#[test]
fn shot() {
    let mut app = App::new(Config::new(Settings::new(
        vec!["nats://127.0.0.1:4222".into()],
        "ddb",
    )));
    send(&mut app, FormMessage::Edited(Field::Db, "bank".into()));
    send(&mut app, FormMessage::Edited(Field::Table, "acct".into()));
    send(&mut app, FormMessage::OpSelected(OpKind::Transaction));
    send(&mut app, FormMessage::Tx(TxMessage::Add));
    for i in 0..2 {
        let m = |x| FormMessage::Tx(TxMessage::op(i, x));
        send(&mut app, m(FormMessage::OpSelected(OpKind::Update)));
        send(
            &mut app,
            m(FormMessage::Edited(Field::Data, r#"{"bal":50}"#.into())),
        );
        send(
            &mut app,
            m(FormMessage::Edited(
                Field::Condition,
                r#"{"id":1,"bal":100}"#.into(),
            )),
        );
        send(&mut app, m(FormMessage::Edited(Field::Expect, "1".into())));
    }
    send(&mut app, FormMessage::Tx(TxMessage::Add));
    send(
        &mut app,
        FormMessage::Tx(TxMessage::op(2, FormMessage::OpSelected(OpKind::Insert))),
    );
    send(
        &mut app,
        FormMessage::Tx(TxMessage::op(
            2,
            FormMessage::Edited(Field::Data, "{x".into()),
        )),
    );
    let mut ui = Simulator::with_size(
        iced::Settings::default(),
        (1400.0, 900.0),
        ddb_gui::view::view(&app),
    );
    let snap = ui.snapshot(&iced::Theme::Light).unwrap();
    let _ = snap.matches_image("/tmp/shots/tx");
}
