//! The history panel: recent requests, newest first; a click reloads the fields.

use super::style;
use crate::app::{App, Message};
use crate::history::Status;
use iced::widget::{button, column, container, row, scrollable, space, text};
use iced::{Center, Element, Fill};

pub fn view(app: &App) -> Element<'_, Message> {
    let title = row![
        style::title("History"),
        space::horizontal(),
        button(text("Clear").size(12))
            .padding([2, 8])
            .on_press_maybe((!app.history.is_empty()).then_some(Message::ClearHistory))
            .style(button::text),
    ]
    .align_y(Center);
    let mut list = column![].spacing(4);
    if app.history.is_empty() {
        list = list.push(
            text("Requests you execute appear here; click one to load it again.")
                .size(13)
                .style(text::secondary),
        );
    }
    for (i, entry) in app.history.iter().enumerate() {
        let (mark, color) = match entry.status() {
            Status::Pending => ("…", None),
            Status::Ok => ("✓", Some(style::GREEN)),
            Status::Failed => ("✗", Some(style::RED)),
        };
        let mark = text(mark).size(15).font(style::BOLD);
        let mark = match color {
            Some(c) => mark.color(c),
            None => mark,
        };
        let outcome = entry
            .done
            .as_ref()
            .map(|d| d.summary())
            .unwrap_or_else(|| "waiting…".to_owned());
        let outcome = text(outcome).size(12);
        let outcome = match entry.status() {
            Status::Failed => outcome.style(style::error_text),
            _ => outcome.style(text::secondary),
        };
        let line = row![
            container(mark).width(18),
            column![
                text(entry.title.clone()).size(14),
                row![
                    text(format!("→ {}", entry.target_label))
                        .size(12)
                        .style(text::secondary),
                    outcome
                ]
                .spacing(8),
            ]
            .spacing(1),
        ]
        .spacing(6)
        .align_y(Center);
        list = list.push(
            button(line)
                .padding([4, 6])
                .width(Fill)
                .on_press(Message::HistorySelected(i))
                .style(button::subtle),
        );
    }
    style::card(column![title, scrollable(list).height(Fill)].spacing(8))
        .width(Fill)
        .height(Fill)
        .into()
}
