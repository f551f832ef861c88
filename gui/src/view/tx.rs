//! TRANSACTION's ops editor: one box per op (its number, its kind, ↑ ↓ ✕, then its fields
//! as its own form shows them, less db and op id), and + op under them. A long list scrolls.

use super::form::{field_row, Scope};
use super::{ids, style};
use crate::app::{App, Message};
use crate::form::{Form, Message as FormMessage, TxMessage, TX_KINDS};
use iced::widget::{button, column, container, pick_list, row, scrollable, space, text, tooltip};
use iced::{Center, Element, Fill};

/// How tall the list grows before it scrolls.
const MAX_HEIGHT: u32 = 420;

pub fn editor<'a>(app: &'a App, form: &'a Form) -> Element<'a, Message> {
    let last = form.tx.len().saturating_sub(1);
    let ops = form
        .tx
        .iter()
        .enumerate()
        .fold(column![].spacing(8), |list, (i, op)| {
            list.push(op_box(app, op, i, last))
        });
    let add = style::with_help(
        button(text("+ op").size(13))
            .padding([4, 10])
            .on_press(Message::Form(FormMessage::Tx(TxMessage::Add)))
            .style(button::secondary),
        "Add an op at the end: the same kind, on the same table, as the last one.",
        tooltip::Position::Top,
    );
    let mut editor = column![].spacing(6);
    if !form.tx.is_empty() {
        editor = editor.push(container(scrollable(ops).spacing(4)).max_height(MAX_HEIGHT));
    }
    editor.push(add).into()
}

/// Op `i`: a header with its kind and its buttons, its fields, and what the node's parser
/// said about it.
fn op_box<'a>(app: &'a App, op: &'a Form, i: usize, last: usize) -> Element<'a, Message> {
    let scope = Scope::Op(i);
    let kind = style::with_help(
        pick_list(&TX_KINDS[..], Some(op.op), move |k| {
            scope.msg(FormMessage::OpSelected(k))
        })
        .text_size(13),
        format!(
            "What this op does: {}\nExample: {}",
            op.op.summary(),
            op.op.example()
        ),
        tooltip::Position::Top,
    );
    let control = |label: &'static str, name: &str, help: &'static str, m: Option<TxMessage>| {
        style::with_help(
            container(
                button(text(label).size(13))
                    .padding([3, 9])
                    .on_press_maybe(m.map(|m| Message::Form(FormMessage::Tx(m))))
                    .style(button::secondary),
            )
            .id(ids::op_button(i, name)),
            help,
            tooltip::Position::Top,
        )
    };
    let header = row![
        text(format!("op {i}")).size(14).font(style::BOLD),
        kind,
        space::horizontal(),
        control(
            "↑",
            "up",
            "Move this op up: the ops run in the order listed.",
            (i > 0).then_some(TxMessage::MoveUp(i)),
        ),
        control(
            "↓",
            "down",
            "Move this op down: the ops run in the order listed.",
            (i < last).then_some(TxMessage::MoveDown(i)),
        ),
        control(
            "✕",
            "remove",
            "Remove this op from the transaction.",
            Some(TxMessage::Remove(i)),
        ),
    ]
    .spacing(8)
    .align_y(Center);
    let mut body = column![header].spacing(6);
    for field in op.inner_fields() {
        body = body.push(field_row(app, op, field, scope));
    }
    if let Some(e) = &op.op_error {
        body = body.push(text(e.clone()).size(13).style(style::error_text));
    }
    container(body)
        .padding(8)
        .width(Fill)
        .style(container::bordered_box)
        .into()
}
