//! TRANSACTION's ops editor: the ops one line each (click one to edit it; ↑ ↓ reorder, ✕
//! removes; a long list scrolls), + op, then the selected op's kind and fields as its own
//! form shows them, less db and op id.

use super::form::{field_row, Scope};
use super::{ids, style};
use crate::app::{App, Message};
use crate::form::{Form, Message as FormMessage, TxMessage, TX_KINDS};
use iced::widget::{button, column, container, pick_list, row, scrollable, space, text, tooltip};
use iced::{Center, Element, Fill, Font};

/// How tall the list of ops grows before it scrolls (about six ops).
const LIST_HEIGHT: u32 = 200;
/// The longest one-line description of an op, in characters.
const LINE_CHARS: usize = 110;

fn tx_message(m: TxMessage) -> Message {
    Message::Form(FormMessage::Tx(m))
}

pub fn editor<'a>(app: &'a App, form: &'a Form) -> Element<'a, Message> {
    let last = form.tx.len().saturating_sub(1);
    let list = form
        .tx
        .iter()
        .enumerate()
        .fold(column![].spacing(4), |list, (i, op)| {
            list.push(op_line(op, i, last, i == form.tx_selected))
        });
    let add = style::with_help(
        button(text("+ op").size(13))
            .padding([4, 10])
            .on_press(tx_message(TxMessage::Add))
            .style(button::secondary),
        "Add an op at the end: the same kind, on the same table, as the last one.",
        tooltip::Position::Top,
    );
    let mut editor = column![].spacing(8);
    if !form.tx.is_empty() {
        editor = editor.push(container(scrollable(list).spacing(4)).max_height(LIST_HEIGHT));
    }
    editor = editor.push(add);
    if let Some(op) = form.tx.get(form.tx_selected) {
        editor = editor.push(op_fields(app, op, form.tx_selected));
    }
    editor.into()
}

/// Op `i` on one line: its number and what it does (both select it), then ↑ ↓ ✕.
fn op_line(op: &Form, i: usize, last: usize, selected: bool) -> Element<'_, Message> {
    let control = |label: &'static str, name: &str, help: &'static str, m: Option<TxMessage>| {
        style::with_help(
            container(
                button(text(label).size(12))
                    .padding([2, 8])
                    .on_press_maybe(m.map(tx_message))
                    .style(button::secondary),
            )
            .id(ids::op_button(i, name)),
            help,
            tooltip::Position::Top,
        )
    };
    let number = button(text(format!("op {i}")).size(13).font(style::BOLD))
        .padding([2, 8])
        .on_press(tx_message(TxMessage::Select(i)))
        .style(if selected {
            button::primary
        } else {
            button::secondary
        });
    let line = text(op.op_line(LINE_CHARS)).size(13).font(Font::MONOSPACE);
    let line = if op.has_errors() {
        line.style(style::error_text)
    } else {
        line
    };
    row![
        style::with_help(
            number,
            "Show this op's fields below.",
            tooltip::Position::Top
        ),
        button(line)
            .padding([2, 4])
            .width(Fill)
            .on_press(tx_message(TxMessage::Select(i)))
            .style(button::text),
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
    .spacing(6)
    .padding([0, 4])
    .align_y(Center)
    .into()
}

/// The selected op `i`: its kind, its fields, and what the node's parser said about it.
fn op_fields<'a>(app: &'a App, op: &'a Form, i: usize) -> Element<'a, Message> {
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
    let header = row![
        text(format!("op {i}")).size(14).font(style::BOLD),
        kind,
        text(op.op.summary()).size(12).style(text::secondary),
        space::horizontal(),
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
