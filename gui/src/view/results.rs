//! The result panel: status line (outcome, node, seq, time), then SEARCH rows as a table or
//! the raw JSON, or the error in red with its code and what to do about it; or the Verify
//! button's table (one row per table, one column per node, mismatches in red).

use super::style;
use crate::app::{App, Message};
use crate::results::{checksum_grid, rows_grid, Cell, Done, Grid, Outcome, ResultView, TxLine};
use crate::verify::{Verified, VerifyRow};
use iced::widget::{button, column, container, row, scrollable, space, table, text, tooltip};
use iced::{Center, Color, Element, Fill, Font};

pub fn view(app: &App) -> Element<'_, Message> {
    let body: Element<'_, Message> = match &app.outcome {
        Outcome::Idle => {
            text("Pick an operation, fill in its fields and press Execute (or Enter).")
                .size(14)
                .style(text::secondary)
                .into()
        }
        Outcome::Pending(p) => text(format!(
            "{} → {}: waiting for the reply…",
            p.title, p.target_label
        ))
        .size(14)
        .into(),
        Outcome::Done(done) => done_view(app, done),
        Outcome::Verifying(v) => text(v.waiting()).size(14).into(),
        Outcome::Verified(v) => verified_view(v),
    };
    style::card(column![style::title("Result"), body].spacing(10))
        .width(Fill)
        .height(Fill)
        .into()
}

fn done_view<'a>(app: &'a App, done: &'a Done) -> Element<'a, Message> {
    let ok = done.is_ok();
    let mut facts = row![
        style::dot(ok),
        text(if ok { "OK" } else { "Error" })
            .size(15)
            .font(style::BOLD),
        text(done.title.clone()).size(14),
        text(format!("→ {}", done.target_label))
            .size(14)
            .style(text::secondary),
    ]
    .spacing(10)
    .align_y(Center);
    if let Some(node) = done.node() {
        facts = facts.push(text(format!("answered by {node}")).size(14));
    }
    if let Some(reply) = done.reply() {
        if let Some(seq) = reply.seq {
            facts = facts.push(text(format!("seq {seq}")).size(14).font(Font::MONOSPACE));
        }
        if let Some(n) = reply.affected.filter(|_| done.counts_rows()) {
            facts = facts.push(text(format!("{n} affected")).size(14));
        }
        if let Some(page) = done.page_label() {
            facts = facts.push(text(page).size(14).font(style::BOLD));
        }
        if reply.duplicate {
            facts = facts.push(
                text("duplicate op_id: not applied again")
                    .size(14)
                    .style(text::warning),
            );
        }
    }
    facts = facts.push(
        text(format!("{} ms", done.elapsed.as_millis()))
            .size(13)
            .style(text::secondary),
    );

    let grid = done.reply().and_then(|r| {
        r.rows
            .as_ref()
            .map(|rows| rows_grid(rows))
            .or_else(|| checksum_grid(r))
    });
    let copy = copy_button();
    let tab = |label: &'static str, v: ResultView| {
        button(text(label).size(13))
            .padding([4, 12])
            .on_press(Message::ResultView(v))
            .style(if app.result_view == v {
                button::primary
            } else {
                button::secondary
            })
    };
    let mut tabs = row![
        tab("Rows", ResultView::Table),
        tab("Raw JSON", ResultView::Json)
    ]
    .spacing(6)
    .align_y(Center);
    if done.next_cursor().is_some() {
        tabs = tabs.push(style::with_help(
            button(text("Next page").size(13))
                .padding([4, 12])
                .on_press(Message::NextPage)
                .style(button::primary),
            "The same SEARCH again, to the same node, with after = this reply's next:\nthe rows that follow replace these.",
            tooltip::Position::Top,
        ));
    }
    let tabs = tabs.push(space::horizontal()).push(copy_button());

    let mut content = column![facts].spacing(10);
    if let Some(e) = done.error() {
        let [(code, code_color), (message, message_color)] = error_texts(&e);
        let mut error = column![row![
            text(code).size(15).font(style::BOLD).color(code_color),
            text(message).size(14).color(message_color),
        ]
        .spacing(10)]
        .spacing(8);
        if let Some(hint) = done.hint(&app.nodes, app.prefix()) {
            error = error.push(text(hint).size(14));
        }
        if done.can_resend_to_writer() {
            error = error.push(
                button(text(format!("Send it to Writer ({}.ops)", app.prefix())).size(14))
                    .padding([6, 14])
                    .on_press(Message::ResendToWriter)
                    .style(button::primary),
            );
        }
        content = content.push(
            container(error)
                .padding(10)
                .width(Fill)
                .style(style::tinted(style::RED)),
        );
    }

    let detail: Element<'a, Message> = match (grid, done.tx_lines()) {
        // A TRANSACTION: each op's outcome above the reply, scrolling together in what
        // room is left.
        (_, Some(lines)) => {
            content = content.push(row![space::horizontal(), copy]);
            scrollable(
                column![
                    tx_view(lines),
                    text(done.raw_json())
                        .size(13)
                        .font(Font::MONOSPACE)
                        .width(Fill)
                ]
                .spacing(10),
            )
            .width(Fill)
            .height(Fill)
            .into()
        }
        (Some(grid), None) => {
            content = content.push(tabs);
            match app.result_view {
                ResultView::Table => grid_view(grid),
                ResultView::Json => raw_view(done),
            }
        }
        (None, None) => {
            content = content.push(row![space::horizontal(), copy]);
            raw_view(done)
        }
    };
    content = content.push(detail);
    content.height(Fill).into()
}

/// What the error box of a failed reply says, and in which colour: its code, then its
/// message, both in red.
pub(crate) fn error_texts(e: &ddb::DdbError) -> [(String, Color); 2] {
    [
        (e.code.to_string(), style::RED),
        (e.message.clone(), style::RED),
    ]
}

/// A TRANSACTION's ops, one line each: what it affected, or that it failed (in red) and
/// that the others were not applied.
fn tx_view<'a>(lines: Vec<TxLine>) -> Element<'a, Message> {
    lines
        .into_iter()
        .fold(column![].spacing(4), |list, line| {
            let outcome = text(line.outcome).size(14);
            let outcome = if line.failed {
                outcome.color(style::RED).font(style::BOLD)
            } else {
                outcome
            };
            list.push(
                row![
                    text(format!("op {}", line.index))
                        .size(14)
                        .font(Font::MONOSPACE)
                        .width(60),
                    text(line.op).size(14).width(260),
                    outcome,
                ]
                .spacing(10)
                .align_y(Center),
            )
        })
        .into()
}

fn grid_view<'a>(grid: Grid) -> Element<'a, Message> {
    let count = grid.rows.len();
    if grid.columns.is_empty() {
        return text("No rows match.")
            .size(14)
            .style(text::secondary)
            .into();
    }
    let columns = grid.columns.iter().enumerate().map(|(i, name)| {
        let numeric = grid.rows.iter().all(|r| r[i].numeric || r[i].null) && count > 0;
        let col = table::column(
            text(name.clone()).size(14).font(style::BOLD),
            move |row: Vec<Cell>| cell_view(&row[i]),
        );
        if numeric {
            col.align_x(iced::Right)
        } else {
            col
        }
    });
    let t = table(columns.collect::<Vec<_>>(), grid.rows.clone())
        .padding_x(12)
        .padding_y(6);
    column![
        text(if count == 1 {
            "1 row".to_owned()
        } else {
            format!("{count} rows")
        })
        .size(13)
        .style(text::secondary),
        scroll_both(t),
    ]
    .spacing(6)
    .into()
}

/// A table that scrolls both ways and fills what is left.
fn scroll_both<'a>(content: impl Into<Element<'a, Message>>) -> Element<'a, Message> {
    scrollable(container(content))
        .direction(scrollable::Direction::Both {
            vertical: scrollable::Scrollbar::default(),
            horizontal: scrollable::Scrollbar::default(),
        })
        .width(Fill)
        .height(Fill)
        .into()
}

fn cell_view<'a>(cell: &Cell) -> Element<'a, Message> {
    let t = text(cell.text.clone()).size(14);
    if cell.null {
        t.style(text::secondary).into()
    } else if cell.numeric {
        t.font(Font::MONOSPACE).into()
    } else {
        t.into()
    }
}

fn raw_view<'a>(done: &Done) -> Element<'a, Message> {
    scrollable(
        text(done.raw_json())
            .size(13)
            .font(Font::MONOSPACE)
            .width(Fill),
    )
    .width(Fill)
    .height(Fill)
    .into()
}

fn copy_button<'a>() -> Element<'a, Message> {
    button(text("Copy JSON").size(13))
        .padding([4, 12])
        .on_press(Message::CopyResult)
        .style(button::text)
        .into()
}

fn verified_view(v: &Verified) -> Element<'_, Message> {
    let ok = v.all_match();
    let summary = text(v.summary()).size(14);
    let facts = row![
        style::dot(ok),
        text("Verification").size(15).font(style::BOLD),
        if ok {
            summary
        } else {
            summary.color(style::RED).font(style::BOLD)
        },
        text(format!("log seq {}", v.report.min_seq))
            .size(14)
            .font(Font::MONOSPACE),
        text(format!("{} ms", v.elapsed.as_millis()))
            .size(13)
            .style(text::secondary),
    ]
    .spacing(10)
    .align_y(Center);
    let grid = v.grid();
    if grid.rows.is_empty() {
        return column![facts].spacing(10).into();
    }
    let columns = grid.columns.iter().enumerate().map(|(i, name)| {
        table::column(
            text(name.clone()).size(14).font(style::BOLD),
            move |row: VerifyRow| -> Element<'_, Message> {
                let t = text(row.cells[i].clone()).size(14);
                let t = if i == 0 { t } else { t.font(Font::MONOSPACE) };
                if row.mismatch {
                    t.color(style::RED).into()
                } else {
                    t.into()
                }
            },
        )
    });
    let t = table(columns.collect::<Vec<_>>(), grid.rows)
        .padding_x(12)
        .padding_y(6);
    column![facts, scroll_both(t),]
        .spacing(10)
        .height(Fill)
        .into()
}
