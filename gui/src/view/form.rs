//! The request panel: target, operation, the op's fields, the request preview, Execute.

use super::{ids, style, tx};
use crate::app::{App, Message};
use crate::form::{ColType, ColumnsMode, Field, Form, Message as FormMessage, OpKind, TxMessage};
use crate::results::Outcome;
use iced::widget::{
    button, checkbox, column, container, pick_list, row, space, text, text_input, tooltip, Id,
};
use iced::{Center, Element, Fill, Font};

pub(super) const LABEL_WIDTH: u32 = 140;

/// Whose fields a widget edits: the form's, or those of op `i` of its TRANSACTION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Form,
    Op(usize),
}

impl Scope {
    /// `message` addressed to this scope's fields.
    pub(super) fn msg(self, message: FormMessage) -> Message {
        match self {
            Scope::Form => Message::Form(message),
            Scope::Op(i) => Message::Form(FormMessage::Tx(TxMessage::op(i, message))),
        }
    }

    fn id(self, field: Field) -> Id {
        match self {
            Scope::Form => ids::field(field),
            Scope::Op(i) => ids::op_field(i, field),
        }
    }
}
const SPINNER: [&str; 8] = ["◐", "◓", "◑", "◒", "◐", "◓", "◑", "◒"];

pub fn view(app: &App) -> Element<'_, Message> {
    let form = &app.form;
    let (options, selected) = app.target_options();
    let target = labelled(
        "Target",
        format!(
            "Where the request goes.\nWriter ({p}.ops): whichever node takes writes (the master, or a slave in failover).\nA node: {p}.node.<name>; SEARCH reads that node's own copy, and a replica refuses writes.",
            p = app.prefix()
        ),
        pick_list(options, Some(selected), Message::TargetSelected)
            .text_size(14)
            .width(Fill)
            .into(),
        None,
    );

    let ops = OpKind::ALL.iter().fold(row![].spacing(6), |r, &op| {
        let b = button(text(op.name()).size(13))
            .padding([5, 10])
            .on_press(Message::Form(FormMessage::OpSelected(op)))
            .style(if op == form.op {
                button::primary
            } else {
                button::secondary
            });
        r.push(style::with_help(
            b,
            format!("{}\nExample: {}", op.summary(), op.example()),
            tooltip::Position::Bottom,
        ))
    });
    let operation = labelled(
        "Operation",
        "The op to run; the fields below change with it.\nDatabase and table are kept when you switch.".to_owned(),
        column![ops.wrap().vertical_spacing(6), text(form.op.summary()).size(13).style(text::secondary)]
            .spacing(6)
            .into(),
        None,
    );

    let mut fields = column![target, operation].spacing(10);
    for field in form.visible_fields() {
        fields = fields.push(field_row(app, form, field, Scope::Form));
    }

    let preview: Element<'_, Message> = match form.preview() {
        Some(request) => {
            let subject = app.subject(&app.target);
            style::with_help(
                text(format!("nats req {subject} '{request}'"))
                    .size(12)
                    .font(Font::MONOSPACE)
                    .style(text::secondary),
                "The request this sends, as you would send it with the nats CLI.",
                tooltip::Position::Top,
            )
        }
        None => text("").size(12).into(),
    };

    let execute = button(text("Execute  ⏎").size(15).font(style::BOLD))
        .padding([8, 22])
        .on_press_maybe(app.can_execute().then_some(Message::Execute))
        .style(button::primary);
    let mut actions = row![execute].spacing(12).align_y(Center);
    let waiting = match &app.outcome {
        Outcome::Pending(p) => Some(format!("waiting for {} …", p.target_label)),
        Outcome::Verifying(v) => Some(format!("verifying {} nodes …", v.nodes.len())),
        _ => None,
    };
    if let Some(waiting) = waiting {
        actions = actions.push(
            row![
                text(SPINNER[app.spinner % SPINNER.len()]).size(20),
                text(waiting).size(14),
            ]
            .spacing(8)
            .align_y(Center),
        );
    }
    if let Some(notice) = &app.notice {
        actions = actions.push(text(notice.clone()).size(14).style(style::error_text));
    }

    style::card(column![style::title("Request"), fields, preview, actions].spacing(12))
        .width(Fill)
        .into()
}

/// A label with its help on hover, then the input, then the error under it.
pub(super) fn labelled<'a>(
    label: &'static str,
    help: String,
    input: Element<'a, Message>,
    error: Option<&'a str>,
) -> Element<'a, Message> {
    let label = style::with_help(
        container(text(label).size(14).font(style::BOLD))
            .width(LABEL_WIDTH)
            .padding([6, 0]),
        help,
        tooltip::Position::Right,
    );
    let right = column![input]
        .push(error.map(|e| text(e.to_owned()).size(13).style(style::error_text)))
        .spacing(4)
        .width(Fill);
    row![label, right].spacing(8).into()
}

/// One field of `form` (the app's form, or an op of its TRANSACTION).
pub(super) fn field_row<'a>(
    app: &'a App,
    form: &'a Form,
    field: Field,
    scope: Scope,
) -> Element<'a, Message> {
    if field.is_columns() {
        return columns_row(form, field, scope);
    }
    if field == Field::Ops {
        return labelled(
            field.label(),
            field.help().to_owned(),
            tx::editor(app, form),
            form.error(field),
        );
    }
    if field == Field::Unique {
        return labelled(
            field.label(),
            field.help().to_owned(),
            checkbox(form.unique)
                .label("refuse rows that repeat the values of these columns")
                .text_size(13)
                .on_toggle(move |on| scope.msg(FormMessage::Unique(on)))
                .into(),
            form.error(field),
        );
    }
    let mut input = text_input(field.placeholder_for(form.op), form.value(field))
        .id(scope.id(field))
        .on_input(move |v| scope.msg(FormMessage::Edited(field, v)))
        .on_submit(Message::Execute)
        .size(14)
        .padding(7)
        .width(Fill);
    if field.is_json() {
        input = input.font(Font::MONOSPACE);
    }
    let mut widget = row![input].spacing(8).align_y(Center);
    if field == Field::MinSeq && scope == Scope::Form {
        if let Some(seq) = app.last_write_seq {
            widget = widget.push(style::with_help(
                button(text(format!("last write ({seq})")).size(13))
                    .padding([6, 10])
                    .on_press(Message::UseLastSeq)
                    .style(button::secondary),
                "Read your writes: wait until this node has applied your last write.",
                tooltip::Position::Top,
            ));
        }
    }
    labelled(
        field.label(),
        field.help().to_owned(),
        widget.into(),
        form.error(field),
    )
}

/// An op's columns: an editor or JSON. CREATE_TABLE's rows have key and not null;
/// ADD_COLUMN's do not, its new columns being nullable and outside the key.
fn columns_row(form: &Form, field: Field, scope: Scope) -> Element<'_, Message> {
    let editor = form.editor(field);
    let table_columns = field == Field::Columns;
    let mode_button = |label: &'static str, mode: ColumnsMode| {
        button(text(label).size(12))
            .padding([3, 10])
            .on_press(scope.msg(FormMessage::ColumnsMode(mode)))
            .style(if editor.mode == mode {
                button::primary
            } else {
                button::secondary
            })
    };
    let modes = row![
        mode_button("Editor", ColumnsMode::Editor),
        mode_button("JSON", ColumnsMode::Json)
    ]
    .spacing(4);
    let body: Element<'_, Message> = match editor.mode {
        ColumnsMode::Json => text_input(field.placeholder(), form.value(field))
            .id(scope.id(field))
            .on_input(move |v| scope.msg(FormMessage::Edited(field, v)))
            .on_submit(Message::Execute)
            .font(Font::MONOSPACE)
            .size(14)
            .padding(7)
            .width(Fill)
            .into(),
        ColumnsMode::Editor => {
            let mut rows = column![].spacing(6);
            for (i, c) in editor.rows.iter().enumerate() {
                let mut line = row![
                    text_input("column name", &c.name)
                        .on_input(move |v| scope.msg(FormMessage::ColumnName(i, v)))
                        .on_submit(Message::Execute)
                        .size(14)
                        .padding(6)
                        .width(Fill),
                    pick_list(&ColType::ALL[..], Some(c.ty), move |t| {
                        scope.msg(FormMessage::ColumnType(i, t))
                    })
                    .text_size(14)
                    .width(100),
                ]
                .spacing(10)
                .align_y(Center);
                if table_columns {
                    line = line
                        .push(
                            checkbox(c.primary_key)
                                .label("key")
                                .text_size(13)
                                .on_toggle(move |on| scope.msg(FormMessage::ColumnKey(i, on))),
                        )
                        .push(
                            checkbox(c.not_null)
                                .label("not null")
                                .text_size(13)
                                .on_toggle(move |on| scope.msg(FormMessage::ColumnNotNull(i, on))),
                        );
                }
                rows = rows.push(
                    line.push(
                        button(text("✕").size(13))
                            .padding([4, 8])
                            .on_press(scope.msg(FormMessage::RemoveColumn(i)))
                            .style(button::text),
                    ),
                );
            }
            rows.push(
                button(text("+ column").size(13))
                    .padding([4, 10])
                    .on_press(scope.msg(FormMessage::AddColumn))
                    .style(button::secondary),
            )
            .into()
        }
    };
    labelled(
        field.label(),
        field.help().to_owned(),
        column![row![modes, space::horizontal()], body]
            .spacing(6)
            .into(),
        form.error(field),
    )
}
